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
