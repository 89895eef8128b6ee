"""Training jobs and model versions: launch, queue position, cancel, live progress, resume after
a worker dies, evaluation, the knowledge-gain gate, publishing and export.

The web process uses only torch-free parts of :mod:`trainer` (config and registry); the worker
side (:func:`run_job`) imports the training engine.
"""

from __future__ import annotations

import json
import logging
import os
import socket
import time
from datetime import timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import and_, func, or_
from sqlmodel import Session, col, select

from gptstudio.db import session_scope, utcnow
from gptstudio.errors import DomainError, InvalidInput, ModelNotFound, NotFound
from gptstudio.models import Assistant, Dataset, ModelVersion, Role, Tier, TrainingJob
from gptstudio.models.user import UserPublic
from gptstudio.services import audit
from gptstudio.services.access import Client
from gptstudio.services.assistant import owned_assistant
from gptstudio.settings import get_settings

log = logging.getLogger(__name__)
ACTIVE = ("queued", "running")
# Higher runs first: the creator's GPT Studio tier orders the queue; admins' jobs go first.
PRIORITY_BY_TIER = {Tier.free: 0, Tier.individual: 10, Tier.professional: 20, Tier.enterprise: 30}
ADMIN_PRIORITY = 40


def priority_of(actor: UserPublic) -> int:
    """The queue priority of a new job: by the creator's tier (admins first)."""
    return ADMIN_PRIORITY if actor.role == Role.admin else PRIORITY_BY_TIER[Tier(actor.tier)]


PROGRESS_EVERY_SECONDS = 1.0


class GateBlocked(DomainError):
    status_code = 409
    type = "invalid_request_error"
    code = "gateblocked"


def base_models() -> list[dict[str, Any]]:
    """The registry's base models for the form, the configured default first."""
    from trainer.registry import ENTRIES

    default = get_settings().resolved_base_model
    entries = [entry.to_dict() for entry in ENTRIES if entry.hub_id]
    return [{"key": default, "name": f"Configured default ({default})"}, *entries]


def _dataset(session: Session, *, actor: UserPublic, dataset_id: int) -> Dataset:
    data = session.get(Dataset, dataset_id)
    if data is None:
        raise NotFound("There is no such dataset version.")
    owned_assistant(session, actor=actor, assistant_id=data.assistant_id)
    return data


def build_config(
    *, base_model: str, preset: str, method: str, n_examples: int, overrides: dict[str, Any]
) -> Any:
    """The typed job config (torch-free); bad combinations raise InvalidInput with the reason."""
    from trainer.config import JobConfig, preset_for
    from trainer.errors import ConfigError

    try:
        chosen = preset_for(n_examples) if preset == "auto" else preset
        return JobConfig.from_preset(chosen, base_model=base_model, method=method, **overrides)
    except (ConfigError, TypeError, ValueError) as error:
        raise InvalidInput(f"The training settings are not valid: {error}") from None


def start_job(
    *,
    actor: UserPublic,
    dataset_id: int,
    base_model: str = "",
    preset: str = "auto",
    method: str = "lora",
    overrides: dict[str, Any] | None = None,
) -> TrainingJob:
    """Queue a fine-tune of ``base_model`` on a dataset version."""
    with session_scope() as session:
        data = _dataset(session, actor=actor, dataset_id=dataset_id)
        n_train = int(data.counts.get("splits", {}).get("train", 0))
        if n_train < 4:
            raise InvalidInput(
                f"Dataset version {data.version} has {n_train} training examples; at least 4 "
                "are needed. Add documents and snapshot again."
            )
        config = build_config(
            base_model=base_model or get_settings().resolved_base_model, preset=preset,
            method=method, n_examples=n_train, overrides=overrides or {},
        )  # fmt: skip
        job = TrainingJob(
            assistant_id=data.assistant_id, dataset_id=data.id or 0, base_model=config.base_model,
            config=config.to_dict(), priority=priority_of(actor),
            progress={"step": 0, "total_steps": 0},
        )  # fmt: skip
        session.add(job)
        session.flush()
        job.output_dir = str(get_settings().artifacts_dir / "jobs" / str(job.id))
        job_id = job.id or 0
    _enqueue(job_id)
    return get_job(actor=actor, job_id=job_id)


