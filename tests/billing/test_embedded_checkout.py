"""Embedded Checkout (#17 §1) against the offline Stripe: the session's parameters, its client
secret, the status the return page reads before and after paying, closing a session given up for
the hosted page, and the CSP that Stripe documents for it."""

from __future__ import annotations

import urllib.error
import urllib.parse
import urllib.request

import pytest
from fastapi.testclient import TestClient

from gptstudio.errors import NotFound
from gptstudio.services.plan import save_plan
from gptstudio.services.subscription import (
    checkout_status,
    expire_checkout,
    start_checkout,
    start_embedded_checkout,
)
from gptstudio.settings import get_settings
from gptstudio.stripe_client import STRIPE_CSP, stripe_csp_sources
from tests.billing.fake_stripe import StripeFront
from tests.billing.helpers import PRO, deliver, make_users


def _csp(client: TestClient) -> dict[str, list[str]]:
    csp = client.get("/healthz").headers["content-security-policy"]
    return {part.split()[0]: part.split()[1:] for part in csp.split("; ")}


def test_embedded_session_then_paid_then_read_back(stripe: StripeFront, api: TestClient) -> None:
    creator, subscriber, assistant_id = make_users()
    plan = save_plan(actor=creator, assistant_id=assistant_id, data=PRO).plan
    made = start_embedded_checkout(actor=subscriber, plan_id=plan.id)
    (call,) = stripe.calls("/v1/checkout/sessions")
    assert call.params["ui_mode"] == "embedded"
    assert call.params["return_url"] == (
        "http://localhost:3000/checkout/return?session_id={CHECKOUT_SESSION_ID}"
    )
    assert "success_url" not in call.params and "cancel_url" not in call.params
    assert call.params["metadata"]["gptstudio_plan_id"] == str(plan.id)
    assert made.session_id.startswith("cs_test_")
    assert made.client_secret.startswith(f"{made.session_id}_secret_")

    before = checkout_status(actor=subscriber, session_id=made.session_id)
    assert (before.status, before.payment_status) == ("open", "unpaid")
    assert before.assistant_name == "Bee mentor" and before.plan_name == "Professional"
    assert before.current is None
    with pytest.raises(NotFound):  # a session is its own subscriber's business
        checkout_status(actor=creator, session_id=made.session_id)
    with pytest.raises(NotFound):
        checkout_status(actor=subscriber, session_id="cs_test_nosuchsession")
    with pytest.raises(NotFound):
        checkout_status(actor=subscriber, session_id="../v1/customers")

    stripe.complete_checkout(made.session_id)
    deliver(api, stripe.wait_delivery("checkout.session.completed"))
    after = checkout_status(actor=subscriber, session_id=made.session_id)
    assert (after.status, after.payment_status) == ("complete", "paid")
    assert after.current is not None
    assert (after.current.tier, after.current.status, after.current.paid) == ("pro", "active", True)
    expire_checkout(actor=subscriber, session_id=made.session_id)  # complete: left as it is
    assert stripe.calls(f"/v1/checkout/sessions/{made.session_id}/expire") == []


def test_a_session_given_up_for_the_hosted_page_is_closed(stripe: StripeFront) -> None:
    creator, subscriber, assistant_id = make_users()
    plan = save_plan(actor=creator, assistant_id=assistant_id, data=PRO).plan
    made = start_embedded_checkout(actor=subscriber, plan_id=plan.id, interval="year")
    expire_checkout(actor=subscriber, session_id=made.session_id)
    assert checkout_status(actor=subscriber, session_id=made.session_id).status == "expired"
    frame = f"{stripe.url}/embedded/{made.session_id}?" + urllib.parse.urlencode(
        {"client_secret": made.client_secret}
    )
    with urllib.request.urlopen(frame, timeout=10) as closed:  # the iframe takes no card now
        page = closed.read().decode()
    assert "no longer open" in page and "<form" not in page
    hosted = start_checkout(actor=subscriber, plan_id=plan.id, interval="year")
    assert hosted.startswith(f"{stripe.url}/pay/cs_test_")
    assert (
        stripe.calls("/v1/checkout/sessions")[-1]
        .params["success_url"]
        .endswith("checkout=success&session_id={CHECKOUT_SESSION_ID}")
    )


def test_the_csp_allows_what_stripe_documents_for_embedded_checkout(
    stripe: StripeFront, settings_env: pytest.MonkeyPatch
) -> None:
    from gptstudio.api import create_api

    without = _csp(TestClient(create_api()))  # no publishable key: hosted only, no Stripe
    assert (
        without["frame-src"] == ["'self'"] and "https://js.stripe.com" not in without["script-src"]
    )
    settings_env.setenv("GPTSTUDIO_STRIPE_PUBLISHABLE_KEY", "pk_test_gptstudio")
    get_settings.cache_clear()
    real = _csp(TestClient(create_api()))
    for directive, sources in STRIPE_CSP.items():
        assert real[directive][-len(sources) :] == list(sources)
    assert real["frame-src"][:1] == ["'self'"] and real["form-action"] == ["'self'"]
    settings_env.setenv("GPTSTUDIO_STRIPE_JS_URL", f"{stripe.url}/stripe-js/v3")
    get_settings.cache_clear()
    standin = stripe_csp_sources()
    assert standin["script-src"][-1] == standin["frame-src"][-1] == stripe.url
    assert stripe.url not in standin["connect-src"]  # the stand-in's page script calls nothing
