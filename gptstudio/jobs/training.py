"""The training jobs: train a job's config on its dataset version with live progress and a
heartbeat, evaluate base against tuned, record a model version; resume jobs whose worker died;
export a version as a standalone model; build the tiny local base model.

The training engine is :mod:`trainer` (torch), imported inside each job, so loading this module
(every worker does) stays light. The web side, queueing and cancelling, is
:mod:`gptstudio.services.training`.
"""

from __future__ import annotations

import json
import logging
import os
import socket
import tarfile
import time
from datetime import timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import func
from sqlmodel import col, select

from gptstudio.db import session_scope, utcnow
from gptstudio.jobs.tasks import body
from gptstudio.models import Dataset, ModelVersion, TrainingJob
from gptstudio.services.dataset import SPLITS
from gptstudio.services.training import ACTIVE, enqueue, export_archive_path
from gptstudio.settings import get_settings

log = logging.getLogger(__name__)
PROGRESS_EVERY_SECONDS = 1.0


def _this_worker() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


def _claim(job_id: int) -> TrainingJob | None:
    with session_scope() as session:
        job = session.get(TrainingJob, job_id)
        if job is None or job.status not in ACTIVE or job.cancel_requested:
            if job is not None and job.cancel_requested and job.status in ACTIVE:
                job.status, job.finished_at = "cancelled", utcnow()
            return None
        job.status, job.worker, job.heartbeat_at = "running", _this_worker(), utcnow()
        job.started_at = job.started_at or utcnow()
        return job


def _load_splits(dataset_path: str) -> list[dict[str, Any]]:
    records = []
    for split in SPLITS:
        path = Path(dataset_path) / f"{split}.jsonl"
        for line in path.read_text(encoding="utf-8").splitlines():
            if line.strip():
                records.append({**json.loads(line), "split": split})
    return records


class _Reporter:
    """Writes progress to the job row at most once a second; answers 'should I stop?'."""

    def __init__(self, job_id: int) -> None:
        self.job_id, self.last = job_id, 0.0
        self.points: list[dict[str, Any]] = []
        self.cancel = False

    def __call__(self, update: dict[str, Any]) -> None:
        if update.get("loss") is not None:
            self.points.append(
                {k: update.get(k) for k in ("step", "loss", "eval_loss", "learning_rate")}
            )
        final = update.get("event") in {"done", "cancelled"}
        if not final and time.monotonic() - self.last < PROGRESS_EVERY_SECONDS:
            return
        self.last = time.monotonic()
        with session_scope() as session:
            job = session.get(TrainingJob, self.job_id)
            if job is None:
                self.cancel = True
                return
            kept = {k: v for k, v in job.progress.items() if k == "resumed_from_worker"}
            job.progress = {**kept, **{k: v for k, v in update.items() if _plain(v)}}
            job.history = [*job.history, *self.points]
            job.heartbeat_at = utcnow()
            self.points = []
            self.cancel = job.cancel_requested

    def should_stop(self) -> bool:
        return self.cancel


def _plain(value: Any) -> bool:
    return value is None or isinstance(value, (int, float, str, bool))


@body("train")
def run_job(job_id: int) -> None:
    """Train, evaluate and record a model version; resumes from the job's last checkpoint."""
    job = _claim(job_id)
    if job is None:
        return
    from trainer.config import JobConfig
    from trainer.errors import TrainingError
    from trainer.launch import train

    reporter = _Reporter(job_id)
    try:
        with session_scope() as session:
            data = session.get(Dataset, job.dataset_id)
            assert data is not None
            dataset_path = data.storage_path
        records = _load_splits(dataset_path)
        config = JobConfig.from_dict(job.config)
        result = train(
            config, dataset=[r for r in records if r["split"] != "test"],
            output_dir=job.output_dir, resume=True, on_progress=reporter,
            should_stop=reporter.should_stop,
        )  # fmt: skip
        if result.status == "cancelled":
            _finish(job_id, "cancelled")
            return
        metrics = _evaluate(str(result.adapter_dir), records, config)
        _record_version(job_id, str(result.adapter_dir), metrics, result.report)
        _finish(job_id, "succeeded")
    except TrainingError as error:
        _finish(job_id, "failed", str(error))
    except Exception as error:
        log.exception("training job %s failed", job_id)
        _finish(job_id, "failed", f"The job failed unexpectedly ({type(error).__name__}: {error}).")


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


def _evaluate(adapter_dir: str, records: list[dict[str, Any]], config: Any) -> dict[str, Any]:
    from trainer.evaluate import evaluate

    used, held_out, note = held_out_for_gate(
        records, eval_fraction=config.eval_fraction, seed=config.seed
    )
    about = {"split": used, "examples": len(held_out), "note": note}
    if not held_out:
        return {"note": note, "held_out": about}
    report = evaluate(
        adapter_dir, held_out, base_model=config.base_model, margin=get_settings().gate_margin
    )
    return {**json.loads(json.dumps(report.to_dict(), default=str)), "held_out": about}


def _record_version(
    job_id: int, adapter_dir: str, metrics: dict[str, Any], report: dict[str, Any]
) -> None:
    with session_scope() as session:
        job = session.get(TrainingJob, job_id)
        assert job is not None
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


def _finish(job_id: int, status: str, error: str = "") -> None:
    with session_scope() as session:
        job = session.get(TrainingJob, job_id)
        if job is not None:
            job.status, job.error, job.finished_at = status, error[:4000], utcnow()


@body("resume_stale_jobs")
def resume_stale_jobs() -> list[int]:
    """Re-queue running jobs whose worker stopped sending heartbeats (it died or was killed)."""
    cutoff = utcnow() - timedelta(seconds=get_settings().job_stale_seconds)
    with session_scope() as session:
        stale = session.exec(
            select(TrainingJob).where(
                TrainingJob.status == "running",
                col(TrainingJob.heartbeat_at).is_(None) | (col(TrainingJob.heartbeat_at) < cutoff),
            )
        ).all()
        ids = [job.id or 0 for job in stale]
        for job in stale:
            job.status = "queued"
            job.progress = {**job.progress, "resumed_from_worker": job.worker}
    for job_id in ids:
        log.warning("training job %s lost its worker; resuming it from its last checkpoint", job_id)
        enqueue(job_id)
    return ids


@body("export_version")
def export_version(version_id: int) -> None:
    """Merge the version's adapter into a standalone model and pack it as one tar file (what the
    training page's download serves); the folder is recorded on the version. Exporting again
    serves the model merged before: the same adapter on the same base merges the same."""
    from trainer.merge import merge_adapter

    with session_scope() as session:
        version = session.get(ModelVersion, version_id)
        if version is None:
            return
        adapter, base = version.adapter_path, version.base_model
        name = f"assistant-{version.assistant_id}-v{version.version}"
        target = get_settings().artifacts_dir / "exports" / name
    if not (target / "config.json").is_file():
        merge_adapter(adapter, target, base_model=base)
    archive = export_archive_path(target)
    if not archive.is_file():
        partial = archive.with_name(f"{archive.name}.{os.getpid()}.partial")
        with tarfile.open(partial, "w") as packed:
            packed.add(target, arcname=name)
        partial.replace(archive)
    with session_scope() as session:
        version = session.get(ModelVersion, version_id)
        if version is not None:
            version.export_path = str(target)


@body("build_tiny_model")
def build_tiny_model(output_dir: str) -> str:
    """Build the tiny local base model into ``output_dir`` (see :mod:`trainer.tiny`)."""
    from trainer import tiny

    return str(tiny.build_tiny_model(output_dir))
