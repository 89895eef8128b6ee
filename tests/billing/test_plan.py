"""Plans (gptstudio/services/plan.py): validation, archiving and listing, on SQLite and
PostgreSQL with the offline Stripe."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

from gptstudio.errors import InvalidInput
from gptstudio.services import account
from gptstudio.services.entitlements import entitlement
from gptstudio.services.plan import PlanInput, archive_plan, list_plans, save_plan
from gptstudio.services.subscription import start_checkout
from tests.billing.fake_stripe import StripeFront
from tests.billing.helpers import FREE, PASSWORD, PRO, make_users, subscribe


def test_plan_validation_is_readable(stripe: StripeFront) -> None:
    creator, subscriber, assistant_id = make_users()
    save_plan(actor=creator, assistant_id=assistant_id, data=FREE)
    with pytest.raises(InvalidInput, match="already has a plan with the key"):
        save_plan(actor=creator, assistant_id=assistant_id, data=FREE)
    bad = PlanInput(key="x", name="X", monthly_price_cents=100,
                            overage_cents_per_1k_tokens=3)  # fmt: skip
    with pytest.raises(InvalidInput, match="set included tokens"):
        save_plan(actor=creator, assistant_id=assistant_id, data=bad)
    with pytest.raises(InvalidInput, match="lower-case letters"):
        save_plan(
            actor=creator, assistant_id=assistant_id,
            data=PlanInput(key="Pro Plan!", name="Pro"),
        )  # fmt: skip
    with pytest.raises(Exception, match="creator"):
        save_plan(actor=subscriber, assistant_id=assistant_id, data=PRO)


def test_checkout_for_archived_plan_is_refused(stripe: StripeFront, api: TestClient) -> None:
    creator, subscriber, assistant_id = make_users()
    save_plan(actor=creator, assistant_id=assistant_id, data=FREE)
    plan = save_plan(actor=creator, assistant_id=assistant_id, data=PRO).plan
    subscribe(stripe, api, subscriber, plan.id)
    assert archive_plan(actor=creator, plan_id=plan.id) == "archived"
    late = account.register(email="late@example.com", password=PASSWORD)
    with pytest.raises(InvalidInput, match="no longer offered"):
        start_checkout(actor=late, plan_id=plan.id)
    # The existing subscriber keeps the archived plan.
    assert entitlement(user_id=subscriber.id, assistant_id=assistant_id).plan_key == "pro"
    # A plan nobody subscribed to is deleted outright.
    team = PlanInput(key="team", name="Team", monthly_price_cents=9900)
    unused = save_plan(actor=creator, assistant_id=assistant_id, data=team).plan
    assert archive_plan(actor=creator, plan_id=unused.id) == "deleted"
    assert [r.plan.key for r in list_plans(actor=creator, assistant_id=assistant_id)] == [
        "free", "pro",
    ]  # fmt: skip
