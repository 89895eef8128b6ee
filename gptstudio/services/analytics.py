"""Dashboards' numbers: a subscriber's usage against quota and invoices, a creator's revenue,
subscribers, MRR, churn, ARPU and usage, and installation totals for admins.

Everything is computed from the local tables (never Stripe) with SQL aggregates grouped by UTC
day, currency, assistant and model version, so it answers the same on SQLite and PostgreSQL.
Money is kept in cents **per currency** (``{"usd": 1200}``): plans may be priced in different
currencies and amounts in different currencies are never added together.

Definitions (the dashboards say the same in their help texts):

* **active subscribers**: distinct users with a subscription to one of the creator's assistants
  whose status is ``active`` or ``trialing``, or ``past_due`` within ``billing_grace_days`` of
  the first failed payment (they still have access);
* **paying subscribers** and **MRR**: the same, without trials and without free plans; MRR is
  the plan's monthly price, or its annual price / 12 for a yearly subscription;
* **ARPU**: MRR / paying subscribers, per currency;
* **churn**: subscriptions canceled in the last 30 days / subscriptions active at the start of
  those 30 days. The subscription row has no ``canceled_at``: the time a subscription was
  canceled is taken as its last update (webhooks update the row when Stripe cancels it);
* **revenue**: invoices' amount paid minus amount refunded, on the day the invoice was created
  (a later refund lowers the invoice's own day).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

from sqlalchemy import and_, func, or_
from sqlalchemy.sql.elements import ColumnElement
from sqlmodel import Session, col, select

from gptstudio.db import as_date, session_scope, utc_day, utcnow
from gptstudio.errors import InvalidInput, NotFound
from gptstudio.models import (
    Assistant,
    Invoice,
    ModelVersion,
    Plan,
    Role,
    Subscription,
    TrainingJob,
    UsageEvent,
    User,
)
from gptstudio.models.user import UserPublic
from gptstudio.services import usage
from gptstudio.services.access import authorize
from gptstudio.services.entitlements import entitlement_in, month_window
from gptstudio.services.usage import UsageDay
from gptstudio.settings import get_settings

CHURN_DAYS = 30
ADMIN_DAYS = 30
MAX_DAYS = 366
Money = dict[str, int]
"""Cents per lower-case ISO currency code."""


# ---------------------------------------------------------------------------- shapes


@dataclass(frozen=True)
class DailyTokens:
    """One UTC day of a subscriber's usage of one assistant; ``period_tokens`` is what was used
    from the start of the current quota period to the end of that day (``None`` before it)."""

    day: date
    input_tokens: int
    output_tokens: int
    period_tokens: int | None = None

    @property
    def total_tokens(self) -> int:
        return self.input_tokens + self.output_tokens


@dataclass(frozen=True)
class SubscriberUsage:
    """A subscriber's use of one assistant: the plan, the quota of the current period, and the
    daily usage of the last ``days`` days."""

    assistant_id: int
    assistant_name: str
    plan_name: str
    status: str
    allowed: bool
    reason: str
    tokens_per_period: int | None
    used_in_period: int
    period_start: datetime
    period_end: datetime | None
    days: list[DailyTokens]

    @property
    def remaining(self) -> int | None:
        """Tokens left this period; ``None`` when unlimited."""
        if self.tokens_per_period is None:
            return None
        return max(0, self.tokens_per_period - self.used_in_period)

    @property
    def upgrade_path(self) -> str:
        return f"/pricing?assistant={self.assistant_id}"


@dataclass(frozen=True)
class InvoiceRow:
    id: int
    assistant_id: int | None
    assistant_name: str
    created_at: datetime
    status: str
    currency: str
    amount_due_cents: int
    amount_paid_cents: int
    amount_refunded_cents: int
    hosted_invoice_url: str

    @property
    def net_cents(self) -> int:
        return self.amount_paid_cents - self.amount_refunded_cents


@dataclass(frozen=True)
class DailyMoney:
    day: date
    currency: str
    cents: int


@dataclass(frozen=True)
class AssistantMoney:
    assistant_id: int
    currency: str
    cents: int


@dataclass(frozen=True)
class CreatorMetrics:
    since: date
    until: date
    assistants: dict[int, str]
    versions: dict[int, str]
    active_subscribers: int
    paying_subscribers: dict[str, int]
    mrr_cents: Money
    canceled_last_30_days: int
    active_30_days_ago: int
    revenue_by_day: list[DailyMoney]
    revenue_by_assistant: list[AssistantMoney]
    usage_by_day: list[UsageDay]  # by assistant and model version

    @property
    def churn(self) -> float | None:
        """Share of subscriptions lost in the last 30 days; ``None`` when none existed then."""
        if self.active_30_days_ago == 0:
            return None
        return self.canceled_last_30_days / self.active_30_days_ago

    @property
    def arpu_cents(self) -> Money:
        return {
            currency: round(cents / self.paying_subscribers[currency])
            for currency, cents in self.mrr_cents.items()
            if self.paying_subscribers.get(currency)
        }

    @property
    def revenue_cents(self) -> Money:
        return _add((r.currency, r.cents) for r in self.revenue_by_day)


@dataclass(frozen=True)
class DailyTotal:
    day: date
    tokens: int
    revenue_cents: Money = field(default_factory=dict)


@dataclass(frozen=True)
class AdminTotals:
    users_by_role: dict[str, int]
    assistants: int
    published: int
    subscriptions_by_status: dict[str, int]
    revenue_30d_cents: Money
    tokens_30d: int
    training_jobs_by_status: dict[str, int]
    days: list[DailyTotal]


# ---------------------------------------------------------------------------- helpers


def _day(session: Session, column: Any) -> ColumnElement[Any]:
    return utc_day(column, session.get_bind().dialect.name)


def _window(days: int, now: datetime) -> tuple[date, date, datetime]:
    """The last ``days`` UTC days including today: first day, last day, and the first day's
    midnight (the lower bound for queries)."""
    if not 1 <= days <= MAX_DAYS:
        raise InvalidInput(f"Choose a period of 1 to {MAX_DAYS} days.")
    last = now.astimezone(UTC).date()
    first = last - timedelta(days=days - 1)
    return first, last, datetime.combine(first, time(), tzinfo=UTC)


def each_day(first: date, last: date) -> list[date]:
    """Every day from ``first`` to ``last`` inclusive (charts need the days without data too)."""
    return [first + timedelta(days=n) for n in range((last - first).days + 1)]


def _add(items: Iterable[tuple[str, int]]) -> Money:
    total: dict[str, int] = defaultdict(int)
    for currency, cents in items:
        total[currency] += cents
    return dict(sorted(total.items()))


def _has_access(now: datetime) -> ColumnElement[bool]:
    """Subscriptions that give access now: active, trialing, or past_due within the grace."""
    grace_start = now - timedelta(days=get_settings().billing_grace_days)
    return or_(
        col(Subscription.status).in_(("active", "trialing")),
        and_(
            col(Subscription.status) == "past_due",
            col(Subscription.past_due_since).is_not(None),
            col(Subscription.past_due_since) >= grace_start,
        ),
    )


def _net() -> ColumnElement[Any]:
    return func.coalesce(
        func.sum(col(Invoice.amount_paid_cents) - col(Invoice.amount_refunded_cents)), 0
    )


# ---------------------------------------------------------------------------- subscribers


def _visible_ids(session: Session, actor: UserPublic, since: datetime) -> list[int]:
    """Assistants the actor subscribes to (any status) or used in the window."""
    subscribed = session.exec(
        select(Subscription.assistant_id).where(Subscription.user_id == actor.id)
    ).all()
    used = session.exec(
        select(UsageEvent.assistant_id)
        .where(UsageEvent.user_id == actor.id, col(UsageEvent.created_at) >= since)
        .distinct()
    ).all()
    return sorted(set(subscribed) | set(used))


def _check_visible(session: Session, actor: UserPublic, assistant_id: int, ids: list[int]) -> None:
    found = session.get(Assistant, assistant_id)
    visible = found is not None and (
        found.is_published
        or found.owner_id == actor.id
        or actor.role == Role.admin
        or assistant_id in ids
    )
    if not visible:
        raise NotFound("There is no such assistant.")


def subscriber_usage(
    *, actor: UserPublic, assistant_id: int | None = None, days: int = 30
) -> list[SubscriberUsage]:
    """The actor's usage of each assistant they subscribe to or used in the last ``days`` days
    (or of ``assistant_id`` only), by name: daily tokens, the current period's quota, what is
    left and when it resets."""
    authorize(actor, Role.subscriber, Role.creator)
    now = utcnow()
    first, last, since = _window(days, now)
    with session_scope() as session:
        ids = _visible_ids(session, actor, since)
        if assistant_id is not None:
            _check_visible(session, actor, assistant_id, ids)
            ids = [assistant_id]
        if not ids:
            return []
        daily: dict[int, dict[date, tuple[int, int]]] = defaultdict(dict)
        for row in usage.usage_by_day(
            user_id=actor.id, assistant_ids=ids, since=since, until=now + timedelta(days=1),
            by=("assistant",),
        ):  # fmt: skip
            daily[row.assistant_id or 0][row.day] = (row.input_tokens, row.output_tokens)
        result = [
            _usage_of(session, actor, aid, now, each_day(first, last), daily[aid]) for aid in ids
        ]
    return sorted(result, key=lambda u: (u.assistant_name.lower(), u.assistant_id))


def _usage_of(
    session: Session,
    actor: UserPublic,
    assistant_id: int,
    now: datetime,
    days: list[date],
    daily: dict[date, tuple[int, int]],
) -> SubscriberUsage:
    assistant = session.get(Assistant, assistant_id)
    if assistant is None:
        raise NotFound("There is no such assistant.")
    ent = entitlement_in(session, user_id=actor.id, assistant_id=assistant_id, now=now)
    start, end = ent.period_start, ent.period_end
    if start is None:  # unlimited access has no period: show this calendar month
        start, end = month_window(now)
    used = usage.used_tokens_in(
        session, user_id=actor.id, assistant_id=assistant_id, since=start,
        until=end or now + timedelta(days=1),
    )  # fmt: skip
    # Period-to-date per day, counted back from the exact total: every day after ``d`` lies
    # wholly inside the period, so used - (tokens after d) is the usage up to the end of d.
    points: list[DailyTokens] = []
    after = 0
    for on in reversed(days):
        inputs, outputs = daily.get(on, (0, 0))
        in_period = on >= start.astimezone(UTC).date()
        points.append(DailyTokens(on, inputs, outputs, used - after if in_period else None))
        after += inputs + outputs
    return SubscriberUsage(
        assistant_id=assistant_id, assistant_name=assistant.name, plan_name=ent.plan_name,
        status=ent.status, allowed=ent.allowed, reason=ent.reason,
        tokens_per_period=ent.tokens_per_period, used_in_period=used, period_start=start,
        period_end=end if ent.period_end is not None else None, days=points[::-1],
    )  # fmt: skip


def subscriber_invoices(*, actor: UserPublic, limit: int = 100) -> list[InvoiceRow]:
    """The actor's own invoices, newest first."""
    authorize(actor, Role.subscriber, Role.creator)
    with session_scope() as session:
        rows = session.exec(
            select(Invoice, Assistant.name)
            .join(Assistant, col(Assistant.id) == col(Invoice.assistant_id), isouter=True)
            .where(Invoice.user_id == actor.id)
            .order_by(col(Invoice.created_at).desc(), col(Invoice.id).desc())
            .limit(limit)
        ).all()
        return [
            InvoiceRow(
                id=int(i.id or 0),
                assistant_id=i.assistant_id,
                assistant_name=name or "—",
                created_at=i.created_at,
                status=i.status,
                currency=i.currency,
                amount_due_cents=i.amount_due_cents,
                amount_paid_cents=i.amount_paid_cents,
                amount_refunded_cents=i.amount_refunded_cents,
                hosted_invoice_url=i.hosted_invoice_url,
            )
            for i, name in rows
        ]


