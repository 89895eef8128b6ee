"""Billing: a creator's plans, their Stripe mirror, checkout and portal, webhooks, and metering.

- **Plans** are edited by the assistant's owner (:func:`save_plan`, :func:`archive_plan`); a
  paid plan is mirrored to one Stripe Product with a monthly and an annual recurring Price and,
  when it bills overage, metered Prices on a per-assistant Billing Meter (:func:`sync_plan`).
  Stripe Prices are immutable, so a changed amount gets a new Price and the old one is
  deactivated (existing subscribers keep theirs: every Price carries ``gptstudio_plan_id``).
- **Checkout** (:func:`start_checkout`) opens a hosted Stripe Checkout Session in subscription
  mode (trial, promotion codes, the user/assistant/plan ids in its metadata); a free plan needs
  no checkout (:func:`subscribe_free`). **The Customer Portal** (:func:`portal_url`) handles
  upgrades and downgrades (with proration), cancellation at period end and payment methods.
- **Webhooks** (:func:`process_event`): each event is stored by its id in the same transaction as
  its effects, so a replay changes nothing; ``Subscription.last_event_created`` makes them
  order-safe. A failed payment starts dunning (past_due, e-mail); entitlements keep the plan for
  ``billing_grace_days`` and then fall back to the free tier (:func:`notify_grace_ended` mails
  when that happens, once, recorded in ``stripe_events`` under a ``gptstudio:`` id).
- **Metering** (:func:`report_usage`): usage beyond a plan's included tokens is sent to Stripe as
  meter events whose identifier derives from the UsageEvent id (Stripe drops duplicates);
  ``UsageEvent.reported_at`` marks the events accounted for.

Entitlements (:mod:`gptstudio.services.entitlements`) read only the local rows written here.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from functools import lru_cache
from typing import Any

import stripe
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, col, select

from gptstudio.db import session_scope, utcnow
from gptstudio.errors import DomainError, InvalidInput, NotFound
from gptstudio.mail import MailNotSent, send_mail
from gptstudio.models import Assistant, Invoice, Plan, StripeEvent, Subscription, UsageEvent, User
from gptstudio.models.plan import PlanPublic
from gptstudio.models.user import Role, UserPublic
from gptstudio.services import audit
from gptstudio.services.access import authorize
from gptstudio.services.assistant import owned_assistant
from gptstudio.services.entitlements import entitlement_in, offered_plans
from gptstudio.settings import get_settings

log = logging.getLogger(__name__)

LIVE_STATUSES = {"active", "trialing", "past_due"}
INTERVALS = {"month": "monthly", "year": "annual"}
KEY_PATTERN = re.compile(r"^[a-z0-9][a-z0-9_-]{0,59}$")
HANDLED_EVENTS = {
    "checkout.session.completed",
    "customer.subscription.created",
    "customer.subscription.updated",
    "customer.subscription.deleted",
    "invoice.paid",
    "invoice.payment_succeeded",
    "invoice.payment_failed",
    "charge.refunded",
}
NOT_CONFIGURED = (
    "Payments are not set up on this installation (no Stripe key: the administrator sets "
    "GPTSTUDIO_STRIPE_SECRET_KEY), so paid plans cannot be sold yet. Free plans work."
)


class BillingNotConfigured(DomainError):
    status_code = 503


class BillingUnavailable(DomainError):
    """Stripe refused a call or could not be reached; the message says what happened."""

    status_code = 502


class WebhookRejected(DomainError):
    status_code = 400


# ---------------------------------------------------------------------------- Stripe client


def stripe_enabled() -> bool:
    return bool(get_settings().stripe_secret_key.get_secret_value())


@lru_cache(maxsize=4)
def _client_for(key: str, api_base: str) -> stripe.StripeClient:
    if api_base:
        return stripe.StripeClient(
            key, base_addresses={"api": api_base.rstrip("/")}, max_network_retries=2
        )
    return stripe.StripeClient(key, max_network_retries=2)


def stripe_client() -> stripe.StripeClient:
    """The Stripe client for the configured key (and ``stripe_api_base``, e.g. localstripe)."""
    settings = get_settings()
    key = settings.stripe_secret_key.get_secret_value()
    if not key:
        raise BillingNotConfigured(NOT_CONFIGURED)
    return _client_for(key, settings.stripe_api_base)


def _stripe_failed(action: str, error: stripe.StripeError) -> BillingUnavailable:
    detail = error.user_message or str(error)
    log.warning("stripe: %s failed: %s", action, error)
    return BillingUnavailable(f"Stripe could not {action}: {detail}")


def _dict(obj: Any) -> dict[str, Any]:
    if isinstance(obj, stripe.StripeObject):
        return obj.to_dict()
    return dict(obj or {})


def _params(params: dict[str, Any]) -> Any:
    """Plain request parameters (Stripe validates them; its TypedDicts add nothing here)."""
    return params


def _key(kind: str, row_id: int | None, created: datetime) -> str:
    """An idempotency key unique to one row, even if a database reuses an id after a reset."""
    return f"gptstudio-{kind}-{row_id}-{int(created.timestamp())}"


def _ts(value: Any) -> datetime | None:
    return datetime.fromtimestamp(int(value), UTC) if isinstance(value, (int, float)) else None


def format_money(cents: int, currency: str) -> str:
    """``1234, "usd"`` → ``"12.34 USD"`` (every page and e-mail writes amounts so)."""
    return f"{cents / 100:,.2f} {currency.upper()}"


# ---------------------------------------------------------------------------- plans


@dataclass(frozen=True)
class PlanInput:
    """What a creator types for one tier (prices in cents)."""

    key: str
    name: str
    monthly_price_cents: int = 0
    annual_price_cents: int = 0
    trial_days: int = 0
    included_tokens: int | None = None
    requests_per_minute: int | None = None
    all_versions: bool = False
    overage_cents_per_1k_tokens: int = 0
    currency: str = "usd"
    position: int | None = None


@dataclass(frozen=True)
class PlanRow:
    plan: PlanPublic
    subscribers: int
    sync_status: str
    synced: bool


def _validate(data: PlanInput) -> PlanInput:
    key = data.key.strip().lower()
    name = " ".join(data.name.split())
    if not KEY_PATTERN.match(key):
        raise InvalidInput(
            "The plan key must be 1 to 60 lower-case letters, digits, dashes or underscores, "
            "starting with a letter or digit (e.g. free, pro, enterprise)."
        )
    if not 1 <= len(name) <= 120:
        raise InvalidInput("Give the plan a name of 1 to 120 characters.")
    currency = data.currency.strip().lower()
    if not re.fullmatch(r"[a-z]{3}", currency):
        raise InvalidInput("The currency must be a three-letter ISO code such as usd or eur.")
    for label, value, top in (
        ("monthly price", data.monthly_price_cents, 100_000_000),
        ("annual price", data.annual_price_cents, 1_000_000_000),
        ("overage price", data.overage_cents_per_1k_tokens, 100_000),
    ):
        if value < 0 or value > top:
            raise InvalidInput(f"The {label} must be between 0 and {format_money(top, currency)}.")
    if not 0 <= data.trial_days <= 730:
        raise InvalidInput("Trial days must be between 0 and 730.")
    for label, limit in (
        ("Included tokens", data.included_tokens),
        ("RPM", data.requests_per_minute),
    ):
        if limit is not None and limit <= 0:
            raise InvalidInput(f"{label} must be a positive number, or empty for unlimited.")
    free = data.monthly_price_cents == 0 and data.annual_price_cents == 0
    if data.overage_cents_per_1k_tokens and free:
        raise InvalidInput("Only a paid plan can bill overage; set a price or remove the overage.")
    if data.overage_cents_per_1k_tokens and data.included_tokens is None:
        raise InvalidInput(
            "Overage is billed beyond the included tokens: set included tokens per period."
        )
    if data.trial_days and free:
        raise InvalidInput("A free plan needs no trial; set the trial days to 0.")
    return PlanInput(
        key=key, name=name, monthly_price_cents=data.monthly_price_cents,
        annual_price_cents=data.annual_price_cents, trial_days=data.trial_days,
        included_tokens=data.included_tokens, requests_per_minute=data.requests_per_minute,
        all_versions=data.all_versions,
        overage_cents_per_1k_tokens=data.overage_cents_per_1k_tokens, currency=currency,
        position=data.position,
    )  # fmt: skip


def _public(plan: Plan) -> PlanPublic:
    return PlanPublic.model_validate(plan, from_attributes=True)


def sync_status(row: Plan) -> tuple[bool, str]:
    """(synced, what to show) for one plan."""
    if row.is_free:
        return True, "Free: no Stripe needed"
    if not stripe_enabled():
        return False, "Stripe is not configured: this paid tier cannot be sold yet"
    missing = [
        label
        for label, needed, have in (
            ("product", True, row.stripe_product_id),
            ("monthly price", row.monthly_price_cents > 0, row.stripe_monthly_price_id),
            ("annual price", row.annual_price_cents > 0, row.stripe_annual_price_id),
            ("overage price", row.overage_cents_per_1k_tokens > 0, row.stripe_overage_price_id),
        )
        if needed and not have
    ]
    if missing:
        return False, f"Not synced to Stripe (missing {', '.join(missing)}): save again to retry"
    return True, f"Synced to Stripe ({row.stripe_product_id})"


def _subscriber_count(session: Session, plan_id: int) -> int:
    rows = session.exec(
        select(Subscription.id).where(
            Subscription.plan_id == plan_id, col(Subscription.status).in_(LIVE_STATUSES)
        )
    ).all()
    return len(rows)


def list_plans(*, actor: UserPublic, assistant_id: int) -> list[PlanRow]:
    """Every plan of the actor's assistant (archived ones last), with Stripe sync status."""
    with session_scope() as session:
        owned_assistant(session, actor=actor, assistant_id=assistant_id)
        plans = session.exec(
            select(Plan)
            .where(Plan.assistant_id == assistant_id)
            .order_by(col(Plan.is_archived), col(Plan.position), col(Plan.id))
        ).all()
        rows = []
        for plan in plans:
            synced, status = sync_status(plan)
            rows.append(
                PlanRow(
                    plan=_public(plan),
                    subscribers=_subscriber_count(session, plan.id or 0),
                    sync_status=status,
                    synced=synced,
                )
            )
        return rows


