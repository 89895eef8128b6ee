"""Stripe webhooks (gptstudio/services/stripe_webhook.py, POST /webhooks/stripe): signed like
Stripe's, applied exactly once and in order; subscriptions, invoices, dunning and refunds."""

from __future__ import annotations

import json
import time
from datetime import timedelta

import pytest
from fastapi.testclient import TestClient
from sqlmodel import select

from gptstudio.db import session_scope, utcnow
from gptstudio.errors import InvalidInput
from gptstudio.jobs.billing import notify_grace_ended
from gptstudio.models import AuditEvent, Invoice, StripeEvent
from gptstudio.services.entitlements import entitlement, entitlement_in
from gptstudio.services.plan import save_plan
from gptstudio.services.subscription import start_checkout
from gptstudio.settings import get_settings
from tests.billing.fake_stripe import Delivery, StripeFront, event, stripe_signature
from tests.billing.helpers import (
    FREE,
    PRO,
    deliver,
    make_users,
    post_event,
    signed,
    subscribe,
    subscription_row,
)
from tests.conftest import Mailbox


def test_checkout_completed_grants_the_plan_once(stripe: StripeFront, api: TestClient) -> None:
    creator, subscriber, assistant_id = make_users()
    save_plan(actor=creator, assistant_id=assistant_id, data=FREE)
    plan = save_plan(actor=creator, assistant_id=assistant_id, data=PRO).plan
    assert entitlement(user_id=subscriber.id, assistant_id=assistant_id).plan_key == "free"
    sub_id, _ = subscribe(stripe, api, subscriber, plan.id)
    granted = entitlement(user_id=subscriber.id, assistant_id=assistant_id)
    assert (granted.plan_key, granted.status, granted.overage_billed) == ("pro", "active", True)
    row = subscription_row(subscriber.id, assistant_id)
    assert row.stripe_subscription_id == sub_id and row.current_period_end is not None
    # localstripe's own signed customer.subscription.created arrives too: older, so ignored.
    created = stripe.wait_delivery(
        "customer.subscription.created", where=lambda obj: obj.get("id") == sub_id
    )
    assert deliver(api, created) in ("ignored", "processed")
    # A replay of either changes nothing and is acknowledged.
    before = subscription_row(subscriber.id, assistant_id)
    completed = stripe.wait_delivery("checkout.session.completed")
    assert deliver(api, completed) == "duplicate"
    assert deliver(api, created) == "duplicate"
    with session_scope() as session:
        events = session.exec(select(StripeEvent.id)).all()
        assert len(events) == 2
        audit = session.exec(
            select(AuditEvent).where(AuditEvent.action == "billing.subscribed")
        ).all()
        assert len(audit) == 1  # granted once
    assert subscription_row(subscriber.id, assistant_id).updated_at == before.updated_at
    with pytest.raises(InvalidInput, match="already subscribe"):
        start_checkout(actor=subscriber, plan_id=plan.id)


def test_forged_stale_and_malformed_webhooks_are_refused(
    stripe: StripeFront, api: TestClient
) -> None:
    make_users()
    data = event("customer.subscription.deleted", {"id": "sub_x", "object": "subscription"})
    payload = json.dumps(data).encode()
    forged = Delivery(payload, stripe_signature(payload, "whsec_attacker"))
    response = post_event(api, forged)
    assert response.status_code == 400
    assert "signature verification failed" in response.json()["error"]["message"]
    stale = Delivery(
        payload, stripe_signature(payload, stripe.webhook_secret, int(time.time()) - 3600)
    )
    response = post_event(api, stale)
    assert response.status_code == 400
    assert "too old" in response.json()["error"]["message"]
    tampered = Delivery(
        payload.replace(b"sub_x", b"sub_y"), stripe_signature(payload, stripe.webhook_secret)
    )
    assert post_event(api, tampered).status_code == 400
    junk = b"not json"
    response = post_event(api, Delivery(junk, stripe_signature(junk, stripe.webhook_secret)))
    assert response.status_code == 400 and "not a valid Stripe event" in response.text
    response = api.post("/webhooks/stripe", content=payload)
    assert response.status_code == 400 and "Missing Stripe-Signature" in response.text
    with session_scope() as session:
        assert session.exec(select(StripeEvent)).all() == []


