"""The revenue views a creator expects beside MRR and churn (:mod:`gptstudio.services.analytics`):
ARR, customer lifetime value, cohort retention, trial → paid conversion, refunds, and CSV
exports of the creator's subscriptions and invoices.

Everything is read from the local tables (never Stripe), over the assistants the actor owns, in
cents **per currency** (amounts in different currencies are never added). Definitions (the
revenue page says the same in its help texts):

* **ARR**: MRR × 12 (MRR: paying subscriptions now, annual price / 12 for a yearly one);
* **customer lifetime value**: ARPU / monthly churn (the 30-day churn of the analytics module),
  the usual SaaS estimate of what a paying subscriber brings before leaving; none while no
  subscription churned (the estimate would be infinite);
* **cohort retention**: paid subscriptions (a Stripe subscription, never merely incomplete)
  grouped by the UTC month they started; month *k* of a cohort is the share of its members still
  subscribed *k* calendar months after their own start, counted over the members for whom that
  moment has passed (so a young cohort's late months are not shown as churn);
* **trial → paid conversion**: of the subscriptions whose trial has ended, the share that paid an
  invoice (more than zero) afterwards; trials still running are counted apart;
* **refunds**: invoices of the window with money refunded: how many, how much, and the share of
  the paid amount that went back.
"""

from __future__ import annotations

import csv
import io
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

from sqlalchemy import func
from sqlmodel import Session, col, select

from gptstudio.db import session_scope, utcnow
from gptstudio.errors import InvalidInput
from gptstudio.models import Assistant, Invoice, Plan, Role, Subscription, User
from gptstudio.models.user import UserPublic
from gptstudio.services.access import authorize
from gptstudio.services.analytics import MAX_DAYS, CreatorMetrics

Money = dict[str, int]
COHORT_MONTHS = 12
NEVER_STARTED = ("incomplete", "incomplete_expired")


@dataclass(frozen=True)
class Cohort:
    month: str  # "2026-09"
    size: int
    retention: list[float]  # month 0, 1, … while observable


@dataclass(frozen=True)
class TrialConversion:
    ended: int
    converted: int
    running: int

    @property
    def rate(self) -> float | None:
        return self.converted / self.ended if self.ended else None


@dataclass(frozen=True)
class Refunds:
    count: int
    refunded_cents: Money
    paid_cents: Money

    @property
    def rate(self) -> dict[str, float]:
        """Refunded / paid, per currency (the paid amount before refunds)."""
        return {c: cents / self.paid_cents[c] for c, cents in self.refunded_cents.items()
                if self.paid_cents.get(c)}  # fmt: skip


@dataclass(frozen=True)
class RevenueViews:
    arr_cents: Money
    ltv_cents: Money | None  # None: no churn yet
    cohorts: list[Cohort]
    trials: TrialConversion
    refunds: Refunds


def arr(mrr_cents: Money) -> Money:
    return {currency: cents * 12 for currency, cents in mrr_cents.items()}


def lifetime_value(metrics: CreatorMetrics) -> Money | None:
    """ARPU / monthly churn, per currency; ``None`` while nothing churned."""
    churn = metrics.churn
    if not churn:
        return None
    return {currency: round(cents / churn) for currency, cents in metrics.arpu_cents.items()}