def save_plan(
    *, actor: UserPublic, assistant_id: int, data: PlanInput, plan_id: int | None = None
) -> PlanRow:
    """Create (``plan_id`` None) or update a plan, then mirror it to Stripe when it is paid.

    The plan is saved even when Stripe fails; the error then says the sync must be retried.
    """
    data = _validate(data)
    with session_scope() as session:
        assistant = owned_assistant(session, actor=actor, assistant_id=assistant_id)
        taken = session.exec(
            select(Plan).where(Plan.assistant_id == assistant.id, Plan.key == data.key)
        ).first()
        if plan_id is None:
            if taken is not None:
                raise InvalidInput(f"This assistant already has a plan with the key “{data.key}”.")
            count = len(
                session.exec(select(Plan.id).where(Plan.assistant_id == assistant.id)).all()
            )
            plan = Plan(
                assistant_id=assistant.id or 0, key=data.key, name=data.name, position=count
            )
        else:
            found = session.get(Plan, plan_id)
            if found is None or found.assistant_id != assistant.id:
                raise NotFound("There is no such plan.")
            plan = found
            if taken is not None and taken.id != plan.id:
                raise InvalidInput(f"This assistant already has a plan with the key “{data.key}”.")
            if plan.currency != data.currency and plan.stripe_product_id:
                # Stripe Prices cannot change currency: new ones are made below.
                plan.stripe_monthly_price_id = plan.stripe_annual_price_id = ""
                plan.stripe_overage_price_id = ""
        for name in (
            "key", "name", "monthly_price_cents", "annual_price_cents", "trial_days",
            "included_tokens", "requests_per_minute", "all_versions",
            "overage_cents_per_1k_tokens", "currency",
        ):  # fmt: skip
            setattr(plan, name, getattr(data, name))
        if data.position is not None:
            plan.position = data.position
        plan.updated_at = utcnow()
        session.add(plan)
        session.flush()
        audit.record(
            session, action="billing.plan_saved", actor_id=actor.id,
            target=f"plan:{plan.id}", detail={"assistant_id": assistant.id, "key": plan.key},
        )  # fmt: skip
        saved_id = plan.id or 0
    paid = data.monthly_price_cents > 0 or data.annual_price_cents > 0
    if paid and stripe_enabled():
        sync_plan(plan_id=saved_id)
    return _row(saved_id)