def test_out_of_order_subscription_updates(stripe: StripeFront, api: TestClient) -> None:
    creator, subscriber, assistant_id = make_users()
    plan = save_plan(actor=creator, assistant_id=assistant_id, data=PRO).plan
    sub_id, created = subscribe(stripe, api, subscriber, plan.id)
    current = stripe.localstripe_call("GET", f"/v1/subscriptions/{sub_id}")
    newer = {**current, "cancel_at_period_end": True}
    older = {**current, "status": "unpaid"}
    assert deliver(api, signed(stripe, event("customer.subscription.updated", newer,
                                               created=created + 20))) == "processed"  # fmt: skip
    late = signed(stripe, event("customer.subscription.updated", older, created=created + 10))
    assert deliver(api, late) == "ignored"
    row = subscription_row(subscriber.id, assistant_id)
    assert (row.status, row.cancel_at_period_end) == ("active", True)
    assert row.last_event_created == created + 20
    with session_scope() as session:
        stored = session.get(StripeEvent, late.event["id"])
        assert stored is not None and "out of order" in stored.error


def test_same_second_updates_are_settled_by_stripes_current_object(
    stripe: StripeFront, api: TestClient
) -> None:
    """Issue 16: two ``customer.subscription.updated`` events of the same second were applied in
    delivery order, so a stale snapshot delivered last won. An event that is not clearly newer
    than what is applied makes the app fetch the subscription from Stripe and apply that."""
    creator, subscriber, assistant_id = make_users()
    plan = save_plan(actor=creator, assistant_id=assistant_id, data=PRO).plan
    sub_id, created = subscribe(stripe, api, subscriber, plan.id)
    before = stripe.localstripe_call("GET", f"/v1/subscriptions/{sub_id}")
    # The subscriber asks to cancel at the period's end: that is Stripe's state now.
    now = stripe.localstripe_call(
        "POST", f"/v1/subscriptions/{sub_id}", {"cancel_at_period_end": "true"}
    )
    assert now["cancel_at_period_end"] is True
    second = created + 30
    newer = signed(stripe, event("customer.subscription.updated", now, created=second))
    stale = signed(stripe, event("customer.subscription.updated", before, created=second))
    assert deliver(api, newer) == "processed"  # clearly newer than the checkout: applied as is
    reads = len(stripe.calls(f"/v1/subscriptions/{sub_id}", method="GET"))
    assert deliver(api, stale) == "processed"  # a tie: Stripe's current object is applied
    assert len(stripe.calls(f"/v1/subscriptions/{sub_id}", method="GET")) == reads + 1
    row = subscription_row(subscriber.id, assistant_id)
    assert (row.status, row.cancel_at_period_end) == ("active", True)
    assert row.last_event_created == second
    with session_scope() as session:
        stored = session.get(StripeEvent, stale.event["id"])
        assert stored is not None and "current object fetched" in stored.error
    # The other way round (the subscriber resumes; the stale copy of a second comes first): the
    # tie with the second copy fetches Stripe's current object.
    resumed = stripe.localstripe_call(
        "POST", f"/v1/subscriptions/{sub_id}", {"cancel_at_period_end": "false"}
    )
    third = second + 5
    stale = signed(stripe, event("customer.subscription.updated", now, created=third))
    newer = signed(stripe, event("customer.subscription.updated", resumed, created=third))
    assert deliver(api, stale) == "processed"
    assert deliver(api, newer) == "processed"
    assert subscription_row(subscriber.id, assistant_id).cancel_at_period_end is False


def test_a_renewal_whose_invoice_comes_first_still_moves_the_period(
    stripe: StripeFront, api: TestClient
) -> None:
    """At renewal Stripe may deliver invoice.paid before the (older) subscription.updated with
    the new period: the state stays, but the later period is taken."""
    creator, subscriber, assistant_id = make_users()
    plan = save_plan(actor=creator, assistant_id=assistant_id, data=PRO).plan
    sub_id, created = subscribe(stripe, api, subscriber, plan.id)
    current = stripe.localstripe_call("GET", f"/v1/subscriptions/{sub_id}")
    before = subscription_row(subscriber.id, assistant_id)
    assert before.current_period_end is not None
    invoice = stripe.localstripe_call("GET", "/v1/invoices", {"subscription": sub_id})["data"][0]
    renewal = {**invoice, "id": "in_next_" + sub_id, "billing_reason": "subscription_cycle"}
    paid = signed(stripe, event("invoice.paid", renewal, created=created + 40))
    assert deliver(api, paid) == "processed"
    start, end = current["current_period_end"], current["current_period_end"] + 30 * 86_400
    renewed = {**current, "current_period_start": start, "current_period_end": end}
    late = signed(stripe, event("customer.subscription.updated", renewed, created=created + 30))
    assert deliver(api, late) == "processed"
    row = subscription_row(subscriber.id, assistant_id)
    assert int(row.current_period_end.timestamp()) == end  # type: ignore[union-attr]
    assert row.status == "active" and row.last_event_created == created + 40
    stale = {**current, "status": "unpaid"}  # an older period: still ignored whole
    old = signed(stripe, event("customer.subscription.updated", stale, created=created + 20))
    assert deliver(api, old) == "ignored"
    assert subscription_row(subscriber.id, assistant_id).status == "active"


