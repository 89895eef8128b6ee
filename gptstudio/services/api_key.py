"""API keys for the JSON API: shown once, stored as a SHA-256 with a display prefix, scoped,
optionally expiring, revocable."""

from __future__ import annotations

import secrets
from dataclasses import dataclass, replace
from datetime import datetime, timedelta

from sqlalchemy import update
from sqlmodel import col, select

from gptstudio import cache
from gptstudio.db import session_scope, utcnow
from gptstudio.errors import DomainError, InvalidInput, NotFound, PermissionDenied, type_for
from gptstudio.models import ApiKey, Role, User
from gptstudio.models.user import UserPublic
from gptstudio.services import audit
from gptstudio.services.access import Client, public
from gptstudio.services.crypto import hash_token

SCOPES = ("chat", "models:read", "documents:write", "fine_tuning", "admin")
KEY_PREFIX = "gs-"
_LAST_USED_REFRESH = timedelta(seconds=30)


class ApiKeyRefused(DomainError):
    """A missing, unknown, expired or revoked key (401), or one without the scope (403)."""

    status_code = 401
    type = "authentication_error"
    code = "invalid_api_key"

    def __init__(self, message: str, *, status_code: int = 401, code: str = "invalid_api_key"):
        super().__init__(message)
        self.status_code = status_code
        self.type = type_for(status_code)
        self.code = code


@dataclass(frozen=True)
class ApiKeyInfo:
    id: int
    name: str
    prefix: str
    scopes: list[str]
    created_at: datetime
    expires_at: datetime | None
    last_used_at: datetime | None
    revoked: bool


def _info(key: ApiKey) -> ApiKeyInfo:
    return ApiKeyInfo(
        id=key.id or 0,
        name=key.name,
        prefix=key.prefix,
        scopes=key.scopes.split(),
        created_at=key.created_at,
        expires_at=key.expires_at,
        last_used_at=key.last_used_at,
        revoked=key.revoked_at is not None,
    )


def create_key(
    *,
    actor: UserPublic,
    name: str,
    scopes: list[str],
    expires_in_days: int | None = None,
    client: Client = Client(),
) -> tuple[str, ApiKeyInfo]:
    """A new key for the actor; the raw key is returned here and never again."""
    unknown = sorted(set(scopes) - set(SCOPES))
    if unknown or not scopes:
        raise InvalidInput(f"Choose scopes among {', '.join(SCOPES)} (unknown: {unknown}).")
    if "admin" in scopes and actor.role != Role.admin:
        raise PermissionDenied("Only admins can create keys with the admin scope.")
    if "fine_tuning" in scopes and actor.role not in (Role.creator, Role.admin):
        raise PermissionDenied("Only creators can create keys with the fine_tuning scope.")
    if expires_in_days is not None and not 1 <= expires_in_days <= 3650:
        raise InvalidInput("A key can expire in 1 to 3650 days, or never.")
    raw = f"{KEY_PREFIX}{secrets.token_urlsafe(32)}"
    with session_scope() as session:
        key = ApiKey(
            user_id=actor.id,
            name=name.strip()[:120] or "API key",
            prefix=raw[:10],
            key_hash=hash_token(raw),
            scopes=" ".join(s for s in SCOPES if s in scopes),
            expires_at=utcnow() + timedelta(days=expires_in_days) if expires_in_days else None,
        )
        session.add(key)
        session.flush()
        audit.record(
            session, action="api_key.created", actor_id=actor.id, target=f"api_key:{key.id}",
            ip=client.ip, user_agent=client.user_agent, detail={"scopes": key.scopes},
        )  # fmt: skip
        return raw, _info(key)


def list_keys(*, actor: UserPublic) -> list[ApiKeyInfo]:
    """The actor's own keys, newest first."""
    with session_scope() as session:
        rows = session.exec(
            select(ApiKey).where(ApiKey.user_id == actor.id).order_by(col(ApiKey.id).desc())
        ).all()
        return [_info(k) for k in rows]


