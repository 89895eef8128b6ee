"""Shared fixtures: a migrated database on real SQLite *and* real PostgreSQL, real Redis.

Every test that takes ``db`` runs twice, once per backend. PostgreSQL and Redis are the servers
on 127.0.0.1 (``.ci/run`` starts them); override with GPTSTUDIO_TEST_POSTGRES_URL and
GPTSTUDIO_TEST_REDIS_URL.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
from alembic.config import Config
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url
from sqlmodel import SQLModel

from alembic import command
from gptstudio.db import engine_for
from gptstudio.settings import get_settings

ROOT = Path(__file__).resolve().parents[1]
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
