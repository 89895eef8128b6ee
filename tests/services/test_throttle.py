"""Brute-force protection: exponential lockout per account and per IP, on the database and Redis,
never revealing whether the e-mail exists, and surviving Redis being down."""

from __future__ import annotations

import time

import pytest
import redis

from gptstudio.errors import InvalidCredentials
from gptstudio.services import access, account, throttle
from gptstudio.settings import get_settings

PASSWORD = "correct horse battery"
ALICE = access.Client(ip="203.0.113.7", user_agent="pytest")


def fail_times(email: str, n: int, client: access.Client = ALICE) -> None:
    for _ in range(n):
        with pytest.raises(InvalidCredentials):
            account.login(email=email, password="wrong password!", client=client)


def test_lock_grows_exponentially(settings_env: pytest.MonkeyPatch) -> None:
    assert [throttle.lock_seconds(n, 5) for n in (4, 5, 6, 7)] == [0, 30, 60, 120]
    assert throttle.lock_seconds(40, 5) == get_settings().lockout_max_seconds


@pytest.mark.parametrize("backend", ["database", "redis"])
def test_account_locks_after_threshold_even_for_the_right_password(
    db: str, backend: str, request: pytest.FixtureRequest, settings_env: pytest.MonkeyPatch
) -> None:
    if backend == "redis":
        settings_env.setenv("GPTSTUDIO_REDIS_URL", request.getfixturevalue("redis_url"))
        get_settings.cache_clear()
    account.register(email="ada@example.com", password=PASSWORD)
    fail_times("ada@example.com", 5)
    with pytest.raises(throttle.LockedOut, match="Too many failed attempts") as locked:
        account.login(email="ada@example.com", password=PASSWORD, client=ALICE)
    assert 0 < locked.value.retry_after <= 30
    # Another address is locked out of this account too (per-account counter).
    with pytest.raises(throttle.LockedOut):
        account.login(email="ada@example.com", password=PASSWORD, client=access.Client("1.2.3.4"))
    if backend == "redis":
        assert redis.Redis.from_url(get_settings().redis_url).exists(
            "gptstudio:lock:account:ada@example.com"
        )


def test_unknown_email_locks_the_same_way(db: str) -> None:
    fail_times("nobody@example.com", 5)
    with pytest.raises(throttle.LockedOut, match="Too many failed attempts"):
        account.login(email="nobody@example.com", password=PASSWORD, client=ALICE)


def test_lock_expires_and_success_clears_the_counter(
    db: str, settings_env: pytest.MonkeyPatch
) -> None:
    settings_env.setenv("GPTSTUDIO_LOCKOUT_BASE_SECONDS", "1")
    get_settings.cache_clear()
    account.register(email="ada@example.com", password=PASSWORD)
    fail_times("ada@example.com", 5)
    with pytest.raises(throttle.LockedOut):
        account.login(email="ada@example.com", password=PASSWORD, client=ALICE)
    time.sleep(1.2)
    assert account.login(email="ada@example.com", password=PASSWORD, client=ALICE).token
    fail_times("ada@example.com", 4)  # counter was reset: four more failures do not lock
    assert account.login(email="ada@example.com", password=PASSWORD, client=ALICE).token


def test_one_address_trying_many_accounts_is_locked(db: str) -> None:
    threshold = get_settings().lockout_threshold * throttle.IP_THRESHOLD_FACTOR
    for n in range(threshold):
        fail_times(f"user{n}@example.com", 1)
    with pytest.raises(throttle.LockedOut):
        account.login(email="someone@example.com", password=PASSWORD, client=ALICE)


def test_redis_down_falls_back_to_the_database(db: str, settings_env: pytest.MonkeyPatch) -> None:
    settings_env.setenv("GPTSTUDIO_REDIS_URL", "redis://127.0.0.1:1/0")
    get_settings.cache_clear()
    account.register(email="ada@example.com", password=PASSWORD)
    fail_times("ada@example.com", 5)
    with pytest.raises(throttle.LockedOut):
        account.login(email="ada@example.com", password=PASSWORD, client=ALICE)


# --- the adversarial probe (issue 16, break 1) ----------------------------------------------

SPELLINGS = [
    "ada@example.com", "ADA@example.com", "ada@EXAMPLE.com", "ada@ｅxample.com",
    "ａｄａ@example.com", " Ada@Example.COM ", "ada@ＥＸＡＭＰＬＥ.com", "ᴬda@example.com",
]  # fmt: skip


def test_every_spelling_of_an_address_shares_one_lock(db: str) -> None:
    """Failures under many spellings lock the one account; a locked account stays locked under
    any spelling (with the right password), and the lock is not cleared by another spelling."""
    account.register(email="ada@example.com", password=PASSWORD)
    assert {throttle.email_key(s) for s in SPELLINGS} == {"ada@example.com"}
    for spelling in SPELLINGS[:5]:
        fail_times(spelling, 1, access.Client(ip=""))  # no address: only the account counts
    for spelling in SPELLINGS:
        with pytest.raises(throttle.LockedOut):
            account.login(email=spelling, password=PASSWORD, client=access.Client(ip=""))


def test_idna_domain_spellings_share_one_key() -> None:
    assert throttle.email_key("ada@bücher.de") == throttle.email_key("ADA@xn--bcher-kva.de")
    assert throttle.email_key("not an address") == "not an address"


def test_forwarded_for_is_trusted_only_from_configured_proxies(
    settings_env: pytest.MonkeyPatch,
) -> None:
    spoofed = "198.51.100.1, 10.0.0.2"
    # No proxy configured: the peer is the client, whatever the header says.
    assert access.client_address(peer="203.0.113.9", forwarded_for=spoofed) == "203.0.113.9"
    settings_env.setenv("GPTSTUDIO_TRUSTED_PROXIES", "10.0.0.0/8, 192.0.2.1")
    get_settings.cache_clear()
    # Through the trusted proxies, the right-most untrusted hop is the client (a client can
    # prepend anything it likes on the left).
    assert access.client_address(peer="10.0.0.3", forwarded_for=spoofed) == "198.51.100.1"
    assert access.client_address(peer="192.0.2.1", forwarded_for="6.6.6.6, 198.51.100.7") == (
        "198.51.100.7"
    )
    # An untrusted peer's header is ignored; a garbage header leaves the peer.
    assert access.client_address(peer="203.0.113.9", forwarded_for=spoofed) == "203.0.113.9"
    assert access.client_address(peer="10.0.0.3", forwarded_for="not-an-ip") == "10.0.0.3"
    assert access.client_address(peer="10.0.0.3", forwarded_for="") == "10.0.0.3"
