"""Stripe sync (gptstudio/services/stripe_sync.py): a paid plan's Product and Prices, with the
real stripe SDK against localstripe and the recorded front."""

from __future__ import annotations

from gptstudio.db import session_scope
from gptstudio.models import Plan
from gptstudio.services.plan import PlanInput, save_plan
from tests.billing.fake_stripe import StripeFront
from tests.billing.helpers import PRO, make_users


def test_plan_sync_creates_product_and_prices(stripe: StripeFront) -> None:
    creator, _, assistant_id = make_users()
    saved = save_plan(actor=creator, assistant_id=assistant_id, data=PRO)
    assert saved.synced, saved.sync_status
    with session_scope() as session:
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
    changed = PlanInput(**{**PRO.__dict__, "monthly_price_cents": 2900})
    save_plan(actor=creator, assistant_id=assistant_id, data=changed, plan_id=saved.plan.id)
    with session_scope() as session:
        plan = session.get(Plan, saved.plan.id)
        assert plan is not None and plan.stripe_monthly_price_id != monthly
        assert plan.stripe_annual_price_id == annual
    assert stripe.objects[monthly]["active"] is False
