"""Conversations between a user and an assistant, and their messages."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Column, Text
from sqlmodel import Field, SQLModel

from gptstudio.db import utcnow


class Conversation(SQLModel, table=True):
    __tablename__ = "conversations"

    id: int | None = Field(default=None, primary_key=True)
    user_id: int = Field(foreign_key="users.id", index=True, ondelete="CASCADE")
    assistant_id: int = Field(foreign_key="assistants.id", index=True, ondelete="CASCADE")
    title: str = Field(default="New conversation", max_length=200)
    model_version_id: int | None = Field(default=None, foreign_key="model_versions.id")
    created_at: datetime = Field(default_factory=utcnow)
    updated_at: datetime = Field(default_factory=utcnow)


class Message(SQLModel, table=True):
    __tablename__ = "messages"

    id: int | None = Field(default=None, primary_key=True)
    conversation_id: int = Field(foreign_key="conversations.id", index=True, ondelete="CASCADE")
    role: str = Field(max_length=20, description="system, user or assistant")
    content: str = Field(sa_column=Column(Text, nullable=False))
    model_version_id: int | None = Field(default=None, foreign_key="model_versions.id")
    input_tokens: int = 0
    output_tokens: int = 0
    # Answers: the passages cited ([{n, document_id, filename, page, text}]), time to answer,
    # and the subscriber's feedback (1 thumbs up, -1 down, 0 none) for the creator.
    citations: list[Any] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))
    latency_ms: int | None = None
    feedback: int = 0
    feedback_comment: str = Field(default="", max_length=2000)
    created_at: datetime = Field(default_factory=utcnow)
