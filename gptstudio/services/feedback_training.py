"""Train with feedback: the next dataset version with the accepted corrections, and a fine-tune
on it (:mod:`gptstudio.services.feedback` keeps the review items)."""

from __future__ import annotations

from sqlmodel import col, select

from gptstudio.db import session_scope
from gptstudio.errors import InvalidInput
from gptstudio.models import Dataset, FeedbackItem, TrainingJob
from gptstudio.models.user import UserPublic
from gptstudio.services import dataset, training
from gptstudio.services.assistant import owned_assistant


def train_with_feedback(*, actor: UserPublic, assistant_id: int) -> TrainingJob:
    """Snapshot a new dataset version with the accepted corrections and start a fine-tune on
    it (the base model and preset of the assistant's latest job, if any)."""
    with session_scope() as session:
        owned_assistant(session, actor=actor, assistant_id=assistant_id)
        waiting = session.exec(
            select(FeedbackItem.id).where(
                FeedbackItem.assistant_id == assistant_id,
                FeedbackItem.status == "accepted",
                col(FeedbackItem.dataset_version).is_(None),
            )
        ).first()
        last = session.exec(
            select(TrainingJob)
            .where(TrainingJob.assistant_id == assistant_id)
            .order_by(col(TrainingJob.id).desc())
        ).first()
        base = last.base_model if last is not None else ""
    if waiting is None:
        raise InvalidInput(
            "No accepted correction is waiting: accept at least one review item first."
        )
    version: Dataset = dataset.snapshot(actor=actor, assistant_id=assistant_id)
    return training.start_job(actor=actor, dataset_id=version.id or 0, base_model=base)
