"""Exporting a model version: a download (a tar of the merged model) for its owner only, and a
second export works (it serves the same merged model again)."""

from __future__ import annotations

import io
import tarfile
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from gptstudio.api import create_api
from gptstudio.db import session_scope
from gptstudio.errors import NotFound
from gptstudio.jobs.training import export_version
from gptstudio.models import ModelVersion, Role
from gptstudio.services import account, assistant, training
from tests.trainer.conftest import facts, trained  # noqa: F401 (fixtures)

PASSWORD = "correct horse battery"


@pytest.mark.slow
def test_export_is_a_repeatable_download_for_the_owner(
    db: str, run_tasks_inline: None, tiny_model: Path, request: pytest.FixtureRequest
) -> None:
    run: Any = request.getfixturevalue("trained")
    cy = account.register(email="cy@example.com", password=PASSWORD, role=Role.creator)
    account.register(email="eve@example.com", password=PASSWORD, role=Role.creator)
    bees = assistant.create_assistant(actor=cy, name="Bees").id
    with session_scope() as session:
        row = ModelVersion(
            assistant_id=bees, version=1, base_model=str(tiny_model),
            adapter_path=str(run.adapter_dir),
        )  # fmt: skip
        session.add(row)
        session.flush()
        version_id = row.id or 0
    with pytest.raises(NotFound, match="Export it first"):
        training.export_archive(actor=cy, version_id=version_id)

    training.request_export(actor=cy, version_id=version_id)  # runs inline
    first = training.export_archive(actor=cy, version_id=version_id)
    training.request_export(actor=cy, version_id=version_id)  # a second export works too
    assert training.export_archive(actor=cy, version_id=version_id) == first
    export_version(version_id)  # and so does a retry of the job itself

    client = TestClient(create_api())
    url = f"/api/model-versions/{version_id}/export.tar"
    owner = {"gptstudio_session": account.login(email="cy@example.com", password=PASSWORD).token}
    other = {"gptstudio_session": account.login(email="eve@example.com", password=PASSWORD).token}
    download = client.get(url, cookies=owner)
    assert download.status_code == 200
    assert download.headers["content-disposition"].startswith("attachment")
    assert 'filename="assistant-' in download.headers["content-disposition"]
    with tarfile.open(fileobj=io.BytesIO(download.content)) as archive:
        names = archive.getnames()
    assert any(n.endswith("/config.json") for n in names)
    assert any(n.endswith("/tokenizer.json") for n in names)
    assert all(not n.startswith("/") and ".." not in n for n in names)
    assert client.get(url, cookies=other).status_code == 404
    assert client.get(url).status_code == 401
