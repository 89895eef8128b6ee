"""Many workers on one Redis, as separate processes (two "hosts", each with a training consumer
and a documents consumer, as ``python -m gptstudio.run --worker`` or deploy/ start them): two
training jobs run at once, one on each training consumer; ``kill -9`` of the consumer running one
of them → the other consumer resumes it from its last checkpoint, and the final adapter equals an
uninterrupted run's within float noise; uploads are parsed and curation runs finish on the
documents consumers, spread over both (each consumer logs the rows it takes); and each tick of a
periodic task runs on one consumer only, though every consumer schedules it."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file
from sqlmodel import select

from gptstudio.db import session_scope
from gptstudio.models import CurationRun, ModelVersion
from gptstudio.services import account, assistant
from tests.jobs.test_outbox import (
    curate_code,
    document_status,
    long_docx,
    upload_code,
    wait_for,
    web,
)
from tests.jobs.test_training import (
    SMALL,
    creator,  # noqa: F401 (a fixture)
    job_row,
    make_dataset,
    make_dataset_path,
    worker,
)
from tests.services.docs import TAX_MD

ROOT = Path(__file__).resolve().parents[2]
STALE = 30  # seconds: generous, on a machine shared with other test runs a heartbeat can slip
CONFIG = {**SMALL, "max_steps": 120, "checkpoint_interval": 5}


def documents_worker() -> list[str]:
    return [sys.executable, "-m", "huey.bin.huey_consumer", "gptstudio.jobs.worker.documents_huey",
            "-w", "1"]  # fmt: skip


def start_jobs(env: dict[str, str], user_id: int, dataset_ids: list[int]) -> list[int]:
    code = (
        "from gptstudio.db import session_scope; from gptstudio.models import User; "
        "from gptstudio.services import access, training; "
        f"actor = access.public(session_scope().__enter__().get(User, {user_id})); "
        f"print(*[training.start_job(actor=actor, dataset_id=d, overrides={CONFIG!r}).id "
        f"for d in {dataset_ids!r}])"
    )
    made = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True,
        timeout=120, check=False,
    )  # fmt: skip
    assert made.returncode == 0, made.stderr[-2000:]
    return [int(i) for i in made.stdout.split()[-len(dataset_ids) :]]


TAKEN = """import time
from sqlalchemy import text
while True:
    with session_scope() as session:
        status = session.execute(
            text("SELECT status FROM {table} WHERE id = :id"), {{"id": first}}
        ).scalar()
    if status not in ("uploaded", "queued"):
        break
    time.sleep(0.05)"""


def one_then_another(env: dict[str, str], first: str, table: str, second: str) -> list[int]:
    """Run the web code ``first``, then, as soon as a consumer has taken the row it made (``row``,
    in ``table``), ``second``, in one process (nothing but a poll between them, no start-up): the
    consumer busy with the first (seconds of work, one worker thread) is not free for the
    second, which the other consumer takes. The two rows' ids."""
    code = "\n".join([first, "first = row.id", TAKEN.format(table=table), second,
                      "print(first, row.id)"])  # fmt: skip
    return [int(i) for i in web(env, code).split()]


def worker_pid(job_id: int) -> int | None:
    name = job_row(job_id).worker
    return (
        int(name.split(":")[1]) if job_row(job_id).status == "running" and name else None
    )  # host:pid:thread


def run_state(run_id: int | None) -> str:
    with session_scope() as session:
        run = session.get(CurationRun, run_id)
        assert run is not None
        return run.status


