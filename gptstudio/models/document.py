"""Documents a creator uploads: files or fetched web pages, with their parsing status."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Column
from sqlmodel import Field, SQLModel

from gptstudio.db import utcnow


class Document(SQLModel, table=True):
    __tablename__ = "documents"

    id: int | None = Field(default=None, primary_key=True)
    owner_id: int = Field(foreign_key="users.id", index=True, ondelete="CASCADE")
    assistant_id: int = Field(foreign_key="assistants.id", index=True, ondelete="CASCADE")
    filename: str = Field(max_length=400)
    source_url: str = Field(default="", max_length=2000)
    content_type: str = Field(default="", max_length=120)
    size_bytes: int = 0
    sha256: str = Field(default="", max_length=64, index=True)
    storage_path: str = Field(default="", max_length=1000)
    # The key the stored file is encrypted with (services/file_crypto); "": stored plain, before
    # encryption existed (read as is until `python -m gptstudio.rotate_keys` encrypts it).
    encryption_key_id: str = Field(default="", max_length=40, index=True)
    # uploaded → parsing → parsed | failed (with ``error`` saying what to fix)
    status: str = Field(default="uploaded", max_length=20, index=True)
    error: str = Field(default="", max_length=2000)
    report: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    # CSV/JSON: the creator's column choice ({"text": …} or {"instruction": …, "response": …,
    # "context": …, "system": …}); None: guessed from the column names.
    columns: dict[str, str] | None = Field(default=None, sa_column=Column(JSON))
    created_at: datetime = Field(default_factory=utcnow)
    # Written every second or so by the worker parsing it: a ``parsing`` document whose heartbeat
    # is older than GPTSTUDIO_JOB_STALE_SECONDS lost its worker (gptstudio.jobs.lease).
    heartbeat_at: datetime | None = None
    attempts: int = Field(default=0, description="how many times a worker has taken this parse")
