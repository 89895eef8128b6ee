"""The training jobs: train a job's config on its dataset version with live progress and a
heartbeat, evaluate base against tuned, record a model version; resume jobs whose worker died;
build the tiny local base model (exports are :mod:`gptstudio.jobs.bundle`).

The training engine is :mod:`trainer` (torch), imported inside each job, so loading this module
(every worker does) stays light. The web side, queueing and cancelling, is
:mod:`gptstudio.services.training`.
"""

from __future__ import annotations

import json
import logging
import os
import socket
import threading
import time
from datetime import timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import func, update
from sqlmodel import Session, col, select

from gptstudio.db import session_scope, utcnow
from gptstudio.jobs.lease import Beating
from gptstudio.jobs.tasks import body
from gptstudio.models import Dataset, ModelVersion, TrainingJob
from gptstudio.services import creator_tier
from gptstudio.services.dataset import SPLITS
from gptstudio.services.publish_gate import gate_margin
from gptstudio.services.training import ACTIVE, enqueue
from gptstudio.settings import get_settings

log = logging.getLogger(__name__)
PROGRESS_EVERY_SECONDS = 1.0
# Kept in the job's progress from one write to the next (the rest is the latest event).
KEPT_PROGRESS = ("resumed_from_worker", "data")


def _this_worker() -> str:
    return f"{socket.gethostname()}:{os.getpid()}:{threading.get_ident()}"


def _claim(job_id: int, worker: str) -> bool:
    """Take the job in one compare-and-set: only a queued or running job whose last owner's
    heartbeat is older than the stale time (or that never had one) can be taken, so two workers
    (a duplicate task, or ``resume_stale_jobs`` racing a live worker) never run it together."""
    now = utcnow()
    cutoff = now - timedelta(seconds=get_settings().job_stale_seconds)
    free = (col(TrainingJob.worker) == "") | col(TrainingJob.heartbeat_at).is_(None)
    with session_scope() as session:
        taken = session.execute(
            update(TrainingJob)
            .where(
                col(TrainingJob.id) == job_id,
                col(TrainingJob.status).in_(ACTIVE),
                col(TrainingJob.cancel_requested).is_(False),
                free | (col(TrainingJob.heartbeat_at) < cutoff),
            )
            .values(status="running", worker=worker, heartbeat_at=now)
            .returning(col(TrainingJob.id))
        ).first()
        job = session.get(TrainingJob, job_id)
        if job is None:
            return False
        if taken:
            job.started_at = job.started_at or now
            return True
        if job.cancel_requested and job.status == "queued":
            job.status, job.finished_at = "cancelled", now
        return False


def _load_splits(dataset_path: str) -> list[dict[str, Any]]:
    """The snapshot's records with their split; a corrupt file fails naming file and line."""
    from trainer.data import read_jsonl

    return [
        {**record, "split": split}
        for split in SPLITS
        for record in read_jsonl(Path(dataset_path) / f"{split}.jsonl")
    ]


class _Lease:
    """The heartbeat of a claimed job, written by a thread every ``interval`` seconds whatever the
    job is doing (loading the model, tokenising, validating, evaluating), with the compare-and-set
    ``worker = me``: a worker that lost the job (it was re-queued and taken by another) learns it
    at the next beat and stops. Each beat also reads ``cancel_requested``, so cancel is seen
    within ``interval`` seconds, between steps, inside validation and during evaluation."""

    def __init__(self, job_id: int, worker: str, *, stale_seconds: float) -> None:
        self.job_id, self.worker = job_id, worker
        self.stale_seconds = stale_seconds
        self.cancel = self.lost = False
        self._last_beat = time.monotonic()
        self._beating = Beating(
            f"training job {job_id}", stale_seconds=stale_seconds, beat=self.beat,
            after=self._check_silence,
        )  # fmt: skip

    def __enter__(self) -> _Lease:
        self._beating.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        self._beating.__exit__(*exc)

    def _check_silence(self) -> None:
        if time.monotonic() - self._last_beat > self.stale_seconds * 0.75:
            self.lost = True  # others may take it soon: stop before they do

    def beat(self) -> bool:
        with session_scope() as session:
            row = session.execute(
                update(TrainingJob)
                .where(
                    col(TrainingJob.id) == self.job_id,
                    col(TrainingJob.worker) == self.worker,
                    col(TrainingJob.status) == "running",
                )
                .values(heartbeat_at=utcnow())
                .returning(col(TrainingJob.cancel_requested))
            ).first()
        if row is None:
            self.lost = True
            return False
        self._last_beat = time.monotonic()
        self.cancel = self.cancel or bool(row[0])
        return True

    def should_stop(self) -> bool:
        return self.cancel or self.lost


