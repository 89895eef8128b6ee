"""In the browser: a creator sets tiers; a subscriber pays inside the pricing page (embedded
Checkout), comes back to the return page and chats on the paid plan; where Stripe.js cannot
load, Checkout falls back to Stripe's hosted page; the signed webhooks reach the app and the
pricing page shows the active plan.

The shared ``app`` fixture points the app at the offline Stripe: localstripe plus the recorded
front of tests/billing/fake_stripe.py, whose stand-in for Stripe.js (fake_stripe_js.py) the app
loads instead of js.stripe.com.
"""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import Browser, Page, expect
from sqlalchemy import create_engine, text

from tests.billing.fake_stripe import StripeFront
from tests.e2e.conftest import BrowserErrors, RunningApp, hydrated, sign_up
from tests.e2e.test_chat_features import _published_with_two_versions

pytestmark = pytest.mark.e2e


def _save_tier(page: Page, fields: dict[str, str]) -> None:
    for name, value in fields.items():
        page.fill(f"#plan-{name}", value)
    page.click("#plan-save")


def test_creator_sets_tiers_and_subscriber_pays(
    app: RunningApp,
    admin: str,
    stripe_front: StripeFront,
    browser: Browser,
    browser_errors: BrowserErrors,
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
    # Stripe.js cannot load here (blocked, offline): Checkout falls back to Stripe's hosted page.
    browser_errors.expect(r"net::ERR_FAILED \(at http://127\.0\.0\.1:\d+/stripe-js/v3\)")
    subscriber.route("**/stripe-js/v3", lambda route: route.abort())
    subscriber.goto(f"{app.url}/pricing?assistant={assistant_id}")
    expect(subscriber.locator("#subscribe-pro")).to_be_enabled()
    expect(subscriber.locator("#plan-pro .plan-price")).to_contain_text("24.00 USD / month")
    subscriber.click("#annual-toggle")
    expect(subscriber.locator("#plan-pro .plan-price")).to_contain_text("190.00 USD / year")
    subscriber.click("#annual-toggle")
    subscriber.click("#subscribe-pro")
    expect(subscriber).to_have_url(re.compile(r"/pay/cs_test_"), timeout=30_000)
    checkout = front.calls("/v1/checkout/sessions")[-1]  # an embedded one first, if clicked early
    assert "ui_mode" not in checkout.params  # hosted
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


def test_subscriber_pays_inside_the_pricing_page_and_chats_on_the_paid_plan(
    app: RunningApp, admin: str, stripe_front: StripeFront, browser: Browser
) -> None:
    front = stripe_front
    creator = browser.new_context().new_page()
    sign_up(creator, app, "petal@example.com", role="creator")
    expect(creator).to_have_url(re.compile(r"/dashboard/?$"), timeout=30_000)
    creator.click("#create-assistant")
    creator.fill("#assistant-name", "Pollen Pro")
    creator.click("#create-submit")
    expect(creator.locator("text=Pollen Pro").first).to_be_visible()
    assistant_id = _published_with_two_versions(app, "pollen-pro")
    creator.goto(f"{app.url}/assistant/plans?id={assistant_id}")
    hydrated(creator)
    _save_tier(
        creator,
        {"key": "pro", "name": "Professional", "monthly": "12", "included_tokens": "50000"},
    )
    expect(creator.locator("#plan-row-pro .plan-sync")).to_contain_text("Synced to Stripe")
    creator.context.close()

    subscriber = browser.new_context().new_page()
    problems: list[str] = []
    subscriber.on("pageerror", lambda error: problems.append(str(error)))
    subscriber.on(
        "console", lambda m: problems.append(m.text) if m.type in ("error", "warning") else None
    )
    sign_up(subscriber, app, "pia@example.com")
    expect(subscriber).to_have_url(re.compile(r"/home/?$"), timeout=30_000)
    pricing = f"{app.url}/pricing?assistant={assistant_id}"
    subscriber.goto(pricing)
    expect(subscriber.locator("#subscribe-pro")).to_be_enabled()
    front.requests.clear()

    # Opened, then cancelled: the session is closed at Stripe and the form goes away.
    subscriber.click("#subscribe-pro")
    frame = subscriber.frame_locator("#embedded-checkout iframe")
    expect(frame.locator("#pay")).to_be_visible(timeout=30_000)
    (first,) = front.calls("/v1/checkout/sessions")
    assert first.params["ui_mode"] == "embedded"
    assert first.params["return_url"].endswith("/checkout/return?session_id={CHECKOUT_SESSION_ID}")
    subscriber.click("#close-checkout")
    expect(subscriber.locator("#embedded-checkout iframe")).to_have_count(0)
    sessions = [o for o in front.objects.values() if o.get("object") == "checkout.session"]
    assert sessions[-1]["ui_mode"] == "embedded" and sessions[-1]["status"] == "expired"
    subscriber.goto(f"{app.url}/checkout/return?session_id={sessions[-1]['id']}")
    expect(subscriber.locator("#return-notice")).to_contain_text("nothing was charged")
    expect(subscriber.locator("#return-pricing")).to_be_visible()
    subscriber.goto(f"{app.url}/checkout/return?session_id=cs_test_not_hers")
    expect(subscriber.locator("#return-notice")).to_have_text("There is no such checkout.")
    subscriber.goto(pricing)
    expect(subscriber.locator("#subscribe-pro")).to_be_enabled()

    # Paid inside the page: a declined card says so in the form; a good one goes through.
    subscriber.click("#subscribe-pro")
    expect(frame.locator("#pay")).to_be_visible(timeout=30_000)
    expect(subscriber).to_have_url(re.compile(r"/pricing/?\?assistant="))  # never left the page
    subscriber.screenshot(path=str(app.data_dir.parent / "embedded-checkout.png"), full_page=True)
    frame.locator("#card-number").fill("4000000000000002")
    frame.locator("#pay").click()
    expect(frame.locator("#card-error")).to_contain_text("declined", timeout=30_000)
    frame.locator("#card-number").fill("4242424242424242")
    frame.locator("#pay").click()
    expect(subscriber).to_have_url(
        re.compile(r"/checkout/return/?\?session_id=cs_test_"), timeout=30_000
    )
    expect(subscriber.locator("#return-status")).to_have_text("active", timeout=60_000)
    expect(subscriber.locator("#return-plan")).to_have_text("Professional")
    subscriber.screenshot(path=str(app.data_dir.parent / "checkout-return.png"), full_page=True)

    subscriber.click("#start-chatting")
    expect(subscriber).to_have_url(re.compile(r"/chat/?\?assistant=pollen-pro"))
    hydrated(subscriber)
    expect(subscriber.locator("#quota-text")).to_contain_text("Professional")
    subscriber.fill("#chat-input", "Paid question: how often should I check for mites?")
    subscriber.click("#send")
    expect(subscriber.locator("#send")).to_be_visible(timeout=90_000)
    for _ in range(2):  # the engine's first load of this adapter may come back empty on a busy
        if subscriber.locator(".failed-answer").count() == 0:  # machine: Retry, as a user would
            break
        subscriber.click("#retry")
        expect(subscriber.locator("#send")).to_be_visible(timeout=90_000)
    expect(subscriber.locator(".failed-answer")).to_have_count(0)
    expect(subscriber.locator(".assistant-message").last).not_to_have_text("")
    expect(subscriber.locator("#quota-text")).not_to_contain_text("50,000 of 50,000")
    expect(subscriber.locator("#form-error")).to_be_hidden()
    subscriber.goto(pricing)
    expect(subscriber.locator("#current-status")).to_have_text("active")
    expect(subscriber.locator("#plan-pro .plan-current")).to_be_visible()
    assert problems == [], problems
    subscriber.context.close()
