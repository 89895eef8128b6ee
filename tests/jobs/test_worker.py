"""A real Huey worker process consumes the queue, on SQLite (embedded) and on Redis."""

from __future__ import annotations

import ast
import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from gptstudio.run import worker_command

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
