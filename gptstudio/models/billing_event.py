"""Billing events and invoices: Stripe webhooks, each processed exactly once, and their money."""

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


class Invoice(SQLModel, table=True):
    """A paid, failed or refunded invoice of one subscription (revenue dashboards read these)."""

    __tablename__ = "invoices"

    id: int | None = Field(default=None, primary_key=True)
    stripe_invoice_id: str = Field(max_length=120, unique=True, index=True)
    user_id: int | None = Field(default=None, foreign_key="users.id", index=True)
    assistant_id: int | None = Field(default=None, foreign_key="assistants.id", index=True)
    subscription_id: int | None = Field(default=None, foreign_key="subscriptions.id")
    status: str = Field(default="paid", max_length=20, description="paid, payment_failed, …")
    currency: str = Field(default="usd", max_length=3)
    amount_due_cents: int = 0
    amount_paid_cents: int = 0
    amount_refunded_cents: int = 0
    period_start: datetime | None = None
    period_end: datetime | None = None
    hosted_invoice_url: str = Field(default="", max_length=1000)
    created_at: datetime = Field(default_factory=utcnow, index=True)
