"""Billing with the real stripe SDK against localstripe (and the recorded front for Prices,
Checkout, Portal and Meters), webhooks signed like Stripe's, on SQLite and PostgreSQL."""

from __future__ import annotations

import json
import time
from datetime import timedelta
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlmodel import col, select

from gptstudio.db import session_scope, utcnow
from gptstudio.errors import InvalidInput
from gptstudio.models import AuditEvent, Invoice, Role, StripeEvent, Subscription, UsageEvent
from gptstudio.models.user import UserPublic
from gptstudio.services import account, assistant, billing
from gptstudio.services.entitlements import entitlement, entitlement_in
from gptstudio.settings import get_settings
from tests.billing.fake_stripe import Delivery, StripeFront, event, stripe_signature
from tests.conftest import Mailbox

PASSWORD = "correct horse battery"
PRO = billing.PlanInput(
    key="pro", name="Professional", monthly_price_cents=1900, annual_price_cents=19000,
    trial_days=0, included_tokens=1000, requests_per_minute=60, all_versions=True,
    overage_cents_per_1k_tokens=2,
)  # fmt: skip
FREE = billing.PlanInput(key="free", name="Free", included_tokens=100, requests_per_minute=5)


def _users() -> tuple[UserPublic, UserPublic, int]:
    account.register(email="admin@example.com", password=PASSWORD)
    creator = account.register(email="cy@example.com", password=PASSWORD, role=Role.creator)
    subscriber = account.register(email="sub@example.com", password=PASSWORD)
    made = assistant.create_assistant(actor=creator, name="Bee mentor")
    with session_scope() as session:
        from gptstudio.models import Assistant

        row = session.get(Assistant, made.id)
        assert row is not None
        row.is_published = True
        session.add(row)
    return creator, subscriber, made.id


def _post(api: TestClient, delivery: Delivery) -> Any:
    return api.post(
        "/webhooks/stripe",
        content=delivery.payload,
        headers={"Stripe-Signature": delivery.signature, "Content-Type": "application/json"},
    )


def _deliver(api: TestClient, delivery: Delivery) -> str:
    response = _post(api, delivery)
    assert response.status_code == 200, response.text
    return str(response.json()["outcome"])


def _signed(front: StripeFront, data: dict[str, Any], timestamp: int | None = None) -> Delivery:
    payload = json.dumps(data).encode()
    return Delivery(payload, stripe_signature(payload, front.webhook_secret, timestamp))


def _subscribe(
    front: StripeFront, api: TestClient, subscriber: UserPublic, plan_id: int
) -> tuple[str, int]:
    """Checkout → pay on the offline page → deliver the webhooks; (stripe sub id, created)."""
    url = billing.start_checkout(actor=subscriber, plan_id=plan_id)
    session_id = url.rsplit("/", 1)[1]
    sub = front.complete_checkout(session_id)
    completed = front.wait_delivery("checkout.session.completed")
    assert _deliver(api, completed) == "processed"
    return str(sub["id"]), int(completed.event["created"])


def _row(user_id: int, assistant_id: int) -> Subscription:
    with session_scope() as session:
        row = session.exec(
            select(Subscription).where(
                Subscription.user_id == user_id, Subscription.assistant_id == assistant_id
            )
        ).one()
        session.expunge(row)
        return row


