"""Quotas and rate limits for chat, enforced in one place for the web UI, the widget and the API.

What a plan allows comes from :func:`gptstudio.services.entitlements.entitlement` (local
subscription state only). Two limits apply per subject (``user:<id>``, or
``visitor:<assistant>:<visitor id>`` for an anonymous widget visitor) and assistant:

* **requests per minute**: a sliding-window counter from the ``limits`` library, on Redis when
  ``GPTSTUDIO_REDIS_URL`` is set (shared by every web process), in memory otherwise (the embedded
  single web process);
* **tokens per period** (the plan's billing period; the calendar month for a free tier): a
  reservation made atomically before the engine is called (a Lua script on Redis; a lock in the
  embedded process). A request is admitted only while ``used + reserved < limit``; it reserves
  ``min(max_tokens + prompt bound, what is left)`` and its ``max_tokens`` is clamped to fit, so
  concurrent requests can never together spend more than the quota plus the one request admitted
  last. At the end :func:`settle` adds the tokens actually spent and frees the rest.

The prompt bound is a strict upper bound of the prompt's tokens (its UTF-8 bytes plus the chat
template's overhead): an estimate that could be low would let many concurrent requests slip past
the quota together. Each reservation expires after :data:`HOLD_SECONDS` (longer than any request
may run), so a web process that dies mid-request cannot hold tokens forever.

The database is the truth: a cold Redis bucket (first use in a period, a Redis restart or flush)
is seeded from the period's usage events, so nothing is lost. If Redis is configured but
unreachable, limited requests are refused with a 503 :class:`QuotaUnavailable` (``Retry-After``)
rather than let through unchecked: without the shared store no process can know what the others
reserved, and a deployment that sets Redis already depends on it for the UI's state and the queue.
Unlimited users (an assistant's owner, admins, assistants without plans) never touch Redis.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol, cast

import redis
from limits import RateLimitItem, RateLimitItemPerMinute
from limits.errors import StorageError
from limits.storage import MemoryStorage, RedisStorage
from limits.strategies import SlidingWindowCounterRateLimiter

from gptstudio.db import utcnow
from gptstudio.services import usage
from gptstudio.services.entitlements import Entitlement, entitlement
from gptstudio.services.errors import DomainError, InvalidInput, RateLimited
from gptstudio.settings import get_settings

log = logging.getLogger(__name__)
HOLD_SECONDS = 330  # a reservation outlives the longest request (the engine read timeout: 300 s)
RETRY_UNAVAILABLE_SECONDS = 5
MESSAGE_OVERHEAD_TOKENS = 8  # role markers and separators the chat template adds per message
PROMPT_OVERHEAD_TOKENS = 16  # beginning-of-text and the assistant turn's header
MAX_VISITOR_ID = 120
STORE_ERRORS = (redis.RedisError, StorageError)


class QuotaUnavailable(DomainError):
    """Redis is configured but unreachable: limits cannot be checked, so nothing is granted."""

    status_code = 503
    code = "quota_unavailable"
    retry_after = RETRY_UNAVAILABLE_SECONDS

    def __init__(self) -> None:
        super().__init__(
            "Usage limits cannot be checked right now (the rate-limit store is unreachable); "
            f"try again in {RETRY_UNAVAILABLE_SECONDS} seconds."
        )


class QuotaExceeded(RateLimited):
    """A 429 that also carries the ``x-ratelimit-*`` headers of the refused request."""

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


def prompt_bound(messages: list[dict[str, str]]) -> int:
    """A strict upper bound of the prompt's tokens: a token is at least one byte of text."""
    text = sum(len(str(m.get("content", "")).encode()) for m in messages)
    return text + MESSAGE_OVERHEAD_TOKENS * len(messages) + PROMPT_OVERHEAD_TOKENS


# --- stores --------------------------------------------------------------------------------

