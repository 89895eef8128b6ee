"""OpenAI's fine-tuning API with the official ``openai`` SDK: files, jobs, events, checkpoints and
the ``ft:`` model in chat, end to end on the tiny model through the real queue (a Huey worker
process), trainer, evaluation and engine; and the refusals, in OpenAI's error shape."""

from __future__ import annotations

import asyncio
import io
import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest
from sqlmodel import select

from gptstudio.api import create_api
from gptstudio.db import session_scope
from gptstudio.models import Assistant, Dataset, Role, TrainingJob
from gptstudio.pages.training.state import _job_row
from gptstudio.services import account, api_key, fine_tuning, training
from gptstudio.settings import get_settings
from tests.conftest import free_port
from tests.trainer.conftest import FACTS, chat

PASSWORD = "correct horse battery"
ROOT = Path(__file__).resolve().parents[2]


def jsonl(records: list[dict[str, Any]]) -> bytes:
    return "".join(json.dumps(r) + "\n" for r in records).encode()


TRAINING = jsonl([chat(q, a) for q, a in FACTS * 2])
VALIDATION = jsonl([chat(q, a) for q, a in FACTS[:3]])


@pytest.fixture(scope="module")
def tiny_llama(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The tiny model in a folder named as the installation names it (``tiny-llama``)."""
    from trainer.tiny import build_tiny_model

    return build_tiny_model(tmp_path_factory.mktemp("models") / "tiny-llama")


@pytest.fixture
def creator(
    db: str, tiny_llama: Path, settings_env: pytest.MonkeyPatch
) -> tuple[account.UserPublic, str]:
    settings_env.setenv("GPTSTUDIO_BASE_MODEL", str(tiny_llama))
    get_settings.cache_clear()
    account.register(email="root@example.com", password=PASSWORD)
    cy = account.register(email="cy@example.com", password=PASSWORD, role=Role.creator)
    raw, _ = api_key.create_key(actor=cy, name="sdk", scopes=["fine_tuning", "chat", "models:read"])
    return cy, raw


def sdk(key: str) -> openai.AsyncOpenAI:
    transport = httpx.ASGITransport(app=create_api())
    client = httpx.AsyncClient(transport=transport, base_url="http://studio.test")
    return openai.AsyncOpenAI(
        api_key=key, base_url="http://studio.test/v1", http_client=client, max_retries=0
    )


def upload(client: openai.AsyncOpenAI, data: bytes, name: str = "train.jsonl") -> Any:
    return client.files.create(file=(name, io.BytesIO(data)), purpose="fine-tune")


# --- end to end ---------------------------------------------------------------------------


def _start(command: list[str], env: dict[str, str]) -> subprocess.Popen[bytes]:
    return subprocess.Popen(command, cwd=ROOT, env=env, start_new_session=True)


def _stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()


def _worker_env(db: str, tiny_llama: Path) -> dict[str, str]:
    """A worker on the queue this process enqueues into, with this test's files and database."""
    from huey.storage import RedisStorage, SqliteStorage

    from gptstudio.jobs.queue import huey

    settings = get_settings()
    env = {k: v for k, v in os.environ.items() if not k.startswith("GPTSTUDIO_")}
    env.update(
        GPTSTUDIO_DATABASE_URL=db, GPTSTUDIO_BASE_MODEL=str(tiny_llama),
        GPTSTUDIO_ARTIFACTS_DIR=str(settings.artifacts_dir.resolve()),
        GPTSTUDIO_QUEUE_NAME=huey.name, OMP_NUM_THREADS="1",
    )  # fmt: skip
    if isinstance(huey.storage, SqliteStorage):
        env["GPTSTUDIO_DATA_DIR"] = str(Path(huey.storage.filename).resolve().parent)
    else:
        assert isinstance(huey.storage, RedisStorage)
        kwargs = huey.storage.conn.connection_pool.connection_kwargs
        env["GPTSTUDIO_REDIS_URL"] = (
            f"redis://{kwargs.get('host', '127.0.0.1')}:{kwargs.get('port', 6379)}"
            f"/{kwargs.get('db', 0)}"
        )
        env["GPTSTUDIO_DATA_DIR"] = str(settings.data_dir.resolve())
    return env


@pytest.fixture
def services(
    creator: tuple[account.UserPublic, str], db: str, tiny_llama: Path,
    settings_env: pytest.MonkeyPatch,
) -> Iterator[None]:  # fmt: skip
    """A real engine on the tiny model (adapters from this test's artifacts) and a real queue
    worker, as ``make run`` starts them."""
    from gptstudio.jobs.queue import huey

    huey.flush()  # nothing another test left behind
    artifacts = get_settings().artifacts_dir.resolve()
    artifacts.mkdir(parents=True, exist_ok=True)
    port = free_port()
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    engine = _start(
        [sys.executable, "-m", "engine", "--base", str(tiny_llama), "--adapters-dir",
         str(artifacts), "--port", str(port), "--max-concurrent", "2"], env,
    )  # fmt: skip
    worker = _start(
        [sys.executable, "-m", "huey.bin.huey_consumer", "gptstudio.jobs.worker.huey", "-w", "1"],
        _worker_env(db, tiny_llama),
    )
    try:
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 120
        while True:
            try:
                urllib.request.urlopen(f"{url}/healthz", timeout=2)
                break
            except OSError:
                assert engine.poll() is None and time.monotonic() < deadline, "no engine"
                time.sleep(0.5)
        settings_env.setenv("GPTSTUDIO_ENGINE_URL", url)
        get_settings.cache_clear()
        yield
    finally:
        _stop(worker)
        _stop(engine)
        huey.flush()


async def _wait(client: openai.AsyncOpenAI, job_id: str, *, until: set[str]) -> Any:
    seen = []
    deadline = time.monotonic() + 600
    while True:
        job = await client.fine_tuning.jobs.retrieve(job_id)
        if not seen or seen[-1] != job.status:
            seen.append(job.status)
        if job.status in until:
            return job, seen
        assert time.monotonic() < deadline, f"the job stayed {job.status} ({seen})"
        await asyncio.sleep(0.5)


def test_the_openai_sdk_fine_tunes_and_chats_end_to_end(
    creator: tuple[account.UserPublic, str], services: None
) -> None:
    cy, key = creator

    async def scenario() -> None:
        client = sdk(key)
        training_file = await upload(client, TRAINING)
        assert training_file.object == "file" and training_file.id.startswith("file-")
        assert training_file.purpose == "fine-tune" and training_file.bytes == len(TRAINING)
        validation_file = await upload(client, VALIDATION, "valid.jsonl")
        content = await client.files.content(training_file.id)
        assert content.read() == TRAINING

        job = await client.fine_tuning.jobs.create(
            model="tiny-llama", training_file=training_file.id,
            validation_file=validation_file.id, suffix="bees", seed=7,
            hyperparameters={"n_epochs": 2, "batch_size": 4},
        )  # fmt: skip
        assert job.object == "fine_tuning.job" and job.id.startswith("ftjob-")
        assert job.status in {"queued", "validating_files", "running"}
        assert job.fine_tuned_model is None and job.seed == 7
        assert job.hyperparameters.n_epochs == 2 and job.hyperparameters.batch_size == 4
        assert job.training_file == training_file.id
        # A second job, cancelled while the single worker is busy with the first.
        second = await client.fine_tuning.jobs.create(
            model="tiny-llama", training_file=training_file.id, suffix="bees"
        )
        cancelled = await client.fine_tuning.jobs.cancel(second.id)
        assert cancelled.status in {"cancelled", "running", "validating_files"}

        done, seen = await _wait(client, job.id, until={"succeeded", "failed", "cancelled"})
        assert done.status == "succeeded", (done.error, seen)
        assert "running" in seen
        name = done.fine_tuned_model
        assert name == f"ft:tiny-llama:user-{cy.id}:bees:{job.id.removeprefix('ftjob-')}"
        assert done.finished_at and done.trained_tokens and done.trained_tokens > 0
        stopped, _ = await _wait(client, second.id, until={"cancelled", "succeeded", "failed"})
        assert stopped.status == "cancelled" and stopped.fine_tuned_model is None

        listed = await client.fine_tuning.jobs.list(limit=1)
        assert [j.id for j in listed.data] == [second.id] and listed.has_more
        rest = await client.fine_tuning.jobs.list(after=second.id, limit=5)
        assert [j.id for j in rest.data] == [job.id] and not rest.has_more

        events = await client.fine_tuning.jobs.list_events(job.id, limit=100)
        messages = [e.message for e in events.data]
        assert messages[0] == "The job has successfully completed"  # newest first
        assert messages[-1] == f"Created fine-tuning job: {job.id}"
        steps = [e for e in events.data if e.type == "metrics"]
        assert steps and all(e.data["train_loss"] > 0 for e in steps)
        assert steps[0].data["step"] == steps[0].data["total_steps"]
        assert any(m.startswith("The publishing gate") for m in messages)
        assert any(m.startswith("Evaluated on held-out examples") for m in messages)
        assert f"Tokenised the train examples: {len(FACTS) * 2} kept" in " ".join(messages)
        page = await client.fine_tuning.jobs.list_events(job.id, limit=2)
        after = await client.fine_tuning.jobs.list_events(job.id, after=page.data[-1].id, limit=2)
        assert [e.id for e in page.data + after.data] == [e.id for e in events.data[:4]]

        checkpoints = await client.fine_tuning.jobs.checkpoints.list(job.id)
        (checkpoint,) = checkpoints.data
        assert checkpoint.fine_tuned_model_checkpoint == name
        assert checkpoint.step_number == steps[0].data["total_steps"]
        assert checkpoint.metrics.train_loss == steps[0].data["train_loss"]

        models = await client.models.list()
        assert name in [m.id for m in models.data]
        answer = await client.chat.completions.create(
            model=name, messages=[{"role": "user", "content": "What colour is the hive door?"}],
            max_tokens=8, temperature=0,
        )  # fmt: skip
        assert answer.model == name and answer.choices[0].message.content
        assert answer.usage and answer.usage.completion_tokens > 0

        # Another user cannot see the job or use the model.
        other = account.register(email="cleo@example.com", password=PASSWORD, role=Role.creator)
        other_key, _ = api_key.create_key(actor=other, name="x", scopes=["fine_tuning", "chat"])
        stranger = sdk(other_key)
        with pytest.raises(openai.NotFoundError):
            await stranger.fine_tuning.jobs.retrieve(job.id)
        with pytest.raises(openai.NotFoundError) as refused:
            await stranger.chat.completions.create(
                model=name, messages=[{"role": "user", "content": "hi"}]
            )
        assert refused.value.code == "model_not_found"

    asyncio.run(scenario())

    # The job is the training page's: a training job of the "bees" assistant, on a dataset
    # version made from the files, with its evaluation and gate.
    with session_scope() as session:
        bees = session.exec(select(Assistant).where(Assistant.owner_id == cy.id)).one()
        assert bees.name == "bees" and not bees.is_published
        versions = session.exec(
            select(Dataset).where(Dataset.assistant_id == bees.id).order_by(Dataset.version)  # type: ignore[arg-type]
        ).all()
        # One version per set of files (the second job had no validation file).
        assert [d.counts["splits"] for d in versions] == [
            {"train": len(FACTS) * 2, "validation": 3, "test": 0},
            {"train": len(FACTS) * 2, "validation": 0, "test": 0},
        ]
    jobs = training.list_jobs(actor=cy, assistant_id=bees.id or 0)
    assert sorted(j.status for j in jobs) == ["cancelled", "succeeded"]
    (version,) = training.list_versions(actor=cy, assistant_id=bees.id or 0)
    assert version.metrics["held_out"]["split"] == "validation"
    assert "passed" in version.metrics["gate"]


# --- refusals and bookkeeping (no worker) ---------------------------------------------------


def test_files_are_checked_line_by_line(creator: tuple[account.UserPublic, str]) -> None:
    _cy, key = creator

    async def scenario() -> None:
        client = sdk(key)
        bad = (
            TRAINING.splitlines(keepends=True)[0]
            + b"{not json\n"
            + b"[1, 2]\n"
            + jsonl([{"messages": [{"role": "user", "content": "only a question"}]}])
            + jsonl([{"messages": [{"role": "tool", "content": "x"}]}])
            + jsonl([{"prompt": "p", "completion": "c"}])
        )
        with pytest.raises(openai.BadRequestError) as refused:
            await upload(client, bad)
        message = refused.value.body["message"]  # type: ignore[index]
        assert "Line 2 of the JSON Lines file is not valid JSON" in message
        assert "Line 3 of the JSON Lines file is not an object." in message
        assert "Line 4: needs at least one user and one assistant message." in message
        assert "Line 5: message 1 has role 'tool'" in message
        assert 'Line 6: needs "messages"' in message
        assert "Line 1" not in message
        for data, why in ((b"", "is empty"), (b"\xff\xfe{}", "not UTF-8")):
            with pytest.raises(openai.BadRequestError, match=why):
                await upload(client, data)
        with pytest.raises(openai.BadRequestError, match="purpose must be 'fine-tune'"):
            await client.files.create(file=("t.jsonl", io.BytesIO(TRAINING)), purpose="batch")
        assert (await client.files.list()).data == []  # nothing was stored

        made = [await upload(client, TRAINING, f"t{n}.jsonl") for n in range(3)]
        first = await client.files.list(limit=2)
        assert [f.id for f in first.data] == [made[2].id, made[1].id] and first.has_more
        second = await client.files.list(limit=2, after=made[1].id)
        assert [f.id for f in second.data] == [made[0].id] and not second.has_more
        assert (await client.files.retrieve(made[0].id)).filename == "t0.jsonl"
        deleted = await client.files.delete(made[0].id)
        assert deleted.deleted and deleted.id == made[0].id
        with pytest.raises(openai.NotFoundError):
            await client.files.retrieve(made[0].id)

    asyncio.run(scenario())


def test_jobs_refuse_what_they_cannot_run(creator: tuple[account.UserPublic, str]) -> None:
    cy, key = creator

    async def scenario() -> None:
        client = sdk(key)
        good = await upload(client, TRAINING)
        small = await upload(client, jsonl([chat(q, a) for q, a in FACTS[:2]]))
        cases: list[tuple[dict[str, Any], str]] = [
            ({"model": "gpt-4o-mini"}, "cannot be fine-tuned here; choose one of: tiny-llama"),
            ({"training_file": "file-nope"}, "training_file: no such file 'file-nope'"),
            ({"validation_file": "file-nope"}, "validation_file: no such file"),
            ({"training_file": small.id}, "training_file has 2 examples; at least 4 are needed"),
            ({"hyperparameters": {"n_epochs": 0}}, "n_epochs must be between 1 and 50"),
            ({"hyperparameters": {"batch_size": "big"}}, "batch_size must be 'auto' or a number"),
            ({"hyperparameters": {"warmup": 3}}, "Unknown hyperparameters: warmup"),
            ({"method": {"type": "dpo"}}, "method.type 'dpo' is not supported"),
            ({"suffix": "x" * 65}, "suffix"),
            ({"metadata": {"assistant": "nobody"}}, "you have no assistant 'nobody'"),
        ]
        for change, why in cases:
            body = {"model": "tiny-llama", "training_file": good.id, **change}
            with pytest.raises(openai.BadRequestError) as refused:
                await client.fine_tuning.jobs.create(**body)
            assert why in str(refused.value.body), (change, refused.value.body)
        assert (await client.fine_tuning.jobs.list()).data == []
        with session_scope() as session:  # a refused job leaves nothing behind
            assert session.exec(select(Assistant)).all() == []
            assert session.exec(select(Dataset)).all() == []

        # The newer method form sets the same hyperparameters; "auto" keeps the preset's.
        job = await client.fine_tuning.jobs.create(
            model="tiny-llama", training_file=good.id,
            method={"type": "supervised", "supervised": {"hyperparameters": {
                "n_epochs": 3, "batch_size": "auto", "learning_rate_multiplier": 2}}},
        )  # fmt: skip
        assert job.hyperparameters.n_epochs == 3 and job.status == "queued"
        assert job.method and job.method.type == "supervised"
        assert job.user_provided_suffix is None
        stored = training.get_job(actor=cy, job_id=job.model_extra["training_job_id"])  # type: ignore[index]
        preset = training.build_config(
            base_model=stored.base_model, preset="auto", method="lora",
            n_examples=len(FACTS) * 2, overrides={"epochs": 3},
            size=training.dataset_size(Path(stored.output_dir).parents[1]
                                        / "datasets" / str(stored.assistant_id) / "v1"),
        )  # fmt: skip
        assert stored.config["learning_rate"] == pytest.approx(preset.learning_rate * 2)
        assert stored.config["epochs"] == 3
        # The training page shows the job with its API id and model name.
        labels = fine_tuning.api_labels([stored.id or 0])
        row = _job_row(stored, labels[stored.id or 0])
        assert row["api"] == f"{job.id} → ft:tiny-llama:user-{cy.id}:{job.id[6:]}"
        cancelled = await client.fine_tuning.jobs.cancel(job.id)
        assert cancelled.status == "cancelled"
        with pytest.raises(openai.BadRequestError, match="already cancelled"):
            await client.fine_tuning.jobs.cancel(job.id)
        events = await client.fine_tuning.jobs.list_events(job.id)
        assert events.data[0].message == "The job was cancelled"
        assert (await client.fine_tuning.jobs.checkpoints.list(job.id)).data == []
        with pytest.raises(openai.NotFoundError, match="No such fine-tuning job"):
            await client.fine_tuning.jobs.retrieve("ftjob-nope")

    asyncio.run(scenario())
    from gptstudio.jobs.queue import huey

    huey.flush()


def test_the_fine_tuning_scope_is_needed(creator: tuple[account.UserPublic, str]) -> None:
    cy, _key = creator
    chat_only, _ = api_key.create_key(actor=cy, name="chat", scopes=["chat"])
    sue = account.register(email="sue@example.com", password=PASSWORD)
    with pytest.raises(Exception, match="Only creators"):
        api_key.create_key(actor=sue, name="ft", scopes=["fine_tuning"])

    async def scenario() -> None:
        client = sdk(chat_only)
        with pytest.raises(openai.PermissionDeniedError) as refused:
            await client.fine_tuning.jobs.list()
        assert refused.value.status_code == 403
        assert refused.value.code == "insufficient_scope"
        assert refused.value.body["type"] == "permission_error"  # type: ignore[index]
        assert "'fine_tuning' scope" in refused.value.body["message"]  # type: ignore[index]
        with pytest.raises(openai.PermissionDeniedError):
            await upload(client, TRAINING)
        with pytest.raises(openai.AuthenticationError):
            await sdk("gs-wrong").files.list()

    asyncio.run(scenario())
    with session_scope() as session:
        assert session.exec(select(TrainingJob)).all() == []
