"""The Huey instance, and nothing else: RedisHuey when a Redis URL is set, else SqliteHuey.

Run a worker with ``huey_consumer gptstudio.jobs.worker.huey`` (``make run`` starts one for you).
"""

from __future__ import annotations

from huey import Huey, RedisHuey, SqliteHuey

from gptstudio.settings import get_settings


def make_huey() -> Huey:
    """The queue for the configured broker."""
    settings = get_settings()
    if settings.redis_url:
        return RedisHuey(settings.queue_name, url=settings.redis_url)
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    return SqliteHuey(settings.queue_name, filename=str(settings.queue_path))


huey = make_huey()
