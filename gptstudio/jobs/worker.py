"""What a queue worker runs: the Huey instances with every task definition and job body loaded.

    huey_consumer gptstudio.jobs.worker.huey -w 1            # training, exports, billing, mail
    huey_consumer gptstudio.jobs.worker.documents_huey -w 2  # parsing and curation

``make run`` starts one of each for you (see :mod:`gptstudio.jobs.queue`).

Importing a body module registers its bodies (:func:`gptstudio.jobs.tasks.body`); the task
definitions in :mod:`gptstudio.jobs.tasks` find them by name. The web process never imports this
module.
"""

from __future__ import annotations

from gptstudio import cache
from gptstudio.jobs import (  # noqa: F401  (each import registers that module's job bodies)
    billing,
    bundle,
    curation,
    documents,
    mail,
    outbox,
    retrieval,
    tasks,
    training,
)
from gptstudio.jobs.queue import documents_huey, huey
from gptstudio.logs import configure_logging

__all__ = ["documents_huey", "huey"]

configure_logging()  # the jobs' own log lines (a resumed job, a periodic tick) in its output


@huey.on_startup()
@documents_huey.on_startup()
def _install_cache() -> None:
    """A worker takes part in the request-path caches: its commits (subscriptions, plans, …)
    reach every web process's cache (see gptstudio.cache)."""
    cache.install()
