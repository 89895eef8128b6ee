"""The platform's own tiers for creators: what the installation sells to the people who build
assistants (price, included training GPU-hours per month, storage, assistants, concurrent jobs,
queue priority), the limits they set, and training compute metered against them.

- **Tiers** are defined by an admin (:func:`save_tier`); a paid one is mirrored to Stripe as a
  Product with a monthly Price and, when it bills overage, a metered Price per GPU-hour on the
  installation's training-compute Billing Meter (:func:`sync_tier`).
- **A creator's tier** is a Stripe subscription bought through Checkout (:func:`start_checkout`)
  and managed in the Customer Portal (:func:`portal_url`); the webhooks
  (:func:`apply_subscription`) keep ``CreatorSubscription`` and ``users.tier`` in step.
- **Limits** (:func:`check_new_assistant`, :func:`storage_quota_mb`, :func:`check_training`)
  apply only where an admin defined the creator's tier: an installation without tiers (one
  operator who is its own creator) is unlimited, as before. Admins are never limited.
- **Compute** is each training run's wall seconds × devices (:func:`record_compute`); what lies
  beyond the month's included GPU-hours is reported as meter events
  (:func:`report_compute_overage`) whose identifier is the usage row's, so a retry never bills
  twice.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import stripe
from sqlalchemy import func
from sqlmodel import Session, col, select

from gptstudio.db import session_scope, utcnow
from gptstudio.errors import DomainError, InvalidInput, NotFound
from gptstudio.models import Assistant, Document, Invoice, Role, Tier, TrainingJob, User
from gptstudio.models.creator_tier import (
    ComputeUsage,
    CreatorSubscription,
    CreatorTier,
    CreatorTierPublic,
)
from gptstudio.models.user import UserPublic
from gptstudio.money import format_money
from gptstudio.services import audit
from gptstudio.services.access import authorize
from gptstudio.settings import get_settings
from gptstudio.stripe_client import (
    BillingUnavailable,
    as_dict,
    as_params,
    idempotency_key,
    stripe_client,
    stripe_enabled,
    stripe_failed,
)

log = logging.getLogger(__name__)

METER_EVENT = "gptstudio_training_seconds"
TIER_METADATA = "gptstudio_creator_tier"
LIVE = {"active", "trialing", "past_due"}
ACTIVE_JOBS = ("queued", "running")
# Training tokens per device-second when the installation has not measured any job yet (the
# tiny CPU model trains at a few thousand; a GPU at far more): only the first estimate uses it.
DEFAULT_TOKENS_PER_DEVICE_SECOND = 2000.0


class TierLimitReached(DomainError):
    """The creator's tier does not allow this (more assistants, storage, jobs or compute)."""

    status_code = 402
    type = "payment_required"
    code = "tier_limit_reached"


class OverageNeedsConfirmation(DomainError):
    """The job would go beyond the month's included compute: it starts once confirmed."""

    status_code = 409
    type = "invalid_request_error"
    code = "overage_needs_confirmation"


@dataclass(frozen=True)
class TierInput:
    """What an admin types for one tier (prices in cents)."""

    key: str
    name: str
    monthly_price_cents: int = 0
    included_gpu_hours: float | None = None
    overage_cents_per_gpu_hour: int = 0
    storage_mb: int | None = None
    max_assistants: int | None = None
    max_concurrent_jobs: int | None = None
    queue_priority: int = 0
    currency: str = "usd"


@dataclass(frozen=True)
class TierUsage:
    """What a creator's tier page shows."""

    tier: CreatorTierPublic | None
    tiers: list[CreatorTierPublic]
    status: str
    paid: bool
    cancel_at_period_end: bool
    current_period_end: datetime | None
    month_start: datetime
    compute_seconds: float
    overage_seconds: float
    storage_bytes: int
    assistants: int
    active_jobs: int
    stripe_enabled: bool


def month_window(now: datetime) -> tuple[datetime, datetime]:
    """The calendar month (UTC) around ``now``: the period of the included compute."""
    start = now.replace(day=1, hour=0, minute=0, second=0, microsecond=0)
    return start, (start + timedelta(days=32)).replace(day=1)