def _row(plan_id: int) -> PlanRow:
    with session_scope() as session:
        plan = session.get(Plan, plan_id)
        if plan is None:
            raise NotFound("There is no such plan.")
        synced, status = sync_status(plan)
        return PlanRow(_public(plan), _subscriber_count(session, plan_id), status, synced)


def archive_plan(*, actor: UserPublic, plan_id: int) -> str:
    """Remove a plan: archived (kept for its subscribers, no longer sold) when anyone ever
    subscribed to it, deleted otherwise. Returns ``"archived"`` or ``"deleted"``."""
    with session_scope() as session:
        plan = session.get(Plan, plan_id)
        if plan is None:
            raise NotFound("There is no such plan.")
        owned_assistant(session, actor=actor, assistant_id=plan.assistant_id)
        referenced = session.exec(select(Subscription.id).where(Subscription.plan_id == plan_id))
        product = plan.stripe_product_id
        if referenced.first() is not None:
            plan.is_archived, plan.updated_at = True, utcnow()
            session.add(plan)
            outcome = "archived"
        else:
            session.delete(plan)
            outcome = "deleted"
        audit.record(
            session, action=f"billing.plan_{outcome}", actor_id=actor.id, target=f"plan:{plan_id}"
        )
    if product and stripe_enabled():
        try:
            stripe_client().v1.products.update(product, {"active": False})
        except stripe.StripeError as error:
            log.warning("stripe: could not deactivate product %s: %s", product, error)
    return outcome


def restore_plan(*, actor: UserPublic, plan_id: int) -> PlanRow:
    """Offer an archived plan again."""
    with session_scope() as session:
        plan = session.get(Plan, plan_id)
        if plan is None:
            raise NotFound("There is no such plan.")
        owned_assistant(session, actor=actor, assistant_id=plan.assistant_id)
        plan.is_archived, plan.updated_at = False, utcnow()
        session.add(plan)
        product = plan.stripe_product_id
    if product and stripe_enabled():
        try:
            stripe_client().v1.products.update(product, {"active": True})
        except stripe.StripeError as error:
            raise _stripe_failed("reactivate the product", error) from None
    return _row(plan_id)


# ---------------------------------------------------------------------------- Stripe sync


def meter_event_name(assistant_id: int) -> str:
    """One Billing Meter per assistant: a customer has at most one subscription per assistant,
    so the meter's per-customer sum is exactly that subscription's usage."""
    return f"gptstudio_tokens_a{assistant_id}"


def _overage_lookup_key(product_id: str, interval: str) -> str:
    """Unique per Stripe account (product ids are), unlike local plan ids across databases."""
    return f"gptstudio-{product_id}-overage-{interval}"


def _ensure_meter(client: stripe.StripeClient, assistant: Assistant) -> str:
    name = meter_event_name(assistant.id or 0)
    for meter in client.v1.billing.meters.list({"limit": 100}).auto_paging_iter():
        data = _dict(meter)
        if data.get("event_name") == name and data.get("status", "active") == "active":
            return str(data["id"])
    meter = client.v1.billing.meters.create(
        {
            "display_name": f"{assistant.name} tokens"[:250],
            "event_name": name,
            "default_aggregation": {"formula": "sum"},
            "customer_mapping": {"type": "by_id", "event_payload_key": "stripe_customer_id"},
            "value_settings": {"event_payload_key": "value"},
        },
        {"idempotency_key": f"gptstudio-meter-{name}"},
    )
    return str(_dict(meter)["id"])


def _price_matches(client: stripe.StripeClient, price_id: str, want: dict[str, Any]) -> bool:
    if not price_id:
        return False
    price = _dict(client.v1.prices.retrieve(price_id))
    recurring = price.get("recurring") or {}
    return bool(
        price.get("active", True)
        and price.get("unit_amount") == want["unit_amount"]
        and price.get("currency") == want["currency"]
        and recurring.get("interval") == want["recurring"]["interval"]
        and recurring.get("usage_type", "licensed")
        == want["recurring"].get("usage_type", "licensed")
    )


def _ensure_price(client: stripe.StripeClient, current: str, want: dict[str, Any]) -> str:
    """``current`` when it still has the wanted amount; else a new Price (old one deactivated)."""
    if _price_matches(client, current, want):
        return current
    price = _dict(client.v1.prices.create(_params(want)))
    if current:
        try:
            client.v1.prices.update(current, {"active": False})
        except stripe.StripeError as error:
            log.warning("stripe: could not deactivate price %s: %s", current, error)
    return str(price["id"])


