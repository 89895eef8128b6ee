"""Billing's periodic job bodies: dunning's end-of-grace e-mails and metered usage to Stripe.

- **Dunning** (:func:`notify_grace_ended`, hourly): entitlements keep a past-due subscriber's plan
  for ``billing_grace_days`` and then fall back to the free tier; this mails when that happens,
  once, recorded in ``stripe_events`` under a ``gptstudio:`` id.
- **Metering** (:func:`report_usage`, every five minutes): usage beyond a plan's included tokens
  is sent to Stripe as meter events whose identifier derives from the UsageEvent id (Stripe drops
  duplicates); ``UsageEvent.reported_at`` marks the events accounted for.

Both are safe to run twice. They register as job bodies (:func:`gptstudio.jobs.tasks.body`); the
task definitions that schedule them never import this module.
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta

import stripe
from sqlalchemy.exc import IntegrityError
from sqlmodel import col, select

from gptstudio.db import session_scope, utcnow
from gptstudio.jobs.tasks import body
from gptstudio.mail import MailNotSent, send_mail
from gptstudio.models import Assistant, Plan, StripeEvent, Subscription, UsageEvent, User
from gptstudio.services import audit, creator_tier
from gptstudio.services.stripe_sync import meter_event_name
from gptstudio.services.subscription import LIVE_STATUSES, pricing_url
from gptstudio.settings import get_settings
from gptstudio.stripe_client import idempotency_key, stripe_client, stripe_enabled

log = logging.getLogger(__name__)


# ---------------------------------------------------------------------------- dunning


@body("notify_grace_ended")
def notify_grace_ended(*, now: datetime | None = None) -> int:
    """Mail each subscriber whose grace period just ended (once per failed-payment episode)."""
    now = now or utcnow()
    grace = timedelta(days=get_settings().billing_grace_days)
    with session_scope() as session:
        due = session.exec(
            select(Subscription.id).where(
                Subscription.status == "past_due",
                col(Subscription.past_due_since).is_not(None),
                col(Subscription.past_due_since) < now - grace,
            )
        ).all()
    sent = 0
    for subscription_id in due:
        try:
            sent += _grace_mail(subscription_id or 0, now)
        except MailNotSent as error:  # rolled back with its marker: tried again next hour
            log.warning("grace e-mail for subscription %s not sent: %s", subscription_id, error)
    return sent


def _grace_mail(subscription_id: int, now: datetime) -> bool:
    try:
        with session_scope() as session:
            row = session.get(Subscription, subscription_id)
            if row is None or row.status != "past_due" or row.past_due_since is None:
                return False
            marker = f"gptstudio:grace_ended:{row.id}:{int(row.past_due_since.timestamp())}"
            if session.get(StripeEvent, marker) is not None:
                return False
            session.add(
                StripeEvent(
                    id=marker, type="gptstudio.grace_ended", created=int(now.timestamp()),
                    status="processed", processed_at=now,
                    payload={"subscription_id": row.id, "user_id": row.user_id},
                )
            )  # fmt: skip
            session.flush()
            user = session.get(User, row.user_id)
            assistant = session.get(Assistant, row.assistant_id)
            audit.record(
                session, action="billing.grace_ended", actor_id=row.user_id,
                target=f"subscription:{row.id}",
            )  # fmt: skip
            if user is not None:
                name = assistant.name if assistant else "your assistant"
                send_mail(
                    to=user.email,
                    subject=f"Your {name} plan is now reduced to the free tier",
                    body=(
                        f"Hello {user.display_name},\n\nWe could not collect your payment for "
                        f"{name} within {get_settings().billing_grace_days} days, so your "
                        f"{row.tier} plan is paused and your access is reduced to the free "
                        f"tier.\nUpdate your payment method to restore it: "
                        f"{pricing_url(row.assistant_id)}\n"
                    ),
                )
            return True
    except IntegrityError:
        return False


# ---------------------------------------------------------------------------- metering


def _step_back(start: datetime, interval: str) -> datetime:
    if interval == "year":
        return start.replace(year=start.year - 1)
    month = start.month - 1 or 12
    year = start.year - (1 if start.month == 1 else 0)
    day = min(start.day, 28)
    return start.replace(year=year, month=month, day=day)


@body("report_usage")
def report_usage(*, now: datetime | None = None) -> int:
    """Report unreported overage to Stripe as meter events; returns how many were sent.

    For each paid subscription whose plan bills overage, the period's usage events are summed in
    order; the part of each event beyond the included tokens is its overage. The meter event's
    ``identifier`` (and the request's idempotency key) is derived from the UsageEvent id, so a
    retry after a crash never bills twice; ``reported_at`` is set once Stripe accepted it.
    Without a Stripe key there is nothing to report to: 0.
    """
    if not stripe_enabled():
        return 0
    now = now or utcnow()
    with session_scope() as session:
        rows = session.exec(
            select(Subscription, Plan)
            .join(Plan, col(Plan.id) == col(Subscription.plan_id))
            .where(
                col(Subscription.stripe_subscription_id) != "",
                col(Subscription.status).in_(LIVE_STATUSES),
                Plan.overage_cents_per_1k_tokens > 0,
                col(Plan.included_tokens).is_not(None),
            )
        ).all()
        targets = [
            (s.id or 0, s.user_id, s.assistant_id, s.stripe_customer_id, s.interval,
             s.current_period_start, p.included_tokens or 0)
            for s, p in rows
        ]  # fmt: skip
    sent = 0
    for _sid, user_id, assistant_id, customer, interval, start, included in targets:
        if not customer:
            continue
        start = start or now.replace(day=1, hour=0, minute=0, second=0, microsecond=0)
        sent += _report_for(user_id, assistant_id, customer, interval, start, included, now)
    return sent


def _report_for(
    user_id: int, assistant_id: int, customer: str, interval: str, start: datetime,
    included: int, now: datetime,
) -> int:  # fmt: skip
    periods = [(start, now + timedelta(days=1))]
    previous = _step_back(start, interval)
    periods.append((previous, start))
    sent = 0
    for begin, end in periods:
        with session_scope() as session:
            events = session.exec(
                select(UsageEvent)
                .where(
                    UsageEvent.user_id == user_id,
                    UsageEvent.assistant_id == assistant_id,
                    UsageEvent.created_at >= begin,
                    UsageEvent.created_at < end,
                )
                .order_by(col(UsageEvent.created_at), col(UsageEvent.id))
            ).all()
            plan: list[tuple[int, int, datetime]] = []
            used = 0
            for event in events:
                tokens = event.input_tokens + event.output_tokens
                over = max(0, min(tokens, used + tokens - included))
                used += tokens
                if event.reported_at is None:
                    plan.append((event.id or 0, over, event.created_at))
        for event_id, over, at in plan:
            sent += _report_one(event_id, over, at, customer, assistant_id)
    # Events older than the previous period can no longer be metered (Stripe takes 35 days).
    with session_scope() as session:
        stale = session.exec(
            select(UsageEvent).where(
                UsageEvent.user_id == user_id, UsageEvent.assistant_id == assistant_id,
                col(UsageEvent.reported_at).is_(None), UsageEvent.created_at < previous,
            )
        ).all()  # fmt: skip
        for event in stale:
            log.warning("usage event %s is too old to meter; marked as accounted", event.id)
            event.reported_at = now
            session.add(event)
    return sent


def _report_one(event_id: int, over: int, at: datetime, customer: str, assistant_id: int) -> int:
    if over > 0:
        try:
            stripe_client().v1.billing.meter_events.create(
                {
                    "event_name": meter_event_name(assistant_id),
                    "identifier": idempotency_key("usage", event_id, at),
                    "timestamp": int(at.timestamp()),
                    "payload": {"stripe_customer_id": customer, "value": str(over)},
                },
                {"idempotency_key": idempotency_key("usage", event_id, at)},
            )
        except stripe.StripeError as error:
            log.warning("stripe: usage event %s not reported (will retry): %s", event_id, error)
            return 0
    with session_scope() as session:
        event = session.get(UsageEvent, event_id)
        if event is not None and event.reported_at is None:
            event.reported_at = utcnow()
            session.add(event)
    return 1 if over > 0 else 0


@body("report_compute")
def report_compute() -> int:
    """Report creators' training overage that Stripe has not accepted yet (see
    :func:`gptstudio.services.creator_tier.report_compute_overage`)."""
    return creator_tier.report_compute_overage()
