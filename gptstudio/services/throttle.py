"""Brute-force protection: failed-login counters per account and per IP, exponential lockout.

Counters live in Redis when it is configured (shared by every web process) and in the database
otherwise; if Redis is briefly unreachable the database takes over, so protection never lapses.
"""

from __future__ import annotations

import logging
import math
import unicodedata
from collections.abc import Callable
from datetime import datetime, timedelta
from functools import partial
from typing import Protocol, TypeVar, cast

import redis
from email_validator import EmailNotValidError, validate_email
from sqlalchemy import update
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, col, select

from gptstudio import redis_client
from gptstudio.db import session_scope, utcnow
from gptstudio.errors import DomainError
from gptstudio.models import LoginThrottle
from gptstudio.settings import get_settings

log = logging.getLogger(__name__)
IP_THRESHOLD_FACTOR = 4  # many people can share one address; lock it later than an account


class LockedOut(DomainError):
    status_code = 429
    type = "rate_limit_error"
    code = "lockedout"

    def __init__(self, seconds: int) -> None:
        self.retry_after = seconds
        minutes = max(1, math.ceil(seconds / 60))
        unit = "minute" if minutes == 1 else "minutes"
        super().__init__(
            f"Too many failed attempts. Try again in {minutes} {unit}, or reset your password."
        )


def lock_seconds(failures: int, threshold: int) -> int:
    """How long ``failures`` consecutive failures lock for (0 below the threshold)."""
    settings = get_settings()
    if failures < threshold:
        return 0
    seconds = settings.lockout_base_seconds * 2 ** min(failures - threshold, 20)
    return int(min(seconds, settings.lockout_max_seconds))


class Store(Protocol):
    def locked_for(self, key: str) -> int: ...
    def fail(self, key: str, threshold: int) -> None: ...
    def clear(self, key: str) -> None: ...


class DatabaseStore:
    def locked_for(self, key: str) -> int:
        with session_scope() as session:
            row = session.get(LoginThrottle, key)
            return _remaining(row.locked_until if row else None)

    def fail(self, key: str, threshold: int) -> None:
        # An increment in the database, not read-modify-write: failures racing each other all
        # count; the first failure's insert may race another's, and then the update wins.
        for attempt in range(3):
            try:
                with session_scope() as session:
                    self._count(session, key, threshold)
                return
            except IntegrityError:
                if attempt == 2:
                    raise

    @staticmethod
    def _count(session: Session, key: str, threshold: int) -> None:
        now = utcnow()
        bumped = session.execute(
            update(LoginThrottle)
            .where(col(LoginThrottle.key) == key)
            .values(failures=col(LoginThrottle.failures) + 1, updated_at=now)
            .execution_options(synchronize_session=False)
        )
        if bumped.rowcount == 0:  # type: ignore[attr-defined]
            session.add(LoginThrottle(key=key, failures=1, updated_at=now))
            session.flush()
        failures = session.exec(
            select(LoginThrottle.failures).where(LoginThrottle.key == key)
        ).one()
        seconds = lock_seconds(failures, threshold)
        session.execute(
            update(LoginThrottle)
            .where(col(LoginThrottle.key) == key)
            .values(locked_until=now + timedelta(seconds=seconds) if seconds else None)
            .execution_options(synchronize_session=False)
        )

    def clear(self, key: str) -> None:
        with session_scope() as session:
            row = session.get(LoginThrottle, key)
            if row is not None:
                session.delete(row)


class RedisStore:
    def __init__(self, url: str) -> None:
        self.client = redis_client.client(url)

    def locked_for(self, key: str) -> int:
        return max(0, int(cast(int, self.client.ttl(f"gptstudio:lock:{key}"))))

    def fail(self, key: str, threshold: int) -> None:
        counter = f"gptstudio:fail:{key}"
        failures = int(cast(int, self.client.incr(counter)))
        self.client.expire(counter, get_settings().lockout_max_seconds * 4)
        seconds = lock_seconds(failures, threshold)
        if seconds:
            self.client.set(f"gptstudio:lock:{key}", 1, ex=seconds)

    def clear(self, key: str) -> None:
        self.client.delete(f"gptstudio:fail:{key}", f"gptstudio:lock:{key}")


def _remaining(until: datetime | None) -> int:
    if until is None:
        return 0
    return max(0, math.ceil((until - utcnow()).total_seconds()))


def _stores() -> list[Store]:
    url = get_settings().redis_url
    return [RedisStore(url), DatabaseStore()] if url else [DatabaseStore()]


T = TypeVar("T")


def _with_fallback(action: str, call: Callable[[Store], T]) -> T:
    stores = _stores()
    for store in stores[:-1]:
        try:
            return call(store)
        except redis.RedisError as error:
            log.warning(
                "login throttle: Redis unavailable for %s (%s); using the database", action, error
            )
    return call(stores[-1])


def _locked_for(store: Store, *, key: str) -> int:
    return store.locked_for(key)


def _fail(store: Store, *, key: str, threshold: int) -> None:
    store.fail(key, threshold)


def _clear(store: Store, *, key: str) -> None:
    store.clear(key)


def email_key(email: str) -> str:
    """The one spelling of an address that its counter is kept under: NFKC (full-width and
    compatibility letters folded), lower case, the domain in IDNA (ASCII) form. Checking and
    counting under this key means no spelling of an address escapes, or clears, its lock."""
    text = unicodedata.normalize("NFKC", email).strip()
    try:
        parsed = validate_email(text, check_deliverability=False)
    except EmailNotValidError:
        return text.lower()
    local = unicodedata.normalize("NFKC", parsed.local_part).lower()
    return f"{local}@{parsed.ascii_domain.lower()}"


def _keys(email: str, ip: str) -> list[tuple[str, int]]:
    threshold = get_settings().lockout_threshold
    keys = [(f"account:{email_key(email)}", threshold)]
    if ip:
        keys.append((f"ip:{ip}", threshold * IP_THRESHOLD_FACTOR))
    return keys


def check(*, email: str, ip: str) -> None:
    """Raise :class:`LockedOut` if the account or the address is locked right now."""
    for key, _ in _keys(email, ip):
        seconds = _with_fallback("check", partial(_locked_for, key=key))
        if seconds > 0:
            raise LockedOut(seconds)


def record_failure(*, email: str, ip: str) -> None:
    for key, threshold in _keys(email, ip):
        _with_fallback("fail", partial(_fail, key=key, threshold=threshold))


def record_success(*, email: str, ip: str) -> None:
    """A good login clears the account's counter (not the address's)."""
    key, _ = _keys(email, ip)[0]
    _with_fallback("clear", partial(_clear, key=key))