def test_failed_payment_dunning_then_free_tier(
    stripe: StripeFront, api: TestClient, mailbox: Mailbox
) -> None:
    creator, subscriber, assistant_id = make_users()
    save_plan(actor=creator, assistant_id=assistant_id, data=FREE)
    plan = save_plan(actor=creator, assistant_id=assistant_id, data=PRO).plan
    sub_id, created = subscribe(stripe, api, subscriber, plan.id)
    invoice = stripe.localstripe_call("GET", "/v1/invoices", {"subscription": sub_id})["data"][0]
    renewal = {**invoice, "id": "in_renewal_" + sub_id, "billing_reason": "subscription_cycle"}
    failed = {**renewal, "status": "open", "amount_paid": 0, "attempted": True}
    delivery = signed(stripe, event("invoice.payment_failed", failed, created=created + 30))
    assert deliver(api, delivery) == "processed"
    mail = mailbox.wait_for("sub@example.com")
    assert "Payment failed for Bee mentor" in str(mail["Subject"])
    assert "stays available for 7 days" in mail.get_content()
    row = subscription_row(subscriber.id, assistant_id)
    assert row.status == "past_due" and row.past_due_since is not None
    assert entitlement(user_id=subscriber.id, assistant_id=assistant_id).reason == "grace period"
    later = utcnow() + timedelta(days=8)
    with session_scope() as session:
        after = entitlement_in(session, user_id=subscriber.id, assistant_id=assistant_id, now=later)
    assert after.plan_key == "free" and "payment failed" in after.reason
    mailbox.messages.clear()
    assert notify_grace_ended(now=later) == 1
    assert "reduced to the free tier" in str(mailbox.wait_for("sub@example.com")["Subject"])
    assert notify_grace_ended(now=later) == 0  # once per episode
    assert deliver(api, delivery) == "duplicate"
    assert len(mailbox.messages) == 1  # the replay mailed nothing
    # The retry succeeds: the invoice is paid and the plan is back.
    paid = signed(
        stripe, event("invoice.paid", {**renewal, "status": "paid"}, created=created + 40)
    )
    assert deliver(api, paid) == "processed"
    row = subscription_row(subscriber.id, assistant_id)
    assert row.status == "active" and row.past_due_since is None
    with session_scope() as session:
        stored = session.exec(
            select(Invoice).where(Invoice.stripe_invoice_id == renewal["id"])
        ).one()
        assert (stored.status, stored.amount_paid_cents) == ("paid", 1900)
    # A late copy of the failure (a different event id, older) neither un-pays nor re-dunns.
    stale = signed(stripe, event("invoice.payment_failed", failed, created=created + 35))
    assert deliver(api, stale) == "processed"
    assert subscription_row(subscriber.id, assistant_id).status == "active"


def test_a_mail_server_down_neither_undoes_the_event_nor_drops_the_mail(
    stripe: StripeFront, api: TestClient, mailbox: Mailbox, settings_env: pytest.MonkeyPatch
) -> None:
    from gptstudio.jobs.worker import huey  # as a worker has it: with every job body loaded

    creator, subscriber, assistant_id = make_users()
    save_plan(actor=creator, assistant_id=assistant_id, data=FREE)
    plan = save_plan(actor=creator, assistant_id=assistant_id, data=PRO).plan
    sub_id, created = subscribe(stripe, api, subscriber, plan.id)
    invoice = stripe.localstripe_call("GET", "/v1/invoices", {"subscription": sub_id})["data"][0]
    failed = {**invoice, "id": "in_down_" + sub_id, "status": "open", "amount_paid": 0,
              "billing_reason": "subscription_cycle", "attempted": True}  # fmt: skip
    before = {t.id for t in huey.pending()}
    settings_env.setenv("GPTSTUDIO_SMTP_PORT", "1")  # nobody listens: the mail server is down
    get_settings.cache_clear()
    delivery = signed(stripe, event("invoice.payment_failed", failed, created=created + 30))
    assert deliver(api, delivery) == "processed"  # applied, not rolled back into a retry
    assert subscription_row(subscriber.id, assistant_id).status == "past_due"
    queued = [t for t in huey.pending() if t.id not in before]
    assert len(queued) == 1 and queued[0].args[0] == "sub@example.com"
    assert "Payment failed" in queued[0].args[1]
    settings_env.setenv("GPTSTUDIO_SMTP_PORT", str(mailbox.port))  # it is back
    get_settings.cache_clear()
    huey.execute(queued[0])  # what the worker does with it
    huey.revoke(queued[0])  # run here: no worker should run it again
    assert "Payment failed for Bee mentor" in str(mailbox.wait_for("sub@example.com")["Subject"])


