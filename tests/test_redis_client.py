"""One Redis client per URL in a process, one asyncio client per URL and event loop, all with
the short timeouts of the request path; real Redis."""

from __future__ import annotations

import asyncio

import redis.asyncio

from gptstudio import redis_client


def test_one_blocking_client_per_url(redis_url: str) -> None:
    client = redis_client.client(redis_url)
    assert redis_client.client(redis_url) is client
    assert client.ping()
    kwargs = client.connection_pool.connection_kwargs
    assert kwargs["socket_timeout"] == kwargs["socket_connect_timeout"] == 1.0
    assert redis_client.client("redis://127.0.0.1:6379/0") is not client


def test_one_asyncio_client_per_event_loop(redis_url: str) -> None:
    async def twice() -> tuple[redis.asyncio.Redis, redis.asyncio.Redis]:
        first = redis_client.async_client(redis_url)
        assert await first.ping()
        return first, redis_client.async_client(redis_url)

    first, again = asyncio.run(twice())
    other, _ = asyncio.run(twice())
    assert again is first and other is not first
