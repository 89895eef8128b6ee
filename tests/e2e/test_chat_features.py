"""Chat features in the browser: the creator sets the persona; a subscriber sees Markdown and
citations, rates an answer with a comment; the creator reads it, splits traffic between two
versions, promotes and rolls back.

Training through the UI is covered by test_data.py; here two model versions with real (random)
LoRA adapters are written into the running app's artifacts folder and database, and the app's
own engine serves them.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from playwright.sync_api import Page, expect
from sqlmodel import Session, col, create_engine, select

from gptstudio.models import Assistant, Conversation, Message, ModelVersion
from tests.e2e.conftest import RunningApp, hydrated, log_in, log_out, sign_up

pytestmark = pytest.mark.e2e

PASSED = {"gate": {"passed": True, "relative_gain": 0.3, "message": "30 % lower perplexity."}}
MARKDOWN_ANSWER = (
    "Check **monthly** [1].\n\n| Month | Mites |\n|---|---|\n| May | 3 |\n\n"
    "```python\nprint('sugar roll')\n```\n"
)
CITATION = {
    "n": 1, "document_id": 1, "filename": "varroa.pdf", "page": 4,
    "snippet": "Monitor varroa once a month from spring to autumn.",
}  # fmt: skip


def _published_with_two_versions(app: RunningApp, slug: str) -> int:
    """v1 live and v2 ready as a candidate, both passing the gate, each a real LoRA adapter in
    the artifacts folder the app's engine serves from."""
    from tests.engine.conftest import write_random_adapter

    base = app.data_dir / "models" / "tiny-llama"
    folder = app.data_dir / "artifacts" / "e2e-chat"
    engine = create_engine(app.database_url)
    with Session(engine) as session:
        row = session.exec(select(Assistant).where(Assistant.slug == slug)).one()
        ids = []
        for number in (1, 2):
            adapter = write_random_adapter(base, folder / f"v{number}", seed=40 + number)
            version = ModelVersion(
                assistant_id=row.id or 0, version=number, base_model=str(base),
                adapter_path=str(Path(adapter).resolve()), metrics=PASSED,
                status="published" if number == 1 else "draft",
            )  # fmt: skip
            session.add(version)
            session.flush()
            ids.append(version.id)
        row.is_published, row.current_model_version_id = True, ids[0]
        session.add(row)
        session.commit()
        assistant_id = row.id or 0
    engine.dispose()
    return assistant_id


def _store_cited_answer(app: RunningApp, title: str) -> None:
    """An earlier answer with Markdown and a citation, as the retrieval path stores it."""
    engine = create_engine(app.database_url)
    with Session(engine) as session:
        talk = session.exec(
            select(Conversation).where(col(Conversation.title).startswith(title))
        ).one()
        session.add(Message(conversation_id=talk.id or 0, role="user", content="And the sources?"))
        session.add(
            Message(
                conversation_id=talk.id or 0,
                role="assistant",
                content=MARKDOWN_ANSWER,
                model_version_id=talk.model_version_id,
                citations=[CITATION],
                latency_ms=840,
            )
        )
        session.commit()
    engine.dispose()