def gpu_hours(seconds: float) -> str:
    """Device-seconds as GPU-hours for people: ``0.0012 GPU-hours`` or ``1.5 GPU-hours``."""
    hours = seconds / 3600
    text = f"{hours:.4f}" if hours < 0.1 else f"{hours:,.2f}"
    return f"{text.rstrip('0').rstrip('.') or '0'} GPU-hours"


def _public(tier: CreatorTier) -> CreatorTierPublic:
    return CreatorTierPublic.model_validate(tier, from_attributes=True)


# ------------------------------------------------------------------ tiers (admins define)


def list_tiers(*, include_archived: bool = False) -> list[CreatorTierPublic]:
    """The installation's tiers, cheapest first."""
    with session_scope() as session:
        query = select(CreatorTier).order_by(col(CreatorTier.position), col(CreatorTier.id))
        if not include_archived:
            query = query.where(col(CreatorTier.is_archived).is_(False))
        return [_public(t) for t in session.exec(query).all()]


def _validate(data: TierInput) -> TierInput:
    key = data.key.strip().lower()
    if key not in {t.value for t in Tier}:
        raise InvalidInput(
            f"A tier's key is one of {', '.join(t.value for t in Tier)} (users.tier)."
        )
    name = " ".join(data.name.split())
    if not 1 <= len(name) <= 120:
        raise InvalidInput("Give the tier a name of 1 to 120 characters.")
    currency = data.currency.strip().lower()
    if len(currency) != 3 or not currency.isalpha():
        raise InvalidInput("The currency must be a three-letter ISO code such as usd or eur.")
    if not 0 <= data.monthly_price_cents <= 100_000_000:
        raise InvalidInput("The monthly price must be between 0 and 1,000,000.")
    if not 0 <= data.overage_cents_per_gpu_hour <= 1_000_000:
        raise InvalidInput("The overage price must be between 0 and 10,000 per GPU-hour.")
    if data.included_gpu_hours is not None and not (
        math.isfinite(data.included_gpu_hours) and data.included_gpu_hours >= 0
    ):
        raise InvalidInput("Included GPU-hours must be 0 or more, or empty for unlimited.")
    for label, limit in (
        ("Storage", data.storage_mb),
        ("Assistants", data.max_assistants),
        ("Concurrent jobs", data.max_concurrent_jobs),
    ):
        if limit is not None and limit <= 0:
            raise InvalidInput(f"{label} must be a positive number, or empty for unlimited.")
    if data.overage_cents_per_gpu_hour and data.monthly_price_cents == 0:
        raise InvalidInput("Only a paid tier can bill overage; set a price or remove the overage.")
    if data.overage_cents_per_gpu_hour and data.included_gpu_hours is None:
        raise InvalidInput("Overage is billed beyond the included GPU-hours: set them.")
    return TierInput(
        key=key, name=name, monthly_price_cents=data.monthly_price_cents,
        included_gpu_hours=data.included_gpu_hours,
        overage_cents_per_gpu_hour=data.overage_cents_per_gpu_hour, storage_mb=data.storage_mb,
        max_assistants=data.max_assistants, max_concurrent_jobs=data.max_concurrent_jobs,
        queue_priority=data.queue_priority, currency=currency,
    )  # fmt: skip


