"""Accounts: registration, password login, server-side sessions, roles and their enforcement.

Every other service takes the acting user (``actor``) and calls :func:`authorize`; this is the one
place where roles are checked, for pages, Reflex events and HTTP routes alike.
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import timedelta

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from email_validator import EmailNotValidError, validate_email
from sqlalchemy import func
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, col, select

from gptstudio.db import session_scope, utcnow
from gptstudio.models import Role, User, UserSession
from gptstudio.models.user import UserPublic
from gptstudio.services import audit
from gptstudio.services.errors import (
    EmailTaken,
    InvalidCredentials,
    InvalidInput,
    NotFound,
    PermissionDenied,
    SessionExpired,
)
from gptstudio.settings import get_settings

_hasher = PasswordHasher()
# Verified against when the e-mail is unknown, so both paths cost one argon2 hash.
_DUMMY_HASH = _hasher.hash("gptstudio-no-such-user")
_SEEN_REFRESH = timedelta(minutes=1)
_COMMON_PASSWORDS = frozenset(
    {
        "password",
        "password1",
        "password123",
        "123456789",
        "1234567890",
        "qwertyuiop",
        "iloveyou",
        "letmein123",
        "welcome123",
        "admin12345",
        "passw0rd",
        "qwerty123",
        "abc1234567",
        "1q2w3e4r5t",
        "monkey1234",
        "dragon1234",
        "sunshine12",
        "football12",
    }
)
SELF_SERVICE_ROLES = (Role.creator, Role.subscriber)


@dataclass(frozen=True)
class Client:
    """Where a request came from, for sessions and the audit log."""

    ip: str = ""
    user_agent: str = ""


def hash_token(token: str) -> str:
    """The stored form of a bearer secret (session token, later API keys): its SHA-256."""
    return hashlib.sha256(token.encode()).hexdigest()


def normalize_email(email: str) -> str:
    """A syntactically valid, lower-cased e-mail, or :class:`InvalidInput`."""
    try:
        return validate_email(email.strip(), check_deliverability=False).normalized.lower()
    except EmailNotValidError as error:
        raise InvalidInput(f"That e-mail address is not valid: {error}") from None


def check_password_strength(password: str, *, email: str = "") -> None:
    """Raise :class:`InvalidInput` with the reason when ``password`` is too weak."""
    minimum = get_settings().min_password_length
    if len(password) < minimum:
        raise InvalidInput(f"The password must be at least {minimum} characters long.")
    if len(password) > 1024:
        raise InvalidInput("The password must be at most 1024 characters long.")
    if password.lower() in _COMMON_PASSWORDS or len(set(password)) < 4:
        raise InvalidInput("That password is too easy to guess; choose a less common one.")
    local = email.split("@")[0].lower()
    if local and len(local) >= 4 and local in password.lower():
        raise InvalidInput("The password must not contain your e-mail address.")


def _public(user: User) -> UserPublic:
    return UserPublic.model_validate(user, from_attributes=True)


def register(
    *,
    email: str,
    password: str,
    display_name: str = "",
    role: Role = Role.subscriber,
    client: Client = Client(),
) -> UserPublic:
    """Create an account; the very first account becomes the admin."""
    email = normalize_email(email)
    check_password_strength(password, email=email)
    if role not in SELF_SERVICE_ROLES:
        raise InvalidInput("Choose either a creator or a subscriber account.")
    try:
        with session_scope() as session:
            if session.exec(select(User.id).where(User.email == email)).first() is not None:
                raise EmailTaken("An account with this e-mail already exists. Log in instead.")
            first = session.exec(select(func.count()).select_from(User)).one() == 0
            user = User(
                email=email,
                password_hash=_hasher.hash(password),
                display_name=display_name.strip()[:120] or email.split("@")[0],
                role=(Role.admin if first else role).value,
            )
            session.add(user)
            session.flush()
            audit.record(
                session,
                action="user.registered",
                actor_id=user.id,
                target=f"user:{user.id}",
                ip=client.ip,
                user_agent=client.user_agent,
                detail={"role": user.role},
            )
            return _public(user)
    except IntegrityError:  # a concurrent registration with the same e-mail won the race
        raise EmailTaken("An account with this e-mail already exists. Log in instead.") from None


def login(
    *, email: str, password: str, client: Client = Client(), previous_token: str = ""
) -> tuple[str, UserPublic]:
    """Check the password and open a new session; returns the raw session token and the user.

    The token the browser held before (if any) is revoked: a new login never reuses a session.
    The error never says whether the e-mail exists.
    """
    wrong = InvalidCredentials("Wrong e-mail or password.")
    try:
        email = normalize_email(email)
    except InvalidInput:
        raise wrong from None
    with session_scope() as session:
        user = session.exec(select(User).where(User.email == email)).first()
        if not _password_matches(user.password_hash if user else _DUMMY_HASH, password) or not user:
            audit.record(
                session,
                action="login.failed",
                actor_id=user.id if user else None,
                target=email,
                ip=client.ip,
                user_agent=client.user_agent,
            )
            session.commit()
            raise wrong
        if not user.is_active:
            raise InvalidCredentials("This account is disabled. Contact the administrator.")
        if _hasher.check_needs_rehash(user.password_hash):
            user.password_hash = _hasher.hash(password)
        if previous_token:
            _revoke(session, previous_token)
        token = secrets.token_urlsafe(32)
        now = utcnow()
        session.add(
            UserSession(
                user_id=user.id,  # type: ignore[arg-type]
                token_hash=hash_token(token),
                expires_at=now + timedelta(hours=get_settings().session_ttl_hours),
                ip=client.ip[:64],
                user_agent=client.user_agent[:400],
            )
        )
        audit.record(
            session,
            action="login.ok",
            actor_id=user.id,
            target=f"user:{user.id}",
            ip=client.ip,
            user_agent=client.user_agent,
        )
        return token, _public(user)


def _password_matches(password_hash: str, password: str) -> bool:
    try:
        return _hasher.verify(password_hash, password)
    except (VerificationError, InvalidHashError):
        return False


def _revoke(session: Session, token: str) -> None:
    row = session.exec(
        select(UserSession).where(UserSession.token_hash == hash_token(token))
    ).first()
    if row is not None and row.revoked_at is None:
        row.revoked_at = utcnow()


def logout(*, token: str) -> None:
    """End the session behind ``token`` (no error if it is already gone)."""
    if not token:
        return
    with session_scope() as session:
        _revoke(session, token)


def user_for_session(*, token: str) -> UserPublic:
    """The user behind a live session token, or :class:`SessionExpired`."""
    expired = SessionExpired("Your session has expired. Please log in again.")
    if not token:
        raise SessionExpired("Please log in first.")
    with session_scope() as session:
        row = session.exec(
            select(UserSession, User)
            .join(User, col(User.id) == col(UserSession.user_id))
            .where(UserSession.token_hash == hash_token(token))
        ).first()
        if row is None:
            raise expired
        user_session, user = row
        now = utcnow()
        if user_session.revoked_at is not None or user_session.expires_at <= now:
            raise expired
        if not user.is_active:
            raise SessionExpired("This account is disabled. Contact the administrator.")
        if now - user_session.last_seen_at > _SEEN_REFRESH:
            user_session.last_seen_at = now
        return _public(user)


def authorize(actor: UserPublic, *roles: Role) -> None:
    """Raise :class:`PermissionDenied` unless ``actor`` has one of ``roles`` (admins pass all)."""
    if actor.role == Role.admin or actor.role in roles:
        return
    needed = " or ".join(role.value for role in roles)
    raise PermissionDenied(f"This needs a {needed} account; you are signed in as a {actor.role}.")


def list_users(*, actor: UserPublic) -> list[UserPublic]:
    """Every account, oldest first (admins only)."""
    authorize(actor, Role.admin)
    with session_scope() as session:
        return [_public(u) for u in session.exec(select(User).order_by(col(User.id))).all()]


def set_role(
    *, actor: UserPublic, user_id: int, role: Role, client: Client = Client()
) -> UserPublic:
    """Change a user's role (admins only); the last admin can never be demoted."""
    authorize(actor, Role.admin)
    with session_scope() as session:
        user = session.get(User, user_id)
        if user is None:
            raise NotFound(f"There is no user {user_id}.")
        if user.role == Role.admin and role != Role.admin:
            admins = session.exec(
                select(func.count()).select_from(User).where(User.role == Role.admin.value)
            ).one()
            if admins <= 1:
                raise InvalidInput("This is the last admin; make someone else admin first.")
        before = user.role
        user.role = role.value
        audit.record(
            session,
            action="user.role_changed",
            actor_id=actor.id,
            target=f"user:{user_id}",
            ip=client.ip,
            user_agent=client.user_agent,
            detail={"from": before, "to": role.value},
        )
        return _public(user)
