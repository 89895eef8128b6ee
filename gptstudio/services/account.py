"""Accounts: registration, password login (with MFA step-up and lockout), server-side sessions,
password reset and e-mail verification, and roles.

Role checks live in :mod:`gptstudio.services.access`; password and token hashing in
:mod:`gptstudio.services.crypto`.
"""

from __future__ import annotations

import contextlib
import secrets
import unicodedata
from dataclasses import dataclass
from datetime import timedelta

from email_validator import EmailNotValidError, validate_email
from sqlalchemy import func, update
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, col, select

from gptstudio import mail
from gptstudio.db import session_scope, utcnow
from gptstudio.errors import (
    EmailTaken,
    InvalidCredentials,
    InvalidInput,
    NotFound,
    SessionExpired,
)
from gptstudio.models import ActionToken, OAuthIdentity, Role, Tier, User, UserSession
from gptstudio.models.user import UserPublic
from gptstudio.services import audit, crypto, throttle
from gptstudio.services.access import Client, authorize, public
from gptstudio.services.crypto import (
    hash_password,
    hash_token,
    password_matches,
    password_needs_rehash,
)
from gptstudio.settings import get_settings

# Verified against when the e-mail is unknown, so both paths cost one argon2 hash.
_DUMMY_HASH = hash_password("gptstudio-no-such-user")
_SEEN_REFRESH = timedelta(minutes=1)
MFA_TICKET_SECONDS = 300
RESET_HOURS = 1
VERIFY_HOURS = 48
_COMMON_PASSWORDS = frozenset(
    {
        "password", "password1", "password123", "123456789", "1234567890", "qwertyuiop",
        "iloveyou", "letmein123", "welcome123", "admin12345", "passw0rd", "qwerty123",
        "abc1234567", "1q2w3e4r5t", "monkey1234", "dragon1234", "sunshine12", "football12",
    }
)  # fmt: skip
SELF_SERVICE_ROLES = (Role.creator, Role.subscriber)
# The browser cookie holding the session token: HttpOnly, set only by HTTP responses (the OAuth
# callback, GET /auth/session after a sign-in); the Reflex backend reads it from the socket's
# handshake.
SESSION_COOKIE = "gptstudio_session"
COOKIE_GRANT_PURPOSE = "session-cookie"
COOKIE_GRANT_SECONDS = 60


@dataclass(frozen=True)
class LoginResult:
    """Either a session (``token``) or, for MFA accounts, a ticket for the second step."""

    user: UserPublic
    token: str = ""
    mfa_ticket: str = ""


def normalize_email(email: str) -> str:
    """A syntactically valid, lower-cased e-mail (NFKC: full-width and compatibility letters
    folded, so that look-alike spellings are one account), or :class:`InvalidInput`."""
    text = unicodedata.normalize("NFKC", email).strip()
    try:
        return validate_email(text, check_deliverability=False).normalized.lower()
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


def register(
    *,
    email: str,
    password: str,
    display_name: str = "",
    role: Role = Role.subscriber,
    client: Client = Client(),
) -> UserPublic:
    """Create an account (the very first becomes the admin) and mail a verification link."""
    email = normalize_email(email)
    check_password_strength(password, email=email)
    if role not in SELF_SERVICE_ROLES:
        raise InvalidInput("Choose either a creator or a subscriber account.")
    try:
        with session_scope() as session:
            user = create_user(
                session, email=email, password_hash=hash_password(password),
                display_name=display_name, role=role, client=client,
            )  # fmt: skip
            link = _mailed_link(session, user, purpose="verify", hours=VERIFY_HOURS)
    except IntegrityError:  # a concurrent registration with the same e-mail won the race
        raise EmailTaken("An account with this e-mail already exists. Log in instead.") from None
    # The account exists either way; the user can ask for the link again from the account page.
    with contextlib.suppress(mail.MailNotSent):
        _send_verification(user.email, link)
    return public(user)


def _send_verification(email: str, link: str) -> None:
    mail.send_mail(
        to=email,
        subject="Confirm your e-mail for GPT Studio",
        body=f"Welcome to GPT Studio!\n\nConfirm your e-mail address:\n{link}\n\n"
        f"The link is valid for {VERIFY_HOURS} hours.",
    )


def resend_verification(*, actor: UserPublic) -> None:
    """Mail a fresh verification link (raises MailNotSent when the mail server is down)."""
    with session_scope() as session:
        user = _user_row(session, actor.id)
        if user.email_verified_at is not None:
            raise InvalidInput("Your e-mail is already confirmed.")
        link = _mailed_link(session, user, purpose="verify", hours=VERIFY_HOURS)
    _send_verification(actor.email, link)


