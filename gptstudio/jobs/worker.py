"""What a queue worker runs: the Huey instance with every task definition and job body loaded.

    huey_consumer gptstudio.jobs.worker.huey -w 1     # ``make run`` starts one for you

Importing a body module registers its bodies (:func:`gptstudio.jobs.tasks.body`); the task
definitions in :mod:`gptstudio.jobs.tasks` find them by name. The web process never imports this
module.
"""

from __future__ import annotations

import importlib
import importlib.util

from gptstudio.jobs import curation, documents, mail, retrieval, tasks, training  # noqa: F401
from gptstudio.jobs.queue import huey

# Billing's bodies arrive with their own module; until then their tasks report them not loaded.
if importlib.util.find_spec("gptstudio.jobs.billing") is not None:
    importlib.import_module("gptstudio.jobs.billing")

__all__ = ["huey"]
