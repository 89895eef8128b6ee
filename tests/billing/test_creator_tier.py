"""The platform's own tiers for creators (gptstudio/services/creator_tier.py): an admin defines
them (mirrored to Stripe), a creator buys one through Checkout (the webhooks move users.tier),
its limits refuse with clear messages, and training compute beyond the included GPU-hours is
metered to Stripe once."""

from __future__ import annotations

import time

import pytest
from fastapi.testclient import TestClient
from sqlmodel import select

from gptstudio.db import session_scope, utcnow
from gptstudio.errors import InvalidInput
from gptstudio.models import Dataset, Invoice, TrainingJob, User
from gptstudio.models.creator_tier import ComputeUsage, CreatorSubscription
from gptstudio.models.user import UserPublic
from gptstudio.services import assistant, creator_tier
from gptstudio.services.creator_tier import (
    OverageNeedsConfirmation,
    TierInput,
    TierLimitReached,
)
from gptstudio.services.training import priority_of
from tests.billing.fake_stripe import StripeFront
from tests.billing.helpers import deliver, make_users

FREE = TierInput(
    key="free", name="Free", included_gpu_hours=0.01, max_assistants=1, max_concurrent_jobs=1,
    storage_mb=5,
)  # fmt: skip
PRO = TierInput(
    key="professional", name="Professional", monthly_price_cents=4900, included_gpu_hours=0.01,
    overage_cents_per_gpu_hour=120, max_assistants=10, max_concurrent_jobs=2, storage_mb=1000,
    queue_priority=25,
)  # fmt: skip


def _user(**where: object) -> UserPublic:
    with session_scope() as session:
        query = select(User)
        for name, value in where.items():
            query = query.where(getattr(User, name) == value)
        return UserPublic.model_validate(session.exec(query).one(), from_attributes=True)


def _admin() -> UserPublic:
    return _user(email="admin@example.com")


def _upgrade(front: StripeFront, api: TestClient, creator: UserPublic) -> str:
    url = creator_tier.start_checkout(actor=creator, key="professional")
    front.complete_checkout(url.rsplit("/", 1)[1])
    completed = front.wait_delivery("checkout.session.completed")
    assert deliver(api, completed) == "processed"
    return str(completed.event["data"]["object"]["subscription"])


def _job(assistant_id: int) -> int:
    with session_scope() as session:
        version = len(session.exec(select(Dataset.id)).all()) + 1
        data = Dataset(
            assistant_id=assistant_id, version=version, content_hash="a" * 64, status="ready"
        )
        session.add(data)
        session.flush()
        job = TrainingJob(assistant_id=assistant_id, dataset_id=data.id or 0, base_model="tiny")
        session.add(job)
        session.flush()
        return job.id or 0


def _fresh(user_id: int) -> UserPublic:
    return _user(id=user_id)


def test_admin_defines_tiers_and_a_creator_upgrades_through_checkout(
    stripe: StripeFront, api: TestClient
) -> None:
    creator, _subscriber, _ = make_users()
    admin = _admin()
    with pytest.raises(Exception, match="admin"):
        creator_tier.save_tier(actor=creator, data=PRO)
    with pytest.raises(Exception, match="one of free, individual"):
        creator_tier.save_tier(actor=admin, data=TierInput(key="gold", name="Gold"))
    with pytest.raises(Exception, match="Only a paid tier can bill overage"):
        creator_tier.save_tier(
            actor=admin,
            data=TierInput(
                key="free", name="F", overage_cents_per_gpu_hour=5, included_gpu_hours=1
            ),
        )
    creator_tier.save_tier(actor=admin, data=FREE)
    pro = creator_tier.save_tier(actor=admin, data=PRO)
    monthly = stripe.objects[pro.stripe_monthly_price_id]
    assert (monthly["unit_amount"], monthly["recurring"]["interval"]) == (4900, "month")
    overage = next(
        p for p in stripe.objects.values()
        if p["object"] == "price" and p["recurring"]["usage_type"] == "metered"
        and p["product"] == monthly["product"]
    )  # fmt: skip
    assert overage["unit_amount"] == 120 and overage["active"]
    assert overage["transform_quantity"] == {"divide_by": "3600", "round": "up"}
    meter = stripe.objects[overage["recurring"]["meter"]]
    assert meter["event_name"] == creator_tier.METER_EVENT
    with pytest.raises(Exception, match="free: it needs no checkout"):
        creator_tier.start_checkout(actor=creator, key="free")

    sub_id = _upgrade(stripe, api, creator)
    (checkout,) = stripe.calls("/v1/checkout/sessions")
    assert checkout.params["metadata"]["gptstudio_creator_tier"] == "professional"
    assert [i["price"] for i in checkout.params["line_items"]] == [
        pro.stripe_monthly_price_id, overage["id"],
    ]  # fmt: skip
    upgraded = _fresh(creator.id)
    assert upgraded.tier == "professional"
    with session_scope() as session:
        row = session.exec(select(CreatorSubscription)).one()
        assert (row.user_id, row.status, row.stripe_subscription_id) == (
            creator.id, "active", sub_id,
        )  # fmt: skip
        assert priority_of(upgraded, session) == 25
    assert creator_tier.portal_url(actor=creator).startswith(f"{stripe.url}/portal/")
    with pytest.raises(Exception, match="already subscribe to the professional tier"):
        creator_tier.start_checkout(actor=creator, key="professional")

    # The tier's invoice is the platform's revenue, not a creator's.
    paid = stripe.wait_delivery(
        "invoice.payment_succeeded", where=lambda obj: obj.get("subscription") == sub_id
    )
    assert deliver(api, paid) == "processed"
    with session_scope() as session:
        invoice = session.exec(select(Invoice)).one()
        assert (invoice.kind, invoice.amount_paid_cents, invoice.assistant_id) == (
            "creator_tier", 4900, None,
        )  # fmt: skip
    since = utcnow().replace(year=2000)
    assert creator_tier.revenue_split(actor=admin, since=since) == ({"usd": 4900}, {})

    # Cancelled (in the Portal, here in localstripe): back to the free tier.
    time.sleep(1.1)
    stripe.localstripe_call("DELETE", f"/v1/subscriptions/{sub_id}")
    deleted = stripe.wait_delivery(
        "customer.subscription.deleted", where=lambda obj: obj.get("id") == sub_id
    )
    assert deliver(api, deleted) == "processed"
    assert _fresh(creator.id).tier == "free"


