"""TOTP multi-factor authentication: enrolment with a QR code, backup codes, replay refusal,
and the admin policy that requires MFA for some roles."""

from __future__ import annotations

import secrets
from dataclasses import dataclass

import pyotp
import segno
from sqlalchemy import update
from sqlmodel import Session, col, select

from gptstudio.db import session_scope, utcnow
from gptstudio.errors import InvalidCredentials, InvalidInput
from gptstudio.models import AppSetting, MfaBackupCode, Role, User
from gptstudio.models.user import UserPublic
from gptstudio.services import audit, crypto
from gptstudio.services.access import Client, authorize
from gptstudio.services.crypto import hash_token, password_matches

ISSUER = "GPT Studio"
HOME_BY_ROLE = {Role.admin: "/admin", Role.creator: "/dashboard", Role.subscriber: "/home"}
BACKUP_CODES = 10
POLICY_KEY = "mfa_required_roles"


@dataclass(frozen=True)
class Enrolment:
    secret: str
    uri: str
    qr_data_uri: str


def _normalise(code: str) -> str:
    return "".join(ch for ch in code if ch.isalnum()).lower()


def _user(session: Session, actor: UserPublic) -> User:
    user = session.get(User, actor.id)
    if user is None:
        raise InvalidInput("Your account no longer exists.")
    return user


def begin_enrolment(*, actor: UserPublic) -> Enrolment:
    """A new secret (pending until confirmed) with its otpauth URI rendered as a QR image."""
    with session_scope() as session:
        user = _user(session, actor)
        if user.mfa_enabled_at is not None:
            raise InvalidInput("Two-factor authentication is already on.")
        secret = pyotp.random_base32()
        user.mfa_secret = crypto.encrypt(secret)
        uri = pyotp.TOTP(secret).provisioning_uri(name=user.email, issuer_name=ISSUER)
    qr = segno.make(uri, error="m").svg_data_uri(scale=5)
    return Enrolment(secret=secret, uri=uri, qr_data_uri=qr)


def confirm_enrolment(*, actor: UserPublic, code: str, client: Client = Client()) -> list[str]:
    """Turn MFA on once a code from the app matches; returns the ten backup codes (shown once)."""
    with session_scope() as session:
        user = _user(session, actor)
        if user.mfa_enabled_at is not None:
            raise InvalidInput("Two-factor authentication is already on.")
        if not user.mfa_secret:
            raise InvalidInput("Start the set-up first, then enter the code your app shows.")
        step = _matching_step(user, code)
        if step is None:
            raise InvalidInput("That code does not match. Check your phone's clock and try again.")
        user.mfa_last_step = step
        user.mfa_enabled_at = utcnow()
        codes = _new_backup_codes(session, user)
        audit.record(
            session, action="mfa.enabled", actor_id=user.id, target=f"user:{user.id}",
            ip=client.ip, user_agent=client.user_agent,
        )  # fmt: skip
        return codes


def _new_backup_codes(session: Session, user: User) -> list[str]:
    for old in session.exec(select(MfaBackupCode).where(MfaBackupCode.user_id == user.id)).all():
        session.delete(old)
    codes = [f"{secrets.token_hex(3)}-{secrets.token_hex(3)}" for _ in range(BACKUP_CODES)]
    for code in codes:
        session.add(MfaBackupCode(user_id=user.id, code_hash=hash_token(_normalise(code))))  # type: ignore[arg-type]
    return codes


def _matching_step(user: User, code: str) -> int | None:
    """The TOTP time step ``code`` belongs to (now ± one step), if any."""
    code = _normalise(code)
    if not (code.isdigit() and len(code) == 6) or not user.mfa_secret:
        return None
    totp = pyotp.TOTP(crypto.decrypt(user.mfa_secret))
    now = utcnow()
    current = totp.timecode(now)
    for step in (current, current - 1, current + 1):
        if secrets.compare_digest(totp.generate_otp(step), code):
            return step
    return None


