"""One-time secrets are redeemed once even when several requests race (issue 16, break 5): from
six threads, the same reset token, TOTP code or backup code succeeds exactly once."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pyotp
import pytest

from gptstudio.errors import DomainError
from gptstudio.services import account, mfa
from tests.conftest import Mailbox
from tests.services.test_mail_flows import token_of

PASSWORD = "correct horse battery"
THREADS = 6


def race(call: Callable[[int], Any]) -> list[Any]:
    """``call(i)`` from THREADS threads released at once; each result or the domain error."""
    barrier = threading.Barrier(THREADS)

    def one(index: int) -> Any:
        barrier.wait()
        try:
            return call(index)
        except DomainError as error:
            return error

    with ThreadPoolExecutor(THREADS) as pool:
        return list(pool.map(one, range(THREADS)))


def successes(results: list[Any]) -> list[Any]:
    return [r for r in results if not isinstance(r, DomainError)]


def test_a_reset_token_resets_once(db: str, mailbox: Mailbox) -> None:
    account.register(email="ada@example.com", password=PASSWORD)
    account.request_password_reset(email="ada@example.com")
    token = token_of(mailbox.link("ada@example.com", "reset"))
    results = race(
        lambda i: account.reset_password(token=token, new_password=f"new passphrase number {i}")
    )
    assert len(successes(results)) == 1, results


@pytest.fixture
def enrolled(db: str) -> tuple[account.UserPublic, pyotp.TOTP, list[str]]:
    user = account.register(email="ada@example.com", password=PASSWORD)
    totp = pyotp.TOTP(mfa.begin_enrolment(actor=user).secret)
    return user, totp, mfa.confirm_enrolment(actor=user, code=totp.now())


def ticket() -> str:
    return account.login(email="ada@example.com", password=PASSWORD).mfa_ticket


def test_a_totp_code_opens_one_session(
    enrolled: tuple[account.UserPublic, pyotp.TOTP, list[str]],
) -> None:
    _, totp, _ = enrolled
    code, step_ticket = totp.at(time.time() + 30), ticket()  # the next step: fresh
    results = race(lambda _: account.complete_mfa_login(ticket=step_ticket, code=code))
    assert len(successes(results)) == 1, results


def test_a_backup_code_works_once(
    enrolled: tuple[account.UserPublic, pyotp.TOTP, list[str]],
) -> None:
    user, _, codes = enrolled
    step_ticket = ticket()
    results = race(lambda _: account.complete_mfa_login(ticket=step_ticket, code=codes[0]))
    assert len(successes(results)) == 1, results
    assert mfa.remaining_backup_codes(actor=user) == 9