def save_tier(*, actor: UserPublic, data: TierInput) -> CreatorTierPublic:
    """Create or update the tier ``data.key`` (admins only), then mirror a paid one to Stripe.

    The tier is saved even when Stripe fails; the error then says to save again."""
    authorize(actor, Role.admin)
    data = _validate(data)
    order = [t.value for t in Tier]
    with session_scope() as session:
        tier = session.exec(select(CreatorTier).where(CreatorTier.key == data.key)).first()
        tier = tier or CreatorTier(key=data.key, name=data.name)
        if tier.stripe_product_id and tier.currency != data.currency:
            tier.stripe_monthly_price_id = tier.stripe_overage_price_id = ""
        for name in (
            "name", "monthly_price_cents", "included_gpu_hours", "overage_cents_per_gpu_hour",
            "storage_mb", "max_assistants", "max_concurrent_jobs", "queue_priority", "currency",
        ):  # fmt: skip
            setattr(tier, name, getattr(data, name))
        tier.position, tier.is_archived, tier.updated_at = order.index(data.key), False, utcnow()
        session.add(tier)
        session.flush()
        audit.record(
            session, action="billing.creator_tier_saved", actor_id=actor.id,
            target=f"creator_tier:{tier.key}", detail={"price": tier.monthly_price_cents},
        )  # fmt: skip
        tier_id = tier.id or 0
    if data.monthly_price_cents > 0 and stripe_enabled():
        return sync_tier(tier_id=tier_id)
    return get_tier(data.key)


def get_tier(key: str) -> CreatorTierPublic:
    with session_scope() as session:
        tier = session.exec(select(CreatorTier).where(CreatorTier.key == key)).first()
        if tier is None:
            raise NotFound(f"There is no {key} tier.")
        return _public(tier)


def _ensure_meter(client: stripe.StripeClient) -> str:
    for meter in client.v1.billing.meters.list({"limit": 100}).auto_paging_iter():
        data = as_dict(meter)
        if data.get("event_name") == METER_EVENT and data.get("status", "active") == "active":
            return str(data["id"])
    meter = client.v1.billing.meters.create(
        {
            "display_name": "Training compute (device-seconds)",
            "event_name": METER_EVENT,
            "default_aggregation": {"formula": "sum"},
            "customer_mapping": {"type": "by_id", "event_payload_key": "stripe_customer_id"},
            "value_settings": {"event_payload_key": "value"},
        },
        {"idempotency_key": f"gptstudio-meter-{METER_EVENT}"},
    )
    return str(as_dict(meter)["id"])


def _price(client: stripe.StripeClient, current: str, want: dict[str, Any]) -> str:
    """``current`` when it still has the wanted amount; else a new Price (old one inactive)."""
    if current:
        price = as_dict(client.v1.prices.retrieve(current))
        if (
            price.get("active", True)
            and price.get("unit_amount") == want["unit_amount"]
            and (price.get("currency") == want["currency"])
        ):
            return current
    created = str(as_dict(client.v1.prices.create(as_params(want)))["id"])
    if current:
        try:
            client.v1.prices.update(current, {"active": False})
        except stripe.StripeError as error:
            log.warning("stripe: could not deactivate price %s: %s", current, error)
    return created


def sync_tier(*, tier_id: int) -> CreatorTierPublic:
    """Mirror a paid tier to Stripe: its Product, monthly Price and metered overage Price (per
    GPU-hour: the meter sums device-seconds, the Price divides by 3,600, rounding up)."""
    client = stripe_client()
    with session_scope() as session:
        tier = session.get(CreatorTier, tier_id)
        if tier is None:
            raise NotFound("There is no such tier.")
        metadata = {TIER_METADATA: tier.key}
        try:
            fields = {"name": f"GPT Studio · {tier.name}"[:250], "metadata": metadata}
            if tier.stripe_product_id:
                client.v1.products.update(tier.stripe_product_id, as_params(fields))
            else:
                product = client.v1.products.create(
                    as_params(fields),
                    {"idempotency_key": idempotency_key("tier", tier.id, tier.created_at)},
                )
                tier.stripe_product_id = str(as_dict(product)["id"])
                session.add(tier)
                session.flush()
            base = {"product": tier.stripe_product_id, "currency": tier.currency,
                    "metadata": metadata}  # fmt: skip
            tier.stripe_monthly_price_id = _price(
                client, tier.stripe_monthly_price_id,
                {**base, "unit_amount": tier.monthly_price_cents,
                 "recurring": {"interval": "month"}, "nickname": f"{tier.name} (monthly)"},
            )  # fmt: skip
            if tier.overage_cents_per_gpu_hour > 0:
                tier.stripe_overage_price_id = _price(
                    client, tier.stripe_overage_price_id,
                    {**base, "unit_amount": tier.overage_cents_per_gpu_hour,
                     "recurring": {"interval": "month", "usage_type": "metered",
                                   "meter": _ensure_meter(client)},
                     "transform_quantity": {"divide_by": 3600, "round": "up"},
                     "nickname": f"{tier.name} training overage per GPU-hour"},
                )  # fmt: skip
            else:
                tier.stripe_overage_price_id = ""
        except stripe.StripeError as error:
            session.commit()  # keep the product id, then report
            raise stripe_failed(
                "save the tier's prices (the tier is saved; retry)", error
            ) from None
        tier.updated_at = utcnow()
        session.add(tier)
        return _public(tier)