def verify_login_code(session: Session, user: User, code: str, *, client: Client) -> bool:
    """Accept a fresh TOTP code or an unused backup code; a replayed TOTP code is refused."""
    # Each code is spent by one conditional update: of several requests racing with the same
    # code, the database lets exactly one change the row (the others wait, then match nothing).
    step = _matching_step(user, code)
    if step is not None:
        advanced = session.execute(
            update(User)
            .where(col(User.id) == user.id, col(User.mfa_last_step) < step)
            .values(mfa_last_step=step)
            .execution_options(synchronize_session=False)
        )
        if advanced.rowcount != 1:  # type: ignore[attr-defined]
            return False  # this code (or a later one) was already used
        session.expire(user, ["mfa_last_step"])
        return True
    spent = session.execute(
        update(MfaBackupCode)
        .where(
            col(MfaBackupCode.user_id) == user.id,
            col(MfaBackupCode.code_hash) == hash_token(_normalise(code)),
            col(MfaBackupCode.used_at).is_(None),
        )
        .values(used_at=utcnow())
        .execution_options(synchronize_session=False)
    )
    if spent.rowcount != 1:  # type: ignore[attr-defined]
        return False
    audit.record(
        session, action="mfa.backup_code_used", actor_id=user.id, target=f"user:{user.id}",
        ip=client.ip, user_agent=client.user_agent,
    )  # fmt: skip
    return True


def remaining_backup_codes(*, actor: UserPublic) -> int:
    with session_scope() as session:
        return len(
            session.exec(
                select(MfaBackupCode.id).where(
                    MfaBackupCode.user_id == actor.id, col(MfaBackupCode.used_at).is_(None)
                )
            ).all()
        )


def disable(*, actor: UserPublic, password: str, code: str, client: Client = Client()) -> None:
    """Turn MFA off; needs the password and a current code (or a backup code)."""
    with session_scope() as session:
        user = _user(session, actor)
        if user.mfa_enabled_at is None:
            raise InvalidInput("Two-factor authentication is not on.")
        if not password_matches(user.password_hash, password):
            raise InvalidCredentials("The password is wrong.")
        if not verify_login_code(session, user, code, client=client):
            raise InvalidCredentials("That code is not valid.")
        if Role(user.role) in required_roles():
            raise InvalidInput(
                f"MFA is required for {user.role} accounts; it cannot be turned off."
            )
        user.mfa_secret, user.mfa_enabled_at, user.mfa_last_step = "", None, 0
        for row in session.exec(
            select(MfaBackupCode).where(MfaBackupCode.user_id == user.id)
        ).all():
            session.delete(row)
        audit.record(
            session, action="mfa.disabled", actor_id=user.id, target=f"user:{user.id}",
            ip=client.ip, user_agent=client.user_agent,
        )  # fmt: skip


def required_roles() -> set[Role]:
    """The roles an admin has required MFA for."""
    with session_scope() as session:
        row = session.get(AppSetting, POLICY_KEY)
        return {Role(value) for value in (row.value if row and row.value else [])}


def set_required_roles(*, actor: UserPublic, roles: set[Role], client: Client = Client()) -> None:
    """Require MFA for admins and/or creators (admins only)."""
    authorize(actor, Role.admin)
    if not roles <= {Role.admin, Role.creator}:
        raise InvalidInput("MFA can be required for admins and creators.")
    with session_scope() as session:
        row = session.get(AppSetting, POLICY_KEY) or AppSetting(key=POLICY_KEY)
        row.value = sorted(role.value for role in roles)
        row.updated_at = utcnow()
        session.add(row)
        audit.record(
            session, action="mfa.policy_changed", actor_id=actor.id, target="policy:mfa",
            ip=client.ip, user_agent=client.user_agent, detail={"roles": row.value},
        )  # fmt: skip


def must_enrol(user: UserPublic) -> bool:
    """Whether policy requires MFA for this user and they have not turned it on yet."""
    return not user.mfa_enabled and user.role in required_roles()


def landing_path(user: UserPublic) -> str:
    """Where a user lands after signing in: MFA set-up first when policy requires it."""
    return "/account" if must_enrol(user) else HOME_BY_ROLE[user.role]


__all__ = [
    "Enrolment",
    "begin_enrolment",
    "confirm_enrolment",
    "disable",
    "landing_path",
    "must_enrol",
    "remaining_backup_codes",
    "required_roles",
    "set_required_roles",
    "verify_login_code",
]
