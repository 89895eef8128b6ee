"""The sweep that makes waiting work reach a worker: no upload or curation run is lost to a broker
outage.

A document ``uploaded`` and a curation run ``queued`` are committed before their task is
enqueued, and that row is the intent to enqueue (an outbox with no table of its own): when the
broker is down the enqueue fails (:func:`gptstudio.jobs.tasks.hand_over` logs it and the request
still succeeds), and a Redis that restarts without persistence forgets what it held. Every
minute, and when a documents consumer starts, :func:`requeue_waiting` lists what the broker holds
(pending and scheduled) and enqueues each waiting row it does not hold. A row younger than
:data:`GRACE_SECONDS` is left alone (its request may be enqueuing it right now); a task queued
twice anyway runs once, because the bodies claim their row (``uploaded`` → ``parsing``,
``queued`` → ``running``) with a conditional UPDATE.
"""

from __future__ import annotations

import logging
from datetime import timedelta

from sqlmodel import col, select

from gptstudio.db import session_scope, utcnow
from gptstudio.jobs.queue import documents_huey
from gptstudio.jobs.tasks import body, hand_over, parse_document_task, run_curation_task
from gptstudio.models import CurationRun, Document

log = logging.getLogger(__name__)

GRACE_SECONDS = 10.0


def _held() -> set[tuple[str, int]]:
    """(task name, row id) of every parse and curation task the broker holds."""
    held = set()
    for task in [*documents_huey.pending(), *documents_huey.scheduled()]:
        if task.args:
            held.add((task.name, int(task.args[0])))
    return held


@body("requeue_waiting")
def requeue_waiting() -> dict[str, list[int]]:
    """Enqueue the waiting documents and curation runs the broker does not hold; returns their
    ids (``{"documents": […], "curation_runs": […]}``)."""
    held = _held()
    cutoff = utcnow() - timedelta(seconds=GRACE_SECONDS)
    with session_scope() as session:
        documents = session.exec(
            select(Document.id).where(
                Document.status == "uploaded", col(Document.created_at) < cutoff
            )
        ).all()
        runs = session.exec(
            select(CurationRun.id).where(
                CurationRun.status == "queued", col(CurationRun.created_at) < cutoff
            )
        ).all()
    handed: dict[str, list[int]] = {"documents": [], "curation_runs": []}
    for task, ids, kind in (
        (parse_document_task, documents, "documents"),
        (run_curation_task, runs, "curation_runs"),
    ):
        for row_id in ids:
            name = task.task_class.__name__
            if row_id is not None and (name, row_id) not in held and hand_over(task, row_id):
                handed[kind].append(row_id)
    if handed["documents"] or handed["curation_runs"]:
        log.warning("handed waiting work to the queue again: %s", handed)
    return handed
