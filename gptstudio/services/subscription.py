"""Subscriptions, from the subscriber's side: the pricing an assistant's visitor sees, joining a
free plan, Stripe Checkout for a paid one, the Stripe Customer and the Customer Portal.

- **Checkout** opens a Stripe Checkout Session in subscription mode (trial, promotion codes, the
  user/assistant/plan ids in its metadata): embedded in the pricing page
  (:func:`start_embedded_checkout`: ``ui_mode=embedded``, its ``client_secret`` for Stripe.js,
  a ``return_url`` whose page reads the session with :func:`checkout_status`), or Stripe's
  hosted page (:func:`start_checkout`), the fallback where Stripe.js cannot load
  (:func:`expire_checkout` closes the embedded session left behind). A free plan needs no
  checkout (:func:`subscribe_free`). The subscription row itself is written by the webhooks
  (:mod:`gptstudio.services.stripe_webhook`) once Stripe confirms it.
- **The Customer Portal** (:func:`portal_url`) handles upgrades and downgrades (with proration),
  cancellation at period end and payment methods.

Entitlements (:mod:`gptstudio.services.entitlements`) read only the local rows.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import stripe
from sqlmodel import Session, select

from gptstudio.db import session_scope, utcnow
from gptstudio.errors import InvalidInput, NotFound
from gptstudio.models import Assistant, Plan, Subscription, User
from gptstudio.models.plan import PlanPublic
from gptstudio.models.user import Role, UserPublic
from gptstudio.services import connect
from gptstudio.services.access import authorize
from gptstudio.services.entitlements import entitlement_in, offered_plans
from gptstudio.services.stripe_sync import INTERVALS, overage_price
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

# Stripe statuses of a subscription that still runs (and bills); the others ended or never began.
LIVE_STATUSES = {"active", "trialing", "past_due"}


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


def find_subscription(session: Session, *, user_id: int, assistant_id: int) -> Subscription | None:
    """The user's subscription to the assistant (at most one: paid, free or ended), if any."""
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
        subscription = find_subscription(session, user_id=actor.id, assistant_id=assistant_id)
        effective = entitlement_in(session, user_id=actor.id, assistant_id=assistant_id)
        return Pricing(
            assistant_id=assistant_id,
            assistant_name=assistant.name,
            plans=[PlanPublic.model_validate(p, from_attributes=True) for p in plans],
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
        row = find_subscription(session, user_id=actor.id, assistant_id=plan.assistant_id)
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


def pricing_url(assistant_id: int, query: str = "") -> str:
    """The assistant's pricing page (where a subscriber subscribes, pays and manages)."""
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
        {"idempotency_key": idempotency_key("customer", user.id, user.created_at)},
    )  # fmt: skip
    user.stripe_customer_id = str(as_dict(customer)["id"])
    session.add(user)
    session.flush()
    return user.stripe_customer_id


@dataclass(frozen=True)
class EmbeddedCheckout:
    session_id: str
    client_secret: str


@dataclass(frozen=True)
class CheckoutStatus:
    """A Checkout Session as the return page shows it, with the local subscription."""

    session_id: str
    status: str  # open, complete or expired (Stripe's)
    payment_status: str  # paid, unpaid or no_payment_required
    assistant_id: int
    assistant_name: str
    assistant_slug: str
    plan_name: str
    current: CurrentSubscription | None


def checkout_return_url() -> str:
    """Where embedded Checkout sends the subscriber once paid (Stripe fills in the id)."""
    return f"{get_settings().base_url}/checkout/return?session_id={{CHECKOUT_SESSION_ID}}"


def start_checkout(*, actor: UserPublic, plan_id: int, interval: str = "month") -> str:
    """A Stripe Checkout URL for a paid plan (hosted page, subscription mode)."""
    created = _create_checkout(actor=actor, plan_id=plan_id, interval=interval, embedded=False)
    url = str(created.get("url") or "")
    if not url:
        raise BillingUnavailable("Stripe returned no checkout page; please try again.")
    return url


def start_embedded_checkout(
    *, actor: UserPublic, plan_id: int, interval: str = "month"
) -> EmbeddedCheckout:
    """A Checkout Session to mount inside the pricing page with Stripe.js (``ui_mode=embedded``):
    its id and the ``client_secret`` Stripe.js asks for."""
    created = _create_checkout(actor=actor, plan_id=plan_id, interval=interval, embedded=True)
    secret = str(created.get("client_secret") or "")
    if not secret:
        raise BillingUnavailable("Stripe returned no embedded checkout; please try again.")
    return EmbeddedCheckout(session_id=str(created["id"]), client_secret=secret)


