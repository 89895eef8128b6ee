"""The creator's revenue views with known numbers (gptstudio/services/revenue.py), on SQLite and
PostgreSQL: ARR, lifetime value, trial → paid conversion, refunds, cohort retention, and the CSV
exports (only the creator's own rows; spreadsheet formulas neutralised)."""

from __future__ import annotations

import csv
import dataclasses
import io
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import pytest
from sqlmodel import Session

from gptstudio.db import session_scope, utcnow
from gptstudio.errors import PermissionDenied
from gptstudio.models import Assistant, Invoice, Plan, Role, Subscription
from gptstudio.models.user import UserPublic
from gptstudio.services import account, analytics, revenue

PASSWORD = "correct horse battery"
NOW = utcnow()


def ago(days: float) -> datetime:
    return NOW - timedelta(days=days)


@dataclass
class World:
    cy: UserPublic
    cleo: UserPublic
    sub: UserPublic
    bees: int


def _user(name: str, role: Role = Role.subscriber) -> UserPublic:
    return account.register(email=f"{name}@example.com", password=PASSWORD, role=role)


def _sub(session: Session, who: UserPublic, plan: Plan, name: str, **fields: object) -> int:
    row = Subscription(
        user_id=who.id, assistant_id=plan.assistant_id, plan_id=plan.id, tier=plan.key,
        stripe_subscription_id=f"sub_{name}", stripe_customer_id=f"cus_{who.id}",
        **{"status": "active", "created_at": ago(60), "updated_at": ago(1), **fields},
    )  # fmt: skip
    session.add(row)
    session.flush()
    return int(row.id or 0)


def _invoice(session: Session, name: str, sub_id: int, plan: Plan, who: UserPublic,
             days: float, **money: int | str) -> None:  # fmt: skip
    session.add(
        Invoice(stripe_invoice_id=f"in_{name}", user_id=who.id, assistant_id=plan.assistant_id,
                subscription_id=sub_id, created_at=ago(days), **money)  # type: ignore[arg-type]
    )  # fmt: skip


@pytest.fixture
def world(db: str) -> World:
    _user("ada")  # the first account: the admin
    cy, cleo = _user("cy", Role.creator), _user("cleo", Role.creator)
    people = {n: _user(n) for n in ("a", "b", "c", "d", "e", "f")}
    with session_scope() as s:
        bees = Assistant(owner_id=cy.id, name="=SUM(A1:A9)", slug="bees", is_published=True)
        tax = Assistant(owner_id=cleo.id, name="Tax", slug="tax", is_published=True)
        s.add_all([bees, tax])
        s.flush()
        pro = Plan(assistant_id=int(bees.id or 0), key="pro", name="Pro",
                   monthly_price_cents=1000, annual_price_cents=9600)  # fmt: skip
        firm = Plan(assistant_id=int(tax.id or 0), key="firm", name="Firm",
                    monthly_price_cents=2000)  # fmt: skip
        s.add_all([pro, firm])
        s.flush()
        p = people
        a = _sub(s, p["a"], pro, "a")
        b = _sub(s, p["b"], pro, "b")
        _sub(s, p["c"], pro, "c", status="canceled", created_at=ago(70), canceled_at=ago(10))
        d = _sub(s, p["d"], pro, "d", created_at=ago(50), trial_end=ago(20))
        e = _sub(s, p["e"], pro, "e", status="canceled", created_at=ago(45), trial_end=ago(30),
                 canceled_at=ago(25))  # fmt: skip
        _sub(s, p["f"], pro, "f", status="trialing", created_at=ago(5), trial_end=ago(-9))
        # Another creator's trial, refund and subscriber: never in cy's numbers.
        t = _sub(s, p["a"], firm, "t", status="canceled", trial_end=ago(40), canceled_at=ago(3))
        _invoice(s, "t", t, firm, p["a"], 4, amount_paid_cents=2000, amount_refunded_cents=500)
        _invoice(s, "a", a, pro, p["a"], 3, amount_due_cents=1000, amount_paid_cents=1000)
        _invoice(s, "b", b, pro, p["b"], 5, amount_due_cents=1000, amount_paid_cents=1000,
                 amount_refunded_cents=1000, status="refunded")  # fmt: skip
        _invoice(s, "d", d, pro, p["d"], 2, amount_due_cents=1000, amount_paid_cents=1000,
                 amount_refunded_cents=250)  # fmt: skip
        _invoice(s, "e", e, pro, p["e"], 29, amount_due_cents=1000, status="payment_failed")
        _invoice(s, "old", a, pro, p["a"], 120, amount_paid_cents=1000,
                 amount_refunded_cents=1000)  # fmt: skip
        return World(cy=cy, cleo=cleo, sub=p["a"], bees=int(bees.id or 0))


