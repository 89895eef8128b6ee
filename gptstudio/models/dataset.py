"""Datasets: immutable, versioned training-set snapshots built from an assistant's documents."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Column, UniqueConstraint
from sqlmodel import Field, SQLModel

from gptstudio.db import utcnow


class Dataset(SQLModel, table=True):
    __tablename__ = "datasets"
    __table_args__ = (UniqueConstraint("assistant_id", "version"),)

    id: int | None = Field(default=None, primary_key=True)
    assistant_id: int = Field(foreign_key="assistants.id", index=True, ondelete="CASCADE")
    curation_run_id: int | None = Field(default=None, foreign_key="curation_runs.id")
    version: int = 1
    content_hash: str = Field(default="", max_length=64)
    status: str = Field(default="draft", max_length=20)
    params: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    counts: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    storage_path: str = Field(default="", max_length=1000)
    created_at: datetime = Field(default_factory=utcnow)
