"""Conversations: only their owner sees them; search, rename, export, delete; the context reset
and what of a conversation the model sees."""

from __future__ import annotations

import json
from dataclasses import dataclass

import pytest

from gptstudio.errors import InvalidInput, NotFound
from gptstudio.models import Role
from gptstudio.services import account, conversation
from tests.factories import publish_assistant

PASSWORD = "correct horse battery"


@pytest.fixture
def people(db: str) -> tuple[account.UserPublic, account.UserPublic]:
    account.register(email="root@example.com", password=PASSWORD)
    cy = account.register(email="cy@example.com", password=PASSWORD, role=Role.creator)
    publish_assistant(cy)
    sue = account.register(email="sue@example.com", password=PASSWORD)
    sam = account.register(email="sam@example.com", password=PASSWORD)
    return sue, sam


def test_conversations_belong_to_their_owner(
    people: tuple[account.UserPublic, account.UserPublic],
) -> None:
    sue, sam = people
    talk = conversation.start_conversation(actor=sue, slug="bee-mentor")
    conversation.add_message(
        actor=sue, conversation_id=talk.id or 0, role="user", content="About mites?"
    )
    conversation.add_message(
        actor=sue, conversation_id=talk.id or 0, role="assistant", content="Check monthly."
    )
    assert [c.title for c in conversation.list_conversations(actor=sue, slug="bee-mentor")] == [
        "About mites?"
    ]
    assert conversation.list_conversations(actor=sue, slug="bee-mentor", search="monthly")
    assert not conversation.list_conversations(actor=sue, slug="bee-mentor", search="honey")
    assert conversation.list_conversations(actor=sam, slug="bee-mentor") == []
    for attempt in (
        lambda: conversation.messages_of(actor=sam, conversation_id=talk.id or 0),
        lambda: conversation.rename_conversation(
            actor=sam, conversation_id=talk.id or 0, title="x"
        ),
        lambda: conversation.delete_conversation(actor=sam, conversation_id=talk.id or 0),
        lambda: conversation.add_message(
            actor=sam, conversation_id=talk.id or 0, role="user", content="x"
        ),
        lambda: conversation.export_conversation(
            actor=sam, conversation_id=talk.id or 0, fmt="json"
        ),
    ):
        with pytest.raises(NotFound):
            attempt()
    conversation.rename_conversation(actor=sue, conversation_id=talk.id or 0, title="  Mites  ")
    exported = json.loads(
        conversation.export_conversation(actor=sue, conversation_id=talk.id or 0, fmt="json")
    )
    assert exported["title"] == "Mites" and len(exported["messages"]) == 2
    markdown = conversation.export_conversation(
        actor=sue, conversation_id=talk.id or 0, fmt="markdown"
    )
    assert markdown.startswith("# Mites") and "**Assistant:**" in markdown
    conversation.set_aside_last_answer(actor=sue, conversation_id=talk.id or 0)
    assert [m.role for m in conversation.messages_of(actor=sue, conversation_id=talk.id or 0)] == [
        "user", conversation.ALTERNATIVE_ROLE,
    ]  # fmt: skip
    conversation.delete_conversation(actor=sue, conversation_id=talk.id or 0)
    assert conversation.list_conversations(actor=sue, slug="bee-mentor") == []


def test_a_context_reset_starts_what_the_model_sees_afresh(
    people: tuple[account.UserPublic, account.UserPublic],
) -> None:
    sue, sam = people
    talk = conversation.start_conversation(actor=sue, slug="bee-mentor")
    talk_id = talk.id or 0
    assert conversation.reset_context(actor=sue, conversation_id=talk_id) is None  # empty
    for role, text in [("user", "About mites?"), ("assistant", "Check monthly.")]:
        conversation.add_message(actor=sue, conversation_id=talk_id, role=role, content=text)
    marker = conversation.reset_context(actor=sue, conversation_id=talk_id)
    assert marker is not None and marker.role == conversation.CONTEXT_RESET_ROLE
    assert conversation.reset_context(actor=sue, conversation_id=talk_id) is None  # once
    with pytest.raises(NotFound):
        conversation.reset_context(actor=sam, conversation_id=talk_id)
    conversation.add_message(actor=sue, conversation_id=talk_id, role="user", content="Honey?")
    rows = conversation.messages_of(actor=sue, conversation_id=talk_id)
    assert conversation.history_of(rows) == [{"role": "user", "content": "Honey?"}]
    assert [m.role for m in rows].count(conversation.CONTEXT_RESET_ROLE) == 1