def sync_plan(*, plan_id: int) -> PlanPublic:
    """Mirror one paid plan to Stripe: Product, monthly/annual Prices, metered overage Prices."""
    client = stripe_client()
    with session_scope() as session:
        plan = session.get(Plan, plan_id)
        if plan is None:
            raise NotFound("There is no such plan.")
        assistant = session.get(Assistant, plan.assistant_id)
        assert assistant is not None
        if plan.is_free:
            return _public(plan)
        metadata = {"gptstudio_plan_id": str(plan.id), "gptstudio_assistant_id": str(assistant.id)}
        product_fields = {"name": f"{assistant.name} · {plan.name}"[:250], "metadata": metadata}
        try:
            if plan.stripe_product_id:
                client.v1.products.update(plan.stripe_product_id, _params(product_fields))
            else:
                product = client.v1.products.create(
                    _params(product_fields),
                    {"idempotency_key": _key("product", plan.id, plan.created_at)},
                )
                plan.stripe_product_id = str(_dict(product)["id"])
                session.add(plan)
                session.flush()
            base = {"product": plan.stripe_product_id, "currency": plan.currency}
            for interval, amount, attr in (
                ("month", plan.monthly_price_cents, "stripe_monthly_price_id"),
                ("year", plan.annual_price_cents, "stripe_annual_price_id"),
            ):
                if amount <= 0:
                    setattr(plan, attr, "")
                    continue
                want = {**base, "unit_amount": amount, "recurring": {"interval": interval},
                        "nickname": f"{plan.name} ({INTERVALS[interval]})",
                        "metadata": {**metadata, "interval": interval}}  # fmt: skip
                setattr(plan, attr, _ensure_price(client, getattr(plan, attr), want))
            if plan.overage_cents_per_1k_tokens > 0:
                meter = _ensure_meter(client, assistant)
                for interval in ("month", "year"):
                    current = (
                        plan.stripe_overage_price_id
                        if interval == "month"
                        else _overage_price(client, plan.stripe_product_id, "year")
                    )
                    want = {
                        **base, "unit_amount": plan.overage_cents_per_1k_tokens,
                        "recurring": {"interval": interval, "usage_type": "metered",
                                      "meter": meter},
                        "transform_quantity": {"divide_by": 1000, "round": "up"},
                        "lookup_key": _overage_lookup_key(plan.stripe_product_id, interval),
                        "transfer_lookup_key": True,
                        "nickname": f"{plan.name} overage per 1k tokens",
                        "metadata": {**metadata, "interval": interval, "overage": "1"},
                    }  # fmt: skip
                    price = _ensure_price(client, current, want)
                    if interval == "month":
                        plan.stripe_overage_price_id = price
            else:
                plan.stripe_overage_price_id = ""
        except stripe.StripeError as error:
            session.commit()  # keep what was created (the product id), then report
            raise _stripe_failed(
                "save the plan's prices (the plan is saved; retry)", error
            ) from None
        plan.updated_at = utcnow()
        session.add(plan)
        return _public(plan)


def _overage_price(client: stripe.StripeClient, product_id: str, interval: str) -> str:
    found = client.v1.prices.list(
        {"lookup_keys": [_overage_lookup_key(product_id, interval)], "active": True, "limit": 1}
    )
    data = _dict(found).get("data") or []
    return str(data[0]["id"]) if data else ""


# ---------------------------------------------------------------------------- subscriber side


@dataclass(frozen=True)
class CurrentSubscription:
    plan_id: int | None
    tier: str
    status: str
    interval: str
    cancel_at_period_end: bool
    current_period_end: datetime | None
    trial_end: datetime | None
    past_due_since: datetime | None
    grace_ends: datetime | None
    paid: bool


@dataclass(frozen=True)
class Pricing:
    assistant_id: int
    assistant_name: str
    plans: list[PlanPublic]
    current: CurrentSubscription | None
    stripe_enabled: bool
    effective_plan: str
    notes: list[str] = field(default_factory=list)


def _visible_assistant(session: Session, actor: UserPublic, assistant_id: int) -> Assistant:
    authorize(actor, Role.subscriber, Role.creator)
    assistant = session.get(Assistant, assistant_id)
    if assistant is None or not (
        assistant.is_published or assistant.owner_id == actor.id or actor.role == Role.admin
    ):
        raise NotFound("There is no such assistant.")
    return assistant


def _current(subscription: Subscription | None) -> CurrentSubscription | None:
    if subscription is None:
        return None
    grace = None
    if subscription.past_due_since is not None:
        grace = subscription.past_due_since + timedelta(days=get_settings().billing_grace_days)
    return CurrentSubscription(
        plan_id=subscription.plan_id, tier=subscription.tier, status=subscription.status,
        interval=subscription.interval, cancel_at_period_end=subscription.cancel_at_period_end,
        current_period_end=subscription.current_period_end, trial_end=subscription.trial_end,
        past_due_since=subscription.past_due_since, grace_ends=grace,
        paid=bool(subscription.stripe_subscription_id),
    )  # fmt: skip


def _subscription(session: Session, user_id: int, assistant_id: int) -> Subscription | None:
    return session.exec(
        select(Subscription).where(
            Subscription.user_id == user_id, Subscription.assistant_id == assistant_id
        )
    ).first()


def pricing(*, actor: UserPublic, assistant_id: int) -> Pricing:
    """What the pricing page shows: the tiers on sale and the actor's subscription."""
    with session_scope() as session:
        assistant = _visible_assistant(session, actor, assistant_id)
        plans = offered_plans(session, assistant_id)
        subscription = _subscription(session, actor.id, assistant_id)
        effective = entitlement_in(session, user_id=actor.id, assistant_id=assistant_id)
        return Pricing(
            assistant_id=assistant_id,
            assistant_name=assistant.name,
            plans=[_public(p) for p in plans],
            current=_current(subscription),
            stripe_enabled=stripe_enabled(),
            effective_plan=effective.plan_name if effective.allowed else "",
        )


