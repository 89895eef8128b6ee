"""A new user's first minutes, in a real browser against the app as `make run` starts it."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
from playwright.sync_api import Page, expect
from sqlmodel import Session, select

from gptstudio.db import engine_for, utcnow
from gptstudio.models import User, UserSession
from tests.e2e.conftest import ADMIN, RunningApp, log_in, log_out, sign_up

pytestmark = pytest.mark.e2e


def test_creator_signs_up_logs_out_logs_in_and_creates_an_assistant(
    app: RunningApp, admin: str, page: Page
) -> None:
    sign_up(page, app, "cy@example.com", role="creator")
    expect(page).to_have_url(re.compile(r"/dashboard/?$"))
    expect(page.locator("#nav-role")).to_have_text("creator")
    expect(page.locator("#empty-dashboard")).to_be_visible()
    log_out(page)

    log_in(page, app, "cy@example.com", "not my password")
    expect(page.locator("#form-error")).to_have_text("Wrong e-mail or password.")
    log_in(page, app, "cy@example.com")
    expect(page).to_have_url(re.compile(r"/dashboard/?$"))
    # The session cookie is HttpOnly: the browser holds it, page script cannot read it.
    (session_cookie,) = [c for c in page.context.cookies() if c["name"] == "gptstudio_session"]
    assert session_cookie["httpOnly"] and session_cookie["sameSite"] == "Strict"
    assert "gptstudio_session" not in page.evaluate("document.cookie")

    page.click("#create-assistant")
    page.fill("#assistant-name", "Bee Mentor")
    page.fill("#assistant-description", "Answers beekeeping questions.")
    page.click("#create-submit")
    expect(page.locator(".assistant-card")).to_have_count(1)
    expect(page.locator(".assistant-card")).to_contain_text("Bee Mentor")

    page.reload()  # it is stored, not only shown
    expect(page.locator(".assistant-card")).to_contain_text("Bee Mentor")
    log_out(page)
    page.goto(f"{app.url}/dashboard")  # signed out: the dashboard sends us to log in
    expect(page).to_have_url(re.compile(r"/login/?\?reason=required&next=%2Fdashboard"))


def test_subscriber_sees_their_home_and_is_kept_out_of_other_pages(
    app: RunningApp, admin: str, page: Page
) -> None:
    sign_up(page, app, "sue@example.com")
    expect(page).to_have_url(re.compile(r"/home/?$"))
    expect(page.locator("#greeting")).to_have_text("Hello, Sue.")
    expect(page.locator("#empty-home")).to_be_visible()
    for forbidden in ("/dashboard", "/admin"):
        page.goto(f"{app.url}{forbidden}")
        expect(page).to_have_url(re.compile(r"/home/?$"))
        expect(page.get_by_text("That page needs a")).to_be_visible()
        expect(page.locator("#refused")).to_contain_text("you are signed in as a subscriber")


def test_sign_up_errors_are_clear_and_write_nothing(
    app: RunningApp, admin: str, page: Page
) -> None:
    sign_up(page, app, ADMIN)
    expect(page.locator("#form-error")).to_contain_text("already exists")
    sign_up(page, app, "weak@example.com", password="short", confirm="short")
    expect(page.locator("#form-error")).to_contain_text("at least 10 characters")
    sign_up(page, app, "typo@example.com", confirm="something else entirely")
    expect(page.locator("#form-error")).to_have_text("The two passwords do not match.")
    with Session(engine_for(app.database_url)) as session:
        emails = set(session.exec(select(User.email)).all())
    assert not emails & {"weak@example.com", "typo@example.com"}


def test_expired_session_sends_the_user_to_log_in(app: RunningApp, admin: str, page: Page) -> None:
    log_in(page, app, ADMIN)
    expect(page).to_have_url(re.compile(r"/admin/?$"))
    with Session(engine_for(app.database_url)) as session:
        for row in session.exec(select(UserSession)).all():
            row.expires_at = utcnow() - timedelta(minutes=1)
            session.add(row)
        session.commit()
    page.goto(f"{app.url}/admin")
    expect(page).to_have_url(re.compile(r"/login/?\?reason=expired&next=%2Fadmin"))
    expect(page.locator("#notice")).to_have_text("Your session has expired. Please log in again.")


def test_admin_changes_a_role(app: RunningApp, admin: str, page: Page, browser) -> None:  # type: ignore[no-untyped-def]
    other = browser.new_context()  # pat signs up in a browser of their own
    pat_page = other.new_page()
    sign_up(pat_page, app, "pat@example.com")
    expect(pat_page).to_have_url(re.compile(r"/home/?$"))
    other.close()
    log_in(page, app, ADMIN)
    expect(page).to_have_url(re.compile(r"/admin/?$"))
    row = page.locator(".user-row", has_text="pat@example.com")
    row.locator(".user-role").get_by_role("combobox").click()
    page.get_by_role("option", name="creator").click()
    expect(page.get_by_text("pat@example.com is now creator.")).to_be_visible()
    row.locator(".user-tier").get_by_role("combobox").click()
    page.get_by_role("option", name="professional").click()
    expect(page.get_by_text("pat@example.com is now on the professional tier.")).to_be_visible()
    with Session(engine_for(app.database_url)) as session:
        pat = session.exec(select(User).where(User.email == "pat@example.com")).one()
    assert (pat.role, pat.tier) == ("creator", "professional")
