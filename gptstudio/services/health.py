"""Liveness of the parts the app needs: the database and the queue broker, and the model server.

The database and the queue are the web process's own needs: without them it cannot serve a page,
and ``/healthz`` is a 503. The engine is shared by every web replica and only answers need it:
while it is down (restarting after a crash, a vLLM upgrade) sign-in, documents, training and
billing still work and a chat request is a 503 with ``Retry-After``. So ``/healthz`` stays 200
with ``"status": "degraded"`` and the engine's error: a load balancer or Kubernetes probe that
pulled every replica out of service over an engine outage would take the whole site down.
"""

from __future__ import annotations

import httpx
from sqlalchemy import text

from gptstudio.db import get_engine
from gptstudio.settings import get_settings


def check_database() -> None:
    """Run ``SELECT 1``; raises the driver's error when the database is unreachable."""
    with get_engine().connect() as connection:
        connection.execute(text("SELECT 1"))


def queue_depth() -> int:
    """Tasks waiting in the queue; raises when the broker (Redis or SQLite) is unreachable."""
    from gptstudio.jobs.queue import huey

    return int(huey.pending_count())


def check_engine() -> None:
    """Ask the model server for its model list (the project's engine and vLLM both answer it);
    raises when it is unreachable or answers with an error."""
    settings = get_settings()
    key = settings.engine_api_key.get_secret_value()
    response = httpx.get(
        f"{settings.resolved_engine_url}/v1/models",
        headers={"Authorization": f"Bearer {key}"} if key else {},
        timeout=2,
    )
    if response.status_code != 200:
        raise RuntimeError(f"HTTP {response.status_code}")


REQUIRED = ("database", "queue")  # the web process's own needs; the engine is only reported


def check_all() -> dict[str, str]:
    """``{"database": ..., "queue": ..., "engine": ...}`` with ``"ok"`` or each part's error."""
    results: dict[str, str] = {}
    probes = (("database", check_database), ("queue", queue_depth), ("engine", check_engine))
    for name, probe in probes:
        try:
            probe()
            results[name] = "ok"
        except Exception as error:  # noqa: BLE001 (any failure is reported, never raised)
            results[name] = f"error: {type(error).__name__}: {error}"[:300]
    return results