def add_months(moment: datetime, months: int) -> datetime:
    """The same day and time ``months`` calendar months later (the 31st becomes the month's last
    day)."""
    month0 = moment.month - 1 + months
    year, month = moment.year + month0 // 12, month0 % 12 + 1
    following = date(year + month // 12, month % 12 + 1, 1)
    last_day = (following - timedelta(days=1)).day
    return moment.replace(year=year, month=month, day=min(moment.day, last_day))


def _months_until(start: datetime, moment: datetime, *, inclusive: bool = False) -> int:
    """The most whole months *k* with ``add_months(start, k)`` before ``moment`` (or at it,
    ``inclusive``); -1 when ``moment`` is not after ``start``."""
    k = (moment.year - start.year) * 12 + moment.month - start.month
    at = add_months(start, k)
    return k - 1 if (at > moment if inclusive else at >= moment) else k


def _aware(moment: datetime) -> datetime:
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def _owned(session: Session, actor: UserPublic) -> dict[int, str]:
    rows = session.exec(
        select(Assistant).where(Assistant.owner_id == actor.id).order_by(col(Assistant.id))
    ).all()
    return {int(a.id or 0): a.name for a in rows}


def cohorts(
    starts: Iterable[tuple[datetime, datetime | None]], now: datetime, months: int = COHORT_MONTHS
) -> list[Cohort]:
    """Monthly cohorts from ``(started, canceled or None)`` pairs: the last ``months`` months."""
    now = _aware(now)
    first_month = add_months(now.replace(day=1, hour=0, minute=0, second=0, microsecond=0),
                             -(months - 1))  # fmt: skip
    members: dict[str, list[tuple[datetime, datetime | None]]] = defaultdict(list)
    for started, ended in starts:
        started = _aware(started)
        if started < first_month:
            continue
        members[started.strftime("%Y-%m")].append((started, _aware(ended) if ended else None))
    result = []
    for month in sorted(members):
        group = members[month]
        observable = [0] * months
        alive = [0] * months
        for started, ended in group:
            seen = min(_months_until(started, now, inclusive=True) + 1, months)
            kept = seen if ended is None else min(_months_until(started, ended) + 1, seen)
            for k in range(seen):
                observable[k] += 1
                alive[k] += k < kept
        retention = [alive[k] / observable[k] for k in range(months) if observable[k]]
        result.append(Cohort(month=month, size=len(group), retention=retention))
    return result


def _cohort_rows(session: Session, ids: list[int]) -> list[tuple[datetime, datetime | None]]:
    rows = session.exec(
        select(
            col(Subscription.created_at), col(Subscription.status),
            col(Subscription.canceled_at), col(Subscription.updated_at),
        ).where(
            col(Subscription.assistant_id).in_(ids),
            col(Subscription.stripe_subscription_id) != "",
            col(Subscription.status).not_in(NEVER_STARTED),
        )
    ).all()  # fmt: skip
    return [(created, (canceled or updated) if status == "canceled" else None)
            for created, status, canceled, updated in rows]  # fmt: skip


def _trials(session: Session, ids: list[int], now: datetime) -> TrialConversion:
    paid = (
        select(col(Invoice.id))
        .where(col(Invoice.subscription_id) == col(Subscription.id),
               col(Invoice.amount_paid_cents) > 0)
        .exists()
    )  # fmt: skip
    rows = session.exec(
        select(col(Subscription.trial_end), paid).where(
            col(Subscription.assistant_id).in_(ids), col(Subscription.trial_end).is_not(None)
        )
    ).all()
    ended = [bool(paid) for end, paid in rows if end is not None and _aware(end) <= now]
    return TrialConversion(ended=len(ended), converted=sum(ended), running=len(rows) - len(ended))


def _refunds(session: Session, ids: list[int], since: datetime) -> Refunds:
    in_window = [col(Invoice.assistant_id).in_(ids), col(Invoice.created_at) >= since]
    refunded = session.exec(
        select(col(Invoice.currency), func.count(), func.sum(Invoice.amount_refunded_cents))
        .where(*in_window, col(Invoice.amount_refunded_cents) > 0)
        .group_by(col(Invoice.currency))
    ).all()
    paid = session.exec(
        select(col(Invoice.currency), func.sum(Invoice.amount_paid_cents))
        .where(*in_window)
        .group_by(col(Invoice.currency))
    ).all()
    return Refunds(
        count=sum(int(n) for _, n, _ in refunded),
        refunded_cents={str(c).lower(): int(s or 0) for c, _, s in refunded},
        paid_cents={str(c).lower(): int(s or 0) for c, s in paid},
    )


def revenue_views(*, actor: UserPublic, metrics: CreatorMetrics, days: int = 90) -> RevenueViews:
    """ARR and lifetime value (from ``metrics``, :func:`analytics.creator_metrics` of the same
    actor), cohorts, trial conversion, and the refunds of the last ``days`` days."""
    authorize(actor, Role.creator)
    if not 1 <= days <= MAX_DAYS:
        raise InvalidInput(f"Choose a period of 1 to {MAX_DAYS} days.")
    now = utcnow()
    since = datetime.combine(now.date() - timedelta(days=days - 1), datetime.min.time(), UTC)
    with session_scope() as session:
        ids = list(_owned(session, actor))
        return RevenueViews(
            arr_cents=arr(metrics.mrr_cents),
            ltv_cents=lifetime_value(metrics),
            cohorts=cohorts(_cohort_rows(session, ids), now),
            trials=_trials(session, ids, now),
            refunds=_refunds(session, ids, since),
        )


# ---------------------------------------------------------------------------- CSV exports

SUBSCRIPTION_COLUMNS = (
    "subscription_id", "assistant_id", "assistant", "subscriber_email", "plan", "status",
    "interval", "currency", "monthly_price", "annual_price", "trial_end", "current_period_end",
    "cancel_at_period_end", "canceled_at", "created_at", "stripe_subscription_id",
)  # fmt: skip
INVOICE_COLUMNS = (
    "invoice_id", "assistant_id", "assistant", "subscriber_email", "status", "currency",
    "amount_due", "amount_paid", "amount_refunded", "net", "period_start", "period_end",
    "created_at", "stripe_invoice_id", "hosted_invoice_url",
)  # fmt: skip


def _cell(value: object) -> str:
    """A CSV cell a spreadsheet will not run: text starting with = + - @ (or a tab/CR) is a
    formula to Excel and LibreOffice, so it gets a leading apostrophe (OWASP's advice)."""
    if value is None:
        return ""
    if isinstance(value, datetime):
        return _aware(value).strftime("%Y-%m-%dT%H:%M:%SZ")
    if isinstance(value, bool):
        return "yes" if value else "no"
    if not isinstance(value, str):
        return str(value)
    return "'" + value if value[:1] in ("=", "+", "-", "@", "\t", "\r") else value


def _amount(cents: int) -> Decimal:
    return Decimal(cents).scaleb(-2)


def _csv(header: Sequence[str], rows: Iterable[Sequence[object]]) -> str:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(header)
    writer.writerows([_cell(v) for v in row] for row in rows)
    return out.getvalue()


def subscriptions_csv(*, actor: UserPublic) -> str:
    """Every subscription (any status, free ones too) to the actor's assistants, oldest first."""
    authorize(actor, Role.creator)
    with session_scope() as session:
        names = _owned(session, actor)
        rows = session.exec(
            select(Subscription, User.email, Plan)
            .join(User, col(User.id) == col(Subscription.user_id))
            .join(Plan, col(Plan.id) == col(Subscription.plan_id), isouter=True)
            .where(col(Subscription.assistant_id).in_(list(names)))
            .order_by(col(Subscription.created_at), col(Subscription.id))
        ).all()
        return _csv(
            SUBSCRIPTION_COLUMNS,
            (
                (s.id, s.assistant_id, names[s.assistant_id], email,
                 plan.name if plan else s.tier, s.status, s.interval,
                 plan.currency.upper() if plan else "",
                 _amount(plan.monthly_price_cents) if plan else "",
                 _amount(plan.annual_price_cents) if plan else "",
                 s.trial_end, s.current_period_end, s.cancel_at_period_end,
                 s.canceled_at if s.status == "canceled" else None, s.created_at,
                 s.stripe_subscription_id)
                for s, email, plan in rows
            ),
        )  # fmt: skip


def invoices_csv(*, actor: UserPublic) -> str:
    """Every invoice of the actor's assistants, oldest first; amounts in the invoice's currency."""
    authorize(actor, Role.creator)
    with session_scope() as session:
        names = _owned(session, actor)
        rows = session.exec(
            select(Invoice, User.email)
            .join(User, col(User.id) == col(Invoice.user_id), isouter=True)
            .where(col(Invoice.assistant_id).in_(list(names)))
            .order_by(col(Invoice.created_at), col(Invoice.id))
        ).all()
        return _csv(
            INVOICE_COLUMNS,
            (
                (i.id, i.assistant_id, names.get(i.assistant_id or 0, ""), email or "", i.status,
                 i.currency.upper(), _amount(i.amount_due_cents), _amount(i.amount_paid_cents),
                 _amount(i.amount_refunded_cents),
                 _amount(i.amount_paid_cents - i.amount_refunded_cents),
                 i.period_start, i.period_end, i.created_at, i.stripe_invoice_id,
                 i.hosted_invoice_url)
                for i, email in rows
            ),
        )  # fmt: skip