def test_history_keeps_the_newest_turns_with_text() -> None:
    @dataclass
    class Turn:
        role: str
        content: str

    turns = [Turn("user" if n % 2 == 0 else "assistant", f"turn {n}") for n in range(30)]
    turns.insert(5, Turn("assistant", "   "))
    history = conversation.history_of(turns)
    assert len(history) == conversation.HISTORY_MESSAGES
    assert history[-1] == {"role": "assistant", "content": "turn 29"}


def test_regenerated_answers_are_kept_and_one_is_chosen(
    people: tuple[account.UserPublic, account.UserPublic],
) -> None:
    sue, sam = people
    talk_id = conversation.start_conversation(actor=sue, slug="bee-mentor").id or 0

    def add(role: str, text: str) -> int:
        message = conversation.add_message(
            actor=sue, conversation_id=talk_id, role=role, content=text
        )
        return message.id or 0

    add("user", "About mites?")
    first = add("assistant", "Check monthly.")
    conversation.set_aside_last_answer(actor=sue, conversation_id=talk_id)  # regenerate
    second = add("assistant", "Use a sugar roll.")
    rows = conversation.messages_of(actor=sue, conversation_id=talk_id)
    assert [[m.id for m in g] for g in conversation.answer_groups(rows)] == [[first, second]]
    assert conversation.history_of(rows)[-1]["content"] == "Use a sugar roll."  # the new one
    conversation.choose_answer(actor=sue, conversation_id=talk_id, message_id=first)
    rows = conversation.messages_of(actor=sue, conversation_id=talk_id)
    assert [m.role for m in rows] == ["user", "assistant", conversation.ALTERNATIVE_ROLE]
    assert [m["content"] for m in conversation.history_of(rows)] == [
        "About mites?", "Check monthly.",
    ]  # fmt: skip
    with pytest.raises(NotFound):
        conversation.choose_answer(actor=sam, conversation_id=talk_id, message_id=first)
    with pytest.raises(NotFound):
        conversation.choose_answer(actor=sue, conversation_id=talk_id, message_id=rows[0].id or 0)


def test_a_failed_answer_is_stored_where_the_answer_would_be_and_retry_replaces_it(
    people: tuple[account.UserPublic, account.UserPublic],
) -> None:
    sue, _ = people
    talk_id = conversation.start_conversation(actor=sue, slug="bee-mentor").id or 0
    conversation.add_message(actor=sue, conversation_id=talk_id, role="user", content="Mites?")
    conversation.record_failure(
        actor=sue, conversation_id=talk_id, reason="The model server is not reachable."
    )
    rows = conversation.messages_of(actor=sue, conversation_id=talk_id)  # what a reload shows
    assert [(m.role, m.content) for m in rows][-1] == (
        conversation.FAILED_ROLE, "The model server is not reachable.",
    )  # fmt: skip
    assert conversation.history_of(rows) == [{"role": "user", "content": "Mites?"}]
    conversation.set_aside_last_answer(actor=sue, conversation_id=talk_id)  # Retry
    assert [m.role for m in conversation.messages_of(actor=sue, conversation_id=talk_id)] == [
        "user"
    ]


def test_an_edited_question_drops_what_followed_it(
    people: tuple[account.UserPublic, account.UserPublic],
) -> None:
    sue, sam = people
    talk_id = conversation.start_conversation(actor=sue, slug="bee-mentor").id or 0
    ids = [
        conversation.add_message(actor=sue, conversation_id=talk_id, role=r, content=t).id or 0
        for r, t in [("user", "Mites?"), ("assistant", "Monthly."), ("user", "And wax moth?"),
                     ("assistant", "Freeze frames.")]
    ]  # fmt: skip
    edited = conversation.edit_question(
        actor=sue, conversation_id=talk_id, message_id=ids[0], content=" Varroa mites? "
    )
    assert edited.content == "Varroa mites?"
    rows = conversation.messages_of(actor=sue, conversation_id=talk_id)
    assert [(m.role, m.content) for m in rows] == [("user", "Varroa mites?")]
    with pytest.raises(InvalidInput):
        conversation.edit_question(actor=sue, conversation_id=talk_id, message_id=ids[0],
                                   content="  ")  # fmt: skip
    with pytest.raises(NotFound):
        conversation.edit_question(actor=sam, conversation_id=talk_id, message_id=ids[0],
                                   content="Mine")  # fmt: skip
