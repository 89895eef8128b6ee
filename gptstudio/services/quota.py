"""Quotas and rate limits for chat, enforced in one place for the web UI, the widget and the API.

What a plan allows comes from :func:`gptstudio.services.entitlements.entitlement` (local
subscription state only). Two limits apply per subject (``user:<id>``, or
``visitor:<assistant>:<visitor id>`` for an anonymous widget visitor) and assistant:

* **requests per minute**: a sliding-window counter (the algorithm of the ``limits`` library),
  on Redis when ``GPTSTUDIO_REDIS_URL`` is set (shared by every web process), in memory
  otherwise (the embedded single web process);
* **tokens per period** (the plan's billing period; the calendar month for a free tier): a
  reservation made atomically before the engine is called (a Lua script on Redis; a lock in the
  embedded process). A request is admitted only while ``used + reserved < limit``; it reserves
  ``min(max_tokens + prompt bound, what is left)`` and its ``max_tokens`` is clamped to fit, so
  concurrent requests can never together spend more than the quota plus the one request admitted
  last. At the end :func:`settle` adds the tokens actually spent and frees the rest.

Both are decided in one atomic step (one Lua script, one round trip on the request path, from
the event loop), so a request refused by one limit never uses up the other.

The prompt bound (:func:`gptstudio.services.prompt.prompt_bound`) is a strict upper bound of the
prompt's tokens (its UTF-8 bytes plus the chat template's overhead): an estimate that could be
low would let many concurrent requests slip past the quota together. Each reservation expires
after :data:`HOLD_SECONDS` (longer than any request may run), so a web process that dies
mid-request cannot hold tokens forever.

The database is the truth: a cold Redis bucket (first use in a period, a Redis restart or flush)
is seeded from the period's usage events, so nothing is lost. If Redis is configured but
unreachable, limited requests are refused with a 503 :class:`QuotaUnavailable` (``Retry-After``)
rather than let through unchecked: without the shared store no process can know what the others
reserved, and a deployment that sets Redis already depends on it for the UI's state and the queue.
Unlimited users (an assistant's owner, admins, assistants without plans) never touch Redis.
"""

from __future__ import annotations

import asyncio
import functools
import hashlib
import logging
import math
import threading
import time
import weakref
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, NotRequired, Protocol, TypedDict, Unpack, cast

import redis
import redis.asyncio

from gptstudio import redis_client
from gptstudio.db import utcnow
from gptstudio.errors import DomainError, InvalidInput, RateLimited
from gptstudio.services import usage
from gptstudio.services.entitlements import Entitlement, entitlement
from gptstudio.settings import get_settings

log = logging.getLogger(__name__)
HOLD_SECONDS = 330  # a reservation outlives the longest request (the engine read timeout: 300 s)
RETRY_UNAVAILABLE_SECONDS = 5
MAX_VISITOR_ID = 120
STORE_ERRORS = (redis.RedisError,)


class QuotaUnavailable(DomainError):
    """Redis is configured but unreachable: limits cannot be checked, so nothing is granted."""

    status_code = 503
    type = "server_error"
    code = "quota_unavailable"
    retry_after = RETRY_UNAVAILABLE_SECONDS

    def __init__(self) -> None:
        super().__init__(
            "Usage limits cannot be checked right now (the rate-limit store is unreachable); "
            f"try again in {RETRY_UNAVAILABLE_SECONDS} seconds."
        )


class QuotaExceeded(RateLimited):
    """A 429 that also carries the ``x-ratelimit-*`` headers of the refused request."""

    code = "rate_limit_exceeded"  # or ``insufficient_quota``: each refusal passes its own

    def __init__(
        self, message: str, *, retry_after: int, code: str, upgrade_url: str,
        headers: dict[str, str],
    ) -> None:  # fmt: skip
        super().__init__(message, retry_after=retry_after, code=code, upgrade_url=upgrade_url)
        self.headers = headers


# --- what the UI and the headers show -----------------------------------------------------


