"""A creator's per-example decisions on curated examples and duplicates."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import JSON, Column, UniqueConstraint
from sqlmodel import Field, SQLModel

from gptstudio.db import utcnow


class ExampleOverride(SQLModel, table=True):
    """A creator's decision on one example or duplicate: keep it, drop it, or edit its text."""

    __tablename__ = "example_overrides"
    __table_args__ = (UniqueConstraint("assistant_id", "example_id"),)

    id: int | None = Field(default=None, primary_key=True)
    assistant_id: int = Field(foreign_key="assistants.id", index=True, ondelete="CASCADE")
    example_id: str = Field(max_length=80)
    action: str = Field(max_length=10)  # keep, drop, edit
    messages: list[dict[str, str]] | None = Field(default=None, sa_column=Column(JSON))
    created_at: datetime = Field(default_factory=utcnow)
