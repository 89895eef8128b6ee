"""A creator turns a mixed folder into a versioned dataset in the browser."""

from __future__ import annotations

import io
import json
import os
import re
import tarfile
import tempfile
from datetime import timedelta
from pathlib import Path

import httpx
import pytest
from playwright.sync_api import Page, expect
from sqlmodel import Session, create_engine, select

from gptstudio.db import utcnow
from gptstudio.models import Document
from tests.curation.builders import make_docx, make_pdf
from tests.e2e.conftest import RunningApp, hydrated, log_in, log_out, sign_up
from tests.services.docs import BEES_MD, TAX_MD, chat_jsonl

pytestmark = pytest.mark.e2e
BUNDLE = Path(tempfile.gettempdir()) / f"gptstudio-e2e-bundle-{os.getpid()}.tar"
SHOTS = os.environ.get("GPTSTUDIO_TEST_SCREENSHOTS", "")  # a folder to keep screenshots in

HTML = (
    "<html><head><title>Hive care</title></head><body><article><h1>Hive care</h1>"
    + "<p>Inspect the hive every week in spring and look for eggs and young larvae.</p>" * 6
    + "</article></body></html>"
)
CSV = "question,answer\nWhat is propolis?,Propolis is a resin bees collect from tree buds.\n"
# Column names that say nothing: the creator has to choose.
TICKETS = (
    "ticket,asked,answered\n"
    "1,How often should a hive be inspected in spring?,Every seven to ten days in spring.\n"
)


def folder() -> list[dict[str, object]]:
    files = {
        "bees.md": BEES_MD.encode(),
        "tax.txt": TAX_MD.encode(),
        "hive.html": HTML.encode(),
        "faq.csv": CSV.encode(),
        "tickets.csv": TICKETS.encode(),
        "chat.jsonl": chat_jsonl([("What eats bees?", "Varroa mites feed on them.")]),
        "guide.pdf": make_pdf([["Queen rearing starts with grafting young larvae."] * 4] * 2),
        "notes.docx": make_docx(
            [("h1", "Wintering"), ("p", "Leave enough honey for the winter months. " * 8)]
        ),
        "broken.pdf": b"%PDF-1.4 this is not really a pdf",
    }
    return [
        {"name": n, "mimeType": "application/octet-stream", "buffer": b} for n, b in files.items()
    ]


def console_errors(page: Page) -> list[str]:
    """The page's console errors and uncaught exceptions, as they happen."""
    errors: list[str] = []
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: errors.append(str(e)))
    return errors


