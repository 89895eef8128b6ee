"""Stripe Connect (gptstudio/services/connect.py): a creator onboards an Express account through
an Account Link; subscriptions to their assistants become destination charges with the
operator's application fee, recorded per invoice; their balance and payouts are read from their
account with the Stripe-Account header. The operator's own assistants need no Connect."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient
from sqlmodel import select

from gptstudio.db import session_scope, utcnow
from gptstudio.errors import InvalidInput
from gptstudio.models import Assistant, Invoice, User
from gptstudio.models.user import UserPublic
from gptstudio.services import connect, creator_tier
from gptstudio.services.plan import save_plan
from tests.billing.fake_stripe import StripeFront
from tests.billing.helpers import PRO, deliver, make_users, subscribe


def _public(email: str) -> UserPublic:
    with session_scope() as session:
        row = session.exec(select(User).where(User.email == email)).one()
        return UserPublic.model_validate(row, from_attributes=True)


def _onboard(front: StripeFront, api: TestClient, creator: UserPublic) -> str:
    url = connect.onboarding_url(actor=creator)
    assert url.startswith(f"{front.url}/connect/onboard/acctlink_")
    account = _public(creator.email)
    with session_scope() as session:
        user = session.get(User, account.id)
        assert user is not None
        account_id = user.stripe_account_id
    front.finish_onboarding(account_id)
    updated = front.wait_delivery("account.updated", where=lambda a: a["id"] == account_id)
    assert deliver(api, updated) == "processed"
    return account_id


def test_creator_onboards_and_subscriptions_pay_them_less_the_fee(
    stripe: StripeFront, api: TestClient
) -> None:
    creator, subscriber, assistant_id = make_users()
    assert not connect.summary(actor=creator).account_id  # not set up yet
    account_id = _onboard(stripe, api, creator)
    made = stripe.accounts[account_id]
    assert made["type"] == "express" and made["metadata"]["gptstudio_user_id"] == str(creator.id)
    assert set(made["capabilities"]) == {"card_payments", "transfers"}
    (link,) = stripe.calls("/v1/account_links")
    assert link.params["type"] == "account_onboarding"
    assert link.params["return_url"].endswith("/revenue?connect=return")
    assert link.params["refresh_url"].endswith("/revenue?connect=refresh")
    # A second visit reuses the account (a new link each time: they expire).
    connect.onboarding_url(actor=creator)
    assert len(stripe.calls("/v1/accounts")) == 1

    plan = save_plan(actor=creator, assistant_id=assistant_id, data=PRO).plan
    sub_id, _ = subscribe(stripe, api, subscriber, plan.id)
    (checkout,) = stripe.calls("/v1/checkout/sessions")
    terms = checkout.params["subscription_data"]
    assert terms["transfer_data"] == {"destination": account_id}
    assert float(terms["application_fee_percent"]) == 10.0
    paid = stripe.wait_delivery(
        "invoice.paid", where=lambda i: i.get("application_fee_amount") is not None
    )
    assert deliver(api, paid) == "processed"
    # localstripe's own invoice event (no Connect there) never lowers what was recorded.
    plain = stripe.wait_delivery(
        "invoice.payment_succeeded", where=lambda i: i.get("subscription") == sub_id
    )
    assert deliver(api, plain) == "processed"
    with session_scope() as session:
        invoice = session.exec(select(Invoice)).one()
        assert (invoice.amount_paid_cents, invoice.application_fee_cents) == (1900, 190)
        assert invoice.connected_account == account_id and invoice.kind == "assistant"
    (fee,) = [f for f in stripe.application_fees if f["account"] == account_id]
    assert fee["amount"] == 190 and fee["object"] == "application_fee"

    view = connect.summary(actor=creator)
    assert (view.charges_enabled, view.payouts_enabled) == (True, True)
    assert view.pending == {"usd": 1710} and view.fees == {"usd": 190}
    assert view.gross == {"usd": 1900}
    assert account_id in stripe.stripe_accounts  # read from their account, not the platform's
    stripe.pay_out(account_id)
    after = connect.summary(actor=creator)
    assert [(p.amount_cents, p.status) for p in after.payouts] == [(1710, "paid")]
    assert after.pending == {"usd": 0}
    admin = _public("admin@example.com")
    since = utcnow().replace(year=2000)
    assert creator_tier.revenue_split(actor=admin, since=since) == (
        {"usd": 190}, {"usd": 1710},
    )  # fmt: skip


def test_without_connect_subscriptions_stay_on_the_platform(
    stripe: StripeFront, api: TestClient
) -> None:
    creator, subscriber, assistant_id = make_users()
    admin = _public("admin@example.com")
    with pytest.raises(InvalidInput, match="no payout account is needed"):
        connect.onboarding_url(actor=admin)
    # The operator's own assistant, and a creator who has not onboarded: no transfer, no fee.
    with session_scope() as session:
        row = session.get(Assistant, assistant_id)
        assert row is not None
        row.owner_id = admin.id
        session.add(row)
    plan = save_plan(actor=admin, assistant_id=assistant_id, data=PRO).plan
    subscribe(stripe, api, subscriber, plan.id)
    (checkout,) = stripe.calls("/v1/checkout/sessions")
    assert "transfer_data" not in checkout.params["subscription_data"]
    assert "application_fee_percent" not in checkout.params["subscription_data"]
    assert connect.summary(actor=admin).enabled is False
    assert connect.summary(actor=creator).account_id == ""
    # Back from onboarding before any webhook: the account is read from Stripe.
    connect.onboarding_url(actor=creator)
    account_id = connect.summary(actor=creator).account_id
    assert connect.summary(actor=creator).charges_enabled is False
    stripe.finish_onboarding(account_id)
    connect.refresh_account(actor=creator)
    assert connect.summary(actor=creator).charges_enabled is True