@dataclass(frozen=True)
class QuotaStatus:
    """Where a subject stands with one assistant now. ``None`` limits mean unlimited."""

    allowed: bool
    reason: str
    plan_name: str
    upgrade_url: str
    used: int = 0  # tokens spent this period (settled)
    reserved: int = 0  # tokens held by requests in flight
    limit: int | None = None
    reset_at: datetime | None = None  # when the token period ends
    requests_limit: int | None = None
    requests_remaining: int | None = None
    requests_reset_at: datetime | None = None

    @property
    def remaining(self) -> int | None:
        if self.limit is None:
            return None
        return max(0, self.limit - self.used - self.reserved)

    def headers(self) -> dict[str, str]:
        """OpenAI's ``x-ratelimit-*`` headers (only for the limits that apply)."""
        now = utcnow()
        headers: dict[str, str] = {}
        if self.requests_limit is not None:
            headers["x-ratelimit-limit-requests"] = str(self.requests_limit)
            headers["x-ratelimit-remaining-requests"] = str(self.requests_remaining or 0)
            headers["x-ratelimit-reset-requests"] = duration(self.requests_reset_at, now)
        if self.limit is not None:
            headers["x-ratelimit-limit-tokens"] = str(self.limit)
            headers["x-ratelimit-remaining-tokens"] = str(self.remaining)
            headers["x-ratelimit-reset-tokens"] = duration(self.reset_at, now)
        return headers


def duration(until: datetime | None, now: datetime) -> str:
    """Time left as OpenAI writes it: ``"1s"``, ``"6m0s"``, ``"412h3m20s"``."""
    seconds = 0 if until is None else max(0, math.ceil((until - now).total_seconds()))
    hours, rest = divmod(seconds, 3600)
    minutes, seconds = divmod(rest, 60)
    if hours:
        return f"{hours}h{minutes}m{seconds}s"
    return f"{minutes}m{seconds}s" if minutes else f"{seconds}s"


@dataclass
class Admission:
    """A request let through: its reservation, the clamped ``max_tokens``, the status to show."""

    entitlement: Entitlement
    subject: str
    status: QuotaStatus
    max_tokens: int
    prompt_bound: int = 0
    bucket: str = ""  # the token bucket; empty when tokens are unlimited
    hold: str = ""  # this request's reservation id in the bucket
    granted: int = 0
    settled: bool = field(default=False, repr=False)

    def headers(self) -> dict[str, str]:
        return self.status.headers()


def subject(*, user_id: int | None, visitor_id: str, assistant_id: int) -> str:
    """Whose quota a request counts against."""
    if user_id is not None:
        return f"user:{user_id}"
    visitor = visitor_id.strip()
    if not visitor:
        raise InvalidInput("An anonymous chat needs a visitor id; reload the page and try again.")
    if len(visitor) > MAX_VISITOR_ID or not visitor.isprintable():
        raise InvalidInput("The visitor id is invalid; reload the page and try again.")
    return f"visitor:{assistant_id}:{visitor}"


# --- stores --------------------------------------------------------------------------------
#
# Both limits are decided in one atomic step per request (one Redis round trip): the token
# reservation and the requests-per-minute count. A request refused by either limit leaves the
# other untouched, which two separate stores (or the ``limits`` library next to a token
# script) cannot do in one step. The rate is a sliding-window counter, the algorithm of
# ``limits``' SlidingWindowCounterRateLimiter: this minute's count plus the previous minute's,
# weighted by the part of it still inside the last 60 seconds.

RATE_WINDOW = 60

# What both scripts share: the server's clock, the live reservations of a token bucket, and
# where a rate window stands now (its index, seconds into it, this and the previous count).
_LUA_COMMON = """
local clock = redis.call('TIME')
local now = tonumber(clock[1]) + tonumber(clock[2]) / 1000000
local function held(bucket, drop_expired)
  local reserved = 0
  local fields = redis.call('HGETALL', bucket)
  for i = 1, #fields, 2 do
    if string.sub(fields[i], 1, 2) == 'h:' then
      local amount, expires = string.match(fields[i + 1], '^(%d+):(%d+)$')
      if tonumber(expires) > now then
        reserved = reserved + tonumber(amount)
      elseif drop_expired then
        redis.call('HDEL', bucket, fields[i])
      end
    end
  end
  return reserved
end
local function window(key, span)
  local index = math.floor(now / span)
  local state = redis.call('HMGET', key, 'w', 'c', 'p')
  local w, c, p = tonumber(state[1] or '-1'), tonumber(state[2] or '0'), tonumber(state[3] or '0')
  if w ~= index then
    if w == index - 1 then p = c else p = 0 end
    c = 0
  end
  return index, now - index * span, c, p
end
"""

