"""The Huey instances, and nothing else: RedisHuey when a Redis URL is set, else SqliteHuey.

Two queues, each with its own consumer, so that a creator's upload or curation run never waits
behind anyone's training job (which can hold a worker for hours):

- ``huey``: training, exports, retrieval indexes, billing and mail (periodic tasks run here);
  ``huey_consumer gptstudio.jobs.worker.huey -w 1`` (one job owns the accelerator);
- ``documents_huey``: parsing uploads and curation runs (CPU only, short);
  ``huey_consumer gptstudio.jobs.worker.documents_huey -w 2``.

``make run`` (``python -m gptstudio.run``) starts a consumer for each.
"""

from __future__ import annotations

from huey import Huey, RedisHuey, SqliteHuey

from gptstudio.settings import get_settings


def make_huey(suffix: str = "") -> Huey:
    """The queue for the configured broker (``suffix`` names a second queue beside it)."""
    settings = get_settings()
    name = f"{settings.queue_name}{suffix}"
    if settings.redis_url:
        return RedisHuey(name, url=settings.redis_url)
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    path = settings.queue_path.with_name(f"{settings.queue_path.stem}{suffix}.db")
    return SqliteHuey(name, filename=str(path))


huey = make_huey()
documents_huey = make_huey("-documents")