def create_user(
    session: Session,
    *,
    email: str,
    password_hash: str,
    display_name: str,
    role: Role,
    client: Client,
    verified: bool = False,
) -> User:
    """Insert a user in ``session``; the admin is the account of ``GPTSTUDIO_ADMIN_EMAIL`` once
    its e-mail is verified or, without that setting, the first user of the installation."""
    if session.exec(select(User.id).where(User.email == email)).first() is not None:
        raise EmailTaken("An account with this e-mail already exists. Log in instead.")
    if get_settings().admin_email:
        admin = verified and _is_named_admin(email)
    else:
        admin = session.exec(select(func.count()).select_from(User)).one() == 0
    user = User(
        email=email,
        password_hash=password_hash,
        display_name=display_name.strip()[:120] or email.split("@")[0],
        role=(Role.admin if admin else role).value,
        email_verified_at=utcnow() if verified else None,
    )
    session.add(user)
    session.flush()
    audit.record(
        session, action="user.registered", actor_id=user.id, target=f"user:{user.id}",
        ip=client.ip, user_agent=client.user_agent, detail={"role": user.role},
    )  # fmt: skip
    return user


def _is_named_admin(email: str) -> bool:
    return email.lower() == get_settings().admin_email.strip().lower()


def _verified(user: User) -> None:
    """Mark the e-mail verified; the account named by ``GPTSTUDIO_ADMIN_EMAIL`` becomes admin."""
    user.email_verified_at = user.email_verified_at or utcnow()
    if get_settings().admin_email and _is_named_admin(user.email):
        user.role = Role.admin.value


def _mailed_link(session: Session, user: User, *, purpose: str, hours: int) -> str:
    """Store a single-use token for ``purpose`` and return the link that carries it."""
    token = crypto.sign({"uid": user.id, "n": secrets.token_urlsafe(12)}, purpose=purpose)
    session.add(
        ActionToken(
            user_id=user.id,  # type: ignore[arg-type]
            purpose=purpose,
            token_hash=hash_token(token),
            expires_at=utcnow() + timedelta(hours=hours),
        )
    )
    page = {"verify": "verify", "reset": "reset"}[purpose]
    return f"{get_settings().base_url}/{page}?token={token}"


def _redeem(
    session: Session, token: str, *, purpose: str, hours: int, what: str, seconds: int = 0
) -> User:
    """The user a mailed token was for; the token is used up. Raises InvalidInput otherwise."""
    payload = crypto.unsign(token, purpose=purpose, max_age=seconds or hours * 3600, what=what)
    row = session.exec(
        select(ActionToken).where(ActionToken.token_hash == hash_token(token))
    ).first()
    if row is None or row.purpose != purpose or row.user_id != payload.get("uid"):
        raise InvalidInput(f"This {what} is not valid. Please start again.")
    if row.used_at is not None:
        raise InvalidInput(f"This {what} has already been used. Please start again.")
    if row.expires_at <= utcnow():
        raise InvalidInput(f"This {what} has expired. Please start again.")
    # One conditional update spends the token: of several requests racing with it, the database
    # lets exactly one change the row (the others wait on its lock, then match nothing).
    spent = session.execute(
        update(ActionToken)
        .where(col(ActionToken.id) == row.id, col(ActionToken.used_at).is_(None))
        .values(used_at=utcnow())
        .execution_options(synchronize_session=False)
    )
    if spent.rowcount != 1:  # type: ignore[attr-defined]
        raise InvalidInput(f"This {what} has already been used. Please start again.")
    user = session.get(User, row.user_id)
    if user is None:
        raise InvalidInput(f"This {what} is not valid. Please start again.")
    return user


def verify_email(*, token: str, client: Client = Client()) -> UserPublic:
    """Mark the e-mail of the verification link's account as verified."""
    with session_scope() as session:
        user = _redeem(
            session, token, purpose="verify", hours=VERIFY_HOURS, what="verification link"
        )
        _verified(user)
        audit.record(
            session, action="user.email_verified", actor_id=user.id, target=f"user:{user.id}",
            ip=client.ip, user_agent=client.user_agent,
        )  # fmt: skip
        return public(user)


# --- password reset -------------------------------------------------------------------------