# ------------------------------------------------------------------ a creator's tier and limits


def tier_of(session: Session, user_id: int) -> CreatorTier | None:
    """The tier that limits ``user_id``: the admin-defined row of their ``users.tier``, or None
    (no limits) for admins and where no such tier is defined."""
    user = session.get(User, user_id)
    if user is None or user.role == Role.admin.value:
        return None
    return session.exec(select(CreatorTier).where(CreatorTier.key == user.tier)).first()


def _upgrade_hint() -> str:
    return f"Upgrade your GPT Studio tier at {get_settings().base_url}/studio/tier."


def queue_priority(session: Session, user_id: int) -> int | None:
    """The training priority the creator's tier sets, or None where no tier is defined."""
    tier = tier_of(session, user_id)
    return tier.queue_priority if tier is not None else None


def check_new_assistant(session: Session, *, user_id: int) -> None:
    """Refuse another assistant beyond the tier's number."""
    tier = tier_of(session, user_id)
    if tier is None or tier.max_assistants is None:
        return
    owned = session.exec(
        select(func.count(col(Assistant.id))).where(Assistant.owner_id == user_id)
    ).one()
    if int(owned) >= tier.max_assistants:
        raise TierLimitReached(
            f"Your {tier.name} tier allows {tier.max_assistants} assistant"
            f"{'s' if tier.max_assistants != 1 else ''} and you have {owned}. Delete one, or "
            + _upgrade_hint()
        )


def storage_quota_mb(session: Session, *, user_id: int) -> int:
    """The creator's document storage: their tier's, else the installation's setting."""
    tier = tier_of(session, user_id)
    if tier is not None and tier.storage_mb is not None:
        return tier.storage_mb
    return get_settings().storage_quota_mb


def compute_used(session: Session, *, user_id: int, since: datetime) -> float:
    """Device-seconds of the creator's training runs recorded since ``since``."""
    return float(
        session.exec(
            select(func.coalesce(func.sum(ComputeUsage.device_seconds), 0.0)).where(
                ComputeUsage.user_id == user_id, col(ComputeUsage.created_at) >= since
            )
        ).one()
    )


def _active_jobs(session: Session, user_id: int) -> int:
    return int(
        session.exec(
            select(func.count(col(TrainingJob.id)))
            .join(Assistant, col(Assistant.id) == col(TrainingJob.assistant_id))
            .where(Assistant.owner_id == user_id, col(TrainingJob.status).in_(ACTIVE_JOBS))
        ).one()
    )


def tokens_per_device_second(session: Session) -> float:
    """The installation's measured training speed (its last 50 finished runs), else a default."""
    rows = session.exec(
        select(ComputeUsage.tokens, ComputeUsage.device_seconds)
        .where(ComputeUsage.tokens > 0, ComputeUsage.device_seconds > 0)
        .order_by(col(ComputeUsage.id).desc())
        .limit(50)
    ).all()
    tokens, seconds = sum(r[0] for r in rows), sum(r[1] for r in rows)
    return tokens / seconds if tokens and seconds else DEFAULT_TOKENS_PER_DEVICE_SECOND


def estimate_seconds(session: Session, *, train_tokens: int) -> float:
    """Device-seconds a job of ``train_tokens`` (tokens × epochs) should take here."""
    return train_tokens / tokens_per_device_second(session)


