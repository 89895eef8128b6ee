"""The training page's preview chat against a real engine on the tiny model: a draft version and
the base answer side by side, for the owner only, with nothing metered; an engine that is down
gives each column its reason instead of an error page."""

from __future__ import annotations

import asyncio
from pathlib import Path

import httpx
import pytest
from sqlmodel import select

from gptstudio.db import session_scope
from gptstudio.errors import InvalidInput, NotFound
from gptstudio.models import ModelVersion, Role, UsageEvent
from gptstudio.services import account, assistant, preview
from gptstudio.settings import get_settings
from tests.api.test_chat import served_model  # noqa: F401 (fixture: a real engine)
from tests.conftest import free_port

PASSWORD = "correct horse battery"


@pytest.fixture
def draft(
    db: str,
    served_model: tuple[str, Path],  # noqa: F811 (the imported fixture)
    settings_env: pytest.MonkeyPatch,
) -> tuple[account.UserPublic, int, str]:
    url, artifacts = served_model
    settings_env.setenv("GPTSTUDIO_ENGINE_URL", url)
    get_settings.cache_clear()
    account.register(email="root@example.com", password=PASSWORD)
    cy = account.register(email="cy@example.com", password=PASSWORD, role=Role.creator)
    made = assistant.create_assistant(actor=cy, name="Hive Draft")
    with session_scope() as session:
        version = ModelVersion(
            assistant_id=made.id,
            version=1,
            base_model="tiny",
            adapter_path=str(artifacts / "jobs" / "1" / "adapter"),
        )  # fmt: skip  (a draft: never published)
        session.add(version)
        session.flush()
        return cy, version.id or 0, url


def test_a_draft_and_the_base_answer_side_by_side_unmetered(
    draft: tuple[account.UserPublic, int, str],
) -> None:
    cy, version_id, url = draft
    tuned, base = asyncio.run(
        preview.side_by_side(actor=cy, version_id=version_id, turns=[], question="Hello?")
    )
    assert tuned.error == "" and base.error == ""
    assert isinstance(tuned.text, str) and isinstance(base.text, str)
    models = httpx.get(f"{url}/v1/models").json()["data"]
    assert "hive-draft-v1" in {m["id"] for m in models}  # the draft's adapter was loaded
    turns = [{"question": "Hello?", "tuned": tuned.text or "…", "base": base.text or "…"}]
    again, _ = asyncio.run(
        preview.side_by_side(actor=cy, version_id=version_id, turns=turns, question="More?")
    )
    assert again.error == ""
    with session_scope() as session:
        assert session.exec(select(UsageEvent)).all() == []  # not a subscriber's traffic


def test_only_the_owner_previews_and_a_question_is_needed(
    draft: tuple[account.UserPublic, int, str],
) -> None:
    cy, version_id, _url = draft
    other = account.register(email="eve@example.com", password=PASSWORD, role=Role.creator)
    with pytest.raises(NotFound):
        asyncio.run(
            preview.side_by_side(actor=other, version_id=version_id, turns=[], question="Hi?")
        )
    with pytest.raises(NotFound):
        asyncio.run(preview.side_by_side(actor=cy, version_id=10**6, turns=[], question="Hi?"))
    with pytest.raises(InvalidInput, match="Type a question"):
        asyncio.run(preview.side_by_side(actor=cy, version_id=version_id, turns=[], question=" "))


def test_an_engine_that_is_down_gives_each_column_its_reason(
    draft: tuple[account.UserPublic, int, str], settings_env: pytest.MonkeyPatch
) -> None:
    cy, version_id, _url = draft
    settings_env.setenv("GPTSTUDIO_ENGINE_URL", f"http://127.0.0.1:{free_port()}")
    get_settings.cache_clear()
    tuned, base = asyncio.run(
        preview.side_by_side(actor=cy, version_id=version_id, turns=[], question="Hello?")
    )
    assert "not reachable" in tuned.error and "not reachable" in base.error