_ADMIT = (
    _LUA_COMMON
    + """
local rate_limit, token_limit = tonumber(ARGV[1]), tonumber(ARGV[2])
local used, reserved, grant = 0, 0, tonumber(ARGV[3])
if token_limit >= 0 then
  if redis.call('EXISTS', KEYS[2]) == 0 then
    if tonumber(ARGV[4]) < 0 then return {-1} end
    used = tonumber(ARGV[4])
    redis.call('HSET', KEYS[2], 'used', used)
    redis.call('EXPIRE', KEYS[2], tonumber(ARGV[7]))
  else
    used = tonumber(redis.call('HGET', KEYS[2], 'used') or '0')
  end
  reserved = held(KEYS[2], true)
  if used + reserved >= token_limit then return {2, 0, used, reserved, -1, '0', '0'} end
  grant = math.min(grant, token_limit - used - reserved)
end
local remaining, reset = -1, 0
if rate_limit >= 0 then
  local span = tonumber(ARGV[8])
  local index, elapsed, c, p = window(KEYS[1], span)
  if p * (span - elapsed) / span + c + 1 > rate_limit then
    local wait
    if c + 1 <= rate_limit then
      wait = span * (1 - (rate_limit - 1 - c) / p) - elapsed
    else
      wait = span - elapsed + span * (1 - (rate_limit - 1) / math.max(c, 1))
    end
    return {0, 0, used, reserved, 0, tostring((index + 1) * span), tostring(wait)}
  end
  c = c + 1
  redis.call('HSET', KEYS[1], 'w', index, 'c', c, 'p', p)
  redis.call('EXPIRE', KEYS[1], 2 * span)
  remaining = math.floor(rate_limit - (p * (span - elapsed) / span + c))
  reset = (index + 1) * span
end
if token_limit >= 0 then
  redis.call('HSET', KEYS[2], 'h:' .. ARGV[5], grant .. ':' .. math.floor(now + tonumber(ARGV[6])))
  redis.call('EXPIRE', KEYS[2], tonumber(ARGV[7]))
  reserved = reserved + grant
end
return {1, grant, used, reserved, remaining, tostring(reset), '0'}
"""
)

# A bucket that is gone (flushed, restarted) is left cold: the next admission seeds it from the
# database, which already holds this request's usage event.
_SETTLE = """
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
redis.call('HDEL', KEYS[1], 'h:' .. ARGV[1])
redis.call('HINCRBY', KEYS[1], 'used', ARGV[2])
return 1
"""

_PEEK = (
    _LUA_COMMON
    + """
local result = {-1, 0, -1, '0'}
if redis.call('EXISTS', KEYS[2]) == 1 then
  result[1] = tonumber(redis.call('HGET', KEYS[2], 'used') or '0')
  result[2] = held(KEYS[2], false)
end
local rate_limit = tonumber(ARGV[1])
if rate_limit >= 0 then
  local span = tonumber(ARGV[2])
  local index, elapsed, c, p = window(KEYS[1], span)
  result[3] = math.max(0, math.floor(rate_limit - (p * (span - elapsed) / span + c)))
  result[4] = tostring((index + 1) * span)
end
return result
"""
)


@dataclass(frozen=True)
class Ask:
    """One request's admission: its rate window and token bucket (``None`` limits: none)."""

    rate_key: str
    rate_limit: int | None
    bucket: str
    token_limit: int | None
    need: int
    hold: str
    ttl: int


@dataclass(frozen=True)
class Outcome:
    """``verdict``: ``admitted``, ``rate`` (refused, retry after ``retry_after`` s) or
    ``tokens`` (refused); ``cold``: the bucket must be seeded from the database first."""

    verdict: str
    granted: int = 0
    used: int = 0
    reserved: int = 0
    requests_remaining: int | None = None
    requests_reset: float = 0.0  # epoch seconds
    retry_after: float = 0.0


def _outcome(result: list[Any]) -> Outcome:
    code = int(result[0])
    if code < 0:
        return Outcome("cold")
    verdict = {0: "rate", 1: "admitted", 2: "tokens"}[code]
    remaining = int(result[4])
    return Outcome(
        verdict, granted=int(result[1]), used=int(result[2]), reserved=int(result[3]),
        requests_remaining=None if remaining < 0 else remaining,
        requests_reset=float(result[5]), retry_after=float(result[6]),
    )  # fmt: skip


