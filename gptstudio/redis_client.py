"""Redis clients for the app's shared state: quotas and rate limits, login throttling and the
response cache (``GPTSTUDIO_REDIS_URL``).

One blocking client per URL in a process (one connection pool, shared by every thread; redis-py
starts a new pool in a forked child by itself) and one asyncio client per URL and event loop (an
asyncio connection belongs to the loop that opened it). Every caller is on a request path and
has an answer for a Redis that does not reply (the quota a 503, the login throttle the database,
the response cache no cache), so no call waits longer than :data:`TIMEOUT_SECONDS`.

Each feature keeps its own store interface, with a Redis and a local implementation: the quota's
atomic admission scripts (refused when Redis is down), the login throttle's counters (the
database takes over) and the response cache's entries (not cached) share nothing but this client.

The queue keeps its own connection (``gptstudio.jobs.queue``): a Huey consumer blocks on reads
far longer than these timeouts allow.
"""

from __future__ import annotations

import asyncio
import threading
import weakref
from typing import Any

import redis
import redis.asyncio

TIMEOUT_SECONDS = 1.0
OPTIONS: dict[str, Any] = {
    "socket_timeout": TIMEOUT_SECONDS,
    "socket_connect_timeout": TIMEOUT_SECONDS,
}

_clients: dict[str, redis.Redis] = {}
_async_clients: dict[str, weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, redis.asyncio.Redis]]
_async_clients = {}
_lock = threading.Lock()


def client(url: str) -> redis.Redis:
    """The blocking client for ``url`` in this process."""
    found = _clients.get(url)
    if found is not None:
        return found
    with _lock:
        if url not in _clients:
            _clients[url] = redis.Redis.from_url(url, **OPTIONS)
        return _clients[url]


def async_client(url: str) -> redis.asyncio.Redis:
    """The asyncio client for ``url`` on the running event loop (call it from a coroutine)."""
    loop = asyncio.get_running_loop()
    with _lock:
        per_loop = _async_clients.setdefault(url, weakref.WeakKeyDictionary())
        found = per_loop.get(loop)
        if found is None:
            found = per_loop[loop] = redis.asyncio.Redis.from_url(url, **OPTIONS)
        return found