def _enqueue(job_id: int) -> None:
    from trainer import tasks

    with session_scope() as session:
        job = session.get(TrainingJob, job_id)
        assert job is not None
        task = tasks.train_task(job_id, priority=job.priority)  # higher runs first
        job.queue_task_id = task.id


def get_job(*, actor: UserPublic, job_id: int) -> TrainingJob:
    with session_scope() as session:
        job = session.get(TrainingJob, job_id)
        if job is None:
            raise NotFound("There is no such training job.")
        owned_assistant(session, actor=actor, assistant_id=job.assistant_id)
        return job


def list_jobs(*, actor: UserPublic, assistant_id: int) -> list[TrainingJob]:
    with session_scope() as session:
        owned_assistant(session, actor=actor, assistant_id=assistant_id)
        return list(
            session.exec(
                select(TrainingJob)
                .where(TrainingJob.assistant_id == assistant_id)
                .order_by(col(TrainingJob.id).desc())
            ).all()
        )


def queue_position(job: TrainingJob) -> int:
    """1 for the next job to run; 0 when the job is not waiting."""
    if job.status != "queued":
        return 0
    with session_scope() as session:
        ahead = session.exec(
            select(func.count())
            .select_from(TrainingJob)
            .where(
                TrainingJob.status == "queued",
                or_(
                    col(TrainingJob.priority) > job.priority,
                    and_(col(TrainingJob.priority) == job.priority, col(TrainingJob.id) < job.id),
                ),
            )
        ).one()
    return int(ahead) + 1


def cancel_job(*, actor: UserPublic, job_id: int, client: Client = Client()) -> TrainingJob:
    """A queued job is cancelled at once; a running one stops after its current step."""
    from gptstudio.jobs.queue import huey

    with session_scope() as session:
        job = session.get(TrainingJob, job_id)
        if job is None:
            raise NotFound("There is no such training job.")
        owned_assistant(session, actor=actor, assistant_id=job.assistant_id)
        if job.status not in ACTIVE:
            raise InvalidInput(f"The job is already {job.status}.")
        job.cancel_requested = True
        if job.status == "queued":
            if job.queue_task_id:
                huey.revoke_by_id(job.queue_task_id)
            job.status, job.finished_at = "cancelled", utcnow()
        audit.record(
            session, action="training.cancelled", actor_id=actor.id, target=f"job:{job_id}",
            ip=client.ip, user_agent=client.user_agent,
        )  # fmt: skip
    return get_job(actor=actor, job_id=job_id)


# --- worker side ----------------------------------------------------------------------------


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
    for split in ("train", "validation", "test"):
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


def run_job(job_id: int) -> None:
    """Train, evaluate and record a model version; resumes from the job's last checkpoint."""
    job = _claim(job_id)
    if job is None:
        return
    from trainer.config import JobConfig
    from trainer.errors import TrainingError

    reporter = _Reporter(job_id)
    try:
        with session_scope() as session:
            data = session.get(Dataset, job.dataset_id)
            assert data is not None
            dataset_path = data.storage_path
        records = _load_splits(dataset_path)
        config = JobConfig.from_dict(job.config)
        from trainer.train import train

        result = train(
            config, dataset=[r for r in records if r["split"] != "test"],
            output_dir=job.output_dir, resume=True, on_progress=reporter,
            should_stop=reporter.should_stop,
        )  # fmt: skip
        if result.status == "cancelled":
            _finish(job_id, "cancelled")
            return
        metrics = _evaluate(str(result.adapter_dir), records, config.base_model)
        _record_version(job_id, str(result.adapter_dir), metrics, result.report)
        _finish(job_id, "succeeded")
    except TrainingError as error:
        _finish(job_id, "failed", str(error))
    except Exception as error:
        log.exception("training job %s failed", job_id)
        _finish(job_id, "failed", f"The job failed unexpectedly ({type(error).__name__}: {error}).")