class Store(Protocol):
    async def admit_async(self, ask: Ask, seed: Callable[[], int]) -> Outcome: ...

    def settle(self, bucket: str, *, hold: str, tokens: int) -> None: ...

    async def settle_async(self, bucket: str, *, hold: str, tokens: int) -> None: ...

    def peek(
        self, rate_key: str, rate_limit: int | None, bucket: str
    ) -> tuple[tuple[int, int] | None, int | None, float]:
        """``((used, reserved) or None when cold, requests remaining, requests reset)``."""
        ...


_stale: set[str] = set()  # buckets that missed a settle while Redis was unreachable
_stale_lock = threading.Lock()


def _take_stale(bucket: str) -> bool:
    with _stale_lock:
        if bucket in _stale:
            _stale.discard(bucket)
            return True
        return False


def _args(ask: Ask, seed: int) -> list[Any]:
    return [
        -1 if ask.rate_limit is None else ask.rate_limit,
        -1 if ask.token_limit is None else ask.token_limit,
        ask.need, seed, ask.hold, HOLD_SECONDS, ask.ttl, RATE_WINDOW,
    ]  # fmt: skip


class _Pipeline:
    """Script calls of concurrent requests sent together: while one pipeline is on its way,
    the calls that arrive wait for the next, so there is one round trip per batch instead of a
    connection checkout and round trip per call (as the usage writer groups its commits).
    Scripts go by SHA; after a Redis restart (``NOSCRIPT``) they are loaded again."""

    def __init__(self, client: redis.asyncio.Redis) -> None:
        self.client = client
        self._waiting: list[tuple[str, list[Any], list[Any], asyncio.Future[Any]]] = []
        self._busy = False

    async def call(self, script: str, keys: list[Any], args: list[Any]) -> Any:
        done: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._waiting.append((script, keys, args, done))
        if not self._busy:
            self._busy = True
            asyncio.get_running_loop().create_task(self._drain())
        return await done

    async def _drain(self) -> None:
        batch: list[tuple[str, list[Any], list[Any], asyncio.Future[Any]]] = []
        try:
            while self._waiting:
                batch, self._waiting = self._waiting, []
                try:
                    results: list[Any] = await self._send(batch)
                except (redis.RedisError, OSError) as error:  # every call of the batch fails
                    results = [error] * len(batch)
                for (_, _, _, done), result in zip(batch, results, strict=True):
                    if done.done():
                        continue  # its caller went away
                    if isinstance(result, BaseException):
                        done.set_exception(result)
                    else:
                        done.set_result(result)
        finally:
            self._busy = False
            for *_, done in [*batch, *self._waiting]:  # cancelled midway: nobody waits forever
                if not done.done():
                    done.set_exception(redis.ConnectionError("the Redis pipeline was cancelled"))

    async def _send(self, batch: list[tuple[str, list[Any], list[Any], Any]]) -> list[Any]:
        pipe = self.client.pipeline(transaction=False)
        for script, keys, args, _ in batch:
            pipe.evalsha(_sha(script), len(keys), *keys, *args)
        results = await pipe.execute(raise_on_error=False)
        if any(isinstance(r, redis.exceptions.NoScriptError) for r in results):
            for script in {script for script, *_ in batch}:
                await self.client.script_load(script)
            pipe = self.client.pipeline(transaction=False)
            for script, keys, args, _ in batch:
                pipe.evalsha(_sha(script), len(keys), *keys, *args)
            results = await pipe.execute(raise_on_error=False)
        return list(results)


@functools.cache
def _sha(script: str) -> str:
    return hashlib.sha1(script.encode()).hexdigest()  # noqa: S324 (Redis names scripts so)


