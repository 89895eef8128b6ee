"""The platform's own tiers for creators (free, individual, professional, enterprise): what an
admin sells to creators, a creator's subscription to one of them, and the training compute each
job used (metered against the tier's included GPU-hours, overage reported to Stripe)."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel
from sqlmodel import Field, SQLModel

from gptstudio.db import utcnow


class CreatorTier(SQLModel, table=True):
    """One tier of the installation, defined by an admin; a paid one is a Stripe Product with a
    monthly Price and, when it bills overage, a metered Price per GPU-hour."""

    __tablename__ = "creator_tiers"

    id: int | None = Field(default=None, primary_key=True)
    key: str = Field(max_length=20, unique=True, description="a users.tier value: free, …")
    name: str = Field(max_length=120)
    position: int = Field(default=0, description="order on the tier page, cheapest first")
    currency: str = Field(default="usd", max_length=3)
    monthly_price_cents: int = Field(default=0, ge=0)
    included_gpu_hours: float | None = Field(
        default=None, description="training compute per calendar month; None: unlimited"
    )
    overage_cents_per_gpu_hour: int = Field(
        default=0, ge=0, description="0: a job beyond the included compute is refused"
    )
    storage_mb: int | None = Field(default=None, description="documents; None: unlimited")
    max_assistants: int | None = Field(default=None, description="None: unlimited")
    max_concurrent_jobs: int | None = Field(default=None, description="None: unlimited")
    queue_priority: int = Field(default=0, description="higher trains first")
    is_archived: bool = Field(default=False)
    stripe_product_id: str = Field(default="", max_length=120)
    stripe_monthly_price_id: str = Field(default="", max_length=120)
    stripe_overage_price_id: str = Field(default="", max_length=120)
    created_at: datetime = Field(default_factory=utcnow)
    updated_at: datetime = Field(default_factory=utcnow)

    @property
    def is_free(self) -> bool:
        return self.monthly_price_cents == 0


class CreatorTierPublic(BaseModel):
    id: int
    key: str
    name: str
    position: int
    currency: str
    monthly_price_cents: int
    included_gpu_hours: float | None
    overage_cents_per_gpu_hour: int
    storage_mb: int | None
    max_assistants: int | None
    max_concurrent_jobs: int | None
    queue_priority: int
    is_archived: bool
    stripe_monthly_price_id: str


class CreatorSubscription(SQLModel, table=True):
    """A creator's paid subscription to a tier, mirrored from Stripe webhooks (like
    ``Subscription``); ``users.tier`` follows it."""

    __tablename__ = "creator_subscriptions"

    id: int | None = Field(default=None, primary_key=True)
    user_id: int = Field(foreign_key="users.id", unique=True, ondelete="CASCADE")
    tier: str = Field(default="free", max_length=20)
    status: str = Field(default="active", max_length=30, description="Stripe's status")
    stripe_customer_id: str = Field(default="", max_length=120)
    stripe_subscription_id: str = Field(default="", max_length=120, index=True)
    stripe_price_id: str = Field(default="", max_length=120)
    current_period_start: datetime | None = None
    current_period_end: datetime | None = None
    cancel_at_period_end: bool = False
    past_due_since: datetime | None = None
    canceled_at: datetime | None = None
    last_event_created: int = Field(default=0, description="Stripe `created` of the last event")
    created_at: datetime = Field(default_factory=utcnow)
    updated_at: datetime = Field(default_factory=utcnow)


class ComputeUsage(SQLModel, table=True):
    """The compute of one run of a training job (a resumed job has several): wall seconds ×
    devices, and the part beyond the creator's included GPU-hours that month."""

    __tablename__ = "compute_usage"

    id: int | None = Field(default=None, primary_key=True)
    user_id: int = Field(foreign_key="users.id", index=True, ondelete="CASCADE")
    training_job_id: int | None = Field(
        default=None, foreign_key="training_jobs.id", index=True, ondelete="SET NULL"
    )
    tier: str = Field(default="free", max_length=20, description="the creator's tier then")
    devices: int = Field(default=1, ge=1)
    seconds: float = Field(default=0.0, ge=0, description="wall time of the run")
    device_seconds: float = Field(default=0.0, ge=0, description="seconds × devices")
    overage_seconds: float = Field(default=0.0, ge=0, description="beyond the included compute")
    tokens: int = Field(default=0, ge=0, description="training tokens of a finished run")
    created_at: datetime = Field(default_factory=utcnow, index=True)
    reported_at: datetime | None = Field(default=None, description="overage accepted by Stripe")
