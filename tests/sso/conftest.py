"""Single sign-on against panva's ``oidc-provider``: the app's routes through a TestClient, the
provider over real HTTP, the browser's redirects driven by hand with httpx."""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from urllib.parse import urlsplit

import httpx
import pytest
from fastapi.testclient import TestClient

from gptstudio.api import create_api
from gptstudio.settings import get_settings
from tests.conftest import free_port
from tests.sso.provider import CLIENT_ID, CLIENT_SECRET, RunningProvider, oidc_provider

PUBLIC_URL = "http://studio.test"
CALLBACK = f"{PUBLIC_URL}/auth/oidc/oidc/callback"


@pytest.fixture(scope="session")
def provider() -> Iterator[RunningProvider]:
    """One provider for the session; its client is registered with the app's redirect URI."""
    with oidc_provider(free_port(), [CALLBACK]) as running:
        yield running


def configure(settings_env: pytest.MonkeyPatch, issuer: str) -> None:
    settings_env.setenv("GPTSTUDIO_PUBLIC_URL", PUBLIC_URL)
    settings_env.setenv("GPTSTUDIO_OIDC_ISSUER", issuer)
    settings_env.setenv("GPTSTUDIO_OIDC_NAME", "Test SSO")
    settings_env.setenv("GPTSTUDIO_OIDC_CLIENT_ID", CLIENT_ID)
    settings_env.setenv("GPTSTUDIO_OIDC_CLIENT_SECRET", CLIENT_SECRET)
    get_settings.cache_clear()


@dataclass
class Browser:
    """A browser's two cookie jars: the app's (a TestClient) and the provider's (httpx)."""

    app: TestClient
    web: httpx.Client = field(default_factory=lambda: httpx.Client(timeout=10))

    def start(self, next_path: str = "") -> httpx.Response:
        """Press "Continue with Test SSO": the app's answer (a redirect, not followed)."""
        params = {"next": next_path} if next_path else {}
        return self.app.get("/auth/oidc/oidc/login", params=params, follow_redirects=False)

    def log_in_at_provider(self, authorize_url: str, subject: str) -> str:
        """Pick ``subject`` on the provider's login page; the callback URL it sends us to."""
        page = self.web.get(authorize_url, follow_redirects=True)
        assert page.status_code == 200, page.text
        action = re.search(r'action="([^"]+)"', page.text)
        assert action, page.text
        answer = self.web.post(
            str(page.url.join(action.group(1))), data={"sub": subject}, follow_redirects=False
        )
        while answer.is_redirect or "document.forms[0].submit()" in answer.text:
            if not answer.is_redirect:  # the provider ends the previous user's session first:
                form = re.search(r'<form method="post" action="([^"]+)"', answer.text)
                assert form, answer.text
                fields = dict(re.findall(r'name="([^"]+)" value="([^"]*)"', answer.text))
                answer = self.web.post(form.group(1), data=fields, follow_redirects=False)
                continue
            location = str(answer.url.join(answer.headers["location"]))
            if location.startswith(PUBLIC_URL):
                return location
            answer = self.web.get(location, follow_redirects=False)
        raise AssertionError(f"the provider kept us: {answer.status_code} {answer.text}")

    def callback(self, url: str) -> httpx.Response:
        parts = urlsplit(url)
        return self.app.get(f"{parts.path}?{parts.query}", follow_redirects=False)

    def sso(self, subject: str, next_path: str = "") -> httpx.Response:
        """The whole round trip; the app's answer to the callback."""
        started = self.start(next_path)
        assert started.status_code == 303, started.text
        return self.callback(self.log_in_at_provider(started.headers["location"], subject))

    def close(self) -> None:
        self.app.close()
        self.web.close()


@pytest.fixture
def sso_app(db: str, settings_env: pytest.MonkeyPatch, provider: RunningProvider) -> str:
    """The app configured for the session's provider; yields its issuer."""
    configure(settings_env, provider.issuer)
    return provider.issuer


@pytest.fixture
def browser(sso_app: str) -> Iterator[Browser]:
    browser = Browser(app=TestClient(create_api(), base_url=PUBLIC_URL))
    yield browser
    browser.close()