def test_limits_refuse_with_clear_messages(db: str) -> None:
    creator, _, assistant_id = make_users()
    admin = _admin()
    # No tier defined: nothing is limited (an installation run by its one operator).
    assistant.create_assistant(actor=creator, name="Second bot")
    creator_tier.save_tier(actor=admin, data=FREE)
    with pytest.raises(TierLimitReached, match="Free tier allows 1 assistant and you have 2"):
        assistant.create_assistant(actor=creator, name="Third bot")
    assistant.create_assistant(actor=admin, name="Admins are not limited")
    with session_scope() as session:
        assert creator_tier.storage_quota_mb(session, user_id=creator.id) == 5
        with pytest.raises(TierLimitReached, match=r"does not bill.*renews on"):
            creator_tier.check_training(
                session, user_id=creator.id, estimated_seconds=60, confirm_overage=True
            )
        assert (
            creator_tier.check_training(
                session, user_id=creator.id, estimated_seconds=30, confirm_overage=False
            )
            == 0
        )
    _job(assistant_id)  # queued: the one concurrent job the free tier runs
    with session_scope() as session, pytest.raises(TierLimitReached, match="1 training job at"):
        creator_tier.check_training(
            session, user_id=creator.id, estimated_seconds=1, confirm_overage=False
        )


def test_overage_needs_confirmation_then_is_metered_once(
    stripe: StripeFront, api: TestClient
) -> None:
    creator, _, assistant_id = make_users()
    creator_tier.save_tier(actor=_admin(), data=PRO)
    _upgrade(stripe, api, creator)
    with session_scope() as session:
        with pytest.raises(OverageNeedsConfirmation, match=r"1\.20 USD per GPU-hour"):
            creator_tier.check_training(
                session, user_id=creator.id, estimated_seconds=100, confirm_overage=False
            )
        over = creator_tier.check_training(
            session, user_id=creator.id, estimated_seconds=100, confirm_overage=True
        )
        assert over == pytest.approx(64)  # 100 s against 36 s included
    first = creator_tier.record_compute(job_id=_job(assistant_id), seconds=20, devices=1)
    assert first is not None and first.overage_seconds == 0  # 20 of the 36 included
    second = creator_tier.record_compute(job_id=_job(assistant_id), seconds=25, devices=2)
    assert second is not None
    assert (second.device_seconds, second.overage_seconds) == (50, 34)
    (sent,) = stripe.meter_events.values()
    customer = _customer(creator.id)
    assert sent["event_name"] == creator_tier.METER_EVENT
    assert sent["payload"] == {"stripe_customer_id": customer, "value": "34"}
    assert creator_tier.report_compute_overage() == 0  # reported once
    with session_scope() as session:
        rows = session.exec(select(ComputeUsage).order_by(ComputeUsage.id)).all()
        assert [r.reported_at is not None for r in rows] == [False, True]
    shown = creator_tier.usage(actor=_fresh(creator.id))
    assert (shown.compute_seconds, shown.overage_seconds, shown.paid) == (70, 34, True)


def test_metering_without_stripe_keeps_the_usage(db: str) -> None:
    creator, _, assistant_id = make_users()
    creator_tier.save_tier(actor=_admin(), data=PRO)
    with pytest.raises(InvalidInput, match="not ready for sale"):
        creator_tier.start_checkout(actor=creator, key="professional")
    row = creator_tier.record_compute(job_id=_job(assistant_id), seconds=3.5, devices=1)
    assert row is not None and (row.device_seconds, row.overage_seconds) == (3.5, 0)
    assert creator_tier.report_compute_overage() == 0


def _customer(user_id: int) -> str:
    with session_scope() as session:
        user = session.get(User, user_id)
        assert user is not None
        return user.stripe_customer_id