def test_arr_lifetime_value_trials_and_refunds(world: World) -> None:
    metrics = analytics.creator_metrics(actor=world.cy, days=90)
    assert metrics.mrr_cents == {"usd": 3000}  # a, b, d: monthly Pro; f is trialing
    assert metrics.churn == pytest.approx(2 / 5)  # c, e lost of a..e active 30 days ago
    views = revenue.revenue_views(actor=world.cy, metrics=metrics, days=90)
    assert views.arr_cents == {"usd": 36_000}
    assert views.ltv_cents == {"usd": 2500}  # ARPU 1000 / churn 0.4
    assert views.trials == revenue.TrialConversion(ended=2, converted=1, running=1)
    assert views.trials.rate == 0.5
    assert views.refunds.count == 2  # b (all), d (part); the 120-day-old one is out of window
    assert views.refunds.refunded_cents == {"usd": 1250}
    assert views.refunds.paid_cents == {"usd": 3000}
    assert views.refunds.rate == {"usd": pytest.approx(1250 / 3000)}
    starts = [ago(days).strftime("%Y-%m") for days in (60, 60, 70, 50, 45, 5)]
    assert [(c.month, c.size) for c in views.cohorts] == [
        (month, starts.count(month)) for month in sorted(set(starts))
    ]
    assert all(c.retention[0] == 1.0 for c in views.cohorts)
    assert all(0 <= share <= 1 for c in views.cohorts for share in c.retention)
    no_churn = dataclasses.replace(metrics, canceled_last_30_days=0)
    assert revenue.lifetime_value(no_churn) is None  # no churn yet: no finite estimate


def test_another_creators_numbers_are_their_own(world: World) -> None:
    metrics = analytics.creator_metrics(actor=world.cleo, days=30)
    assert metrics.churn == 1.0 and metrics.mrr_cents == {}
    views = revenue.revenue_views(actor=world.cleo, metrics=metrics, days=30)
    assert views.arr_cents == {} and views.ltv_cents == {}
    assert views.trials == revenue.TrialConversion(ended=1, converted=1, running=0)
    assert views.refunds.refunded_cents == {"usd": 500}


def test_cohort_retention_known_months() -> None:
    now = datetime(2026, 12, 6, 12, tzinfo=UTC)
    day = lambda m, d, y=2026: datetime(y, m, d, 9, tzinfo=UTC)  # noqa: E731
    starts = [
        (day(9, 15), None),
        (day(9, 15), day(10, 20)),  # alive one month after its start, gone at two
        (day(9, 15), day(9, 20)),  # gone within its first month
        (day(11, 30), None),  # its month 1 (Dec 30) has not come yet
        (day(11, 1), day(12, 5)),  # alive at Dec 1, its month 1
        (day(10, 1, 2025), None),  # older than the 12 months shown
    ]
    result = revenue.cohorts(starts, now)
    assert [(c.month, c.size) for c in result] == [("2026-09", 3), ("2026-11", 2)]
    assert result[0].retention == pytest.approx([1.0, 2 / 3, 1 / 3])  # Dec 15 not yet observable
    assert result[1].retention == [1.0, 1.0]
    assert revenue.add_months(datetime(2026, 1, 31), 1) == datetime(2026, 2, 28)
    assert revenue.add_months(datetime(2026, 11, 30), 3) == datetime(2027, 2, 28)
    assert revenue.add_months(datetime(2026, 3, 15), -3) == datetime(2025, 12, 15)


def _rows(text: str) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(text)))


def test_csv_exports_hold_only_the_creators_rows(world: World) -> None:
    subs = _rows(revenue.subscriptions_csv(actor=world.cy))
    assert [r["stripe_subscription_id"] for r in subs] == [
        "sub_c", "sub_a", "sub_b", "sub_d", "sub_e", "sub_f"
    ]  # fmt: skip
    assert list(subs[0]) == list(revenue.SUBSCRIPTION_COLUMNS)
    first = subs[1]
    assert first["assistant"] == "'=SUM(A1:A9)"  # a formula to a spreadsheet: neutralised
    assert first["subscriber_email"] == "a@example.com"
    assert (first["plan"], first["status"], first["currency"]) == ("Pro", "active", "USD")
    assert (first["monthly_price"], first["annual_price"]) == ("10.00", "96.00")
    assert subs[0]["canceled_at"].endswith("Z") and first["canceled_at"] == ""
    invoices = _rows(revenue.invoices_csv(actor=world.cy))
    assert [r["stripe_invoice_id"] for r in invoices] == ["in_old", "in_e", "in_b", "in_a", "in_d"]
    d = invoices[-1]
    assert (d["amount_paid"], d["amount_refunded"], d["net"]) == ("10.00", "2.50", "7.50")
    assert invoices[2]["status"] == "refunded" and invoices[2]["net"] == "0.00"
    assert "in_t" not in revenue.invoices_csv(actor=world.cy)
    with pytest.raises(PermissionDenied):
        revenue.invoices_csv(actor=world.sub)
