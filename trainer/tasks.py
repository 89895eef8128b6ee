"""Queue tasks. Heavy imports (torch) happen inside tasks, so enqueueing stays light."""

from __future__ import annotations

import os
import socket

from trainer.queue import huey


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
