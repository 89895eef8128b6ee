"""A cache of whole answers for identical deterministic requests.

Only temperature-0 requests are cached (:func:`cacheable`): their answer depends on nothing but
the model version, the messages (system prompt and retrieved context included) and the
parameters. The key also carries a *scope* (``user:<id>`` or ``visitor:<id>``), so an answer to
one person's private conversation is never served to anyone else. Entries live
``GPTSTUDIO_RESPONSE_CACHE_SECONDS`` (0 turns the cache off) in Redis when ``GPTSTUDIO_REDIS_URL``
is set (shared by every web process), otherwise in a size-bounded in-process dictionary. If
Redis is briefly unreachable the request is simply not cached: the cache never fails a chat.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import threading
import time
from collections import OrderedDict
from collections.abc import Mapping
from functools import lru_cache
from typing import Any, Protocol

import redis

from gptstudio import redis_client
from gptstudio.settings import get_settings

log = logging.getLogger(__name__)
LOCAL_MAX_ENTRIES = 2048
SCOPE_PREFIXES = ("user:", "visitor:")


class _Store(Protocol):
    def get(self, key: str) -> str | None: ...
    def put(self, key: str, value: str, ttl: int) -> None: ...


class LocalStore:
    """In-process TTL entries, least recently used evicted beyond ``max_entries``."""

    def __init__(self, max_entries: int = LOCAL_MAX_ENTRIES) -> None:
        self.max_entries = max_entries
        self._entries: OrderedDict[str, tuple[float, str]] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: str) -> str | None:
        with self._lock:
            entry = self._entries.get(key)
            if entry is None:
                return None
            expires, value = entry
            if expires <= time.monotonic():
                del self._entries[key]
                return None
            self._entries.move_to_end(key)
            return value

    def put(self, key: str, value: str, ttl: int) -> None:
        with self._lock:
            self._entries[key] = (time.monotonic() + ttl, value)
            self._entries.move_to_end(key)
            while len(self._entries) > self.max_entries:
                self._entries.popitem(last=False)

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()

    def __len__(self) -> int:
        return len(self._entries)


class RedisStore:
    def __init__(self, url: str, namespace: str) -> None:
        self.client = redis_client.client(url)
        self.prefix = f"{namespace}:response-cache:"

    def get(self, key: str) -> str | None:
        try:
            value = self.client.get(self.prefix + key)
        except redis.RedisError as error:
            log.warning("response cache: Redis unreachable (%s); not using the cache", error)
            return None
        return value.decode() if isinstance(value, bytes) else None

    def put(self, key: str, value: str, ttl: int) -> None:
        try:
            self.client.set(self.prefix + key, value, ex=ttl)
        except redis.RedisError as error:
            log.warning("response cache: Redis unreachable (%s); answer not cached", error)


_local = LocalStore()


@lru_cache(maxsize=4)
def _redis_store(url: str, namespace: str) -> RedisStore:
    return RedisStore(url, namespace)


def _store() -> _Store:
    settings = get_settings()
    if settings.redis_url:
        return _redis_store(settings.redis_url, settings.queue_name)
    return _local


def _plain_params(params: Mapping[str, Any] | object) -> dict[str, Any]:
    if isinstance(params, Mapping):
        return dict(params)
    if dataclasses.is_dataclass(params) and not isinstance(params, type):
        return dataclasses.asdict(params)
    raise TypeError(f"params must be a mapping or a dataclass, not {type(params).__name__}")


def cacheable(params: Mapping[str, Any] | object) -> bool:
    """Whether a request with these parameters may be answered from the cache: temperature 0
    and the cache turned on."""
    if get_settings().response_cache_seconds <= 0:
        return False
    if isinstance(params, Mapping):
        temperature = params.get("temperature")
    else:  # a dataclass: read the field (asdict would deep-copy every field on every request)
        temperature = getattr(params, "temperature", None)
    return isinstance(temperature, (int, float)) and float(temperature) == 0.0


def key(
    *,
    version_id: int,
    messages: list[dict[str, Any]],
    params: Mapping[str, Any] | object,
    scope: str,
) -> str:
    """SHA-256 of the canonical JSON of the request; ``scope`` is ``user:<id>`` or
    ``visitor:<id>`` and is part of the key, so private answers are never shared."""
    if not scope.startswith(SCOPE_PREFIXES) or scope.endswith(":"):
        raise ValueError(f"cache scope must be 'user:<id>' or 'visitor:<id>', not {scope!r}")
    canonical = json.dumps(
        {
            "version_id": version_id,
            "messages": messages,
            "params": _plain_params(params),
            "scope": scope,
        },
        sort_keys=True,
        separators=(",", ":"),
        ensure_ascii=False,
    )
    return hashlib.sha256(canonical.encode()).hexdigest()


def get(cache_key: str) -> dict[str, Any] | None:
    """The cached answer (whatever :func:`put` stored), or None on a miss or with the cache off."""
    if get_settings().response_cache_seconds <= 0:
        return None
    raw = _store().get(cache_key)
    if raw is None:
        return None
    try:
        value = json.loads(raw)
    except ValueError:
        log.warning("response cache: unreadable entry %s ignored", cache_key[:12])
        return None
    return value if isinstance(value, dict) else None


def put(cache_key: str, value: dict[str, Any]) -> None:
    """Keep ``value`` (JSON-serialisable, e.g. ``{"content", "usage", "citations"}``) for
    ``response_cache_seconds``; nothing happens with the cache off."""
    ttl = get_settings().response_cache_seconds
    if ttl <= 0:
        return
    _store().put(cache_key, json.dumps(value, ensure_ascii=False, separators=(",", ":")), ttl)
