"""The sweeps that make waiting work reach a worker: no upload, curation run or training job is
lost to a broker outage.

A document ``uploaded`` and a curation run ``queued`` are committed before their task is
enqueued, and that row is the intent to enqueue (an outbox with no table of its own): when the
broker is down the enqueue fails (:func:`gptstudio.jobs.tasks.hand_over` logs it and the request
still succeeds), and a Redis that restarts without persistence forgets what it held. Every
minute, and when a documents consumer starts, :func:`requeue_waiting` lists what the broker holds
(pending and scheduled) and enqueues each waiting row it does not hold. A row younger than
:data:`GRACE_SECONDS` is left alone (its request may be enqueuing it right now); a task queued
twice anyway runs once, because the bodies claim their row (``uploaded`` → ``parsing``,
``queued`` → ``running``) with a conditional UPDATE.

A curation run whose worker died mid-run (killed, out of memory, the host gone) stays
``running`` with a heartbeat that stops: the same sweep (:func:`recover_stopped_runs`) gives it to
the queue again once, as users expect of a restarted worker, and fails a run that lost its worker
a second time with a message that says so (a run that kills its worker each time, e.g. out of
memory, does not loop); either way "a curation run is already in progress" ends.

Training jobs have their own queue and sweep (:func:`requeue_training`, every minute and when a
training consumer starts, beside ``resume_stale_jobs``): a ``queued`` job the training broker
does not hold is enqueued again at its priority.
"""

from __future__ import annotations

import logging
from datetime import timedelta

from huey import Huey
from sqlalchemy import update
from sqlmodel import col, select

from gptstudio.db import session_scope, utcnow
from gptstudio.jobs.queue import documents_huey, huey
from gptstudio.jobs.tasks import body, hand_over, parse_document_task, run_curation_task
from gptstudio.models import CurationRun, Document, TrainingJob
from gptstudio.services.training import enqueue
from gptstudio.settings import get_settings

log = logging.getLogger(__name__)

GRACE_SECONDS = 10.0
MAX_ATTEMPTS = 2  # a run whose worker stops is queued again once, then failed
STOPPED = (
    "The worker running this curation stopped before it finished (it was restarted, killed or "
    "ran out of memory), {n} times; nothing was kept from it. Run it again."
)


def _held(queue: Huey = documents_huey) -> set[tuple[str, int]]:
    """(task name, row id) of every task with a row id the broker holds in ``queue``."""
    held = set()
    for task in [*queue.pending(), *queue.scheduled()]:
        if task.args:
            held.add((task.name, int(task.args[0])))
    return held


def recover_stopped_runs() -> dict[str, list[int]]:
    """Running curation runs whose heartbeat is older than GPTSTUDIO_JOB_STALE_SECONDS lost their
    worker: back to ``queued`` (their first loss) or ``failed`` with :data:`STOPPED`. Each by a
    conditional UPDATE, so a heartbeat written meanwhile keeps the run its worker's."""
    now = utcnow()
    cutoff = now - timedelta(seconds=get_settings().job_stale_seconds)
    silent = col(CurationRun.heartbeat_at).is_(None) | (col(CurationRun.heartbeat_at) < cutoff)
    recovered: dict[str, list[int]] = {"requeued": [], "failed": []}
    with session_scope() as session:
        stale = session.exec(
            select(CurationRun.id, CurationRun.attempts).where(
                CurationRun.status == "running", silent
            )
        ).all()
        for run_id, attempts in stale:
            again = attempts < MAX_ATTEMPTS
            values: dict[str, object] = (
                {"status": "queued", "progress": {"step": "queued", "worker_stopped": attempts}}
                if again
                else {"status": "failed", "error": STOPPED.format(n=attempts), "finished_at": now}
            )
            changed = session.execute(
                update(CurationRun)
                .where(
                    col(CurationRun.id) == run_id,
                    col(CurationRun.status) == "running",
                    col(CurationRun.attempts) == attempts,
                    silent,
                )
                .values(**values)
                .execution_options(synchronize_session=False)
            )
            if changed.rowcount and run_id is not None:  # type: ignore[attr-defined]
                recovered["requeued" if again else "failed"].append(run_id)
    if recovered["requeued"] or recovered["failed"]:
        log.warning("curation runs whose worker stopped: %s", recovered)
    return recovered


@body("requeue_waiting")
def requeue_waiting() -> dict[str, list[int]]:
    """Recover the curation runs whose worker stopped (:func:`recover_stopped_runs`), then
    enqueue the waiting documents and curation runs the broker does not hold; returns their ids
    (``{"documents": […], "curation_runs": […], "failed_curation_runs": […]}``)."""
    recovered = recover_stopped_runs()
    requeued = recovered["requeued"]
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
                CurationRun.status == "queued",
                (col(CurationRun.created_at) < cutoff) | col(CurationRun.id).in_(requeued),
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
    return {**handed, "failed_curation_runs": recovered["failed"]}


@body("requeue_training")
def requeue_training() -> list[int]:
    """Enqueue the ``queued`` training jobs the training broker does not hold (``start_job`` or a
    resume met a broker outage, or a restarted Redis forgot them); their ids. A job queued twice
    anyway trains once: the training body claims it with a compare-and-set."""
    held = _held(huey)
    cutoff = utcnow() - timedelta(seconds=GRACE_SECONDS)
    with session_scope() as session:
        waiting = session.exec(
            select(TrainingJob.id).where(
                TrainingJob.status == "queued", col(TrainingJob.created_at) < cutoff
            )
        ).all()
    handed = [
        job_id
        for job_id in waiting
        if job_id is not None and ("train_task", job_id) not in held and enqueue(job_id)
    ]
    if handed:
        log.warning("handed queued training jobs to the queue again: %s", handed)
    return handed