def check_training(
    session: Session, *, user_id: int, estimated_seconds: float, confirm_overage: bool
) -> float:
    """Refuse a job the tier does not allow before it starts: too many jobs at once, or a month's
    compute it would exceed (refused without an overage price; else it must be confirmed).
    Returns the estimated overage in device-seconds (0 when within the included compute)."""
    tier = tier_of(session, user_id)
    if tier is None:
        return 0.0
    if tier.max_concurrent_jobs is not None:
        active = _active_jobs(session, user_id)
        if active >= tier.max_concurrent_jobs:
            raise TierLimitReached(
                f"Your {tier.name} tier runs {tier.max_concurrent_jobs} training job"
                f"{'s' if tier.max_concurrent_jobs != 1 else ''} at a time and {active} "
                "are queued or running. Wait for one to finish or cancel one, or " + _upgrade_hint()
            )
    if tier.included_gpu_hours is None:
        return 0.0
    start, end = month_window(utcnow())
    used = compute_used(session, user_id=user_id, since=start)
    included = tier.included_gpu_hours * 3600
    over = max(0.0, used + estimated_seconds - included)
    if over <= 0:
        return 0.0
    said = (
        f"This job needs about {gpu_hours(estimated_seconds)}; your {tier.name} tier includes "
        f"{gpu_hours(included)} a month and {gpu_hours(used)} are used this month."
    )
    if not tier.overage_cents_per_gpu_hour:
        raise TierLimitReached(
            f"{said} It would go beyond the included compute, which your tier does not bill. "
            f"The month's compute renews on {end:%Y-%m-%d}. " + _upgrade_hint()
        )
    if not confirm_overage:
        cost = math.ceil(over / 3600 * tier.overage_cents_per_gpu_hour)
        raise OverageNeedsConfirmation(
            f"{said} About {gpu_hours(over)} beyond it will be billed at "
            f"{format_money(tier.overage_cents_per_gpu_hour, tier.currency)} per GPU-hour "
            f"(about {format_money(cost, tier.currency)}). Confirm the overage to start the job."
        )
    return over


def usage(*, actor: UserPublic) -> TierUsage:
    """The creator's tier, its limits and what they use of them this month."""
    authorize(actor, Role.creator)
    start, _ = month_window(utcnow())
    with session_scope() as session:
        tier = tier_of(session, actor.id)
        sub = session.exec(
            select(CreatorSubscription).where(CreatorSubscription.user_id == actor.id)
        ).first()
        over = session.exec(
            select(func.coalesce(func.sum(ComputeUsage.overage_seconds), 0.0)).where(
                ComputeUsage.user_id == actor.id, col(ComputeUsage.created_at) >= start
            )
        ).one()
        storage = session.exec(
            select(func.coalesce(func.sum(Document.size_bytes), 0)).where(
                Document.owner_id == actor.id
            )
        ).one()
        assistants = session.exec(
            select(func.count(col(Assistant.id))).where(Assistant.owner_id == actor.id)
        ).one()
        live = sub is not None and sub.status in LIVE and bool(sub.stripe_subscription_id)
        return TierUsage(
            tier=_public(tier) if tier else None, tiers=list_tiers(),
            status=sub.status if sub else "", paid=live,
            cancel_at_period_end=bool(sub and sub.cancel_at_period_end),
            current_period_end=sub.current_period_end if sub else None, month_start=start,
            compute_seconds=compute_used(session, user_id=actor.id, since=start),
            overage_seconds=float(over), storage_bytes=int(storage), assistants=int(assistants),
            active_jobs=_active_jobs(session, actor.id), stripe_enabled=stripe_enabled(),
        )  # fmt: skip


# ------------------------------------------------------------------ buying a tier


def tier_url(query: str = "") -> str:
    base = f"{get_settings().base_url}/studio/tier"
    return f"{base}?{query}" if query else base