def test_plan_sync_creates_product_and_prices(stripe: StripeFront) -> None:
    creator, _, assistant_id = _users()
    saved = billing.save_plan(actor=creator, assistant_id=assistant_id, data=PRO)
    assert saved.synced, saved.sync_status
    with session_scope() as session:
        from gptstudio.models import Plan

        plan = session.get(Plan, saved.plan.id)
        assert plan is not None
        product = stripe.localstripe_call("GET", f"/v1/products/{plan.stripe_product_id}")
        assert product["name"] == "Bee mentor · Professional"
        product_id = plan.stripe_product_id
        monthly, annual, overage = (
            plan.stripe_monthly_price_id, plan.stripe_annual_price_id,
            plan.stripe_overage_price_id,
        )  # fmt: skip
    prices = {c.params["recurring"]["interval"] + c.params["recurring"].get("usage_type", ""): c
              for c in stripe.calls("/v1/prices")}  # fmt: skip
    assert prices["month"].params["unit_amount"] == "1900"
    assert prices["year"].params["unit_amount"] == "19000"
    metered = prices["monthmetered"].params
    assert metered["unit_amount"] == "2"
    assert metered["transform_quantity"] == {"divide_by": "1000", "round": "up"}
    assert metered["recurring"]["meter"].startswith("mtr_")
    assert prices["yearmetered"].params["lookup_key"] == f"gptstudio-{product_id}-overage-year"
    assert stripe.objects[monthly]["metadata"]["gptstudio_plan_id"] == str(saved.plan.id)
    assert annual and overage
    # A new amount is a new Price (Stripe's are immutable); the old one is deactivated.
    changed = billing.PlanInput(**{**PRO.__dict__, "monthly_price_cents": 2900})
    billing.save_plan(actor=creator, assistant_id=assistant_id, data=changed, plan_id=saved.plan.id)
    with session_scope() as session:
        plan = session.get(Plan, saved.plan.id)
        assert plan is not None and plan.stripe_monthly_price_id != monthly
        assert plan.stripe_annual_price_id == annual
    assert stripe.objects[monthly]["active"] is False


def test_plan_validation_is_readable(stripe: StripeFront) -> None:
    creator, subscriber, assistant_id = _users()
    billing.save_plan(actor=creator, assistant_id=assistant_id, data=FREE)
    with pytest.raises(InvalidInput, match="already has a plan with the key"):
        billing.save_plan(actor=creator, assistant_id=assistant_id, data=FREE)
    bad = billing.PlanInput(key="x", name="X", monthly_price_cents=100,
                            overage_cents_per_1k_tokens=3)  # fmt: skip
    with pytest.raises(InvalidInput, match="set included tokens"):
        billing.save_plan(actor=creator, assistant_id=assistant_id, data=bad)
    with pytest.raises(InvalidInput, match="lower-case letters"):
        billing.save_plan(
            actor=creator, assistant_id=assistant_id,
            data=billing.PlanInput(key="Pro Plan!", name="Pro"),
        )  # fmt: skip
    with pytest.raises(Exception, match="creator"):
        billing.save_plan(actor=subscriber, assistant_id=assistant_id, data=PRO)


def test_without_stripe_key_paid_plans_cannot_be_sold(db: str) -> None:
    creator, subscriber, assistant_id = _users()
    paid = billing.save_plan(actor=creator, assistant_id=assistant_id, data=PRO)
    assert not paid.synced and "Stripe is not configured" in paid.sync_status
    with pytest.raises(billing.BillingNotConfigured, match="Payments are not set up"):
        billing.start_checkout(actor=subscriber, plan_id=paid.plan.id)
    free = billing.save_plan(actor=creator, assistant_id=assistant_id, data=FREE)
    billing.subscribe_free(actor=subscriber, plan_id=free.plan.id)
    assert entitlement(user_id=subscriber.id, assistant_id=assistant_id).plan_key == "free"


