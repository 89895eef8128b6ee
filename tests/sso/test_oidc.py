"""Generic OpenID Connect sign-in against a certified provider (panva's ``oidc-provider``: PKCE
required, e-mail and name only at the userinfo endpoint), through the app's HTTP routes."""

from __future__ import annotations

import time
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from fastapi.testclient import TestClient
from sqlmodel import select

from gptstudio.api import create_api
from gptstudio.api.auth import LINK_COOKIE, STATE_COOKIE
from gptstudio.db import session_scope
from gptstudio.models import OAuthIdentity, Role, User
from gptstudio.services import access, account, crypto, oidc
from gptstudio.settings import get_settings
from tests.conftest import free_port
from tests.sso.conftest import PUBLIC_URL, Browser, configure
from tests.sso.provider import RunningProvider, oidc_provider

PASSWORD = "correct horse battery"


def error_of(response: httpx.Response) -> str:
    """The message a redirect to /login carries (the page shows it)."""
    assert response.status_code == 303, response.text
    location = urlsplit(response.headers["location"])
    assert location.path == "/login", response.headers["location"]
    return parse_qs(location.query).get("error", [""])[0]


def users() -> list[User]:
    with session_scope() as session:
        return list(session.exec(select(User).order_by(User.id)).all())  # type: ignore[arg-type]


def identities() -> list[tuple[str, str, int]]:
    with session_scope() as session:
        rows = session.exec(select(OAuthIdentity)).all()
        return [(row.provider, row.subject, row.user_id) for row in rows]


def signed_in_as(response: httpx.Response, browser: Browser) -> str:
    assert response.status_code == 303, response.text
    token = browser.app.cookies.get(account.SESSION_COOKIE)
    assert token, response.headers
    return account.user_for_session(token=token).email


def test_first_login_creates_an_account_from_userinfo_claims(browser: Browser) -> None:
    started = browser.start()
    # RFC 7636: a verifier of 43 to 128 characters, sent as an S256 challenge.
    state = crypto.unsign(browser.app.cookies[STATE_COOKIE], purpose="oidc-state", max_age=60)
    assert 43 <= len(state["v"]) <= 128
    query = parse_qs(urlsplit(started.headers["location"]).query)
    assert query["code_challenge_method"] == ["S256"] and query["nonce"] and query["state"]

    answer = browser.callback(browser.log_in_at_provider(started.headers["location"], "oidc-alice"))
    # Without GPTSTUDIO_ADMIN_EMAIL the first account of an installation is the admin (README).
    assert answer.headers["location"] == "/admin"
    assert signed_in_as(answer, browser) == "alice@example.com"
    [alice] = users()
    assert alice.email_verified_at is not None and alice.display_name == "Alice"
    assert alice.role == Role.admin.value
    assert identities() == [("oidc", "oidc-alice", alice.id)]
    assert STATE_COOKIE not in browser.app.cookies


def test_second_login_signs_in_through_the_link(browser: Browser) -> None:
    account.register(email="someone@example.com", password=PASSWORD)  # the admin
    signed_in_as(browser.sso("oidc-alice"), browser)
    browser.app.cookies.clear()
    answer = browser.sso("oidc-alice")
    assert answer.headers["location"] == "/home"
    assert signed_in_as(answer, browser) == "alice@example.com"
    assert [user.email for user in users()] == ["someone@example.com", "alice@example.com"]
    assert len(identities()) == 1


def test_next_is_honoured_after_the_callback(browser: Browser) -> None:
    account.register(email="someone@example.com", password=PASSWORD)
    assert browser.sso("oidc-alice", next_path="/chat?c=1").headers["location"] == "/chat?c=1"
    browser.app.cookies.clear()
    assert browser.sso("oidc-alice", next_path="//evil.example/x").headers["location"] == "/home"


def test_an_unverified_email_creates_no_account(browser: Browser) -> None:
    assert "has not verified" in error_of(browser.sso("oidc-bob"))
    assert users() == [] and identities() == []
    assert account.SESSION_COOKIE not in browser.app.cookies


def test_an_unverified_email_never_links_to_an_existing_account(browser: Browser) -> None:
    account.register(email="ada@example.com", password=PASSWORD)
    assert "has not verified the e-mail" in error_of(browser.sso("oidc-liar"))
    assert identities() == []
    assert LINK_COOKIE not in browser.app.cookies


def test_verified_linking_needs_the_password_and_keeps_the_ticket_out_of_the_url(
    browser: Browser,
) -> None:
    ada = account.register(email="ada@example.com", password=PASSWORD)
    answer = browser.sso("oidc-ada", next_path="/chat")
    assert answer.status_code == 303
    location = answer.headers["location"]
    assert urlsplit(location).path == "/login"
    assert parse_qs(urlsplit(location).query) == {"sso": ["link"], "next": ["/chat"]}
    ticket = browser.app.cookies[LINK_COOKIE]  # short-lived, HttpOnly, never in the URL
    assert "httponly" in answer.headers["set-cookie"].lower()
    pending = oidc.read_link_ticket(ticket)
    assert (pending.email, pending.user_id, pending.provider_label) == (
        "ada@example.com",
        ada.id,
        "Test SSO",
    )
    assert identities() == []  # nothing linked before the password is proven

    result = account.login(email="ada@example.com", password=PASSWORD)
    oidc.link_after_password(ticket=ticket, user=result.user, client=access.Client())
    assert identities() == [("oidc", "oidc-ada", ada.id)]
    browser.app.cookies.clear()
    answer = browser.sso("oidc-ada")
    assert signed_in_as(answer, browser) == "ada@example.com"
    assert answer.headers["location"] == "/admin"


