"""The real app, started the way ``make run`` starts it, and headless Debian Chromium."""

from __future__ import annotations

import contextlib
import os
import re
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import (
    Browser,
    BrowserContext,
    ConsoleMessage,
    Page,
    expect,
    sync_playwright,
)

from tests.billing.conftest import WEBHOOK_SECRET, configure_webhook, start_localstripe
from tests.billing.fake_stripe import StripeFront, serve
from tests.conftest import Mailbox, free_port
from tests.sso.provider import CLIENT_ID, CLIENT_SECRET, oidc_provider

ROOT = Path(__file__).resolve().parents[2]
PASSWORD = "correct horse battery"
ADMIN = "ada@example.com"
CHROMIUM = os.environ.get("GPTSTUDIO_TEST_CHROMIUM", "/usr/bin/chromium")
# This machine has two cores shared with the app, its worker and the browser: be patient.
expect.set_options(timeout=15_000)


@dataclass
class RunningApp:
    url: str
    data_dir: Path

    @property
    def database_url(self) -> str:
        return f"sqlite:///{self.data_dir / 'gptstudio.db'}"


@contextlib.contextmanager
def running_app(
    data_dir: Path, settings: dict[str, str], *, engine: bool = True, port: int = 0
) -> Iterator[RunningApp]:
    """``python -m gptstudio.run`` as ``make run`` starts it, on embedded defaults, a fresh data
    dir and a free port (or ``port``), with ``settings`` (``GPTSTUDIO_*``) on top; stopped at
    the end."""
    port = port or free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("GPTSTUDIO_")}
    env.update(
        GPTSTUDIO_DATA_DIR=str(data_dir),
        GPTSTUDIO_PORT=str(port),
        GPTSTUDIO_ENGINE_PORT=str(free_port()),  # not port + 1: an outgoing connection may hold it
        REFLEX_USE_SYSTEM_BUN="1",
        REFLEX_TELEMETRY_ENABLED="false",
        REFLEX_CHECK_LATEST_VERSION="false",
        OMP_NUM_THREADS="1",
        PATH=f"{ROOT / '.tools/node_modules/.bin'}:{Path(sys.executable).parent}:{env['PATH']}",
        **settings,
    )
    data_dir.parent.mkdir(parents=True, exist_ok=True)
    log = (data_dir.parent / "app.log").open("wb")
    if engine:  # what `make run` does before starting: the tiny local base model
        subprocess.run(
            [sys.executable, "-m", "gptstudio.tiny_model", "--if-unconfigured"],
            cwd=ROOT, env=env, check=True, stdout=log, stderr=log,
        )  # fmt: skip
    command = [sys.executable, "-m", "gptstudio.run", *([] if engine else ["--no-engine"])]
    process = subprocess.Popen(
        command, cwd=ROOT, env=env, stdout=log, stderr=log, start_new_session=True
    )
    url = f"http://localhost:{port}"
    deadline = time.monotonic() + 900
    while True:
        if process.poll() is not None:
            log.close()
            pytest.fail(f"the app exited: {(data_dir.parent / 'app.log').read_text()[-4000:]}")
        try:
            with urllib.request.urlopen(f"{url}/healthz", timeout=2) as response:
                if response.status == 200:
                    break
        except OSError:
            pass
        if time.monotonic() > deadline:
            process.terminate()
            pytest.fail("the app did not become healthy in 15 minutes")
        time.sleep(1)
    try:
        yield RunningApp(url=url, data_dir=data_dir)
    finally:
        process.terminate()
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, 9)
        log.close()


@pytest.fixture(scope="session")
def stripe_front() -> Iterator[StripeFront]:
    """Stripe, offline: localstripe, behind the recorded front for what it lacks (Prices,
    Checkout, the Portal); both sign their webhooks the way Stripe does."""
    localstripe, localstripe_url = start_localstripe()
    front = StripeFront(localstripe=localstripe_url, webhook_secret=WEBHOOK_SECRET)
    server = serve(front)
    yield front
    server.shutdown()
    localstripe.terminate()
    localstripe.wait(timeout=10)


@pytest.fixture(scope="session")
def app(
    tmp_path_factory: pytest.TempPathFactory,
    smtp_server: Mailbox,
    stripe_front: StripeFront,
) -> Iterator[RunningApp]:
    """The one app every browser test uses (two apps would compile into the same ``.web``
    folder and point each other's pages at the wrong server): mail to a local SMTP server,
    single sign-on at a local OpenID provider (panva's oidc-provider), payments at the offline
    Stripe."""
    port = free_port()
    callback = f"http://localhost:{port}/auth/oidc/oidc/callback"
    stack = contextlib.ExitStack()
    issuer = stack.enter_context(oidc_provider(free_port(), [callback])).issuer
    settings = {
        "GPTSTUDIO_STRIPE_SECRET_KEY": "sk_test_e2e",
        "GPTSTUDIO_STRIPE_API_BASE": stripe_front.url,
        "GPTSTUDIO_STRIPE_WEBHOOK_SECRET": WEBHOOK_SECRET,
        # Embedded Checkout, with the offline front's stand-in for Stripe.js.
        "GPTSTUDIO_STRIPE_PUBLISHABLE_KEY": "pk_test_e2e",
        "GPTSTUDIO_STRIPE_JS_URL": f"{stripe_front.url}/stripe-js/v3",
        "GPTSTUDIO_SMTP_HOST": smtp_server.host,
        "GPTSTUDIO_SMTP_PORT": str(smtp_server.port),
        "GPTSTUDIO_SMTP_SECURITY": "none",
        "GPTSTUDIO_OIDC_ISSUER": issuer,
        "GPTSTUDIO_OIDC_NAME": "Test SSO",
        "GPTSTUDIO_OIDC_CLIENT_ID": CLIENT_ID,
        "GPTSTUDIO_OIDC_CLIENT_SECRET": CLIENT_SECRET,
        "GPTSTUDIO_GATE_MARGIN": "0.99",  # a few CPU steps never gain 99 %: the gate blocks
    }
    data_dir = tmp_path_factory.mktemp("app") / "data"
    with stack, running_app(data_dir, settings, port=port) as running:
        stripe_front.webhook_url = f"{running.url}/webhooks/stripe"
        configure_webhook(stripe_front.localstripe, stripe_front.webhook_url)
        yield running


