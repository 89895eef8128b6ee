"""Account security in a real browser: MFA login, single sign-on against panva's oidc-provider
(new account, password-proven linking, a provider lying about e-mail), password reset by mail,
API keys, sessions, lockout and the audit log."""

from __future__ import annotations

import re
import time

import httpx
import pyotp
import pytest
from playwright.sync_api import Browser, Page, expect

from tests.conftest import Mailbox
from tests.e2e.conftest import ADMIN, PASSWORD, RunningApp, hydrated, log_in, log_out, sign_up

pytestmark = pytest.mark.e2e


def test_mfa_enrolment_and_login(app: RunningApp, admin: str, page: Page) -> None:
    sign_up(page, app, "mo@example.com", role="creator")
    expect(page).to_have_url(re.compile(r"/dashboard/?$"))
    page.goto(f"{app.url}/account")
    page.click("#mfa-start")
    expect(page.locator("#mfa-qr")).to_be_visible()
    totp = pyotp.TOTP(page.locator("#mfa-secret").inner_text().strip())
    page.fill("#mfa-code", totp.now())
    page.click("#mfa-confirm")
    expect(page.locator("#backup-codes code")).to_have_count(10)
    expect(page.locator("#mfa-status")).to_have_text("Two-step verification is on.")
    log_out(page)

    log_in(page, app, "mo@example.com")
    expect(page.get_by_text("Two-step verification")).to_be_visible()
    page.fill("#code", "000000")
    page.click("#submit-code")
    expect(page.locator("#form-error")).to_contain_text("not valid")
    page.fill("#code", totp.at(time.time() + 30))  # a fresh code (the enrolment one is spent)
    page.click("#submit-code")
    expect(page).to_have_url(re.compile(r"/dashboard/?$"))


def sso(page: Page, app: RunningApp, subject: str) -> None:
    page.goto(f"{app.url}/login")
    page.click("#sso-oidc")
    page.get_by_role("button", name=subject, exact=True).click()  # the provider's consent page


def test_single_sign_on_creates_an_account(app: RunningApp, admin: str, page: Page) -> None:
    sso(page, app, "oidc-alice")
    expect(page).to_have_url(re.compile(r"/home/?$"))
    expect(page.locator("#nav-email")).to_have_text("alice@example.com")
    log_out(page)
    sso(page, app, "oidc-alice")  # the second time the same identity signs straight in
    expect(page.locator("#nav-email")).to_have_text("alice@example.com")


def test_linking_an_existing_account_needs_its_password(
    app: RunningApp, admin: str, page: Page
) -> None:
    sso(page, app, "oidc-liar")  # says ada@example.com but has not verified it
    expect(page.locator("#form-error")).to_contain_text("has not verified the e-mail")
    sso(page, app, "oidc-ada")
    expect(page.locator("#link-notice")).to_contain_text("ada@example.com")
    assert re.search(r"/login/?\?sso=link$", page.url)  # the linking ticket is a cookie
    page.fill("#email", ADMIN)
    page.fill("#password", "a wrong password")
    page.click("#submit")
    expect(page.locator("#form-error")).to_have_text("Wrong e-mail or password.")
    page.fill("#password", PASSWORD)
    page.click("#submit")
    expect(page).to_have_url(re.compile(r"/admin/?$"))
    log_out(page)
    sso(page, app, "oidc-ada")  # now linked: no password needed
    expect(page).to_have_url(re.compile(r"/admin/?$"))


def test_password_reset_by_mail(
    app: RunningApp, admin: str, page: Page, smtp_server: Mailbox
) -> None:
    sign_up(page, app, "rita@example.com")
    expect(page).to_have_url(re.compile(r"/home/?$"))
    verify_link = smtp_server.link("rita@example.com", "verify")
    log_out(page)
    page.goto(verify_link)
    expect(page.locator("#notice")).to_contain_text("rita@example.com is confirmed")

    page.goto(f"{app.url}/forgot")
    hydrated(page)
    page.fill("#email", "rita@example.com")
    page.click("#submit")
    expect(page.locator("#notice")).to_contain_text("If an account exists")
    page.goto(smtp_server.link("rita@example.com", "reset"))
    hydrated(page)
    page.fill("#password", "my new long passphrase")
    page.fill("#confirm", "my new long passphrase")
    page.click("#submit")
    expect(page).to_have_url(re.compile(r"/login"))
    log_in(page, app, "rita@example.com", "my new long passphrase")
    expect(page).to_have_url(re.compile(r"/home/?$"))


def test_api_key_is_shown_once_works_and_can_be_revoked(
    app: RunningApp, admin: str, page: Page
) -> None:
    sign_up(page, app, "kim@example.com")
    expect(page).to_have_url(re.compile(r"/home/?$"))
    page.goto(f"{app.url}/account/keys")
    page.fill("#key-name", "script")
    page.click("#scope-models\\:read")
    page.click("#key-create")
    raw = page.locator("#new-key").inner_text().strip()
    assert raw.startswith("gs-")
    expect(page.locator(".key-row")).to_have_count(1)
    ok = httpx.get(f"{app.url}/v1/models", headers={"Authorization": f"Bearer {raw}"})
    assert ok.status_code == 200 and ok.json()["object"] == "list"
    page.reload()
    expect(page.locator("#new-key")).to_have_count(0)  # never shown again
    page.locator(".key-row").get_by_role("button", name="Revoke").click()
    expect(page.locator(".key-row")).to_contain_text("revoked")
    refused = httpx.get(f"{app.url}/v1/models", headers={"Authorization": f"Bearer {raw}"})
    assert refused.status_code == 401
    assert refused.json()["error"]["code"] == "revoked_api_key"


def test_sign_out_other_sessions(app: RunningApp, admin: str, browser: Browser) -> None:
    first, second = browser.new_context(), browser.new_context()
    laptop, phone = first.new_page(), second.new_page()
    sign_up(laptop, app, "sam@example.com")
    expect(laptop).to_have_url(re.compile(r"/home/?$"))
    log_in(phone, app, "sam@example.com")
    expect(phone).to_have_url(re.compile(r"/home/?$"))
    laptop.goto(f"{app.url}/account/sessions")
    expect(laptop.locator(".session-row")).to_have_count(2)
    laptop.click("#revoke-others")
    expect(laptop.locator(".session-row")).to_have_count(1)
    phone.goto(f"{app.url}/home")
    expect(phone).to_have_url(re.compile(r"/login"))
    first.close()
    second.close()


def test_lockout_and_audit_log(app: RunningApp, admin: str, page: Page) -> None:
    for _ in range(5):
        log_in(page, app, "victim@example.com", "guessing the password")
        expect(page.locator("#form-error")).to_have_text("Wrong e-mail or password.")
    log_in(page, app, "victim@example.com", "guessing the password")
    expect(page.locator("#form-error")).to_contain_text("Too many failed attempts")

    log_in(page, app, ADMIN)
    expect(page).to_have_url(re.compile(r"/admin/?$"))
    page.goto(f"{app.url}/admin/audit")
    page.fill("#audit-actor", "")
    page.locator("#audit-action").click()
    page.get_by_role("option", name="login.failed").click()
    page.click("#audit-filter")
    expect(page.locator(".audit-row", has_text="victim@example.com").first).to_be_visible()
    expect(page.locator(".audit-row", has_text="login.ok")).to_have_count(0)
