"""OpenAI's fine-tuning API on GPT Studio: uploaded training files and the API's jobs.

An API job is an ordinary :class:`~gptstudio.models.training_job.TrainingJob` of one of its
owner's assistants (on a dataset version made from its files); this row holds what the OpenAI
protocol adds: the public ids, the files, the suffix and the ``ft:`` model name.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Column
from sqlmodel import Field, SQLModel

from gptstudio.db import utcnow


class FineTuningFile(SQLModel, table=True):
    """A chat-format JSONL file uploaded with purpose ``fine-tune`` (validated line by line)."""

    __tablename__ = "fine_tuning_files"

    id: int | None = Field(default=None, primary_key=True)
    public_id: str = Field(max_length=40, unique=True, description="file-…")
    owner_id: int = Field(foreign_key="users.id", index=True, ondelete="CASCADE")
    filename: str = Field(max_length=255)
    purpose: str = Field(default="fine-tune", max_length=32)
    bytes: int = 0
    examples: int = 0
    storage_path: str = Field(default="", max_length=1000)
    created_at: datetime = Field(default_factory=utcnow)


class FineTuningJob(SQLModel, table=True):
    """The OpenAI side of a training job started through ``/v1/fine_tuning/jobs``."""

    __tablename__ = "fine_tuning_jobs"

    id: int | None = Field(default=None, primary_key=True)
    public_id: str = Field(max_length=40, unique=True, description="ftjob-…")
    owner_id: int = Field(foreign_key="users.id", index=True, ondelete="CASCADE")
    assistant_id: int = Field(foreign_key="assistants.id", index=True, ondelete="CASCADE")
    training_job_id: int = Field(foreign_key="training_jobs.id", index=True, ondelete="CASCADE")
    model: str = Field(max_length=200, description="the base model as the caller named it")
    training_file: str = Field(max_length=40)
    validation_file: str = Field(default="", max_length=40)
    suffix: str = Field(default="", max_length=64)
    seed: int = 0
    hyperparameters: dict[str, Any] = Field(
        default_factory=dict, sa_column=Column(JSON, nullable=False)
    )
    meta: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    fine_tuned_model: str = Field(max_length=300, unique=True, description="ft:<base>:…")
    created_at: datetime = Field(default_factory=utcnow)