class RedisStore:
    """Token buckets in Redis hashes (``used`` plus one ``h:<request>`` field per reservation)
    and rate windows (``w``, ``c``, ``p``), shared by every web process. The request path uses
    the asyncio client (no thread per request); the UI's reads use the blocking one."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.client = redis_client.client(url)
        self._settle = self.client.register_script(_SETTLE)
        self._peek = self.client.register_script(_PEEK)
        self._async: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, _Pipeline] = (
            weakref.WeakKeyDictionary()
        )

    def _pipeline(self) -> _Pipeline:
        """The asyncio client's batcher for the running event loop (a client is tied to one)."""
        loop = asyncio.get_running_loop()
        found = self._async.get(loop)
        if found is None:
            found = self._async[loop] = _Pipeline(redis_client.async_client(self.url))
        return found

    async def admit_async(self, ask: Ask, seed: Callable[[], int]) -> Outcome:
        pipeline = self._pipeline()
        if ask.bucket and _take_stale(ask.bucket):  # a missed settle: start again from the db
            await pipeline.client.delete(ask.bucket)
        keys = [ask.rate_key, ask.bucket or ask.rate_key]
        outcome = _outcome(await pipeline.call(_ADMIT, keys, _args(ask, -1)))
        if outcome.verdict == "cold":  # seed from the database, atomically unless another won
            seeded = await asyncio.to_thread(seed)
            outcome = _outcome(await pipeline.call(_ADMIT, keys, _args(ask, seeded)))
        return outcome

    def settle(self, bucket: str, *, hold: str, tokens: int) -> None:
        try:
            self._settle(keys=[bucket], args=[hold, tokens])
        except redis.RedisError:
            with _stale_lock:
                _stale.add(bucket)
            raise

    async def settle_async(self, bucket: str, *, hold: str, tokens: int) -> None:
        try:
            await self._pipeline().call(_SETTLE, [bucket], [hold, tokens])
        except redis.RedisError:
            with _stale_lock:
                _stale.add(bucket)
            raise

    def peek(
        self, rate_key: str, rate_limit: int | None, bucket: str
    ) -> tuple[tuple[int, int] | None, int | None, float]:
        limit = -1 if rate_limit is None else rate_limit
        used, reserved, remaining, reset = cast(
            list[Any], self._peek(keys=[rate_key, bucket or rate_key], args=[limit, RATE_WINDOW])
        )
        tokens = None if int(used) < 0 else (int(used), int(reserved))
        return tokens, None if int(remaining) < 0 else int(remaining), float(reset)


@dataclass
class _LocalBucket:
    used: int = 0
    holds: dict[str, int] = field(default_factory=dict)


