"""A real Huey worker process consumes the queue, on SQLite (embedded) and on Redis."""

from __future__ import annotations

import ast
import os
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from gptstudio.run import documents_worker_command, worker_command

ROOT = Path(__file__).resolve().parents[2]
ENQUEUE = (
    "from gptstudio.jobs.tasks import ping; print(ping('hello').get(blocking=True, timeout=60))"
)


@pytest.fixture(params=["sqlite", "redis"])
def broker_env(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[dict[str, str]]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("GPTSTUDIO_")}
    env["GPTSTUDIO_DATA_DIR"] = str(tmp_path / "data")
    if request.param == "redis":
        env["GPTSTUDIO_REDIS_URL"] = request.getfixturevalue("redis_url")
        env["GPTSTUDIO_QUEUE_NAME"] = f"test-{uuid.uuid4().hex[:8]}"  # no other consumer sees it
    yield env


def test_worker_runs_enqueued_tasks(broker_env: dict[str, str]) -> None:
    worker = subprocess.Popen(worker_command(), cwd=ROOT, env=broker_env)
    try:
        done = subprocess.run(
            [sys.executable, "-c", ENQUEUE],
            cwd=ROOT,
            env=broker_env,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
    finally:
        worker.terminate()
        worker.wait(timeout=30)
    assert done.returncode == 0, done.stderr[-2000:]
    value = ast.literal_eval(done.stdout.strip().splitlines()[-1])
    assert value["payload"] == "hello"
    assert value["pid"] == worker.pid


def test_uploads_and_curation_have_their_own_queue() -> None:
    from gptstudio.jobs import tasks
    from gptstudio.jobs.queue import documents_huey, huey

    assert tasks.parse_document_task.huey is documents_huey
    assert tasks.run_curation_task.huey is documents_huey
    assert tasks.train_task.huey is huey
    assert documents_huey.name != huey.name
    assert documents_worker_command()[-3:] == ["gptstudio.jobs.worker.documents_huey", "-w", "2"]


def test_parsing_never_waits_behind_training(
    db: str, broker_env: dict[str, str], tmp_path: Path
) -> None:
    """A training job sits in its queue with no training worker free; the documents worker that
    `gptstudio.run` starts beside it parses an upload all the same."""
    from gptstudio.db import session_scope
    from gptstudio.models import Document, Role
    from gptstudio.services import account, assistant

    creator = account.register(email="cy@example.com", password="correct horse", role=Role.creator)
    bees = assistant.create_assistant(actor=creator, name="Bees").id
    stored = tmp_path / "bees.md"
    stored.write_text("# Bees\n\nBees make honey from nectar.\n", encoding="utf-8")
    with session_scope() as session:
        row = Document(
            owner_id=creator.id, assistant_id=bees, filename="bees.md", size_bytes=40,
            sha256="0" * 64, storage_path=str(stored), status="uploaded",
        )  # fmt: skip
        session.add(row)
        session.flush()
        document_id = row.id
    env = {**broker_env, "GPTSTUDIO_DATABASE_URL": db}
    enqueue = (
        "from gptstudio.jobs.tasks import parse_document_task, train_task; "
        f"train_task(999999); parse_document_task({document_id})"
    )
    worker = subprocess.Popen(documents_worker_command(), cwd=ROOT, env=env)
    try:
        subprocess.run([sys.executable, "-c", enqueue], cwd=ROOT, env=env, check=True, timeout=120)
        deadline = time.monotonic() + 90
        status = ""
        while time.monotonic() < deadline and status != "parsed":
            time.sleep(0.5)
            with session_scope() as session:
                status = session.get(Document, document_id).status  # type: ignore[union-attr]
    finally:
        worker.terminate()
        worker.wait(timeout=30)
    assert status == "parsed"