def request_password_reset(*, email: str, client: Client = Client()) -> None:
    """Mail a reset link if the account exists; the caller says the same thing either way."""
    try:
        email = normalize_email(email)
    except InvalidInput:
        return
    with session_scope() as session:
        user = session.exec(select(User).where(User.email == email)).first()
        if user is None or not user.is_active:
            return
        link = _mailed_link(session, user, purpose="reset", hours=RESET_HOURS)
        audit.record(
            session, action="password.reset_requested", actor_id=user.id, target=f"user:{user.id}",
            ip=client.ip, user_agent=client.user_agent,
        )  # fmt: skip
    mail.send_mail(
        to=email,
        subject="Reset your GPT Studio password",
        body=f"Someone asked to reset the password of your GPT Studio account.\n\n"
        f"Choose a new password here (valid for {RESET_HOURS} hour, once):\n{link}\n\n"
        "If it was not you, ignore this mail; your password stays as it is.",
    )


def reset_password(
    *, token: str, new_password: str, client: Client = Client(), keep_sso_links: bool = False
) -> UserPublic:
    """Set a new password from a reset link; every session of the account is ended, and its
    single sign-on links are dropped unless the user keeps them (whoever linked a provider
    account to this address must not keep signing in after the owner takes it back)."""
    with session_scope() as session:
        user = _redeem(session, token, purpose="reset", hours=RESET_HOURS, what="reset link")
        check_password_strength(new_password, email=user.email)
        _set_password(session, user, new_password)
        _verified(user)  # they read the mail
        links = session.exec(select(OAuthIdentity).where(OAuthIdentity.user_id == user.id)).all()
        for link in [] if keep_sso_links else links:
            session.delete(link)
        audit.record(
            session, action="password.reset", actor_id=user.id, target=f"user:{user.id}",
            ip=client.ip, user_agent=client.user_agent,
            detail={"sso_links_dropped": 0 if keep_sso_links else len(links)},
        )  # fmt: skip
        result = public(user)
    throttle.record_success(email=result.email, ip="")
    return result


def change_password(
    *, actor: UserPublic, current: str, new: str, keep_token: str, client: Client = Client()
) -> None:
    """Change the password; every other session of the account is ended."""
    with session_scope() as session:
        user = _user_row(session, actor.id)
        if not password_matches(user.password_hash, current):
            raise InvalidCredentials("The current password is wrong.")
        check_password_strength(new, email=user.email)
        _set_password(session, user, new, keep_token=keep_token)
        audit.record(
            session, action="password.changed", actor_id=user.id, target=f"user:{user.id}",
            ip=client.ip, user_agent=client.user_agent,
        )  # fmt: skip


def _set_password(session: Session, user: User, password: str, keep_token: str = "") -> None:
    user.password_hash = hash_password(password)
    user.password_changed_at = utcnow()
    _set_sessions_revoked(session, user, keep=hash_token(keep_token) if keep_token else "")


# --- login, MFA step-up, sessions ------------------------------------------------------------


def login(
    *, email: str, password: str, client: Client = Client(), previous_token: str = ""
) -> LoginResult:
    """Check the password; open a session, or hand out an MFA ticket for the second step.

    The error never says whether the e-mail exists; repeated failures lock the account and the
    address for exponentially longer (see :mod:`throttle`), whether the account exists or not.
    """
    throttle.check(email=email, ip=client.ip)
    wrong = InvalidCredentials("Wrong e-mail or password.")
    try:
        email = normalize_email(email)
    except InvalidInput:
        throttle.record_failure(email=email, ip=client.ip)
        raise wrong from None
    with session_scope() as session:
        user = session.exec(select(User).where(User.email == email)).first()
        if not password_matches(user.password_hash if user else _DUMMY_HASH, password) or not user:
            audit.record(
                session, action="login.failed", actor_id=user.id if user else None,
                target=email, ip=client.ip, user_agent=client.user_agent,
            )  # fmt: skip
            session.commit()
            throttle.record_failure(email=email, ip=client.ip)
            raise wrong
        if not user.is_active:
            raise InvalidCredentials("This account is disabled. Contact the administrator.")
        if password_needs_rehash(user.password_hash):
            user.password_hash = hash_password(password)
        throttle.record_success(email=email, ip=client.ip)
        if user.mfa_enabled_at is not None:
            return LoginResult(user=public(user), mfa_ticket=mfa_ticket_for(user))
        token = open_session(session, user, client=client, previous_token=previous_token)
        return LoginResult(user=public(user), token=token)