class LocalStore:
    """The same two limits in the embedded single web process (no I/O: a lock). A token bucket
    lives only while requests are in flight; the next request after that reads the database
    again."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._buckets: dict[str, _LocalBucket] = {}
        self._rates: dict[str, tuple[int, int, int]] = {}  # key: (window, count, previous)

    def _window(self, key: str, now: float) -> tuple[int, float, int, int]:
        window = math.floor(now / RATE_WINDOW)
        w, c, p = self._rates.get(key, (-1, 0, 0))
        if w != window:
            p, c = (c if w == window - 1 else 0), 0
        return window, now - window * RATE_WINDOW, c, p

    def _admit(self, ask: Ask, seed: Callable[[], int]) -> Outcome:
        with self._lock:
            now = time.time()
            used = reserved = 0
            grant = ask.need
            state: _LocalBucket | None = None
            if ask.token_limit is not None:
                state = self._buckets.get(ask.bucket)
                if state is None:
                    state = self._buckets[ask.bucket] = _LocalBucket(used=seed())
                used, reserved = state.used, sum(state.holds.values())
                if used + reserved >= ask.token_limit:
                    if not state.holds:
                        del self._buckets[ask.bucket]
                    return Outcome("tokens", used=used, reserved=reserved)
                grant = min(grant, ask.token_limit - used - reserved)
            remaining: int | None = None
            reset = 0.0
            if ask.rate_limit is not None:
                window, elapsed, c, p = self._window(ask.rate_key, now)
                limit = ask.rate_limit
                reset = float((window + 1) * RATE_WINDOW)
                if p * (RATE_WINDOW - elapsed) / RATE_WINDOW + c + 1 > limit:
                    if c + 1 <= limit:
                        wait = RATE_WINDOW * (1 - (limit - 1 - c) / p) - elapsed
                    else:
                        wait = RATE_WINDOW - elapsed + RATE_WINDOW * (1 - (limit - 1) / max(c, 1))
                    if state is not None and not state.holds:
                        del self._buckets[ask.bucket]
                    return Outcome("rate", used=used, reserved=reserved, requests_remaining=0,
                                   requests_reset=reset, retry_after=wait)  # fmt: skip
                self._rates[ask.rate_key] = (window, c + 1, p)
                remaining = math.floor(limit - (p * (RATE_WINDOW - elapsed) / RATE_WINDOW + c + 1))
            if state is not None:
                state.holds[ask.hold] = grant
                reserved += grant
            return Outcome("admitted", granted=grant, used=used, reserved=reserved,
                           requests_remaining=remaining, requests_reset=reset)  # fmt: skip

    async def admit_async(self, ask: Ask, seed: Callable[[], int]) -> Outcome:
        if ask.token_limit is not None and ask.bucket not in self._buckets:
            seeded = await asyncio.to_thread(seed)  # a cold bucket: the database, off the loop
            return self._admit(ask, lambda: seeded)
        return self._admit(ask, seed)  # no I/O

    def settle(self, bucket: str, *, hold: str, tokens: int) -> None:
        with self._lock:
            state = self._buckets.get(bucket)
            if state is None:
                return
            state.holds.pop(hold, None)
            state.used += tokens
            if not state.holds:
                del self._buckets[bucket]

    async def settle_async(self, bucket: str, *, hold: str, tokens: int) -> None:
        self.settle(bucket, hold=hold, tokens=tokens)

    def peek(
        self, rate_key: str, rate_limit: int | None, bucket: str
    ) -> tuple[tuple[int, int] | None, int | None, float]:
        with self._lock:
            state = self._buckets.get(bucket)
            tokens = None if state is None else (state.used, sum(state.holds.values()))
            if rate_limit is None:
                return tokens, None, 0.0
            window, elapsed, c, p = self._window(rate_key, time.time())
            weighted = p * (RATE_WINDOW - elapsed) / RATE_WINDOW + c
            return tokens, max(0, math.floor(rate_limit - weighted)), (window + 1) * RATE_WINDOW


_backends: dict[tuple[str, ...], Store] = {}
_backends_lock = threading.Lock()


def backend() -> Store:
    """Redis when configured; otherwise in-process state for this database and data folder."""
    settings = get_settings()
    if settings.redis_url:
        key: tuple[str, ...] = ("redis", settings.redis_url)
    else:
        key = ("local", settings.database_url, str(settings.data_dir.resolve()))
    found = _backends.get(key)
    if found is not None:
        return found
    with _backends_lock:
        if key not in _backends:
            _backends[key] = RedisStore(settings.redis_url) if settings.redis_url else LocalStore()
        return _backends[key]


# --- admission ------------------------------------------------------------------------------


def _tag(subject_: str, granted: Entitlement) -> str:
    """The Redis Cluster hash tag that keeps one subject's two keys on one node."""
    return f"{{{subject_}:{granted.assistant_id}}}"


def _bucket(subject_: str, granted: Entitlement) -> str:
    start = granted.period_start or utcnow()
    return f"gptstudio:quota:{_tag(subject_, granted)}:{int(start.timestamp())}"


def _rate_key(subject_: str, granted: Entitlement) -> str:
    return f"gptstudio:rpm:{_tag(subject_, granted)}"


def _ttl(granted: Entitlement) -> int:
    end = granted.period_end or utcnow()
    return max(HOLD_SECONDS, math.ceil((end - utcnow()).total_seconds())) + 86_400


def _base_status(granted: Entitlement) -> QuotaStatus:
    return QuotaStatus(
        allowed=granted.allowed, reason=granted.reason, plan_name=granted.plan_name,
        upgrade_url=granted.upgrade_url, limit=granted.tokens_per_period,
        reset_at=granted.period_end if granted.tokens_per_period is not None else None,
        requests_limit=granted.requests_per_minute,
    )  # fmt: skip


def _seed(granted: Entitlement, user_id: int | None, visitor_id: str) -> Callable[[], int]:
    def seed() -> int:
        return usage.used_tokens(
            user_id=user_id, visitor_id=visitor_id, assistant_id=granted.assistant_id,
            since=granted.period_start or utcnow(), until=granted.period_end or utcnow(),
        )  # fmt: skip

    return seed


def limited(granted: Entitlement) -> bool:
    """Whether requests under this entitlement are counted (rate or tokens)."""
    return granted.requests_per_minute is not None or granted.tokens_per_period is not None


@dataclass(frozen=True)
class _Request:
    granted: Entitlement
    who: str
    ask: Ask
    seed: Callable[[], int]
    max_tokens: int
    prompt_tokens: int