def test_upload_curate_and_snapshot(app: RunningApp, admin: str, page: Page) -> None:
    errors = console_errors(page)
    sign_up(page, app, "dana@example.com", role="creator")
    expect(page).to_have_url(re.compile(r"/dashboard/?$"))
    page.click("#create-assistant")
    page.fill("#assistant-name", "Hive Helper")
    page.click("#create-submit")
    page.get_by_role("button", name="Documents and data").click()
    expect(page).to_have_url(re.compile(r"/assistant/data/?\?id=\d+"))
    hydrated(page)
    page.click("#run-curation")  # too early: said, and gone once there are parsed documents
    expect(page.locator("#form-error")).to_contain_text("No parsed document yet")

    page.set_input_files("#documents input[type=file]", files=folder())
    page.click("#upload-button")
    rows = page.locator(".document-row")
    expect(rows).to_have_count(9, timeout=60_000)
    expect(page.locator(".document-row", has_text="broken.pdf")).to_contain_text(
        "failed", timeout=60_000
    )
    for name in ("bees.md", "guide.pdf", "notes.docx", "hive.html", "faq.csv", "chat.jsonl"):
        expect(page.locator(".document-row", has_text=name)).to_contain_text(
            "parsed", timeout=60_000
        )
    expect(page.locator(".document-row", has_text="tax.txt")).to_contain_text("parsed")
    # Parsing over: no "stored, parsing…" line and no earlier alert is left behind.
    expect(page.locator(".upload-status")).to_have_count(0)
    expect(page.locator("#form-error")).to_have_count(0)

    tickets = page.locator(".document-row", has_text="tickets.csv")
    expect(tickets).to_contain_text("Choose which column", timeout=60_000)
    tickets.locator(".choose-columns").click()
    for role, column in (("instruction", "asked"), ("response", "answered")):
        page.locator(f"#column-{role}").click()
        page.get_by_role("option", name=column, exact=True).click()
    page.click("#save-columns")
    expect(tickets).to_contain_text("parsed", timeout=60_000)
    expect(tickets).to_contain_text("instruction = asked")

    page.fill("#url", "http://127.0.0.1:9/private")
    page.click("#fetch")
    expect(page.locator(".document-row", has_text="127.0.0.1")).to_contain_text(
        "private or local address", timeout=30_000
    )

    page.click("#run-curation")
    expect(page.locator("#run-status")).to_contain_text("done", timeout=120_000)
    expect(page.locator("#counts")).to_contain_text("Examples imported")
    examples = page.locator(".example-row")
    expect(examples.first).to_be_visible()
    examples.first.get_by_role("button", name="Drop").click()
    expect(examples.first).to_contain_text("drop")

    # Edit opens a dialog over the page, wherever the row is; saving marks the row edited.
    row = examples.last
    row.scroll_into_view_if_needed()
    row.get_by_role("button", name="Edit").click()
    dialog = page.locator("#edit-dialog")
    expect(dialog).to_be_in_viewport()
    page.fill("#edit-answer", "Inspect every seven to ten days in spring.")
    page.click("#save-edit")
    expect(dialog).to_have_count(0)
    expect(row).to_contain_text("edit")
    expect(row).to_contain_text("Inspect every seven to ten days in spring.")

    page.reload()  # the run, its result and the override survive a reload
    expect(page.locator("#run-status")).to_contain_text("done")
    expect(page.locator(".example-row").first).to_contain_text("drop")

    page.click("#snapshot")
    expect(page.locator(".dataset-row")).to_have_count(1)
    href = page.locator(".dataset-row a").first.get_attribute("href")
    cookies = {c["name"]: c["value"] for c in page.context.cookies()}
    exported = httpx.get(app.url + str(href), cookies=cookies)
    assert exported.status_code == 200
    first = json.loads(exported.text.splitlines()[0])
    assert first["messages"][-1]["role"] == "assistant" and first["source"]["document_id"]
    assert errors == []


