"""Billing's job bodies (gptstudio/jobs/billing.py): metered usage reported to Stripe once, and
the periodic tasks that run them on the queue."""

from __future__ import annotations

from fastapi.testclient import TestClient
from sqlmodel import col, select

from gptstudio.db import session_scope
from gptstudio.jobs.billing import report_usage
from gptstudio.jobs.tasks import run
from gptstudio.models import Plan, Subscription, UsageEvent
from gptstudio.services.plan import save_plan
from gptstudio.services.stripe_sync import meter_event_name
from tests.billing.fake_stripe import StripeFront
from tests.billing.helpers import PRO, make_users, subscribe, subscription_row


def test_usage_reporting_is_idempotent(stripe: StripeFront, api: TestClient) -> None:
    creator, subscriber, assistant_id = make_users()
    plan = save_plan(actor=creator, assistant_id=assistant_id, data=PRO).plan
    subscribe(stripe, api, subscriber, plan.id)
    with session_scope() as session:
        for tokens in (600, 600, 300):  # 1000 included: 200 and then 300 over
            half = tokens // 2
            session.add(
                UsageEvent(
                    user_id=subscriber.id, assistant_id=assistant_id,
                    input_tokens=half, output_tokens=tokens - half,
                )
            )  # fmt: skip
    assert report_usage() == 2
    assert report_usage() == 0
    calls = stripe.calls("/v1/billing/meter_events")
    assert sorted(int(c.params["payload"]["value"]) for c in calls) == [200, 300]
    assert all(c.idempotency_key == c.params["identifier"] for c in calls)
    customer = subscription_row(subscriber.id, assistant_id).stripe_customer_id
    assert {c.params["payload"]["stripe_customer_id"] for c in calls} == {customer}
    assert calls[0].params["event_name"] == meter_event_name(assistant_id)
    # A crash after Stripe accepted but before reported_at was written: resent, not re-billed.
    with session_scope() as session:
        last = session.exec(select(UsageEvent).order_by(col(UsageEvent.id).desc())).first()
        assert last is not None and last.reported_at is not None
        last.reported_at = None
        session.add(last)
    assert report_usage() == 1
    assert len(stripe.calls("/v1/billing/meter_events")) == 3
    assert len(stripe.meter_events) == 2


def test_usage_task_runs_on_the_queue(stripe: StripeFront, run_tasks_inline: None) -> None:
    from gptstudio.jobs.tasks import grace_period_task, report_usage_task

    make_users()
    assert report_usage_task.call_local() == 0
    assert grace_period_task.call_local() == 0


def test_bodies_run_by_name(stripe: StripeFront) -> None:
    """What a task does on a worker: the bodies are registered under their job names."""
    make_users()
    assert run("report_usage") == 0
    assert run("notify_grace_ended") == 0


def test_without_stripe_key_no_usage_is_reported(db: str) -> None:
    """A paid subscription left over after the key was removed: nothing to report to, no error."""
    _, subscriber, assistant_id = make_users()
    with session_scope() as session:
        plan = Plan(assistant_id=assistant_id, key="pro", name="Pro", monthly_price_cents=1900,
                    included_tokens=10, overage_cents_per_1k_tokens=2)  # fmt: skip
        session.add(plan)
        session.flush()
        session.add(
            Subscription(
                user_id=subscriber.id, assistant_id=assistant_id, plan_id=plan.id, tier="pro",
                stripe_customer_id="cus_gone", stripe_subscription_id="sub_gone",
            )
        )  # fmt: skip
        session.add(UsageEvent(user_id=subscriber.id, assistant_id=assistant_id,
                               input_tokens=50, output_tokens=50))  # fmt: skip
    assert report_usage() == 0
    with session_scope() as session:
        assert session.exec(select(UsageEvent)).one().reported_at is None  # kept for later
