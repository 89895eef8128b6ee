"""Queue task for retrieval (RAG): build an assistant's sources index on a worker.

Registered on the worker by ``trainer/tasks.py`` importing this module; the web process only
enqueues (``services.retrieval.request_build``), the embedding (torch) happens here.
"""

from __future__ import annotations

from gptstudio.jobs.queue import huey


@huey.task()
def build_retrieval_index_task(assistant_id: int) -> None:
    """Embed the latest dataset version's curated chunks (see services.retrieval.build_index)."""
    from gptstudio.services.retrieval import build_index

    build_index(assistant_id)
