"""Metering: one usage event per chat request (web UI, widget, API), and totals over them.

:func:`record` writes a request's input and output tokens in one row, once per ``request_id``
(the idempotency key: a second record of the same request is a no-op). :func:`used_tokens` is
what quotas count against (:mod:`gptstudio.services.quota` seeds Redis from it, so a Redis
restart loses nothing). :func:`totals` and :func:`usage_by_day` are plain SQL aggregates for the
dashboards; they give the same answers on SQLite and PostgreSQL, days in UTC.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any, Literal, NotRequired, TypedDict, Unpack

from sqlalchemy import Connection, func, nulls_first, text
from sqlalchemy import select as sql_select
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.exc import IntegrityError, SQLAlchemyError
from sqlalchemy.sql.elements import ColumnElement
from sqlmodel import Session, col, select

from gptstudio.db import as_date, engine_for, get_engine, session_scope, utc_day, utcnow
from gptstudio.errors import InvalidInput
from gptstudio.models import UsageEvent
from gptstudio.settings import get_settings

log = logging.getLogger(__name__)
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


class Event(TypedDict):
    """One request's usage, as :func:`record` takes it."""

    request_id: str  # the idempotency key
    assistant_id: int
    model_version_id: int | None
    user_id: int | None
    visitor_id: NotRequired[str]  # an anonymous widget visitor
    source: str  # ui, widget or api
    input_tokens: int
    output_tokens: int


def _row(event: Event) -> dict[str, Any]:
    if not event["request_id"]:
        raise InvalidInput("A usage event needs a request id.")
    if event["input_tokens"] < 0 or event["output_tokens"] < 0:
        raise InvalidInput("Token counts cannot be negative.")
    return {"visitor_id": "", **event, "created_at": utcnow()}


def record(**event: Unpack[Event]) -> bool:
    """Meter one request; ``False`` when ``request_id`` was already recorded (nothing changes)."""
    row = _row(event)
    try:
        with session_scope() as session:  # one INSERT; the unique index refuses a second one
            session.add(UsageEvent(**row))
    except IntegrityError:
        return False  # another writer recorded this request first (the unique index)
    return True


async def record_async(**event: Unpack[Event]) -> bool:
    """:func:`record` for the request path: the row joins those of concurrent requests in one
    INSERT (group commit); it returns once that is committed, so nothing is acknowledged before
    it is stored. One INSERT per batch instead of a transaction per request is what lets
    hundreds of concurrent requests be metered without the database setting their pace."""
    return await _writer().submit(_row(event))


_Waiter = tuple[dict[str, Any], asyncio.AbstractEventLoop, "asyncio.Future[bool]"]

# PostgreSQL: the rows as one array per column, so the statement's text is the same for any
# number of rows (parsed and planned once, not once per batch size).
_UNNEST = text("""
INSERT INTO usage_events (request_id, assistant_id, model_version_id, user_id, visitor_id,
                          source, input_tokens, output_tokens, created_at)
SELECT * FROM unnest(CAST(:request_id AS varchar[]), CAST(:assistant_id AS integer[]),
                     CAST(:model_version_id AS integer[]), CAST(:user_id AS integer[]),
                     CAST(:visitor_id AS varchar[]), CAST(:source AS varchar[]),
                     CAST(:input_tokens AS integer[]), CAST(:output_tokens AS integer[]),
                     CAST(:created_at AS timestamptz[]))
ON CONFLICT DO NOTHING
RETURNING request_id
""")


