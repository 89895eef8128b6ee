"""The response cache: deterministic requests only, per-user scope, TTL, on real Redis and in
process."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest
import redis

from gptstudio.services import response_cache
from gptstudio.services.completion import Params
from gptstudio.settings import get_settings

MESSAGES = [{"role": "system", "content": "You are a mentor."}, {"role": "user", "content": "Hi"}]
ANSWER = {"content": "Hello **there**", "usage": {"prompt_tokens": 5, "completion_tokens": 3}}


@pytest.fixture(params=["memory", "redis"])
def backend(request: pytest.FixtureRequest, settings_env: pytest.MonkeyPatch) -> Iterator[str]:
    """The cache on each store: in process (no Redis configured) and on the real Redis."""
    if request.param == "redis":
        settings_env.setenv("GPTSTUDIO_REDIS_URL", request.getfixturevalue("redis_url"))
    settings_env.setenv("GPTSTUDIO_RESPONSE_CACHE_SECONDS", "60")
    get_settings.cache_clear()
    response_cache._local.clear()
    yield request.param
    response_cache._local.clear()


def _key(**change: object) -> str:
    args: dict[str, object] = {
        "version_id": 3, "messages": MESSAGES, "params": Params(temperature=0), "scope": "user:7",
    }  # fmt: skip
    args.update(change)
    return response_cache.key(**args)  # type: ignore[arg-type]


def test_only_temperature_zero_is_cacheable(backend: str, settings_env: pytest.MonkeyPatch) -> None:
    assert response_cache.cacheable(Params(temperature=0))
    assert response_cache.cacheable({"temperature": 0.0, "top_p": 1})
    assert not response_cache.cacheable(Params(temperature=0.7))
    assert not response_cache.cacheable({"top_p": 1})
    settings_env.setenv("GPTSTUDIO_RESPONSE_CACHE_SECONDS", "0")
    get_settings.cache_clear()
    assert not response_cache.cacheable(Params(temperature=0))


def test_key_is_canonical_and_covers_every_part(backend: str) -> None:
    same = _key(params={"temperature": 0, "top_p": 1.0, "max_tokens": 512, "stop": [],
                        "seed": None})  # fmt: skip
    assert _key() == same and len(same) == 64
    reordered = [{"content": m["content"], "role": m["role"]} for m in MESSAGES]
    assert _key(messages=reordered) == _key()
    different = [
        _key(version_id=4),
        _key(messages=[*MESSAGES[:1], {"role": "user", "content": "Hi!"}]),
        _key(messages=MESSAGES[1:]),  # another system prompt (here: none)
        _key(params=Params(temperature=0, max_tokens=100)),
        _key(scope="user:8"),
        _key(scope="visitor:7"),
    ]
    assert len({_key(), *different}) == 1 + len(different)


@pytest.mark.parametrize("scope", ["", "user:", "7", "everyone", "visitor:"])
def test_scope_is_required(backend: str, scope: str) -> None:
    with pytest.raises(ValueError, match="cache scope"):
        _key(scope=scope)


def test_put_get_and_never_across_users(backend: str) -> None:
    mine, theirs = _key(scope="user:7"), _key(scope="user:8")
    assert response_cache.get(mine) is None
    response_cache.put(mine, ANSWER)
    assert response_cache.get(mine) == ANSWER
    assert response_cache.get(theirs) is None
    assert response_cache.get(_key(scope="visitor:7")) is None


def test_entries_expire(backend: str, monkeypatch: pytest.MonkeyPatch) -> None:
    cache_key = _key()
    response_cache.put(cache_key, ANSWER)
    assert response_cache.get(cache_key) == ANSWER
    if backend == "redis":
        client = redis.Redis.from_url(get_settings().redis_url)
        stored = f"{get_settings().queue_name}:response-cache:{cache_key}"
        assert 0 < client.ttl(stored) <= 60
        client.pexpire(stored, 1)  # let the server expire it rather than waiting a minute
        client.close()
        time.sleep(0.05)
    else:
        later = time.monotonic() + 61
        monkeypatch.setattr(response_cache.time, "monotonic", lambda: later)
    assert response_cache.get(cache_key) is None


def test_cache_off_stores_nothing(backend: str, settings_env: pytest.MonkeyPatch) -> None:
    settings_env.setenv("GPTSTUDIO_RESPONSE_CACHE_SECONDS", "0")
    get_settings.cache_clear()
    response_cache.put(_key(), ANSWER)
    settings_env.setenv("GPTSTUDIO_RESPONSE_CACHE_SECONDS", "60")
    get_settings.cache_clear()
    assert response_cache.get(_key()) is None


def test_in_process_store_is_bounded() -> None:
    store = response_cache.LocalStore(max_entries=3)
    for n in range(5):
        store.put(f"k{n}", str(n), ttl=60)
    assert len(store) == 3
    assert store.get("k0") is None and store.get("k1") is None
    assert store.get("k4") == "4"
    store.get("k2")  # recently used: survives the next eviction
    store.put("k5", "5", ttl=60)
    assert store.get("k2") == "2" and store.get("k3") is None


def test_unreachable_redis_means_no_cache_not_an_error(settings_env: pytest.MonkeyPatch) -> None:
    settings_env.setenv("GPTSTUDIO_REDIS_URL", "redis://127.0.0.1:1/0")
    settings_env.setenv("GPTSTUDIO_RESPONSE_CACHE_SECONDS", "60")
    get_settings.cache_clear()
    response_cache.put(_key(), ANSWER)
    assert response_cache.get(_key()) is None
