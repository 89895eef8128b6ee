"""The launcher supervises its children, for real: ``python -m gptstudio.run`` as ``make run``
starts it (engine, both workers, web), then ``kill -9`` of the engine mid-answer and of a worker.
The cut stream ends with an OpenAI error chunk and ``[DONE]``; while the engine is down a chat
request is a 503 with ``Retry-After`` and ``/healthz`` a 200 "degraded" naming the engine; the
launcher logs the death and starts the engine again, answers come back; a killed worker is
started again and parses the next upload; the web process is the same process throughout."""

from __future__ import annotations

import asyncio
import json
import os
import re
import signal
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from gptstudio.models import Role
from gptstudio.services import account, api_key, document
from gptstudio.settings import get_settings
from tests.e2e.conftest import RunningApp, running_app
from tests.factories import publish_assistant

pytestmark = pytest.mark.slow

PASSWORD = "correct horse battery"
QUESTION = [{"role": "user", "content": "Tell me everything about bees."}]


def cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
    except OSError:
        return ""


def children_of(pid: int) -> dict[int, str]:
    """The direct children of ``pid`` and their command lines (from /proc)."""
    found: dict[int, str] = {}
    for task in Path(f"/proc/{pid}/task").glob("*"):
        for child in (task / "children").read_text().split():
            found[int(child)] = cmdline(int(child))
    return found


def launcher_pid(data_dir: Path) -> int:
    """The ``gptstudio.run`` process serving ``data_dir`` (its environment names it)."""
    for proc in Path("/proc").glob("[0-9]*"):
        if "gptstudio.run" not in cmdline(int(proc.name)):
            continue
        try:
            environ = (proc / "environ").read_bytes().split(b"\0")
        except OSError:
            continue
        if f"GPTSTUDIO_DATA_DIR={data_dir}".encode() in environ:
            return int(proc.name)
    raise AssertionError("the launcher process was not found")


def child(launcher: int, marker: str) -> int:
    pids = [pid for pid, line in children_of(launcher).items() if marker in line]
    assert len(pids) == 1, children_of(launcher)
    return pids[0]


def wait_for(predicate: object, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():  # type: ignore[operator]
        assert time.monotonic() < deadline, what
        time.sleep(0.5)


@pytest.fixture
def launched(
    settings_env: pytest.MonkeyPatch, tmp_path: Path
) -> Iterator[tuple[RunningApp, str, str, account.UserPublic, int]]:
    """The app as ``make run`` starts it, an assistant published on a random adapter of its
    tiny model, and a subscriber's API key."""
    from tests.engine.conftest import write_random_adapter

    settings = {"GPTSTUDIO_RESPONSE_CACHE_SECONDS": "0", "GPTSTUDIO_CHAT_MAX_TOKENS": "4000"}
    with running_app(tmp_path / "app" / "data", settings) as app:
        settings_env.setenv("GPTSTUDIO_DATA_DIR", str(app.data_dir))
        settings_env.setenv("GPTSTUDIO_DATABASE_URL", app.database_url)
        get_settings.cache_clear()
        base = Path(get_settings().resolved_base_model)
        adapter = write_random_adapter(base, get_settings().artifacts_dir / "v1" / "adapter", 5)
        account.register(email="root@example.com", password=PASSWORD)
        cy = account.register(email="cy@example.com", password=PASSWORD, role=Role.creator)
        published = publish_assistant(cy, adapter_path=str(adapter))
        sue = account.register(email="sue@example.com", password=PASSWORD)
        raw, _ = api_key.create_key(actor=sue, name="sdk", scopes=["chat", "models:read"])
        yield app, raw, published.slug, cy, published.assistant_id


def ask(app: RunningApp, key: str, slug: str, max_tokens: int = 8) -> httpx.Response:
    return httpx.post(
        f"{app.url}/v1/chat/completions", headers={"Authorization": f"Bearer {key}"},
        json={"model": slug, "messages": QUESTION, "max_tokens": max_tokens}, timeout=120,
    )  # fmt: skip


def test_killed_engine_and_worker_are_restarted_while_the_web_process_serves(
    launched: tuple[RunningApp, str, str, account.UserPublic, int],
) -> None:
    app, key, slug, creator, assistant_id = launched
    log = app.data_dir.parent / "app.log"
    launcher = launcher_pid(app.data_dir)
    web = child(launcher, "reflex run")
    engine = child(launcher, "-m engine")
    wait_for(lambda: ask(app, key, slug).status_code == 200, 300, "the engine never answered")
    assert httpx.get(f"{app.url}/healthz").json()["engine"] == "ok"

    # A long answer, streamed; the engine is killed once it has begun.
    lines: list[str] = []
    body = {"model": slug, "messages": QUESTION, "max_tokens": 4000, "stream": True,
            "temperature": 1.0}  # fmt: skip
    with httpx.stream(
        "POST", f"{app.url}/v1/chat/completions", headers={"Authorization": f"Bearer {key}"},
        json=body, timeout=120,
    ) as response:  # fmt: skip
        assert response.status_code == 200
        for line in response.iter_lines():  # never a broken chunked read: it would raise here
            if line:
                lines.append(line)
            if len(lines) == 3:
                os.kill(engine, signal.SIGKILL)
    assert lines[-1] == "data: [DONE]", lines[-3:]
    error = json.loads(lines[-2].removeprefix("data: "))
    assert error["error"]["code"] == "engineunavailable", error
    assert any('"content"' in line for line in lines[:-2]), "the answer never began"

    down = ask(app, key, slug)
    assert down.status_code == 503, down.text
    assert int(down.headers["retry-after"]) >= 1
    assert down.json()["error"]["code"] == "engineunavailable"
    health = httpx.get(f"{app.url}/healthz")
    assert health.status_code == 200
    assert health.json()["status"] == "degraded"
    assert health.json()["engine"].startswith("error:")

    wait_for(
        lambda: re.search(rf"the engine \(pid {engine}\) exited with code -9", log.read_text()),
        30, "the launcher did not log the engine's death",
    )  # fmt: skip
    wait_for(lambda: ask(app, key, slug).status_code == 200, 300, "no answer after the restart")
    assert httpx.get(f"{app.url}/healthz").json() == {
        "status": "ok", "database": "ok", "queue": "ok", "engine": "ok"
    }  # fmt: skip
    assert child(launcher, "-m engine") != engine
    assert child(launcher, "reflex run") == web, "the web process was restarted"

    # A worker killed: logged, started again after a second, and it parses the next upload.
    worker = child(launcher, "worker.documents_huey")
    os.kill(worker, signal.SIGKILL)
    wait_for(
        lambda: re.search(
            rf"the documents worker \(pid {worker}\) exited with code -9 after \d+ s; "
            r"restarting it in 1 s", log.read_text()
        ),
        30, "the launcher did not log the worker's death",
    )  # fmt: skip
    wait_for(
        lambda: [p for p, line in children_of(launcher).items()
                 if "worker.documents_huey" in line and p != worker],
        30, "no new worker",
    )  # fmt: skip
    info = asyncio.run(
        document.store_bytes(
            actor=creator,
            assistant_id=assistant_id,
            filename="bees.md",
            data=b"# Bees\n\nCheck the hives for varroa mites every month in summer.\n",
        )
    )
    wait_for(lambda: status(creator, assistant_id, info.id) == "parsed", 120, "never parsed")
    assert child(launcher, "reflex run") == web


def status(actor: account.UserPublic, assistant_id: int, document_id: int) -> str:
    listed = document.list_documents(actor=actor, assistant_id=assistant_id)
    return next(d.status for d in listed if d.id == document_id)
