"""Feedback on answers: a subscriber rates an answer in their own conversation (thumbs up or
down, with an optional comment); the assistant's creator reads the rated answers."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlmodel import col, select

from gptstudio.db import session_scope
from gptstudio.errors import InvalidInput, NotFound
from gptstudio.models import Conversation, Message, ModelVersion
from gptstudio.models.user import UserPublic
from gptstudio.services.assistant import owned_assistant

MAX_COMMENT_CHARS = 2000
MAX_LIST = 200
VALUES = (-1, 0, 1)


@dataclass(frozen=True)
class Rated:
    """One rated answer, as the creator sees it (never who asked)."""

    message_id: int
    created_at: datetime
    question: str
    answer: str
    version_id: int | None
    version: int | None
    value: int
    comment: str


def set_feedback(*, actor: UserPublic, message_id: int, value: int, comment: str = "") -> Message:
    """Rate an answer in one of the actor's own conversations: 1 up, -1 down, 0 clears the
    rating and its comment. Another user's message is not found."""
    if isinstance(value, bool) or value not in VALUES:
        raise InvalidInput("Feedback is 1 (thumbs up), -1 (thumbs down) or 0 (none).")
    comment = comment.strip()
    if len(comment) > MAX_COMMENT_CHARS:
        raise InvalidInput(
            f"A comment can be at most {MAX_COMMENT_CHARS} characters long "
            f"(this one has {len(comment)})."
        )
    with session_scope() as session:
        message = session.get(Message, message_id)
        conversation = session.get(Conversation, message.conversation_id) if message else None
        if message is None or conversation is None or conversation.user_id != actor.id:
            raise NotFound("There is no such message.")
        if message.role != "assistant":
            raise InvalidInput("Only the assistant's answers can be rated.")
        message.feedback = value
        message.feedback_comment = comment if value else ""
        session.flush()
        return message


def feedback_for(*, actor: UserPublic, assistant_id: int, limit: int = 50) -> list[Rated]:
    """The newest rated answers of one of the actor's assistants, with the question each one
    answered (owner only)."""
    with session_scope() as session:
        owned_assistant(session, actor=actor, assistant_id=assistant_id)
        rows = session.exec(
            select(Message, ModelVersion.version)
            .join(Conversation, col(Conversation.id) == col(Message.conversation_id))
            .join(
                ModelVersion,
                col(ModelVersion.id) == col(Message.model_version_id),
                isouter=True,
            )
            .where(
                Conversation.assistant_id == assistant_id,
                Message.role == "assistant",
                col(Message.feedback) != 0,
            )
            .order_by(col(Message.id).desc())
            .limit(min(max(limit, 1), MAX_LIST))
        ).all()
        rated = []
        for message, version in rows:
            question = session.exec(
                select(Message.content)
                .where(
                    Message.conversation_id == message.conversation_id,
                    Message.role == "user",
                    col(Message.id) < (message.id or 0),
                )
                .order_by(col(Message.id).desc())
            ).first()
            rated.append(
                Rated(
                    message_id=message.id or 0,
                    created_at=message.created_at,
                    question=question or "",
                    answer=message.content,
                    version_id=message.model_version_id,
                    version=version,
                    value=message.feedback,
                    comment=message.feedback_comment,
                )
            )
        return rated