# ---------------------------------------------------------------------------- creators


def creator_metrics(*, actor: UserPublic, days: int = 90) -> CreatorMetrics:
    """Subscribers, MRR, churn, ARPU, revenue and usage over the actor's own assistants (an
    admin too sees only the assistants they own here; installation totals are
    :func:`admin_totals`)."""
    authorize(actor, Role.creator)
    now = utcnow()
    first, last, since = _window(days, now)
    with session_scope() as session:
        assistants = {
            int(a.id or 0): a.name
            for a in session.exec(
                select(Assistant).where(Assistant.owner_id == actor.id).order_by(col(Assistant.id))
            ).all()
        }
        ids = list(assistants)
        versions = {
            int(v.id or 0): f"{assistants[v.assistant_id]} v{v.version}"
            for v in session.exec(
                select(ModelVersion).where(col(ModelVersion.assistant_id).in_(ids))
            ).all()
        }
        paying, mrr = _mrr(session, ids, now)
        canceled, at_start = _churn(session, ids, now)
        return CreatorMetrics(
            since=first, until=last, assistants=assistants, versions=versions,
            active_subscribers=_active_subscribers(session, ids, now),
            paying_subscribers=paying, mrr_cents=mrr, canceled_last_30_days=canceled,
            active_30_days_ago=at_start, revenue_by_day=_revenue_by_day(session, ids, since),
            revenue_by_assistant=_revenue_by_assistant(session, ids, since),
            usage_by_day=_usage_splits(ids, since, now),
        )  # fmt: skip


