"""Subscriptions from the subscriber's side (gptstudio/services/subscription.py): checkout,
the portal, free plans, and what happens without a Stripe key."""

from __future__ import annotations

import pytest

from gptstudio.services.entitlements import entitlement
from gptstudio.services.plan import PlanInput, save_plan
from gptstudio.services.subscription import portal_url, start_checkout, subscribe_free
from gptstudio.stripe_client import BillingNotConfigured
from tests.billing.fake_stripe import StripeFront
from tests.billing.helpers import FREE, PRO, make_users


def test_without_stripe_key_paid_plans_cannot_be_sold(db: str) -> None:
    creator, subscriber, assistant_id = make_users()
    paid = save_plan(actor=creator, assistant_id=assistant_id, data=PRO)
    assert not paid.synced and "Stripe is not configured" in paid.sync_status
    with pytest.raises(BillingNotConfigured, match="Payments are not set up") as refused:
        start_checkout(actor=subscriber, plan_id=paid.plan.id)
    assert "GPTSTUDIO_" not in str(refused.value)  # subscribers see no configuration names
    free = save_plan(actor=creator, assistant_id=assistant_id, data=FREE)
    subscribe_free(actor=subscriber, plan_id=free.plan.id)
    assert entitlement(user_id=subscriber.id, assistant_id=assistant_id).plan_key == "free"


def test_checkout_session_parameters(stripe: StripeFront) -> None:
    creator, subscriber, assistant_id = make_users()
    trial = PlanInput(**{**PRO.__dict__, "trial_days": 14})
    plan = save_plan(actor=creator, assistant_id=assistant_id, data=trial).plan
    url = start_checkout(actor=subscriber, plan_id=plan.id, interval="year")
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
    assert portal_url(actor=subscriber, assistant_id=assistant_id).startswith(
        f"{stripe.url}/portal/"
    )
