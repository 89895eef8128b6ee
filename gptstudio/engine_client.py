"""HTTP clients for the serving engine (``GPTSTUDIO_ENGINE_URL``, its API key), which the chat
path uses, and for the embeddings server retrieval asks (``GPTSTUDIO_EMBEDDINGS_URL``; empty: the
engine)."""

from __future__ import annotations

import functools
import ssl

import httpx
from pydantic import SecretStr

from gptstudio.settings import get_settings


@functools.cache
def _tls() -> ssl.SSLContext:
    """One TLS context for every engine client: building one costs ~30 ms of CPU, which a
    client per request would spend on the event loop each time."""
    return httpx.create_ssl_context()


def client(timeout: httpx.Timeout) -> httpx.AsyncClient:
    """A client for the engine, with its API key when one is set (use it ``async with``)."""
    settings = get_settings()
    return _client(settings.resolved_engine_url, settings.engine_api_key, timeout)


def embeddings_client(timeout: httpx.Timeout) -> httpx.AsyncClient:
    """A client for the ``/v1/embeddings`` server: the engine unless another URL is set."""
    settings = get_settings()
    key = settings.embeddings_api_key if settings.embeddings_url else settings.engine_api_key
    return _client(settings.resolved_embeddings_url, key, timeout)


def _client(base_url: str, api_key: SecretStr, timeout: httpx.Timeout) -> httpx.AsyncClient:
    key = api_key.get_secret_value()
    return httpx.AsyncClient(
        base_url=base_url,
        headers={"Authorization": f"Bearer {key}"} if key else {},
        timeout=timeout,
        verify=_tls(),
    )
