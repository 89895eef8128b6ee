"""Task definitions: what services enqueue, with each task's retry and schedule policy.

A definition does not import its body. Bodies (``gptstudio/jobs/<job>.py``) import services, and
services import these definitions to enqueue, so each body registers itself under a name with
:func:`body`, and a worker loads them all (``gptstudio.jobs.worker``). The web process enqueues
without ever importing a body (or torch).
"""

from __future__ import annotations

import os
import socket
from collections.abc import Callable
from typing import Any, TypeVar

from huey import crontab

from gptstudio.jobs.queue import documents_huey, huey

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
    """Every minute: resume training jobs whose worker died (``jobs/training.py``)."""
    run("resume_stale_jobs")


@huey.on_startup()
def _resume_on_startup() -> None:
    run("resume_stale_jobs")


@huey.task()
def build_retrieval_index_task(assistant_id: int) -> None:
    """Embed the latest dataset version's curated chunks (``jobs/retrieval.py``)."""
    run("build_retrieval_index", assistant_id)


@huey.periodic_task(crontab(minute="*/5"))
def report_usage_task() -> int:
    """Every five minutes: report unreported overage to Stripe (``jobs/billing.py``). Safe to run
    twice: usage carries idempotent meter-event identifiers and ``reported_at``."""
    return int(run("report_usage"))


@huey.periodic_task(crontab(minute="*/5"))
def report_compute_task() -> int:
    """Every five minutes: report creators' unreported training overage to Stripe (each
    training run reports its own when it ends; this retries what Stripe did not accept)."""
    return int(run("report_compute"))


@huey.periodic_task(crontab(minute="17"))
def grace_period_task() -> int:
    """Hourly: e-mail subscribers whose failed-payment grace period has ended (each once)."""
    return int(run("notify_grace_ended"))


@huey.task(retries=12, retry_delay=300)
def send_mail_task(to: str, subject: str, body: str) -> None:
    """An e-mail whose first sending failed: tried again every 5 minutes for an hour."""
    run("send_mail", to=to, subject=subject, body=body)
