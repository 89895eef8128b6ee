"""Model versions: a trained adapter on a base model, with its evaluation, that can be published."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Column, UniqueConstraint
from sqlmodel import Field, SQLModel

from gptstudio.db import utcnow


class ModelVersion(SQLModel, table=True):
    __tablename__ = "model_versions"
    __table_args__ = (UniqueConstraint("assistant_id", "version"),)

    id: int | None = Field(default=None, primary_key=True)
    assistant_id: int = Field(foreign_key="assistants.id", index=True, ondelete="CASCADE")
    training_job_id: int | None = Field(default=None, foreign_key="training_jobs.id")
    dataset_id: int | None = Field(default=None, foreign_key="datasets.id")
    version: int = 1
    base_model: str = Field(max_length=400)
    adapter_path: str = Field(default="", max_length=1000)
    status: str = Field(default="draft", max_length=20)
    # The evaluation: base vs tuned perplexity, the knowledge-gain gate, QA scores, samples.
    metrics: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    report: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    gate_override_reason: str = Field(default="", max_length=2000)
    export_path: str = Field(default="", max_length=1000)
    # The export bundle's build: {"state": queued|running|done|failed, "step", "fraction",
    # "error", "bytes"}; the training page shows it while the worker builds the bundle.
    export_progress: dict[str, Any] = Field(
        default_factory=dict, sa_column=Column(JSON, nullable=False, server_default="{}")
    )
    created_at: datetime = Field(default_factory=utcnow)
    published_at: datetime | None = None
