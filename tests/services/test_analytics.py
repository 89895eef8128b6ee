"""Dashboard numbers from rows built directly through the models, on SQLite and PostgreSQL:
MRR (annual / 12, trials and free plans excluded), churn, ARPU, revenue net of refunds per day
and per assistant, usage per model version, quota remaining, and isolation between creators."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import pytest
from sqlmodel import Session

from gptstudio.db import session_scope, utcnow
from gptstudio.errors import InvalidInput, NotFound, PermissionDenied
from gptstudio.models import (
    Assistant,
    Dataset,
    Invoice,
    ModelVersion,
    Plan,
    Role,
    Subscription,
    TrainingJob,
    UsageEvent,
)
from gptstudio.models.user import UserPublic
from gptstudio.services import account, analytics

PASSWORD = "correct horse battery"
NOW = utcnow()


def ago(days: float) -> datetime:
    return NOW - timedelta(days=days)


@dataclass
class World:
    people: dict[str, UserPublic]
    bees: int
    hives: int
    tax: int
    secret: int
    v1: int
    v2: int


def _user(name: str, role: Role = Role.subscriber) -> UserPublic:
    return account.register(email=f"{name}@example.com", password=PASSWORD, role=role)


def _sub(
    session: Session, who: UserPublic, plan: Plan, *, status: str = "active", created: float = 60,
    updated: float = 1, interval: str = "month", **more: object,
) -> None:  # fmt: skip
    session.add(
        Subscription(
            user_id=who.id, assistant_id=plan.assistant_id, plan_id=plan.id, tier=plan.key,
            status=status, interval=interval, created_at=ago(created), updated_at=ago(updated),
            **more,
        )
    )  # fmt: skip


def _invoice(
    session: Session, who: UserPublic, assistant_id: int, days: float, **money: object
) -> None:
    session.add(
        Invoice(
            stripe_invoice_id=f"in_{who.id}_{assistant_id}_{days}_{len(money)}_{id(money)}",
            user_id=who.id, assistant_id=assistant_id, created_at=ago(days),
            hosted_invoice_url=f"https://invoice.example/{who.id}/{days}", **money,
        )
    )  # fmt: skip


def _use(
    session: Session, who: UserPublic, assistant_id: int, days: float, inputs: int, outputs: int,
    version: int | None = None,
) -> None:  # fmt: skip
    session.add(
        UsageEvent(
            user_id=who.id, assistant_id=assistant_id, model_version_id=version,
            input_tokens=inputs, output_tokens=outputs, created_at=ago(days),
            request_id=f"r-{who.id}-{assistant_id}-{days}-{inputs}",
        )
    )  # fmt: skip


@pytest.fixture
def world(db: str) -> World:
    people = {"ada": _user("ada")}  # the first account: the admin
    people |= {n: _user(n, Role.creator) for n in ("cy", "cleo")}
    people |= {n: _user(n) for n in ("sue", "sam", "tia", "pat", "old", "can", "gone")}
    with session_scope() as s:
        assistants = {
            name: Assistant(owner_id=people[owner].id, name=name, slug=name.lower(),
                            is_published=published)
            for name, owner, published in (
                ("Bees", "cy", True), ("Hives", "cy", True), ("Tax", "cleo", True),
                ("Secret", "cleo", False),
            )
        }  # fmt: skip
        s.add_all(assistants.values())
        s.flush()
        ids = {name: int(a.id or 0) for name, a in assistants.items()}
        pro = Plan(assistant_id=ids["Bees"], key="pro", name="Pro", monthly_price_cents=1000,
                   annual_price_cents=9600, included_tokens=1000)  # fmt: skip
        free = Plan(assistant_id=ids["Hives"], key="free", name="Free", included_tokens=500)
        tax = Plan(assistant_id=ids["Tax"], key="firm", name="Firm", monthly_price_cents=2000)
        s.add_all([pro, free, tax])
        s.flush()
        p = people
        _sub(s, p["sue"], pro, current_period_start=ago(10), current_period_end=ago(-20))
        _sub(s, p["sam"], pro, interval="year")
        _sub(s, p["tia"], pro, status="trialing", created=5)
        _sub(s, p["pat"], pro, status="past_due", past_due_since=ago(2))  # in the 7-day grace
        _sub(s, p["old"], pro, status="past_due", past_due_since=ago(20))  # past the grace
        _sub(s, p["can"], pro, status="canceled", updated=10)  # churned in the last 30 days
        _sub(s, p["gone"], pro, status="canceled", created=90, updated=45)  # churned before
        _sub(s, p["sue"], free)  # a second (free) subscription of the same user
        _sub(s, p["sue"], tax)  # another creator's paying subscriber
        _invoice(s, p["sue"], ids["Bees"], 3, amount_due_cents=1000, amount_paid_cents=1000)
        _invoice(s, p["sam"], ids["Bees"], 3, amount_due_cents=9600, amount_paid_cents=9600,
                 amount_refunded_cents=9600, status="refunded")  # fmt: skip
        _invoice(s, p["pat"], ids["Bees"], 1, amount_due_cents=1000, amount_paid_cents=1000,
                 amount_refunded_cents=400, status="partially_refunded")  # fmt: skip
        _invoice(s, p["pat"], ids["Bees"], 1.01, amount_due_cents=1000, status="payment_failed")
        _invoice(s, p["sue"], ids["Bees"], 100, amount_due_cents=1000, amount_paid_cents=1000)
        _invoice(s, p["sue"], ids["Hives"], 2, currency="eur", amount_paid_cents=500)
        _invoice(s, p["sue"], ids["Tax"], 1, amount_paid_cents=2000)
        dataset = Dataset(assistant_id=ids["Bees"])
        s.add(dataset)
        s.flush()
        s.add(TrainingJob(assistant_id=ids["Bees"], dataset_id=int(dataset.id or 0),
                          base_model="tiny", status="succeeded"))  # fmt: skip
        v1 = ModelVersion(assistant_id=ids["Bees"], version=1, base_model="tiny")
        v2 = ModelVersion(assistant_id=ids["Bees"], version=2, base_model="tiny")
        s.add_all([v1, v2])
        s.flush()
        _use(s, p["sue"], ids["Bees"], 15, 30, 10, int(v1.id or 0))  # before sue's period
        _use(s, p["sue"], ids["Bees"], 2, 100, 50, int(v1.id or 0))
        _use(s, p["sue"], ids["Bees"], 0, 200, 100, int(v2.id or 0))
        _use(s, p["sam"], ids["Bees"], 0, 10, 5, int(v2.id or 0))
        _use(s, p["sue"], ids["Hives"], 0, 7, 3)
        _use(s, p["sue"], ids["Tax"], 0, 1000, 1000)
        return World(people, ids["Bees"], ids["Hives"], ids["Tax"], ids["Secret"],
                     int(v1.id or 0), int(v2.id or 0))  # fmt: skip


def day(days: float) -> str:
    return ago(days).astimezone(UTC).date().isoformat()


def test_creator_kpis(world: World) -> None:
    m = analytics.creator_metrics(actor=world.people["cy"])
    assert m.assistants == {world.bees: "Bees", world.hives: "Hives"}
    # sue, sam, tia (trial), pat (past due, in grace); sue counts once for two subscriptions
    assert m.active_subscribers == 4
    # sue 10.00 + sam 96.00 / 12 + pat 10.00; the trial and the free plan are not revenue
    assert m.paying_subscribers == {"usd": 3}
    assert m.mrr_cents == {"usd": 1000 + 800 + 1000}
    assert m.arpu_cents == {"usd": 933}
    # 'can' left in the last 30 days, out of sue, sue (free), sam, pat, old and can then
    assert (m.canceled_last_30_days, m.active_30_days_ago) == (1, 6)
    assert m.churn == pytest.approx(1 / 6)


def test_creator_revenue_is_net_of_refunds(world: World) -> None:
    m = analytics.creator_metrics(actor=world.people["cy"])
    by_day = {(r.day.isoformat(), r.currency): r.cents for r in m.revenue_by_day}
    assert by_day == {
        (day(3), "usd"): 1000,  # sue's 1000 and sam's fully refunded 9600
        (day(1), "usd"): 600,  # pat's 1000 less 400 refunded; the failed payment adds nothing
        (day(2), "eur"): 500,  # never added to dollars
    }
    assert m.revenue_cents == {"eur": 500, "usd": 1600}
    per_assistant = {(r.assistant_id, r.currency): r.cents for r in m.revenue_by_assistant}
    assert per_assistant == {(world.bees, "usd"): 1600, (world.hives, "eur"): 500}
    older = analytics.creator_metrics(actor=world.people["cy"], days=120)
    assert older.revenue_cents == {"eur": 500, "usd": 2600}  # the invoice of 100 days ago


def test_creator_usage_per_assistant_and_version(world: World) -> None:
    m = analytics.creator_metrics(actor=world.people["cy"])
    assert m.versions == {world.v1: "Bees v1", world.v2: "Bees v2"}
    per_version: dict[int | None, int] = {}
    per_assistant: dict[int, int] = {}
    for row in m.usage_by_day:
        per_version[row.model_version_id] = per_version.get(row.model_version_id, 0)
        per_version[row.model_version_id] += row.total_tokens
        per_assistant[row.assistant_id] = per_assistant.get(row.assistant_id, 0) + row.total_tokens
    assert per_version == {world.v1: 40 + 150, world.v2: 300 + 15, None: 10}
    assert per_assistant == {world.bees: 505, world.hives: 10}
    today = [r for r in m.usage_by_day if r.day.isoformat() == day(0)]
    assert {(r.assistant_id, r.model_version_id, r.requests) for r in today} == {
        (world.bees, world.v2, 2),
        (world.hives, None, 1),
    }


def test_a_creator_never_sees_another_creators_numbers(world: World) -> None:
    cleo = analytics.creator_metrics(actor=world.people["cleo"])
    assert cleo.assistants == {world.tax: "Tax", world.secret: "Secret"}
    assert (cleo.active_subscribers, cleo.mrr_cents, cleo.paying_subscribers) == (
        1,
        {"usd": 2000},
        {"usd": 1},
    )
    assert cleo.revenue_cents == {"usd": 2000}
    assert {r.assistant_id for r in cleo.revenue_by_assistant} == {world.tax}
    assert {r.assistant_id for r in cleo.usage_by_day} == {world.tax}
    assert cleo.versions == {}
    cy = analytics.creator_metrics(actor=world.people["cy"])
    assert world.tax not in cy.assistants
    assert all(r.assistant_id != world.tax for r in cy.usage_by_day + cy.revenue_by_assistant)
    # an admin's creator view is their own assistants too (none here)
    ada = analytics.creator_metrics(actor=world.people["ada"])
    assert (ada.assistants, ada.mrr_cents, ada.usage_by_day) == ({}, {}, [])


def test_subscriber_usage_against_quota(world: World) -> None:
    usage = analytics.subscriber_usage(actor=world.people["sue"])
    assert [u.assistant_name for u in usage] == ["Bees", "Hives", "Tax"]
    bees, hives, tax = usage
    assert (bees.plan_name, bees.tokens_per_period, bees.used_in_period) == ("Pro", 1000, 450)
    assert bees.remaining == 550
    assert bees.period_end is not None and bees.period_end.date() == ago(-20).date()
    assert bees.upgrade_path == f"/pricing?assistant={world.bees}"
    points = {p.day.isoformat(): p for p in bees.days}
    assert len(bees.days) == 30 and bees.days[-1].day.isoformat() == day(0)
    assert (points[day(2)].input_tokens, points[day(2)].output_tokens) == (100, 50)
    assert (points[day(15)].total_tokens, points[day(15)].period_tokens) == (40, None)
    assert [points[day(d)].period_tokens for d in (10, 2, 1, 0)] == [0, 150, 150, 450]
    assert (hives.plan_name, hives.tokens_per_period, hives.remaining) == ("Free", 500, 490)
    assert (tax.plan_name, tax.tokens_per_period, tax.remaining) == ("Firm", None, None)
    assert tax.used_in_period == 2000
    only = analytics.subscriber_usage(actor=world.people["sue"], assistant_id=world.hives, days=7)
    assert [(u.assistant_id, len(u.days)) for u in only] == [(world.hives, 7)]


def test_subscriber_usage_is_their_own(world: World) -> None:
    sam = analytics.subscriber_usage(actor=world.people["sam"])
    assert [(u.assistant_name, u.used_in_period) for u in sam] == [("Bees", 15)]
    # a published assistant never used shows zero; an unpublished one is not found
    (tax,) = analytics.subscriber_usage(actor=world.people["sam"], assistant_id=world.tax)
    assert (tax.used_in_period, sum(p.total_tokens for p in tax.days)) == (0, 0)
    with pytest.raises(NotFound):
        analytics.subscriber_usage(actor=world.people["sam"], assistant_id=world.secret)
    with pytest.raises(InvalidInput, match="1 to 366 days"):
        analytics.subscriber_usage(actor=world.people["sam"], days=0)
    tia = analytics.subscriber_usage(actor=world.people["tia"])  # subscribed, never used
    assert [(u.assistant_name, u.status, u.used_in_period, u.remaining) for u in tia] == [
        ("Bees", "trialing", 0, 1000)
    ]


def test_subscriber_invoices(world: World) -> None:
    rows = analytics.subscriber_invoices(actor=world.people["sue"])
    assert [(r.assistant_name, r.currency, r.net_cents) for r in rows] == [
        ("Tax", "usd", 2000),
        ("Hives", "eur", 500),
        ("Bees", "usd", 1000),
        ("Bees", "usd", 1000),
    ]
    assert all(r.hosted_invoice_url.startswith("https://invoice.example/") for r in rows)
    pat = analytics.subscriber_invoices(actor=world.people["pat"])
    assert [(r.status, r.net_cents) for r in pat] == [
        ("partially_refunded", 600),
        ("payment_failed", 0),
    ]
    assert analytics.subscriber_invoices(actor=world.people["tia"]) == []


def test_admin_totals(world: World) -> None:
    totals = analytics.admin_totals(actor=world.people["ada"])
    assert totals.users_by_role == {"admin": 1, "creator": 2, "subscriber": 7}
    assert (totals.assistants, totals.published) == (4, 3)
    assert totals.subscriptions_by_status == {
        "active": 4,
        "canceled": 2,
        "past_due": 2,
        "trialing": 1,
    }
    assert totals.revenue_30d_cents == {"eur": 500, "usd": 3600}
    assert totals.tokens_30d == 40 + 150 + 300 + 15 + 10 + 2000
    assert totals.training_jobs_by_status == {"succeeded": 1}
    assert len(totals.days) == 30 and totals.days[-1].tokens == 300 + 15 + 10 + 2000
    assert {d.day.isoformat(): d.revenue_cents for d in totals.days if d.revenue_cents} == {
        day(3): {"usd": 1000},
        day(2): {"eur": 500},
        day(1): {"usd": 2600},
    }


def test_roles_are_checked(world: World) -> None:
    for who in ("cy", "sue"):
        with pytest.raises(PermissionDenied):
            analytics.admin_totals(actor=world.people[who])
    with pytest.raises(PermissionDenied):
        analytics.creator_metrics(actor=world.people["sue"])
    with pytest.raises(InvalidInput):
        analytics.creator_metrics(actor=world.people["cy"], days=1000)
