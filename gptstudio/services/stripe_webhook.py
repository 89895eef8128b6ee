"""Stripe webhooks: verify a delivery, then apply its event exactly once.

Each event is stored by its id in the same transaction as its effects (:func:`process_event`), so
a replay changes nothing; ``Subscription.last_event_created`` makes them order-safe: an older
subscription event is not applied, and one of the same second as the state applied (not clearly
newer: Stripe's ``created`` has one-second resolution) makes the app fetch the subscription from
Stripe and apply that, as Stripe advises. Handled:
checkout completed and subscription created/updated/deleted (the local subscription row, or a
creator's tier: :mod:`creator_tier`), a connected creator's ``account.updated``, invoices
paid or failed (``Invoice`` rows; a failed payment starts dunning: past_due and an e-mail, while
entitlements keep the plan for ``billing_grace_days``), and refunds.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import stripe
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, col, select

from gptstudio.db import session_scope, utcnow
from gptstudio.errors import DomainError
from gptstudio.jobs.tasks import send_mail_task
from gptstudio.mail import MailNotSent, send_mail
from gptstudio.models import (
    Assistant,
    CreatorSubscription,
    Invoice,
    Plan,
    StripeEvent,
    Subscription,
    User,
)
from gptstudio.money import format_money
from gptstudio.services import audit, connect, creator_tier
from gptstudio.services.subscription import LIVE_STATUSES, find_subscription, pricing_url
from gptstudio.settings import get_settings
from gptstudio.stripe_client import (
    BillingNotConfigured,
    as_dict,
    stripe_client,
    stripe_enabled,
    stripe_failed,
)

log = logging.getLogger(__name__)

HANDLED_EVENTS = {
    "checkout.session.completed",
    "customer.subscription.created",
    "customer.subscription.updated",
    "customer.subscription.deleted",
    "invoice.paid",
    "invoice.payment_succeeded",
    "invoice.payment_failed",
    "charge.refunded",
    "account.updated",
}


class WebhookRejected(DomainError):
    status_code = 400
    type = "invalid_request_error"
    code = "webhookrejected"


def _ts(value: Any) -> datetime | None:
    """A Stripe timestamp (Unix seconds) as a datetime; ``None`` when absent."""
    return datetime.fromtimestamp(int(value), UTC) if isinstance(value, (int, float)) else None


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
        # The signature alone (construct_event would also build an Event, and fail with a
        # TypeError on a signed body that is not an object); the shape is checked below.
        stripe.WebhookSignature.verify_header(
            payload, signature, secret, tolerance=settings.stripe_webhook_tolerance_seconds
        )
        event = json.loads(payload)
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
    _check_shape(event)
    return event


def _check_shape(event: Any) -> None:
    """A signed body is still checked for the shape of an event before anything reads it: an
    object with an ``evt_`` id, a string type, an integer ``created`` and an object under
    ``data.object`` (a signed array or string is refused, not a 500)."""
    if not isinstance(event, dict) or not str(event.get("id", "")).startswith("evt"):
        raise WebhookRejected("Webhook payload is not a Stripe event.")
    created = event.get("created")
    if not isinstance(event.get("type"), str) or not isinstance(event["id"], str):
        raise WebhookRejected("Webhook event has no string id and type.")
    if isinstance(created, bool) or not isinstance(created, int) or not 0 <= created < 2**31:
        raise WebhookRejected("Webhook event's created is not a Unix time in seconds.")
    data = event.get("data")
    if not isinstance(data, dict) or not isinstance(data.get("object"), dict):
        raise WebhookRejected("Webhook event's data.object is not an object.")


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
    if kind == "account.updated":
        note = connect.apply_account(session, obj)
        return _Outcome("ignored" if note.startswith("ignored") else "processed", note)
    if kind == "checkout.session.completed" and creator_tier.is_tier_subscription(obj):
        return _on_tier_checkout(session, obj, created)
    if kind == "checkout.session.completed":
        return _on_checkout_completed(session, obj, created)
    if kind.startswith("customer.subscription.") and creator_tier.is_tier_subscription(obj):
        note = creator_tier.apply_subscription(
            session, obj, created, deleted=kind.endswith(".deleted")
        )
        return _Outcome("ignored" if note.startswith("ignored") else "processed", note)
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
        current = as_dict(stripe_client().v1.subscriptions.retrieve(subscription_id))
    except stripe.StripeError as error:
        raise stripe_failed("read the new subscription", error) from None
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


def _on_tier_checkout(session: Session, obj: dict[str, Any], created: int) -> _Outcome:
    """A creator bought a tier of the installation (see :mod:`creator_tier`)."""
    if obj.get("mode") != "subscription" or not obj.get("subscription"):
        return _Outcome("ignored", "not a subscription checkout")
    subscription_id = obj["subscription"]
    subscription_id = subscription_id if isinstance(subscription_id, str) else subscription_id["id"]
    try:
        current = as_dict(stripe_client().v1.subscriptions.retrieve(subscription_id))
    except stripe.StripeError as error:
        raise stripe_failed("read the new subscription", error) from None
    current["metadata"] = {**(obj.get("metadata") or {}), **(current.get("metadata") or {})}
    note = creator_tier.apply_subscription(session, current, created, deleted=False)
    return _Outcome("ignored" if note.startswith("ignored") else "processed", note)


def _is_tier_invoice(session: Session, obj: dict[str, Any], sub_id: str) -> bool:
    if (
        sub_id
        and session.exec(
            select(CreatorSubscription.id).where(
                CreatorSubscription.stripe_subscription_id == sub_id
            )
        ).first()
    ):
        return True
    for line in (obj.get("lines") or {}).get("data") or []:
        price = line.get("price") or line.get("plan") or {}
        if creator_tier.TIER_METADATA in (price.get("metadata") or {}):
            return True
    return False


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
    row = find_subscription(session, user_id=user_id, assistant_id=assistant_id)
    other = row is not None and row.stripe_subscription_id not in ("", stripe_id)
    # The user already has another Stripe subscription here: only a live one replaces a dead one.
    if other and (sub.get("status") not in LIVE_STATUSES or (row and row.status in LIVE_STATUSES)):
        return None
    return row or Subscription(user_id=user_id, assistant_id=assistant_id)


def _current_subscription(sub: dict[str, Any]) -> dict[str, Any]:
    """The subscription as Stripe has it now (the event's metadata fills what it lacks)."""
    try:
        current = as_dict(stripe_client().v1.subscriptions.retrieve(str(sub.get("id") or "")))
    except stripe.StripeError as error:
        raise stripe_failed("read the subscription", error) from None
    current.setdefault("metadata", {})
    for key, value in (sub.get("metadata") or {}).items():
        current["metadata"].setdefault(key, value)
    return current


def _on_subscription(
    session: Session, sub: dict[str, Any], created: int, *, deleted: bool, fetched: bool = False
) -> _Outcome:
    row = _find_local(session, sub)
    if row is None:
        return _Outcome("ignored", f"subscription {sub.get('id')} is not a GPT Studio one")
    if not (fetched or deleted) and row.id is not None and created == row.last_event_created:
        # Not clearly newer than the state applied: Stripe's current object settles the tie (a
        # deletion needs none: nothing comes after it).
        outcome = _on_subscription(
            session, _current_subscription(sub), created, deleted=False, fetched=True
        )
        outcome.note = f"same second as the state applied: current object fetched; {outcome.note}"
        return outcome
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
    if row is None and _is_tier_invoice(session, obj, sub_id):
        invoice.kind = "creator_tier"  # the platform's own revenue, not a creator's
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
    # A destination charge to a connected creator: the platform's fee and where the rest went.
    invoice.application_fee_cents = max(
        invoice.application_fee_cents, int(obj.get("application_fee_amount") or 0)
    )
    destination = (obj.get("transfer_data") or {}).get("destination") or ""
    invoice.connected_account = str(destination or invoice.connected_account)
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
        f"Update your payment method here: {pricing_url(row.assistant_id)}\n"
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
            data = as_dict(found).get("data") or []
            invoice_id = data[0].get("invoice") if data else None
        except stripe.StripeError as error:
            raise stripe_failed("find the refunded invoice", error) from None
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