def subscribe_free(*, actor: UserPublic, plan_id: int) -> CurrentSubscription:
    """Join a free plan: a local subscription, no checkout."""
    with session_scope() as session:
        plan = session.get(Plan, plan_id)
        if plan is None:
            raise NotFound("There is no such plan.")
        _visible_assistant(session, actor, plan.assistant_id)
        if plan.is_archived:
            raise InvalidInput(f"The {plan.name} plan is no longer offered; choose another plan.")
        if not plan.is_free:
            raise InvalidInput(f"The {plan.name} plan is paid: subscribe through checkout.")
        row = _subscription(session, actor.id, plan.assistant_id)
        if row is not None and row.stripe_subscription_id and row.status in LIVE_STATUSES:
            raise InvalidInput(
                "You have a paid subscription to this assistant: use Manage subscription to "
                "cancel or change it first."
            )
        row = row or Subscription(user_id=actor.id, assistant_id=plan.assistant_id)
        row.plan_id, row.tier, row.status, row.interval = plan.id, plan.key, "active", "month"
        row.stripe_subscription_id = row.stripe_price_id = ""
        row.cancel_at_period_end, row.past_due_since, row.trial_end = False, None, None
        row.current_period_start = row.current_period_end = None
        row.updated_at = utcnow()
        session.add(row)
        session.flush()
        return _current(row)  # type: ignore[return-value]


def _pricing_url(assistant_id: int, query: str = "") -> str:
    base = f"{get_settings().base_url}/pricing?assistant={assistant_id}"
    return f"{base}&{query}" if query else base


def _customer_for(session: Session, client: stripe.StripeClient, user_id: int) -> str:
    user = session.get(User, user_id)
    assert user is not None
    if user.stripe_customer_id:
        return user.stripe_customer_id
    customer = client.v1.customers.create(
        {"email": user.email, "name": user.display_name or user.email,
         "metadata": {"gptstudio_user_id": str(user.id)}},
        {"idempotency_key": _key("customer", user.id, user.created_at)},
    )  # fmt: skip
    user.stripe_customer_id = str(_dict(customer)["id"])
    session.add(user)
    session.flush()
    return user.stripe_customer_id


def start_checkout(*, actor: UserPublic, plan_id: int, interval: str = "month") -> str:
    """A Stripe Checkout URL for a paid plan (hosted page, subscription mode)."""
    if interval not in INTERVALS:
        raise InvalidInput("Choose monthly or annual billing.")
    with session_scope() as session:
        plan = session.get(Plan, plan_id)
        if plan is None:
            raise NotFound("There is no such plan.")
        assistant = _visible_assistant(session, actor, plan.assistant_id)
        if plan.is_archived:
            raise InvalidInput(f"The {plan.name} plan is no longer offered; choose another plan.")
        if plan.is_free:
            raise InvalidInput(f"The {plan.name} plan is free: it needs no checkout.")
        client = stripe_client()
        price = plan.stripe_monthly_price_id if interval == "month" else plan.stripe_annual_price_id
        amount = plan.monthly_price_cents if interval == "month" else plan.annual_price_cents
        if amount <= 0:
            raise InvalidInput(f"The {plan.name} plan has no {INTERVALS[interval]} price.")
        if not price or (plan.overage_cents_per_1k_tokens and not plan.stripe_overage_price_id):
            raise InvalidInput(
                f"The {plan.name} plan is not ready for sale yet (its Stripe prices are missing); "
                "please try again later."
            )
        row = _subscription(session, actor.id, plan.assistant_id)
        if row is not None and row.stripe_subscription_id and row.status in LIVE_STATUSES:
            raise InvalidInput(
                f"You already subscribe to {row.tier}: use Manage subscription to change plans."
            )
        try:
            customer = _customer_for(session, client, actor.id)
            items: list[dict[str, Any]] = [{"price": price, "quantity": 1}]
            if plan.overage_cents_per_1k_tokens:
                overage = (
                    plan.stripe_overage_price_id
                    if interval == "month"
                    else _overage_price(client, plan.stripe_product_id, "year")
                )
                if overage:
                    items.append({"price": overage})
            metadata = {"gptstudio_user_id": str(actor.id),
                        "gptstudio_assistant_id": str(assistant.id),
                        "gptstudio_plan_id": str(plan.id), "interval": interval}  # fmt: skip
            subscription_data: dict[str, Any] = {"metadata": metadata}
            had_paid = row is not None and bool(row.stripe_subscription_id)
            if plan.trial_days and not had_paid:
                subscription_data["trial_period_days"] = plan.trial_days
            created = client.v1.checkout.sessions.create(
                _params(
                    {
                        "mode": "subscription",
                        "customer": customer,
                        "client_reference_id": str(actor.id),
                        "line_items": items,
                        "allow_promotion_codes": True,
                        "subscription_data": subscription_data,
                        "metadata": metadata,
                        "success_url": _pricing_url(
                            plan.assistant_id, "checkout=success&session_id={CHECKOUT_SESSION_ID}"
                        ),
                        "cancel_url": _pricing_url(plan.assistant_id, "checkout=cancelled"),
                    }
                )
            )
        except stripe.StripeError as error:
            raise _stripe_failed("start the checkout", error) from None
        url = str(_dict(created).get("url") or "")
        if not url:
            raise BillingUnavailable("Stripe returned no checkout page; please try again.")
        return url


def portal_url(*, actor: UserPublic, assistant_id: int) -> str:
    """A Stripe Customer Portal session: change plan (prorated), cancel, payment methods."""
    with session_scope() as session:
        _visible_assistant(session, actor, assistant_id)
        user = session.get(User, actor.id)
        row = _subscription(session, actor.id, assistant_id)
        customer = (row.stripe_customer_id if row else "") or (
            user.stripe_customer_id if user else ""
        )
    if not customer:
        raise InvalidInput("You have no paid subscription to manage yet.")
    try:
        created = stripe_client().v1.billing_portal.sessions.create(
            {"customer": customer, "return_url": _pricing_url(assistant_id)}
        )
    except stripe.StripeError as error:
        raise _stripe_failed("open the subscription portal", error) from None
    return str(_dict(created)["url"])


# ---------------------------------------------------------------------------- webhooks


@dataclass
class _Outcome:
    status: str = "processed"
    note: str = ""
    mails: list[tuple[str, str, str]] = field(default_factory=list)


