"""Training jobs: one fine-tune of a base model on a dataset version, run by a queue worker."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Column
from sqlmodel import Field, SQLModel

from gptstudio.db import utcnow


class TrainingJob(SQLModel, table=True):
    __tablename__ = "training_jobs"

    id: int | None = Field(default=None, primary_key=True)
    assistant_id: int = Field(foreign_key="assistants.id", index=True, ondelete="CASCADE")
    dataset_id: int = Field(foreign_key="datasets.id", index=True)
    base_model: str = Field(max_length=400)
    # queued → running → succeeded | failed | cancelled
    status: str = Field(default="queued", max_length=20, index=True)
    priority: int = 0
    config: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    progress: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    # One point per logged step: {"step", "loss", "eval_loss", "learning_rate"} for the chart.
    history: list[dict[str, Any]] = Field(
        default_factory=list, sa_column=Column(JSON, nullable=False)
    )
    error: str = Field(default="", max_length=4000)
    queue_task_id: str = Field(default="", max_length=64)
    cancel_requested: bool = False
    output_dir: str = Field(default="", max_length=1000)
    worker: str = Field(default="", max_length=200, description="host:pid running it")
    heartbeat_at: datetime | None = None
    created_at: datetime = Field(default_factory=utcnow)
    started_at: datetime | None = None
    finished_at: datetime | None = None