def _evaluate(adapter_dir: str, records: list[dict[str, Any]], base_model: str) -> dict[str, Any]:
    from trainer.evaluate import evaluate

    held_out = [r for r in records if r["split"] == "test"] or [
        {**r, "split": "test"} for r in records if r["split"] == "validation"
    ]
    if not held_out:
        return {"note": "No held-out examples: the dataset has no test or validation split."}
    report = evaluate(
        adapter_dir, held_out, base_model=base_model, margin=get_settings().gate_margin
    )
    return json.loads(json.dumps(report.to_dict(), default=str))


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
        _enqueue(job_id)
    return ids


# --- model versions ----------------------------------------------------------------------


def list_versions(*, actor: UserPublic, assistant_id: int) -> list[ModelVersion]:
    with session_scope() as session:
        owned_assistant(session, actor=actor, assistant_id=assistant_id)
        return list(
            session.exec(
                select(ModelVersion)
                .where(ModelVersion.assistant_id == assistant_id)
                .order_by(col(ModelVersion.version).desc())
            ).all()
        )


def gate_of(version: ModelVersion) -> dict[str, Any]:
    gate = version.metrics.get("gate")
    if isinstance(gate, dict):
        return gate
    return {"passed": False, "message": version.metrics.get("note", "It has no evaluation.")}


def publish(
    *, actor: UserPublic, version_id: int, override_reason: str = "", client: Client = Client()
) -> ModelVersion:
    """Make a version the assistant's live model; blocked by the gate unless a reason is given."""
    reason = override_reason.strip()
    with session_scope() as session:
        version = session.get(ModelVersion, version_id)
        if version is None:
            raise ModelNotFound("There is no such model version.")
        assistant = owned_assistant(session, actor=actor, assistant_id=version.assistant_id)
        gate = gate_of(version)
        if not gate.get("passed"):
            if len(reason) < 10:
                raise GateBlocked(
                    f"Publishing is blocked: {gate.get('message', 'no knowledge gain')} "
                    "Write a reason (10+ characters) to publish anyway."
                )
            version.gate_override_reason = reason
        _publish(session, assistant, version)
        audit.record(
            session, action="model.published", actor_id=actor.id, target=f"version:{version_id}",
            ip=client.ip, user_agent=client.user_agent,
            detail={"gate_passed": bool(gate.get("passed")), "override_reason": reason},
        )  # fmt: skip
        return version


def _publish(session: Session, assistant: Assistant, version: ModelVersion) -> None:
    for other in session.exec(
        select(ModelVersion).where(
            ModelVersion.assistant_id == assistant.id, ModelVersion.status == "published"
        )
    ).all():
        other.status = "retired"
    version.status, version.published_at = "published", utcnow()
    if assistant.current_model_version_id not in (None, version.id):
        assistant.previous_model_version_id = assistant.current_model_version_id  # for rollback
    if assistant.candidate_model_version_id == version.id:
        assistant.candidate_model_version_id, assistant.candidate_percent = None, 0
    assistant.current_model_version_id = version.id
    assistant.is_published, assistant.updated_at = True, utcnow()


def request_export(*, actor: UserPublic, version_id: int) -> None:
    """Queue merging the adapter into a standalone model folder."""
    with session_scope() as session:
        version = session.get(ModelVersion, version_id)
        if version is None:
            raise ModelNotFound("There is no such model version.")
        owned_assistant(session, actor=actor, assistant_id=version.assistant_id)
    from trainer import tasks

    tasks.export_task(version_id)


def export_version(version_id: int) -> None:
    """Worker side: merge-and-export; the path is recorded on the version."""
    from trainer.merge import merge_adapter

    with session_scope() as session:
        version = session.get(ModelVersion, version_id)
        if version is None:
            return
        adapter, base = version.adapter_path, version.base_model
        name = f"assistant-{version.assistant_id}-v{version.version}"
        target = get_settings().artifacts_dir / "exports" / name
    merge_adapter(adapter, target, base_model=base)
    with session_scope() as session:
        version = session.get(ModelVersion, version_id)
        if version is not None:
            version.export_path = str(target)
