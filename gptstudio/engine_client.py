"""An HTTP client for the serving engine (``GPTSTUDIO_ENGINE_URL``, its API key), shared by the
chat path and retrieval's query embeddings."""

from __future__ import annotations

import functools
import ssl

import httpx

from gptstudio.settings import get_settings


@functools.cache
def _tls() -> ssl.SSLContext:
    """One TLS context for every engine client: building one costs ~30 ms of CPU, which a
    client per request would spend on the event loop each time."""
    return httpx.create_ssl_context()


def client(timeout: httpx.Timeout) -> httpx.AsyncClient:
    """A client for the engine, with its API key when one is set (use it ``async with``)."""
    settings = get_settings()
    key = settings.engine_api_key.get_secret_value()
    return httpx.AsyncClient(
        base_url=settings.resolved_engine_url,
        headers={"Authorization": f"Bearer {key}"} if key else {},
        timeout=timeout,
        verify=_tls(),
    )