def revoke_key(*, actor: UserPublic, key_id: int, client: Client = Client()) -> None:
    """Revoke one of the actor's keys; another user's key id is simply not found."""
    with session_scope() as session:
        key = session.get(ApiKey, key_id)
        if key is None or key.user_id != actor.id:
            raise NotFound("There is no such API key.")
        if key.revoked_at is None:
            key.revoked_at = utcnow()
            audit.record(
                session, action="api_key.revoked", actor_id=actor.id, target=f"api_key:{key_id}",
                ip=client.ip, user_agent=client.user_agent,
            )  # fmt: skip


@dataclass(frozen=True)
class _KeyRow:
    """What authentication needs of a key and its owner (cached: :mod:`gptstudio.cache`)."""

    key_id: int
    prefix: str
    scopes: tuple[str, ...]
    expires_at: datetime | None
    revoked: bool
    last_used_at: datetime | None
    user_active: bool
    user: UserPublic


_keys = cache.memo("api keys")


def _load(key_hash: str) -> _KeyRow:
    with session_scope() as session:
        row = session.exec(
            select(ApiKey, User)
            .join(User, col(User.id) == col(ApiKey.user_id))
            .where(ApiKey.key_hash == key_hash)
        ).first()
        if row is None:  # refused, never cached: unknown keys cannot fill the cache
            raise ApiKeyRefused("Incorrect API key provided.")
        key, user = row
        return _KeyRow(
            key_id=key.id or 0, prefix=key.prefix, scopes=tuple(key.scopes.split()),
            expires_at=key.expires_at, revoked=key.revoked_at is not None,
            last_used_at=key.last_used_at, user_active=user.is_active, user=public(user),
        )  # fmt: skip


def _check(row: _KeyRow, scope: str, now: datetime) -> UserPublic:
    if row.revoked:
        raise ApiKeyRefused(f"The API key {row.prefix}… has been revoked.", code="revoked_api_key")
    if row.expires_at is not None and row.expires_at <= now:
        raise ApiKeyRefused(
            f"The API key {row.prefix}… expired on {row.expires_at:%Y-%m-%d}.",
            code="expired_api_key",
        )
    if not row.user_active:
        raise ApiKeyRefused("The account of this API key is disabled.", code="account_disabled")
    if scope not in row.scopes:
        raise ApiKeyRefused(
            f"The API key {row.prefix}… lacks the '{scope}' scope; create a key with it.",
            status_code=403,
            code="insufficient_scope",
        )
    return row.user


def authenticate_cached(*, raw_key: str, scope: str) -> UserPublic | None:
    """:func:`authenticate` from the cache alone (no I/O: safe on the event loop); ``None``
    when the key is not cached or its ``last_used_at`` is due to be written."""
    if not raw_key:
        return None
    row = _keys.cached(hash_token(raw_key))
    if row is cache.MISSING:
        return None
    now = utcnow()
    if row.last_used_at is None or now - row.last_used_at > _LAST_USED_REFRESH:
        return None
    return _check(row, scope, now)


def authenticate(*, raw_key: str, scope: str) -> UserPublic:
    """The owner of a valid key that carries ``scope``, or :class:`ApiKeyRefused`."""
    if not raw_key:
        raise ApiKeyRefused("Missing API key: send it as 'Authorization: Bearer <key>'.")
    digest = hash_token(raw_key)
    row = _keys.get(digest, lambda: _load(digest))
    now = utcnow()
    user = _check(row, scope, now)
    if row.last_used_at is None or now - row.last_used_at > _LAST_USED_REFRESH:
        # A plain UPDATE, not an ORM change: it must not drop every cached key.
        with session_scope() as session:
            session.execute(update(ApiKey).where(col(ApiKey.id) == row.key_id).values(
                last_used_at=now))  # fmt: skip
        _keys.replace(digest, replace(row, last_used_at=now))
    return user
