"""Request-path caches (API keys, entitlements, served versions): a cached row is used only
while no process has committed a change to it. Changes from this process, from another process
(SQLite: the generation file; PostgreSQL: NOTIFY to a listener), bulk writes, time limits, and a
lost listener (nothing cached while it is down) on both databases."""

from __future__ import annotations

import subprocess
import sys
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import text, update

from gptstudio import cache
from gptstudio.db import get_engine, session_scope, utcnow
from gptstudio.models import ApiKey, Plan, Role, Subscription
from gptstudio.services import account, api_key, assistant
from gptstudio.services.api_key import ApiKeyRefused
from gptstudio.services.entitlements import cached_entitlement, entitlement
from gptstudio.settings import get_settings

PASSWORD = "correct horse battery"
ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def sue(db: str) -> account.UserPublic:
    account.register(email="root@example.com", password=PASSWORD)
    return account.register(email="sue@example.com", password=PASSWORD)


def eventually(check: Callable[[], bool], timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, "the change never reached this process's cache"
        time.sleep(0.05)


def listening() -> None:
    """Wait for this process to listen for invalidations (PostgreSQL only)."""
    eventually(lambda: cache.generation() is not None)


def in_other_process(code: str, *, install: bool = True) -> None:
    """Run ``code`` in a fresh Python process of the app on the same database (the settings'
    env); it installs the caches' hooks where it starts, as every app process does."""
    prelude = "from gptstudio import cache\ncache.install()\n" if install else ""
    prelude += "from gptstudio.db import session_scope\nfrom gptstudio.models import *\n"
    subprocess.run([sys.executable, "-c", prelude + code], cwd=ROOT, check=True, timeout=120)


def test_a_revoked_key_is_refused_at_once_in_this_process(sue: account.UserPublic) -> None:
    raw, info = api_key.create_key(actor=sue, name="laptop", scopes=["chat"])
    listening()
    assert api_key.authenticate(raw_key=raw, scope="chat").id == sue.id
    assert api_key.authenticate_cached(raw_key=raw, scope="chat") is not None  # cached now
    before = cache.generation()
    api_key.authenticate(raw_key=raw, scope="chat")  # last_used_at: not a change that counts
    assert cache.generation() == before
    api_key.revoke_key(actor=sue, key_id=info.id)
    assert api_key.authenticate_cached(raw_key=raw, scope="chat") is None
    with pytest.raises(ApiKeyRefused, match="revoked"):
        api_key.authenticate(raw_key=raw, scope="chat")
    # An unknown key is refused every time and never cached.
    for _ in range(2):
        with pytest.raises(ApiKeyRefused, match="Incorrect API key"):
            api_key.authenticate(raw_key="gs-unknown", scope="chat")


def test_a_change_in_another_process_reaches_the_cache(sue: account.UserPublic) -> None:
    raw, info = api_key.create_key(actor=sue, name="laptop", scopes=["chat"])
    listening()
    api_key.authenticate(raw_key=raw, scope="chat")
    assert api_key.authenticate_cached(raw_key=raw, scope="chat") is not None
    in_other_process(
        "with session_scope() as session:\n"
        f"    session.get(ApiKey, {info.id}).revoked_at = __import__('gptstudio.db').db.utcnow()\n"
    )
    eventually(lambda: api_key.authenticate_cached(raw_key=raw, scope="chat") is None)
    with pytest.raises(ApiKeyRefused, match="revoked"):
        api_key.authenticate(raw_key=raw, scope="chat")


def test_a_new_subscription_changes_the_entitlement_at_once(sue: account.UserPublic) -> None:
    creator = account.register(email="cy@example.com", password=PASSWORD, role=Role.creator)
    bees = assistant.create_assistant(actor=creator, name="Bee Mentor").id
    with session_scope() as session:
        session.add(Plan(assistant_id=bees, key="free", name="Free", included_tokens=100))
        pro = Plan(assistant_id=bees, key="pro", name="Pro", monthly_price_cents=900,
                   included_tokens=5000)  # fmt: skip
        session.add(pro)
    listening()
    assert entitlement(user_id=sue.id, assistant_id=bees).plan_key == "free"
    cached = cached_entitlement(user_id=sue.id, assistant_id=bees)
    assert cached is not None and cached.tokens_per_period == 100
    with session_scope() as session:
        session.add(Subscription(user_id=sue.id, assistant_id=bees, plan_id=pro.id, tier="pro",
                                 status="active"))  # fmt: skip
    assert cached_entitlement(user_id=sue.id, assistant_id=bees) is None
    assert entitlement(user_id=sue.id, assistant_id=bees).plan_key == "pro"


def test_a_grace_period_ends_on_time_though_cached(
    sue: account.UserPublic, settings_env: pytest.MonkeyPatch
) -> None:
    settings_env.setenv("GPTSTUDIO_BILLING_GRACE_DAYS", "1")
    get_settings.cache_clear()
    creator = account.register(email="cy@example.com", password=PASSWORD, role=Role.creator)
    bees = assistant.create_assistant(actor=creator, name="Bee Mentor").id
    with session_scope() as session:
        session.add(Plan(assistant_id=bees, key="free", name="Free", included_tokens=100))
        pro = Plan(assistant_id=bees, key="pro", name="Pro", monthly_price_cents=900)
        session.add(pro)
        session.flush()
        session.add(Subscription(
            user_id=sue.id, assistant_id=bees, plan_id=pro.id, tier="pro", status="past_due",
            past_due_since=utcnow() - timedelta(days=1) + timedelta(seconds=1.5),
        ))  # fmt: skip
    listening()
    assert entitlement(user_id=sue.id, assistant_id=bees).reason == "grace period"
    assert cached_entitlement(user_id=sue.id, assistant_id=bees) is not None
    time.sleep(1.6)
    assert cached_entitlement(user_id=sue.id, assistant_id=bees) is None
    after = entitlement(user_id=sue.id, assistant_id=bees)
    assert after.plan_key == "free" and "payment failed" in after.reason


def test_bulk_writes_need_invalidate(sue: account.UserPublic) -> None:
    raw, _ = api_key.create_key(actor=sue, name="laptop", scopes=["chat"])
    listening()
    api_key.authenticate(raw_key=raw, scope="chat")
    with session_scope() as session:  # a Core UPDATE: the session's hooks never see it
        session.execute(update(ApiKey).values(revoked_at=utcnow()))
    assert api_key.authenticate_cached(raw_key=raw, scope="chat") is not None
    cache.invalidate()
    assert api_key.authenticate_cached(raw_key=raw, scope="chat") is None
    with pytest.raises(ApiKeyRefused, match="revoked"):
        api_key.authenticate(raw_key=raw, scope="chat")


def test_off_when_cache_seconds_is_zero(
    sue: account.UserPublic, settings_env: pytest.MonkeyPatch
) -> None:
    settings_env.setenv("GPTSTUDIO_CACHE_SECONDS", "0")
    get_settings.cache_clear()
    raw, _ = api_key.create_key(actor=sue, name="laptop", scopes=["chat"])
    api_key.authenticate(raw_key=raw, scope="chat")
    assert api_key.authenticate_cached(raw_key=raw, scope="chat") is None


def test_nothing_is_cached_while_the_listener_is_down(sue: account.UserPublic) -> None:
    if get_engine().dialect.name != "postgresql":
        pytest.skip("SQLite announces changes in a file: there is no listener to lose")
    raw, info = api_key.create_key(actor=sue, name="laptop", scopes=["chat"])
    listening()
    api_key.authenticate(raw_key=raw, scope="chat")
    assert api_key.authenticate_cached(raw_key=raw, scope="chat") is not None
    with get_engine().begin() as connection:  # the listener's connection is cut
        connection.execute(text(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
            "WHERE query LIKE 'LISTEN gptstudio_cache%' AND datname = current_database() "
            "AND pid <> pg_backend_pid()"
        ))  # fmt: skip
    eventually(lambda: cache.generation() is None, timeout=5)
    # Until it listens again (a notification could be missed meanwhile) nothing comes from the
    # cache, and a revocation made meanwhile by another process is seen.
    assert api_key.authenticate_cached(raw_key=raw, scope="chat") is None
    in_other_process(
        "with session_scope() as session:\n"
        f"    session.get(ApiKey, {info.id}).revoked_at = __import__('gptstudio.db').db.utcnow()\n"
    )
    listening()
    assert api_key.authenticate_cached(raw_key=raw, scope="chat") is None
    with pytest.raises(ApiKeyRefused, match="revoked"):
        api_key.authenticate(raw_key=raw, scope="chat")


def test_one_listener_however_many_threads_ask(sue: account.UserPublic) -> None:
    if get_engine().dialect.name != "postgresql":
        pytest.skip("only PostgreSQL has a listener")
    cache.stop_listening(get_settings().database_url)  # start afresh: no listener yet
    cache._databases.pop(get_settings().database_url, None)
    with ThreadPoolExecutor(8) as pool:
        list(pool.map(lambda _: cache.generation(), range(64)))
    listening()
    listeners = [t for t in threading.enumerate() if t.name == "gptstudio-cache-listener"]
    assert len(listeners) == 1


def test_a_process_that_never_installs_caches_nothing(sue: account.UserPublic) -> None:
    """Without the hooks its own commits would go unseen: it reads the database every time."""
    raw, info = api_key.create_key(actor=sue, name="laptop", scopes=["chat"])
    in_other_process(
        "from gptstudio.services import api_key\n"
        f"assert api_key.authenticate(raw_key={raw!r}, scope='chat').id == {sue.id}\n"
        f"assert api_key.authenticate_cached(raw_key={raw!r}, scope='chat') is None\n"
        "from gptstudio import cache\nassert cache.generation() is None\n"
        "with session_scope() as session:\n"
        f"    session.get(ApiKey, {info.id}).revoked_at = __import__('gptstudio.db').db.utcnow()\n"
        "try:\n"
        f"    api_key.authenticate(raw_key={raw!r}, scope='chat')\n"
        "except api_key.ApiKeyRefused:\n"
        "    pass\n"
        "else:\n"
        "    raise AssertionError('a revoked key was let in')\n",
        install=False,
    )
