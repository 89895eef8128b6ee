"""Leases on the rows a documents worker takes: a document it parses, a curation run it runs.

A worker claims a waiting row with one compare-and-set that counts the attempt (a second copy of
the task finds it taken), a :func:`heartbeat` thread touches the row's ``heartbeat_at`` every
second whatever the work is doing (a long PDF, loading MiniLM), and every write the worker makes
lands only while its attempt still holds the row (:func:`hold`). A row whose heartbeat stopped
lost its worker (killed, out of memory, the host gone): the sweep (:func:`recover_stopped`,
called by :mod:`gptstudio.jobs.outbox`) makes it wait for a worker again once, as users expect of
a restarted worker, and fails it the second time with a message saying so, so work that kills
its worker each time does not loop. Training jobs keep a lease of their own
(``gptstudio.jobs.training``): they resume from a checkpoint and are never failed for it.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from functools import partial
from typing import Any, Self

from sqlalchemy import update
from sqlmodel import Session, col, select

from gptstudio.db import session_scope, utcnow
from gptstudio.models import CurationRun, Document
from gptstudio.settings import get_settings

log = logging.getLogger(__name__)

HEARTBEAT_SECONDS = 1.0  # also how soon a training job sees a cancel (or stale time / 4)
MAX_ATTEMPTS = 2  # a row whose worker stops waits for a worker again once, then fails


@dataclass(frozen=True)
class Leased:
    """A table whose rows workers lease (``id``, ``status``, ``heartbeat_at``, ``attempts``),
    with the status of a row waiting for a worker and of one a worker holds, and what its rows
    are called in the log."""

    table: type[CurationRun] | type[Document]
    waiting: str
    running: str
    what: str


RUNS = Leased(CurationRun, waiting="queued", running="running", what="curation runs")
DOCUMENTS = Leased(Document, waiting="uploaded", running="parsing", what="documents")


def claim(kind: Leased, row_id: int) -> int | None:
    """Take a waiting row in one compare-and-set; the attempt number it now runs as, or ``None``
    (deleted, finished, or taken by another copy of the task)."""
    table = kind.table
    with session_scope() as session:
        taken = session.execute(
            update(table)
            .where(col(table.id) == row_id, col(table.status) == kind.waiting)
            .values(status=kind.running, heartbeat_at=utcnow(), attempts=col(table.attempts) + 1)
            .returning(col(table.attempts))
        ).first()
    if taken is None:
        return None
    # Which worker took which row, in each worker's own log (how work spread over the workers).
    log.info("%s %s taken by worker pid %s, attempt %s", kind.what, row_id, os.getpid(), taken[0])
    return int(taken[0])


def hold(kind: Leased, row_id: int, attempt: int, **values: object) -> bool:
    """Write ``values`` (and the heartbeat) while this attempt still holds the row: once the sweep
    gave the row of a silent worker to another (``attempts`` went up) or failed it, the old
    worker's writes change nothing. Whether the write landed."""
    with session_scope() as session:
        return _update_held(session, kind, row_id, attempt, heartbeat_at=utcnow(), **values)


def _update_held(
    session: Session, kind: Leased, row_id: int, attempt: int, *also: Any, **values: object
) -> bool:
    """Write ``values`` to the row only while attempt ``attempt`` holds it (and the conditions
    ``also`` hold); whether it did."""
    table = kind.table
    written = session.execute(
        update(table)
        .where(
            col(table.id) == row_id,
            col(table.status) == kind.running,
            col(table.attempts) == attempt,
            *also,
        )
        .values(**values)
        .execution_options(synchronize_session=False)
    )
    return bool(written.rowcount)  # type: ignore[attr-defined]


class Beating:
    """A daemon thread that calls ``beat`` every ``interval`` seconds (a quarter of the stale
    time, at most :data:`HEARTBEAT_SECONDS`) while the ``with`` block runs, whatever the block is
    doing, and ``after`` after each beat, landed or not. A beat that raises (a database hiccup)
    is logged and the next one retries; one that returns ``False`` ends the beating (the row is
    finished, or no longer this worker's)."""

    def __init__(
        self,
        name: str,
        *,
        stale_seconds: float,
        beat: Callable[[], bool],
        after: Callable[[], None] | None = None,
    ) -> None:
        self.interval = max(0.2, min(HEARTBEAT_SECONDS, stale_seconds / 4))
        self._beat, self._after = beat, after
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)

    def __enter__(self) -> Self:
        self._thread.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self._stop.set()
        self._thread.join()

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            try:
                if not self._beat():
                    return
            except Exception:
                log.warning("heartbeat of %s failed", self._thread.name, exc_info=True)
            if self._after is not None:
                self._after()


def heartbeat(kind: Leased, row_id: int, attempt: int) -> Beating:
    """:func:`hold` the row every beat while the work runs, so the sweep tells long work from a
    dead worker's."""
    return Beating(
        f"{kind.what} {row_id}",
        stale_seconds=get_settings().job_stale_seconds,
        beat=partial(hold, kind, row_id, attempt),
    )


def recover_stopped(
    kind: Leased,
    *,
    failed: Callable[[int], dict[str, object]],
    requeued: Callable[[int], dict[str, object]] = lambda _attempts: {},
) -> dict[str, list[int]]:
    """Rows held by a worker whose heartbeat is older than GPTSTUDIO_JOB_STALE_SECONDS lost it:
    back to waiting with ``requeued(attempts)`` (their first loss), or ``failed`` with
    ``failed(attempts)``. Each by a conditional UPDATE, so a heartbeat written meanwhile keeps the
    row its worker's. The ids, as ``{"requeued": […], "failed": […]}``."""
    table = kind.table
    cutoff = utcnow() - timedelta(seconds=get_settings().job_stale_seconds)
    silent = col(table.heartbeat_at).is_(None) | (col(table.heartbeat_at) < cutoff)
    recovered: dict[str, list[int]] = {"requeued": [], "failed": []}
    with session_scope() as session:
        stale = session.exec(
            select(table.id, table.attempts).where(col(table.status) == kind.running, silent)
        ).all()
        for row_id, attempts in stale:
            again = attempts < MAX_ATTEMPTS
            values = (
                {"status": kind.waiting, **requeued(attempts)}
                if again
                else {"status": "failed", **failed(attempts)}
            )
            if row_id is not None and _update_held(
                session, kind, row_id, attempts, silent, **values
            ):
                recovered["requeued" if again else "failed"].append(row_id)
    if recovered["requeued"] or recovered["failed"]:
        log.warning("%s whose worker stopped: %s", kind.what, recovered)
    return recovered