def _active_subscribers(session: Session, ids: list[int], now: datetime) -> int:
    return int(
        session.exec(
            select(func.count(func.distinct(Subscription.user_id))).where(
                col(Subscription.assistant_id).in_(ids), _has_access(now)
            )
        ).one()
    )


def _paying(now: datetime, ids: list[int]) -> list[ColumnElement[bool]]:
    """Paid plans, with access now, not in a trial."""
    return [
        col(Subscription.assistant_id).in_(ids),
        _has_access(now),
        col(Subscription.status) != "trialing",
        or_(col(Plan.monthly_price_cents) > 0, col(Plan.annual_price_cents) > 0),
    ]


def _mrr(session: Session, ids: list[int], now: datetime) -> tuple[dict[str, int], Money]:
    on_plan = col(Plan.id) == col(Subscription.plan_id)
    users = session.exec(
        select(col(Plan.currency), func.count(func.distinct(Subscription.user_id)))
        .join(Subscription, on_plan)
        .where(*_paying(now, ids))
        .group_by(col(Plan.currency))
    ).all()
    sums = session.exec(
        select(
            col(Plan.currency),
            col(Subscription.interval),
            func.sum(Plan.monthly_price_cents),
            func.sum(Plan.annual_price_cents),
        )
        .join(Subscription, on_plan)
        .where(*_paying(now, ids))
        .group_by(col(Plan.currency), col(Subscription.interval))
    ).all()
    monthly: list[tuple[str, int]] = []
    for currency, interval, month_sum, year_sum in sums:
        cents = int(year_sum or 0) / 12 if interval == "year" else int(month_sum or 0)
        monthly.append((str(currency).lower(), round(cents)))
    return {str(c).lower(): int(n) for c, n in users}, _add(monthly)