def test_persona_feedback_and_rollout(app: RunningApp, admin: str, page: Page) -> None:
    sign_up(page, app, "petra@example.com", role="creator")
    expect(page).to_have_url(re.compile(r"/dashboard/?$"))
    page.click("#create-assistant")
    page.fill("#assistant-name", "Persona Bee")
    page.click("#create-submit")
    expect(page.locator("text=Persona Bee").first).to_be_visible()
    assistant_id = _published_with_two_versions(app, "persona-bee")

    # The creator sets the persona; it survives a reload, and a bad edit is refused whole.
    settings = f"{app.url}/assistant/settings?id={assistant_id}"
    page.goto(settings)
    hydrated(page)
    expect(page.locator("#settings-name")).to_have_value("Persona Bee")
    page.fill("#settings-persona", "You are Persona Bee, a patient beekeeping mentor.")
    page.click("#settings-save")
    expect(page.get_by_text("Saved: new conversations use the new persona.")).to_be_visible()
    page.fill("#settings-name", "x")
    page.click("#settings-save")
    expect(page.locator("#form-error")).to_contain_text("name of 2 to 120 characters")
    page.reload()
    hydrated(page)
    expect(page.locator("#settings-persona")).to_have_value(
        "You are Persona Bee, a patient beekeeping mentor."
    )
    expect(page.locator("#settings-name")).to_have_value("Persona Bee")
    expect(page.locator("#current-version")).to_have_text("v1")
    page.click("#rag-enabled")  # retrieval on, but no sources index built yet
    page.click("#rag-save")
    expect(page.get_by_text("Retrieval settings saved.")).to_be_visible()
    log_out(page)

    # A subscriber chats: Markdown (table, highlighted code), citations, thumbs down + comment.
    sign_up(page, app, "sol@example.com")
    expect(page).to_have_url(re.compile(r"/home/?$"))
    page.goto(f"{app.url}/chat?assistant=persona-bee")
    hydrated(page)
    page.fill("#chat-input", "Solstice question: how often should I check for mites?")
    page.click("#send")
    expect(page.locator("#send")).to_be_visible(timeout=90_000)  # streaming finished
    answer = page.locator(".assistant-message").last
    expect(answer).not_to_have_text("")
    expect(page.locator("#sources-note")).to_have_text(
        "Sources are not indexed yet, so this answer cites no documents."
    )
    expect(answer.locator(".latency")).to_have_text(re.compile(r"\d+(\.\d)? (ms|s)"))
    answer.locator(".thumbs-down").click()
    expect(answer.locator(".feedback-comment")).to_be_visible()
    answer.locator(".feedback-comment").click()
    answer.locator("textarea[name=comment]").fill("Too vague about the mite count.")
    answer.locator(".feedback-save").click()
    expect(page.get_by_text("Thanks: the creator sees your feedback.")).to_be_visible()

    _store_cited_answer(app, "Solstice question")
    page.reload()
    hydrated(page)
    expect(page.locator(".user-message")).to_have_count(2)
    cited = page.locator(".assistant-message").last
    expect(cited.locator("table")).to_contain_text("Mites")
    expect(cited.locator("strong")).to_have_text("monthly")
    expect(cited.locator("pre")).to_contain_text("print('sugar roll')")
    expect(cited.locator(".citation summary")).to_have_text("[1] varroa.pdf, p. 4")
    cited.locator(".citation summary").click()
    expect(cited.locator(".citation")).to_contain_text("Monitor varroa once a month")
    expect(cited.locator(".latency")).to_have_text("840 ms")
    # the rating given before the reload is still shown
    rated = page.locator(".assistant-message").first
    expect(rated.locator(".feedback-comment")).to_have_text("Edit comment")

    # Reset context: a marker, and the conversation stays.
    page.click("#reset-context")
    expect(page.locator(".context-reset")).to_have_count(1)
    page.reload()
    expect(page.locator(".context-reset")).to_have_count(1)

    # Narrow screens: the conversation list lives in a drawer.
    page.set_viewport_size({"width": 390, "height": 800})
    expect(page.locator("#chat-search")).to_be_hidden()
    page.get_by_role("button", name="Conversations").click()
    expect(page.locator(".conversation-in-drawer")).to_have_count(1)
    page.keyboard.press("Escape")
    page.set_viewport_size({"width": 1280, "height": 720})
    log_out(page)

    # The creator sees the feedback and the per-version numbers, then splits and rolls back.
    log_in(page, app, "petra@example.com")
    expect(page).to_have_url(re.compile(r"/dashboard/?$"))
    page.goto(settings)
    hydrated(page)
    row = page.locator(".feedback-row").first
    expect(row).to_contain_text("Too vague about the mite count.")
    expect(row).to_contain_text("Solstice question")
    expect(page.locator(".stats-row", has_text="v1")).to_contain_text("current")
    expect(page.locator("#feedback-chart")).to_be_visible()

    page.locator("#split-version").click()
    page.get_by_role("option", name=re.compile(r"^v2")).click()
    page.get_by_role("slider").focus()
    page.keyboard.press("End")
    expect(page.locator("#split-percent")).to_have_text("100 %")
    for _ in range(10):
        page.keyboard.press("ArrowLeft")
    expect(page.locator("#split-percent")).to_have_text("50 %")
    page.click("#split-start")
    expect(page.locator("#split-status")).to_contain_text("v2")
    expect(page.locator("#split-status")).to_contain_text("50 % of new conversations")

    page.click("#rollback")  # one click: the split stops
    expect(page.locator("#split-status")).to_have_text("No split running.")
    expect(page.locator("#current-version")).to_have_text("v1")

    page.locator("#split-version").click()
    page.get_by_role("option", name=re.compile(r"^v2")).click()
    page.click("#split-start")
    expect(page.locator("#split-status")).to_contain_text("v2")
    page.click("#promote")
    expect(page.locator("#current-version")).to_have_text("v2")
    page.click("#rollback")  # one click: back to the version before the promotion
    expect(page.locator("#current-version")).to_have_text("v1")
    page.reload()
    hydrated(page)
    expect(page.locator("#current-version")).to_have_text("v1")


