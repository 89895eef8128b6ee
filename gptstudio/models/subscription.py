"""Subscriptions: a user's paid (or free) access to one assistant, mirrored from Stripe."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import UniqueConstraint
from sqlmodel import Field, SQLModel

from gptstudio.db import utcnow


class Subscription(SQLModel, table=True):
    __tablename__ = "subscriptions"
    __table_args__ = (UniqueConstraint("user_id", "assistant_id"),)

    id: int | None = Field(default=None, primary_key=True)
    user_id: int = Field(foreign_key="users.id", index=True, ondelete="CASCADE")
    assistant_id: int = Field(foreign_key="assistants.id", index=True, ondelete="CASCADE")
    tier: str = Field(default="free", max_length=60)
    status: str = Field(default="active", max_length=30)
    stripe_customer_id: str = Field(default="", max_length=120)
    stripe_subscription_id: str = Field(default="", max_length=120, index=True)
    current_period_end: datetime | None = None
    created_at: datetime = Field(default_factory=utcnow)
    updated_at: datetime = Field(default_factory=utcnow)