def _customer(session: Session, client: stripe.StripeClient, user: User) -> str:
    if user.stripe_customer_id:
        return user.stripe_customer_id
    customer = client.v1.customers.create(
        {"email": user.email, "name": user.display_name or user.email,
         "metadata": {"gptstudio_user_id": str(user.id)}},
        {"idempotency_key": idempotency_key("customer", user.id, user.created_at)},
    )  # fmt: skip
    user.stripe_customer_id = str(as_dict(customer)["id"])
    session.add(user)
    session.flush()
    return user.stripe_customer_id


def start_checkout(*, actor: UserPublic, key: str) -> str:
    """A Stripe Checkout URL for the creator's own subscription to a paid tier."""
    authorize(actor, Role.creator)
    with session_scope() as session:
        tier = session.exec(select(CreatorTier).where(CreatorTier.key == key)).first()
        if tier is None or tier.is_archived:
            raise NotFound("There is no such tier on sale.")
        if tier.is_free:
            raise InvalidInput(f"The {tier.name} tier is free: it needs no checkout.")
        if not tier.stripe_monthly_price_id or (
            tier.overage_cents_per_gpu_hour and not tier.stripe_overage_price_id
        ):
            raise InvalidInput(
                f"The {tier.name} tier is not ready for sale yet (its Stripe prices are "
                "missing); an admin must save it again."
            )
        sub = session.exec(
            select(CreatorSubscription).where(CreatorSubscription.user_id == actor.id)
        ).first()
        if sub is not None and sub.stripe_subscription_id and sub.status in LIVE:
            raise InvalidInput(
                f"You already subscribe to the {sub.tier} tier: use Manage your tier to change it."
            )
        user = session.get(User, actor.id)
        assert user is not None
        client = stripe_client()
        metadata = {"gptstudio_user_id": str(actor.id), TIER_METADATA: tier.key}
        items: list[dict[str, Any]] = [{"price": tier.stripe_monthly_price_id, "quantity": 1}]
        if tier.stripe_overage_price_id:
            items.append({"price": tier.stripe_overage_price_id})
        try:
            created = client.v1.checkout.sessions.create(
                as_params(
                    {
                        "mode": "subscription",
                        "customer": _customer(session, client, user),
                        "client_reference_id": str(actor.id),
                        "line_items": items,
                        "allow_promotion_codes": True,
                        "subscription_data": {"metadata": metadata},
                        "metadata": metadata,
                        "success_url": tier_url("checkout=success"),
                        "cancel_url": tier_url("checkout=cancelled"),
                    }
                )
            )
        except stripe.StripeError as error:
            raise stripe_failed("start the checkout", error) from None
    url = str(as_dict(created).get("url") or "")
    if not url:
        raise BillingUnavailable("Stripe returned no checkout page; please try again.")
    return url


def portal_url(*, actor: UserPublic) -> str:
    """A Customer Portal session for the creator's tier (change, cancel, payment methods)."""
    with session_scope() as session:
        sub = session.exec(
            select(CreatorSubscription).where(CreatorSubscription.user_id == actor.id)
        ).first()
        customer = sub.stripe_customer_id if sub else ""
    if not customer:
        raise InvalidInput("You have no paid tier to manage yet.")
    try:
        created = stripe_client().v1.billing_portal.sessions.create(
            {"customer": customer, "return_url": tier_url()}
        )
    except stripe.StripeError as error:
        raise stripe_failed("open the subscription portal", error) from None
    return str(as_dict(created)["url"])


# ------------------------------------------------------------------ webhooks


def is_tier_subscription(sub: dict[str, Any]) -> bool:
    """Whether a Stripe subscription (or checkout session) is a creator's tier."""
    if TIER_METADATA in (sub.get("metadata") or {}):
        return True
    for item in (sub.get("items") or {}).get("data") or []:
        price = item.get("price") or item.get("plan") or {}
        if TIER_METADATA in (price.get("metadata") or {}):
            return True
    return False


