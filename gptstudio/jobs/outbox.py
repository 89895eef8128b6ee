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

A curation run or a document whose worker died mid-work (killed, out of memory, the host gone)
stays ``running`` or ``parsing`` with a heartbeat that stops: the same sweep
(:func:`recover_stopped`, through :mod:`gptstudio.jobs.lease`) gives it to the queue again once,
as users expect of a restarted worker, and fails one that lost its worker a second time with a
message that says so (work that kills its worker each time, e.g. out of memory, does not loop);
either way "a curation run is already in progress" ends, and no file stays "parsing" forever.

Training jobs have their own queue and sweep (:func:`requeue_training`, every minute and when a
training consumer starts, beside ``resume_stale_jobs``): a ``queued`` job the training broker
does not hold is enqueued again at its priority.
"""

from __future__ import annotations

import logging
from datetime import timedelta

from huey import Huey
from sqlmodel import col, select

from gptstudio.db import session_scope, utcnow
from gptstudio.jobs import lease
from gptstudio.jobs.queue import documents_huey, huey
from gptstudio.jobs.tasks import body, hand_over, parse_document_task, run_curation_task
from gptstudio.models import CurationRun, Document, TrainingJob
from gptstudio.services.training import enqueue

log = logging.getLogger(__name__)

GRACE_SECONDS = 10.0
STOPPED_RUN = (
    "The worker running this curation stopped before it finished (it was restarted, killed or "
    "ran out of memory), {n} times; nothing was kept from it. Run it again."
)
STOPPED_PARSE = (
    "The worker parsing this file stopped before it finished (it was restarted, killed or ran "
    "out of memory), {n} times. Upload it again, or split it into smaller files."
)


def _held(queue: Huey = documents_huey) -> set[tuple[str, int]]:
    """(task name, row id) of every task with a row id the broker holds in ``queue``."""
    held = set()
    for task in [*queue.pending(), *queue.scheduled()]:
        if task.args:
            held.add((task.name, int(task.args[0])))
    return held


def recover_stopped() -> dict[str, list[int]]:
    """Curation runs and documents whose worker stopped, given to the queue again (their first
    loss) or failed with :data:`STOPPED_RUN` / :data:`STOPPED_PARSE`; their ids."""
    now = utcnow()
    runs = lease.recover_stopped(
        lease.RUNS,
        failed=lambda n: {"error": STOPPED_RUN.format(n=n), "finished_at": now},
        requeued=lambda n: {"progress": {"step": "queued", "worker_stopped": n}},
    )
    documents = lease.recover_stopped(
        lease.DOCUMENTS, failed=lambda n: {"error": STOPPED_PARSE.format(n=n)}
    )
    return {
        "runs": runs["requeued"], "failed_curation_runs": runs["failed"],
        "documents": documents["requeued"], "failed_documents": documents["failed"],
    }  # fmt: skip


@body("requeue_waiting")
def requeue_waiting() -> dict[str, list[int]]:
    """Recover the curation runs and documents whose worker stopped (:func:`recover_stopped`),
    then enqueue the waiting documents and curation runs the broker does not hold; returns their
    ids (``{"documents": […], "curation_runs": […], "failed_curation_runs": […],
    "failed_documents": […]}``)."""
    recovered = recover_stopped()
    held = _held()
    cutoff = utcnow() - timedelta(seconds=GRACE_SECONDS)
    with session_scope() as session:
        documents = session.exec(
            select(Document.id).where(
                Document.status == "uploaded",
                (col(Document.created_at) < cutoff) | col(Document.id).in_(recovered["documents"]),
            )
        ).all()
        runs = session.exec(
            select(CurationRun.id).where(
                CurationRun.status == "queued",
                (col(CurationRun.created_at) < cutoff) | col(CurationRun.id).in_(recovered["runs"]),
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
    failed = {k: recovered[k] for k in ("failed_curation_runs", "failed_documents")}
    return {**handed, **failed}


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