class BrowserErrors:
    """Every console error and uncaught exception of every page the browser opens, in any
    context (the tests' own ``browser.new_context()`` too). A test that provokes an error on
    purpose names it with ``expect`` (a regular expression); any other fails the test."""

    def __init__(self) -> None:
        self.seen: list[str] = []
        self.expected: list[re.Pattern[str]] = []

    def expect(self, pattern: str) -> None:
        self.expected.append(re.compile(pattern))

    def watch(self, context: BrowserContext) -> BrowserContext:
        context.on("page", self._watch_page)
        for page in context.pages:
            self._watch_page(page)
        return context

    def _watch_page(self, page: Page) -> None:
        page.on("console", self._console)
        page.on("pageerror", lambda error: self.seen.append(f"uncaught: {error}"))

    def _console(self, message: ConsoleMessage) -> None:
        if message.type == "error":
            self.seen.append(f"console.error: {message.text} (at {message.location.get('url')})")

    def unexpected(self) -> list[str]:
        return [e for e in self.seen if not any(p.search(e) for p in [*self.expected, *NOT_OURS])]


# The only errors that are not ours: the tests' stand-ins for other sites (the offline Stripe
# pages, the OpenID provider, the widget's host sites) serve no favicon.ico, and the browser
# logs the 401/404 it gets for it. The app itself runs at localhost, never at 127.0.0.1.
NOT_OURS = [
    re.compile(r"Failed to load resource: .* \(at http://127\.0\.0\.1:\d+/favicon\.ico\)$"),
]
BROWSER_ERRORS = BrowserErrors()
# Playwright's device profiles ("iPhone 13", "Galaxy S8", …), filled when the browser starts.
DEVICES: dict[str, dict[str, Any]] = {}


@pytest.fixture(autouse=True)
def browser_errors() -> Iterator[BrowserErrors]:
    """Fails any browser test whose pages logged a console error or threw (issue #13). There is
    no allow-list: every error seen so far was ours and was fixed."""
    BROWSER_ERRORS.seen, BROWSER_ERRORS.expected = [], []
    yield BROWSER_ERRORS
    if unexpected := BROWSER_ERRORS.unexpected():
        pytest.fail("the browser logged errors:\n" + "\n".join(unexpected), pytrace=False)


@pytest.fixture(scope="package")
def browser() -> Iterator[Browser]:
    """Playwright's sync API keeps an event loop running while it is open: close it with the
    package, so that asyncio tests collected later get a clean main thread."""
    with sync_playwright() as playwright:
        DEVICES.update(playwright.devices)
        browser = playwright.chromium.launch(
            executable_path=CHROMIUM,
            args=[
                "--no-sandbox",
                "--disable-gpu",
                "--disable-quic",
                "--no-first-run",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
            ],
        )
        # Every context (and so every page) any test or fixture opens is watched for errors.
        new_context = browser.new_context

        def watched_context(*args: Any, **kwargs: Any) -> BrowserContext:
            return BROWSER_ERRORS.watch(new_context(*args, **kwargs))

        browser.new_context = watched_context  # type: ignore[method-assign]
        yield browser
        browser.close()


@pytest.fixture
def page(browser: Browser) -> Iterator[Page]:
    """A fresh browser profile (no cookies) per test."""
    context = browser.new_context()
    context.set_default_timeout(20_000)
    page = context.new_page()
    yield page
    context.close()


def hydrated(page: Page) -> None:
    """Wait until the page is connected and its on-load events ran: submit buttons are disabled
    until then, and a form filled before that may be re-rendered empty."""
    expect(page.locator("button[type=submit]").first).to_be_enabled()


def sign_up(
    page: Page,
    app: RunningApp,
    email: str,
    *,
    role: str = "subscriber",
    password: str = PASSWORD,
    confirm: str | None = None,
) -> None:
    page.goto(f"{app.url}/signup")
    hydrated(page)
    page.fill("#email", email)
    page.fill("#display_name", email.split("@")[0].title())
    page.fill("#password", password)
    page.fill("#confirm", confirm if confirm is not None else password)
    page.click(f"#type-{role}")
    page.click("#submit")


def log_in(page: Page, app: RunningApp, email: str, password: str = PASSWORD) -> None:
    page.goto(f"{app.url}/login")
    hydrated(page)
    page.fill("#email", email)
    page.fill("#password", password)
    page.click("#submit")


def log_out(page: Page) -> None:
    page.click("#logout")
    expect(page).to_have_url(re.compile(r"/login"))
    expect(page.locator("#notice")).to_have_text("You are signed out.")


@pytest.fixture(scope="package")
def admin(app: RunningApp, browser: Browser) -> str:
    """The first account, made through the sign-up page; it becomes the admin."""
    context = browser.new_context()
    page = context.new_page()
    sign_up(page, app, ADMIN)
    expect(page).to_have_url(re.compile(r"/admin/?$"), timeout=30_000)
    expect(page.locator("#nav-role")).to_have_text("admin")
    context.close()
    return ADMIN
