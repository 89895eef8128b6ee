"""In the browser: the admin defines the installation's tiers for creators, a creator upgrades
their own tier through the offline Stripe Checkout, and a training job beyond the included
compute asks to confirm the overage, runs on the worker and is metered to Stripe."""

from __future__ import annotations

import re
import time
from pathlib import Path

import pytest
from playwright.sync_api import Browser, expect
from sqlmodel import Session, select

from gptstudio.db import engine_for
from gptstudio.models import User
from tests.billing.fake_stripe import StripeFront
from tests.e2e.conftest import ADMIN, RunningApp, hydrated, log_in
from tests.e2e.test_training import seed

pytestmark = pytest.mark.e2e
EMAIL = "tierra@example.com"


def test_creator_upgrades_tier_and_overage_is_metered(
    app: RunningApp, admin: str, stripe_front: StripeFront, browser: Browser, tmp_path: Path
) -> None:
    front = stripe_front
    bot = seed(app, tmp_path, email=EMAIL, name="Tier Trainer")

    boss = browser.new_context().new_page()
    log_in(boss, app, ADMIN)
    expect(boss).to_have_url(re.compile(r"/admin/?$"), timeout=30_000)
    boss.goto(f"{app.url}/admin/tiers")
    hydrated(boss)
    boss.fill("#tier-name", "Professional")
    boss.fill("#tier-monthly", "forty")
    boss.locator("#tier-key").click()
    boss.get_by_role("option", name="professional").click()
    boss.click("#tier-save")
    expect(boss.locator("#form-error")).to_contain_text("must be an amount such as 19")
    for name, value in {
        "monthly": "49", "gpu_hours": "0.0001", "overage": "1.20", "storage_mb": "500",
        "assistants": "5", "jobs": "2", "priority": "25",
    }.items():  # fmt: skip
        boss.fill(f"#tier-{name}", value)
    boss.click("#tier-save")
    row = boss.locator("#tier-row-professional")
    expect(row).to_contain_text("49.00 USD / month")
    expect(row.locator(".tier-sync")).to_contain_text("Synced to Stripe")
    boss.screenshot(path=str(tmp_path / "admin-tiers.png"), full_page=True)
    boss.context.close()

    page = browser.new_context().new_page()
    log_in(page, app, EMAIL)
    expect(page).to_have_url(re.compile(r"/dashboard/?$"), timeout=30_000)
    errors: list[str] = []
    failed: list[str] = []
    # The app's console (the offline Stripe's own pages have no favicon: a 401 there is not ours).
    page.on(
        "console",
        lambda m: (
            errors.append(m.text)
            if m.type == "error" and m.location.get("url", "").startswith(app.url)
            else None
        ),
    )
    page.on("response", lambda r: failed.append(f"{r.status} {r.url}") if r.status >= 400 else None)
    page.click("text=Tier")
    expect(page).to_have_url(re.compile(r"/studio/tier"))
    expect(page.locator("#current-tier")).to_have_text("No tier limits")
    expect(page.locator("#tier-professional .tier-price")).to_have_text("49.00 USD / month")
    page.click("#upgrade-professional")
    expect(page).to_have_url(re.compile(r"/pay/cs_test_"), timeout=30_000)
    page.click("#pay")
    expect(page).to_have_url(re.compile(r"/studio/tier/?\?checkout=success"), timeout=30_000)
    expect(page.locator("#checkout-notice")).to_contain_text(
        "You are on the Professional tier", timeout=60_000
    )
    expect(page.locator("#tier-status")).to_have_text("active")
    expect(page.locator("#tier-professional .tier-current")).to_be_visible()
    expect(page.locator("#meter-assistants")).to_have_text("1 of 5")
    page.screenshot(path=str(tmp_path / "creator-tier.png"), full_page=True)

    page.goto(f"{app.url}/assistant/training?id={bot}")
    hydrated(page)
    page.fill("#job-steps", "2")
    page.click("#job-start")
    expect(page.locator("#overage-notice")).to_contain_text("1.20 USD per GPU-hour", timeout=30_000)
    page.click("#job-confirm-overage")
    page.click("#job-start")
    expect(page.locator(".job-row").first).to_contain_text("succeeded", timeout=300_000)

    with Session(engine_for(app.database_url)) as session:
        customer = session.exec(select(User).where(User.email == EMAIL)).one().stripe_customer_id
    deadline = time.monotonic() + 60
    mine: list[dict[str, object]] = []
    while not mine and time.monotonic() < deadline:
        mine = [
            e for e in list(front.meter_events.values())
            if e.get("event_name") == "gptstudio_training_seconds"
            and (e.get("payload") or {}).get("stripe_customer_id") == customer
        ]  # fmt: skip
        time.sleep(0.5)
    assert mine, "the training overage was not reported to Stripe"
    assert int(str(mine[0]["payload"]["value"])) >= 1  # type: ignore[index]
    page.goto(f"{app.url}/studio/tier")
    expect(page.locator("#meter-compute")).to_contain_text("overage")
    page.screenshot(path=str(tmp_path / "creator-tier-metered.png"), full_page=True)
    assert not [e for e in errors if "Warning" not in e], (errors, failed)
    page.context.close()
