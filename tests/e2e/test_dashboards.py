"""Dashboards in the browser: a subscriber's usage against quota and invoices, a creator's
KPIs and charts (matching rows seeded into the app's database), and the admin totals."""

from __future__ import annotations

import csv
import io
import re
from datetime import datetime, timedelta

import pytest
from playwright.sync_api import Page, expect
from sqlmodel import Session, func, select

from gptstudio.db import engine_for, utcnow
from gptstudio.models import (
    Assistant,
    Invoice,
    ModelVersion,
    Plan,
    Role,
    Subscription,
    UsageEvent,
    User,
)
from gptstudio.services.account import hash_password
from tests.e2e.conftest import ADMIN, PASSWORD, RunningApp, log_in, sign_up

pytestmark = pytest.mark.e2e


def ago(days: float) -> datetime:
    return utcnow() - timedelta(days=days)


def _db(app: RunningApp) -> Session:
    return Session(engine_for(app.database_url), expire_on_commit=False)


def _user(session: Session, email: str, role: Role = Role.subscriber) -> User:
    found = session.exec(select(User).where(User.email == email)).first()
    if found is not None:
        return found
    user = User(email=email, password_hash=hash_password(PASSWORD), role=role.value)
    session.add(user)
    session.flush()
    return user


def _assistant(session: Session, owner: User, name: str) -> Assistant:
    row = Assistant(
        owner_id=int(owner.id or 0), name=name, slug=re.sub(r"\W+", "-", name.lower()),
        is_published=True,
    )  # fmt: skip
    session.add(row)
    session.flush()
    return row


def _plan(session: Session, assistant: Assistant, **fields: object) -> Plan:
    plan = Plan(assistant_id=int(assistant.id or 0), key="pro", name="Pro", **fields)
    session.add(plan)
    session.flush()
    return plan


def _subscribe(session: Session, user: User, plan: Plan, **fields: object) -> None:
    fields = {"created_at": ago(60), "updated_at": ago(1)} | fields
    session.add(
        Subscription(
            user_id=int(user.id or 0), assistant_id=plan.assistant_id, plan_id=plan.id,
            tier=plan.key, **fields,
        )
    )  # fmt: skip


def _invoice(
    session: Session, user: User, assistant: Assistant, days: float, **money: object
) -> None:
    n = session.exec(select(func.count()).select_from(Invoice)).one()
    session.add(
        Invoice(
            stripe_invoice_id=f"in_e2e_{n}", user_id=user.id, assistant_id=assistant.id,
            created_at=ago(days), **money,
        )
    )  # fmt: skip


def _use(
    session: Session, user: User, assistant: Assistant, days: float, tokens: tuple[int, int],
    version: ModelVersion | None = None,
) -> None:  # fmt: skip
    n = session.exec(select(func.count()).select_from(UsageEvent)).one()
    session.add(
        UsageEvent(
            user_id=user.id, assistant_id=int(assistant.id or 0), request_id=f"e2e-{n}",
            model_version_id=version.id if version else None, input_tokens=tokens[0],
            output_tokens=tokens[1], created_at=ago(days),
        )
    )  # fmt: skip
    session.flush()


