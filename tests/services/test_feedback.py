"""Feedback: subscribers rate answers in their own conversations; the creator reads them."""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from gptstudio.db import session_scope
from gptstudio.errors import InvalidInput, NotFound, PermissionDenied
from gptstudio.models import Message, Role
from gptstudio.services import account, conversation, feedback
from tests.factories import publish_assistant

PASSWORD = "correct horse battery"


@dataclass
class World:
    cy: account.UserPublic
    cleo: account.UserPublic
    sue: account.UserPublic
    sam: account.UserPublic
    assistant_id: int
    question_id: int
    answer_id: int


@pytest.fixture
def world(db: str) -> World:
    account.register(email="root@example.com", password=PASSWORD)
    cy = account.register(email="cy@example.com", password=PASSWORD, role=Role.creator)
    cleo = account.register(email="cleo@example.com", password=PASSWORD, role=Role.creator)
    bees = publish_assistant(cy)
    sue = account.register(email="sue@example.com", password=PASSWORD)
    sam = account.register(email="sam@example.com", password=PASSWORD)
    talk = conversation.start_conversation(actor=sue, slug="bee-mentor")
    question = conversation.add_message(
        actor=sue, conversation_id=talk.id or 0, role="user", content="When do mites peak?"
    )
    answer = conversation.add_message(
        actor=sue, conversation_id=talk.id or 0, role="assistant", content="In late summer."
    )
    return World(cy, cleo, sue, sam, bees.assistant_id, question.id or 0, answer.id or 0)


def _stored(message_id: int) -> Message:
    with session_scope() as session:
        message = session.get(Message, message_id)
        assert message is not None
        return message


def test_rate_and_comment_reaches_the_creator(world: World) -> None:
    feedback.set_feedback(
        actor=world.sue, message_id=world.answer_id, value=-1, comment="  Too vague.  "
    )
    stored = _stored(world.answer_id)
    assert (stored.feedback, stored.feedback_comment) == (-1, "Too vague.")
    (rated,) = feedback.feedback_for(actor=world.cy, assistant_id=world.assistant_id)
    assert (rated.question, rated.answer, rated.value, rated.comment, rated.version) == (
        "When do mites peak?", "In late summer.", -1, "Too vague.", 1,
    )  # fmt: skip
    feedback.set_feedback(actor=world.sue, message_id=world.answer_id, value=1)
    assert feedback.feedback_for(actor=world.cy, assistant_id=world.assistant_id)[0].value == 1
    feedback.set_feedback(actor=world.sue, message_id=world.answer_id, value=0, comment="x")
    stored = _stored(world.answer_id)
    assert (stored.feedback, stored.feedback_comment) == (0, "")
    assert feedback.feedback_for(actor=world.cy, assistant_id=world.assistant_id) == []


def test_another_users_message_is_not_found(world: World) -> None:
    for actor in (world.sam, world.cy, world.cleo):
        with pytest.raises(NotFound, match="no such message"):
            feedback.set_feedback(actor=actor, message_id=world.answer_id, value=-1, comment="!")
    with pytest.raises(NotFound):
        feedback.set_feedback(actor=world.sue, message_id=999_999, value=1)
    assert _stored(world.answer_id).feedback == 0


def test_only_answers_with_valid_values_and_short_comments(world: World) -> None:
    with pytest.raises(InvalidInput, match="Only the assistant's answers"):
        feedback.set_feedback(actor=world.sue, message_id=world.question_id, value=1)
    for value in (2, -2, True):
        with pytest.raises(InvalidInput, match="1 \\(thumbs up\\), -1"):
            feedback.set_feedback(actor=world.sue, message_id=world.answer_id, value=value)
    with pytest.raises(InvalidInput, match="at most 2000 characters"):
        feedback.set_feedback(
            actor=world.sue, message_id=world.answer_id, value=-1, comment="x" * 2001
        )
    feedback.set_feedback(actor=world.sue, message_id=world.answer_id, value=-1, comment="y" * 2000)
    assert len(_stored(world.answer_id).feedback_comment) == 2000


def test_only_the_owner_reads_feedback(world: World) -> None:
    feedback.set_feedback(actor=world.sue, message_id=world.answer_id, value=1)
    with pytest.raises(NotFound):
        feedback.feedback_for(actor=world.cleo, assistant_id=world.assistant_id)
    with pytest.raises(PermissionDenied):
        feedback.feedback_for(actor=world.sue, assistant_id=world.assistant_id)
    assert len(feedback.feedback_for(actor=world.cy, assistant_id=world.assistant_id)) == 1
