"""A creator's first hour in the browser, on the defaults, through to a subscriber's citation.

Real documents (three small ones Debian ships: Markdown, HTML, plain text; see
``tests/e2e/data/README.md``), nothing typed beyond what a creator must: upload → curation with
its default settings → snapshot → Start training with no step count (the ``auto`` preset) → the
knowledge-gain gate at its default margin passes → Publish without a reason → retrieval switched
on with its default number of passages → a subscriber asks, and the answer cites a passage that
opens. The browser console stays free of errors throughout.

The browser tests' app runs with a 99 % gate (other tests need it blocked), so an admin sets the
default margin back on the admin page first, as an admin of any installation can; it is cleared
again at the end.
"""

from __future__ import annotations

import re
from pathlib import Path

import httpx
import pytest
from playwright.sync_api import Page, expect
from sqlmodel import Session

from gptstudio.db import engine_for
from gptstudio.models import AppSetting
from gptstudio.services.publish_gate import MARGIN_KEY
from gptstudio.settings import Settings
from tests.e2e.conftest import RunningApp, hydrated, log_in, log_out, sign_up
from tests.e2e.test_data import console_errors

pytestmark = pytest.mark.e2e
DATA = Path(__file__).parent / "data"
DOCUMENTS = (
    "procps-bugs.md",
    "base-passwd-users-and-groups.html",
    "base-passwd-README.txt",
)


def _clear_gate(app: RunningApp) -> None:
    with Session(engine_for(app.database_url)) as session:
        row = session.get(AppSetting, MARGIN_KEY)
        if row is not None:
            session.delete(row)
            session.commit()


def test_first_hour_on_the_defaults_ends_in_a_cited_answer(
    app: RunningApp, admin: str, page: Page
) -> None:
    errors = console_errors(page)
    default_margin = Settings.model_fields["gate_margin"].default
    try:
        _walk(app, admin, page, f"{default_margin * 100:g}")
    finally:
        _clear_gate(app)
    assert errors == []


def _walk(app: RunningApp, admin: str, page: Page, margin: str) -> None:
    log_in(page, app, admin)
    expect(page).to_have_url(re.compile(r"/admin/?$"))
    hydrated(page)
    page.fill("#gate-margin", margin)
    page.click("#gate-save")
    expect(page.get_by_text("New versions now need 5% lower held-out perplexity.")).to_be_visible()
    log_out(page)

    # The creator: an assistant, three real documents, curation and a snapshot on the defaults.
    sign_up(page, app, "flo@example.com", role="creator")
    expect(page).to_have_url(re.compile(r"/dashboard/?$"))
    page.click("#create-assistant")
    page.fill("#assistant-name", "System Accounts Guide")
    page.click("#create-submit")
    page.get_by_role("button", name="Documents and data").click()
    expect(page).to_have_url(re.compile(r"/assistant/data/?\?id=\d+"))
    assistant_id = int(re.findall(r"id=(\d+)", page.url)[0])
    hydrated(page)
    page.set_input_files("#documents input[type=file]", files=[str(DATA / n) for n in DOCUMENTS])
    page.click("#upload-button")
    for name in DOCUMENTS:
        expect(page.locator(".document-row", has_text=name)).to_contain_text(
            "parsed", timeout=120_000
        )
    page.click("#run-curation")
    expect(page.locator("#run-status")).to_contain_text("done", timeout=300_000)
    page.click("#snapshot")
    expect(page.locator(".dataset-row")).to_have_count(1, timeout=60_000)

    # Training with nothing typed: the preset sized to the data; the gate passes; Publish.
    page.goto(f"{app.url}/assistant/training?id={assistant_id}")
    hydrated(page)
    expect(page.locator("#job-dataset")).to_contain_text("1")
    page.click("#job-start")
    expect(page.locator(".job-row").first).to_contain_text("succeeded", timeout=900_000)
    version = page.locator(".version-row")
    expect(version).to_have_count(1, timeout=60_000)
    expect(version).to_contain_text("yes")  # the gate passed
    page.click("#publish")  # no reason needed: the version passed the gate
    expect(version).to_contain_text("published", timeout=30_000)
    expect(page.locator("#form-error")).to_have_count(0)

    # Retrieval on, with its default number of passages; the index is built from the snapshot.
    page.goto(f"{app.url}/assistant/settings?id={assistant_id}")
    hydrated(page)
    page.click("#rag-enabled")
    page.click("#rag-save")
    status = page.locator("#index-status")
    for _ in range(60):
        if "Ready:" in status.inner_text():
            break
        page.wait_for_timeout(3000)
        page.reload()
        hydrated(page)
    expect(status).to_contain_text("Ready:")
    log_out(page)

    # A subscriber asks; the answer streams and cites a passage, which opens.
    sign_up(page, app, "gus@example.com")
    expect(page).to_have_url(re.compile(r"/home/?$"))
    card = page.locator(".assistant-card", has_text="System Accounts Guide")
    card.get_by_role("button", name="Chat").click()
    expect(page).to_have_url(re.compile(r"/chat/?\?assistant=system-accounts-guide"))
    hydrated(page)
    page.fill("#chat-input", "Where do I send bug reports for procps?")
    page.click("#send")
    expect(page.locator("#send")).to_be_visible(timeout=120_000)  # streaming finished
    answer = page.locator(".assistant-message").last
    # The tiny model's words are not the point (it may even end at once, which the page says);
    # the passages it was given are, and each is cited with the answer.
    expect(answer).not_to_have_text("")
    citations = answer.locator(".citation")
    expect(citations.first).to_be_visible()
    expect(citations.first.locator("summary")).to_have_text(re.compile(r"^\[1\] \S"))
    citations.first.locator("summary").click()
    source = citations.first.get_by_role("link", name="Open the source")
    expect(source).to_be_visible()
    href = str(source.get_attribute("href"))
    cookies = {c["name"]: c["value"] for c in page.context.cookies()}
    opened = httpx.get(href if href.startswith("http") else app.url + href, cookies=cookies)
    assert opened.status_code == 200, opened.text[:500]
    passage = citations.first.locator("p").first.inner_text().strip()[:40]
    assert passage and passage.split()[0] in opened.text
    page.reload()  # the cited answer is stored with its citations
    hydrated(page)
    expect(page.locator(".assistant-message").last.locator(".citation").first).to_be_visible()
