"""Plans: the tiers a creator sells for one assistant, mirrored to Stripe Products and Prices."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel
from sqlalchemy import UniqueConstraint
from sqlmodel import Field, SQLModel

from gptstudio.db import utcnow


class Plan(SQLModel, table=True):
    __tablename__ = "plans"
    __table_args__ = (UniqueConstraint("assistant_id", "key"),)

    id: int | None = Field(default=None, primary_key=True)
    assistant_id: int = Field(foreign_key="assistants.id", index=True, ondelete="CASCADE")
    key: str = Field(max_length=60, description="stable id within the assistant: free, pro, …")
    name: str = Field(max_length=120, description="shown to subscribers")
    position: int = Field(default=0, description="order on the pricing page, cheapest first")
    currency: str = Field(default="usd", max_length=3)
    monthly_price_cents: int = Field(default=0, ge=0)
    annual_price_cents: int = Field(default=0, ge=0)
    trial_days: int = Field(default=0, ge=0)
    included_tokens: int | None = Field(
        default=None, description="input + output tokens per billing period; None: unlimited"
    )
    requests_per_minute: int | None = Field(default=None, description="None: unlimited")
    all_versions: bool = Field(
        default=False, description="model access: every published version, not only the live one"
    )
    overage_cents_per_1k_tokens: int = Field(
        default=0, ge=0, description="0: usage beyond included_tokens is refused, not billed"
    )
    is_archived: bool = Field(default=False, index=True)
    stripe_product_id: str = Field(default="", max_length=120)
    stripe_monthly_price_id: str = Field(default="", max_length=120)
    stripe_annual_price_id: str = Field(default="", max_length=120)
    stripe_overage_price_id: str = Field(default="", max_length=120)
    created_at: datetime = Field(default_factory=utcnow)
    updated_at: datetime = Field(default_factory=utcnow)

    @property
    def is_free(self) -> bool:
        return self.monthly_price_cents == 0 and self.annual_price_cents == 0


class PlanPublic(BaseModel):
    id: int
    assistant_id: int
    key: str
    name: str
    position: int
    currency: str
    monthly_price_cents: int
    annual_price_cents: int
    trial_days: int
    included_tokens: int | None
    requests_per_minute: int | None
    all_versions: bool
    overage_cents_per_1k_tokens: int
    is_archived: bool
