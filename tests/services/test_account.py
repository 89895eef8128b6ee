"""Accounts on SQLite and PostgreSQL: registration, login, sessions, roles, and their errors."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import func
from sqlmodel import select

from gptstudio.db import session_scope, utcnow
from gptstudio.errors import (
    EmailTaken,
    InvalidCredentials,
    InvalidInput,
    NotFound,
    PermissionDenied,
    SessionExpired,
)
from gptstudio.models import AuditEvent, Role, User, UserSession
from gptstudio.services import access, account, crypto

PASSWORD = "correct horse battery"


def count(model: type) -> int:
    with session_scope() as session:
        return int(session.exec(select(func.count()).select_from(model)).one())


def test_first_user_is_admin_later_users_get_their_choice(db: str) -> None:
    admin = account.register(email="Ada@Example.com", password=PASSWORD)
    creator = account.register(email="cy@example.com", password=PASSWORD, role=Role.creator)
    subscriber = account.register(email="sue@example.com", password=PASSWORD)
    assert (admin.role, creator.role, subscriber.role) == (
        Role.admin,
        Role.creator,
        Role.subscriber,
    )
    assert admin.email == "ada@example.com"
    assert admin.display_name == "ada"


def test_nobody_registers_themselves_as_admin(db: str) -> None:
    account.register(email="ada@example.com", password=PASSWORD)
    with pytest.raises(InvalidInput, match="creator or a subscriber"):
        account.register(email="eve@example.com", password=PASSWORD, role=Role.admin)


def test_passwords_are_stored_as_argon2_hashes(db: str) -> None:
    account.register(email="ada@example.com", password=PASSWORD)
    with session_scope() as session:
        stored = session.exec(select(User.password_hash)).one()
    assert stored.startswith("$argon2id$")
    assert PASSWORD not in stored


def test_duplicate_email_is_refused_case_insensitively(db: str) -> None:
    account.register(email="ada@example.com", password=PASSWORD)
    with pytest.raises(EmailTaken, match="already exists"):
        account.register(email=" ADA@example.com ", password=PASSWORD)
    assert count(User) == 1


@pytest.mark.parametrize(
    ("password", "reason"),
    [
        ("short1!", "at least 10 characters"),
        ("password123", "too easy to guess"),
        ("aaaaaaaaaaaa", "too easy to guess"),
        ("grace-hopper-2026", "must not contain your e-mail"),
    ],
)
def test_weak_passwords_are_refused_and_nothing_is_written(
    db: str, password: str, reason: str
) -> None:
    with pytest.raises(InvalidInput, match=reason):
        account.register(email="grace-hopper@example.com", password=password)
    assert count(User) == 0
    assert count(AuditEvent) == 0


def test_invalid_email_is_refused(db: str) -> None:
    with pytest.raises(InvalidInput, match="not valid"):
        account.register(email="not-an-email", password=PASSWORD)


def test_login_opens_a_session_that_resolves_to_the_user(db: str) -> None:
    account.register(email="ada@example.com", password=PASSWORD)
    result = account.login(
        email="ada@example.com", password=PASSWORD, client=access.Client("10.0.0.1", "pytest")
    )
    token = result.token
    assert account.user_for_session(token=token) == result.user
    with session_scope() as session:
        stored = session.exec(select(UserSession)).one()
    assert stored.token_hash == crypto.hash_token(token) != token
    assert (stored.ip, stored.user_agent) == ("10.0.0.1", "pytest")


def test_wrong_password_and_unknown_email_get_the_same_answer(db: str) -> None:
    account.register(email="ada@example.com", password=PASSWORD)
    with pytest.raises(InvalidCredentials) as wrong_password:
        account.login(email="ada@example.com", password="not the password")
    with pytest.raises(InvalidCredentials) as unknown_email:
        account.login(email="nobody@example.com", password=PASSWORD)
    assert str(wrong_password.value) == str(unknown_email.value) == "Wrong e-mail or password."
    assert count(UserSession) == 0
    with session_scope() as session:
        actions = session.exec(select(AuditEvent.action).order_by(AuditEvent.id)).all()
    assert actions == ["user.registered", "login.failed", "login.failed"]


def test_login_rotates_the_previous_session(db: str) -> None:
    account.register(email="ada@example.com", password=PASSWORD)
    first = account.login(email="ada@example.com", password=PASSWORD).token
    second = account.login(email="ada@example.com", password=PASSWORD, previous_token=first).token
    assert second != first
    with pytest.raises(SessionExpired):
        account.user_for_session(token=first)
    assert account.user_for_session(token=second).email == "ada@example.com"


def test_logout_ends_the_session(db: str) -> None:
    account.register(email="ada@example.com", password=PASSWORD)
    token = account.login(email="ada@example.com", password=PASSWORD).token
    account.logout(token=token)
    with pytest.raises(SessionExpired, match="expired"):
        account.user_for_session(token=token)


def test_expired_session_is_refused(db: str) -> None:
    account.register(email="ada@example.com", password=PASSWORD)
    token = account.login(email="ada@example.com", password=PASSWORD).token
    with session_scope() as session:
        stored = session.exec(select(UserSession)).one()
        stored.expires_at = utcnow() - timedelta(seconds=1)
    with pytest.raises(SessionExpired, match="expired"):
        account.user_for_session(token=token)


def test_unknown_or_missing_token_is_refused(db: str) -> None:
    with pytest.raises(SessionExpired, match="log in first"):
        account.user_for_session(token="")
    with pytest.raises(SessionExpired):
        account.user_for_session(token="forged-token")


def test_disabled_account_cannot_log_in_or_use_its_session(db: str) -> None:
    account.register(email="ada@example.com", password=PASSWORD)
    token = account.login(email="ada@example.com", password=PASSWORD).token
    with session_scope() as session:
        session.exec(select(User)).one().is_active = False
    with pytest.raises(SessionExpired, match="disabled"):
        account.user_for_session(token=token)
    with pytest.raises(InvalidCredentials, match="disabled"):
        account.login(email="ada@example.com", password=PASSWORD)


def test_authorize_checks_roles_and_admin_passes_everything(db: str) -> None:
    admin = account.register(email="ada@example.com", password=PASSWORD)
    subscriber = account.register(email="sue@example.com", password=PASSWORD)
    access.authorize(admin, Role.creator)
    access.authorize(subscriber, Role.subscriber)
    with pytest.raises(PermissionDenied, match="needs a creator account"):
        access.authorize(subscriber, Role.creator)


def test_only_admins_list_users_and_change_roles(db: str) -> None:
    admin = account.register(email="ada@example.com", password=PASSWORD)
    sue = account.register(email="sue@example.com", password=PASSWORD)
    with pytest.raises(PermissionDenied):
        account.list_users(actor=sue)
    with pytest.raises(PermissionDenied):
        account.set_role(actor=sue, user_id=sue.id, role=Role.admin)
    assert [u.email for u in account.list_users(actor=admin)] == [admin.email, sue.email]
    promoted = account.set_role(actor=admin, user_id=sue.id, role=Role.creator)
    assert promoted.role == Role.creator
    with session_scope() as session:
        event = session.exec(
            select(AuditEvent).where(AuditEvent.action == "user.role_changed")
        ).one()
    assert event.actor_id == admin.id
    assert event.detail == {"from": "subscriber", "to": "creator"}


def test_the_last_admin_cannot_be_demoted(db: str) -> None:
    admin = account.register(email="ada@example.com", password=PASSWORD)
    with pytest.raises(InvalidInput, match="last admin"):
        account.set_role(actor=admin, user_id=admin.id, role=Role.subscriber)
    with pytest.raises(NotFound):
        account.set_role(actor=admin, user_id=9999, role=Role.creator)
