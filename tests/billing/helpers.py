"""What the billing tests share: a creator, a subscriber and a published assistant; two plans;
checkout paid on the offline Stripe; webhook deliveries posted to the app as Stripe signs them."""

from __future__ import annotations

import json
from typing import Any

from fastapi.testclient import TestClient
from sqlmodel import select

from gptstudio.db import session_scope
from gptstudio.models import Assistant, Role, Subscription
from gptstudio.models.user import UserPublic
from gptstudio.services import account, assistant
from gptstudio.services.plan import PlanInput
from gptstudio.services.subscription import start_checkout
from tests.billing.fake_stripe import Delivery, StripeFront, stripe_signature

PASSWORD = "correct horse battery"
PRO = PlanInput(
    key="pro", name="Professional", monthly_price_cents=1900, annual_price_cents=19000,
    trial_days=0, included_tokens=1000, requests_per_minute=60, all_versions=True,
    overage_cents_per_1k_tokens=2,
)  # fmt: skip
FREE = PlanInput(key="free", name="Free", included_tokens=100, requests_per_minute=5)


def make_users() -> tuple[UserPublic, UserPublic, int]:
    account.register(email="admin@example.com", password=PASSWORD)
    creator = account.register(email="cy@example.com", password=PASSWORD, role=Role.creator)
    subscriber = account.register(email="sub@example.com", password=PASSWORD)
    made = assistant.create_assistant(actor=creator, name="Bee mentor")
    with session_scope() as session:
        row = session.get(Assistant, made.id)
        assert row is not None
        row.is_published = True
        session.add(row)
    return creator, subscriber, made.id


def post_event(api: TestClient, delivery: Delivery) -> Any:
    return api.post(
        "/webhooks/stripe",
        content=delivery.payload,
        headers={"Stripe-Signature": delivery.signature, "Content-Type": "application/json"},
    )


def deliver(api: TestClient, delivery: Delivery) -> str:
    response = post_event(api, delivery)
    assert response.status_code == 200, response.text
    return str(response.json()["outcome"])


def signed(front: StripeFront, data: dict[str, Any], timestamp: int | None = None) -> Delivery:
    payload = json.dumps(data).encode()
    return Delivery(payload, stripe_signature(payload, front.webhook_secret, timestamp))


def subscribe(
    front: StripeFront, api: TestClient, subscriber: UserPublic, plan_id: int
) -> tuple[str, int]:
    """Checkout → pay on the offline page → deliver the webhooks; (stripe sub id, created)."""
    url = start_checkout(actor=subscriber, plan_id=plan_id)
    session_id = url.rsplit("/", 1)[1]
    sub = front.complete_checkout(session_id)
    completed = front.wait_delivery("checkout.session.completed")
    assert deliver(api, completed) == "processed"
    return str(sub["id"]), int(completed.event["created"])


def subscription_row(user_id: int, assistant_id: int) -> Subscription:
    with session_scope() as session:
        row = session.exec(
            select(Subscription).where(
                Subscription.user_id == user_id, Subscription.assistant_id == assistant_id
            )
        ).one()
        session.expunge(row)
        return row
