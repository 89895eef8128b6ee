"""Feedback on answers, and feedback that improves the next version.

A subscriber rates an answer in their own conversation (thumbs up or down, with an optional
comment); the assistant's creator reads the rated answers. Answers rated down (with the comment)
and questions left unanswered (the answer failed) become **review items** on the assistant's
data page (:func:`review_items`); their texts are scrubbed of personal data as documents are
(the categories of the assistant's latest curation run). The creator writes or accepts a
corrected answer (:func:`accept`) or dismisses the item. Accepted items enter the next dataset
version as examples of kind ``feedback`` (provenance "from feedback": ``document_id``
``feedback:<item id>``), in the split of any example they near-duplicate
(:func:`gptstudio.curation.splits.place_additions`), else in train;
:func:`gptstudio.services.feedback_training.train_with_feedback` takes that version and starts a
fine-tune on it, and the rollout page compares the new version's thumbs-down rate and latency
with the old one's while an A/B split runs."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlmodel import Session, col, select

from gptstudio.curation.pii import PiiCategory, PiiOptions, scrub_text
from gptstudio.db import session_scope, utcnow
from gptstudio.errors import InvalidInput, NotFound
from gptstudio.models import (
    Conversation,
    CurationRun,
    FeedbackItem,
    Message,
    ModelVersion,
)
from gptstudio.models.user import UserPublic
from gptstudio.services.assistant import owned_assistant, owner_check

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


# --- review items: what subscribers rated down and what went unanswered --------------------------

THUMBS_DOWN = "thumbs_down"
UNANSWERED = "unanswered"
FAILED_ROLE = "failed"  # gptstudio.services.conversation.FAILED_ROLE: an answer that failed
MAX_CORRECTION_CHARS = 8000
FEEDBACK_SOURCE = "feedback:"  # the provenance of examples from feedback: feedback:<item id>


@dataclass(frozen=True)
class ReviewItem:
    """One item as the creator reviews it (texts scrubbed; never who asked)."""

    id: int
    kind: str
    status: str
    question: str
    answer: str
    comment: str
    correction: str
    version: int | None
    dataset_version: int | None
    created_at: datetime


def _pii_options(session: Session, assistant_id: int) -> PiiOptions:
    """The categories the assistant's documents are scrubbed of (its latest curation run's)."""
    run = session.exec(
        select(CurationRun)
        .where(CurationRun.assistant_id == assistant_id)
        .order_by(col(CurationRun.id).desc())
    ).first()
    names = (run.options or {}).get("pii_categories") if run is not None else None
    if names is None:
        return PiiOptions()
    return PiiOptions(categories=frozenset(PiiCategory(n) for n in names if n in set(PiiCategory)))


def scrub(text: str, options: PiiOptions | None = None) -> str:
    """``text`` with personal data replaced by placeholders, as documents are."""
    return scrub_text(text=text, options=options).text


def _question_before(session: Session, message: Message) -> str:
    return (
        session.exec(
            select(Message.content)
            .where(
                Message.conversation_id == message.conversation_id,
                Message.role == "user",
                col(Message.id) < (message.id or 0),
            )
            .order_by(col(Message.id).desc())
        ).first()
        or ""
    )


def _collect(session: Session, assistant_id: int) -> None:
    """Bring the review items up to date: new thumbs-down answers and failed answers become
    open items; an open thumbs-down item whose rating was taken back goes away, and its comment
    follows the subscriber's latest."""
    options = _pii_options(session, assistant_id)
    known = {
        item.message_id: item
        for item in session.exec(
            select(FeedbackItem).where(FeedbackItem.assistant_id == assistant_id)
        ).all()
    }
    rows = session.exec(
        select(Message)
        .join(Conversation, col(Conversation.id) == col(Message.conversation_id))
        .where(
            Conversation.assistant_id == assistant_id,
            ((col(Message.role) == "assistant") & (col(Message.feedback) == -1))
            | (col(Message.role) == FAILED_ROLE),
        )
        .order_by(col(Message.id))
    ).all()
    current = set()
    for message in rows:
        current.add(message.id)
        comment = scrub(message.feedback_comment, options)
        item = known.get(message.id)
        if item is not None:
            if item.status == "open" and item.comment != comment:
                item.comment = comment
                session.add(item)
            continue
        question = _question_before(session, message).strip()
        if not question:
            continue
        unanswered = message.role == FAILED_ROLE
        session.add(
            FeedbackItem(
                assistant_id=assistant_id, message_id=message.id,
                model_version_id=message.model_version_id,
                kind=UNANSWERED if unanswered else THUMBS_DOWN,
                question=scrub(question, options),
                answer="" if unanswered else scrub(message.content, options), comment=comment,
            )
        )  # fmt: skip
    for message_id, item in known.items():
        if item.status == "open" and message_id not in current:
            session.delete(item)  # the thumbs-down taken back, or the failed answer retried
    session.flush()