class _Reporter:
    """Writes progress to the job row at most once a second (only while this worker owns it)."""

    def __init__(self, job_id: int, lease: _Lease) -> None:
        self.job_id, self.lease, self.last = job_id, lease, 0.0
        self.points: list[dict[str, Any]] = []

    def __call__(self, update: dict[str, Any]) -> None:
        if update.get("loss") is not None and update.get("event") == "step":
            point = {k: update.get(k) for k in ("step", "loss", "eval_loss", "learning_rate")}
            self.points.append({**point, "at": round(time.time(), 3)})  # the API's event times
        # Always written: the first events, the last, and a step that saved a checkpoint.
        now = update.get("event") != "step" or update.get("checkpoint") or not self.last
        if not now and time.monotonic() - self.last < PROGRESS_EVERY_SECONDS:
            return
        if update.get("event") == "step":
            self.last = time.monotonic()
        with session_scope() as session:
            job = session.get(TrainingJob, self.job_id)
            if job is None or job.worker != self.lease.worker:
                self.lease.lost = True
                return
            kept = {k: v for k, v in job.progress.items() if k in KEPT_PROGRESS}
            if isinstance(update.get("data"), dict):
                kept["data"] = update["data"]  # examples kept, truncated, dropped
            job.progress = {**kept, **{k: v for k, v in update.items() if _plain(v)}}
            job.history = _merged_history(job.history, self.points)
            self.points = []


def _merged_history(
    stored: list[dict[str, Any]], new: list[dict[str, Any]]
) -> list[dict[str, Any]]:
    """``stored`` then ``new``; a run resumed from a checkpoint repeats the steps after it, and
    those replace the ones the dead worker had written (the chart never doubles back)."""
    if not new:
        return stored
    first = min(int(p["step"]) for p in new)
    return [p for p in stored if int(p.get("step") or 0) < first] + new


def _plain(value: Any) -> bool:
    return value is None or isinstance(value, (int, float, str, bool))


@body("train")
def run_job(job_id: int) -> None:
    """Train, evaluate and record a model version; resumes from the job's last checkpoint.

    The job is claimed with a compare-and-set and held by a heartbeat thread (:class:`_Lease`)
    from the claim to the end; every write after that checks this worker still owns it."""
    worker = _this_worker()
    if not _claim(job_id, worker):
        log.info("training job %s is not free to run (done, cancelled or owned); skipped", job_id)
        return
    began, measured = time.monotonic(), {"devices": 1, "tokens": 0}
    try:
        with _Lease(job_id, worker, stale_seconds=get_settings().job_stale_seconds) as lease:
            status, error = _train_and_evaluate(job_id, lease, measured)
    finally:
        # Every run is metered, whatever its outcome (a failed or cancelled run used the
        # devices too): wall seconds from the claim × the devices it trained on.
        creator_tier.record_compute(
            job_id=job_id, seconds=time.monotonic() - began, devices=measured["devices"],
            tokens=measured["tokens"],
        )  # fmt: skip
    if lease.lost:
        log.warning("training job %s was taken over by another worker; this one stopped", job_id)
        return
    _finish(job_id, worker, status, error)


def _train_and_evaluate(job_id: int, lease: _Lease, measured: dict[str, int]) -> tuple[str, str]:
    """The job's outcome: (status, error). A version is recorded when it succeeds; ``measured``
    gets the devices it trained on and its training tokens."""
    from trainer.config import JobConfig
    from trainer.errors import Stopped, TrainingError
    from trainer.launch import train

    reporter = _Reporter(job_id, lease)
    try:
        with session_scope() as session:
            job = session.get(TrainingJob, job_id)
            data = session.get(Dataset, job.dataset_id) if job else None
            assert job is not None and data is not None
            dataset_path, job_config, output_dir = data.storage_path, job.config, job.output_dir
        records = _load_splits(dataset_path)
        config = JobConfig.from_dict(job_config)
        result = train(
            config, dataset=[r for r in records if r["split"] != "test"],
            output_dir=output_dir, resume=True, on_progress=reporter,
            should_stop=lease.should_stop,
        )  # fmt: skip
        report = result.report or {}
        parallel = report.get("device") == "cuda"
        measured["devices"] = max(1, int(report.get("processes") or 1)) if parallel else 1
        measured["tokens"] = int(report.get("train_tokens") or 0)
        if result.status == "cancelled" or lease.should_stop():
            return "cancelled", ""
        metrics = _evaluate(str(result.adapter_dir), records, config, lease)
        _record_version(job_id, lease.worker, str(result.adapter_dir), metrics, result.report)
        return "succeeded", ""
    except Stopped:
        return "cancelled", ""
    except TrainingError as error:
        return "failed", str(error)
    except Exception as error:
        log.exception("training job %s failed", job_id)
        return "failed", f"The job failed unexpectedly ({type(error).__name__}: {error})."