def test_subscriber_sees_usage_against_quota_and_invoices(
    app: RunningApp, admin: str, page: Page
) -> None:
    sign_up(page, app, "uma@example.com")
    expect(page).to_have_url(re.compile(r"/home/?$"))
    with _db(app) as session:
        uma = _user(session, "uma@example.com")
        bees = _assistant(session, _user(session, "cora@example.com", Role.creator), "Quota Bees")
        pro = _plan(session, bees, monthly_price_cents=1000, included_tokens=1000)
        _subscribe(session, uma, pro, current_period_start=ago(5), current_period_end=ago(-25))
        _use(session, uma, bees, 1, (200, 100))
        _use(session, uma, bees, 0, (100, 50))
        _use(session, uma, bees, 9, (70, 0))  # before this period: not counted against it
        _invoice(session, uma, bees, 5, amount_due_cents=1000, amount_paid_cents=1000,
                 hosted_invoice_url="https://invoice.example/uma")  # fmt: skip
        session.commit()
        bees_id, reset = bees.id, ago(-25).strftime("%Y-%m-%d")

    page.goto(f"{app.url}/usage")
    card = page.locator(".usage-card", has_text="Quota Bees")
    expect(card.locator(".usage-remaining")).to_have_text("550")
    expect(card.locator(".usage-used")).to_have_text("450")
    expect(card.locator(".usage-quota")).to_have_text("1,000")
    expect(card.locator(".usage-resets")).to_have_text(reset)
    expect(card.locator(".usage-plan")).to_have_text("Pro")
    expect(card.locator(".usage-upgrade")).to_have_attribute(
        "href", f"/pricing?assistant={bees_id}"
    )
    chart = card.locator(".usage-chart svg.recharts-surface[role=application]")
    expect(chart).to_be_visible()
    expect(card.locator(".usage-chart .recharts-area")).to_have_count(3)
    expect(card.locator(".usage-chart .recharts-reference-line")).to_have_count(1)
    expect(card.locator(".usage-chart")).to_contain_text("used this period")
    invoice = page.locator(".invoice-row")
    expect(invoice).to_have_count(1)
    expect(invoice).to_contain_text("10.00 USD")
    expect(invoice).to_contain_text("paid")
    expect(invoice.get_by_role("link", name="View")).to_have_attribute(
        "href", "https://invoice.example/uma"
    )


