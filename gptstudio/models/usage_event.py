"""Usage events: tokens spent by one chat request, the unit of metering and quotas."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Index, text
from sqlmodel import Field, SQLModel

from gptstudio.db import utcnow


class UsageEvent(SQLModel, table=True):
    __tablename__ = "usage_events"
    # One row per request: a second writer with the same request id fails instead of doubling.
    __table_args__ = (
        Index(
            "uq_usage_events_request_id", "request_id", unique=True,
            postgresql_where=text("request_id <> ''"), sqlite_where=text("request_id <> ''"),
        ),
    )  # fmt: skip

    id: int | None = Field(default=None, primary_key=True)
    user_id: int | None = Field(default=None, foreign_key="users.id", index=True)
    assistant_id: int = Field(foreign_key="assistants.id", index=True, ondelete="CASCADE")
    model_version_id: int | None = Field(default=None, foreign_key="model_versions.id")
    source: str = Field(default="ui", max_length=20, description="ui, widget or api")
    visitor_id: str = Field(default="", max_length=120, description="anonymous widget visitor")
    request_id: str = Field(default="", max_length=80, index=True, description="idempotency")
    input_tokens: int = 0
    output_tokens: int = 0
    created_at: datetime = Field(default_factory=utcnow, index=True)
    reported_at: datetime | None = Field(
        default=None, index=True, description="when reported to Stripe as overage (if billed)"
    )