def test_declined_card_grants_nothing(stripe: StripeFront, api: TestClient) -> None:
    creator, subscriber, assistant_id = make_users()
    save_plan(actor=creator, assistant_id=assistant_id, data=FREE)
    plan = save_plan(actor=creator, assistant_id=assistant_id, data=PRO).plan
    url = start_checkout(actor=subscriber, plan_id=plan.id)
    with pytest.raises(ValueError, match="declined"):
        stripe.complete_checkout(url.rsplit("/", 1)[1], card="4000000000000341")
    customer = stripe.calls("/v1/checkout/sessions")[0].params["customer"]
    (invoice,) = stripe.localstripe_call("GET", "/v1/invoices", {"customer": customer})["data"]
    assert invoice["status"] != "paid"
    sub_id = invoice["subscription"]
    mine = lambda obj: obj.get("id") == sub_id  # noqa: E731
    assert deliver(api, stripe.wait_delivery("customer.subscription.created", where=mine)) == (
        "processed"
    )
    failed = signed(stripe, event("invoice.payment_failed", invoice))
    assert deliver(api, failed) == "processed"
    assert deliver(api, stripe.wait_delivery("customer.subscription.deleted", where=mine)) in (
        "processed", "ignored",
    )  # fmt: skip
    after = entitlement(user_id=subscriber.id, assistant_id=assistant_id)
    assert after.plan_key == "free"
    assert subscription_row(subscriber.id, assistant_id).status in ("incomplete", "canceled")
    with session_scope() as session:
        stored = session.exec(select(Invoice)).one()
        assert stored.status == "payment_failed" and stored.user_id == subscriber.id


def test_subscription_deleted_falls_back_to_free(stripe: StripeFront, api: TestClient) -> None:
    creator, subscriber, assistant_id = make_users()
    save_plan(actor=creator, assistant_id=assistant_id, data=FREE)
    plan = save_plan(actor=creator, assistant_id=assistant_id, data=PRO).plan
    sub_id, _ = subscribe(stripe, api, subscriber, plan.id)
    time.sleep(1.1)  # the deletion event must be at least a second newer than the checkout's
    stripe.localstripe_call("DELETE", f"/v1/subscriptions/{sub_id}")
    deleted = stripe.wait_delivery(
        "customer.subscription.deleted", where=lambda obj: obj.get("id") == sub_id
    )
    assert deliver(api, deleted) == "processed"
    after = entitlement(user_id=subscriber.id, assistant_id=assistant_id)
    assert after.plan_key == "free" and after.reason == "Your subscription has ended."
    row = subscription_row(subscriber.id, assistant_id)
    assert row.status == "canceled" and row.canceled_at is not None  # churn counts from here


def test_invoice_paid_then_refunded(stripe: StripeFront, api: TestClient) -> None:
    creator, subscriber, assistant_id = make_users()
    plan = save_plan(actor=creator, assistant_id=assistant_id, data=PRO).plan
    sub_id, _ = subscribe(stripe, api, subscriber, plan.id)
    succeeded = stripe.wait_delivery(
        "invoice.payment_succeeded", where=lambda obj: obj.get("subscription") == sub_id
    )
    assert deliver(api, succeeded) == "processed"
    invoice_id = succeeded.event["data"]["object"]["id"]
    with session_scope() as session:
        invoice = session.exec(select(Invoice).where(Invoice.stripe_invoice_id == invoice_id)).one()
        assert (invoice.status, invoice.amount_paid_cents) == ("paid", 1900)
        assert invoice.user_id == subscriber.id and invoice.assistant_id == assistant_id
    charge = {"id": "ch_test", "object": "charge", "invoice": invoice_id, "amount": 1900,
              "amount_captured": 1900, "currency": "usd", "refunded": False}  # fmt: skip
    partial = signed(stripe, event("charge.refunded", {**charge, "amount_refunded": 500}))
    full = signed(stripe, event("charge.refunded", {**charge, "amount_refunded": 1900}))
    assert deliver(api, full) == "processed"
    assert deliver(api, partial) == "processed"  # late partial never lowers the refunded sum
    assert deliver(api, full) == "duplicate"
    with session_scope() as session:
        invoice = session.exec(select(Invoice).where(Invoice.stripe_invoice_id == invoice_id)).one()
        assert (invoice.status, invoice.amount_refunded_cents) == ("refunded", 1900)