def test_creator_sees_kpis_and_charts_of_their_own_assistants(
    app: RunningApp, admin: str, page: Page
) -> None:
    sign_up(page, app, "rhea@example.com", role="creator")
    expect(page).to_have_url(re.compile(r"/dashboard/?$"))
    with _db(app) as s:
        rhea = _user(s, "rhea@example.com")
        orchard, soil = _assistant(s, rhea, "Orchard Guide"), _assistant(s, rhea, "Soil Coach")
        otto = _assistant(s, _user(s, "otto@example.com", Role.creator), "Otto Taxes")
        pro = _plan(s, orchard, monthly_price_cents=1500, annual_price_cents=12000)
        basic = _plan(s, soil, monthly_price_cents=500)
        firm = _plan(s, otto, monthly_price_cents=99900)
        who = {n: _user(s, f"{n}@example.com") for n in ("ann", "bob", "cat", "dan", "eve")}
        paid = {n: {"stripe_subscription_id": f"sub_e2e_{n}"} for n in who}
        _subscribe(s, who["ann"], pro, **paid["ann"])
        _subscribe(s, who["bob"], pro, interval="year", **paid["bob"])  # 120.00 / 12 a month
        _subscribe(s, who["cat"], basic, **paid["cat"])
        _subscribe(s, who["dan"], pro, status="trialing", created_at=ago(3), trial_end=ago(-11))
        _subscribe(s, who["eve"], basic, status="canceled", updated_at=ago(5), **paid["eve"])
        _subscribe(s, who["ann"], firm)  # another creator's subscriber and money
        _invoice(s, who["ann"], orchard, 2, amount_paid_cents=1500)
        _invoice(s, who["bob"], orchard, 1, amount_paid_cents=12000, amount_refunded_cents=2000)
        _invoice(s, who["cat"], soil, 3, amount_paid_cents=500)
        _invoice(s, who["ann"], otto, 1, amount_paid_cents=99900)
        v1 = ModelVersion(assistant_id=int(orchard.id or 0), version=1, base_model="tiny")
        v2 = ModelVersion(assistant_id=int(orchard.id or 0), version=2, base_model="tiny")
        s.add_all([v1, v2])
        s.flush()
        _use(s, who["ann"], orchard, 2, (60, 40), v1)
        _use(s, who["bob"], orchard, 0, (150, 50), v2)
        _use(s, who["cat"], soil, 0, (30, 20))
        _use(s, who["ann"], otto, 0, (5000, 5000))
        s.commit()

    page.goto(f"{app.url}/revenue")
    # ann, bob, cat and dan (trial); eve left
    expect(page.locator("#kpi-subscribers")).to_have_text("4")
    expect(page.locator("#kpi-mrr")).to_have_text("30.00 USD")  # 15 + 120/12 + 5
    expect(page.locator("#kpi-arpu")).to_have_text("10.00 USD")  # 30 / 3 paying
    expect(page.locator("#kpi-churn")).to_have_text("25.0 %")  # eve, of ann, bob, cat, eve
    expect(page.locator("#revenue-total")).to_contain_text("120.00 USD")  # 15 + 100 + 5
    expect(page.locator("#kpi-arr")).to_have_text("360.00 USD")  # MRR × 12
    expect(page.locator("#kpi-ltv")).to_have_text("40.00 USD")  # ARPU 10 / churn 0.25
    expect(page.locator("#kpi-trials")).to_have_text("—")  # dan's trial is still running
    expect(page.locator(".kpi-card", has=page.locator("#kpi-trials"))).to_contain_text(
        "0 of 0 ended trials paid; 1 in trial now"
    )
    expect(page.locator("#kpi-refunds")).to_have_text("20.00 USD")
    expect(page.locator(".kpi-card", has=page.locator("#kpi-refunds"))).to_contain_text(
        "1 invoice refunded (14.3 % of USD paid)"  # 20 of 140
    )
    cohort = page.locator("#cohort-chart")
    expect(cohort.locator("svg.recharts-surface[role=application]")).to_be_visible()
    expect(cohort.locator(".recharts-line")).to_have_count(1)  # ann, bob, cat, eve: one month
    expect(cohort.locator(".recharts-legend-item-text")).to_have_text(
        f"{ago(60).strftime('%Y-%m')} (4)"
    )
    with page.expect_download() as download:
        page.click("#export-invoices")
    assert download.value.suggested_filename == "invoices.csv"
    invoices = list(csv.DictReader(io.StringIO(download.value.path().read_text())))
    assert sorted(r["assistant"] for r in invoices) == ["Orchard Guide"] * 2 + ["Soil Coach"]
    assert {r["amount_refunded"] for r in invoices} == {"0.00", "20.00"}
    with page.expect_download() as download:
        page.click("#export-subscriptions")
    subscriptions = list(csv.DictReader(io.StringIO(download.value.path().read_text())))
    assert sorted(r["subscriber_email"] for r in subscriptions) == [
        f"{n}@example.com" for n in ("ann", "bob", "cat", "dan", "eve")
    ]
    page.screenshot(path=str(app.data_dir.parent / "revenue.png"), full_page=True)

    for chart in ("revenue-chart", "revenue-by-assistant", "usage-by-assistant"):
        expect(page.locator(f"#{chart} svg.recharts-surface[role=application]")).to_be_visible()
    by_assistant = page.locator("#revenue-by-assistant")
    expect(by_assistant).to_contain_text("Orchard Guide")
    expect(by_assistant).to_contain_text("Soil Coach")
    expect(page.locator("#revenue-by-assistant .recharts-bar-rectangle")).to_have_count(2)
    expect(page.locator("#usage-by-assistant .recharts-area")).to_have_count(2)
    versions = page.locator("#usage-by-version")
    expect(versions.locator(".recharts-area")).to_have_count(3)
    for name in ("Orchard Guide v1", "Orchard Guide v2", "no version recorded"):
        expect(versions.locator(".recharts-legend-item-text", has_text=name)).to_have_count(1)
    expect(page.locator("body")).not_to_contain_text("Otto")


def test_admin_sees_installation_totals(app: RunningApp, admin: str, page: Page) -> None:
    with _db(app) as session:
        users = session.exec(select(func.count()).select_from(User)).one()
        assistants = session.exec(select(func.count()).select_from(Assistant)).one()
    log_in(page, app, ADMIN)
    expect(page).to_have_url(re.compile(r"/admin/?$"))
    expect(page.locator("#total-users")).to_have_text(str(users))
    expect(page.locator("#total-assistants")).to_have_text(str(assistants))
    expect(
        page.locator("#admin-tokens-chart svg.recharts-surface[role=application]")
    ).to_be_visible()
    expect(
        page.locator("#admin-revenue-chart svg.recharts-surface[role=application]")
    ).to_be_visible()
