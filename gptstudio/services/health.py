"""Liveness of the parts the app needs: the database and the queue broker."""

from __future__ import annotations

from sqlalchemy import text

from gptstudio.db import get_engine


def check_database() -> None:
    """Run ``SELECT 1``; raises the driver's error when the database is unreachable."""
    with get_engine().connect() as connection:
        connection.execute(text("SELECT 1"))


def queue_depth() -> int:
    """Tasks waiting in the queue; raises when the broker (Redis or SQLite) is unreachable."""
    from gptstudio.jobs.queue import huey

    return int(huey.pending_count())


def check_all() -> dict[str, str]:
    """``{"database": ..., "queue": ...}`` with ``"ok"`` or the error for each part."""
    results: dict[str, str] = {}
    for name, probe in (("database", check_database), ("queue", queue_depth)):
        try:
            probe()
            results[name] = "ok"
        except Exception as error:  # noqa: BLE001 (any failure is reported, never raised)
            results[name] = f"error: {type(error).__name__}: {error}"[:300]
    return results