def test_checkout_session_parameters(stripe: StripeFront) -> None:
    creator, subscriber, assistant_id = _users()
    trial = billing.PlanInput(**{**PRO.__dict__, "trial_days": 14})
    plan = billing.save_plan(actor=creator, assistant_id=assistant_id, data=trial).plan
    url = billing.start_checkout(actor=subscriber, plan_id=plan.id, interval="year")
    assert url.startswith(f"{stripe.url}/pay/cs_test_")
    (call,) = stripe.calls("/v1/checkout/sessions")
    params = call.params
    assert params["mode"] == "subscription"
    assert params["allow_promotion_codes"] == "true"
    assert params["client_reference_id"] == str(subscriber.id)
    assert params["customer"].startswith("cus_")
    assert params["subscription_data"]["trial_period_days"] == "14"
    assert params["metadata"]["gptstudio_plan_id"] == str(plan.id)
    assert params["metadata"]["interval"] == "year"
    annual_price = params["line_items"][0]["price"]
    assert stripe.objects[annual_price]["recurring"]["interval"] == "year"
    overage = params["line_items"][1]["price"]
    assert stripe.objects[overage]["recurring"] == {
        "interval": "year", "usage_type": "metered",
        "meter": stripe.objects[overage]["recurring"]["meter"],
    }  # fmt: skip
    assert "checkout=success" in params["success_url"]
    assert "checkout=cancelled" in params["cancel_url"]
    assert billing.portal_url(actor=subscriber, assistant_id=assistant_id).startswith(
        f"{stripe.url}/portal/"
    )


def test_checkout_for_archived_plan_is_refused(stripe: StripeFront, api: TestClient) -> None:
    creator, subscriber, assistant_id = _users()
    billing.save_plan(actor=creator, assistant_id=assistant_id, data=FREE)
    plan = billing.save_plan(actor=creator, assistant_id=assistant_id, data=PRO).plan
    _subscribe(stripe, api, subscriber, plan.id)
    assert billing.archive_plan(actor=creator, plan_id=plan.id) == "archived"
    late = account.register(email="late@example.com", password=PASSWORD)
    with pytest.raises(InvalidInput, match="no longer offered"):
        billing.start_checkout(actor=late, plan_id=plan.id)
    # The existing subscriber keeps the archived plan.
    assert entitlement(user_id=subscriber.id, assistant_id=assistant_id).plan_key == "pro"
    # A plan nobody subscribed to is deleted outright.
    team = billing.PlanInput(key="team", name="Team", monthly_price_cents=9900)
    unused = billing.save_plan(actor=creator, assistant_id=assistant_id, data=team).plan
    assert billing.archive_plan(actor=creator, plan_id=unused.id) == "deleted"
    assert [r.plan.key for r in billing.list_plans(actor=creator, assistant_id=assistant_id)] == [
        "free", "pro",
    ]  # fmt: skip


def test_checkout_completed_grants_the_plan_once(stripe: StripeFront, api: TestClient) -> None:
    creator, subscriber, assistant_id = _users()
    billing.save_plan(actor=creator, assistant_id=assistant_id, data=FREE)
    plan = billing.save_plan(actor=creator, assistant_id=assistant_id, data=PRO).plan
    assert entitlement(user_id=subscriber.id, assistant_id=assistant_id).plan_key == "free"
    sub_id, _ = _subscribe(stripe, api, subscriber, plan.id)
    granted = entitlement(user_id=subscriber.id, assistant_id=assistant_id)
    assert (granted.plan_key, granted.status, granted.overage_billed) == ("pro", "active", True)
    row = _row(subscriber.id, assistant_id)
    assert row.stripe_subscription_id == sub_id and row.current_period_end is not None
    # localstripe's own signed customer.subscription.created arrives too: older, so ignored.
    created = stripe.wait_delivery(
        "customer.subscription.created", where=lambda obj: obj.get("id") == sub_id
    )
    assert _deliver(api, created) in ("ignored", "processed")
    # A replay of either changes nothing and is acknowledged.
    before = _row(subscriber.id, assistant_id)
    completed = stripe.wait_delivery("checkout.session.completed")
    assert _deliver(api, completed) == "duplicate"
    assert _deliver(api, created) == "duplicate"
    with session_scope() as session:
        events = session.exec(select(StripeEvent.id)).all()
        assert len(events) == 2
        audit = session.exec(
            select(AuditEvent).where(AuditEvent.action == "billing.subscribed")
        ).all()
        assert len(audit) == 1  # granted once
    assert _row(subscriber.id, assistant_id).updated_at == before.updated_at
    with pytest.raises(InvalidInput, match="already subscribe"):
        billing.start_checkout(actor=subscriber, plan_id=plan.id)


