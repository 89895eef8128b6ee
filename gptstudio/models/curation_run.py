"""Curation runs: one pass of the curation pipeline over an assistant's parsed documents."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Column
from sqlmodel import Field, SQLModel

from gptstudio.db import utcnow


class CurationRun(SQLModel, table=True):
    """One pass of the curation pipeline over an assistant's parsed documents (a queue task)."""

    __tablename__ = "curation_runs"

    id: int | None = Field(default=None, primary_key=True)
    assistant_id: int = Field(foreign_key="assistants.id", index=True, ondelete="CASCADE")
    status: str = Field(default="queued", max_length=20)  # queued, running, done, failed
    options: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    progress: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    counts: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    result_path: str = Field(default="", max_length=1000)
    error: str = Field(default="", max_length=2000)
    created_at: datetime = Field(default_factory=utcnow)
    finished_at: datetime | None = None
    # Written every second or so by the worker running it: a ``running`` run whose heartbeat is
    # older than GPTSTUDIO_JOB_STALE_SECONDS lost its worker (gptstudio.jobs.outbox).
    heartbeat_at: datetime | None = None
    attempts: int = Field(default=0, description="how many times a worker has taken the run")