def held_out_for_gate(
    records: list[dict[str, Any]], *, eval_fraction: float, seed: int
) -> tuple[str, list[dict[str, Any]], str]:
    """What the gate measures: the test split; when it is empty, the validation split; when
    that is empty too, the examples the trainer held out of the training split (the same
    seeded choice, never trained on). Returns (what was used, the examples, why, or "")."""
    from trainer.data import load_conversations, split_conversations

    test = [r for r in records if r["split"] == "test"]
    if test:
        return "test", test, ""
    validation = [{**r, "split": "test"} for r in records if r["split"] == "validation"]
    if validation:
        return "validation", validation, (
            "The test split is empty (too few documents to give it one of its own), so the "
            f"gate measured the {len(validation)} validation examples instead; training used "
            "them only for its eval loss."
        )  # fmt: skip
    train = [r for r in records if r["split"] == "train"]
    conversations = load_conversations([{**r, "split": "train"} for r in train])
    _kept, held = split_conversations(conversations, eval_fraction=eval_fraction, seed=seed)
    chosen = [{**train[conversations.index(c)], "split": "test"} for c in held]
    if chosen:
        return "training hold-out", chosen, (
            "The test and validation splits are empty (the dataset has a single document, or "
            f"documents that share duplicates), so the gate measured the {len(chosen)} examples "
            "training held out of its own split: they come from the same documents, so the gain "
            "is optimistic. Add documents and snapshot again for a real test split."
        )  # fmt: skip
    return "none", [], (
        "No held-out examples: the test and validation splits are empty and the training split "
        "is too small to hold examples out. Add documents (each document goes to one split) "
        "and snapshot again."
    )  # fmt: skip


def _evaluate(
    adapter_dir: str, records: list[dict[str, Any]], config: Any, lease: _Lease
) -> dict[str, Any]:
    from trainer.evaluate import evaluate

    used, held_out, note = held_out_for_gate(
        records, eval_fraction=config.eval_fraction, seed=config.seed
    )
    about = {"split": used, "examples": len(held_out), "note": note}
    if not held_out:
        return {"note": note, "held_out": about}
    report = evaluate(
        adapter_dir, held_out, base_model=config.base_model, margin=gate_margin(),
        should_stop=lease.should_stop,
    )  # fmt: skip
    return {**json.loads(json.dumps(report.to_dict(), default=str)), "held_out": about}


def _owned(session: Session, job_id: int, worker: str) -> TrainingJob | None:
    """The job row, if this worker still runs it."""
    job = session.get(TrainingJob, job_id)
    if job is None or job.worker != worker or job.status != "running":
        return None
    return job


def _record_version(
    job_id: int, worker: str, adapter_dir: str, metrics: dict[str, Any], report: dict[str, Any]
) -> None:
    with session_scope() as session:
        job = _owned(session, job_id, worker)
        if job is None:
            return
        latest = session.exec(
            select(func.max(ModelVersion.version)).where(
                ModelVersion.assistant_id == job.assistant_id
            )
        ).one()
        session.add(
            ModelVersion(
                assistant_id=job.assistant_id, training_job_id=job_id, dataset_id=job.dataset_id,
                version=int(latest or 0) + 1, base_model=job.base_model, adapter_path=adapter_dir,
                metrics=metrics, report=json.loads(json.dumps(report, default=str)),
            )
        )  # fmt: skip


def _finish(job_id: int, worker: str, status: str, error: str = "") -> None:
    with session_scope() as session:
        job = _owned(session, job_id, worker)
        if job is not None:
            job.status, job.error, job.finished_at = status, error[:4000], utcnow()


@body("resume_stale_jobs")
def resume_stale_jobs() -> list[int]:
    """Re-queue running jobs whose worker stopped sending heartbeats (it died or was killed).

    Each job is re-queued by a conditional UPDATE, so a heartbeat written meanwhile keeps it its
    worker's; a job queued twice (every worker runs this) still runs once: :func:`_claim`."""
    cutoff = utcnow() - timedelta(seconds=get_settings().job_stale_seconds)
    stale_beat = col(TrainingJob.heartbeat_at).is_(None) | (col(TrainingJob.heartbeat_at) < cutoff)
    ids = []
    with session_scope() as session:
        stale = session.exec(
            select(TrainingJob).where(TrainingJob.status == "running", stale_beat)
        ).all()
        for job in stale:
            requeued = session.execute(
                update(TrainingJob)
                .where(
                    col(TrainingJob.id) == job.id,
                    col(TrainingJob.status) == "running",
                    col(TrainingJob.worker) == job.worker,
                    stale_beat,
                )
                .values(
                    status="queued", progress={**job.progress, "resumed_from_worker": job.worker}
                )
                .returning(col(TrainingJob.id))
                .execution_options(synchronize_session=False)
            ).first()
            if requeued:
                ids.append(job.id or 0)
    for job_id in ids:
        log.warning("training job %s lost its worker; resuming it from its last checkpoint", job_id)
        enqueue(job_id)
    return ids


@body("build_tiny_model")
def build_tiny_model(output_dir: str) -> str:
    """Build the tiny local base model into ``output_dir`` (see :mod:`trainer.tiny`)."""
    from trainer import tiny

    return str(tiny.build_tiny_model(output_dir))
