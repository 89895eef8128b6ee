"""Plans: the tiers a creator sells for one assistant (price, trial, included tokens, RPM,
overage), edited by the assistant's owner.

A paid plan is mirrored to Stripe when it is saved (:func:`save_plan` calls
:func:`gptstudio.services.stripe_sync.sync_plan`); :func:`sync_status` says whether that mirror is
complete. :func:`archive_plan` keeps a plan that anyone ever subscribed to (no longer sold) and
deletes the others.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass

import stripe
from sqlmodel import Session, col, select

from gptstudio.db import session_scope, utcnow
from gptstudio.errors import InvalidInput, NotFound
from gptstudio.models import Plan, Subscription
from gptstudio.models.plan import PlanPublic
from gptstudio.models.user import UserPublic
from gptstudio.money import format_money
from gptstudio.services import audit
from gptstudio.services.assistant import owned_assistant
from gptstudio.services.stripe_sync import sync_plan
from gptstudio.services.subscription import LIVE_STATUSES
from gptstudio.stripe_client import stripe_client, stripe_enabled, stripe_failed

log = logging.getLogger(__name__)

KEY_PATTERN = re.compile(r"^[a-z0-9][a-z0-9_-]{0,59}$")


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
            raise stripe_failed("reactivate the product", error) from None
    return _row(plan_id)