def test_a_tampered_state_is_refused(browser: Browser) -> None:
    started = browser.start()
    callback = browser.log_in_at_provider(started.headers["location"], "oidc-alice")
    tampered = callback.replace("state=", "state=x")
    assert "does not match" in error_of(browser.callback(tampered))
    assert users() == []


def test_a_replayed_callback_is_refused_even_with_the_state_cookie(browser: Browser) -> None:
    account.register(email="someone@example.com", password=PASSWORD)
    started = browser.start()
    state_cookie = browser.app.cookies[STATE_COOKIE]
    callback = browser.log_in_at_provider(started.headers["location"], "oidc-alice")
    signed_in_as(browser.callback(callback), browser)

    browser.app.cookies.clear()
    browser.app.cookies.set(STATE_COOKIE, state_cookie, domain="studio.test", path="/auth/oidc")
    replay = browser.callback(callback)  # the code is spent: the provider refuses it
    assert "refused the sign-in" in error_of(replay)
    assert account.SESSION_COOKIE not in browser.app.cookies


def test_a_callback_without_a_code_is_refused(browser: Browser) -> None:
    started = browser.start()
    state = parse_qs(urlsplit(started.headers["location"]).query)["state"][0]
    answer = browser.app.get(f"/auth/oidc/oidc/callback?state={state}", follow_redirects=False)
    assert "no authorization code" in error_of(answer)
    assert users() == []


def test_a_refusal_at_the_provider_ends_on_the_login_page(browser: Browser) -> None:
    answer = browser.app.get(
        "/auth/oidc/oidc/callback?error=access_denied&state=x", follow_redirects=False
    )
    assert "cancelled or refused (access_denied)" in error_of(answer)


def test_a_provider_that_is_down_is_reported_before_the_redirect(
    db: str, settings_env: pytest.MonkeyPatch
) -> None:
    account.register(email="someone@example.com", password=PASSWORD)
    with oidc_provider(free_port(), [f"{PUBLIC_URL}/auth/oidc/oidc/callback"]) as provider:
        configure(settings_env, provider.issuer)
        browser = Browser(app=TestClient(create_api(), base_url=PUBLIC_URL))
        signed_in_as(browser.sso("oidc-alice"), browser)  # its discovery document is cached now
    browser.app.cookies.clear()
    began = time.monotonic()
    answer = browser.start()
    assert time.monotonic() - began < oidc.REACH_TIMEOUT + 2
    assert "Test SSO cannot be reached right now" in error_of(answer)
    assert STATE_COOKIE not in browser.app.cookies
    browser.close()


def test_the_id_token_issuer_must_be_the_configured_one(
    db: str, settings_env: pytest.MonkeyPatch, provider: RunningProvider
) -> None:
    # The same provider under another name: its documents and tokens say 127.0.0.1.
    configure(settings_env, provider.issuer.replace("127.0.0.1", "localhost"))
    browser = Browser(app=TestClient(create_api(), base_url=PUBLIC_URL))
    assert "issuer" in error_of(browser.start())
    browser.close()


def test_the_admin_email_setting_names_the_admin(
    browser: Browser, settings_env: pytest.MonkeyPatch
) -> None:
    settings_env.setenv("GPTSTUDIO_ADMIN_EMAIL", "Boss@Example.com")
    get_settings.cache_clear()
    assert browser.sso("oidc-alice").headers["location"] == "/home"  # first, yet no admin
    browser.app.cookies.clear()
    assert browser.sso("oidc-boss").headers["location"] == "/admin"
    assert [(u.email, u.role) for u in users()] == [
        ("alice@example.com", Role.subscriber.value),
        ("boss@example.com", Role.admin.value),
    ]


def test_a_password_reset_drops_sso_links_unless_kept(browser: Browser, mailbox: object) -> None:
    from tests.conftest import Mailbox

    assert isinstance(mailbox, Mailbox)
    account.register(email="someone@example.com", password=PASSWORD)
    signed_in_as(browser.sso("oidc-alice"), browser)
    signed_in_as(browser.sso("oidc-boss"), browser)

    def reset(email: str, **keep: bool) -> None:
        mailbox.messages.clear()
        account.request_password_reset(email=email)
        token = mailbox.link(email, "reset").split("token=")[1]
        account.reset_password(token=token, new_password="a brand new passphrase", **keep)

    reset("alice@example.com")
    reset("boss@example.com", keep_sso_links=True)
    assert [subject for _, subject, _ in identities()] == ["oidc-boss"]
    browser.app.cookies.clear()
    # Alice's provider account no longer signs in by itself: the password must be proven again.
    answer = browser.sso("oidc-alice")
    assert parse_qs(urlsplit(answer.headers["location"]).query)["sso"] == ["link"]


def test_discovery_is_cached_for_minutes_not_an_hour() -> None:
    assert oidc.METADATA_SECONDS <= 300
    assert oidc.REACH_TIMEOUT <= 5
