"""Invoices of subscriptions: paid, failed or refunded money (revenue dashboards read these)."""

from __future__ import annotations

from datetime import datetime

from sqlmodel import Field, SQLModel

from gptstudio.db import utcnow


class Invoice(SQLModel, table=True):
    """A paid, failed or refunded invoice of one subscription (revenue dashboards read these)."""

    __tablename__ = "invoices"

    id: int | None = Field(default=None, primary_key=True)
    stripe_invoice_id: str = Field(max_length=120, unique=True, index=True)
    user_id: int | None = Field(default=None, foreign_key="users.id", index=True)
    assistant_id: int | None = Field(default=None, foreign_key="assistants.id", index=True)
    subscription_id: int | None = Field(default=None, foreign_key="subscriptions.id", index=True)
    kind: str = Field(
        default="assistant", max_length=20, description="assistant, or creator_tier (platform's)"
    )
    application_fee_cents: int = Field(
        default=0, description="the platform's fee on a connected creator's invoice"
    )
    connected_account: str = Field(
        default="", max_length=120, description="the creator's Stripe account the charge went to"
    )
    status: str = Field(default="paid", max_length=20, description="paid, payment_failed, …")
    currency: str = Field(default="usd", max_length=3)
    amount_due_cents: int = 0
    amount_paid_cents: int = 0
    amount_refunded_cents: int = 0
    period_start: datetime | None = None
    period_end: datetime | None = None
    hosted_invoice_url: str = Field(default="", max_length=1000)
    created_at: datetime = Field(default_factory=utcnow, index=True)