_RESERVE = """
local used
if redis.call('EXISTS', KEYS[1]) == 0 then
  if tonumber(ARGV[3]) < 0 then return {-1, 0, 0} end
  used = tonumber(ARGV[3])
  redis.call('HSET', KEYS[1], 'used', used)
else
  used = tonumber(redis.call('HGET', KEYS[1], 'used') or '0')
end
local now = tonumber(redis.call('TIME')[1])
local reserved = 0
local fields = redis.call('HGETALL', KEYS[1])
for i = 1, #fields, 2 do
  if string.sub(fields[i], 1, 2) == 'h:' then
    local amount, expires = string.match(fields[i + 1], '^(%d+):(%d+)$')
    if tonumber(expires) <= now then
      redis.call('HDEL', KEYS[1], fields[i])
    else
      reserved = reserved + tonumber(amount)
    end
  end
end
local limit = tonumber(ARGV[1])
if used + reserved >= limit then
  redis.call('EXPIRE', KEYS[1], tonumber(ARGV[6]))
  return {0, used, reserved}
end
local grant = math.min(tonumber(ARGV[2]), limit - used - reserved)
redis.call('HSET', KEYS[1], 'h:' .. ARGV[4], grant .. ':' .. (now + tonumber(ARGV[5])))
redis.call('EXPIRE', KEYS[1], tonumber(ARGV[6]))
return {grant, used, reserved + grant}
"""

# A bucket that is gone (flushed, restarted) is left cold: the next admission seeds it from the
# database, which already holds this request's usage event.
_SETTLE = """
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
redis.call('HDEL', KEYS[1], 'h:' .. ARGV[1])
redis.call('HINCRBY', KEYS[1], 'used', ARGV[2])
return 1
"""

_PEEK = """
if redis.call('EXISTS', KEYS[1]) == 0 then return {-1, 0} end
local now = tonumber(redis.call('TIME')[1])
local used = tonumber(redis.call('HGET', KEYS[1], 'used') or '0')
local reserved = 0
local fields = redis.call('HGETALL', KEYS[1])
for i = 1, #fields, 2 do
  if string.sub(fields[i], 1, 2) == 'h:' then
    local amount, expires = string.match(fields[i + 1], '^(%d+):(%d+)$')
    if tonumber(expires) > now then reserved = reserved + tonumber(amount) end
  end
end
return {used, reserved}
"""


class TokenStore(Protocol):
    def reserve(
        self, bucket: str, *, hold: str, need: int, limit: int, ttl: int, seed: Callable[[], int]
    ) -> tuple[int, int, int]:
        """``(granted, used, reserved after the grant)``; ``granted`` is 0 when refused."""
        ...

    def settle(self, bucket: str, *, hold: str, tokens: int) -> None: ...

    def peek(self, bucket: str) -> tuple[int, int] | None:
        """``(used, reserved)``, or ``None`` for a cold bucket."""
        ...


_stale: set[str] = set()  # buckets that missed a settle while Redis was unreachable
_stale_lock = threading.Lock()


class RedisTokens:
    """Token buckets in Redis hashes: ``used`` plus one ``h:<request>`` field per reservation."""

    def __init__(self, client: redis.Redis) -> None:
        self.client = client
        self._reserve = client.register_script(_RESERVE)
        self._settle = client.register_script(_SETTLE)
        self._peek = client.register_script(_PEEK)

    def reserve(
        self, bucket: str, *, hold: str, need: int, limit: int, ttl: int, seed: Callable[[], int]
    ) -> tuple[int, int, int]:
        with _stale_lock:
            stale = bucket in _stale
        if stale:  # this process missed a settle: start again from the database's truth
            self.client.delete(bucket)
            with _stale_lock:
                _stale.discard(bucket)
        args: list[Any] = [limit, need, -1, hold, HOLD_SECONDS, ttl]
        result = cast(list[int], self._reserve(keys=[bucket], args=args))
        if result[0] < 0:  # cold: seed from the database, atomically unless another won
            args[2] = seed()
            result = cast(list[int], self._reserve(keys=[bucket], args=args))
        return int(result[0]), int(result[1]), int(result[2])

    def settle(self, bucket: str, *, hold: str, tokens: int) -> None:
        try:
            self._settle(keys=[bucket], args=[hold, tokens])
        except redis.RedisError:
            with _stale_lock:
                _stale.add(bucket)
            raise

    def peek(self, bucket: str) -> tuple[int, int] | None:
        used, reserved = cast(list[int], self._peek(keys=[bucket]))
        return None if int(used) < 0 else (int(used), int(reserved))