def test_forged_stale_and_malformed_webhooks_are_refused(
    stripe: StripeFront, api: TestClient
) -> None:
    _users()
    data = event("customer.subscription.deleted", {"id": "sub_x", "object": "subscription"})
    payload = json.dumps(data).encode()
    forged = Delivery(payload, stripe_signature(payload, "whsec_attacker"))
    response = _post(api, forged)
    assert response.status_code == 400
    assert "signature verification failed" in response.json()["error"]["message"]
    stale = Delivery(
        payload, stripe_signature(payload, stripe.webhook_secret, int(time.time()) - 3600)
    )
    response = _post(api, stale)
    assert response.status_code == 400
    assert "too old" in response.json()["error"]["message"]
    tampered = Delivery(
        payload.replace(b"sub_x", b"sub_y"), stripe_signature(payload, stripe.webhook_secret)
    )
    assert _post(api, tampered).status_code == 400
    junk = b"not json"
    response = _post(api, Delivery(junk, stripe_signature(junk, stripe.webhook_secret)))
    assert response.status_code == 400 and "not a valid Stripe event" in response.text
    response = api.post("/webhooks/stripe", content=payload)
    assert response.status_code == 400 and "Missing Stripe-Signature" in response.text
    with session_scope() as session:
        assert session.exec(select(StripeEvent)).all() == []


def test_out_of_order_subscription_updates(stripe: StripeFront, api: TestClient) -> None:
    creator, subscriber, assistant_id = _users()
    plan = billing.save_plan(actor=creator, assistant_id=assistant_id, data=PRO).plan
    sub_id, created = _subscribe(stripe, api, subscriber, plan.id)
    current = stripe.localstripe_call("GET", f"/v1/subscriptions/{sub_id}")
    newer = {**current, "cancel_at_period_end": True}
    older = {**current, "status": "unpaid"}
    assert _deliver(api, _signed(stripe, event("customer.subscription.updated", newer,
                                               created=created + 20))) == "processed"  # fmt: skip
    late = _signed(stripe, event("customer.subscription.updated", older, created=created + 10))
    assert _deliver(api, late) == "ignored"
    row = _row(subscriber.id, assistant_id)
    assert (row.status, row.cancel_at_period_end) == ("active", True)
    assert row.last_event_created == created + 20
    with session_scope() as session:
        stored = session.get(StripeEvent, late.event["id"])
        assert stored is not None and "out of order" in stored.error


def test_a_renewal_whose_invoice_comes_first_still_moves_the_period(
    stripe: StripeFront, api: TestClient
) -> None:
    """At renewal Stripe may deliver invoice.paid before the (older) subscription.updated with
    the new period: the state stays, but the later period is taken."""
    creator, subscriber, assistant_id = _users()
    plan = billing.save_plan(actor=creator, assistant_id=assistant_id, data=PRO).plan
    sub_id, created = _subscribe(stripe, api, subscriber, plan.id)
    current = stripe.localstripe_call("GET", f"/v1/subscriptions/{sub_id}")
    before = _row(subscriber.id, assistant_id)
    assert before.current_period_end is not None
    invoice = stripe.localstripe_call("GET", "/v1/invoices", {"subscription": sub_id})["data"][0]
    renewal = {**invoice, "id": "in_next_" + sub_id, "billing_reason": "subscription_cycle"}
    paid = _signed(stripe, event("invoice.paid", renewal, created=created + 40))
    assert _deliver(api, paid) == "processed"
    start, end = current["current_period_end"], current["current_period_end"] + 30 * 86_400
    renewed = {**current, "current_period_start": start, "current_period_end": end}
    late = _signed(stripe, event("customer.subscription.updated", renewed, created=created + 30))
    assert _deliver(api, late) == "processed"
    row = _row(subscriber.id, assistant_id)
    assert int(row.current_period_end.timestamp()) == end  # type: ignore[union-attr]
    assert row.status == "active" and row.last_event_created == created + 40
    stale = {**current, "status": "unpaid"}  # an older period: still ignored whole
    old = _signed(stripe, event("customer.subscription.updated", stale, created=created + 20))
    assert _deliver(api, old) == "ignored"
    assert _row(subscriber.id, assistant_id).status == "active"


