"""Stripe Connect: money reaches the creator.

Each creator onboards an **Express** connected account through an **Account Link** from their
revenue page (:func:`onboarding_url`); Stripe hosts the onboarding (identity, bank account) and
sends ``account.updated`` (:func:`apply_account`).

Subscriptions to a connected creator's assistants are **destination charges**: the Checkout
Session's ``subscription_data`` carries ``transfer_data.destination`` (the creator's account) and
``application_fee_percent`` (the operator's fee, ``Settings.application_fee_percent``)
(:func:`checkout_terms`). Stripe recommends destination charges for Express accounts: the
platform is the merchant of record, so the subscriber stays one Customer of the platform across
every creator (one card, one Portal, the platform's Products and Prices and its meters for token
overage), while direct charges would need the Customer, Product and Prices copied into each
creator's account and would leave refunds and disputes to creators with an Express dashboard
only. Each invoice's ``application_fee_amount`` is recorded on the local ``Invoice``.

The creator's balance and payouts live in their account: read with the ``Stripe-Account``
header (:func:`payouts`). An installation with one creator (the operator, an admin) needs no
Connect: their assistants' subscriptions stay on the platform account, as before.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import stripe
from sqlalchemy import func
from sqlmodel import Session, col, select

from gptstudio.db import session_scope
from gptstudio.errors import InvalidInput
from gptstudio.models import Assistant, Invoice, Role, User
from gptstudio.models.user import UserPublic
from gptstudio.services import audit
from gptstudio.services.access import authorize
from gptstudio.settings import get_settings
from gptstudio.stripe_client import (
    as_dict,
    idempotency_key,
    stripe_client,
    stripe_enabled,
    stripe_failed,
)


@dataclass(frozen=True)
class Payout:
    id: str
    amount_cents: int
    currency: str
    status: str
    arrival_date: int


@dataclass(frozen=True)
class ConnectSummary:
    """What the creator's revenue page shows about their payouts."""

    enabled: bool  # Stripe is configured and the creator is not the operator
    account_id: str
    details_submitted: bool
    charges_enabled: bool
    payouts_enabled: bool
    fee_percent: float
    available: dict[str, int] = field(default_factory=dict)
    pending: dict[str, int] = field(default_factory=dict)
    payouts: list[Payout] = field(default_factory=list)
    fees: dict[str, int] = field(default_factory=dict)
    gross: dict[str, int] = field(default_factory=dict)


def revenue_url(query: str = "") -> str:
    base = f"{get_settings().base_url}/revenue"
    return f"{base}?{query}" if query else base


def onboarding_url(*, actor: UserPublic) -> str:
    """An Account Link to Stripe's hosted Express onboarding; the account is made on first use."""
    authorize(actor, Role.creator)
    if actor.role == Role.admin:
        raise InvalidInput(
            "The operator's own assistants are paid into the platform account: no payout "
            "account is needed."
        )
    client = stripe_client()
    with session_scope() as session:
        user = session.get(User, actor.id)
        assert user is not None
        try:
            if not user.stripe_account_id:
                account = client.v1.accounts.create(
                    {
                        "type": "express",
                        "email": user.email,
                        "capabilities": {
                            "card_payments": {"requested": True},
                            "transfers": {"requested": True},
                        },
                        "business_profile": {
                            "product_description": "Expert assistant subscriptions on GPT Studio"
                        },
                        "metadata": {"gptstudio_user_id": str(user.id)},
                    },
                    {"idempotency_key": idempotency_key("account", user.id, user.created_at)},
                )
                user.stripe_account_id = str(as_dict(account)["id"])
                session.add(user)
                audit.record(
                    session, action="billing.connect_account_created", actor_id=user.id,
                    target=f"user:{user.id}", detail={"account": user.stripe_account_id},
                )  # fmt: skip
                session.commit()
            link = client.v1.account_links.create(
                {
                    "account": user.stripe_account_id,
                    "refresh_url": revenue_url("connect=refresh"),
                    "return_url": revenue_url("connect=return"),
                    "type": "account_onboarding",
                }
            )
        except stripe.StripeError as error:
            raise stripe_failed("start the payout onboarding", error) from None
    return str(as_dict(link)["url"])


def _apply(user: User, account: dict[str, Any]) -> None:
    user.connect_details_submitted = bool(account.get("details_submitted"))
    user.connect_charges_enabled = bool(account.get("charges_enabled"))
    user.connect_payouts_enabled = bool(account.get("payouts_enabled"))


