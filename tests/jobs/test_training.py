"""Training jobs end to end on the tiny model: queue → train → evaluate → model version → gate;
cancel; and a real worker killed with SIGKILL mid-run that another worker resumes."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from sqlmodel import select

from gptstudio.db import session_scope
from gptstudio.errors import InvalidInput, NotFound
from gptstudio.jobs.training import run_job
from gptstudio.models import Assistant, Dataset, ModelVersion, Role, TrainingJob
from gptstudio.services import account, assistant, training
from gptstudio.settings import get_settings
from tests.trainer.conftest import FACTS, chat

PASSWORD = "correct horse battery"
ROOT = Path(__file__).resolve().parents[2]
SMALL = {"max_steps": 6, "sequence_length": 128, "batch_size": 2, "learning_rate": 1e-2,
         "warmup_ratio": 0.0, "lr_schedule": "constant", "eval_interval": 0,
         "checkpoint_interval": 0, "early_stopping_patience": 0}  # fmt: skip


def make_dataset(assistant_id: int, folder: Path) -> int:
    """A dataset version as the curation snapshot writes it: three chat-format JSONL splits."""
    folder.mkdir(parents=True)
    splits = {"train": FACTS * 2, "validation": FACTS[:2], "test": FACTS[2:5]}
    for name, pairs in splits.items():
        (folder / f"{name}.jsonl").write_text(
            "".join(json.dumps(chat(q, a)) + "\n" for q, a in pairs)
        )
    with session_scope() as session:
        row = Dataset(
            assistant_id=assistant_id,
            version=1,
            content_hash="x" * 64,
            status="ready",
            counts={"splits": {k: len(v) for k, v in splits.items()}},
            storage_path=str(folder),
        )
        session.add(row)
        session.flush()
        return row.id or 0


@pytest.fixture
def creator(
    db: str, tiny_model: Path, settings_env: pytest.MonkeyPatch, tmp_path: Path
) -> tuple[account.UserPublic, int, int]:
    settings_env.setenv("GPTSTUDIO_BASE_MODEL", str(tiny_model))
    get_settings.cache_clear()
    account.register(email="root@example.com", password=PASSWORD)
    cy = account.register(email="cy@example.com", password=PASSWORD, role=Role.creator)
    bees = assistant.create_assistant(actor=cy, name="Bees").id
    return cy, bees, make_dataset(bees, tmp_path / "dataset")


def test_job_trains_evaluates_and_gates_publishing(
    creator: tuple[account.UserPublic, int, int],
    run_tasks_inline: None,
    settings_env: pytest.MonkeyPatch,
) -> None:
    cy, bees, dataset_id = creator
    settings_env.setenv("GPTSTUDIO_GATE_MARGIN", "0.99")  # no 6-step adapter gains 99 %
    get_settings.cache_clear()
    job = training.start_job(actor=cy, dataset_id=dataset_id, overrides=SMALL)
    done = training.get_job(actor=cy, job_id=job.id or 0)
    assert done.status == "succeeded", done.error
    assert done.history and done.history[-1]["step"] == 6
    assert done.progress["event"] == "done"
    (version,) = training.list_versions(actor=cy, assistant_id=bees)
    metrics = version.metrics
    assert metrics["base_perplexity"] > 0 and metrics["tuned_perplexity"] > 0
    assert metrics["gate"]["passed"] is False and metrics["samples"]
    assert Path(version.adapter_path, "adapter_config.json").exists()

    with pytest.raises(training.GateBlocked, match="Publishing is blocked") as blocked:
        training.publish(actor=cy, version_id=version.id or 0)
    assert "perplexity" in str(blocked.value).lower()
    published = training.publish(
        actor=cy, version_id=version.id or 0, override_reason="Reviewed the answers by hand."
    )
    assert published.status == "published"
    with session_scope() as session:
        row = session.get(Assistant, bees)
        assert row is not None and row.is_published and row.current_model_version_id == version.id
        stored = session.get(ModelVersion, version.id)
        assert stored is not None and stored.gate_override_reason.startswith("Reviewed")


def test_bad_requests_fail_early(creator: tuple[account.UserPublic, int, int]) -> None:
    cy, _bees, dataset_id = creator
    with pytest.raises(InvalidInput, match="method"):
        training.start_job(actor=cy, dataset_id=dataset_id, method="full-finetune")
    with pytest.raises(InvalidInput, match="not valid"):
        training.start_job(actor=cy, dataset_id=dataset_id, overrides={"rank": 0})
    other = account.register(email="cleo@example.com", password=PASSWORD, role=Role.creator)
    with pytest.raises(NotFound):
        training.start_job(actor=other, dataset_id=dataset_id)
    with session_scope() as session:
        assert session.exec(select(TrainingJob)).all() == []


def test_the_default_preset_is_sized_to_the_dataset(
    creator: tuple[account.UserPublic, int, int],
) -> None:
    from gptstudio.jobs.queue import huey
    from trainer.config import PRESET_SIZING

    cy, _bees, dataset_id = creator
    job = training.start_job(actor=cy, dataset_id=dataset_id)  # the form's defaults
    config = job.config
    assert config["preset"] == "thorough" and config["max_steps"] is None  # 16 short examples
    assert config["sequence_length"] == 256 and config["batch_size"] == 1
    assert config["epochs"] == PRESET_SIZING["thorough"].max_epochs  # one row: the most passes
    chosen = training.start_job(actor=cy, dataset_id=dataset_id, overrides={"epochs": 3})
    assert chosen.config["epochs"] == 3  # the form's epochs field wins
    huey.flush()


def test_queued_job_is_cancelled_at_once(creator: tuple[account.UserPublic, int, int]) -> None:
    from gptstudio.jobs.queue import huey

    cy, _bees, dataset_id = creator
    job = training.start_job(actor=cy, dataset_id=dataset_id, overrides=SMALL)
    assert job.status == "queued" and training.queue_position(job) == 1
    cancelled = training.cancel_job(actor=cy, job_id=job.id or 0)
    assert cancelled.status == "cancelled"
    assert huey.is_revoked(job.queue_task_id)
    with pytest.raises(InvalidInput, match="already cancelled"):
        training.cancel_job(actor=cy, job_id=job.id or 0)
    huey.flush()


def test_a_killed_worker_is_resumed_by_the_next_one(
    creator: tuple[account.UserPublic, int, int], db: str, tmp_path: Path, tiny_model: Path
) -> None:
    cy, _bees, dataset_id = creator
    env = {k: v for k, v in os.environ.items() if not k.startswith("GPTSTUDIO_")}
    env.update(
        GPTSTUDIO_DATA_DIR=str(tmp_path / "worker-data"),
        GPTSTUDIO_DATABASE_URL=db,
        GPTSTUDIO_BASE_MODEL=str(tiny_model),
        GPTSTUDIO_JOB_STALE_SECONDS="5",
        OMP_NUM_THREADS="1",
    )
    config = {**SMALL, "max_steps": 40, "checkpoint_interval": 5}
    enqueue = (
        "from gptstudio.db import session_scope; from gptstudio.models import User; "
        "from gptstudio.services import access, account, training; "
        "s = session_scope().__enter__(); "
        f"actor = access.public(s.get(User, {cy.id})); "
        f"job = training.start_job(actor=actor, dataset_id={dataset_id}, overrides={config!r}); "
        "print(job.id)"
    )
    made = subprocess.run(
        [sys.executable, "-c", enqueue],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert made.returncode == 0, made.stderr[-2000:]
    job_id = int(made.stdout.split()[-1])
    checkpoints = tmp_path / "worker-data" / "artifacts" / "jobs" / str(job_id) / "checkpoints"

    first = subprocess.Popen(worker(), cwd=ROOT, env=env, start_new_session=True)
    deadline = time.monotonic() + 180
    while not (checkpoints.exists() and any(checkpoints.glob("step-*"))):
        assert first.poll() is None and time.monotonic() < deadline, "no checkpoint appeared"
        time.sleep(0.05)
    os.killpg(first.pid, signal.SIGKILL)
    first.wait()
    interrupted = job_row(job_id)
    assert interrupted.status == "running" and interrupted.history[-1]["step"] < 40

    time.sleep(6)  # longer than GPTSTUDIO_JOB_STALE_SECONDS: the heartbeat is stale now
    second = subprocess.Popen(worker(), cwd=ROOT, env=env, start_new_session=True)
    try:
        while job_row(job_id).status in ("queued", "running"):
            assert time.monotonic() < deadline + 180, "the resumed job did not finish"
            time.sleep(0.5)
    finally:
        os.killpg(second.pid, signal.SIGTERM)
        second.wait(timeout=30)
    finished = job_row(job_id)
    assert finished.status == "succeeded", finished.error
    assert finished.progress.get("resumed_from_worker")

    from trainer.config import JobConfig
    from trainer.launch import train

    folder = Path(make_dataset_path(dataset_id))
    records = [
        {**json.loads(line), "split": split}
        for split in ("train", "validation")
        for line in (folder / f"{split}.jsonl").read_text().splitlines()
    ]
    config = JobConfig.from_dict(finished.config)
    reference = train(config, dataset=records, output_dir=tmp_path / "reference")
    assert reference.final_loss is not None
    assert abs(reference.final_loss - resumed_final_loss(job_id)) < 1e-3


def worker() -> list[str]:
    return [sys.executable, "-m", "huey.bin.huey_consumer", "gptstudio.jobs.worker.huey", "-w", "1"]


def job_row(job_id: int) -> TrainingJob:
    with session_scope() as session:
        job = session.get(TrainingJob, job_id)
        assert job is not None
        return job


def make_dataset_path(dataset_id: int) -> str:
    with session_scope() as session:
        row = session.get(Dataset, dataset_id)
        assert row is not None
        return row.storage_path


def resumed_final_loss(job_id: int) -> float:
    with session_scope() as session:
        version = session.exec(
            select(ModelVersion).where(ModelVersion.training_job_id == job_id)
        ).one()
    report: dict[str, Any] = version.report
    return float(report["final_loss"])


def test_running_job_stops_within_seconds_of_cancel(
    creator: tuple[account.UserPublic, int, int],
) -> None:
    import threading

    from gptstudio.jobs.queue import huey

    cy, _, dataset_id = creator
    job = training.start_job(
        actor=cy, dataset_id=dataset_id, overrides={**SMALL, "max_steps": 2000}
    )
    huey.flush()  # this test runs the job itself, in a thread, like a worker would
    worker = threading.Thread(target=run_job, args=(job.id,))
    worker.start()
    deadline = time.monotonic() + 120
    while not job_row(job.id or 0).history:
        assert time.monotonic() < deadline and worker.is_alive()
        time.sleep(0.1)
    assert job_row(job.id or 0).status == "running"
    asked = time.monotonic()
    training.cancel_job(actor=cy, job_id=job.id or 0)
    worker.join(timeout=30)
    assert not worker.is_alive() and time.monotonic() - asked < 10
    stopped = job_row(job.id or 0)
    assert stopped.status == "cancelled" and stopped.history[-1]["step"] < 2000
    assert training.list_versions(actor=cy, assistant_id=stopped.assistant_id) == []


def test_the_gate_says_what_it_measured_when_a_split_is_empty() -> None:
    from gptstudio.jobs.training import held_out_for_gate
    from trainer.data import load_conversations, split_conversations

    def records(split: str, n: int) -> list[dict[str, Any]]:
        return [
            {**chat(f"{split} question {i}?", f"Answer {i}."), "split": split} for i in range(n)
        ]

    used, rows, note = held_out_for_gate(
        records("train", 17) + records("validation", 3) + records("test", 2),
        eval_fraction=0.1, seed=42,
    )  # fmt: skip
    assert (used, len(rows), note) == ("test", 2, "")
    used, rows, note = held_out_for_gate(
        records("train", 17) + records("validation", 3), eval_fraction=0.1, seed=42
    )
    assert used == "validation" and len(rows) == 3 and "test split is empty" in note
    assert {r["split"] for r in rows} == {"test"}

    train = records("train", 25)
    used, rows, note = held_out_for_gate(train, eval_fraction=0.1, seed=42)
    assert used == "training hold-out" and len(rows) == 2 and "optimistic" in note
    kept, held = split_conversations(load_conversations(train), eval_fraction=0.1, seed=42)
    trained_on = {c.messages[0]["content"] for c in kept}  # what the trainer trains on
    assert trained_on.isdisjoint(r["messages"][0]["content"] for r in rows)
    assert len(held) == 2

    used, rows, note = held_out_for_gate(records("train", 5), eval_fraction=0.1, seed=42)
    assert (used, rows) == ("none", []) and "Add documents" in note


# --- one run per job, cancel and resume (issue 19) ------------------------------------------


def test_a_claimed_job_cannot_be_claimed_again_until_its_heartbeat_is_stale(
    creator: tuple[account.UserPublic, int, int],
) -> None:
    from datetime import timedelta

    from gptstudio.db import utcnow
    from gptstudio.jobs.queue import huey
    from gptstudio.jobs.training import _claim, _finish, _Lease

    cy, _, dataset_id = creator
    job_id = training.start_job(actor=cy, dataset_id=dataset_id, overrides=SMALL).id or 0
    huey.flush()
    assert _claim(job_id, "host:1") and not _claim(job_id, "host:2")
    with session_scope() as session:  # host:1 stopped beating a while ago
        row = session.get(TrainingJob, job_id)
        assert row is not None
        row.heartbeat_at = utcnow() - timedelta(seconds=get_settings().job_stale_seconds + 1)
    assert _claim(job_id, "host:2")
    lease = _Lease(job_id, "host:1", stale_seconds=60)
    lease.beat()  # host:1 wakes up: its heartbeat finds the job taken, and it stops
    assert lease.lost and lease.should_stop()
    _finish(job_id, "host:1", "succeeded")
    assert job_row(job_id).status == "running" and job_row(job_id).worker == "host:2"


def test_the_heartbeat_beats_without_steps_and_carries_cancel(
    creator: tuple[account.UserPublic, int, int],
) -> None:
    from gptstudio.jobs.queue import huey
    from gptstudio.jobs.training import _claim, _Lease

    cy, _, dataset_id = creator
    job_id = training.start_job(actor=cy, dataset_id=dataset_id, overrides=SMALL).id or 0
    huey.flush()
    assert _claim(job_id, "host:1")
    first = job_row(job_id).heartbeat_at
    with _Lease(job_id, "host:1", stale_seconds=2) as lease:  # beats every 0.5 s
        time.sleep(1.6)  # no training step at all: loading, tokenising, evaluating
        assert (job_row(job_id).heartbeat_at or first) > (first or 0)  # type: ignore[operator]
        training.cancel_job(actor=cy, job_id=job_id)
        deadline = time.monotonic() + 5
        while not lease.should_stop():
            assert time.monotonic() < deadline, "the heartbeat did not carry the cancel"
            time.sleep(0.05)
    assert not lease.lost


def test_history_after_a_resume_replaces_the_repeated_steps() -> None:
    from gptstudio.jobs.training import _merged_history

    stored = [{"step": s, "loss": 1.0} for s in range(1, 8)]  # the dead worker reached step 7
    resumed = [{"step": s, "loss": 0.5} for s in range(6, 9)]  # its last checkpoint was step 5
    merged = _merged_history(stored, resumed)
    assert [p["step"] for p in merged] == list(range(1, 9))
    assert [p["loss"] for p in merged][4:6] == [1.0, 0.5]


def test_a_corrupt_snapshot_split_names_its_file_and_line(tmp_path: Path) -> None:
    from gptstudio.jobs.training import _load_splits
    from trainer.errors import DatasetError

    for split in ("train", "validation", "test"):
        (tmp_path / f"{split}.jsonl").write_text(json.dumps(chat("Q?", "A.")) + "\n")
    (tmp_path / "validation.jsonl").write_text(json.dumps(chat("Q?", "A.")) + '\n{"messages": [\n')
    with pytest.raises(DatasetError, match=r"validation\.jsonl, line 2: not valid JSON"):
        _load_splits(str(tmp_path))


def run_in_thread(job_id: int) -> Any:
    import threading

    thread = threading.Thread(target=run_job, args=(job_id,))
    thread.start()
    return thread


def test_a_cancelled_job_resumes_where_it_stopped(
    creator: tuple[account.UserPublic, int, int],
) -> None:
    from gptstudio.jobs.queue import huey

    cy, bees, dataset_id = creator
    config = {**SMALL, "max_steps": 400, "checkpoint_interval": 0}  # checkpoints off
    job_id = training.start_job(actor=cy, dataset_id=dataset_id, overrides=config).id or 0
    huey.flush()  # this test runs the job itself, like a worker would
    thread = run_in_thread(job_id)
    deadline = time.monotonic() + 120
    while len(job_row(job_id).history) < 3:
        assert time.monotonic() < deadline and thread.is_alive()
        time.sleep(0.05)
    training.cancel_job(actor=cy, job_id=job_id)
    thread.join(timeout=60)
    cancelled = job_row(job_id)
    assert cancelled.status == "cancelled" and training.can_resume(cancelled)
    stopped_at = int(cancelled.progress["step"])
    checkpoints = Path(cancelled.output_dir, "checkpoints")
    assert [p.name for p in checkpoints.iterdir()] == [f"step-{stopped_at:08d}"]
    assert cancelled.progress["data"]["train"]["examples"] > 0  # shown on the training page

    from gptstudio.pages.training.state import _job_row

    assert _job_row(cancelled)["resumable"] == "yes"  # the page offers Resume
    queued = training.resume_job(actor=cy, job_id=job_id)
    assert queued.status == "queued" and not queued.cancel_requested
    huey.flush()
    run_job(job_id)
    done = job_row(job_id)
    assert done.status == "succeeded", done.error
    steps = [p["step"] for p in done.history]
    assert steps == sorted(set(steps)) and steps[-1] == 400  # no step twice on the chart
    (version,) = training.list_versions(actor=cy, assistant_id=bees)
    assert version.report["resumed_from_steps"] == [stopped_at]
    assert version.metrics["answer_tokens"] >= version.metrics["target_tokens"] > 0
    with pytest.raises(InvalidInput, match="Only a cancelled job"):
        training.resume_job(actor=cy, job_id=job_id)


def test_a_cancelled_job_can_drop_its_checkpoints_instead(
    creator: tuple[account.UserPublic, int, int],
) -> None:
    cy, _, dataset_id = creator
    job = training.start_job(actor=cy, dataset_id=dataset_id, overrides=SMALL)
    training.cancel_job(actor=cy, job_id=job.id or 0)
    checkpoint = Path(job.output_dir, "checkpoints", "step-00000002")
    checkpoint.mkdir(parents=True)  # as a cancel of a running job leaves it
    other = account.register(email="cleo@example.com", password=PASSWORD, role=Role.creator)
    with pytest.raises(NotFound):
        training.remove_checkpoints(actor=other, job_id=job.id or 0)
    removed = training.remove_checkpoints(actor=cy, job_id=job.id or 0)
    assert not checkpoint.exists() and not training.can_resume(removed)
    with pytest.raises(InvalidInput, match="checkpoints were removed"):
        training.resume_job(actor=cy, job_id=job.id or 0)


STALE = 5  # seconds (the least the settings allow); the heartbeat beats every quarter of it


def test_two_consumers_on_redis_run_a_job_once(
    creator: tuple[account.UserPublic, int, int],
    db: str,
    redis_url: str,
    tmp_path: Path,
    tiny_model: Path,
) -> None:
    """Two real Huey consumers on Redis, a 5 s stale time, a duplicate task of the job, and a
    stale-job sweep every half second racing them. Loading and the final evaluation (answers to
    held-out questions from two models) each outlast the stale time and run no training step:
    before the heartbeat thread, the sweep re-queued the live job there and the second consumer
    trained and recorded it again."""
    cy, bees, _ = creator
    # Long answers: scoring them with two models keeps the evaluation (no training step) busy
    # for longer than the stale time even on an idle machine.
    long_answer = " ".join(f"Fact {{i}} is about bees, part {p}." for p in range(60))
    held_out = [chat(f"What is fact number {i}?", long_answer.format(i=i)) for i in range(240)]
    folder = tmp_path / "long-eval"
    folder.mkdir()
    for name, rows in {"train": [chat(q, a) for q, a in FACTS * 2], "validation": held_out[:2],
                       "test": held_out}.items():  # fmt: skip
        (folder / f"{name}.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    with session_scope() as session:
        row = Dataset(
            assistant_id=bees, version=2, content_hash="y" * 64, status="ready",
            counts={"splits": {"train": 16, "validation": 2, "test": 240}},
            storage_path=str(folder),
        )  # fmt: skip
        session.add(row)
        session.flush()
        dataset_id = row.id or 0
    env = {k: v for k, v in os.environ.items() if not k.startswith("GPTSTUDIO_")}
    env.update(
        GPTSTUDIO_DATA_DIR=str(tmp_path / "worker-data"), GPTSTUDIO_DATABASE_URL=db,
        GPTSTUDIO_BASE_MODEL=str(tiny_model), GPTSTUDIO_JOB_STALE_SECONDS=str(STALE),
        GPTSTUDIO_REDIS_URL=redis_url, GPTSTUDIO_QUEUE_NAME=f"once-{os.getpid()}",
        OMP_NUM_THREADS="1",
    )  # fmt: skip
    setup = (
        "from gptstudio.db import session_scope; from gptstudio.models import User; "
        "from gptstudio.services import access, training; "
        "s = session_scope().__enter__(); "
        f"actor = access.public(s.get(User, {cy.id})); "
        f"job = training.start_job(actor=actor, dataset_id={dataset_id}, overrides={SMALL!r}); "
        "training.enqueue(job.id); print(job.id)"  # the same job queued twice
    )
    made = subprocess.run(
        [sys.executable, "-c", setup], cwd=ROOT, env=env, capture_output=True, text=True,
        timeout=120, check=False,
    )  # fmt: skip
    assert made.returncode == 0, made.stderr[-2000:]
    job_id = int(made.stdout.split()[-1])
    sweep = (
        "import time, gptstudio.jobs.worker\n"
        "from gptstudio.jobs.training import resume_stale_jobs\n"
        "while True:\n    print(resume_stale_jobs(), flush=True); time.sleep(0.5)"
    )
    processes = [
        subprocess.Popen(worker(), cwd=ROOT, env=env, start_new_session=True),
        subprocess.Popen(worker(), cwd=ROOT, env=env, start_new_session=True),
        subprocess.Popen(
            [sys.executable, "-c", sweep],
            cwd=ROOT,
            env=env,
            start_new_session=True,
            stdout=subprocess.PIPE,
            text=True,
        ),
    ]
    try:
        deadline = time.monotonic() + 400
        while job_row(job_id).status in ("queued", "running"):
            assert all(p.poll() is None for p in processes), "a process died"
            assert time.monotonic() < deadline, "the job did not finish"
            time.sleep(0.5)
    finally:
        for process in processes:
            os.killpg(process.pid, signal.SIGTERM)
        for process in processes:
            process.wait(timeout=30)
    swept = (processes[2].stdout.read() if processes[2].stdout else "").split("\n")
    finished = job_row(job_id)
    assert finished.status == "succeeded", finished.error
    assert finished.started_at and finished.finished_at
    lasted = (finished.finished_at - finished.started_at).total_seconds()
    assert lasted > STALE, f"the job took {lasted:.1f} s: too short to outlast the stale time"
    assert {line for line in swept if line} == {"[]"}, "a live job was re-queued"
    assert "resumed_from_worker" not in finished.progress
    with session_scope() as session:
        versions = session.exec(
            select(ModelVersion).where(ModelVersion.training_job_id == job_id)
        ).all()
    assert len(versions) == 1 and versions[0].report["resumed_from_steps"] == []


def test_the_training_page_says_what_was_cut() -> None:
    from gptstudio.pages.training.state import _data_note, _scored_note

    data = {"train": {"examples": 398, "truncated": 1, "dropped": 1}, "eval": {}}
    assert _data_note(data).startswith(
        "1 training examples were cut"
    ) and "1 dropped" in _data_note(data)
    assert _data_note({"train": {"examples": 4, "truncated": 0, "dropped": 0}}) == ""
    metrics = {"target_tokens": 6463, "answer_tokens": 7117, "sequence_length": 1024}
    assert (
        _scored_note(metrics) == "6,463 of 7,117 answer tokens scored (answers cut at 1,024 tokens)"
    )
    assert _scored_note({"target_tokens": 10, "answer_tokens": 10}) == ""