def _item(session: Session, row: FeedbackItem) -> ReviewItem:
    version = session.get(ModelVersion, row.model_version_id) if row.model_version_id else None
    return ReviewItem(
        id=row.id or 0, kind=row.kind, status=row.status, question=row.question,
        answer=row.answer, comment=row.comment, correction=row.correction,
        version=version.version if version else None, dataset_version=row.dataset_version,
        created_at=row.created_at,
    )  # fmt: skip


def review_items(
    *, actor: UserPublic, assistant_id: int, status: str = "open", limit: int = MAX_LIST
) -> list[ReviewItem]:
    """The review items of one of the actor's assistants with this status (``open``,
    ``accepted``, ``dismissed``; ``all``), newest first."""
    if status not in ("open", "accepted", "dismissed", "all"):
        raise InvalidInput("Show open, accepted, dismissed or all review items.")
    with session_scope() as session:
        owned_assistant(session, actor=actor, assistant_id=assistant_id)
        _collect(session, assistant_id)
        query = select(FeedbackItem).where(FeedbackItem.assistant_id == assistant_id)
        if status != "all":
            query = query.where(FeedbackItem.status == status)
        rows = session.exec(
            query.order_by(col(FeedbackItem.id).desc()).limit(min(max(limit, 1), MAX_LIST))
        ).all()
        return [_item(session, row) for row in rows]


def _owned_item(session: Session, actor: UserPublic, item_id: int) -> FeedbackItem:
    row = session.get(FeedbackItem, item_id) if 0 < item_id < 2**31 else None
    if row is None:
        raise NotFound("There is no such review item.")
    owner_check(session, actor=actor, assistant_id=row.assistant_id, what="review item")
    return row


def accept(*, actor: UserPublic, item_id: int, correction: str) -> ReviewItem:
    """Accept a corrected answer for an item (the creator's own text, or the answer as it was):
    it enters the next dataset version. Scrubbed of personal data like the rest."""
    text = correction.strip()
    if not text:
        raise InvalidInput("Write the corrected answer before accepting it.")
    if len(text) > MAX_CORRECTION_CHARS:
        raise InvalidInput(
            f"A corrected answer can be at most {MAX_CORRECTION_CHARS} characters long "
            f"(this one has {len(text)})."
        )
    with session_scope() as session:
        row = _owned_item(session, actor, item_id)
        if row.dataset_version is not None:
            raise InvalidInput(
                f"This item is already in dataset version {row.dataset_version}; a version "
                "never changes. Edit the example on the data page for the next one."
            )
        row.correction = scrub(text, _pii_options(session, row.assistant_id))
        row.status, row.decided_at = "accepted", utcnow()
        session.add(row)
        session.flush()
        return _item(session, row)


def dismiss(*, actor: UserPublic, item_id: int) -> ReviewItem:
    """Leave an item out of the training data (it stays listed under dismissed)."""
    return _decide(actor, item_id, "dismissed")


def reopen(*, actor: UserPublic, item_id: int) -> ReviewItem:
    """Back to open (undo an accept or a dismiss that no dataset version took yet)."""
    return _decide(actor, item_id, "open")


def _decide(actor: UserPublic, item_id: int, status: str) -> ReviewItem:
    """Set an item's status (its decision time with it; none when open again) while no dataset
    version has taken it."""
    with session_scope() as session:
        row = _owned_item(session, actor, item_id)
        if row.dataset_version is not None:
            raise InvalidInput(f"This item is already in dataset version {row.dataset_version}.")
        row.status, row.decided_at = status, None if status == "open" else utcnow()
        session.add(row)
        session.flush()
        return _item(session, row)


def accepted_examples(session: Session, assistant_id: int) -> list[dict[str, Any]]:
    """Every accepted item as a dataset example (chat format, kind ``feedback``)."""
    rows = session.exec(
        select(FeedbackItem)
        .where(FeedbackItem.assistant_id == assistant_id, FeedbackItem.status == "accepted")
        .order_by(col(FeedbackItem.id))
    ).all()
    return [
        {
            "id": f"feedback-{row.id}",
            "kind": "feedback",
            "messages": [
                {"role": "user", "content": row.question},
                {"role": "assistant", "content": row.correction},
            ],
            "source": {"document_id": f"{FEEDBACK_SOURCE}{row.id}"},
        }
        for row in rows
    ]


def mark_in_version(session: Session, assistant_id: int, version: int) -> int:
    """Record the dataset version that first took the accepted items; how many it took."""
    rows = session.exec(
        select(FeedbackItem).where(
            FeedbackItem.assistant_id == assistant_id,
            FeedbackItem.status == "accepted",
            col(FeedbackItem.dataset_version).is_(None),
        )
    ).all()
    for row in rows:
        row.dataset_version = version
        session.add(row)
    return len(rows)
