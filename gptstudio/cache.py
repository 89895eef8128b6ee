"""Request-path caches: read-mostly rows every chat request needs (its API key, the caller's
entitlement, the version that answers) kept in the process, and dropped as soon as any process
commits a change to the tables behind them.

Reading them costs several queries per request; at a few hundred requests in flight that alone
is most of the web process's CPU. A cached answer is used only while its *generation* is
current. A commit that writes a watched table (:data:`WATCHED`, through the ORM: SQLAlchemy
session events catch it) moves the generation on:

* in the committing process at once (``after_commit``);
* in every other process: on PostgreSQL a ``NOTIFY`` sent in the same transaction (so only a
  commit delivers it) reaches a ``LISTEN`` thread each process runs; while that thread is not
  connected nothing is cached, so a missed notification can never serve a stale row. On SQLite
  (one machine) the commit appends a byte to a file next to the database, which readers
  ``stat`` once per lookup.

An entry also lives at most ``GPTSTUDIO_CACHE_SECONDS`` (0 turns caching off) and never past
its own deadline (an entitlement ends with its period or grace window). Bulk Core statements
(``UPDATE``/``DELETE`` without the ORM) bypass the session events: call :func:`invalidate`.

A process takes part by calling :func:`install` where it starts (``gptstudio.api.create_api``
for the web and API processes, the worker's start-up hook, the tests' ``conftest``): it adds the
session events that announce this process's commits, and turns lookups on (the first one starts
the ``LISTEN`` thread on PostgreSQL). A process that never installs caches nothing, so it can
never serve a row its own commits have changed; but its commits are not announced either, so
every process that writes the watched tables through the ORM must install.
"""

from __future__ import annotations

import logging
import os
import threading
import time
import uuid
from collections.abc import Callable, Hashable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import lru_cache
from pathlib import Path
from typing import Any, Generic, TypeVar

import psycopg
from sqlalchemy import event, inspect
from sqlalchemy.engine import Engine, make_url
from sqlalchemy.orm import Session

from gptstudio.db import engine_for
from gptstudio.settings import get_settings

log = logging.getLogger(__name__)
CHANNEL = "gptstudio_cache"
MAX_ENTRIES = 100_000  # per cache; past it the cache starts again empty
SQLITE_FILE_LIMIT = 65_536  # the generation file is started afresh (a new inode) past this

# Tables whose rows the caches hold, with the columns whose changes do not matter to them
# (written on every use: they would drop every cache all the time).
WATCHED: dict[str, frozenset[str]] = {
    "users": frozenset({"mfa_last_step", "stripe_customer_id"}),
    "api_keys": frozenset({"last_used_at"}),
    "assistants": frozenset(),
    "model_versions": frozenset(),
    "plans": frozenset(),
    "subscriptions": frozenset(),
}

PROCESS = uuid.uuid4().hex  # the NOTIFY payload: a listener skips its own process's commits
T = TypeVar("T")
MISSING: Any = object()


# --- generations --------------------------------------------------------------------------


class _Listener(threading.Thread):
    """``LISTEN`` on one PostgreSQL database; ``epoch`` moves on every notification and every
    (re)connection; ``connected`` is false while notifications could be missed."""

    def __init__(self, url: str) -> None:
        super().__init__(daemon=True, name="gptstudio-cache-listener")
        self.conninfo = make_url(url).set(drivername="postgresql").render_as_string(False)
        self.epoch = 0
        self.connected = False
        self.stopping = threading.Event()

    def run(self) -> None:
        pause = 0.5
        while not self.stopping.is_set():
            try:
                with psycopg.connect(
                    self.conninfo, autocommit=True, connect_timeout=5, keepalives=1,
                    keepalives_idle=10, keepalives_interval=5, keepalives_count=3,
                ) as connection:  # fmt: skip
                    connection.execute(f"LISTEN {CHANNEL}")
                    self.epoch += 1
                    self.connected = True
                    pause = 0.5
                    while not self.stopping.is_set():
                        for notification in connection.notifies(timeout=1.0):
                            if notification.payload != PROCESS:  # ours: counted at commit
                                self.epoch += 1
            except psycopg.Error as error:
                if not self.stopping.is_set() and pause <= 0.5:  # once per outage
                    log.warning("cache: listener for invalidations lost (%s); retrying", error)
            finally:
                self.connected = False
                self.epoch += 1
            self.stopping.wait(pause)
            pause = min(pause * 2, 30.0)


