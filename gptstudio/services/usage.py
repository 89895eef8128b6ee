"""Metering: one usage event per chat request (web UI, widget, API), and totals over them.

:func:`record` writes a request's input and output tokens in one row, once per ``request_id``
(the idempotency key: a second record of the same request is a no-op). :func:`used_tokens` is
what quotas count against (:mod:`gptstudio.services.quota` seeds Redis from it, so a Redis
restart loses nothing). :func:`totals` and :func:`usage_by_day` are plain SQL aggregates for the
dashboards; they give the same answers on SQLite and PostgreSQL, days in UTC.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any, Literal

from sqlalchemy import Date, cast, func, nulls_first
from sqlalchemy import select as sql_select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.sql.elements import ColumnElement
from sqlmodel import Session, col, select

from gptstudio.db import get_engine, session_scope
from gptstudio.models import UsageEvent
from gptstudio.services.errors import InvalidInput

Dimension = Literal["user", "assistant", "model_version", "source"]
_COLUMNS: dict[str, Any] = {
    "user": UsageEvent.user_id,
    "assistant": UsageEvent.assistant_id,
    "model_version": UsageEvent.model_version_id,
    "source": UsageEvent.source,
}


@dataclass(frozen=True)
class UsageTotals:
    requests: int
    input_tokens: int
    output_tokens: int

    @property
    def total_tokens(self) -> int:
        return self.input_tokens + self.output_tokens


@dataclass(frozen=True)
class UsageDay:
    """Usage of one UTC day; a dimension not asked for in ``by`` is ``None``."""

    day: date
    requests: int
    input_tokens: int
    output_tokens: int
    user_id: int | None = None
    assistant_id: int | None = None
    model_version_id: int | None = None
    source: str | None = None

    @property
    def total_tokens(self) -> int:
        return self.input_tokens + self.output_tokens


def record(
    *,
    request_id: str,
    assistant_id: int,
    model_version_id: int | None,
    user_id: int | None,
    visitor_id: str = "",
    source: str,
    input_tokens: int,
    output_tokens: int,
) -> bool:
    """Meter one request; ``False`` when ``request_id`` was already recorded (nothing changes)."""
    if not request_id:
        raise InvalidInput("A usage event needs a request id.")
    if input_tokens < 0 or output_tokens < 0:
        raise InvalidInput("Token counts cannot be negative.")
    try:
        with session_scope() as session:  # one INSERT; the unique index refuses a second one
            session.add(
                UsageEvent(
                    request_id=request_id, assistant_id=assistant_id,
                    model_version_id=model_version_id, user_id=user_id, visitor_id=visitor_id,
                    source=source, input_tokens=input_tokens, output_tokens=output_tokens,
                )
            )  # fmt: skip
    except IntegrityError:
        return False  # another writer recorded this request first (the unique index)
    return True


def _filters(
    *,
    user_id: int | None,
    visitor_id: str | None,
    assistant_id: int | None,
    model_version_id: int | None,
    since: datetime | None,
    until: datetime | None,
) -> list[ColumnElement[bool]]:
    where: list[ColumnElement[bool]] = []
    if user_id is not None:
        where.append(col(UsageEvent.user_id) == user_id)
    if visitor_id is not None:
        where += [col(UsageEvent.user_id).is_(None), col(UsageEvent.visitor_id) == visitor_id]
    if assistant_id is not None:
        where.append(col(UsageEvent.assistant_id) == assistant_id)
    if model_version_id is not None:
        where.append(col(UsageEvent.model_version_id) == model_version_id)
    if since is not None:
        where.append(col(UsageEvent.created_at) >= since)
    if until is not None:
        where.append(col(UsageEvent.created_at) < until)
    return where


def used_tokens_in(
    session: Session,
    *,
    user_id: int | None,
    visitor_id: str = "",
    assistant_id: int,
    since: datetime,
    until: datetime,
) -> int:
    """Input + output tokens a user (or, with ``user_id=None``, one widget visitor) spent on an
    assistant in ``[since, until)``."""
    where = _filters(
        user_id=user_id, visitor_id=visitor_id if user_id is None else None,
        assistant_id=assistant_id, model_version_id=None, since=since, until=until,
    )  # fmt: skip
    spent = func.coalesce(func.sum(UsageEvent.input_tokens + UsageEvent.output_tokens), 0)
    return int(session.exec(select(spent).where(*where)).one())


def used_tokens(
    *, user_id: int | None, visitor_id: str = "", assistant_id: int, since: datetime,
    until: datetime,
) -> int:  # fmt: skip
    with session_scope() as session:
        return used_tokens_in(
            session, user_id=user_id, visitor_id=visitor_id, assistant_id=assistant_id,
            since=since, until=until,
        )  # fmt: skip


def totals(
    *,
    user_id: int | None = None,
    visitor_id: str | None = None,
    assistant_id: int | None = None,
    model_version_id: int | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
) -> UsageTotals:
    """Requests and tokens matching every given filter (``None``: any) in ``[since, until)``."""
    where = _filters(
        user_id=user_id, visitor_id=visitor_id, assistant_id=assistant_id,
        model_version_id=model_version_id, since=since, until=until,
    )  # fmt: skip
    query = select(
        func.count(col(UsageEvent.id)),
        func.coalesce(func.sum(UsageEvent.input_tokens), 0),
        func.coalesce(func.sum(UsageEvent.output_tokens), 0),
    ).where(*where)
    with session_scope() as session:
        requests, inputs, outputs = session.exec(query).one()
    return UsageTotals(requests=int(requests), input_tokens=int(inputs), output_tokens=int(outputs))


def _day() -> ColumnElement[Any]:
    """The UTC calendar day of ``created_at`` (SQLite stores UTC text; PostgreSQL timestamptz)."""
    if get_engine().dialect.name == "postgresql":
        return cast(func.timezone("UTC", col(UsageEvent.created_at)), Date)
    return func.date(col(UsageEvent.created_at))


def usage_by_day(
    *,
    user_id: int | None = None,
    visitor_id: str | None = None,
    assistant_id: int | None = None,
    model_version_id: int | None = None,
    since: datetime,
    until: datetime,
    by: Sequence[Dimension] = (),
) -> list[UsageDay]:
    """Usage per UTC day in ``[since, until)``, oldest first, also split by each dimension in
    ``by`` (``"user"``, ``"assistant"``, ``"model_version"``, ``"source"``), each ascending with
    ``None`` first. Days without usage are absent."""
    unknown = [name for name in by if name not in _COLUMNS]
    if unknown:
        raise InvalidInput(f"Usage can be split by {', '.join(_COLUMNS)}, not {unknown[0]}.")
    if until <= since:
        raise InvalidInput("The end of a usage range must come after its start.")
    day = _day().label("day")
    dims = [_COLUMNS[name] for name in dict.fromkeys(by)]
    where = _filters(
        user_id=user_id, visitor_id=visitor_id, assistant_id=assistant_id,
        model_version_id=model_version_id, since=since, until=until,
    )  # fmt: skip
    sums = [func.sum(UsageEvent.input_tokens), func.sum(UsageEvent.output_tokens)]
    query = (
        sql_select(day, *dims, func.count(col(UsageEvent.id)), *sums)
        .where(*where)
        .group_by(day, *dims)
        .order_by(day, *(nulls_first(dim) for dim in dims))
    )
    with session_scope() as session:
        rows = session.execute(query).all()
    names = list(dict.fromkeys(by))
    result = []
    for row in rows:
        keys = dict(zip(names, row[1 : 1 + len(names)], strict=True))
        requests, inputs, outputs = row[1 + len(names) :]
        result.append(
            UsageDay(
                day=_as_date(row[0]), requests=int(requests), input_tokens=int(inputs or 0),
                output_tokens=int(outputs or 0), user_id=keys.get("user"),
                assistant_id=keys.get("assistant"), model_version_id=keys.get("model_version"),
                source=keys.get("source"),
            )
        )  # fmt: skip
    return result


def _as_date(value: date | str) -> date:
    if isinstance(value, datetime):
        return value.date()
    if isinstance(value, date):
        return value
    return date.fromisoformat(str(value))