@pytest.mark.slow
def test_two_hosts_share_the_jobs_and_the_survivor_resumes_a_killed_consumers_job(
    creator: tuple[account.UserPublic, int, int],  # noqa: F811
    db: str,
    redis_url: str,
    tmp_path: Path,
    tiny_model: Path,
) -> None:
    cy, bees, first_dataset = creator
    wasps = assistant.create_assistant(actor=cy, name="Wasps").id
    second_dataset = make_dataset(wasps, tmp_path / "dataset-2")
    env = {k: v for k, v in os.environ.items() if not k.startswith("GPTSTUDIO_")}
    env.update(
        GPTSTUDIO_DATA_DIR=str(tmp_path / "worker-data"), GPTSTUDIO_DATABASE_URL=db,
        GPTSTUDIO_BASE_MODEL=str(tiny_model), GPTSTUDIO_JOB_STALE_SECONDS=str(STALE),
        GPTSTUDIO_REDIS_URL=redis_url, GPTSTUDIO_QUEUE_NAME=f"many-{os.getpid()}",
        OMP_NUM_THREADS="1",
    )  # fmt: skip
    jobs = start_jobs(env, cy.id, [first_dataset, second_dataset])
    logs = {name: tmp_path / f"{name}.log" for name in ("train-a", "train-b", "docs-a", "docs-b")}
    commands = {"train-a": worker(), "train-b": worker(), "docs-a": documents_worker(),
                "docs-b": documents_worker()}  # fmt: skip
    processes = {
        name: subprocess.Popen(
            commands[name],
            cwd=ROOT,
            env=env,
            stdout=logs[name].open("w"),
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        for name in commands
    }
    try:
        # Both jobs run at once, one on each training consumer.
        deadline = time.monotonic() + 480
        while not all(worker_pid(j) for j in jobs):
            assert all(p.poll() is None for p in processes.values()), "a consumer died"
            assert time.monotonic() < deadline, [job_row(j).status for j in jobs]
            time.sleep(0.2)
        on = {worker_pid(j): j for j in jobs}
        assert set(on) == {processes["train-a"].pid, processes["train-b"].pid}, on

        # kill -9 the consumer running the first job, once that job has a checkpoint.
        victim = job_row(jobs[0]).worker
        killed = next(p for p in processes.values() if f":{p.pid}:" in victim)
        checkpoints = Path(job_row(jobs[0]).output_dir) / "checkpoints"
        deadline = time.monotonic() + 240
        while not (checkpoints.exists() and any(checkpoints.glob("step-*"))):
            assert time.monotonic() < deadline, "no checkpoint appeared"
            time.sleep(0.05)
        os.killpg(killed.pid, signal.SIGKILL)
        killed.wait()
        assert job_row(jobs[0]).status == "running"

        # Parsing and curation on the documents consumers meanwhile, spread over both (one
        # worker thread each): every second task is handed out while the first keeps one
        # consumer busy for seconds (a long DOCX, MiniLM's semantic dedupe), so only the other
        # consumer can take it.
        survivors = [p for p in processes.values() if p is not killed]
        book, tax = tmp_path / "book.docx", tmp_path / "tax.md"
        book.write_bytes(long_docx(5_000))
        tax.write_text(TAX_MD)
        documents = one_then_another(
            env, upload_code(cy.id, bees, book), "documents", upload_code(cy.id, wasps, tax)
        )
        wait_for("the uploads were not parsed",
                 lambda: {document_status(d) for d in documents} == {"parsed"}, 300,
                 *survivors)  # fmt: skip
        runs = one_then_another(
            env, curate_code(cy.id, wasps, semantic_dedupe=True), "curation_runs",
            curate_code(cy.id, bees),
        )  # fmt: skip

        deadline = time.monotonic() + 600
        while any(job_row(j).status in ("queued", "running") for j in jobs) or any(
            run_state(r) in ("queued", "running") for r in runs
        ):
            survivors = [p for p in processes.values() if p is not killed]
            assert all(p.poll() is None for p in survivors), "a consumer died"
            assert time.monotonic() < deadline, [job_row(j).progress for j in jobs]
            time.sleep(1)
        assert [run_state(r) for r in runs] == ["done", "done"]
    finally:
        for process in processes.values():
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGTERM)
        for process in processes.values():
            process.wait(timeout=60)

    resumed = job_row(jobs[0])
    assert resumed.status == "succeeded", resumed.error
    assert resumed.progress.get("resumed_from_worker") == victim
    assert resumed.worker != victim
    assert job_row(jobs[1]).status == "succeeded"

    # The resumed job's adapter equals an uninterrupted run's, within float noise.
    from trainer.config import JobConfig
    from trainer.launch import train

    folder = Path(make_dataset_path(first_dataset))
    records = [
        {**json.loads(line), "split": split}
        for split in ("train", "validation")
        for line in (folder / f"{split}.jsonl").read_text().splitlines()
    ]
    reference = train(JobConfig.from_dict(resumed.config), dataset=records,
                      output_dir=tmp_path / "reference")  # fmt: skip
    assert reference.adapter_dir is not None
    expected = load_file(str(Path(reference.adapter_dir) / "adapter_model.safetensors"))
    with session_scope() as session:
        version = session.exec(
            select(ModelVersion).where(ModelVersion.training_job_id == resumed.id)
        ).one()
    got = load_file(str(Path(version.adapter_path) / "adapter_model.safetensors"))
    assert expected.keys() == got.keys()
    worst = max(float((expected[k] - got[k]).abs().max()) for k in expected)
    assert worst < 1e-4, f"the resumed adapter differs by up to {worst}"
    assert any(not torch.equal(v, torch.zeros_like(v)) for v in got.values())

    # Every consumer scheduled the periodic sweep; each tick ran on one of them only.
    ticks: dict[str, list[str]] = {}
    for name in ("train-a", "train-b"):
        for tick, verdict in re.findall(
            r"periodic resume_stale_jobs tick (\d+): (run here|taken by another)",
            logs[name].read_text(),
        ):
            ticks.setdefault(tick, []).append(verdict)
    assert ticks, "no periodic tick was logged"
    assert all(v.count("run here") == 1 for v in ticks.values()), ticks
    assert any(len(v) >= 2 for v in ticks.values()), ticks  # scheduled by more than one

    # Each documents consumer logged the rows it took: the parses and the runs were spread.
    taken: dict[tuple[str, int], list[str]] = {}
    for name in ("docs-a", "docs-b"):
        for what, row in re.findall(r"(documents|curation runs) (\d+) taken by worker",
                                    logs[name].read_text()):  # fmt: skip
            taken.setdefault((what, int(row)), []).append(name)
    parsed_on = [taken[("documents", d)] for d in documents]
    curated_on = [taken[("curation runs", r)] for r in runs]
    assert all(len(on) == 1 for on in parsed_on + curated_on), taken  # each taken once
    assert sorted(on[0] for on in parsed_on) == ["docs-a", "docs-b"], taken
    assert sorted(on[0] for on in curated_on) == ["docs-a", "docs-b"], taken
