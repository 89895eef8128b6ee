"""Stripe webhook events, each processed exactly once."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Column, Text
from sqlmodel import Field, SQLModel

from gptstudio.db import utcnow


class StripeEvent(SQLModel, table=True):
    """One received webhook event, keyed by Stripe's event id: a replay finds its row and stops."""

    __tablename__ = "stripe_events"

    id: str = Field(primary_key=True, max_length=120, description="Stripe's evt_… id")
    type: str = Field(max_length=120, index=True)
    created: int = Field(description="Stripe's event timestamp (seconds)")
    status: str = Field(default="received", max_length=20, description="processed/ignored/failed")
    error: str = Field(default="", sa_column=Column(Text, nullable=False, server_default=""))
    payload: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    received_at: datetime = Field(default_factory=utcnow)
    processed_at: datetime | None = None