def _tier_for(session: Session, sub: dict[str, Any]) -> CreatorTier | None:
    prices = []
    for item in (sub.get("items") or {}).get("data") or []:
        price = item.get("price") or item.get("plan") or {}
        prices.append(str(price.get("id") or ""))
        key = (price.get("metadata") or {}).get(TIER_METADATA)
        usage_type = (price.get("recurring") or {}).get("usage_type") or price.get("usage_type")
        if key and usage_type != "metered":
            found = session.exec(select(CreatorTier).where(CreatorTier.key == key)).first()
            if found is not None:
                return found
    by_price = session.exec(
        select(CreatorTier).where(col(CreatorTier.stripe_monthly_price_id).in_(prices))
    ).first()
    if by_price is not None:
        return by_price
    key = (sub.get("metadata") or {}).get(TIER_METADATA)
    return session.exec(select(CreatorTier).where(CreatorTier.key == key)).first()


def _ts(value: Any) -> datetime | None:
    from datetime import UTC

    return datetime.fromtimestamp(int(value), UTC) if isinstance(value, (int, float)) else None


def apply_subscription(
    session: Session, sub: dict[str, Any], created: int, *, deleted: bool
) -> str:
    """Apply a tier subscription's state (from a webhook): ``CreatorSubscription`` and the
    creator's ``users.tier``. Returns a note for the event log."""
    stripe_id = str(sub.get("id") or "")
    row = session.exec(
        select(CreatorSubscription).where(CreatorSubscription.stripe_subscription_id == stripe_id)
    ).first()
    if row is None:
        value = str((sub.get("metadata") or {}).get("gptstudio_user_id", ""))
        user = session.get(User, int(value)) if value.isdigit() else None
        if user is None:
            return "ignored: tier subscription without a GPT Studio user"
        row = session.exec(
            select(CreatorSubscription).where(CreatorSubscription.user_id == user.id)
        ).first() or CreatorSubscription(user_id=user.id or 0)
        if row.stripe_subscription_id not in ("", stripe_id) and row.status in LIVE:
            return "ignored: the creator has another live tier subscription"
    if created < row.last_event_created:
        return "ignored: older than the state already applied"
    tier = _tier_for(session, sub)
    if tier is None:
        return "ignored: the subscription's price matches no tier"
    status = "canceled" if deleted else str(sub.get("status") or "active")
    items = (sub.get("items") or {}).get("data") or [{}]
    row.tier, row.status = tier.key, status
    row.stripe_subscription_id = stripe_id
    row.stripe_customer_id = str(sub.get("customer") or row.stripe_customer_id)
    row.stripe_price_id = tier.stripe_monthly_price_id
    row.current_period_start = _ts(
        sub.get("current_period_start") or items[0].get("current_period_start")
    )
    row.current_period_end = _ts(
        sub.get("current_period_end") or items[0].get("current_period_end")
    )
    row.cancel_at_period_end = bool(sub.get("cancel_at_period_end") or sub.get("cancel_at"))
    row.past_due_since = (row.past_due_since or utcnow()) if status == "past_due" else None
    row.canceled_at = (row.canceled_at or utcnow()) if status == "canceled" else None
    row.last_event_created, row.updated_at = created, utcnow()
    session.add(row)
    user = session.get(User, row.user_id)
    assert user is not None
    before = user.tier
    # past_due keeps the tier while Stripe retries; a subscription that ended is the free tier.
    user.tier = tier.key if status in LIVE else Tier.free.value
    session.add(user)
    session.flush()
    if before != user.tier:
        audit.record(
            session, action="user.tier_changed", actor_id=user.id, target=f"user:{user.id}",
            detail={"from": before, "to": user.tier, "by": "stripe", "status": status},
        )  # fmt: skip
    return f"creator {user.id}: tier {user.tier} ({status})"


# ------------------------------------------------------------------ compute metering


