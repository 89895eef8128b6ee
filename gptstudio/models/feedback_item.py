"""Review items: answers subscribers rated down and questions left unanswered, for the creator to
correct; accepted corrections enter the next dataset version as examples "from feedback"."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Column, Text, UniqueConstraint
from sqlmodel import Field, SQLModel

from gptstudio.db import utcnow


class FeedbackItem(SQLModel, table=True):
    """One review item. Texts are stored with personal data scrubbed (as documents are); the
    subscriber who asked is never stored here."""

    __tablename__ = "feedback_items"
    __table_args__ = (UniqueConstraint("assistant_id", "message_id"),)

    id: int | None = Field(default=None, primary_key=True)
    assistant_id: int = Field(foreign_key="assistants.id", index=True, ondelete="CASCADE")
    message_id: int | None = Field(
        default=None, foreign_key="messages.id", ondelete="SET NULL",
        description="the rated answer, or the failed answer's marker",
    )  # fmt: skip
    model_version_id: int | None = Field(
        default=None, foreign_key="model_versions.id", ondelete="SET NULL"
    )
    kind: str = Field(max_length=20, description="thumbs_down or unanswered")
    question: str = Field(sa_column=Column(Text, nullable=False))
    answer: str = Field(default="", sa_column=Column(Text, nullable=False))
    comment: str = Field(default="", max_length=2000)
    correction: str = Field(default="", sa_column=Column(Text, nullable=False))
    status: str = Field(default="open", max_length=20, description="open, accepted, dismissed")
    dataset_version: int | None = Field(default=None, description="first version it entered")
    created_at: datetime = Field(default_factory=utcnow)
    decided_at: datetime | None = None
