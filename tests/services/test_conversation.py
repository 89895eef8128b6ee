"""Conversations: only their owner sees them; search, rename, export, delete; parameter checks."""

from __future__ import annotations

import json

import pytest

from gptstudio.errors import InvalidInput, NotFound
from gptstudio.models import Role
from gptstudio.services import account, chat
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
    talk = chat.start_conversation(actor=sue, slug="bee-mentor")
    chat.add_message(actor=sue, conversation_id=talk.id or 0, role="user", content="About mites?")
    chat.add_message(
        actor=sue, conversation_id=talk.id or 0, role="assistant", content="Check monthly."
    )
    assert [c.title for c in chat.list_conversations(actor=sue, slug="bee-mentor")] == [
        "About mites?"
    ]
    assert chat.list_conversations(actor=sue, slug="bee-mentor", search="monthly")
    assert not chat.list_conversations(actor=sue, slug="bee-mentor", search="honey")
    assert chat.list_conversations(actor=sam, slug="bee-mentor") == []
    for attempt in (
        lambda: chat.messages_of(actor=sam, conversation_id=talk.id or 0),
        lambda: chat.rename_conversation(actor=sam, conversation_id=talk.id or 0, title="x"),
        lambda: chat.delete_conversation(actor=sam, conversation_id=talk.id or 0),
        lambda: chat.add_message(actor=sam, conversation_id=talk.id or 0, role="user", content="x"),
        lambda: chat.export_conversation(actor=sam, conversation_id=talk.id or 0, fmt="json"),
    ):
        with pytest.raises(NotFound):
            attempt()
    chat.rename_conversation(actor=sue, conversation_id=talk.id or 0, title="  Mites  ")
    exported = json.loads(
        chat.export_conversation(actor=sue, conversation_id=talk.id or 0, fmt="json")
    )
    assert exported["title"] == "Mites" and len(exported["messages"]) == 2
    markdown = chat.export_conversation(actor=sue, conversation_id=talk.id or 0, fmt="markdown")
    assert markdown.startswith("# Mites") and "**Assistant:**" in markdown
    chat.delete_last_assistant_message(actor=sue, conversation_id=talk.id or 0)
    assert [m.role for m in chat.messages_of(actor=sue, conversation_id=talk.id or 0)] == ["user"]
    chat.delete_conversation(actor=sue, conversation_id=talk.id or 0)
    assert chat.list_conversations(actor=sue, slug="bee-mentor") == []


def test_unpublished_or_unknown_models_are_not_served(
    people: tuple[account.UserPublic, account.UserPublic],
) -> None:
    with pytest.raises(NotFound, match="does not exist or is not published"):
        chat.served(slug="nope")
    assert chat.served(slug="bee-mentor").adapter_name == "bee-mentor-v1"


@pytest.mark.parametrize(
    ("params", "messages", "message"),
    [
        (chat.Params(temperature=3), [{"role": "user", "content": "hi"}], "temperature"),
        (chat.Params(top_p=0), [{"role": "user", "content": "hi"}], "top_p"),
        (chat.Params(max_tokens=0), [{"role": "user", "content": "hi"}], "max_tokens"),
        (chat.Params(), [], "at least one message"),
        (chat.Params(), [{"role": "robot", "content": "hi"}], "role"),
        (chat.Params(), [{"role": "user", "content": "x" * 40_000}], "at most"),
    ],
)
def test_parameter_checks(
    params: chat.Params, messages: list[dict[str, str]], message: str
) -> None:
    with pytest.raises(InvalidInput, match=message):
        chat.check_messages(messages)
        params.check()
