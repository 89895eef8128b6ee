"""Shared fixtures: a migrated database on real SQLite *and* real PostgreSQL, real Redis.

Every test that takes ``db`` runs twice, once per backend. PostgreSQL and Redis are the servers
on 127.0.0.1 (``.ci/run`` starts them); override with GPTSTUDIO_TEST_POSTGRES_URL and
GPTSTUDIO_TEST_REDIS_URL.
"""

from __future__ import annotations

import os
import re
import socket
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from email import message_from_bytes
from email.message import EmailMessage
from email.policy import default as default_policy
from pathlib import Path

import pytest
import redis
from alembic.config import Config
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url
from sqlmodel import SQLModel

from alembic import command
from gptstudio import cache
from gptstudio.db import engine_for
from gptstudio.settings import get_settings

ROOT = Path(__file__).resolve().parents[1]


def pytest_configure(config: pytest.Config) -> None:
    """The tests' process takes part in the request-path caches, as the app's processes do."""
    cache.install()


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Browser tests run last: they are the slowest, and nothing after them shares their loop."""
    items.sort(key=lambda item: item.get_closest_marker("e2e") is not None)


POSTGRES_URL = os.environ.get(
    "GPTSTUDIO_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test"
)
REDIS_URL = os.environ.get("GPTSTUDIO_TEST_REDIS_URL", "redis://127.0.0.1:6379/15")


def alembic_config(url: str) -> Config:
    config = Config(str(ROOT / "alembic.ini"))
    config.set_main_option("script_location", str(ROOT / "alembic"))
    config.cmd_opts = None
    config.attributes["configure_logger"] = False
    config.attributes["url"] = url
    return config


def upgrade(url: str, revision: str = "head") -> None:
    config = alembic_config(url)
    with engine_for(url).begin() as connection:
        config.attributes["connection"] = connection
        command.upgrade(config, revision)


def downgrade(url: str, revision: str = "base") -> None:
    config = alembic_config(url)
    with engine_for(url).begin() as connection:
        config.attributes["connection"] = connection
        command.downgrade(config, revision)


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture(scope="session")
def postgres_database() -> Iterator[str]:
    """A fresh, empty PostgreSQL database for this test run, dropped afterwards."""
    admin = create_engine(POSTGRES_URL, isolation_level="AUTOCOMMIT")
    name = f"gptstudio_test_{uuid.uuid4().hex[:10]}"
    try:
        with admin.connect() as connection:
            connection.execute(text(f'CREATE DATABASE "{name}"'))
    except Exception as error:
        pytest.fail(f"PostgreSQL at {POSTGRES_URL} is not reachable ({error}); run .ci/run")
    url = make_url(POSTGRES_URL).set(database=name).render_as_string(hide_password=False)
    yield url
    cache.stop_listening(url)
    engine_for(url).dispose()
    with admin.connect() as connection:
        connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()


@pytest.fixture(scope="session", params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> str:
    """A migrated database of each backend (the session's tests run once per backend)."""
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path_factory.mktemp('sqlite') / 'test.db'}"
    else:
        url = request.getfixturevalue("postgres_database")
    upgrade(url)
    return url


@pytest.fixture
def settings_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[pytest.MonkeyPatch]:
    """Settings read from a clean environment with a per-test data dir."""
    for key in list(os.environ):
        if key.startswith("GPTSTUDIO_"):
            monkeypatch.delenv(key)
    monkeypatch.setenv("GPTSTUDIO_DATA_DIR", str(tmp_path / "data"))
    get_settings.cache_clear()
    yield monkeypatch
    get_settings.cache_clear()


@pytest.fixture
def db(database_url: str, settings_env: pytest.MonkeyPatch) -> Iterator[str]:
    """The migrated database as the app's database; emptied after the test."""
    settings_env.setenv("GPTSTUDIO_DATABASE_URL", database_url)
    get_settings.cache_clear()
    yield database_url
    import gptstudio.models  # noqa: F401

    with engine_for(database_url).begin() as connection:
        for table in reversed(SQLModel.metadata.sorted_tables):
            connection.execute(table.delete())
    cache.invalidate(database_url)  # a Core DELETE: the ORM's hooks did not see it


@pytest.fixture
def redis_url() -> Iterator[str]:
    """The real Redis server, on a database number of its own, flushed around the test."""
    client = redis.Redis.from_url(REDIS_URL)
    try:
        client.flushdb()
    except redis.ConnectionError as error:
        pytest.fail(f"Redis at {REDIS_URL} is not reachable ({error}); run .ci/run")
    yield REDIS_URL
    client.flushdb()
    client.close()


@dataclass
class Mailbox:
    """Mails received by a real local SMTP server (aiosmtpd)."""

    host: str
    port: int
    messages: list[EmailMessage] = field(default_factory=list)

    def wait_for(self, to: str, *, timeout: float = 15.0) -> EmailMessage:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for message in reversed(self.messages):
                if to in str(message["To"]):
                    return message
            time.sleep(0.1)
        raise AssertionError(f"no mail to {to} arrived; got {[m['To'] for m in self.messages]}")

    def link(self, to: str, path: str) -> str:
        body = self.wait_for(to).get_content()
        match = re.search(rf"https?://\S+/{path}\?token=\S+", body)
        assert match, body
        return match.group(0)


class _Collector:
    def __init__(self, box: Mailbox) -> None:
        self.box = box

    async def handle_DATA(self, server: object, session: object, envelope: object) -> str:
        raw = envelope.content  # type: ignore[attr-defined]
        self.box.messages.append(message_from_bytes(raw, policy=default_policy))  # type: ignore[arg-type]
        return "250 OK"


@pytest.fixture(scope="session")
def smtp_server() -> Iterator[Mailbox]:
    """A real SMTP server on 127.0.0.1 that keeps every mail it receives."""
    from aiosmtpd.controller import Controller

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = int(probe.getsockname()[1])
    box = Mailbox(host="127.0.0.1", port=port)
    controller = Controller(_Collector(box), hostname="127.0.0.1", port=port)
    controller.start()
    yield box
    controller.stop()


@pytest.fixture
def mailbox(smtp_server: Mailbox, settings_env: pytest.MonkeyPatch) -> Mailbox:
    """The app's mail goes to the local SMTP server for this test."""
    smtp_server.messages.clear()
    settings_env.setenv("GPTSTUDIO_SMTP_HOST", smtp_server.host)
    settings_env.setenv("GPTSTUDIO_SMTP_PORT", str(smtp_server.port))
    settings_env.setenv("GPTSTUDIO_SMTP_SECURITY", "none")
    get_settings.cache_clear()
    return smtp_server


@pytest.fixture
def run_tasks_inline() -> Iterator[None]:
    """Huey's immediate mode: enqueued tasks run at once, in this process (in-memory queue), with
    every job body loaded as in a worker."""
    from gptstudio.jobs.worker import documents_huey, huey

    huey.immediate = documents_huey.immediate = True
    yield
    huey.immediate = documents_huey.immediate = False
