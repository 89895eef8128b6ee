"""Metering: one idempotent usage event per request; totals and per-day usage by user,
assistant, model version and source, the same on SQLite and PostgreSQL (UTC days)."""

from __future__ import annotations

import asyncio
from datetime import UTC, date, datetime, timedelta

import pytest
import sqlalchemy
from sqlalchemy.exc import IntegrityError

from gptstudio.db import get_engine, session_scope
from gptstudio.errors import InvalidInput
from gptstudio.models import ModelVersion, Role, UsageEvent
from gptstudio.services import account, assistant, usage

PASSWORD = "correct horse battery"
DAY = datetime(2026, 3, 14, tzinfo=UTC)


@pytest.fixture
def ids(db: str) -> dict[str, int]:
    account.register(email="root@example.com", password=PASSWORD)
    cy = account.register(email="cy@example.com", password=PASSWORD, role=Role.creator)
    bees = assistant.create_assistant(actor=cy, name="Bee Mentor").id
    wasps = assistant.create_assistant(actor=cy, name="Wasp Mentor").id
    with session_scope() as session:
        versions = [ModelVersion(assistant_id=bees, version=n, base_model="tiny") for n in (1, 2)]
        session.add_all(versions)
        session.flush()
        v1, v2 = (v.id or 0 for v in versions)
    sue = account.register(email="sue@example.com", password=PASSWORD).id or 0
    sam = account.register(email="sam@example.com", password=PASSWORD).id or 0
    return {"bees": bees, "wasps": wasps, "v1": v1, "v2": v2, "sue": sue, "sam": sam}


def test_group_commit_meters_each_concurrent_request_once(ids: dict[str, int]) -> None:
    """record_async: 300 requests at once (and each again) end in few INSERTs, each row once; a
    row that cannot be stored (its assistant is gone) fails alone, with a clear error."""
    fields = {"assistant_id": ids["bees"], "model_version_id": ids["v1"], "user_id": ids["sue"],
              "source": "api", "input_tokens": 3, "output_tokens": 4}  # fmt: skip
    statements: list[str] = []

    def count(_conn: object, _cursor: object, statement: str, *_args: object) -> None:
        if statement.startswith("INSERT INTO usage_events"):
            statements.append(statement)

    async def burst(ids_: list[str], **changes: int) -> list[bool | BaseException]:
        calls = [usage.record_async(request_id=i, **{**fields, **changes}) for i in ids_]
        return await asyncio.gather(*calls, return_exceptions=True)

    sqlalchemy.event.listen(get_engine(), "before_cursor_execute", count)
    try:
        results = asyncio.run(burst([f"req-{n % 300}" for n in range(600)]))
    finally:
        sqlalchemy.event.remove(get_engine(), "before_cursor_execute", count)
    assert results.count(True) == 300 and results.count(False) == 300
    assert len(statements) < 100  # batches, not a transaction per request

    async def with_a_bad_row() -> list[bool | BaseException]:
        good = burst([f"more-{n}" for n in range(20)])
        bad = burst(["orphan"], assistant_id=999_999)
        return [r for rs in await asyncio.gather(good, bad) for r in rs]

    results = asyncio.run(with_a_bad_row())
    assert results[:20] == [True] * 20 and isinstance(results[20], IntegrityError)
    total = usage.totals(user_id=ids["sue"])
    assert (total.requests, total.input_tokens, total.output_tokens) == (320, 960, 1280)


def event(
    at: datetime, *, assistant_id: int, user_id: int | None = None, version: int | None = None,
    visitor: str = "", source: str = "api", tokens: tuple[int, int] = (10, 5),
) -> UsageEvent:  # fmt: skip
    return UsageEvent(
        created_at=at, assistant_id=assistant_id, user_id=user_id, model_version_id=version,
        visitor_id=visitor, source=source, input_tokens=tokens[0], output_tokens=tokens[1],
        request_id=f"r-{at.timestamp()}-{assistant_id}-{user_id}-{visitor}-{source}",
    )  # fmt: skip


def test_record_is_idempotent_per_request(ids: dict[str, int]) -> None:
    fields = {"assistant_id": ids["bees"], "model_version_id": ids["v1"], "user_id": ids["sue"],
              "source": "ui", "input_tokens": 12, "output_tokens": 30}  # fmt: skip
    assert usage.record(request_id="chatcmpl-1", **fields) is True  # type: ignore[arg-type]
    assert usage.record(request_id="chatcmpl-1", **fields) is False  # type: ignore[arg-type]
    total = usage.totals(user_id=ids["sue"])
    assert (total.requests, total.input_tokens, total.output_tokens) == (1, 12, 30)
    assert total.total_tokens == 42
    with pytest.raises(InvalidInput, match="request id"):
        usage.record(request_id="", **fields)  # type: ignore[arg-type]
    with pytest.raises(InvalidInput, match="negative"):
        usage.record(request_id="x", **{**fields, "input_tokens": -1})  # type: ignore[arg-type]
    assert usage.totals().requests == 1  # nothing half-written