def _free_plan(app: RunningApp, assistant_id: int, tokens: int) -> None:
    """A free tier with a small token quota (tiers are clicked in test_billing.py)."""
    from gptstudio.models import Plan

    engine = create_engine(app.database_url)
    with Session(engine) as session:
        session.add(Plan(assistant_id=assistant_id, key="free", name="Free",
                         included_tokens=tokens))  # fmt: skip
        session.commit()
    engine.dispose()


def test_a_subscriber_chats_until_the_quota_and_sees_the_upgrade_prompt(
    app: RunningApp, admin: str, page: Page
) -> None:
    sign_up(page, app, "quinn@example.com", role="creator")
    expect(page).to_have_url(re.compile(r"/dashboard/?$"))
    page.click("#create-assistant")
    page.fill("#assistant-name", "Quota Bee")
    page.click("#create-submit")
    expect(page.locator("text=Quota Bee").first).to_be_visible()
    assistant_id = _published_with_two_versions(app, "quota-bee")
    _free_plan(app, assistant_id, tokens=120)
    log_out(page)

    sign_up(page, app, "ursula@example.com")
    expect(page).to_have_url(re.compile(r"/home/?$"))
    page.goto(f"{app.url}/chat?assistant=quota-bee")
    hydrated(page)
    quota_line = page.locator("#quota-text")
    expect(quota_line).to_contain_text("Free: 120 of 120 tokens left")
    expect(page.locator("#upgrade-link")).to_have_attribute(
        "href", re.compile(rf"/pricing\?assistant={assistant_id}$")
    )
    refused = page.locator("#form-error")
    for turn in range(6):  # each answer is cut to what the quota has left, then it is refused
        page.fill("#chat-input", f"Question {turn}: when do bees swarm?")
        page.click("#send")
        expect(page.locator("#send")).to_be_visible(timeout=90_000)
        if refused.is_visible():
            break
    expect(refused).to_contain_text("You have used the 120 tokens your Free plan includes")
    expect(quota_line).to_contain_text("Free: 0 of 120 tokens left")
    expect(page.locator("#upgrade-link")).to_be_visible()
    page.locator("#upgrade-link").click()
    expect(page).to_have_url(re.compile(rf"/pricing/?\?assistant={assistant_id}"))


TOO_LONG = "Qx7-zk9 " * 3500  # more than the tiny model's window holds, even alone