def mfa_ticket_for(user: User) -> str:
    """A short-lived ticket proving the first factor passed; the second one redeems it."""
    return crypto.sign({"uid": user.id, "pw": user.password_hash[-16:]}, purpose="mfa-login")


def complete_mfa_login(
    *, ticket: str, code: str, client: Client = Client(), previous_token: str = ""
) -> LoginResult:
    """Second step: a TOTP or backup code for the ticket's account opens the session."""
    from gptstudio.services import mfa

    payload = crypto.unsign(
        ticket, purpose="mfa-login", max_age=MFA_TICKET_SECONDS, what="sign-in attempt"
    )
    with session_scope() as session:
        user = session.get(User, int(payload.get("uid", 0)))
        if user is None or not user.is_active or user.password_hash[-16:] != payload.get("pw"):
            raise InvalidInput("This sign-in attempt is not valid. Please start again.")
        throttle.check(email=user.email, ip=client.ip)
        if not mfa.verify_login_code(session, user, code, client=client):
            audit.record(
                session, action="login.mfa_failed", actor_id=user.id, target=f"user:{user.id}",
                ip=client.ip, user_agent=client.user_agent,
            )  # fmt: skip
            session.commit()
            throttle.record_failure(email=user.email, ip=client.ip)
            raise InvalidCredentials("That code is not valid. Try the next one from your app.")
        token = open_session(session, user, client=client, previous_token=previous_token)
        return LoginResult(user=public(user), token=token)


def open_session(session: Session, user: User, *, client: Client, previous_token: str = "") -> str:
    """Create a session row and return its raw token; the browser's previous one is revoked."""
    if previous_token:
        _revoke(session, previous_token)
    token = secrets.token_urlsafe(32)
    session.add(
        UserSession(
            user_id=user.id,  # type: ignore[arg-type]
            token_hash=hash_token(token),
            expires_at=utcnow() + timedelta(hours=get_settings().session_ttl_hours),
            ip=client.ip[:64],
            user_agent=client.user_agent[:400],
        )
    )
    audit.record(
        session, action="login.ok", actor_id=user.id, target=f"user:{user.id}",
        ip=client.ip, user_agent=client.user_agent,
    )  # fmt: skip
    return token


def _revoke(session: Session, token: str) -> None:
    row = session.exec(
        select(UserSession).where(UserSession.token_hash == hash_token(token))
    ).first()
    if row is not None and row.revoked_at is None:
        row.revoked_at = utcnow()


def cookie_grant(*, token: str) -> str:
    """A one-time grant, valid for a minute, that the browser trades at ``GET /auth/session``
    for the session cookie. The cookie is HttpOnly, so page script (and an XSS) never reads it;
    only an HTTP response can set it, and a sign-in made over the Reflex socket ends there."""
    with session_scope() as session:
        row = session.exec(
            select(UserSession).where(UserSession.token_hash == hash_token(token))
        ).first()
        if row is None:
            raise SessionExpired("Your session has expired. Please log in again.")
        grant = crypto.sign(
            {"uid": row.user_id, "s": crypto.encrypt(token)}, purpose=COOKIE_GRANT_PURPOSE
        )
        session.add(
            ActionToken(
                user_id=row.user_id, purpose=COOKIE_GRANT_PURPOSE, token_hash=hash_token(grant),
                expires_at=utcnow() + timedelta(seconds=COOKIE_GRANT_SECONDS),
            )
        )  # fmt: skip
    return grant


def redeem_cookie_grant(*, grant: str) -> str:
    """The session token behind a grant from :func:`cookie_grant`, once (InvalidInput after)."""
    with session_scope() as session:
        _redeem(
            session, grant, purpose=COOKIE_GRANT_PURPOSE, hours=0, what="sign-in",
            seconds=COOKIE_GRANT_SECONDS,
        )  # fmt: skip
    payload = crypto.unsign(grant, purpose=COOKIE_GRANT_PURPOSE, max_age=COOKIE_GRANT_SECONDS)
    return crypto.decrypt(str(payload.get("s", "")))


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
        raise SessionExpired("Please log in first.", reason="required")
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
            raise SessionExpired(
                "This account is disabled. Contact the administrator.", reason="disabled"
            )
        if now - user_session.last_seen_at > _SEEN_REFRESH:
            user_session.last_seen_at = now
        return public(user)


@dataclass(frozen=True)
class SessionInfo:
    id: int
    ip: str
    user_agent: str
    created_at: str
    last_seen_at: str
    current: bool