def test_train_follow_and_publish(app: RunningApp, admin: str, page: Page) -> None:
    """Continues from the dataset above: fine-tune, watch it, hit the gate, publish anyway."""
    log_in(page, app, "dana@example.com")
    expect(page).to_have_url(re.compile(r"/dashboard/?$"))
    page.get_by_role("button", name="Training").click()
    expect(page).to_have_url(re.compile(r"/assistant/training/?\?id=\d+"))
    hydrated(page)
    page.locator("#job-dataset").click()
    page.get_by_role("option", name="1", exact=True).click()
    page.fill("#job-steps", "6")
    page.click("#job-start")
    expect(page.locator(".job-row").first).to_contain_text("succeeded", timeout=180_000)
    expect(page.locator("#loss-chart")).to_be_visible()
    expect(page.locator(".version-row")).to_have_count(1, timeout=30_000)
    expect(page.locator(".sample-row").first).to_be_visible()

    # Export builds the bundle on the worker: the row shows its progress and then the download
    # (the page follows the build, no reload); a second export works too; no server path shown.
    errors = console_errors(page)
    cookies = {c["name"]: c["value"] for c in page.context.cookies()}
    row = page.locator(".version-row")
    for attempt in range(2):
        row.get_by_role("button", name="Export").click()
        expect(page.get_by_text("Building the export bundle").first).to_be_visible()
        expect(row.locator(".export-progress")).to_be_visible()
        if attempt == 0 and SHOTS:
            page.screenshot(path=f"{SHOTS}/export-progress.png", full_page=True)
        link = row.locator("a.export")
        expect(link).to_be_visible(timeout=180_000)
        expect(link).to_contain_text("MiB")
        if attempt == 0 and SHOTS:
            page.screenshot(path=f"{SHOTS}/export-done.png", full_page=True)
        href = str(link.get_attribute("href"))
        download = httpx.get(app.url + href, cookies=cookies, timeout=60)
        assert download.status_code == 200 and download.content[257:262] == b"ustar"
    with tarfile.open(fileobj=io.BytesIO(download.content)) as packed:
        names = {n.split("/", 1)[1] for n in packed.getnames() if "/" in n}
    assert {"manifest.json", "Modelfile", "model.gguf", "adapter/adapter_config.json",
            "merged/model.safetensors"} <= names  # fmt: skip
    BUNDLE.write_bytes(download.content)
    assert errors == []
    expect(page.locator(".version-row")).not_to_contain_text(str(app.data_dir))

    page.locator("#publish-version").click()
    page.get_by_role("option").first.click()
    page.click("#publish")
    expect(page.locator("#form-error")).to_contain_text("Publishing is blocked")
    page.fill("#publish-reason", "Checked the answers by hand; good enough for a beta.")
    page.click("#publish")
    expect(page.locator(".version-row")).to_contain_text("published")

    log_out(page)
    sign_up(page, app, "sid@example.com")
    card = page.locator(".assistant-card", has_text="Hive Helper")
    expect(card).to_be_visible()

    # The subscriber chats with the published version, served by the engine process.
    card.get_by_role("button", name="Chat").click()
    expect(page).to_have_url(re.compile(r"/chat/?\?assistant=hive-helper"))
    hydrated(page)
    page.fill("#chat-input", "How often should varroa be monitored?")
    page.click("#send")
    answer = page.locator(".assistant-message").last
    expect(answer).not_to_have_text("", timeout=60_000)
    expect(page.locator("#send")).to_be_visible(timeout=60_000)  # streaming finished
    first = answer.inner_text()
    page.click("#regenerate")
    expect(page.locator("#send")).to_be_visible(timeout=60_000)
    expect(page.locator(".assistant-message")).to_have_count(1)
    page.reload()  # the conversation is stored
    expect(page.locator(".user-message")).to_contain_text("varroa")
    expect(page.locator(".conversation")).to_have_count(1)
    page.fill("#chat-search", "nothing like this")
    expect(page.locator(".conversation")).to_have_count(0)
    page.fill("#chat-search", "varroa")
    expect(page.locator(".conversation")).to_have_count(1)
    assert first


def test_import_a_bundle(app: RunningApp, admin: str, page: Page, tmp_path: Path) -> None:
    """Continues from the export above: another creator imports the bundle on the import page;
    a file that is not a bundle is refused with a message."""
    errors = console_errors(page)
    sign_up(page, app, "ivo@example.com", role="creator")
    expect(page).to_have_url(re.compile(r"/dashboard/?$"))
    page.click("#import-bundle")
    expect(page).to_have_url(re.compile(r"/assistants/import/?$"))
    expect(page.locator("#import-button")).to_be_enabled()

    junk = tmp_path / "notes.tar"
    junk.write_bytes(b"not a tar at all" * 64)
    page.locator("#bundle input[type=file]").set_input_files(str(junk))
    page.click("#import-button")
    expect(page.locator("#form-error")).to_contain_text("not a readable bundle")

    page.locator("#bundle input[type=file]").set_input_files(str(BUNDLE))
    page.click("#import-button")
    expect(page.locator("#import-done")).to_be_visible(timeout=120_000)
    expect(page.locator("#import-step")).to_contain_text("done")
    expect(page.locator("#form-error")).to_have_count(0)
    expect(page.locator(".imported-row")).to_have_count(1)
    expect(page.locator(".imported-row")).to_contain_text("Hive Helper")
    expect(page.locator(".imported-row")).to_contain_text("published")
    if SHOTS:
        page.screenshot(path=f"{SHOTS}/import-done.png", full_page=True)
    page.goto(f"{app.url}/dashboard")
    expect(page.locator(".assistant-card", has_text="Hive Helper")).to_be_visible()
    BUNDLE.unlink(missing_ok=True)
    assert errors == []


