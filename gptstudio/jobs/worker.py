"""What a queue worker runs: the Huey instance with every task definition and job body loaded.

    huey_consumer gptstudio.jobs.worker.huey -w 1     # ``make run`` starts one for you

Importing a body module registers its bodies (:func:`gptstudio.jobs.tasks.body`); the task
definitions in :mod:`gptstudio.jobs.tasks` find them by name. The web process never imports this
module.
"""

from __future__ import annotations

from gptstudio import cache
from gptstudio.jobs import (  # noqa: F401  (each import registers that module's job bodies)
    billing,
    curation,
    documents,
    mail,
    retrieval,
    tasks,
    training,
)
from gptstudio.jobs.queue import huey

__all__ = ["huey"]


@huey.on_startup()
def _install_cache() -> None:
    """A worker takes part in the request-path caches: its commits (subscriptions, plans, …)
    reach every web process's cache (see gptstudio.cache)."""
    cache.install()
