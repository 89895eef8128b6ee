"""Queue tasks. Heavy imports (torch) happen inside tasks, so enqueueing stays light."""

from __future__ import annotations

import os
import socket

from huey import crontab

from gptstudio.jobs.queue import huey
from trainer import (
    billing_tasks,  # noqa: F401  (registers the periodic billing tasks)
    retrieval_tasks,  # noqa: F401  (registers build_retrieval_index_task)
)


@huey.task()
def ping(payload: str) -> dict[str, str | int]:
    """Echo ``payload`` with the worker's identity: proves a worker consumes the queue."""
    return {"payload": payload, "host": socket.gethostname(), "pid": os.getpid()}


@huey.task()
def build_tiny_model_task(output_dir: str) -> str:
    """Build the tiny local base model on a worker (see :mod:`trainer.tiny`)."""
    from trainer.tiny import build_tiny_model

    return str(build_tiny_model(output_dir))


@huey.task(retries=2, retry_delay=5)
def parse_document_task(document_id: int) -> None:
    """Parse an uploaded document and record its status (see services.document)."""
    from gptstudio.services.document import parse_stored

    parse_stored(document_id)


@huey.task()
def run_curation_task(run_id: int) -> None:
    """Run the curation pipeline for one run (see services.dataset)."""
    from gptstudio.services.dataset import execute_run

    execute_run(run_id)


@huey.task()
def train_task(job_id: int) -> None:
    """Run one training job (see services.training); resumable from its last checkpoint."""
    from gptstudio.services.training import run_job

    run_job(job_id)


@huey.task()
def export_task(version_id: int) -> None:
    """Merge a model version's adapter into a standalone model folder."""
    from gptstudio.services.training import export_version

    export_version(version_id)


@huey.periodic_task(crontab(minute="*"))
def resume_stale_jobs_task() -> None:
    """Every minute: resume training jobs whose worker died (see services.training)."""
    from gptstudio.services.training import resume_stale_jobs

    resume_stale_jobs()


@huey.on_startup()
def _install_cache() -> None:
    """A worker takes part in the request-path caches: its commits (subscriptions, plans, …)
    reach every web process's cache (see gptstudio.cache)."""
    from gptstudio import cache

    cache.install()


@huey.on_startup()
def _resume_on_startup() -> None:
    from gptstudio.services.training import resume_stale_jobs

    resume_stale_jobs()