MENU = (
    "name,price,description\n"
    'Sourdough loaf,6.50,"Naturally leavened, 24-hour ferment."\n'
    "Croissant,3.20,Laminated with French butter.\n"
    'Rye bread,5.80,"Dense, with caraway."\n'
)


def test_a_table_becomes_examples_through_a_row_template(
    app: RunningApp, admin: str, page: Page
) -> None:
    """A menu has no question column: the creator writes a question and an answer over its
    columns, and each row becomes one example."""
    errors = console_errors(page)
    sign_up(page, app, "tam@example.com", role="creator")
    page.click("#create-assistant")
    page.fill("#assistant-name", "Bakery Menu")
    page.click("#create-submit")
    page.get_by_role("button", name="Documents and data").click()
    hydrated(page)
    page.set_input_files(
        "#documents input[type=file]",
        files=[{"name": "menu.csv", "mimeType": "text/csv", "buffer": MENU.encode()}],
    )
    page.click("#upload-button")
    menu = page.locator(".document-row", has_text="menu.csv")
    expect(menu).not_to_contain_text("uploaded", timeout=60_000)
    expect(menu.locator(".choose-columns")).to_be_visible()  # a table: its columns can be chosen
    menu.locator(".choose-columns").click()
    page.get_by_role("radio", name="template").click()
    expect(page.locator("#columns-form")).to_contain_text("{price}")
    page.fill("#question-template", "What does the {name} cost?")
    page.fill("#answer-template", "The {name} costs ${price}. {description}")
    page.click("#save-columns")
    expect(menu).to_contain_text("Row template: 3 examples", timeout=60_000)
    page.click("#run-curation")
    expect(page.locator("#run-status")).to_contain_text("done", timeout=120_000)
    expect(page.locator(".example-row", has_text="What does the Croissant cost?")).to_contain_text(
        "The Croissant costs $3.20."
    )
    menu.locator(".choose-columns").click()  # the template is kept for the next edit
    expect(page.locator("#question-template")).to_have_value("What does the {name} cost?")
    assert errors == []


def test_a_file_whose_parse_lost_its_worker_twice_says_so(
    app: RunningApp, admin: str, page: Page
) -> None:
    """A file left ``parsing`` by a worker that stopped (its second attempt, its heartbeat an hour
    old): the app's own sweep fails it, and the data page, following the pending file, says
    what happened and what to do."""
    sign_up(page, app, "lou@example.com", role="creator")
    page.click("#create-assistant")
    page.fill("#assistant-name", "Lost Parse")
    page.click("#create-submit")
    page.get_by_role("button", name="Documents and data").click()
    hydrated(page)
    page.set_input_files(
        "#documents input[type=file]",
        files=[{"name": "lost.md", "mimeType": "text/markdown", "buffer": BEES_MD.encode()}],
    )
    page.click("#upload-button")
    row = page.locator(".document-row", has_text="lost.md")
    expect(row).to_contain_text("parsed", timeout=60_000)
    engine = create_engine(app.database_url)
    with Session(engine) as session:  # as a second worker that died mid-parse leaves it
        document = session.exec(select(Document).where(Document.filename == "lost.md")).one()
        document.status, document.attempts = "parsing", 2
        document.heartbeat_at = utcnow() - timedelta(hours=1)
        session.add(document)
        session.commit()
    engine.dispose()
    page.reload()
    expect(row).to_contain_text("parsing")
    # The documents consumer's sweep runs every minute; the page refreshes while a file is pending.
    expect(row).to_contain_text("failed", timeout=150_000)
    expect(row).to_contain_text("The worker parsing this file stopped before it finished")
    expect(row).to_contain_text("Upload it again")