class _GroupWriter(threading.Thread):
    """Writes the usage events queued by concurrent requests, as many as are waiting (up to
    :data:`BATCH_ROWS`) in one ``INSERT … ON CONFLICT DO NOTHING RETURNING``; a batch that
    fails is retried row by row, so a bad row fails alone. The answers go back to each event
    loop in one call per batch (one wake-up, not one per row)."""

    def __init__(self, url: str) -> None:
        super().__init__(daemon=True, name="gptstudio-usage-writer")
        self.url = url
        self._waiting: list[_Waiter] = []
        self._ready = threading.Condition()
        self._connection: Connection | None = None

    def submit(self, row: dict[str, Any]) -> asyncio.Future[bool]:
        loop = asyncio.get_running_loop()
        done: asyncio.Future[bool] = loop.create_future()
        with self._ready:
            self._waiting.append((row, loop, done))
            self._ready.notify()
        return done

    def run(self) -> None:
        while True:
            with self._ready:
                while not self._waiting:
                    self._ready.wait()
                batch = self._waiting[:BATCH_ROWS]
                del self._waiting[:BATCH_ROWS]
            try:
                outcomes = self._write([row for row, _, _ in batch])
            except Exception as error:  # whatever it is, no request may wait forever
                log.exception("usage writer: a batch of %s rows failed", len(batch))
                outcomes = [error] * len(batch)
            _answer(batch, outcomes)

    def _write(self, rows: list[dict[str, Any]]) -> list[bool | BaseException]:
        outcomes: list[bool | BaseException] = []
        try:
            stored = self._insert(rows)
        except SQLAlchemyError:
            for row in rows:  # find the row at fault: the others are stored
                try:
                    outcomes.append(row["request_id"] in self._insert([row]))
                except SQLAlchemyError as error:
                    outcomes.append(error)
            return outcomes
        for row in rows:  # a request id twice in one batch: stored for the first
            outcomes.append(row["request_id"] in stored)
            stored.discard(row["request_id"])
        return outcomes

    def _insert(self, rows: list[dict[str, Any]]) -> set[str]:
        # The writer keeps one connection of its own (no pool checkout and ping per batch); a
        # failed batch drops it, and the next batch connects again.
        if self._connection is None or self._connection.closed:
            self._connection = engine_for(self.url).connect()
        connection = self._connection
        try:
            with connection.begin():
                if connection.dialect.name == "postgresql":
                    columns = {name: [row[name] for row in rows] for name in rows[0]}
                    return set(connection.execute(_UNNEST, columns).scalars())
                statement = (  # SQLite: SQLAlchemy sends the rows as multi-row VALUES
                    sqlite_insert(UsageEvent).on_conflict_do_nothing()
                    .returning(col(UsageEvent.request_id))
                )  # fmt: skip
                return set(connection.execute(statement, rows).scalars())
        except SQLAlchemyError:
            self._connection = None
            connection.close()
            raise


def _answer(batch: list[_Waiter], outcomes: list[bool | BaseException]) -> None:
    by_loop: dict[asyncio.AbstractEventLoop, list[tuple[asyncio.Future[bool], Any]]] = {}
    for (_, loop, done), outcome in zip(batch, outcomes, strict=True):
        by_loop.setdefault(loop, []).append((done, outcome))
    for loop, answers in by_loop.items():
        with contextlib.suppress(RuntimeError):  # that loop is closed: nobody waits any more
            loop.call_soon_threadsafe(_resolve, answers)


def _resolve(answers: list[tuple[asyncio.Future[bool], bool | BaseException]]) -> None:
    for done, outcome in answers:
        if done.done():
            continue  # its request was cancelled meanwhile
        if isinstance(outcome, BaseException):
            done.set_exception(outcome)
        else:
            done.set_result(outcome)


BATCH_ROWS = 500
_writers: dict[str, _GroupWriter] = {}
_writers_lock = threading.Lock()


def _after_fork() -> None:
    global _writers_lock
    _writers_lock = threading.Lock()
    _writers.clear()


os.register_at_fork(after_in_child=_after_fork)


def _writer() -> _GroupWriter:
    url = get_settings().database_url
    with _writers_lock:
        found = _writers.get(url)
        if found is None or not found.is_alive():
            found = _writers[url] = _GroupWriter(url)
            found.start()
        return found


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


def usage_by_day(
    *,
    user_id: int | None = None,
    visitor_id: str | None = None,
    assistant_id: int | None = None,
    assistant_ids: Sequence[int] | None = None,
    model_version_id: int | None = None,
    since: datetime,
    until: datetime,
    by: Sequence[Dimension] = (),
) -> list[UsageDay]:
    """Usage per UTC day in ``[since, until)``, oldest first, also split by each dimension in
    ``by`` (``"user"``, ``"assistant"``, ``"model_version"``, ``"source"``), each ascending with
    ``None`` first. Days without usage are absent. ``assistant_ids`` keeps those assistants
    only (the dashboards: a creator's or a subscriber's)."""
    unknown = [name for name in by if name not in _COLUMNS]
    if unknown:
        raise InvalidInput(f"Usage can be split by {', '.join(_COLUMNS)}, not {unknown[0]}.")
    if until <= since:
        raise InvalidInput("The end of a usage range must come after its start.")
    day = utc_day(col(UsageEvent.created_at), get_engine().dialect.name).label("day")
    dims = [_COLUMNS[name] for name in dict.fromkeys(by)]
    where = _filters(
        user_id=user_id, visitor_id=visitor_id, assistant_id=assistant_id,
        model_version_id=model_version_id, since=since, until=until,
    )  # fmt: skip
    if assistant_ids is not None:
        where.append(col(UsageEvent.assistant_id).in_(assistant_ids))
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
                day=as_date(row[0]), requests=int(requests), input_tokens=int(inputs or 0),
                output_tokens=int(outputs or 0), user_id=keys.get("user"),
                assistant_id=keys.get("assistant"), model_version_id=keys.get("model_version"),
                source=keys.get("source"),
            )
        )  # fmt: skip
    return result