def test_failed_payment_dunning_then_free_tier(
    stripe: StripeFront, api: TestClient, mailbox: Mailbox
) -> None:
    creator, subscriber, assistant_id = _users()
    billing.save_plan(actor=creator, assistant_id=assistant_id, data=FREE)
    plan = billing.save_plan(actor=creator, assistant_id=assistant_id, data=PRO).plan
    sub_id, created = _subscribe(stripe, api, subscriber, plan.id)
    invoice = stripe.localstripe_call("GET", "/v1/invoices", {"subscription": sub_id})["data"][0]
    renewal = {**invoice, "id": "in_renewal_" + sub_id, "billing_reason": "subscription_cycle"}
    failed = {**renewal, "status": "open", "amount_paid": 0, "attempted": True}
    delivery = _signed(stripe, event("invoice.payment_failed", failed, created=created + 30))
    assert _deliver(api, delivery) == "processed"
    mail = mailbox.wait_for("sub@example.com")
    assert "Payment failed for Bee mentor" in str(mail["Subject"])
    assert "stays available for 7 days" in mail.get_content()
    row = _row(subscriber.id, assistant_id)
    assert row.status == "past_due" and row.past_due_since is not None
    assert entitlement(user_id=subscriber.id, assistant_id=assistant_id).reason == "grace period"
    later = utcnow() + timedelta(days=8)
    with session_scope() as session:
        after = entitlement_in(session, user_id=subscriber.id, assistant_id=assistant_id, now=later)
    assert after.plan_key == "free" and "payment failed" in after.reason
    mailbox.messages.clear()
    assert billing.notify_grace_ended(now=later) == 1
    assert "reduced to the free tier" in str(mailbox.wait_for("sub@example.com")["Subject"])
    assert billing.notify_grace_ended(now=later) == 0  # once per episode
    assert _deliver(api, delivery) == "duplicate"
    assert len(mailbox.messages) == 1  # the replay mailed nothing
    # The retry succeeds: the invoice is paid and the plan is back.
    paid = _signed(
        stripe, event("invoice.paid", {**renewal, "status": "paid"}, created=created + 40)
    )
    assert _deliver(api, paid) == "processed"
    row = _row(subscriber.id, assistant_id)
    assert row.status == "active" and row.past_due_since is None
    with session_scope() as session:
        stored = session.exec(
            select(Invoice).where(Invoice.stripe_invoice_id == renewal["id"])
        ).one()
        assert (stored.status, stored.amount_paid_cents) == ("paid", 1900)
    # A late copy of the failure (a different event id, older) neither un-pays nor re-dunns.
    stale = _signed(stripe, event("invoice.payment_failed", failed, created=created + 35))
    assert _deliver(api, stale) == "processed"
    assert _row(subscriber.id, assistant_id).status == "active"


