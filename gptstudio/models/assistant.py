"""Assistants: a creator's expert, the thing subscribers chat with and pay for."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel
from sqlalchemy import JSON, Column
from sqlmodel import Field, SQLModel

from gptstudio.db import utcnow


class Assistant(SQLModel, table=True):
    __tablename__ = "assistants"

    id: int | None = Field(default=None, primary_key=True)
    owner_id: int = Field(foreign_key="users.id", index=True, ondelete="CASCADE")
    name: str = Field(max_length=120)
    slug: str = Field(max_length=140, unique=True, index=True)
    description: str = Field(default="", max_length=2000)
    system_prompt: str = Field(default="", max_length=8000)
    is_published: bool = Field(default=False, index=True)
    # No foreign key: model_versions already points here, and a cycle would need ALTER on SQLite.
    current_model_version_id: int | None = Field(default=None, index=True)
    # Versioned rollout: a candidate version gets `candidate_percent` of new conversations
    # (sticky per conversation); rollback restores `previous_model_version_id` in one click.
    candidate_model_version_id: int | None = None
    candidate_percent: int = Field(default=0, ge=0, le=100)
    previous_model_version_id: int | None = None
    # Retrieval: the creator's curated chunks, embedded with MiniLM, cited in answers.
    rag_enabled: bool = False
    rag_top_k: int = Field(default=4, ge=1, le=20)
    # A citation opens the scrubbed passage in context; the original upload (before PII
    # scrubbing) only for the owner, or for every subscriber when the creator turns this on.
    rag_originals_for_subscribers: bool = False
    # The chat's opening: a greeting and a few questions to start with (page and widget).
    welcome_message: str = Field(default="", max_length=2000)
    conversation_starters: list[Any] = Field(
        default_factory=list, sa_column=Column(JSON, nullable=False)
    )
    # Embeddable widget: publishable key (public), HMAC secret (encrypted), allowed origins.
    widget_enabled: bool = False
    widget_key: str = Field(default="", max_length=80, index=True)
    widget_secret: str = Field(default="", max_length=400, description="encrypted")
    widget_origins: list[Any] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))
    # The widget's look (colour, title, greeting, position, launcher): services/widget.WidgetLook.
    widget_look: dict[str, Any] = Field(
        default_factory=dict, sa_column=Column(JSON, nullable=False, server_default="{}")
    )
    created_at: datetime = Field(default_factory=utcnow)
    updated_at: datetime = Field(default_factory=utcnow)


class AssistantPublic(BaseModel):
    id: int
    owner_id: int
    name: str
    slug: str
    description: str
    is_published: bool
    created_at: datetime
