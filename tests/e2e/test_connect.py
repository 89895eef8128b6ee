"""In the browser: a creator sets up payouts (Stripe Connect Express onboarding through an
Account Link, on the offline Stripe), a subscriber pays for their assistant, the invoice's
application fee is recorded, and the creator's revenue page shows the fee, the balance and a
payout read from their own account."""

from __future__ import annotations

import re
import time
from pathlib import Path

import pytest
from playwright.sync_api import Browser, expect
from sqlalchemy import create_engine, text

from tests.billing.fake_stripe import StripeFront
from tests.e2e.conftest import RunningApp, hydrated, sign_up

pytestmark = pytest.mark.e2e


def test_creator_onboards_connect_and_the_fee_is_recorded(
    app: RunningApp, admin: str, stripe_front: StripeFront, browser: Browser, tmp_path: Path
) -> None:
    front = stripe_front
    creator = browser.new_context().new_page()
    sign_up(creator, app, "connie@example.com", role="creator")
    expect(creator).to_have_url(re.compile(r"/dashboard/?$"), timeout=30_000)
    errors: list[str] = []
    failed: list[str] = []
    # The app's console (the offline Stripe's own pages have no favicon: a 401 there is not ours).
    creator.on(
        "console",
        lambda m: (
            errors.append(m.text)
            if m.type == "error" and m.location.get("url", "").startswith(app.url)
            else None
        ),
    )
    creator.on(
        "response", lambda r: failed.append(f"{r.status} {r.url}") if r.status >= 400 else None
    )
    creator.click("#create-assistant")
    creator.fill("#assistant-name", "Payout Mentor")
    creator.click("#create-submit")
    link = creator.get_by_role("link", name="Documents and data").first
    expect(link).to_be_visible()
    assistant_id = int(str(link.get_attribute("href")).rsplit("=", 1)[1])
    creator.goto(f"{app.url}/assistant/plans?id={assistant_id}")
    hydrated(creator)
    for name, value in {"key": "pro", "name": "Professional", "monthly": "19"}.items():
        creator.fill(f"#plan-{name}", value)
    creator.click("#plan-save")
    expect(creator.locator("#plan-row-pro .plan-sync")).to_contain_text("Synced to Stripe")

    creator.goto(f"{app.url}/revenue")
    expect(creator.locator("#connect-state")).to_have_text("Not set up")
    creator.click("#connect-onboard")
    expect(creator).to_have_url(re.compile(r"/connect/onboard/acctlink_"), timeout=30_000)
    creator.click("#connect-submit")
    expect(creator).to_have_url(re.compile(r"/revenue/?\?connect=return"), timeout=30_000)
    expect(creator.locator("#connect-state")).to_have_text("Payouts active")
    expect(creator.locator("#connect-onboard")).to_be_hidden()
    account_id = next(a for a, v in front.accounts.items() if v["email"] == "connie@example.com")
    with create_engine(app.database_url).begin() as connection:  # publishing is not this test
        connection.execute(
            text("UPDATE assistants SET is_published = 1 WHERE id = :id"), {"id": assistant_id}
        )

    subscriber = browser.new_context().new_page()
    sign_up(subscriber, app, "payer@example.com")
    expect(subscriber).to_have_url(re.compile(r"/home/?$"), timeout=30_000)
    subscriber.goto(f"{app.url}/pricing?assistant={assistant_id}")
    subscriber.click("#subscribe-pro")  # Checkout opens inside the pricing page (embedded)
    frame = subscriber.frame_locator("#embedded-checkout iframe")
    expect(frame.locator("#pay")).to_be_visible(timeout=30_000)
    frame.locator("#pay").click()
    expect(subscriber).to_have_url(
        re.compile(r"/checkout/return/?\?session_id=cs_test_"), timeout=30_000
    )
    expect(subscriber.locator("#return-status")).to_have_text("active", timeout=60_000)
    subscriber.context.close()
    session = front.objects[
        next(k for k, v in front.objects.items() if v.get("object") == "checkout.session"
             and v["metadata"].get("gptstudio_assistant_id") == str(assistant_id))
    ]  # fmt: skip
    assert session["subscription_data"]["transfer_data"] == {"destination": account_id}

    deadline, fee = time.monotonic() + 60, 0
    while not fee and time.monotonic() < deadline:
        with create_engine(app.database_url).begin() as connection:
            fee = (
                connection.execute(
                    text("SELECT application_fee_cents FROM invoices WHERE assistant_id = :id"),
                    {"id": assistant_id},
                ).scalar()
                or 0
            )
        time.sleep(0.5)
    assert fee == 190  # 10 % of 19.00, the operator's fee

    front.pay_out(account_id)
    creator.goto(f"{app.url}/revenue")
    expect(creator.locator("#connect-fees")).to_have_text("1.90 USD")
    expect(creator.locator("#connect-gross")).to_have_text("19.00 USD")
    expect(creator.locator(".payout-row")).to_contain_text("17.10 USD")
    creator.screenshot(path=str(tmp_path / "revenue-payouts.png"), full_page=True)
    assert not [e for e in errors if "Warning" not in e], (errors, failed)
    creator.context.close()