def test_a_mail_server_down_neither_undoes_the_event_nor_drops_the_mail(
    stripe: StripeFront, api: TestClient, mailbox: Mailbox, settings_env: pytest.MonkeyPatch
) -> None:
    from gptstudio.jobs.worker import huey  # as a worker has it: with every job body loaded

    creator, subscriber, assistant_id = _users()
    billing.save_plan(actor=creator, assistant_id=assistant_id, data=FREE)
    plan = billing.save_plan(actor=creator, assistant_id=assistant_id, data=PRO).plan
    sub_id, created = _subscribe(stripe, api, subscriber, plan.id)
    invoice = stripe.localstripe_call("GET", "/v1/invoices", {"subscription": sub_id})["data"][0]
    failed = {**invoice, "id": "in_down_" + sub_id, "status": "open", "amount_paid": 0,
              "billing_reason": "subscription_cycle", "attempted": True}  # fmt: skip
    before = {t.id for t in huey.pending()}
    settings_env.setenv("GPTSTUDIO_SMTP_PORT", "1")  # nobody listens: the mail server is down
    get_settings.cache_clear()
    delivery = _signed(stripe, event("invoice.payment_failed", failed, created=created + 30))
    assert _deliver(api, delivery) == "processed"  # applied, not rolled back into a retry
    assert _row(subscriber.id, assistant_id).status == "past_due"
    queued = [t for t in huey.pending() if t.id not in before]
    assert len(queued) == 1 and queued[0].args[0] == "sub@example.com"
    assert "Payment failed" in queued[0].args[1]
    settings_env.setenv("GPTSTUDIO_SMTP_PORT", str(mailbox.port))  # it is back
    get_settings.cache_clear()
    huey.execute(queued[0])  # what the worker does with it
    huey.revoke(queued[0])  # run here: no worker should run it again
    assert "Payment failed for Bee mentor" in str(mailbox.wait_for("sub@example.com")["Subject"])


def test_declined_card_grants_nothing(stripe: StripeFront, api: TestClient) -> None:
    creator, subscriber, assistant_id = _users()
    billing.save_plan(actor=creator, assistant_id=assistant_id, data=FREE)
    plan = billing.save_plan(actor=creator, assistant_id=assistant_id, data=PRO).plan
    url = billing.start_checkout(actor=subscriber, plan_id=plan.id)
    with pytest.raises(ValueError, match="declined"):
        stripe.complete_checkout(url.rsplit("/", 1)[1], card="4000000000000341")
    customer = stripe.calls("/v1/checkout/sessions")[0].params["customer"]
    (invoice,) = stripe.localstripe_call("GET", "/v1/invoices", {"customer": customer})["data"]
    assert invoice["status"] != "paid"
    sub_id = invoice["subscription"]
    mine = lambda obj: obj.get("id") == sub_id  # noqa: E731
    assert _deliver(api, stripe.wait_delivery("customer.subscription.created", where=mine)) == (
        "processed"
    )
    failed = _signed(stripe, event("invoice.payment_failed", invoice))
    assert _deliver(api, failed) == "processed"
    assert _deliver(api, stripe.wait_delivery("customer.subscription.deleted", where=mine)) in (
        "processed", "ignored",
    )  # fmt: skip
    after = entitlement(user_id=subscriber.id, assistant_id=assistant_id)
    assert after.plan_key == "free"
    assert _row(subscriber.id, assistant_id).status in ("incomplete", "canceled")
    with session_scope() as session:
        stored = session.exec(select(Invoice)).one()
        assert stored.status == "payment_failed" and stored.user_id == subscriber.id


def test_subscription_deleted_falls_back_to_free(stripe: StripeFront, api: TestClient) -> None:
    creator, subscriber, assistant_id = _users()
    billing.save_plan(actor=creator, assistant_id=assistant_id, data=FREE)
    plan = billing.save_plan(actor=creator, assistant_id=assistant_id, data=PRO).plan
    sub_id, _ = _subscribe(stripe, api, subscriber, plan.id)
    time.sleep(1.1)  # the deletion event must be at least a second newer than the checkout's
    stripe.localstripe_call("DELETE", f"/v1/subscriptions/{sub_id}")
    deleted = stripe.wait_delivery(
        "customer.subscription.deleted", where=lambda obj: obj.get("id") == sub_id
    )
    assert _deliver(api, deleted) == "processed"
    after = entitlement(user_id=subscriber.id, assistant_id=assistant_id)
    assert after.plan_key == "free" and after.reason == "Your subscription has ended."
    row = _row(subscriber.id, assistant_id)
    assert row.status == "canceled" and row.canceled_at is not None  # churn counts from here


