"""Feedback that improves the next version (#18 §2), in the browser: a subscriber rates an answer
down with a comment, the creator sees it scrubbed on the data page, corrects and accepts it,
"Train with feedback" trains a new version on a dataset version that holds the correction, and
during an A/B split the rollout card compares the new version's thumbs-down rate and latency with
the old one's."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from playwright.sync_api import Page, expect
from sqlmodel import Session, create_engine, select

from gptstudio.models import Assistant, Dataset, ModelVersion
from tests.e2e.conftest import RunningApp, hydrated, log_in, log_out, sign_up
from tests.services.docs import BEES_MD, TAX_MD

pytestmark = pytest.mark.e2e
CREATOR = "fenna@example.com"
PASSED = {"gate": {"passed": True, "relative_gain": 0.3, "message": "30 % lower perplexity."}}


def _publish_v1(app: RunningApp, slug: str) -> int:
    """v1 live: a real LoRA adapter in the artifacts folder the app's engine serves from."""
    from tests.engine.conftest import write_random_adapter

    base = app.data_dir / "models" / "tiny-llama"
    adapter = write_random_adapter(base, app.data_dir / "artifacts" / "e2e-feedback" / "v1", seed=7)
    engine = create_engine(app.database_url)
    with Session(engine) as session:
        row = session.exec(select(Assistant).where(Assistant.slug == slug)).one()
        version = ModelVersion(
            assistant_id=row.id or 0, version=1, base_model=str(base),
            adapter_path=str(Path(adapter).resolve()), metrics=PASSED, status="published",
        )  # fmt: skip
        session.add(version)
        session.flush()
        row.is_published, row.current_model_version_id = True, version.id
        session.add(row)
        session.commit()
        assistant_id = row.id or 0
    engine.dispose()
    return assistant_id


def _ask(page: Page, app: RunningApp, question: str, *, new: bool = False) -> None:
    page.goto(f"{app.url}/chat?assistant=fern-bee")
    hydrated(page)
    if new:
        page.click("#new-chat")
    page.fill("#chat-input", question)
    page.click("#send")
    expect(page.locator("#send")).to_be_visible(timeout=120_000)  # streaming finished
    expect(page.locator(".assistant-message").last).not_to_have_text("")


def test_thumbs_down_review_new_version_and_ab_numbers(
    app: RunningApp, admin: str, page: Page, tmp_path: Path
) -> None:
    sign_up(page, app, CREATOR, role="creator")
    expect(page).to_have_url(re.compile(r"/dashboard/?$"))
    page.click("#create-assistant")
    page.fill("#assistant-name", "Fern Bee")
    page.click("#create-submit")
    page.get_by_role("button", name="Documents and data").click()
    expect(page).to_have_url(re.compile(r"/assistant/data/?\?id=\d+"))
    hydrated(page)
    expect(page.locator("#feedback-empty")).to_be_visible()
    expect(page.locator("#train-with-feedback")).to_be_disabled()
    for name, text in (("bees.md", BEES_MD), ("tax.md", TAX_MD)):
        (tmp_path / name).write_text(text)
    page.set_input_files(
        "#documents input[type=file]", files=[str(tmp_path / "bees.md"), str(tmp_path / "tax.md")]
    )
    page.click("#upload-button")
    expect(page.locator(".document-row", has_text="parsed")).to_have_count(2, timeout=60_000)
    page.click("#run-curation")
    expect(page.locator("#run-status")).to_contain_text("done", timeout=120_000)
    page.click("#snapshot")
    expect(page.locator(".dataset-row")).to_have_count(1)
    assistant_id = _publish_v1(app, "fern-bee")
    log_out(page)

    # A subscriber asks, and rates the answer down with a comment holding their e-mail.
    sign_up(page, app, "moss@example.com")
    expect(page).to_have_url(re.compile(r"/home/?$"))
    _ask(page, app, "When do varroa mites peak in the colony?")
    answer = page.locator(".assistant-message").last
    answer.locator(".thumbs-down").click()
    answer.locator(".feedback-comment").click()
    answer.locator("textarea[name=comment]").fill("Wrong, see the guide. Mail moss@example.com")
    answer.locator(".feedback-save").click()
    expect(page.get_by_text("Thanks: the creator sees your feedback.")).to_be_visible()
    log_out(page)

    # The creator reviews it on the data page: scrubbed, corrected, accepted.
    log_in(page, app, CREATOR)
    expect(page).to_have_url(re.compile(r"/dashboard/?$"))
    page.goto(f"{app.url}/assistant/data?id={assistant_id}")
    hydrated(page)
    item = page.locator(".review-row")
    expect(item).to_have_count(1)
    expect(item).to_contain_text("When do varroa mites peak in the colony?")
    expect(item).to_contain_text("Wrong, see the guide. Mail [EMAIL]")
    expect(item).not_to_contain_text("moss@example.com")
    item.locator("textarea[name=correction]").fill(
        "Varroa mites peak in late summer, when brood rearing slows; treat above three per hundred."
    )
    item.locator(".feedback-accept").click()
    expect(page.locator("#feedback-empty")).to_be_visible()
    page.locator("#feedback-filter").click()
    page.get_by_role("option", name="accepted", exact=True).click()
    expect(page.locator(".review-row")).to_contain_text("Varroa mites peak in late summer")
    page.click("#train-with-feedback")
    expect(page).to_have_url(re.compile(r"/assistant/training/?\?id=\d+"))
    job = page.locator(".job-row").first
    expect(job).to_contain_text("succeeded", timeout=420_000)
    expect(page.locator(".version-row")).to_have_count(2, timeout=60_000)  # v1 and the new v2

    engine = create_engine(app.database_url)
    with Session(engine) as session:
        latest = session.exec(
            select(Dataset)
            .where(Dataset.assistant_id == assistant_id)
            .order_by(Dataset.version.desc())  # type: ignore[attr-defined]
        ).first()
        assert latest is not None and latest.version == 2 and latest.counts["from_feedback"] == 1
        train = (Path(latest.storage_path) / "train.jsonl").read_text()
    engine.dispose()
    assert '"kind": "feedback"' in train and "late summer, when brood rearing slows" in train

    # An A/B split to the new version (its gate is not passed on a few CPU steps: a reason).
    page.goto(f"{app.url}/assistant/settings?id={assistant_id}")
    hydrated(page)
    page.locator("#split-version").click()
    page.get_by_role("option", name=re.compile(r"^v2")).click()
    page.get_by_role("slider").focus()
    page.keyboard.press("End")
    page.fill("#split-reason", "Trained with subscriber feedback; trying it on live traffic.")
    page.click("#split-start")
    expect(page.locator("#split-status")).to_contain_text("v2")
    log_out(page)

    log_in(page, app, "moss@example.com")
    expect(page).to_have_url(re.compile(r"/home/?$"))
    _ask(page, app, "And how do I count them?", new=True)  # a new conversation: the candidate
    log_out(page)

    log_in(page, app, CREATOR)
    expect(page).to_have_url(re.compile(r"/dashboard/?$"))
    page.goto(f"{app.url}/assistant/settings?id={assistant_id}")
    hydrated(page)
    summary = page.locator("#ab-summary")
    expect(summary).to_contain_text("v2 against v1: thumbs down 0% (0 of 1) vs 100% (1 of 1)")
    expect(summary).to_contain_text(re.compile(r"median latency \d+ ms vs \d+ ms"))