def list_sessions(*, actor: UserPublic, current_token: str) -> list[SessionInfo]:
    """The actor's live sessions, newest first, the current one marked."""
    current = hash_token(current_token) if current_token else ""
    with session_scope() as session:
        rows = session.exec(
            select(UserSession)
            .where(
                UserSession.user_id == actor.id,
                col(UserSession.revoked_at).is_(None),
                UserSession.expires_at > utcnow(),
            )
            .order_by(col(UserSession.last_seen_at).desc())
        ).all()
        return [
            SessionInfo(
                id=r.id or 0,
                ip=r.ip,
                user_agent=r.user_agent,
                created_at=r.created_at.strftime("%Y-%m-%d %H:%M UTC"),
                last_seen_at=r.last_seen_at.strftime("%Y-%m-%d %H:%M UTC"),
                current=r.token_hash == current,
            )
            for r in rows
        ]


def revoke_session(*, actor: UserPublic, session_id: int, client: Client = Client()) -> None:
    """End one of the actor's own sessions; another user's id is simply not found."""
    with session_scope() as session:
        row = session.get(UserSession, session_id)
        if row is None or row.user_id != actor.id:
            raise NotFound("There is no such session.")
        row.revoked_at = row.revoked_at or utcnow()
        audit.record(
            session, action="session.revoked", actor_id=actor.id, target=f"session:{session_id}",
            ip=client.ip, user_agent=client.user_agent,
        )  # fmt: skip


def revoke_other_sessions(
    *, actor: UserPublic, current_token: str, client: Client = Client()
) -> int:
    """End every session of the actor except the current one; returns how many."""
    with session_scope() as session:
        user = _user_row(session, actor.id)
        before = session.exec(
            select(func.count())
            .select_from(UserSession)
            .where(UserSession.user_id == actor.id, col(UserSession.revoked_at).is_(None))
        ).one()
        _set_sessions_revoked(session, user, keep=hash_token(current_token))
        audit.record(
            session, action="session.revoked_others", actor_id=actor.id,
            target=f"user:{actor.id}", ip=client.ip, user_agent=client.user_agent,
        )  # fmt: skip
        return max(0, int(before) - 1)


def _set_sessions_revoked(session: Session, user: User, *, keep: str) -> None:
    for row in session.exec(
        select(UserSession).where(
            UserSession.user_id == user.id, col(UserSession.revoked_at).is_(None)
        )
    ).all():
        if row.token_hash != keep:
            row.revoked_at = utcnow()


def _user_row(session: Session, user_id: int) -> User:
    user = session.get(User, user_id)
    if user is None:
        raise NotFound(f"There is no user {user_id}.")
    return user


# --- roles ----------------------------------------------------------------------------------


def list_users(*, actor: UserPublic) -> list[UserPublic]:
    """Every account, oldest first (admins only)."""
    authorize(actor, Role.admin)
    with session_scope() as session:
        return [public(u) for u in session.exec(select(User).order_by(col(User.id))).all()]


def set_tier(
    *, actor: UserPublic, user_id: int, tier: Tier, client: Client = Client()
) -> UserPublic:
    """Change a user's GPT Studio tier (admins only); it sets their training jobs' priority."""
    authorize(actor, Role.admin)
    with session_scope() as session:
        user = _user_row(session, user_id)
        before = user.tier
        user.tier = Tier(tier).value
        audit.record(
            session, action="user.tier_changed", actor_id=actor.id, target=f"user:{user_id}",
            ip=client.ip, user_agent=client.user_agent, detail={"from": before, "to": user.tier},
        )  # fmt: skip
        return public(user)


def set_role(
    *, actor: UserPublic, user_id: int, role: Role, client: Client = Client()
) -> UserPublic:
    """Change a user's role (admins only); the last admin can never be demoted."""
    authorize(actor, Role.admin)
    with session_scope() as session:
        user = _user_row(session, user_id)
        if user.role == Role.admin and role != Role.admin:
            admins = session.exec(
                select(func.count()).select_from(User).where(User.role == Role.admin.value)
            ).one()
            if admins <= 1:
                raise InvalidInput("This is the last admin; make someone else admin first.")
        before = user.role
        user.role = role.value
        audit.record(
            session, action="user.role_changed", actor_id=actor.id, target=f"user:{user_id}",
            ip=client.ip, user_agent=client.user_agent, detail={"from": before, "to": role.value},
        )  # fmt: skip
        return public(user)