def apply_account(session: Session, account: dict[str, Any]) -> str:
    """An ``account.updated`` webhook: the creator's onboarding state. Returns a note."""
    user = session.exec(
        select(User).where(User.stripe_account_id == str(account.get("id") or "-"))
    ).first()
    if user is None:
        return "ignored: not a GPT Studio creator's account"
    _apply(user, account)
    session.add(user)
    return f"creator {user.id}: charges {'on' if user.connect_charges_enabled else 'off'}"


def refresh_account(*, actor: UserPublic) -> None:
    """Read the creator's account from Stripe (back from onboarding, before any webhook); once
    it takes charges and payouts there is nothing left to read."""
    with session_scope() as session:
        user = session.get(User, actor.id)
        if user is None or not user.stripe_account_id or not stripe_enabled():
            return
        if user.connect_charges_enabled and user.connect_payouts_enabled:
            return
        try:
            account = as_dict(stripe_client().v1.accounts.retrieve(user.stripe_account_id))
        except stripe.StripeError as error:
            raise stripe_failed("read your payout account", error) from None
        _apply(user, account)
        session.add(user)


def checkout_terms(session: Session, assistant: Assistant) -> dict[str, Any]:
    """The ``subscription_data`` a Checkout for ``assistant`` adds: a destination charge to its
    creator's connected account with the operator's fee; nothing when the creator has no account
    that takes charges (the operator's own assistants, or before onboarding)."""
    owner = session.get(User, assistant.owner_id)
    if owner is None or owner.role == Role.admin.value or not owner.connect_charges_enabled:
        return {}
    return {
        "application_fee_percent": get_settings().application_fee_percent,
        "transfer_data": {"destination": owner.stripe_account_id},
    }


def _amounts(entries: Any) -> dict[str, int]:
    totals: dict[str, int] = {}
    for entry in entries or []:
        currency = str(entry.get("currency") or "usd")
        totals[currency] = totals.get(currency, 0) + int(entry.get("amount") or 0)
    return totals


def summary(*, actor: UserPublic) -> ConnectSummary:
    """The creator's payout account, its balance and latest payouts (read from their account
    with the ``Stripe-Account`` header) and the fees the platform kept (local invoices)."""
    authorize(actor, Role.creator)
    percent = get_settings().application_fee_percent
    with session_scope() as session:
        user = session.get(User, actor.id)
        assert user is not None
        owned = select(Assistant.id).where(Assistant.owner_id == actor.id)
        rows = session.exec(
            select(
                col(Invoice.currency),
                func.sum(Invoice.application_fee_cents),
                func.sum(Invoice.amount_paid_cents - Invoice.amount_refunded_cents),
            )
            .where(col(Invoice.assistant_id).in_(owned), col(Invoice.connected_account) != "")
            .group_by(col(Invoice.currency))
        ).all()
        fees = {str(cur): int(fee or 0) for cur, fee, _ in rows}
        gross = {str(cur): int(total or 0) for cur, _, total in rows}
        account = user.stripe_account_id
        base = ConnectSummary(
            enabled=stripe_enabled() and actor.role != Role.admin, account_id=account,
            details_submitted=user.connect_details_submitted,
            charges_enabled=user.connect_charges_enabled,
            payouts_enabled=user.connect_payouts_enabled, fee_percent=percent, fees=fees,
            gross=gross,
        )  # fmt: skip
    if not account or not stripe_enabled():
        return base
    options: Any = {"stripe_account": account}
    try:
        client = stripe_client()
        balance = as_dict(client.v1.balance.retrieve(None, options))
        listed = as_dict(client.v1.payouts.list({"limit": 10}, options))
    except stripe.StripeError as error:
        raise stripe_failed("read your balance and payouts", error) from None
    payouts = [
        Payout(
            id=str(p["id"]),
            amount_cents=int(p.get("amount") or 0),
            currency=str(p.get("currency") or "usd"),
            status=str(p.get("status") or ""),
            arrival_date=int(p.get("arrival_date") or 0),
        )
        for p in listed.get("data") or []
    ]
    return ConnectSummary(
        **{**base.__dict__, "available": _amounts(balance.get("available")),
           "pending": _amounts(balance.get("pending")), "payouts": payouts},
    )  # fmt: skip