def test_a_new_chat_welcomes_and_its_thread_can_be_edited_regenerated_and_retried(
    app: RunningApp, admin: str, page: Page
) -> None:
    """The creator's welcome and starters; "&" in the name; back to the chat after logging in;
    Stop clickable through the stream; regenerate keeps both answers; edit and resend; a failed
    answer shown with Retry after a reload; delete asks first; no console errors."""
    sign_up(page, app, "wendy@example.com", role="creator")
    expect(page).to_have_url(re.compile(r"/dashboard/?$"))
    page.click("#create-assistant")
    page.fill("#assistant-name", "Bees & Honey")
    page.click("#create-submit")
    expect(page.locator("text=Bees & Honey").first).to_be_visible()
    engine = create_engine(app.database_url)
    with Session(engine) as session:
        slug = session.exec(select(Assistant.slug).where(Assistant.name == "Bees & Honey")).one()
    engine.dispose()
    assistant_id = _published_with_two_versions(app, slug)
    page.goto(f"{app.url}/assistant/settings?id={assistant_id}")
    hydrated(page)
    page.fill("#settings-welcome", "Welcome to the hive! Ask me about bees.")
    page.fill("#settings-starters", "How do I start a hive?\nWhen do bees swarm?")
    page.click("#settings-welcome-save")
    expect(page.get_by_text("Saved: the chat opens with this welcome.")).to_be_visible()
    log_out(page)

    # A logged-out visit to the chat comes back to it after logging in.
    sign_up(page, app, "willa@example.com")
    expect(page).to_have_url(re.compile(r"/home/?$"))
    log_out(page)
    chat_url = f"{app.url}/chat?assistant={slug}"
    page.goto(chat_url)
    back = rf"/login/?\?reason=required&next=%2Fchat(%2F)?%3Fassistant%3D{slug}$"
    expect(page).to_have_url(re.compile(back))
    errors: list[str] = []
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    katex: list[str] = []  # rendered once per answer at most, never per streamed token
    page.on("console", lambda m: katex.append(m.text) if "KaTeX" in m.text else None)
    hydrated(page)
    page.fill("#email", "willa@example.com")
    page.fill("#password", "correct horse battery")
    page.click("#submit")
    expect(page).to_have_url(re.compile(rf"/chat/?\?assistant={slug}$"))
    hydrated(page)
    expect(page.get_by_role("heading", name="Bees & Honey")).to_be_visible()
    expect(page.locator("#welcome")).to_have_text("Welcome to the hive! Ask me about bees.")
    expect(page.locator(".starter")).to_have_text(["How do I start a hive?", "When do bees swarm?"])

    # A starter asks its question; Stop is one element from the first token to the last.
    page.locator(".starter", has_text="How do I start a hive?").click()
    expect(page.locator(".user-message")).to_have_text("How do I start a hive?")
    stop = page.locator("#stop")
    expect(stop).to_be_visible()
    handle = stop.element_handle()
    assert handle is not None
    expect(page.locator(".assistant-message").last).not_to_have_text("", timeout=60_000)
    page.wait_for_timeout(1500)  # more tokens arrive
    if stop.is_visible():  # still streaming: the same element, and it stops the answer
        assert handle.evaluate("element => element.isConnected")
        handle.click()
    expect(page.locator("#send")).to_be_visible(timeout=90_000)
    expect(page.locator("#welcome")).to_have_count(0)
    expect(page.locator(".assistant-message")).to_have_count(1)

    # Regenerate keeps both answers; the earlier one is a click away.
    page.click("#regenerate")
    expect(page.locator("#send")).to_be_visible(timeout=90_000)
    expect(page.locator(".assistant-message")).to_have_count(1)
    expect(page.locator(".answer-choice")).to_have_text("2 / 2")
    page.locator(".previous-answer").click()
    expect(page.locator(".answer-choice")).to_have_text("1 / 2")
    page.reload()
    hydrated(page)
    expect(page.locator(".answer-choice")).to_have_text("1 / 2")

    # Edit and resend: the question changes, a new answer replaces the old ones.
    page.locator(".edit-message").click()
    expect(page.locator("#edit-input")).to_have_value("How do I start a hive?")
    page.fill("#edit-input", "When do bees swarm?")
    page.click("#edit-send")
    expect(page.locator("#send")).to_be_visible(timeout=90_000)
    expect(page.locator(".user-message")).to_have_text("When do bees swarm?")
    expect(page.locator(".answer-choice")).to_have_count(0)
    expect(page.locator(".assistant-message")).to_have_count(1)

    # A failed answer shows where the answer would be, also after a reload, with Retry.
    page.fill("#chat-input", TOO_LONG)
    page.click("#send")
    failed = page.locator(".failed-answer")
    expect(failed).to_contain_text("too long for the model")
    page.reload()
    hydrated(page)
    expect(failed).to_contain_text("too long for the model")
    page.click("#retry")
    expect(page.locator("#send")).to_be_visible(timeout=90_000)
    expect(failed).to_have_count(1)  # asked again, refused again, still one

    # The title is shown whole, and deleting asks first.
    title = page.locator(".conversation").first
    expect(title).to_have_text("How do I start a hive?")
    assert title.evaluate("element => element.scrollWidth <= element.clientWidth")
    page.click("#delete-chat")
    expect(page.get_by_text("Delete this conversation?")).to_be_visible()
    page.get_by_role("button", name="Cancel").click()
    expect(page.locator(".conversation")).to_have_count(1)
    page.click("#delete-chat")
    page.click("#delete-chat-confirm")
    expect(page.locator(".conversation")).to_have_count(0)
    assert errors == []
    assert len(katex) <= 4, katex  # four answers were rendered
