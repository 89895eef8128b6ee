"""Training jobs and model versions: launch, queue position, cancel (into a resumable state),
resume or drop a cancelled job's checkpoints, the knowledge-gain gate and publishing (exports
are :mod:`gptstudio.services.bundle`).

This is the web side and uses only torch-free parts of :mod:`trainer` (config and registry). A
queue job (:mod:`gptstudio.jobs.training`) trains, reports live progress, evaluates, resumes
jobs whose worker died.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

from sqlalchemy import and_, func, or_
from sqlmodel import Session, col, select

from gptstudio.db import session_scope, utcnow
from gptstudio.errors import DomainError, InvalidInput, ModelNotFound, NotFound
from gptstudio.models import Assistant, Dataset, ModelVersion, Role, Tier, TrainingJob
from gptstudio.models.user import UserPublic
from gptstudio.services import audit, creator_tier
from gptstudio.services.access import Client
from gptstudio.services.assistant import owned_assistant
from gptstudio.settings import get_settings

ACTIVE = ("queued", "running")
MIN_TRAIN_EXAMPLES = 4
# Higher runs first: the creator's GPT Studio tier orders the queue; admins' jobs go first.
PRIORITY_BY_TIER = {Tier.free: 0, Tier.individual: 10, Tier.professional: 20, Tier.enterprise: 30}
ADMIN_PRIORITY = 40


def priority_of(actor: UserPublic, session: Session | None = None) -> int:
    """The queue priority of a new job: by the creator's tier (admins first); the priority an
    admin set on the tier wins over the default for its name."""
    if actor.role == Role.admin:
        return ADMIN_PRIORITY
    if session is not None:
        defined = creator_tier.queue_priority(session, actor.id)
        if defined is not None:
            return defined
    return PRIORITY_BY_TIER[Tier(actor.tier)]


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


def dataset_size(folder: str | Path) -> Any:
    """The training split's examples and estimated tokens (from characters: the web process has
    no tokenizer), for sizing a preset; a missing or unreadable file counts as empty."""
    from trainer.config import DatasetSize, estimate_tokens

    examples, total, longest = 0, 0, 0
    try:
        lines = (Path(folder) / "train.jsonl").read_text(encoding="utf-8").splitlines()
    except OSError:
        lines = []
    for line in lines:
        try:
            messages = json.loads(line).get("messages") or []
        except (json.JSONDecodeError, AttributeError):
            continue
        # Each turn also costs its role and the chat template's markers: ~16 characters.
        chars = sum(len(str(m.get("content", ""))) + 16 for m in messages if isinstance(m, dict))
        examples, total, longest = examples + 1, total + chars, max(longest, chars)
    return DatasetSize(
        examples=examples, tokens=estimate_tokens(total), longest=estimate_tokens(longest)
    )


def build_config(
    *,
    base_model: str,
    preset: str,
    method: str,
    n_examples: int,
    overrides: dict[str, Any],
    size: Any = None,
) -> Any:
    """The typed job config (torch-free), the preset sized to the dataset when ``size`` (a
    :class:`trainer.config.DatasetSize`) is given; bad combinations raise InvalidInput with the
    reason."""
    from trainer.config import JobConfig, preset_for
    from trainer.errors import ConfigError

    try:
        chosen = preset_for(n_examples) if preset == "auto" else preset
        return JobConfig.from_preset(
            chosen, base_model=base_model, method=method, size=size, **overrides
        )
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
    confirm_overage: bool = False,
) -> TrainingJob:
    """Queue a fine-tune of ``base_model`` on a dataset version.

    The creator's tier is checked first (:func:`creator_tier.check_training`): a job beyond the
    month's included compute is refused, or needs ``confirm_overage`` where the tier bills it."""
    with session_scope() as session:
        data = _dataset(session, actor=actor, dataset_id=dataset_id)
        n_train = int(data.counts.get("splits", {}).get("train", 0))
        if n_train < MIN_TRAIN_EXAMPLES:
            raise InvalidInput(
                f"Dataset version {data.version} has {n_train} training examples; at least "
                f"{MIN_TRAIN_EXAMPLES} are needed. Add documents and snapshot again."
            )
        size = dataset_size(data.storage_path)
        config = build_config(
            base_model=base_model or get_settings().resolved_base_model, preset=preset,
            method=method, n_examples=n_train, overrides=overrides or {}, size=size,
        )  # fmt: skip
        estimate = creator_tier.estimate_seconds(
            session, train_tokens=int(size.tokens) * int(config.epochs)
        )
        overage = creator_tier.check_training(
            session, user_id=actor.id, estimated_seconds=estimate, confirm_overage=confirm_overage
        )
        job = TrainingJob(
            assistant_id=data.assistant_id, dataset_id=data.id or 0, base_model=config.base_model,
            config=config.to_dict(), priority=priority_of(actor, session),
            progress={"step": 0, "total_steps": 0, "estimated_device_seconds": round(estimate, 1),
                      "overage_confirmed": overage > 0},
        )  # fmt: skip
        session.add(job)
        session.flush()
        job.output_dir = str(get_settings().artifacts_dir / "jobs" / str(job.id))
        job_id = job.id or 0
    enqueue(job_id)
    return get_job(actor=actor, job_id=job_id)


