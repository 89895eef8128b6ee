"""TOTP MFA: enrolment, login step-up, replay refusal, backup codes, disable, admin policy."""

from __future__ import annotations

import time

import pyotp
import pytest
from sqlmodel import select

from gptstudio.db import session_scope
from gptstudio.errors import InvalidCredentials, InvalidInput, PermissionDenied
from gptstudio.models import AuditEvent, MfaBackupCode, Role
from gptstudio.services import account, mfa

PASSWORD = "correct horse battery"


@pytest.fixture
def enrolled(db: str) -> tuple[account.UserPublic, pyotp.TOTP, list[str]]:
    user = account.register(email="ada@example.com", password=PASSWORD)
    enrolment = mfa.begin_enrolment(actor=user)
    assert enrolment.uri.startswith("otpauth://totp/GPT%20Studio:ada%40example.com?secret=")
    assert enrolment.qr_data_uri.startswith("data:image/svg+xml")
    totp = pyotp.TOTP(enrolment.secret)
    codes = mfa.confirm_enrolment(actor=user, code=totp.now())
    return user, totp, codes


def test_enrolment_needs_a_matching_code(db: str) -> None:
    user = account.register(email="ada@example.com", password=PASSWORD)
    with pytest.raises(InvalidInput, match="Start the set-up first"):
        mfa.confirm_enrolment(actor=user, code="123456")
    mfa.begin_enrolment(actor=user)
    with pytest.raises(InvalidInput, match="does not match"):
        mfa.confirm_enrolment(actor=user, code="000000")


def test_ten_backup_codes_are_stored_hashed(
    enrolled: tuple[account.UserPublic, pyotp.TOTP, list[str]],
) -> None:
    _, _, codes = enrolled
    assert len(codes) == 10 and len(set(codes)) == 10
    with session_scope() as session:
        stored = session.exec(select(MfaBackupCode.code_hash)).all()
    assert len(stored) == 10 and not set(codes) & set(stored)


def test_login_steps_up_and_a_code_is_never_accepted_twice(
    enrolled: tuple[account.UserPublic, pyotp.TOTP, list[str]],
) -> None:
    _, totp, _ = enrolled
    first = account.login(email="ada@example.com", password=PASSWORD)
    assert first.token == "" and first.mfa_ticket
    # The code used to confirm enrolment is already spent in this time window.
    with pytest.raises(InvalidCredentials, match="not valid"):
        account.complete_mfa_login(ticket=first.mfa_ticket, code=totp.now())
    next_code = totp.at(time.time() + 30)  # the next time step: fresh, inside the window
    done = account.complete_mfa_login(ticket=first.mfa_ticket, code=next_code)
    assert account.user_for_session(token=done.token).email == "ada@example.com"
    again = account.login(email="ada@example.com", password=PASSWORD)
    with pytest.raises(InvalidCredentials):
        account.complete_mfa_login(ticket=again.mfa_ticket, code=next_code)  # replay


def test_backup_codes_work_once(
    enrolled: tuple[account.UserPublic, pyotp.TOTP, list[str]],
) -> None:
    _, _, codes = enrolled
    ticket = account.login(email="ada@example.com", password=PASSWORD).mfa_ticket
    assert account.complete_mfa_login(ticket=ticket, code=codes[0].upper()).token
    ticket = account.login(email="ada@example.com", password=PASSWORD).mfa_ticket
    with pytest.raises(InvalidCredentials):
        account.complete_mfa_login(ticket=ticket, code=codes[0])
    with session_scope() as session:
        actions = session.exec(select(AuditEvent.action)).all()
    assert "mfa.enabled" in actions and "mfa.backup_code_used" in actions


def test_a_forged_or_stale_ticket_is_refused(
    enrolled: tuple[account.UserPublic, pyotp.TOTP, list[str]],
) -> None:
    _, _, codes = enrolled
    with pytest.raises(InvalidInput, match="not valid"):
        account.complete_mfa_login(ticket="forged", code=codes[1])


def test_disable_needs_password_and_code(
    enrolled: tuple[account.UserPublic, pyotp.TOTP, list[str]],
) -> None:
    user, _, codes = enrolled
    with pytest.raises(InvalidCredentials, match="password is wrong"):
        mfa.disable(actor=user, password="nope nope nope", code=codes[2])
    with pytest.raises(InvalidCredentials, match="code is not valid"):
        mfa.disable(actor=user, password=PASSWORD, code="999999")
    mfa.disable(actor=user, password=PASSWORD, code=codes[2])
    assert account.login(email="ada@example.com", password=PASSWORD).token


def test_admin_policy_requires_mfa(
    enrolled: tuple[account.UserPublic, pyotp.TOTP, list[str]],
) -> None:
    admin, _, codes = enrolled
    creator = account.register(email="cy@example.com", password=PASSWORD, role=Role.creator)
    sub = account.register(email="sue@example.com", password=PASSWORD)
    with pytest.raises(PermissionDenied):
        mfa.set_required_roles(actor=creator, roles={Role.creator})
    mfa.set_required_roles(actor=admin, roles={Role.admin, Role.creator})
    assert mfa.required_roles() == {Role.admin, Role.creator}
    assert mfa.must_enrol(creator) and not mfa.must_enrol(sub)
    assert mfa.landing_path(creator) == "/account" and mfa.landing_path(sub) == "/home"
    with pytest.raises(InvalidInput, match="required for admin"):
        mfa.disable(actor=admin, password=PASSWORD, code=codes[3])
