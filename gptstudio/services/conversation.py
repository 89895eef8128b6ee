"""Conversations: a user's chats with one assistant, their messages, and what the model sees.

Start, list (with search), read, rename, delete and export conversations; edit a question and
ask again; keep every answer to a question when it is regenerated and choose which one counts;
record a failed answer where the answer would be. Every lookup goes through the owner (another
user's conversation is "not found"). :func:`history_of` is the rule for what of a conversation is
sent to the model: the user turns and chosen answers after the last context reset (a stored
marker message, :func:`reset_context`), at most :data:`HISTORY_MESSAGES` of them. The answer
itself comes from :mod:`.completion`.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any, Protocol

from sqlmodel import Session, col, select

from gptstudio.db import session_scope, utcnow
from gptstudio.errors import InvalidInput, NotFound
from gptstudio.models import Assistant, Conversation, Message
from gptstudio.models.user import UserPublic
from gptstudio.services import completion, rollout

HISTORY_MESSAGES = 20  # the engine trims further to its context window
# A stored marker: messages before it are no longer sent to the model ("Reset context").
CONTEXT_RESET_ROLE = "context-reset"
CONTEXT_RESET_TEXT = "Context reset: the assistant no longer sees the messages above."
# A stored marker where an answer failed (its text says why), so that a reload shows it, with
# Retry, instead of a question left unanswered; the next answer replaces it.
FAILED_ROLE = "failed"
# An earlier answer to the same question, kept when the answer is regenerated (the page switches
# between them); the model sees only the one whose role is "assistant".
ALTERNATIVE_ROLE = "alternative"


class Turn(Protocol):
    """A message as the history rule reads it (a stored :class:`Message`, or the page's copy)."""

    @property
    def role(self) -> str: ...

    @property
    def content(self) -> str: ...


def history_of(turns: Sequence[Turn]) -> list[dict[str, str]]:
    """What the model sees: the turns after the last context reset, newest last."""
    start = 0
    for index, turn in enumerate(turns):
        if turn.role == CONTEXT_RESET_ROLE:
            start = index + 1
    history = [
        {"role": t.role, "content": t.content}
        for t in turns[start:]
        if t.role in ("user", "assistant") and t.content.strip()
    ]
    return history[-HISTORY_MESSAGES:]


def start_conversation(*, actor: UserPublic, slug: str) -> Conversation:
    model = completion.served(slug=slug)
    with session_scope() as session:
        conversation = Conversation(
            user_id=actor.id, assistant_id=model.assistant_id, model_version_id=model.version_id
        )
        session.add(conversation)
        session.flush()
        # A/B rollout: the conversation keeps the version it drew for its whole life.
        conversation.model_version_id = rollout.version_for(
            assistant_id=model.assistant_id, conversation_key=f"conversation:{conversation.id}"
        )
        return conversation


def _own(session: Session, actor: UserPublic, conversation_id: int) -> Conversation:
    conversation = session.get(Conversation, conversation_id)
    if conversation is None or conversation.user_id != actor.id:
        raise NotFound("There is no such conversation.")
    return conversation


def served_for_conversation(*, actor: UserPublic, conversation_id: int) -> completion.Served:
    """The version a conversation is pinned to (A/B rollout is sticky per conversation)."""
    with session_scope() as session:
        conversation = _own(session, actor, conversation_id)
        assistant = session.get(Assistant, conversation.assistant_id)
        slug, pinned = (assistant.slug if assistant else ""), conversation.model_version_id
    return completion.served(slug=slug, version_id=pinned)


def list_conversations(*, actor: UserPublic, slug: str, search: str = "") -> list[Conversation]:
    """The actor's conversations with one assistant, newest first; ``search`` matches titles and
    message text."""
    with session_scope() as session:
        assistant = session.exec(select(Assistant).where(Assistant.slug == slug)).first()
        if assistant is None:
            raise NotFound("There is no such assistant.")
        query = select(Conversation).where(
            Conversation.user_id == actor.id, Conversation.assistant_id == assistant.id
        )
        if search.strip():
            pattern = f"%{search.strip()}%"
            hits = select(Message.conversation_id).where(col(Message.content).ilike(pattern))
            query = query.where(
                col(Conversation.title).ilike(pattern) | col(Conversation.id).in_(hits)
            )
        return list(session.exec(query.order_by(col(Conversation.updated_at).desc())).all())


def messages_of(*, actor: UserPublic, conversation_id: int) -> list[Message]:
    with session_scope() as session:
        _own(session, actor, conversation_id)
        return list(
            session.exec(
                select(Message)
                .where(Message.conversation_id == conversation_id)
                .order_by(col(Message.id))
            ).all()
        )


def add_message(
    *,
    actor: UserPublic,
    conversation_id: int,
    role: str,
    content: str,
    usage: dict[str, int] | None = None,
    citations: list[dict[str, Any]] | None = None,
    latency_ms: int | None = None,
    model_version_id: int | None = None,
) -> Message:
    with session_scope() as session:
        conversation = _own(session, actor, conversation_id)
        message = Message(
            conversation_id=conversation_id, role=role, content=content,
            model_version_id=model_version_id or conversation.model_version_id,
            input_tokens=int((usage or {}).get("prompt_tokens", 0)),
            output_tokens=int((usage or {}).get("completion_tokens", 0)),
            citations=citations or [], latency_ms=latency_ms,
        )  # fmt: skip
        session.add(message)
        if role == "user" and conversation.title == "New conversation":
            conversation.title = content.strip().splitlines()[0][:80]
        conversation.updated_at = utcnow()
        session.flush()
        return message


def set_aside_last_answer(*, actor: UserPublic, conversation_id: int) -> None:
    """Before an answer is asked again (regenerate, retry): a failed answer's marker goes, and
    the last answer is kept as an alternative the page can switch back to."""
    with session_scope() as session:
        _own(session, actor, conversation_id)
        last = _last_message(session, conversation_id)
        if last is not None and last.role == FAILED_ROLE:
            session.delete(last)
        elif last is not None and last.role == "assistant":
            last.role = ALTERNATIVE_ROLE


def record_failure(*, actor: UserPublic, conversation_id: int, reason: str) -> Message:
    """Where the answer would be: why it failed (shown with Retry after a reload)."""
    return add_message(
        actor=actor, conversation_id=conversation_id, role=FAILED_ROLE, content=reason
    )


def choose_answer(*, actor: UserPublic, conversation_id: int, message_id: int) -> None:
    """Make ``message_id``, one of the answers to a question, the one the conversation goes on
    from; the answer chosen before becomes an alternative again."""
    with session_scope() as session:
        _own(session, actor, conversation_id)
        rows = list(
            session.exec(
                select(Message)
                .where(Message.conversation_id == conversation_id)
                .order_by(col(Message.id))
            ).all()
        )
        group = next((g for g in answer_groups(rows) if message_id in {m.id for m in g}), None)
        if group is None:
            raise NotFound("There is no such answer in this conversation.")
        for message in group:
            message.role = "assistant" if message.id == message_id else ALTERNATIVE_ROLE


def answer_groups(rows: Sequence[Message]) -> list[list[Message]]:
    """The answers to each question (each run of answers and alternatives between two other
    messages), in order."""
    groups: list[list[Message]] = []
    current: list[Message] = []
    for row in rows:
        if row.role in ("assistant", ALTERNATIVE_ROLE):
            current.append(row)
            continue
        if current:
            groups.append(current)
        current = []
    if current:
        groups.append(current)
    return groups


def edit_question(
    *, actor: UserPublic, conversation_id: int, message_id: int, content: str
) -> Message:
    """A question asked again in other words: its text changes and everything after it goes
    (the answers to it and the turns that followed); the caller asks for the new answer."""
    content = content.strip()
    if not content:
        raise InvalidInput("Write the question before sending it.")
    with session_scope() as session:
        _own(session, actor, conversation_id)
        message = session.get(Message, message_id)
        if message is None or message.conversation_id != conversation_id or message.role != "user":
            raise NotFound("There is no such question in this conversation.")
        later = session.exec(
            select(Message).where(
                Message.conversation_id == conversation_id, col(Message.id) > message_id
            )
        ).all()
        for row in later:
            session.delete(row)
        message.content = content
        session.flush()
        return message


def _last_message(session: Session, conversation_id: int) -> Message | None:
    return session.exec(
        select(Message)
        .where(Message.conversation_id == conversation_id)
        .order_by(col(Message.id).desc())
    ).first()


def rename_conversation(*, actor: UserPublic, conversation_id: int, title: str) -> None:
    title = " ".join(title.split())[:200]
    if not title:
        raise InvalidInput("A conversation needs a title.")
    with session_scope() as session:
        _own(session, actor, conversation_id).title = title


def delete_conversation(*, actor: UserPublic, conversation_id: int) -> None:
    with session_scope() as session:
        session.delete(_own(session, actor, conversation_id))


def export_conversation(*, actor: UserPublic, conversation_id: int, fmt: str) -> str:
    """The conversation as Markdown or JSON."""
    with session_scope() as session:
        conversation = _own(session, actor, conversation_id)
        title = conversation.title
    rows = messages_of(actor=actor, conversation_id=conversation_id)
    if fmt == "json":
        return json.dumps(
            {"title": title, "messages": [{"role": m.role, "content": m.content,
                                           "created_at": m.created_at.isoformat()} for m in rows]},
            ensure_ascii=False, indent=2,
        )  # fmt: skip
    if fmt != "markdown":
        raise InvalidInput("Export as markdown or json.")
    parts = [f"# {title}\n"]
    parts += [f"**{m.role.capitalize()}:**\n\n{m.content}\n" for m in rows]
    return "\n".join(parts)


def reset_context(*, actor: UserPublic, conversation_id: int) -> Message | None:
    """Keep the conversation, but start the model's context afresh: a marker message after which
    :func:`history_of` begins. ``None`` (nothing stored) when the conversation is empty or
    already ends with a reset."""
    with session_scope() as session:
        _own(session, actor, conversation_id)
        last = _last_message(session, conversation_id)
        if last is None or last.role == CONTEXT_RESET_ROLE:
            return None
    return add_message(
        actor=actor, conversation_id=conversation_id, role=CONTEXT_RESET_ROLE,
        content=CONTEXT_RESET_TEXT,
    )  # fmt: skip
