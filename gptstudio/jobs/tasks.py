"""Task definitions: what services enqueue, with each task's retry and schedule policy.

A definition does not import its body. Bodies (``gptstudio/jobs/<job>.py``) import services, and
services import these definitions to enqueue, so each body registers itself under a name with
:func:`body`, and a worker loads them all (``gptstudio.jobs.worker``). The web process enqueues
without ever importing a body (or torch).
"""

from __future__ import annotations

import logging
import os
import socket
import sqlite3
from collections.abc import Callable
from typing import Any, TypeVar, cast

import redis
from huey import Huey, crontab
from huey.api import TaskWrapper

from gptstudio.jobs.queue import documents_huey, huey

log = logging.getLogger(__name__)

F = TypeVar("F", bound=Callable[..., Any])

_BODIES: dict[str, Callable[..., Any]] = {}


def body(name: str) -> Callable[[F], F]:
    """Register the decorated function as the body of the task that runs job ``name``."""

    def register(function: F) -> F:
        if _BODIES.get(name, function) is not function:
            raise ValueError(f"Two job bodies are registered as {name!r}.")
        _BODIES[name] = function
        return function

    return register


def run(name: str, *args: Any, **kwargs: Any) -> Any:
    """Run job ``name``'s body in this process (what a task does when a worker picks it up)."""
    try:
        function = _BODIES[name]
    except KeyError:
        raise RuntimeError(
            f"The job body {name!r} is not loaded in this process: run workers as "
            "`huey_consumer gptstudio.jobs.worker.huey`, which loads every body."
        ) from None
    return function(*args, **kwargs)


def submit(task: TaskWrapper, *args: Any, priority: int | None = None) -> str | None:
    """Enqueue ``task(*args)`` (at ``priority`` when given); the task's id, or ``None`` (and a
    log line) when the broker cannot be reached.

    The caller has committed the row that says the work is waiting (a document ``uploaded``, a
    curation run or a training job ``queued``): that row is the intent to enqueue, and the sweeps
    (:func:`requeue_waiting_task`, :func:`resume_stale_jobs_task`) hand every waiting row the
    broker does not hold to it again once it is back. So a broker outage delays the work and
    never loses it, and the request that made the row succeeds."""
    try:
        result = task(*args) if priority is None else task(*args, priority=priority)
    except (redis.RedisError, sqlite3.Error, OSError) as error:
        log.warning(
            "the queue broker is unreachable (%s: %s); %s%s waits for the sweep",
            type(error).__name__, error, task.task_class.__name__, args,
        )  # fmt: skip
        return None
    return str(result.id)


def hand_over(task: TaskWrapper, *args: Any) -> bool:
    """:func:`submit` ``task(*args)``: whether the broker took it."""
    return submit(task, *args) is not None


def once_per_tick(queue: Huey, name: str, period_seconds: int) -> bool:
    """Whether this consumer runs periodic task ``name`` for this period.

    Every consumer of a queue schedules its periodic tasks, so with several consumers on Redis
    each tick is enqueued once per consumer: the first copy to run takes the tick (``SET NX`` on
    the broker, the tick read from the broker's clock and rounded, so hosts whose clocks differ
    by seconds still agree on it) and the others return at once. The embedded SQLite queue has
    one consumer per queue: always ``True``."""
    connection = getattr(queue.storage, "conn", None)
    if not isinstance(connection, redis.Redis):
        return True
    seconds, _micro = cast("tuple[int, int]", connection.time())
    tick = round(seconds / period_seconds)
    key = f"{queue.name}:periodic:{name}:{tick}"
    taken = bool(connection.set(key, os.getpid(), nx=True, ex=period_seconds * 2))
    log.info("periodic %s tick %d: %s", name, tick, "run here" if taken else "taken by another")
    return taken


# --- the tasks --------------------------------------------------------------------------------


@huey.task()
def ping(payload: str) -> dict[str, str | int]:
    """Echo ``payload`` with the worker's identity: proves a worker consumes the queue."""
    return {"payload": payload, "host": socket.gethostname(), "pid": os.getpid()}


@huey.task()
def build_tiny_model_task(output_dir: str) -> str:
    """Build the tiny local base model on a worker (see :mod:`trainer.tiny`)."""
    return str(run("build_tiny_model", output_dir))


# Uploads and curation have a queue and consumer of their own: they never wait behind training.


@documents_huey.task(retries=2, retry_delay=5)
def parse_document_task(document_id: int) -> None:
    """Parse an uploaded document and record its status (``jobs/documents.py``)."""
    run("parse_document", document_id)


@documents_huey.task()
def run_curation_task(run_id: int) -> None:
    """Run the curation pipeline for one run (``jobs/curation.py``)."""
    run("run_curation", run_id)


@documents_huey.periodic_task(crontab(minute="*"))
def requeue_waiting_task() -> dict[str, list[int]]:
    """Every minute: hand the documents and curation runs that wait for a worker, and that the
    broker does not hold (an enqueue failed during an outage, or a restarted Redis lost them),
    to the queue again (``jobs/outbox.py``)."""
    if not once_per_tick(documents_huey, "requeue_waiting", 60):
        return {}
    return dict(run("requeue_waiting"))


@documents_huey.on_startup()
def _requeue_on_startup() -> None:
    run("requeue_waiting")


@huey.task()
def train_task(job_id: int) -> None:
    """Run one training job (``jobs/training.py``); resumable from its last checkpoint."""
    run("train", job_id)


@huey.task()
def export_task(version_id: int) -> None:
    """Merge a model version's adapter into a standalone model folder."""
    run("export_version", version_id)


@huey.periodic_task(crontab(minute="*"))
def resume_stale_jobs_task() -> None:
    """Every minute: resume training jobs whose worker died (``jobs/training.py``), and queue
    the queued jobs the broker does not hold (``jobs/outbox.py``)."""
    if once_per_tick(huey, "resume_stale_jobs", 60):
        run("resume_stale_jobs")
        run("requeue_training")


@huey.on_startup()
def _resume_on_startup() -> None:
    run("resume_stale_jobs")
    run("requeue_training")


@huey.task()
def build_retrieval_index_task(assistant_id: int) -> None:
    """Embed the latest dataset version's curated chunks (``jobs/retrieval.py``)."""
    run("build_retrieval_index", assistant_id)


@huey.periodic_task(crontab(minute="*/5"))
def report_usage_task() -> int:
    """Every five minutes: report unreported overage to Stripe (``jobs/billing.py``). Safe to run
    twice: usage carries idempotent meter-event identifiers and ``reported_at``."""
    return int(run("report_usage")) if once_per_tick(huey, "report_usage", 300) else 0


@huey.periodic_task(crontab(minute="*/5"))
def report_compute_task() -> int:
    """Every five minutes: report creators' unreported training overage to Stripe (each
    training run reports its own when it ends; this retries what Stripe did not accept)."""
    return int(run("report_compute"))


@huey.periodic_task(crontab(minute="17"))
def grace_period_task() -> int:
    """Hourly: e-mail subscribers whose failed-payment grace period has ended (each once)."""
    return int(run("notify_grace_ended")) if once_per_tick(huey, "notify_grace_ended", 3600) else 0


@huey.task(retries=12, retry_delay=300)
def send_mail_task(to: str, subject: str, body: str) -> None:
    """An e-mail whose first sending failed: tried again every 5 minutes for an hour."""
    run("send_mail", to=to, subject=subject, body=body)