def _canceled_at() -> ColumnElement[Any]:
    """When a subscription was canceled (rows from before ``canceled_at`` existed: last update)."""
    return func.coalesce(col(Subscription.canceled_at), col(Subscription.updated_at))


def _churn(session: Session, ids: list[int], now: datetime) -> tuple[int, int]:
    """(canceled in the last 30 days, active at the start of those 30 days)."""
    start = now - timedelta(days=CHURN_DAYS)
    in_scope = col(Subscription.assistant_id).in_(ids)
    canceled = col(Subscription.status) == "canceled"
    lost = session.exec(
        select(func.count(col(Subscription.id))).where(in_scope, canceled, _canceled_at() >= start)
    ).one()
    existing = session.exec(
        select(func.count(col(Subscription.id))).where(
            in_scope,
            col(Subscription.created_at) < start,
            col(Subscription.status).not_in(("incomplete", "incomplete_expired")),
            or_(~canceled, _canceled_at() >= start),
        )
    ).one()
    return int(lost), int(existing)


def _revenue_by_day(session: Session, ids: list[int] | None, since: datetime) -> list[DailyMoney]:
    """Net revenue per UTC day and currency: of the assistants ``ids``, or of all (``None``)."""
    day = _day(session, col(Invoice.created_at)).label("day")
    where = [col(Invoice.created_at) >= since]
    if ids is not None:
        where.append(col(Invoice.assistant_id).in_(ids))
    rows = session.exec(
        select(day, col(Invoice.currency), _net())
        .where(*where)
        .group_by(day, col(Invoice.currency))
        .order_by(day, col(Invoice.currency))
    ).all()
    return [DailyMoney(as_date(on), str(cur).lower(), int(cents)) for on, cur, cents in rows]