def test_invoice_paid_then_refunded(stripe: StripeFront, api: TestClient) -> None:
    creator, subscriber, assistant_id = _users()
    plan = billing.save_plan(actor=creator, assistant_id=assistant_id, data=PRO).plan
    sub_id, _ = _subscribe(stripe, api, subscriber, plan.id)
    succeeded = stripe.wait_delivery(
        "invoice.payment_succeeded", where=lambda obj: obj.get("subscription") == sub_id
    )
    assert _deliver(api, succeeded) == "processed"
    invoice_id = succeeded.event["data"]["object"]["id"]
    with session_scope() as session:
        invoice = session.exec(select(Invoice).where(Invoice.stripe_invoice_id == invoice_id)).one()
        assert (invoice.status, invoice.amount_paid_cents) == ("paid", 1900)
        assert invoice.user_id == subscriber.id and invoice.assistant_id == assistant_id
    charge = {"id": "ch_test", "object": "charge", "invoice": invoice_id, "amount": 1900,
              "amount_captured": 1900, "currency": "usd", "refunded": False}  # fmt: skip
    partial = _signed(stripe, event("charge.refunded", {**charge, "amount_refunded": 500}))
    full = _signed(stripe, event("charge.refunded", {**charge, "amount_refunded": 1900}))
    assert _deliver(api, full) == "processed"
    assert _deliver(api, partial) == "processed"  # late partial never lowers the refunded sum
    assert _deliver(api, full) == "duplicate"
    with session_scope() as session:
        invoice = session.exec(select(Invoice).where(Invoice.stripe_invoice_id == invoice_id)).one()
        assert (invoice.status, invoice.amount_refunded_cents) == ("refunded", 1900)


def test_usage_reporting_is_idempotent(stripe: StripeFront, api: TestClient) -> None:
    creator, subscriber, assistant_id = _users()
    plan = billing.save_plan(actor=creator, assistant_id=assistant_id, data=PRO).plan
    _subscribe(stripe, api, subscriber, plan.id)
    with session_scope() as session:
        for tokens in (600, 600, 300):  # 1000 included: 200 and then 300 over
            half = tokens // 2
            session.add(
                UsageEvent(
                    user_id=subscriber.id, assistant_id=assistant_id,
                    input_tokens=half, output_tokens=tokens - half,
                )
            )  # fmt: skip
    assert billing.report_usage() == 2
    assert billing.report_usage() == 0
    calls = stripe.calls("/v1/billing/meter_events")
    assert sorted(int(c.params["payload"]["value"]) for c in calls) == [200, 300]
    assert all(c.idempotency_key == c.params["identifier"] for c in calls)
    customer = _row(subscriber.id, assistant_id).stripe_customer_id
    assert {c.params["payload"]["stripe_customer_id"] for c in calls} == {customer}
    assert calls[0].params["event_name"] == billing.meter_event_name(assistant_id)
    # A crash after Stripe accepted but before reported_at was written: resent, not re-billed.
    with session_scope() as session:
        last = session.exec(select(UsageEvent).order_by(col(UsageEvent.id).desc())).first()
        assert last is not None and last.reported_at is not None
        last.reported_at = None
        session.add(last)
    assert billing.report_usage() == 1
    assert len(stripe.calls("/v1/billing/meter_events")) == 3
    assert len(stripe.meter_events) == 2


def test_usage_task_runs_on_the_queue(stripe: StripeFront, run_tasks_inline: None) -> None:
    from gptstudio.jobs.tasks import grace_period_task, report_usage_task

    _users()
    assert report_usage_task.call_local() == 0
    assert grace_period_task.call_local() == 0