def enqueue(job_id: int) -> bool:
    """Queue a job (new, or resumed after its worker died) at its priority; remember the task.

    The job row, committed ``queued``, is the intent: while the broker is down this logs and
    returns ``False``, and the training sweep (``gptstudio.jobs.outbox.requeue_training``)
    queues the job once the broker is back."""
    from gptstudio.jobs.tasks import submit, train_task

    with session_scope() as session:
        job = session.get(TrainingJob, job_id)
        assert job is not None
        priority = job.priority
    task_id = submit(train_task, job_id, priority=priority)  # higher runs first
    if task_id is None:
        return False
    with session_scope() as session:
        job = session.get(TrainingJob, job_id)
        if job is not None:
            job.queue_task_id = task_id
    return True


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
    """A queued job is cancelled at once; a running one stops within about a second (mid-step,
    validation or evaluation) and saves a checkpoint that :func:`resume_job` continues from."""
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


def can_resume(job: TrainingJob) -> bool:
    """A cancelled job whose checkpoints the creator kept can continue where it stopped."""
    return job.status == "cancelled" and not job.progress.get("checkpoints_removed")


def resume_job(*, actor: UserPublic, job_id: int, client: Client = Client()) -> TrainingJob:
    """Queue a cancelled job again: it continues from the checkpoint its cancel saved."""
    with session_scope() as session:
        job = _owned_job(session, actor=actor, job_id=job_id)
        if not can_resume(job):
            raise InvalidInput(_why_not_resumable(job))
        job.status, job.cancel_requested, job.error = "queued", False, ""
        job.finished_at, job.worker, job.heartbeat_at = None, "", None
        audit.record(
            session, action="training.resumed", actor_id=actor.id, target=f"job:{job_id}",
            ip=client.ip, user_agent=client.user_agent,
        )  # fmt: skip
    enqueue(job_id)
    return get_job(actor=actor, job_id=job_id)


def remove_checkpoints(*, actor: UserPublic, job_id: int, client: Client = Client()) -> TrainingJob:
    """Delete a cancelled job's checkpoints (it can no longer be resumed)."""
    with session_scope() as session:
        job = _owned_job(session, actor=actor, job_id=job_id)
        if not can_resume(job):
            raise InvalidInput(_why_not_resumable(job))
        if job.output_dir:
            shutil.rmtree(Path(job.output_dir) / "checkpoints", ignore_errors=True)
        job.progress = {**job.progress, "checkpoints_removed": True}
        audit.record(
            session, action="training.checkpoints_removed", actor_id=actor.id,
            target=f"job:{job_id}", ip=client.ip, user_agent=client.user_agent,
        )  # fmt: skip
    return get_job(actor=actor, job_id=job_id)


def _owned_job(session: Session, *, actor: UserPublic, job_id: int) -> TrainingJob:
    job = session.get(TrainingJob, job_id)
    if job is None:
        raise NotFound("There is no such training job.")
    owned_assistant(session, actor=actor, assistant_id=job.assistant_id)
    return job


def _why_not_resumable(job: TrainingJob) -> str:
    if job.status == "running" and job.cancel_requested:
        return "The job is still stopping; try again in a moment."
    if job.status == "cancelled":
        return "The job's checkpoints were removed; start a new job."
    return f"Only a cancelled job can be resumed; this one is {job.status}."


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
        publish_version(session, assistant, version)
        audit.record(
            session, action="model.published", actor_id=actor.id, target=f"version:{version_id}",
            ip=client.ip, user_agent=client.user_agent,
            detail={"gate_passed": bool(gate.get("passed")), "override_reason": reason},
        )  # fmt: skip
        return version


def publish_version(session: Session, assistant: Assistant, version: ModelVersion) -> None:
    """Make ``version`` the assistant's live one (the one before kept for rollback)."""
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