def test_racing_writers_of_one_request_leave_one_row(ids: dict[str, int]) -> None:
    """The check-then-insert is backed by a unique index: two writers cannot both insert."""
    from concurrent.futures import ThreadPoolExecutor
    from threading import Barrier

    fields = {"assistant_id": ids["bees"], "model_version_id": ids["v1"], "user_id": ids["sue"],
              "source": "api", "input_tokens": 5, "output_tokens": 7}  # fmt: skip
    start = Barrier(4)

    def write(_: int) -> bool:
        start.wait()
        return usage.record(request_id="chatcmpl-race", **fields)  # type: ignore[arg-type]

    with ThreadPoolExecutor(4) as pool:
        results = list(pool.map(write, range(4)))
    assert results.count(True) == 1
    assert usage.totals(user_id=ids["sue"]).requests == 1


def test_totals_and_days_by_user_assistant_version_and_source(ids: dict[str, int]) -> None:
    bees, wasps, sue, sam = ids["bees"], ids["wasps"], ids["sue"], ids["sam"]
    late = DAY + timedelta(hours=23, minutes=59)  # still the 14th in UTC
    with session_scope() as session:
        session.add_all([
            event(DAY + timedelta(hours=1), assistant_id=bees, user_id=sue, version=ids["v1"]),
            event(late, assistant_id=bees, user_id=sue, version=ids["v2"], source="ui"),
            event(DAY + timedelta(days=1), assistant_id=bees, user_id=sam, version=ids["v2"],
                  tokens=(100, 50)),
            event(DAY + timedelta(days=1, hours=2), assistant_id=wasps, user_id=sue),
            event(DAY + timedelta(days=1, hours=3), assistant_id=bees, visitor="v-1",
                  source="widget", tokens=(1, 1)),
            event(DAY + timedelta(days=40), assistant_id=bees, user_id=sue),  # out of range
        ])  # fmt: skip
    since, until = DAY, DAY + timedelta(days=7)
    assert usage.totals(assistant_id=bees, since=since, until=until).total_tokens == 15 + 15 + 152
    assert usage.totals(user_id=sue, since=since, until=until).requests == 3
    assert usage.totals(visitor_id="v-1").total_tokens == 2
    assert usage.totals(model_version_id=ids["v2"]).total_tokens == 165
    assert usage.totals(user_id=sue, assistant_id=bees).requests == 3  # no range: all time
    assert usage.used_tokens(user_id=sue, assistant_id=bees, since=since, until=until) == 30
    assert usage.used_tokens(
        user_id=None, visitor_id="v-1", assistant_id=bees, since=since, until=until
    ) == 2  # fmt: skip

    days = usage.usage_by_day(assistant_id=bees, since=since, until=until)
    assert [(d.day, d.requests, d.total_tokens) for d in days] == [
        (date(2026, 3, 14), 2, 30),
        (date(2026, 3, 15), 2, 152),
    ]
    assert days[0].assistant_id is None  # not split by assistant
    split = usage.usage_by_day(since=since, until=until, by=["assistant", "model_version"])
    assert [(d.day.day, d.assistant_id, d.model_version_id, d.total_tokens) for d in split] == [
        (14, bees, ids["v1"], 15),
        (14, bees, ids["v2"], 15),
        (15, bees, None, 2),
        (15, bees, ids["v2"], 150),
        (15, wasps, None, 15),
    ]
    per_user = usage.usage_by_day(user_id=sue, since=since, until=until, by=["user", "source"])
    assert [(d.day.day, d.user_id, d.source, d.requests) for d in per_user] == [
        (14, sue, "api", 1),
        (14, sue, "ui", 1),
        (15, sue, "api", 1),
    ]


def test_bad_usage_queries_are_refused(ids: dict[str, int]) -> None:
    with pytest.raises(InvalidInput, match="split by"):
        usage.usage_by_day(since=DAY, until=DAY + timedelta(days=1), by=["planet"])  # type: ignore[list-item]
    with pytest.raises(InvalidInput, match="after its start"):
        usage.usage_by_day(since=DAY, until=DAY)
    assert usage.usage_by_day(since=DAY, until=DAY + timedelta(days=1)) == []
    assert usage.totals().total_tokens == 0