def record_compute(
    *, job_id: int, seconds: float, devices: int, tokens: int = 0
) -> ComputeUsage | None:
    """Record one run of a training job (wall ``seconds`` on ``devices``) for its creator, with
    the part beyond their tier's included compute this month; then report that overage."""
    seconds, devices = max(0.0, float(seconds)), max(1, int(devices))
    with session_scope() as session:
        job = session.get(TrainingJob, job_id)
        assistant = session.get(Assistant, job.assistant_id) if job else None
        if assistant is None:
            return None
        owner = assistant.owner_id
        user = session.get(User, owner)
        tier = tier_of(session, owner)
        start, _ = month_window(utcnow())
        used = compute_used(session, user_id=owner, since=start)
        device_seconds = seconds * devices
        over = 0.0
        if tier is not None and tier.included_gpu_hours is not None:
            included = tier.included_gpu_hours * 3600
            over = max(0.0, min(device_seconds, used + device_seconds - included))
        row = ComputeUsage(
            user_id=owner, training_job_id=job_id, tier=user.tier if user else "free",
            devices=devices, seconds=seconds, device_seconds=device_seconds,
            overage_seconds=over, tokens=max(0, int(tokens)),
        )  # fmt: skip
        session.add(row)
        session.flush()
        session.expunge(row)
    if over > 0:
        report_compute_overage()
    return row


def report_compute_overage() -> int:
    """Send unreported training overage to Stripe as meter events; how many were sent.

    Only a creator with a live paid tier that bills overage is reported (the others' overage is
    kept, and shown, but there is nothing to bill it to). The meter event's identifier derives
    from the usage row, so a retry after a crash never bills twice."""
    if not stripe_enabled():
        return 0
    with session_scope() as session:
        rows = session.exec(
            select(ComputeUsage, CreatorSubscription)
            .join(CreatorSubscription, col(CreatorSubscription.user_id) == ComputeUsage.user_id)
            .where(
                col(ComputeUsage.reported_at).is_(None),
                ComputeUsage.overage_seconds > 0,
                col(CreatorSubscription.status).in_(LIVE),
                col(CreatorSubscription.stripe_customer_id) != "",
            )
        ).all()
        pending = [(u.id or 0, u.overage_seconds, u.created_at, s.stripe_customer_id)
                   for u, s in rows]  # fmt: skip
    sent = 0
    for usage_id, over, at, customer in pending:
        key = idempotency_key("compute", usage_id, at)
        try:
            stripe_client().v1.billing.meter_events.create(
                {"event_name": METER_EVENT, "identifier": key, "timestamp": int(at.timestamp()),
                 "payload": {"stripe_customer_id": customer, "value": str(math.ceil(over))}},
                {"idempotency_key": key},
            )  # fmt: skip
        except stripe.StripeError as error:
            log.warning("stripe: compute usage %s not reported (will retry): %s", usage_id, error)
            continue
        with session_scope() as session:
            row = session.get(ComputeUsage, usage_id)
            if row is not None:
                row.reported_at = utcnow()
                session.add(row)
        sent += 1
    return sent


# ------------------------------------------------------------------ the admin's view


def revenue_split(*, actor: UserPublic, since: datetime) -> tuple[dict[str, int], dict[str, int]]:
    """(the platform's, the creators') net revenue since ``since``, per currency (admins only).

    The platform's is creators' tier invoices plus the application fees kept from subscriptions
    to connected creators' assistants; the creators' is the rest of their assistants' invoices
    (all of it where a creator is not connected: it is the operator's own)."""
    authorize(actor, Role.admin)
    platform: dict[str, int] = {}
    creators: dict[str, int] = {}
    with session_scope() as session:
        rows = session.exec(
            select(Invoice).where(
                col(Invoice.created_at) >= since, col(Invoice.status) != "payment_failed"
            )
        ).all()
        for invoice in rows:
            net = invoice.amount_paid_cents - invoice.amount_refunded_cents
            cur = invoice.currency
            if invoice.kind == "creator_tier":
                platform[cur] = platform.get(cur, 0) + net
            else:
                platform[cur] = platform.get(cur, 0) + invoice.application_fee_cents
                creators[cur] = creators.get(cur, 0) + net - invoice.application_fee_cents
    return (
        {c: v for c, v in platform.items() if v},
        {c: v for c, v in creators.items() if v},
    )
