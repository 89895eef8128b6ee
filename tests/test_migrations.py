"""Migrations: upgrade an empty database to head and back to base; head matches the models."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import inspect
from sqlmodel import SQLModel

import gptstudio.models  # noqa: F401
from gptstudio.db import engine_for
from tests.conftest import downgrade, upgrade


@pytest.fixture(params=["sqlite", "postgresql"])
def empty_database(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'empty.db'}"
    else:
        yield request.getfixturevalue("postgres_database")


def test_upgrade_to_head_and_downgrade_to_base(empty_database: str) -> None:
    engine = engine_for(empty_database)
    downgrade(empty_database, "base")  # a no-op on an empty database
    upgrade(empty_database, "head")
    tables = set(inspect(engine).get_table_names())
    assert set(SQLModel.metadata.tables) <= tables

    with engine.connect() as connection:
        context = MigrationContext.configure(connection, opts={"compare_type": True})
        diff = compare_metadata(context, SQLModel.metadata)
    assert diff == [], (
        f"models and migrations disagree; run alembic revision --autogenerate: {diff}"
    )

    downgrade(empty_database, "base")
    assert set(inspect(engine).get_table_names()) <= {"alembic_version"}
    upgrade(empty_database, "head")  # and up again: downgrade left nothing behind