def _request(
    granted: Entitlement, *, user_id: int | None, visitor_id: str = "", max_tokens: int,
    prompt_tokens: int, request_id: str,
) -> _Request:  # fmt: skip
    who = subject(user_id=user_id, visitor_id=visitor_id, assistant_id=granted.assistant_id)
    tokens = granted.tokens_per_period
    ask = Ask(
        rate_key=_rate_key(who, granted), rate_limit=granted.requests_per_minute,
        bucket=_bucket(who, granted) if tokens is not None else "", token_limit=tokens,
        need=max_tokens + prompt_tokens, hold=request_id, ttl=_ttl(granted),
    )  # fmt: skip
    seed = _seed(granted, user_id, visitor_id)
    return _Request(granted, who, ask, seed, max_tokens, prompt_tokens)


def _decide(request: _Request, outcome: Outcome | None) -> Admission:
    granted, ask = request.granted, request.ask
    status = _base_status(granted)
    if outcome is None:  # nothing is counted for this caller
        return Admission(granted, request.who, status, max_tokens=request.max_tokens,
                         prompt_bound=request.prompt_tokens)  # fmt: skip
    if ask.rate_limit is not None:
        status = _replace(
            status, requests_remaining=outcome.requests_remaining,
            requests_reset_at=datetime.fromtimestamp(outcome.requests_reset, UTC),
        )  # fmt: skip
    if ask.token_limit is not None:
        status = _replace(status, used=outcome.used, reserved=outcome.reserved)
    if outcome.verdict == "rate":
        raise _rate_limited(granted, status, outcome.retry_after)
    if outcome.verdict == "tokens":
        raise _out_of_tokens(granted, status)
    if ask.token_limit is None:
        return Admission(granted, request.who, status, max_tokens=request.max_tokens,
                         prompt_bound=request.prompt_tokens)  # fmt: skip
    clamped = min(request.max_tokens, max(1, outcome.granted - request.prompt_tokens))
    return Admission(
        granted, request.who, status, max_tokens=clamped, prompt_bound=request.prompt_tokens,
        bucket=ask.bucket, hold=ask.hold, granted=outcome.granted,
    )  # fmt: skip


def _unavailable(error: Exception) -> QuotaUnavailable:
    log.warning("quota: Redis unreachable (%s); refusing limited requests", error)
    return QuotaUnavailable()


class Request(TypedDict):
    """What :func:`admit_async` needs to know of a chat request besides the entitlement."""

    user_id: int | None
    visitor_id: NotRequired[str]  # an anonymous widget visitor (``user_id`` None)
    max_tokens: int
    prompt_tokens: int  # :func:`gptstudio.services.prompt.prompt_bound` of the prompt
    request_id: str


async def admit_async(granted: Entitlement, **asked: Unpack[Request]) -> Admission:
    """Let one chat request through, or raise :class:`QuotaExceeded` (429) /
    :class:`QuotaUnavailable` (503). ``granted`` must already be allowed (``require()``d).
    On the event loop: one round trip to Redis (shared with concurrent requests), no thread."""
    request = _request(granted, **asked)
    if not limited(granted):
        return _decide(request, None)
    try:
        outcome = await backend().admit_async(request.ask, request.seed)
    except STORE_ERRORS as error:
        raise _unavailable(error) from None
    return _decide(request, outcome)


async def admit_address_async(*, assistant_id: int, address: str) -> None:
    """The limit that all anonymous widget visitors from one client address share (per
    assistant): ``GPTSTUDIO_WIDGET_ADDRESS_REQUESTS_PER_MINUTE``, or else the plan's requests per
    minute. A script that collects many issued visitor ids still gets no more answers than one
    visitor. Raises :class:`QuotaExceeded` (429) or :class:`QuotaUnavailable` (503); checked
    before the visitor's own admission, so a request refused there has used this one up too."""
    granted = await asyncio.to_thread(entitlement, user_id=None, assistant_id=assistant_id)
    limit = get_settings().widget_address_requests_per_minute or granted.requests_per_minute
    if not granted.allowed or not limit:
        return  # refused with its reason by the visitor's own admission, or nothing to count
    who = f"address:{address or 'unknown'}"
    ask = Ask(
        rate_key=_rate_key(who, granted), rate_limit=limit, bucket="", token_limit=None,
        need=0, hold="", ttl=2 * RATE_WINDOW,
    )  # fmt: skip
    try:
        outcome = await backend().admit_async(ask, lambda: 0)
    except STORE_ERRORS as error:
        raise _unavailable(error) from None
    if outcome.verdict != "rate":
        return
    wait = max(1, math.ceil(outcome.retry_after))
    reset = datetime.fromtimestamp(outcome.requests_reset, UTC)
    status = _replace(
        _base_status(granted), requests_limit=limit, requests_remaining=0, requests_reset_at=reset
    )
    raise QuotaExceeded(
        f"Too many questions from this network address: this chat answers at most {limit} per "
        f"minute for all its guests on one address together. Try again in {wait} seconds.",
        retry_after=wait, code="rate_limit_exceeded", upgrade_url=granted.upgrade_url,
        headers=status.headers(),
    )  # fmt: skip


