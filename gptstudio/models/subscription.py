"""Subscriptions: a user's paid (or free) access to one assistant, mirrored from Stripe.

The row is the local truth entitlements read on every request (never Stripe). Webhooks move it;
``last_event_created`` makes them order-safe: an event older than the one last applied is ignored.
"""

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
    plan_id: int | None = Field(default=None, foreign_key="plans.id", index=True)
    tier: str = Field(default="free", max_length=60, description="the plan key, kept for display")
    status: str = Field(
        default="active",
        max_length=30,
        description="Stripe's: trialing, active, past_due, unpaid, canceled, incomplete, …",
    )
    interval: str = Field(default="month", max_length=10, description="month or year")
    stripe_customer_id: str = Field(default="", max_length=120)
    stripe_subscription_id: str = Field(default="", max_length=120, index=True)
    stripe_price_id: str = Field(default="", max_length=120)
    current_period_start: datetime | None = None
    current_period_end: datetime | None = None
    trial_end: datetime | None = None
    cancel_at_period_end: bool = False
    past_due_since: datetime | None = Field(
        default=None, description="first failed payment; after the grace period: free tier"
    )
    canceled_at: datetime | None = Field(default=None, description="when it became canceled")
    last_event_created: int = Field(default=0, description="Stripe `created` of the last event")
    created_at: datetime = Field(default_factory=utcnow)
    updated_at: datetime = Field(default_factory=utcnow)
