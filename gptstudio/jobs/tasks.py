"""Task definitions: what services enqueue, with each task's retry and schedule policy.

A definition does not import its body. Bodies (``gptstudio/jobs/<job>.py``) import services, and
services import these definitions to enqueue, so each body registers itself under a name with
:func:`body`, and a worker loads them all (``gptstudio.jobs.worker``). The web process enqueues
without ever importing a body (or torch).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

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