def _revenue_by_assistant(
    session: Session, ids: list[int], since: datetime
) -> list[AssistantMoney]:
    rows = session.exec(
        select(col(Invoice.assistant_id), col(Invoice.currency), _net())
        .where(col(Invoice.assistant_id).in_(ids), col(Invoice.created_at) >= since)
        .group_by(col(Invoice.assistant_id), col(Invoice.currency))
        .order_by(col(Invoice.assistant_id), col(Invoice.currency))
    ).all()
    return [AssistantMoney(int(aid or 0), str(cur).lower(), int(cents)) for aid, cur, cents in rows]


def _usage_splits(ids: list[int], since: datetime, now: datetime) -> list[UsageDay]:
    if not ids:
        return []
    return usage.usage_by_day(
        assistant_ids=ids, since=since, until=now + timedelta(days=1),
        by=("assistant", "model_version"),
    )  # fmt: skip


# ---------------------------------------------------------------------------- admins


def _count_by(session: Session, column: Any) -> dict[str, int]:
    rows = session.exec(select(column, func.count()).group_by(column).order_by(column)).all()
    return {str(key): int(n) for key, n in rows}


def admin_totals(*, actor: UserPublic) -> AdminTotals:
    """Installation-wide totals (admins only): users by role, assistants, subscriptions by
    status, revenue and tokens of the last 30 days (also per day), training jobs by status."""
    authorize(actor, Role.admin)
    now = utcnow()
    first, last, since = _window(ADMIN_DAYS, now)
    with session_scope() as session:
        assistants = session.exec(select(func.count(col(Assistant.id)))).one()
        published = session.exec(
            select(func.count(col(Assistant.id))).where(col(Assistant.is_published).is_(True))
        ).one()
        tokens = {
            row.day: row.total_tokens
            for row in usage.usage_by_day(since=since, until=now + timedelta(days=1))
        }
        money: dict[date, list[tuple[str, int]]] = defaultdict(list)
        for row in _revenue_by_day(session, None, since):
            money[row.day].append((row.currency, row.cents))
        return AdminTotals(
            users_by_role=_count_by(session, col(User.role)),
            assistants=int(assistants), published=int(published),
            subscriptions_by_status=_count_by(session, col(Subscription.status)),
            revenue_30d_cents=_add(pair for pairs in money.values() for pair in pairs),
            tokens_30d=sum(tokens.values()),
            training_jobs_by_status=_count_by(session, col(TrainingJob.status)),
            days=[
                DailyTotal(on, tokens.get(on, 0), _add(money.get(on, [])))
                for on in each_day(first, last)
            ],
        )  # fmt: skip