@dataclass
class _LocalBucket:
    used: int = 0
    holds: dict[str, int] = field(default_factory=dict)


class LocalTokens:
    """Token buckets of the embedded single web process. A bucket lives only while requests
    are in flight; the next request after that reads the database again."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._buckets: dict[str, _LocalBucket] = {}

    def reserve(
        self, bucket: str, *, hold: str, need: int, limit: int, ttl: int, seed: Callable[[], int]
    ) -> tuple[int, int, int]:
        with self._lock:
            state = self._buckets.get(bucket)
            if state is None:
                state = self._buckets[bucket] = _LocalBucket(used=seed())
            reserved = sum(state.holds.values())
            if state.used + reserved >= limit:
                if not state.holds:
                    del self._buckets[bucket]
                return 0, state.used, reserved
            grant = min(need, limit - state.used - reserved)
            state.holds[hold] = grant
            return grant, state.used, reserved + grant

    def settle(self, bucket: str, *, hold: str, tokens: int) -> None:
        with self._lock:
            state = self._buckets.get(bucket)
            if state is None:
                return
            state.holds.pop(hold, None)
            state.used += tokens
            if not state.holds:
                del self._buckets[bucket]

    def peek(self, bucket: str) -> tuple[int, int] | None:
        with self._lock:
            state = self._buckets.get(bucket)
            return None if state is None else (state.used, sum(state.holds.values()))


@dataclass
class Backend:
    limiter: SlidingWindowCounterRateLimiter
    tokens: TokenStore


_backends: dict[tuple[str, ...], Backend] = {}
_backends_lock = threading.Lock()


def backend() -> Backend:
    """Redis when configured; otherwise in-process state for this database and data folder."""
    settings = get_settings()
    if settings.redis_url:
        key: tuple[str, ...] = ("redis", settings.redis_url)
    else:
        key = ("local", settings.database_url, str(settings.data_dir.resolve()))
    with _backends_lock:
        if key not in _backends:
            _backends[key] = _make_backend(settings.redis_url)
        return _backends[key]


def _make_backend(url: str) -> Backend:
    if not url:
        return Backend(SlidingWindowCounterRateLimiter(MemoryStorage()), LocalTokens())
    storage = RedisStorage(
        url, key_prefix="gptstudio:rpm", socket_timeout=1.0, socket_connect_timeout=1.0
    )
    client = redis.Redis.from_url(url, socket_timeout=1.0, socket_connect_timeout=1.0)
    return Backend(SlidingWindowCounterRateLimiter(storage), RedisTokens(client))


# --- admission ------------------------------------------------------------------------------


def _bucket(subject_: str, granted: Entitlement) -> str:
    start = granted.period_start or utcnow()
    return f"gptstudio:quota:{subject_}:{granted.assistant_id}:{int(start.timestamp())}"


def _ttl(granted: Entitlement) -> int:
    end = granted.period_end or utcnow()
    return max(HOLD_SECONDS, math.ceil((end - utcnow()).total_seconds())) + 86_400


def _rpm(limit: int) -> RateLimitItem:
    return RateLimitItemPerMinute(limit)


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


def admit(
    granted: Entitlement,
    *,
    user_id: int | None,
    visitor_id: str = "",
    max_tokens: int,
    prompt_tokens: int,
    request_id: str,
) -> Admission:
    """Let one chat request through, or raise :class:`QuotaExceeded` (429) /
    :class:`QuotaUnavailable` (503). ``granted`` must already be allowed (``require()``d)."""
    who = subject(user_id=user_id, visitor_id=visitor_id, assistant_id=granted.assistant_id)
    status = _base_status(granted)
    if not limited(granted):
        return Admission(granted, who, status, max_tokens=max_tokens, prompt_bound=prompt_tokens)
    store = backend()
    try:
        if granted.requests_per_minute is not None:
            status = _count_request(store, granted, who, status)
        if granted.tokens_per_period is None:
            return Admission(
                granted, who, status, max_tokens=max_tokens, prompt_bound=prompt_tokens
            )
        bucket = _bucket(who, granted)
        grant, used, reserved = store.tokens.reserve(
            bucket, hold=request_id, need=max_tokens + prompt_tokens,
            limit=granted.tokens_per_period, ttl=_ttl(granted),
            seed=_seed(granted, user_id, visitor_id),
        )  # fmt: skip
    except STORE_ERRORS as error:
        log.warning("quota: Redis unreachable (%s); refusing limited requests", error)
        raise QuotaUnavailable() from None
    status = _replace(status, used=used, reserved=reserved)
    if grant <= 0:
        raise _out_of_tokens(granted, status)
    clamped = min(max_tokens, max(1, grant - prompt_tokens))
    return Admission(
        granted, who, status, max_tokens=clamped, prompt_bound=prompt_tokens, bucket=bucket,
        hold=request_id, granted=grant,
    )  # fmt: skip


def _replace(status: QuotaStatus, **changes: Any) -> QuotaStatus:
    return QuotaStatus(**{**status.__dict__, **changes})


def _count_request(
    store: Backend, granted: Entitlement, who: str, status: QuotaStatus
) -> QuotaStatus:
    item = _rpm(granted.requests_per_minute or 0)
    ids = (who, str(granted.assistant_id))
    admitted = store.limiter.hit(item, *ids)
    window = store.limiter.get_window_stats(item, *ids)
    reset_at = datetime.fromtimestamp(window.reset_time, UTC)
    status = _replace(status, requests_remaining=window.remaining, requests_reset_at=reset_at)
    if not admitted:
        wait = max(1, math.ceil(window.reset_time - time.time()))
        raise QuotaExceeded(
            f"Rate limit reached for the {granted.plan_name} plan: {item.amount} requests per "
            f"minute. Try again in {wait} seconds, or upgrade for a higher limit: "
            f"{granted.upgrade_url}",
            retry_after=wait, code="rate_limit_exceeded", upgrade_url=granted.upgrade_url,
            headers=status.headers(),
        )  # fmt: skip
    return status


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


def settle(admission: Admission, *, tokens: int) -> None:
    """Count the ``tokens`` the request really spent and free the rest of its reservation.
    Once per admission; a Redis failure here is logged (the usage event is already written)."""
    if admission.settled:
        return
    admission.settled = True
    if not admission.bucket:
        return
    try:
        backend().tokens.settle(admission.bucket, hold=admission.hold, tokens=max(0, tokens))
    except STORE_ERRORS as error:
        log.warning(
            "quota: could not settle %s in Redis (%s); it is reseeded from the database",
            admission.bucket, error,
        )  # fmt: skip


def status(*, user_id: int | None = None, visitor_id: str = "", assistant_id: int) -> QuotaStatus:
    """Where a user (or anonymous visitor) stands with an assistant: plan, tokens used and left,
    when they renew, requests left this minute. Reads only; for the UI and dashboards."""
    granted = entitlement(user_id=user_id, assistant_id=assistant_id)
    current = _base_status(granted)
    if not granted.allowed or (
        granted.tokens_per_period is None and granted.requests_per_minute is None
    ):
        return current
    who = subject(user_id=user_id, visitor_id=visitor_id, assistant_id=assistant_id)
    store = backend()
    if granted.requests_per_minute is not None:
        item = _rpm(granted.requests_per_minute)
        try:
            window = store.limiter.get_window_stats(item, who, str(assistant_id))
            current = _replace(
                current, requests_remaining=window.remaining,
                requests_reset_at=datetime.fromtimestamp(window.reset_time, UTC),
            )  # fmt: skip
        except STORE_ERRORS:
            current = _replace(current, requests_remaining=None)
    if granted.tokens_per_period is not None:
        try:
            peeked = store.tokens.peek(_bucket(who, granted))
        except STORE_ERRORS:
            peeked = None
        used, reserved = peeked or (_seed(granted, user_id, visitor_id)(), 0)
        current = _replace(current, used=used, reserved=reserved)
    return current
