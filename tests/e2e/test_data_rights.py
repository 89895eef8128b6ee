"""User data rights in a real browser (issue 16): a creator uploads a real file, downloads all
their data from the account page, deletes an assistant from its settings page (typed name), then
deletes the account (password and DELETE); the database keeps only the pseudonymous row."""

from __future__ import annotations

import io
import json
import os
import re
import zipfile
from pathlib import Path

import pytest
from playwright.sync_api import Page, expect
from sqlmodel import Session, select

from gptstudio.db import engine_for
from gptstudio.models import Assistant, Document, User
from tests.e2e.conftest import PASSWORD, RunningApp, hydrated, log_in, sign_up

pytestmark = pytest.mark.e2e

# A real file: Debian's base-files FAQ (GPL-2+, see /usr/share/doc/base-files/copyright).
REAL_FILE = Path("/usr/share/doc/base-files/FAQ")
SHOTS = Path(os.environ.get("GPTSTUDIO_SCREENSHOTS", "/tmp/gptstudio-screenshots"))


def console_errors(page: Page) -> list[str]:
    errors: list[str] = []
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: errors.append(str(e)))
    return errors


def shot(page: Page, name: str) -> None:
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SHOTS / f"data-rights-{name}.png"), full_page=True)


def test_download_then_delete_an_assistant_then_the_account(
    app: RunningApp, admin: str, page: Page
) -> None:
    errors = console_errors(page)
    original = REAL_FILE.read_bytes()
    sign_up(page, app, "dora@example.com", role="creator")
    expect(page).to_have_url(re.compile(r"/dashboard/?$"))
    for name in ("Doomed Bees", "Kept Bees"):
        page.click("#create-assistant")
        page.fill("#assistant-name", name)
        page.click("#create-submit")
        expect(page.locator(".assistant-card", has_text=name)).to_be_visible()
    engine = engine_for(app.database_url)
    with Session(engine) as session:
        doomed = session.exec(select(Assistant).where(Assistant.name == "Doomed Bees")).one()
    page.goto(f"{app.url}/assistant/data?id={doomed.id}")
    hydrated(page)
    page.set_input_files(
        "#documents input[type=file]",
        files=[{"name": "FAQ.txt", "mimeType": "text/plain", "buffer": original}],
    )
    page.click("#upload-button")
    expect(page.locator(".document-row", has_text="FAQ.txt")).to_contain_text(
        "parsed", timeout=60_000
    )
    with Session(engine) as session:
        stored = session.exec(select(Document).where(Document.assistant_id == doomed.id)).one()
    assert original[:200] not in Path(stored.storage_path).read_bytes()  # encrypted at rest

    # Download everything from the account page.
    page.goto(f"{app.url}/account/data")
    hydrated(page)
    expect(page.locator("#delete-assistants")).to_contain_text("Doomed Bees, Kept Bees")
    shot(page, "account")
    with page.expect_download() as download:
        page.click("#export-data")
    archive = zipfile.ZipFile(io.BytesIO(Path(download.value.path()).read_bytes()))
    assert json.loads(archive.read("profile.json"))["email"] == "dora@example.com"
    assert archive.read(f"assistants/{doomed.slug}/documents/{stored.id}-FAQ.txt") == original

    # Delete one assistant from its settings page: the typed name is checked.
    page.goto(f"{app.url}/assistant/settings?id={doomed.id}")
    hydrated(page)
    expect(page.locator("#delete-impact")).to_contain_text("removes its 1 document(s)")
    page.fill("#delete-assistant-confirm", "doomed")
    page.click("#delete-assistant")
    expect(page.locator("#delete-assistant-error")).to_contain_text("Type the assistant's name")
    page.fill("#delete-assistant-confirm", "Doomed Bees")
    shot(page, "assistant-settings")
    page.click("#delete-assistant")
    expect(page).to_have_url(re.compile(r"/dashboard/?$"))
    expect(page.locator(".assistant-card")).to_have_count(1)
    assert not Path(stored.storage_path).exists()

    # Delete the account: a wrong password changes nothing; then it is gone.
    page.goto(f"{app.url}/account/data")
    hydrated(page)
    expect(page.locator("#delete-assistants")).to_contain_text("Kept Bees")
    page.fill("input[name=password]", "not my password")
    page.fill("#delete-confirm", "DELETE")
    page.click("#delete-account")
    expect(page.locator("#form-error")).to_have_text("The password is wrong.")
    page.fill("input[name=password]", PASSWORD)
    page.fill("#delete-confirm", "DELETE")
    page.click("#delete-account")
    expect(page).to_have_url(re.compile(r"/login"))
    expect(page.locator("#notice")).to_contain_text("Your account is deleted.")
    shot(page, "deleted")
    log_in(page, app, "dora@example.com")
    expect(page.locator("#form-error")).to_have_text("Wrong e-mail or password.")
    with Session(engine) as session:
        assert session.exec(select(User).where(User.email == "dora@example.com")).first() is None
        assert (
            session.exec(select(Assistant).where(Assistant.owner_id == doomed.owner_id)).all() == []
        )
    assert errors == []