def _replace(status: QuotaStatus, **changes: Any) -> QuotaStatus:
    return QuotaStatus(**{**status.__dict__, **changes})


def _rate_limited(granted: Entitlement, status: QuotaStatus, retry_after: float) -> QuotaExceeded:
    wait = max(1, math.ceil(retry_after))
    return QuotaExceeded(
        f"Rate limit reached for the {granted.plan_name} plan: {granted.requests_per_minute} "
        f"requests per minute. Try again in {wait} seconds, or upgrade for a higher limit: "
        f"{granted.upgrade_url}",
        retry_after=wait, code="rate_limit_exceeded", upgrade_url=granted.upgrade_url,
        headers=status.headers(),
    )  # fmt: skip


def _out_of_tokens(granted: Entitlement, status: QuotaStatus) -> QuotaExceeded:
    reset = status.reset_at or utcnow() + timedelta(days=1)
    wait = max(1, math.ceil((reset - utcnow()).total_seconds()))
    return QuotaExceeded(
        f"You have used the {status.limit} tokens your {granted.plan_name} plan includes for "
        f"this period; it renews on {reset:%Y-%m-%d %H:%M} UTC. Upgrade for more: "
        f"{granted.upgrade_url}",
        retry_after=wait, code="insufficient_quota", upgrade_url=granted.upgrade_url,
        headers=status.headers(),
    )  # fmt: skip


def _claim(admission: Admission) -> bool:
    if admission.settled:
        return False
    admission.settled = True
    return bool(admission.bucket)


def _not_settled(admission: Admission, error: Exception) -> None:
    log.warning(
        "quota: could not settle %s in Redis (%s); it is reseeded from the database",
        admission.bucket, error,
    )  # fmt: skip


def settle(admission: Admission, *, tokens: int) -> None:
    """Count the ``tokens`` the request really spent and free the rest of its reservation.
    Once per admission; a Redis failure here is logged (the usage event is already written)."""
    if not _claim(admission):
        return
    try:
        backend().settle(admission.bucket, hold=admission.hold, tokens=max(0, tokens))
    except STORE_ERRORS as error:
        _not_settled(admission, error)


async def settle_async(admission: Admission, *, tokens: int) -> None:
    """:func:`settle` on the event loop."""
    if not _claim(admission):
        return
    try:
        await backend().settle_async(admission.bucket, hold=admission.hold, tokens=max(0, tokens))
    except STORE_ERRORS as error:
        _not_settled(admission, error)


def status(*, user_id: int | None = None, visitor_id: str = "", assistant_id: int) -> QuotaStatus:
    """Where a user (or anonymous visitor) stands with an assistant: plan, tokens used and left,
    when they renew, requests left this minute. Reads only; for the UI and dashboards."""
    granted = entitlement(user_id=user_id, assistant_id=assistant_id)
    current = _base_status(granted)
    if not granted.allowed or not limited(granted):
        return current
    who = subject(user_id=user_id, visitor_id=visitor_id, assistant_id=assistant_id)
    bucket = _bucket(who, granted) if granted.tokens_per_period is not None else ""
    try:
        tokens, remaining, reset = backend().peek(
            _rate_key(who, granted), granted.requests_per_minute, bucket
        )
    except STORE_ERRORS:
        tokens, remaining, reset = None, None, 0.0
    if granted.requests_per_minute is not None:
        current = _replace(
            current, requests_remaining=remaining,
            requests_reset_at=datetime.fromtimestamp(reset, UTC) if reset else None,
        )  # fmt: skip
    if granted.tokens_per_period is not None:
        used, reserved = tokens or (_seed(granted, user_id, visitor_id)(), 0)
        current = _replace(current, used=used, reserved=reserved)
    return current