def verify_webhook(payload: bytes, signature: str) -> dict[str, Any]:
    """Check the ``Stripe-Signature`` of a raw body; the event as a dict, or WebhookRejected."""
    import json

    settings = get_settings()
    secret = settings.stripe_webhook_secret.get_secret_value()
    if not secret:
        raise BillingNotConfigured(
            "Stripe webhooks are not configured: set GPTSTUDIO_STRIPE_WEBHOOK_SECRET."
        )
    if not signature:
        raise WebhookRejected("Missing Stripe-Signature header.")
    try:
        stripe.Webhook.construct_event(
            payload, signature, secret, tolerance=settings.stripe_webhook_tolerance_seconds
        )
    except stripe.SignatureVerificationError as error:
        message = str(error.user_message or error)
        if "tolerance" in message:
            raise WebhookRejected(
                "Webhook timestamp is too old (outside the tolerance): refused as a possible "
                "replay."
            ) from None
        raise WebhookRejected(f"Webhook signature verification failed: {message}") from None
    except ValueError:
        raise WebhookRejected("Webhook payload is not a valid Stripe event (bad JSON).") from None
    event = json.loads(payload)
    if not isinstance(event, dict) or not str(event.get("id", "")).startswith("evt"):
        raise WebhookRejected("Webhook payload is not a Stripe event.")
    return event


def process_event(event: dict[str, Any]) -> str:
    """Apply one verified event exactly once; returns processed, ignored or duplicate.

    The ``StripeEvent`` row is inserted first and commits with the effects; a concurrent or later
    copy of the same event finds it (or hits its primary key) and stops. A handler error rolls
    everything back (Stripe retries) and leaves a ``failed`` row for diagnosis.
    """
    event_id, event_type = str(event["id"]), str(event.get("type", ""))
    created = int(event.get("created") or 0)
    try:
        with session_scope() as session:
            row = session.get(StripeEvent, event_id)
            if row is not None and row.status != "failed":
                return "duplicate"
            if row is None:
                row = StripeEvent(id=event_id, type=event_type, created=created, payload=event)
                session.add(row)
                session.flush()  # takes the id: a concurrent copy waits here, then fails
            outcome = _dispatch(session, event)
            row.status, row.error = outcome.status, outcome.note
            row.processed_at = utcnow()
            session.add(row)
            session.flush()
    except IntegrityError:
        return "duplicate"
    except Exception as error:
        _record_failure(event_id, event_type, created, event, error)
        raise
    # Mails only after the commit: a mail server that is down must not undo the event (nor a
    # failed commit leave a mail sent for an event Stripe will send again).
    for to, subject, body in outcome.mails:
        _mail(to=to, subject=subject, body=body)
    return outcome.status


def _mail(*, to: str, subject: str, body: str) -> None:
    """Send now; if the mail server refuses, the queue tries again (nothing is dropped)."""
    try:
        send_mail(to=to, subject=subject, body=body)
    except MailNotSent as error:
        log.warning("billing mail to %s not sent (%s); queued to try again", to, error)
        from gptstudio.jobs.tasks import send_mail_task

        send_mail_task(to, subject, body)


def _record_failure(
    event_id: str, event_type: str, created: int, event: dict[str, Any], error: Exception
) -> None:
    try:
        with session_scope() as session:
            row = session.get(StripeEvent, event_id) or StripeEvent(
                id=event_id, type=event_type, created=created, payload=event
            )
            if row.status not in ("processed", "ignored"):
                row.status, row.error = "failed", f"{type(error).__name__}: {error}"[:2000]
                session.add(row)
    except Exception:  # the original error is what the caller must see
        log.exception("could not record the failure of stripe event %s", event_id)


def _dispatch(session: Session, event: dict[str, Any]) -> _Outcome:
    kind = str(event.get("type", ""))
    obj = (event.get("data") or {}).get("object") or {}
    created = int(event.get("created") or 0)
    if kind not in HANDLED_EVENTS:
        return _Outcome("ignored", f"event type {kind} is not used")
    if kind == "checkout.session.completed":
        return _on_checkout_completed(session, obj, created)
    if kind.startswith("customer.subscription."):
        return _on_subscription(session, obj, created, deleted=kind.endswith(".deleted"))
    if kind in ("invoice.paid", "invoice.payment_succeeded"):
        return _on_invoice(session, obj, created, paid=True)
    if kind == "invoice.payment_failed":
        return _on_invoice(session, obj, created, paid=False)
    return _on_refund(session, obj)


def _meta_int(metadata: dict[str, Any], key: str) -> int | None:
    value = str((metadata or {}).get(key, ""))
    return int(value) if value.isdigit() else None


def _on_checkout_completed(session: Session, obj: dict[str, Any], created: int) -> _Outcome:
    if obj.get("mode") != "subscription" or not obj.get("subscription"):
        return _Outcome("ignored", "not a subscription checkout")
    metadata = obj.get("metadata") or {}
    user_id = _meta_int(metadata, "gptstudio_user_id") or _meta_int(
        {"u": obj.get("client_reference_id")}, "u"
    )
    assistant_id = _meta_int(metadata, "gptstudio_assistant_id")
    if user_id is None or assistant_id is None or session.get(User, user_id) is None:
        return _Outcome("ignored", "checkout without GPT Studio user/assistant metadata")
    subscription_id = obj["subscription"]
    subscription_id = subscription_id if isinstance(subscription_id, str) else subscription_id["id"]
    try:
        current = _dict(stripe_client().v1.subscriptions.retrieve(subscription_id))
    except stripe.StripeError as error:
        raise _stripe_failed("read the new subscription", error) from None
    current.setdefault("metadata", {})
    for key in ("gptstudio_user_id", "gptstudio_assistant_id", "gptstudio_plan_id"):
        if key in metadata:
            current["metadata"].setdefault(key, metadata[key])
    user = session.get(User, user_id)
    customer = str(obj.get("customer") or current.get("customer") or "")
    if user is not None and customer and not user.stripe_customer_id:
        user.stripe_customer_id = customer
        session.add(user)
    return _on_subscription(session, current, created, deleted=False, fetched=True)


