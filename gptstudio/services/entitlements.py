"""Entitlements: may this user, now, use this assistant, and how much.

One function, :func:`entitlement`, answers from the local subscription state only (webhooks keep
it current; a Stripe call never sits on the request path). Quotas and rate limits
(:mod:`gptstudio.services.quota`) enforce what it returns, for the web UI, the widget and the API.

Rules:
- An assistant's owner and admins are unlimited (creators try their own assistant).
- An assistant without plans is open: everyone signed in (and widget visitors) may use it freely.
- A subscription that is active or trialing gives its plan; past_due keeps it for
  ``billing_grace_days`` after the first failed payment, then (like canceled/unpaid) the user falls
  back to the assistant's free plan; without a free plan access needs a paid plan (402).
- Anonymous widget visitors get the free plan.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlmodel import Session, col, select

from gptstudio import cache
from gptstudio.db import session_scope, utcnow
from gptstudio.errors import NotFound, PaymentRequired
from gptstudio.models import Assistant, Plan, Subscription, User
from gptstudio.models.user import Role
from gptstudio.settings import get_settings

PAID_STATUSES = {"active", "trialing"}


@dataclass(frozen=True)
class Entitlement:
    assistant_id: int
    allowed: bool
    reason: str
    plan_id: int | None = None
    plan_key: str = "open"
    plan_name: str = "Open access"
    tokens_per_period: int | None = None
    requests_per_minute: int | None = None
    period_start: datetime | None = None
    period_end: datetime | None = None
    overage_billed: bool = False
    all_versions: bool = True
    subscription_id: int | None = None
    status: str = "active"
    valid_until: datetime | None = None
    """When this answer may change with time alone (the period or a grace window ends)."""

    @property
    def upgrade_url(self) -> str:
        return f"{get_settings().base_url}/pricing?assistant={self.assistant_id}"

    def require(self) -> Entitlement:
        """Itself when allowed; otherwise the 402 to show, with the upgrade path."""
        if not self.allowed:
            raise PaymentRequired(self.reason, upgrade_url=self.upgrade_url)
        return self


def month_window(now: datetime) -> tuple[datetime, datetime]:
    """The calendar month (UTC) around ``now``: the free tier's quota period."""
    start = now.replace(day=1, hour=0, minute=0, second=0, microsecond=0)
    end = (start + timedelta(days=32)).replace(day=1)
    return start, end


def offered_plans(session: Session, assistant_id: int) -> list[Plan]:
    """The assistant's tiers on sale (not archived), in pricing-page order."""
    return list(
        session.exec(
            select(Plan)
            .where(Plan.assistant_id == assistant_id, col(Plan.is_archived).is_(False))
            .order_by(col(Plan.position), col(Plan.id))
        ).all()
    )


def _from_plan(
    plan: Plan, *, assistant_id: int, start: datetime, end: datetime, reason: str,
    subscription: Subscription | None = None, valid_until: datetime | None = None,
) -> Entitlement:  # fmt: skip
    return Entitlement(
        assistant_id=assistant_id, allowed=True, reason=reason, plan_id=plan.id,
        plan_key=plan.key, plan_name=plan.name, tokens_per_period=plan.included_tokens,
        requests_per_minute=plan.requests_per_minute, period_start=start, period_end=end,
        overage_billed=bool(
            subscription is not None and subscription.stripe_subscription_id
            and plan.overage_cents_per_1k_tokens > 0
        ),
        all_versions=plan.all_versions,
        subscription_id=subscription.id if subscription else None,
        status=subscription.status if subscription else "active",
        valid_until=min(end, valid_until or end),
    )  # fmt: skip


def _fallback(assistant_id: int, plans: list[Plan], now: datetime, why: str) -> Entitlement:
    plan = next((p for p in plans if p.is_free), None)
    if plan is None:
        return Entitlement(
            assistant_id=assistant_id, allowed=False, plan_key="none", plan_name="No plan",
            reason=why or "This assistant needs a subscription. Choose a plan to continue.",
        )  # fmt: skip
    start, end = month_window(now)
    return _from_plan(plan, assistant_id=assistant_id, start=start, end=end, reason=why)


def entitlement_in(
    session: Session, *, user_id: int | None, assistant_id: int, now: datetime | None = None
) -> Entitlement:
    """:func:`entitlement` inside an open session (for callers that already hold one)."""
    now = now or utcnow()
    # Three small queries on the request path: who asks (owner or admin?), the tiers on sale,
    # and the asker's subscription.
    found = session.exec(
        select(Assistant.owner_id, User.role)
        .select_from(Assistant)
        .outerjoin(User, col(User.id) == (user_id or 0))
        .where(Assistant.id == assistant_id)
    ).first()
    if found is None:
        raise NotFound("There is no such assistant.")
    owner_id, role = found
    if user_id is not None and (user_id == owner_id or role == Role.admin.value):
        return Entitlement(assistant_id=assistant_id, allowed=True, reason="owner")
    plans = offered_plans(session, assistant_id)
    if not plans:
        return Entitlement(assistant_id=assistant_id, allowed=True, reason="no plans")
    if user_id is None:
        return _fallback(assistant_id, plans, now, "")
    subscription = session.exec(
        select(Subscription).where(
            Subscription.user_id == user_id, Subscription.assistant_id == assistant_id
        )
    ).first()
    if subscription is None or subscription.plan_id is None:
        return _fallback(assistant_id, plans, now, "")
    # An archived tier still serves the subscribers who bought it.
    plan = next((p for p in plans if p.id == subscription.plan_id), None) or session.get(
        Plan, subscription.plan_id
    )
    if plan is None:
        return _fallback(assistant_id, plans, now, "")
    grace = timedelta(days=get_settings().billing_grace_days)
    in_grace = (
        subscription.status == "past_due"
        and subscription.past_due_since is not None
        and now - subscription.past_due_since <= grace
    )
    if subscription.status not in PAID_STATUSES and not in_grace:
        failed = "Your last payment failed; update your payment method to restore your plan."
        why = {"past_due": failed, "unpaid": failed, "canceled": "Your subscription has ended."}
        why_now = why.get(subscription.status, "Your subscription is not active.")
        return _fallback(assistant_id, plans, now, why_now)
    if plan.is_free:
        start, end = month_window(now)
    else:
        start = subscription.current_period_start or month_window(now)[0]
        end = subscription.current_period_end or month_window(now)[1]
    grace_end = subscription.past_due_since + grace if subscription.past_due_since else None
    return _from_plan(
        plan, assistant_id=assistant_id, start=start, end=end,
        reason="grace period" if in_grace else "subscription", subscription=subscription,
        valid_until=grace_end if in_grace else None,
    )  # fmt: skip


_cached = cache.memo("entitlements")


def entitlement(*, user_id: int | None, assistant_id: int) -> Entitlement:
    """What ``user_id`` (``None``: an anonymous widget visitor) may do with the assistant now."""

    def load() -> Entitlement:
        with session_scope() as session:
            return entitlement_in(session, user_id=user_id, assistant_id=assistant_id)

    return _cached.get((user_id, assistant_id), load, until=lambda e: e.valid_until)


def cached_entitlement(*, user_id: int | None, assistant_id: int) -> Entitlement | None:
    """:func:`entitlement` from the cache alone (no I/O: safe on the event loop); ``None`` when
    it is not cached."""
    found = _cached.cached((user_id, assistant_id))
    return None if found is cache.MISSING else found