def _own_session(actor: UserPublic, session_id: str) -> dict[str, Any]:
    """The Checkout Session ``session_id``, if the actor started it (else NotFound)."""
    if not session_id.startswith("cs_"):
        raise NotFound("There is no such checkout.")
    try:
        found = as_dict(stripe_client().v1.checkout.sessions.retrieve(session_id))
    except stripe.InvalidRequestError:
        raise NotFound("There is no such checkout.") from None
    except stripe.StripeError as error:
        raise stripe_failed("read the checkout", error) from None
    owner = str((found.get("metadata") or {}).get("gptstudio_user_id") or "")
    if owner != str(actor.id):
        raise NotFound("There is no such checkout.")
    return found


def checkout_status(*, actor: UserPublic, session_id: str) -> CheckoutStatus:
    """What became of the actor's Checkout Session (read from Stripe), and their subscription."""
    found = _own_session(actor, session_id)
    metadata = found.get("metadata") or {}
    assistant_id = int(metadata.get("gptstudio_assistant_id") or 0)
    with session_scope() as session:
        assistant = _visible_assistant(session, actor, assistant_id)
        plan = session.get(Plan, int(metadata.get("gptstudio_plan_id") or 0))
        row = find_subscription(session, user_id=actor.id, assistant_id=assistant_id)
        return CheckoutStatus(
            session_id=session_id, status=str(found.get("status") or ""),
            payment_status=str(found.get("payment_status") or ""), assistant_id=assistant_id,
            assistant_name=assistant.name, assistant_slug=assistant.slug,
            plan_name=plan.name if plan else "",
            current=_current(row),
        )  # fmt: skip


def expire_checkout(*, actor: UserPublic, session_id: str) -> None:
    """Close the actor's open Checkout Session (an embedded one given up for the hosted page),
    so that it can no longer be paid; one already complete or expired is left as it is."""
    found = _own_session(actor, session_id)
    if found.get("status") != "open":
        return
    try:
        stripe_client().v1.checkout.sessions.expire(session_id)
    except stripe.StripeError as error:
        raise stripe_failed("close the checkout", error) from None


def _create_checkout(
    *, actor: UserPublic, plan_id: int, interval: str, embedded: bool
) -> dict[str, Any]:
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
        row = find_subscription(session, user_id=actor.id, assistant_id=plan.assistant_id)
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
                    else overage_price(client, plan.stripe_product_id, "year")
                )
                if overage:
                    items.append({"price": overage})
            metadata = {"gptstudio_user_id": str(actor.id),
                        "gptstudio_assistant_id": str(assistant.id),
                        "gptstudio_plan_id": str(plan.id), "interval": interval}  # fmt: skip
            # A connected creator's subscription is a destination charge (services/connect.py).
            subscription_data: dict[str, Any] = {
                "metadata": metadata,
                **connect.checkout_terms(session, assistant),
            }
            had_paid = row is not None and bool(row.stripe_subscription_id)
            if plan.trial_days and not had_paid:
                subscription_data["trial_period_days"] = plan.trial_days
            params: dict[str, Any] = {
                "mode": "subscription",
                "customer": customer,
                "client_reference_id": str(actor.id),
                "line_items": items,
                "allow_promotion_codes": True,
                "subscription_data": subscription_data,
                "metadata": metadata,
            }
            if embedded:  # Stripe refuses success_url and cancel_url in embedded mode
                params |= {"ui_mode": "embedded", "return_url": checkout_return_url()}
            else:
                params |= {
                    "success_url": pricing_url(
                        plan.assistant_id, "checkout=success&session_id={CHECKOUT_SESSION_ID}"
                    ),
                    "cancel_url": pricing_url(plan.assistant_id, "checkout=cancelled"),
                }
            created = client.v1.checkout.sessions.create(as_params(params))
        except stripe.StripeError as error:
            raise stripe_failed("start the checkout", error) from None
        return as_dict(created)


def portal_url(*, actor: UserPublic, assistant_id: int) -> str:
    """A Stripe Customer Portal session: change plan (prorated), cancel, payment methods."""
    with session_scope() as session:
        _visible_assistant(session, actor, assistant_id)
        user = session.get(User, actor.id)
        row = find_subscription(session, user_id=actor.id, assistant_id=assistant_id)
        customer = (row.stripe_customer_id if row else "") or (
            user.stripe_customer_id if user else ""
        )
    if not customer:
        raise InvalidInput("You have no paid subscription to manage yet.")
    try:
        created = stripe_client().v1.billing_portal.sessions.create(
            {"customer": customer, "return_url": pricing_url(assistant_id)}
        )
    except stripe.StripeError as error:
        raise stripe_failed("open the subscription portal", error) from None
    return str(as_dict(created)["url"])
