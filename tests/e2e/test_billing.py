"""In the browser: a creator sets tiers, a subscriber pays through the offline Stripe Checkout,
the signed webhooks reach the app, and the pricing page shows the active plan.

The shared ``app`` fixture points the app at the offline Stripe: localstripe plus the recorded
front of tests/billing/fake_stripe.py.
"""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import Browser, Page, expect
from sqlalchemy import create_engine, text

from tests.billing.fake_stripe import StripeFront
from tests.e2e.conftest import RunningApp, hydrated, sign_up

pytestmark = pytest.mark.e2e


def _save_tier(page: Page, fields: dict[str, str]) -> None:
    for name, value in fields.items():
        page.fill(f"#plan-{name}", value)
    page.click("#plan-save")


def test_creator_sets_tiers_and_subscriber_pays(
    app: RunningApp, admin: str, stripe_front: StripeFront, browser: Browser
) -> None:
    front = stripe_front
    creator = browser.new_context().new_page()
    sign_up(creator, app, "cass@example.com", role="creator")
    expect(creator).to_have_url(re.compile(r"/dashboard/?$"), timeout=30_000)
    creator.click("#create-assistant")
    creator.fill("#assistant-name", "Bee Mentor")
    creator.click("#create-submit")
    link = creator.get_by_role("link", name="Documents and data").first
    expect(link).to_be_visible()
    assistant_id = int(str(link.get_attribute("href")).rsplit("=", 1)[1])

    creator.goto(f"{app.url}/assistant/plans?id={assistant_id}")
    hydrated(creator)
    expect(creator.locator("#no-plans")).to_be_visible()
    _save_tier(creator, {"key": "free", "name": "Free", "included_tokens": "1000"})
    expect(creator.locator("#plan-row-free")).to_contain_text("Free: no Stripe needed")
    _save_tier(creator, {"key": "pro", "name": "Professional", "monthly": "oops"})
    expect(creator.locator("#form-error")).to_contain_text("must be an amount such as 19")
    _save_tier(
        creator,
        {"key": "pro", "name": "Professional", "monthly": "19", "annual": "190",
         "included_tokens": "100000", "rpm": "60", "overage": "0.02"},
    )  # fmt: skip
    expect(creator.locator("#plan-row-pro .plan-sync")).to_contain_text("Synced to Stripe")
    # Editing a tier: the new monthly price becomes a new Stripe Price.
    creator.locator("#plan-row-pro .plan-edit").click()
    expect(creator.locator("#plan-name")).to_have_value("Professional")
    creator.fill("#plan-monthly", "24")
    creator.click("#plan-save")
    expect(creator.locator("#plan-row-pro")).to_contain_text("24.00")
    expect(creator.locator("#plan-row-pro .plan-sync")).to_contain_text("Synced to Stripe")
    creator.context.close()
    with create_engine(app.database_url).begin() as connection:  # publishing is not this test
        connection.execute(
            text("UPDATE assistants SET is_published = 1 WHERE id = :id"), {"id": assistant_id}
        )

    subscriber = browser.new_context().new_page()
    sign_up(subscriber, app, "saul@example.com")
    expect(subscriber).to_have_url(re.compile(r"/home/?$"), timeout=30_000)
    subscriber.goto(f"{app.url}/pricing?assistant={assistant_id}")
    expect(subscriber.locator("#subscribe-pro")).to_be_enabled()
    expect(subscriber.locator("#plan-pro .plan-price")).to_contain_text("24.00 USD / month")
    subscriber.click("#annual-toggle")
    expect(subscriber.locator("#plan-pro .plan-price")).to_contain_text("190.00 USD / year")
    subscriber.click("#annual-toggle")
    subscriber.click("#subscribe-pro")
    expect(subscriber).to_have_url(re.compile(r"/pay/cs_test_"), timeout=30_000)
    (checkout,) = front.calls("/v1/checkout/sessions")
    assert checkout.params["mode"] == "subscription"
    assert checkout.params["allow_promotion_codes"] == "true"
    subscriber.click("#pay")
    expect(subscriber).to_have_url(re.compile(r"/pricing/?\?.*checkout=success"), timeout=30_000)
    expect(subscriber.locator("#checkout-notice")).to_contain_text(
        "You are subscribed to pro", timeout=60_000
    )
    expect(subscriber.locator("#current-plan")).to_have_text("Professional")
    expect(subscriber.locator("#current-status")).to_have_text("active")
    expect(subscriber.locator("#plan-pro .plan-current")).to_be_visible()
    subscriber.click("#manage")
    expect(subscriber.locator("#portal")).to_be_visible(timeout=30_000)
    subscriber.context.close()