def _licensed_item(sub: dict[str, Any]) -> dict[str, Any]:
    items = (sub.get("items") or {}).get("data") or []
    for item in items:
        price = item.get("price") or item.get("plan") or {}
        usage = (price.get("recurring") or {}).get("usage_type") or price.get("usage_type")
        if usage != "metered":
            return dict(item)
    return dict(items[0]) if items else {}


def _plan_for_price(session: Session, assistant_id: int, price: dict[str, Any]) -> Plan | None:
    plan_id = _meta_int(price.get("metadata") or {}, "gptstudio_plan_id")
    if plan_id is not None:
        plan = session.get(Plan, plan_id)
        if plan is not None and plan.assistant_id == assistant_id:
            return plan
    price_id = str(price.get("id") or "")
    if not price_id:
        return None
    return session.exec(
        select(Plan).where(
            Plan.assistant_id == assistant_id,
            (col(Plan.stripe_monthly_price_id) == price_id)
            | (col(Plan.stripe_annual_price_id) == price_id),
        )
    ).first()


def _find_local(session: Session, sub: dict[str, Any]) -> Subscription | None:
    stripe_id = str(sub.get("id") or "")
    row = session.exec(
        select(Subscription).where(Subscription.stripe_subscription_id == stripe_id)
    ).first()
    if row is not None:
        return row
    metadata = sub.get("metadata") or {}
    user_id = _meta_int(metadata, "gptstudio_user_id")
    assistant_id = _meta_int(metadata, "gptstudio_assistant_id")
    if user_id is None or assistant_id is None:
        return None
    if session.get(User, user_id) is None or session.get(Assistant, assistant_id) is None:
        return None
    row = _subscription(session, user_id, assistant_id)
    other = row is not None and row.stripe_subscription_id not in ("", stripe_id)
    # The user already has another Stripe subscription here: only a live one replaces a dead one.
    if other and (sub.get("status") not in LIVE_STATUSES or (row and row.status in LIVE_STATUSES)):
        return None
    return row or Subscription(user_id=user_id, assistant_id=assistant_id)


def _on_subscription(
    session: Session, sub: dict[str, Any], created: int, *, deleted: bool, fetched: bool = False
) -> _Outcome:
    row = _find_local(session, sub)
    if row is None:
        return _Outcome("ignored", f"subscription {sub.get('id')} is not a GPT Studio one")
    item = _licensed_item(sub)
    if created < row.last_event_created:
        # Older than what is applied (an invoice event of the renewal may have come first), but
        # a billing period only moves forward: a later period is still taken, or quotas and
        # overage would count against the old one.
        start = _ts(sub.get("current_period_start") or item.get("current_period_start"))
        end = _ts(sub.get("current_period_end") or item.get("current_period_end"))
        if start and end and (row.current_period_end is None or end > row.current_period_end):
            row.current_period_start, row.current_period_end = start, end
            session.add(row)
            return _Outcome("processed", "out of order: only its later billing period taken")
        return _Outcome("ignored", "older than the state already applied (out of order)")
    price = item.get("price") or item.get("plan") or {}
    plan = _plan_for_price(session, row.assistant_id, price)
    if plan is None:
        plan_id = _meta_int(sub.get("metadata") or {}, "gptstudio_plan_id")
        found = session.get(Plan, plan_id) if plan_id is not None else None
        plan = found if found is not None and found.assistant_id == row.assistant_id else None
    if plan is None:
        return _Outcome("ignored", f"price {price.get('id')} matches no plan of the assistant")
    status = "canceled" if deleted else str(sub.get("status") or "active")
    was_paying = row.id is not None and row.status in ("active", "trialing")
    row.plan_id, row.tier = plan.id, plan.key
    if status == "canceled" and row.status != "canceled":
        row.canceled_at = _ts(created) or utcnow()
    elif status != "canceled":
        row.canceled_at = None
    row.status = status
    row.interval = str(
        (price.get("recurring") or {}).get("interval") or price.get("interval") or "month"
    )
    row.stripe_subscription_id = str(sub.get("id") or "")
    row.stripe_customer_id = str(sub.get("customer") or row.stripe_customer_id)
    row.stripe_price_id = str(price.get("id") or "")
    row.current_period_start = _ts(
        sub.get("current_period_start") or item.get("current_period_start")
    )
    row.current_period_end = _ts(sub.get("current_period_end") or item.get("current_period_end"))
    row.trial_end = _ts(sub.get("trial_end"))
    row.cancel_at_period_end = bool(sub.get("cancel_at_period_end") or sub.get("cancel_at"))
    if status == "past_due":
        row.past_due_since = row.past_due_since or _ts(created) or utcnow()
    elif status in ("active", "trialing"):
        row.past_due_since = None
    row.last_event_created = max(row.last_event_created, created)
    row.updated_at = utcnow()
    session.add(row)
    session.flush()
    if status in ("active", "trialing") and not was_paying:
        audit.record(
            session, action="billing.subscribed", actor_id=row.user_id,
            target=f"subscription:{row.id}", detail={"plan": plan.key, "status": status},
        )  # fmt: skip
    if deleted:
        audit.record(
            session, action="billing.canceled", actor_id=row.user_id,
            target=f"subscription:{row.id}", detail={"plan": plan.key},
        )  # fmt: skip
    return _Outcome("processed", f"subscription {row.id}: {plan.key} {status}")


def _invoice_subscription_id(obj: dict[str, Any]) -> str:
    direct = obj.get("subscription")
    if isinstance(direct, dict):
        return str(direct.get("id") or "")
    if direct:
        return str(direct)
    details = ((obj.get("parent") or {}).get("subscription_details") or {}).get("subscription")
    if isinstance(details, dict):
        return str(details.get("id") or "")
    return str(details or "")


