"""The routes of the app: ``@add_page(route=..., title=..., on_load=...)`` records a page here, and
the app module adds each once (``app.add_page``).

Reflex's own ``@rx.page`` re-applies every decorated page on each compile; the production backend
compiles again in the process it forked from the build, so each route was added twice and Reflex
warned "Page … is being redefined" for every page at every start.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import reflex as rx

Render = Callable[[], rx.Component]

PAGES: list[tuple[Render, dict[str, Any]]] = []


def add_page(**options: Any) -> Callable[[Render], Render]:
    """Record the decorated function as a page with ``options`` (``rx.App.add_page``'s)."""

    def record(render: Render) -> Render:
        PAGES.append((render, options))
        return render

    return record