@dataclass
class _Database:
    """Generation state of one database, as this process sees it."""

    url: str
    local: int = 0
    file: Path | None = None  # SQLite
    listener: _Listener | None = None  # PostgreSQL
    postgres: bool = False
    dropped: bool = False  # the database is going away: no listener any more
    lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def token(self) -> Hashable | None:
        """The current generation; ``None`` when it cannot be known (do not cache)."""
        if self.postgres:
            if self.dropped:
                return None
            listener = self.listener
            if listener is None or not listener.is_alive():
                with self.lock:  # one listener, though several threads ask at once
                    if self.dropped:
                        return None
                    if self.listener is None or not self.listener.is_alive():
                        self.listener = _Listener(self.url)
                        self.listener.start()
                    listener = self.listener
            return (self.local, listener.epoch) if listener.connected else None
        if self.file is None:
            return self.local
        try:
            stat = os.stat(self.file)
        except FileNotFoundError:
            return (self.local, 0, 0, 0)
        return (self.local, stat.st_ino, stat.st_size, stat.st_mtime_ns)

    def announce(self) -> None:
        """Tell the other processes of this machine (SQLite); PostgreSQL uses ``NOTIFY``."""
        if self.file is None:
            return
        try:
            if self.file.exists() and self.file.stat().st_size >= SQLITE_FILE_LIMIT:
                fresh = self.file.with_name(f"{self.file.name}.{os.getpid()}")
                fresh.write_bytes(b".")
                os.replace(fresh, self.file)
            else:
                with self.file.open("ab") as out:
                    out.write(b".")
        except OSError as error:
            log.warning("cache: could not announce a change in %s (%s)", self.file, error)


_databases: dict[str, _Database] = {}
_databases_lock = threading.Lock()


@lru_cache(maxsize=32)
def _normal(url: str) -> str:
    return make_url(url).render_as_string(hide_password=False)


def _database(url: str) -> _Database:
    key = _normal(url)
    found = _databases.get(key)
    if found is not None:
        return found
    with _databases_lock:
        if key not in _databases:
            parsed = make_url(key)
            state = _Database(key)
            if parsed.get_backend_name() == "postgresql":
                state.postgres = True
            elif parsed.database and parsed.database != ":memory:":
                state.file = Path(f"{parsed.database}-cache-generation")
            _databases[key] = state
        return _databases[key]


def _after_fork() -> None:
    """A forked worker is a process of its own: its own NOTIFY payload, listener and caches."""
    global PROCESS, _databases_lock
    PROCESS = uuid.uuid4().hex
    _databases_lock = threading.Lock()
    _databases.clear()
    clear_all()


os.register_at_fork(after_in_child=_after_fork)


def generation(url: str | None = None) -> Hashable | None:
    """The current generation of the database (the configured one by default); ``None`` (do
    not cache) until :func:`install` is called: this process's commits would go unseen."""
    if not _installed:
        return None
    return _database(url or get_settings().database_url).token()


def invalidate(url: str | None = None) -> None:
    """Drop every cached row of the database in this process and in the others (for writes
    that bypass the ORM's session events)."""
    state = _database(url or get_settings().database_url)
    state.local += 1
    if state.postgres:
        with engine_for(state.url).begin() as connection:
            connection.exec_driver_sql(f"NOTIFY {CHANNEL}, '{PROCESS}'")
    state.announce()


def stop_listening(url: str) -> None:
    """Stop the listener of a database about to be dropped (tests, benchmarks)."""
    state = _database(url)
    with state.lock:
        state.dropped = True
    if state.listener is not None:
        state.listener.stopping.set()
        state.listener.join(timeout=5)


# --- what the ORM writes -------------------------------------------------------------------

_FLAG = "gptstudio_cache_changed"