def _invoice_row(session: Session, stripe_invoice_id: str) -> Invoice:
    return session.exec(
        select(Invoice).where(Invoice.stripe_invoice_id == stripe_invoice_id)
    ).first() or Invoice(stripe_invoice_id=stripe_invoice_id)


def _on_invoice(session: Session, obj: dict[str, Any], created: int, *, paid: bool) -> _Outcome:
    sub_id = _invoice_subscription_id(obj)
    row = (
        session.exec(
            select(Subscription).where(Subscription.stripe_subscription_id == sub_id)
        ).first()
        if sub_id
        else None
    )
    invoice = _invoice_row(session, str(obj["id"]))
    if row is not None:
        invoice.user_id, invoice.assistant_id, invoice.subscription_id = (
            row.user_id, row.assistant_id, row.id,
        )  # fmt: skip
    else:
        user = session.exec(
            select(User).where(User.stripe_customer_id == str(obj.get("customer") or "-"))
        ).first()
        invoice.user_id = user.id if user else invoice.user_id
    # refunded > paid > payment_failed: a late failure never un-pays an invoice.
    if invoice.status not in ("refunded", "partially_refunded"):
        if paid:
            invoice.status = "paid"
        elif invoice.id is None or invoice.status != "paid":
            invoice.status = "payment_failed"
    invoice.currency = str(obj.get("currency") or invoice.currency)
    invoice.amount_due_cents = int(obj.get("amount_due") or 0)
    invoice.amount_paid_cents = max(invoice.amount_paid_cents, int(obj.get("amount_paid") or 0))
    invoice.period_start = _ts(obj.get("period_start")) or invoice.period_start
    invoice.period_end = _ts(obj.get("period_end")) or invoice.period_end
    invoice.hosted_invoice_url = str(obj.get("hosted_invoice_url") or "")[:1000]
    session.add(invoice)
    outcome = _Outcome("processed", f"invoice {obj['id']} {invoice.status}")
    if row is None or created < row.last_event_created:
        return outcome
    if paid and row.status in ("past_due", "unpaid"):
        row.status, row.past_due_since = "active", None
    elif not paid:
        outcome.mails.append(_failed_payment_mail(session, row, obj))
        if row.status in LIVE_STATUSES:
            row.status = "past_due"
            row.past_due_since = row.past_due_since or _ts(created) or utcnow()
    row.last_event_created = created
    row.updated_at = utcnow()
    session.add(row)
    return outcome


def _failed_payment_mail(
    session: Session, row: Subscription, invoice: dict[str, Any]
) -> tuple[str, str, str]:
    user = session.get(User, row.user_id)
    assistant = session.get(Assistant, row.assistant_id)
    name = assistant.name if assistant else "your assistant"
    amount = format_money(
        int(invoice.get("amount_due") or 0), str(invoice.get("currency") or "usd")
    )
    days = get_settings().billing_grace_days
    paying = row.status in LIVE_STATUSES
    keep = (
        f"Your {row.tier} plan stays available for {days} days while we retry; after that your "
        "access is reduced to the free tier."
        if paying
        else "Your plan was not activated."
    )
    body = (
        f"Hello {user.display_name if user else ''},\n\n"
        f"Your payment of {amount} for {name} failed.\n{keep}\n\n"
        f"Update your payment method here: {_pricing_url(row.assistant_id)}\n"
        + (
            f"Invoice: {invoice['hosted_invoice_url']}\n"
            if invoice.get("hosted_invoice_url")
            else ""
        )
    )
    return (user.email if user else "", f"Payment failed for {name}", body)


def _on_refund(session: Session, charge: dict[str, Any]) -> _Outcome:
    invoice_id = charge.get("invoice")
    invoice_id = invoice_id.get("id") if isinstance(invoice_id, dict) else invoice_id
    if not invoice_id and charge.get("payment_intent") and stripe_enabled():
        try:
            found = stripe_client().v1.invoice_payments.list(
                {"payment": {"type": "payment_intent",
                             "payment_intent": str(charge["payment_intent"])}, "limit": 1}
            )  # fmt: skip
            data = _dict(found).get("data") or []
            invoice_id = data[0].get("invoice") if data else None
        except stripe.StripeError as error:
            raise _stripe_failed("find the refunded invoice", error) from None
    if not invoice_id:
        return _Outcome("ignored", f"refund of charge {charge.get('id')} has no invoice")
    invoice = _invoice_row(session, str(invoice_id))
    refunded = int(charge.get("amount_refunded") or 0)
    invoice.amount_refunded_cents = max(invoice.amount_refunded_cents, refunded)
    if invoice.amount_paid_cents == 0:
        invoice.amount_paid_cents = int(charge.get("amount_captured") or charge.get("amount") or 0)
    invoice.currency = str(charge.get("currency") or invoice.currency)
    full = invoice.amount_refunded_cents >= invoice.amount_paid_cents
    invoice.status = "refunded" if full else "partially_refunded"
    if invoice.user_id is None:
        user = session.exec(
            select(User).where(User.stripe_customer_id == str(charge.get("customer") or "-"))
        ).first()
        invoice.user_id = user.id if user else None
    session.add(invoice)
    return _Outcome("processed", f"invoice {invoice_id} {invoice.status}")


# ---------------------------------------------------------------------------- dunning


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
                        f"{_pricing_url(row.assistant_id)}\n"
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


def report_usage(*, now: datetime | None = None) -> int:
    """Report unreported overage to Stripe as meter events; returns how many were sent.

    For each paid subscription whose plan bills overage, the period's usage events are summed in
    order; the part of each event beyond the included tokens is its overage. The meter event's
    ``identifier`` (and the request's idempotency key) is derived from the UsageEvent id, so a
    retry after a crash never bills twice; ``reported_at`` is set once Stripe accepted it.
    """
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
                    "identifier": _key("usage", event_id, at),
                    "timestamp": int(at.timestamp()),
                    "payload": {"stripe_customer_id": customer, "value": str(over)},
                },
                {"idempotency_key": _key("usage", event_id, at)},
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