def _changes_watched(session: Session) -> bool:
    for obj in (*session.new, *session.deleted):
        if getattr(obj, "__tablename__", None) in WATCHED:
            return True
    for obj in session.dirty:
        ignored = WATCHED.get(getattr(obj, "__tablename__", ""))
        if ignored is None:
            continue
        state = inspect(obj)
        if any(a.key not in ignored and a.history.has_changes() for a in state.attrs):
            return True
    return False


def _after_flush(session: Session, _context: Any) -> None:
    if session.info.get(_FLAG) or not _changes_watched(session):
        return
    session.info[_FLAG] = True
    connection = session.connection()
    if connection.dialect.name == "postgresql":
        # Delivered only if this commits; this process counts it itself, after the commit.
        connection.exec_driver_sql(f"NOTIFY {CHANNEL}, '{PROCESS}'")


def _after_commit(session: Session) -> None:
    if not session.info.pop(_FLAG, False):
        return
    bind = session.get_bind()
    engine = bind if isinstance(bind, Engine) else bind.engine
    url = engine.url.render_as_string(hide_password=False)
    state = _database(url)
    state.local += 1
    state.announce()


def _after_rollback(session: Session, _previous: Any) -> None:
    session.info.pop(_FLAG, None)


_HOOKS = (
    ("after_flush", _after_flush),
    ("after_commit", _after_commit),
    ("after_soft_rollback", _after_rollback),
)
_installed = False


def install() -> None:
    """Make this process take part: announce its commits to the watched tables (to itself and
    to the other processes) and use the caches. Idempotent; call it once where a process
    starts, before it serves or writes anything."""
    global _installed
    for name, hook in _HOOKS:
        if not event.contains(Session, name, hook):
            event.listen(Session, name, hook)
    _installed = True


# --- caches --------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Entry(Generic[T]):
    token: Hashable
    expires: float  # time.monotonic()
    value: T


class Memo(Generic[T]):
    """A per-process cache of one kind of row, keyed per database."""

    def __init__(self, name: str) -> None:
        self.name = name
        self._entries: dict[tuple[str, Hashable], _Entry[T]] = {}

    def cached(self, key: Hashable) -> T:
        """The cached value, or :data:`MISSING` (never loads: safe on the event loop)."""
        settings = get_settings()
        if settings.cache_seconds <= 0:
            return MISSING
        entry = self._entries.get((settings.database_url, key))
        if entry is None or entry.expires <= time.monotonic():
            return MISSING
        if entry.token != generation(settings.database_url):
            return MISSING
        return entry.value

    def get(
        self, key: Hashable, load: Callable[[], T], *, until: Callable[[T], datetime | None] = (
            lambda _value: None
        ),
    ) -> T:  # fmt: skip
        """The cached value, or ``load()``'s, kept until the generation moves, the entry's time
        is up or ``until(value)`` (a wall-clock deadline) passes."""
        found = self.cached(key)
        if found is not MISSING:
            return found
        settings = get_settings()
        if settings.cache_seconds <= 0:
            return load()
        token = generation(settings.database_url)  # read before loading: a change meanwhile
        value = load()  # leaves this entry outdated, never a stale one current
        if token is None:
            return value
        lifetime = settings.cache_seconds
        deadline = until(value)
        if deadline is not None:
            lifetime = min(lifetime, (deadline - datetime.now(UTC)).total_seconds())
        if lifetime > 0:
            if len(self._entries) >= MAX_ENTRIES:
                self._entries.clear()
            self._entries[(settings.database_url, key)] = _Entry(
                token, time.monotonic() + lifetime, value
            )
        return value

    def replace(self, key: Hashable, value: T) -> None:
        """Change a cached value in place (this process wrote the change itself, outside the
        watched columns), keeping its generation and lifetime; nothing when it is not cached."""
        full = (get_settings().database_url, key)
        entry = self._entries.get(full)
        if entry is not None:
            self._entries[full] = _Entry(entry.token, entry.expires, value)

    def clear(self) -> None:
        self._entries.clear()


_memos: list[Memo[Any]] = []


def memo(name: str) -> Memo[Any]:
    """A new cache, registered so that :func:`clear_all` empties it too."""
    made: Memo[Any] = Memo(name)
    _memos.append(made)
    return made


def clear_all() -> None:
    """Empty every cache of this process (tests that rewrite a database wholesale)."""
    for each in _memos:
        each.clear()
