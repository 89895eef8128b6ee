"""OpenAI's fine-tuning API on GPT Studio: training files, jobs, their events and checkpoints, and
the ``ft:`` models they make.

An API job is a training job like the training page's, on the same queue, trainer, evaluation
and gate (:mod:`.training`); only the way in differs:

* a file (purpose ``fine-tune``) is chat-format JSON Lines, read line by line with the upload's
  errors (:func:`gptstudio.curation.parsers.tabular.read_chat_jsonl`); a bad line refuses the
  whole file, naming each bad line;
* a job runs for one of its owner's assistants: the one named in ``metadata["assistant"]`` (its
  slug), else the owner's API assistant for the job's ``suffix`` (made on first use, private,
  named after the suffix, or "API fine-tunes" without one), so the jobs of one suffix are the
  versions of one assistant, on its training page;
* the files become a dataset version of that assistant (training file → train split, validation
  file → validation split; the gate measures the validation split, else a seeded hold-out of
  the training split, as for any snapshot without a test split); the same files again reuse it;
* the job's model is ``ft:<base>:user-<owner id>:<suffix>:<job id>``: its owner may chat with it
  (``/v1/chat/completions``) once the job has succeeded, without publishing it; subscribers see
  it only when the creator publishes the version through the gate on the training page.
"""

from __future__ import annotations

import json
import re
import secrets
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from sqlmodel import Session, col, select

from gptstudio.db import session_scope, utcnow
from gptstudio.errors import InvalidInput, ModelNotFound, NotFound
from gptstudio.models import (
    Assistant,
    Dataset,
    FineTuningFile,
    FineTuningJob,
    ModelVersion,
    Role,
    TrainingJob,
)
from gptstudio.models.user import UserPublic
from gptstudio.services import assistant, training
from gptstudio.services.access import authorize
from gptstudio.services.dataset import SPLITS
from gptstudio.settings import get_settings

PURPOSE = "fine-tune"
MAX_LIST = 100
SUFFIX_LIMIT = 64
DEFAULT_ASSISTANT = "API fine-tunes"
# OpenAI's job states, from the training job's.
STATES = ("validating_files", "queued", "running", "succeeded", "failed", "cancelled")


# --- files --------------------------------------------------------------------------------


def _files_dir(owner_id: int) -> Path:
    return get_settings().artifacts_dir / "fine_tuning_files" / str(owner_id)


def create_file(*, actor: UserPublic, filename: str, purpose: str, data: bytes) -> FineTuningFile:
    """Store a chat-format JSONL training file after checking every line of it."""
    from gptstudio.curation.parsers.tabular import read_chat_jsonl

    authorize(actor, Role.creator)
    if purpose != PURPOSE:
        raise InvalidInput(
            f"purpose must be '{PURPOSE}'; GPT Studio takes files for fine-tuning only."
        )
    limit = get_settings().max_upload_mb
    if len(data) > limit * 1024 * 1024:
        raise InvalidInput(f"The file is larger than the {limit} MB upload limit.")
    name = Path(filename or "").name.strip()[:255] or "training.jsonl"
    if not data.strip():
        raise InvalidInput(f"{name} is empty; send chat-format JSON Lines, one example a line.")
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as error:
        raise InvalidInput(
            f"{name} is not UTF-8 text (byte {error.start}); save it again as UTF-8 JSON Lines."
        ) from None
    public_id = f"file-{secrets.token_hex(12)}"
    read = read_chat_jsonl(text=text, document_id=public_id)
    if read.problems:
        more = f" And {read.more_problems} more lines." if read.more_problems else ""
        raise InvalidInput(f"{name} is not chat-format JSON Lines: {' '.join(read.problems)}{more}")
    folder = _files_dir(actor.id)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{public_id}.jsonl"
    path.write_bytes(data)
    with session_scope() as session:
        row = FineTuningFile(
            public_id=public_id, owner_id=actor.id, filename=name, purpose=purpose,
            bytes=len(data), examples=len(read.examples), storage_path=str(path),
        )  # fmt: skip
        session.add(row)
        session.flush()
        return row


def _owned_file(session: Session, *, actor: UserPublic, file_id: str) -> FineTuningFile:
    row = session.exec(select(FineTuningFile).where(FineTuningFile.public_id == file_id)).first()
    if row is None or (row.owner_id != actor.id and actor.role != Role.admin):
        raise NotFound(f"No such File object: {file_id}")
    return row


def get_file(*, actor: UserPublic, file_id: str) -> FineTuningFile:
    with session_scope() as session:
        return _owned_file(session, actor=actor, file_id=file_id)


def file_content(*, actor: UserPublic, file_id: str) -> Path:
    return Path(get_file(actor=actor, file_id=file_id).storage_path)


def delete_file(*, actor: UserPublic, file_id: str) -> None:
    """Delete a file (jobs made from it keep their dataset version)."""
    with session_scope() as session:
        row = _owned_file(session, actor=actor, file_id=file_id)
        Path(row.storage_path).unlink(missing_ok=True)
        session.delete(row)


@dataclass(frozen=True)
class Page:
    items: list[Any]
    has_more: bool


def _limit(limit: int) -> int:
    if not 1 <= limit <= MAX_LIST:
        raise InvalidInput(f"limit must be between 1 and {MAX_LIST}.")
    return limit


def list_files(
    *, actor: UserPublic, purpose: str = "", limit: int = 20, after: str = "", order: str = "desc"
) -> Page:
    """The actor's files, newest first (``order="asc"``: oldest first), ``limit`` after the file
    ``after``."""
    limit = _limit(limit)
    if order not in ("asc", "desc"):
        raise InvalidInput("order must be 'asc' or 'desc'.")
    with session_scope() as session:
        query = select(FineTuningFile).where(FineTuningFile.owner_id == actor.id)
        if purpose:
            query = query.where(FineTuningFile.purpose == purpose)
        if after:
            cursor = _owned_file(session, actor=actor, file_id=after)
            newer = col(FineTuningFile.id) > (cursor.id or 0)
            query = query.where(newer if order == "asc" else col(FineTuningFile.id) < cursor.id)
        ordering = col(FineTuningFile.id) if order == "asc" else col(FineTuningFile.id).desc()
        rows = list(session.exec(query.order_by(ordering).limit(limit + 1)).all())
    return Page(rows[:limit], len(rows) > limit)


# --- base models --------------------------------------------------------------------------


def _safe_name(text: str) -> str:
    return re.sub(r"[^a-z0-9._-]+", "-", text.lower()).strip("-.")


def base_models() -> dict[str, str]:
    """The base models this installation fine-tunes, by the name the API takes (a registry key;
    the configured default also by its hub id, or by its folder's name when it is a local
    folder), each to what the trainer loads."""
    from trainer.registry import ENTRIES, get_entry

    default = get_settings().resolved_base_model
    offered: dict[str, str] = {}
    entry = get_entry(default)
    if entry is not None:
        offered[entry.key] = default
    elif Path(default).is_dir():
        offered[_safe_name(Path(default).name) or "default"] = default
    else:
        offered[_safe_name(default.rsplit("/", 1)[-1]) or "default"] = default
    for known in ENTRIES:
        if known.hub_id:
            offered.setdefault(known.key, known.hub_id)
    return offered


def _base_model(name: str) -> tuple[str, str]:
    """(the name for ``ft:`` names, what the trainer loads) for the API's ``model``."""
    offered = base_models()
    wanted = name.strip().lower()
    for key, target in offered.items():
        if wanted in (key, target.lower()):
            return key, target
    if wanted.startswith("ft:"):
        raise InvalidInput(
            "Fine-tuning a fine-tuned model again is not supported; name a base model: "
            f"{', '.join(offered)}."
        )
    raise InvalidInput(
        f"The model '{name}' cannot be fine-tuned here; choose one of: {', '.join(offered)}."
    )


# --- jobs ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Hyperparameters:
    n_epochs: int | None = None
    batch_size: int | None = None
    learning_rate_multiplier: float | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "n_epochs": self.n_epochs, "batch_size": self.batch_size,
            "learning_rate_multiplier": self.learning_rate_multiplier,
        }  # fmt: skip


def hyperparameters_of(
    hyperparameters: dict[str, Any] | None, method: dict[str, Any] | None
) -> Hyperparameters:
    """The job's hyperparameters from ``hyperparameters`` or the newer ``method`` form
    (``{"type": "supervised", "supervised": {"hyperparameters": …}}``); ``"auto"`` leaves the
    sized preset's value."""
    given = dict(hyperparameters or {})
    if method:
        kind = str(method.get("type", "supervised"))
        if kind != "supervised":
            raise InvalidInput(
                f"method.type '{kind}' is not supported; GPT Studio fine-tunes with supervised "
                "LoRA."
            )
        inner = method.get("supervised") or {}
        if not isinstance(inner, dict):
            raise InvalidInput("method.supervised must be an object.")
        nested = inner.get("hyperparameters") or {}
        if not isinstance(nested, dict):
            raise InvalidInput("method.supervised.hyperparameters must be an object.")
        given = {**given, **nested}
    unknown = sorted(set(given) - {"n_epochs", "batch_size", "learning_rate_multiplier"})
    if unknown:
        raise InvalidInput(f"Unknown hyperparameters: {', '.join(unknown)}.")

    def number(key: str, kind: type, low: float, high: float) -> Any:
        value = given.get(key, "auto")
        if value == "auto" or value is None:
            return None
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise InvalidInput(f"hyperparameters.{key} must be 'auto' or a number.")
        if kind is int and value != int(value):
            raise InvalidInput(f"hyperparameters.{key} must be a whole number.")
        if not low <= value <= high:
            raise InvalidInput(f"hyperparameters.{key} must be between {low:g} and {high:g}.")
        return kind(value)

    return Hyperparameters(
        n_epochs=number("n_epochs", int, 1, 50),
        batch_size=number("batch_size", int, 1, 256),
        learning_rate_multiplier=number("learning_rate_multiplier", float, 1e-3, 100),
    )


def _suffix(suffix: str | None) -> str:
    text = (suffix or "").strip()
    if len(text) > SUFFIX_LIMIT:
        raise InvalidInput(f"suffix can be at most {SUFFIX_LIMIT} characters.")
    cleaned = _safe_name(text)
    if text and not cleaned:
        raise InvalidInput("suffix needs letters or digits.")
    return cleaned


def _assistant_for(
    session: Session, *, actor: UserPublic, suffix: str, named: str
) -> tuple[int, bool]:
    """(the assistant the job trains, whether it must be made first)."""
    if named:
        found = session.exec(
            select(Assistant).where(
                (Assistant.slug == named) | (Assistant.slug == _safe_name(named))
            )
        ).first()
        if found is None or (found.owner_id != actor.id and actor.role != Role.admin):
            raise InvalidInput(f"metadata.assistant: you have no assistant '{named}'.")
        return found.id or 0, False
    earlier = session.exec(
        select(FineTuningJob.assistant_id)
        .where(FineTuningJob.owner_id == actor.id, FineTuningJob.suffix == suffix)
        .order_by(col(FineTuningJob.id).desc())
    ).first()
    return (earlier, False) if earlier is not None else (0, True)


def _examples_file(session: Session, *, actor: UserPublic, file_id: str, param: str) -> str:
    try:
        row = _owned_file(session, actor=actor, file_id=file_id)
    except NotFound:
        raise InvalidInput(f"{param}: no such file '{file_id}'.") from None
    if row.purpose != PURPOSE:
        raise InvalidInput(f"{param}: the file's purpose is {row.purpose}, not {PURPOSE}.")
    return Path(row.storage_path).read_text(encoding="utf-8-sig")


def _dataset_version(
    *, actor: UserPublic, assistant_id: int, training_file: str, validation_file: str
) -> int:
    """The dataset version of the assistant made from the files (the same files: reused)."""
    from gptstudio.curation.parsers.tabular import read_chat_jsonl
    from gptstudio.curation.snapshot import dataset_hash, split_warnings, to_chat_jsonl

    with session_scope() as session:
        texts = {
            "train": _examples_file(
                session, actor=actor, file_id=training_file, param="training_file"
            ),
            "validation": _examples_file(
                session, actor=actor, file_id=validation_file, param="validation_file"
            )
            if validation_file
            else "",
        }
    ids = {"train": training_file, "validation": validation_file}
    examples = {
        name: read_chat_jsonl(text=text, document_id=ids[name]).examples
        for name, text in texts.items()
    }
    parameters = {"api_files": {"training_file": training_file, "validation_file": validation_file}}
    content_hash = dataset_hash(
        examples=[e for name in ("train", "validation") for e in examples[name]],
        parameters=parameters,
    )
    with session_scope() as session:
        assistant.owned_assistant(session, actor=actor, assistant_id=assistant_id)
        versions = session.exec(
            select(Dataset)
            .where(Dataset.assistant_id == assistant_id)
            .order_by(col(Dataset.version).desc())
        ).all()
        same = next((d for d in versions if d.content_hash == content_hash), None)
        if same is not None:
            return same.id or 0
        version = (versions[0].version if versions else 0) + 1
        folder = get_settings().artifacts_dir / "datasets" / str(assistant_id) / f"v{version}"
        folder.mkdir(parents=True, exist_ok=False)
        written = {**examples, "test": []}
        for name in SPLITS:
            (folder / f"{name}.jsonl").write_text(
                to_chat_jsonl(examples=written[name]), encoding="utf-8"
            )
        splits = {name: len(written[name]) for name in SPLITS}
        counts = {"splits": splits, "examples": sum(splits.values()),
                  "warnings": list(split_warnings(counts=splits))}  # fmt: skip
        manifest = {"version": version, "content_hash": content_hash, "parameters": parameters,
                    "counts": counts, "created_at": utcnow().isoformat()}  # fmt: skip
        (folder / "manifest.json").write_text(json.dumps(manifest, indent=2), encoding="utf-8")
        row = Dataset(
            assistant_id=assistant_id, version=version, content_hash=content_hash,
            status="ready", params=parameters, counts=counts, storage_path=str(folder),
        )  # fmt: skip
        session.add(row)
        session.flush()
        return row.id or 0


def _overrides(hyper: Hyperparameters, seed: int | None) -> dict[str, Any]:
    overrides: dict[str, Any] = {}
    if hyper.n_epochs is not None:
        overrides["epochs"] = hyper.n_epochs
    if hyper.batch_size is not None:
        overrides["batch_size"] = hyper.batch_size
    if seed is not None:
        overrides["seed"] = seed
    return overrides


def create_job(
    *,
    actor: UserPublic,
    model: str,
    training_file: str,
    validation_file: str | None = None,
    suffix: str | None = None,
    seed: int | None = None,
    hyperparameters: dict[str, Any] | None = None,
    method: dict[str, Any] | None = None,
    metadata: dict[str, str] | None = None,
) -> FineTuningJob:
    """Queue a fine-tune of a base model on the files (see the module's docstring)."""
    authorize(actor, Role.creator)
    base_name, base_model = _base_model(model)
    hyper = hyperparameters_of(hyperparameters, method)
    cleaned = _suffix(suffix)
    if seed is not None and not 0 <= seed <= 2**31 - 1:
        raise InvalidInput("seed must be between 0 and 2147483647.")
    meta = {str(k)[:64]: str(v)[:512] for k, v in (metadata or {}).items()}
    if len(meta) > 16:
        raise InvalidInput("metadata can hold at most 16 keys.")
    with session_scope() as session:
        named = {"training_file": training_file, "validation_file": validation_file}
        for param, file_id in named.items():
            if file_id:
                _examples_file(session, actor=actor, file_id=file_id, param=param)
        examples = _owned_file(session, actor=actor, file_id=training_file).examples
        if examples < training.MIN_TRAIN_EXAMPLES:  # refused before anything is made
            raise InvalidInput(
                f"training_file has {examples} examples; at least "
                f"{training.MIN_TRAIN_EXAMPLES} are needed."
            )
        assistant_id, make = _assistant_for(
            session, actor=actor, suffix=cleaned, named=meta.get("assistant", "")
        )
    if make:
        assistant_id = assistant.create_assistant(
            actor=actor, name=cleaned or DEFAULT_ASSISTANT,
            description="Fine-tuned through the OpenAI-compatible fine-tuning API.",
        ).id  # fmt: skip
    dataset_id = _dataset_version(
        actor=actor, assistant_id=assistant_id, training_file=training_file,
        validation_file=validation_file or "",
    )  # fmt: skip
    overrides = _overrides(hyper, seed)
    if hyper.learning_rate_multiplier is not None:  # the sized preset's rate, scaled
        sized = _preset_config(actor, dataset_id, base_model, overrides)
        overrides["learning_rate"] = sized.learning_rate * hyper.learning_rate_multiplier
    job = training.start_job(
        actor=actor, dataset_id=dataset_id, base_model=base_model, overrides=overrides
    )
    public_id = f"ftjob-{secrets.token_hex(12)}"
    with session_scope() as session:
        owner = f"user-{actor.id}"
        row = FineTuningJob(
            public_id=public_id, owner_id=actor.id, assistant_id=assistant_id,
            training_job_id=job.id or 0, model=model, training_file=training_file,
            validation_file=validation_file or "", suffix=cleaned,
            seed=int(job.config.get("seed", 0)), hyperparameters=hyper.to_json(), meta=meta,
            fine_tuned_model=":".join(
                part for part in ("ft", base_name, owner, cleaned, public_id[6:]) if part
            ),
        )  # fmt: skip
        session.add(row)
        session.flush()
        return row


def _preset_config(
    actor: UserPublic, dataset_id: int, base_model: str, overrides: dict[str, Any]
) -> Any:
    with session_scope() as session:
        data = session.get(Dataset, dataset_id)
        assert data is not None
        n_train = int(data.counts.get("splits", {}).get("train", 0))
        folder = data.storage_path
    return training.build_config(
        base_model=base_model, preset="auto", method="lora", n_examples=n_train,
        overrides=overrides, size=training.dataset_size(folder),
    )  # fmt: skip


@dataclass(frozen=True)
class JobView:
    """An API job with its training job and, once it succeeded, its model version."""

    api: FineTuningJob
    job: TrainingJob
    version: ModelVersion | None
    assistant_slug: str

    @property
    def status(self) -> str:
        status = self.job.status
        if status == "running" and not self.job.progress.get("event"):
            # The worker is loading the base model's tokenizer and reading the files against
            # its context window (examples kept, truncated, dropped): OpenAI's validation step.
            return "validating_files"
        if status == "succeeded" and self.version is None:
            return "failed"
        return status


def _view(session: Session, api: FineTuningJob) -> JobView:
    job = session.get(TrainingJob, api.training_job_id)
    found = session.get(Assistant, api.assistant_id)
    assert job is not None and found is not None
    version = session.exec(
        select(ModelVersion).where(ModelVersion.training_job_id == job.id)
    ).first()
    return JobView(api, job, version, found.slug)


def _owned_job(session: Session, *, actor: UserPublic, job_id: str) -> FineTuningJob:
    row = session.exec(select(FineTuningJob).where(FineTuningJob.public_id == job_id)).first()
    if row is None or (row.owner_id != actor.id and actor.role != Role.admin):
        raise NotFound(f"No such fine-tuning job: {job_id}")
    return row


def get_job(*, actor: UserPublic, job_id: str) -> JobView:
    with session_scope() as session:
        return _view(session, _owned_job(session, actor=actor, job_id=job_id))


def list_jobs(*, actor: UserPublic, after: str = "", limit: int = 20) -> Page:
    """The actor's API jobs, newest first, ``limit`` after the job ``after``."""
    limit = _limit(limit)
    with session_scope() as session:
        query = select(FineTuningJob).where(FineTuningJob.owner_id == actor.id)
        if after:
            cursor = _owned_job(session, actor=actor, job_id=after)
            query = query.where(col(FineTuningJob.id) < cursor.id)
        rows = session.exec(query.order_by(col(FineTuningJob.id).desc()).limit(limit + 1)).all()
        views = [_view(session, row) for row in rows]
    return Page(views[:limit], len(views) > limit)


def cancel_job(*, actor: UserPublic, job_id: str) -> JobView:
    """Cancel a queued or running job (the training page's cancel)."""
    with session_scope() as session:
        api = _owned_job(session, actor=actor, job_id=job_id)
        training_job_id = api.training_job_id
    try:
        training.cancel_job(actor=actor, job_id=training_job_id)
    except InvalidInput:
        state = get_job(actor=actor, job_id=job_id).status
        raise InvalidInput(
            f"The job is already {state}; only a queued or running job can be cancelled."
        ) from None
    return get_job(actor=actor, job_id=job_id)


# --- events and checkpoints ---------------------------------------------------------------


@dataclass(frozen=True)
class Event:
    id: str
    created_at: datetime
    level: str
    message: str
    type: str = "message"
    data: dict[str, Any] | None = None


def _at(stamp: Any, fallback: datetime) -> datetime:
    if isinstance(stamp, (int, float)):
        return datetime.fromtimestamp(stamp, tz=fallback.tzinfo)
    return fallback


def events_of(view: JobView) -> list[Event]:
    """What happened to the job, oldest first: creation, the files, the start, each logged
    step's loss, the evaluation and the gate, and the outcome."""
    api, job = view.api, view.job
    short = api.public_id[6:]
    found: list[tuple[datetime, str, str, str, dict[str, Any] | None]] = []

    def add(at: datetime, message: str, level: str = "info", kind: str = "message",
            data: dict[str, Any] | None = None) -> None:  # fmt: skip
        found.append((at, level, message, kind, data))

    add(api.created_at, f"Created fine-tuning job: {api.public_id}")
    files = [api.training_file] + ([api.validation_file] if api.validation_file else [])
    add(api.created_at, f"Validated files: {', '.join(files)}; the job is queued.")
    started = job.started_at or job.created_at
    if job.started_at is not None:
        add(started, "Fine-tuning job started")
    data = job.progress.get("data")
    if isinstance(data, dict):
        for split, stats in data.items():
            if isinstance(stats, dict) and stats.get("examples") is not None:
                add(started, f"Tokenised the {split} examples: {stats.get('examples')} kept "
                    f"({stats.get('truncated', 0)} truncated, {stats.get('dropped', 0)} dropped "
                    f"as too long), {stats.get('tokens', 0)} tokens.", data=stats)  # fmt: skip
    total = job.progress.get("total_steps")
    for point in job.history:
        step, loss = point.get("step"), point.get("loss")
        if step is None or loss is None:
            continue
        metrics = {"step": step, "train_loss": loss, "total_steps": total}
        if point.get("eval_loss") is not None:
            metrics["valid_loss"] = point["eval_loss"]
        if point.get("learning_rate") is not None:
            metrics["learning_rate"] = point["learning_rate"]
        add(_at(point.get("at"), started), f"Step {step}/{total}: training loss={loss:.4f}",
            kind="metrics", data=metrics)  # fmt: skip
    ended = job.finished_at or started
    if view.version is not None:
        gate = training.gate_of(view.version)
        metrics = view.version.metrics
        if metrics.get("tuned_perplexity") is not None:
            base, tuned = metrics["base_perplexity"], metrics["tuned_perplexity"]
            add(
                ended,
                f"Evaluated on held-out examples: perplexity {base:.3f} (base) → {tuned:.3f} "
                "(fine-tuned).",
                data={"base_perplexity": base, "tuned_perplexity": tuned},
            )
        verdict = "passed" if gate.get("passed") else "did not pass"
        add(
            ended,
            f"The publishing gate {verdict}: {gate.get('message', '')}".strip(),
            level="info" if gate.get("passed") else "warn",
        )
        add(ended, f"New fine-tuned model created: {api.fine_tuned_model}")
        add(ended, "The job has successfully completed")
    elif job.status == "failed" or view.status == "failed":
        add(ended, f"The job failed: {job.error or 'no model version was recorded.'}", "error")
    elif job.status == "cancelled":
        add(ended, "The job was cancelled")
    return [
        Event(
            id=f"ftevent-{short}-{n}",
            created_at=at,
            level=level,
            message=message,
            type=kind,
            data=data,
        )
        for n, (at, level, message, kind, data) in enumerate(found, start=1)
    ]


def list_events(*, actor: UserPublic, job_id: str, after: str = "", limit: int = 20) -> Page:
    """The job's events, newest first, ``limit`` after the event ``after``."""
    limit = _limit(limit)
    events = list(reversed(events_of(get_job(actor=actor, job_id=job_id))))
    if after:
        ids = [event.id for event in events]
        if after not in ids:
            raise InvalidInput(f"after: the job has no event '{after}'.")
        events = events[ids.index(after) + 1 :]
    return Page(events[:limit], len(events) > limit)


def checkpoints_of(view: JobView) -> list[dict[str, Any]]:
    """The job's servable checkpoints: its final adapter once it succeeded (the resumable
    checkpoints a run writes are trainer state, not models, and are not listed)."""
    if view.version is None:
        return []
    history = [p for p in view.job.history if p.get("loss") is not None]
    last = history[-1] if history else {}
    step = int(last.get("step") or view.job.progress.get("step") or 0)
    metrics = {"step": step, "train_loss": last.get("loss"), "valid_loss": last.get("eval_loss")}
    metrics.update(
        {k: view.version.metrics.get(k) for k in ("base_perplexity", "tuned_perplexity")}
    )
    return [
        {
            "object": "fine_tuning.job.checkpoint",
            "id": f"ftckpt-{view.api.public_id[6:]}-{step}",
            "created_at": int((view.job.finished_at or view.version.created_at).timestamp()),
            "fine_tuned_model_checkpoint": view.api.fine_tuned_model,
            "fine_tuning_job_id": view.api.public_id,
            "metrics": {k: v for k, v in metrics.items() if v is not None},
            "step_number": step,
        }
    ]


# --- the models jobs made -----------------------------------------------------------------


def api_labels(training_job_ids: list[int]) -> dict[int, str]:
    """For the training page: which of these training jobs came through the API, as
    ``"ftjob-… → ft:…"`` (the model's name once the job has made it)."""
    if not training_job_ids:
        return {}
    with session_scope() as session:
        rows = session.exec(
            select(FineTuningJob).where(col(FineTuningJob.training_job_id).in_(training_job_ids))
        ).all()
        return {row.training_job_id: f"{row.public_id} → {row.fine_tuned_model}" for row in rows}


@dataclass(frozen=True)
class FineTunedModel:
    name: str
    assistant_id: int
    version_id: int
    version: int
    slug: str
    adapter_path: str
    created_at: datetime


def owned_models(*, actor: UserPublic) -> list[FineTunedModel]:
    """The ``ft:`` models of the actor's succeeded jobs, newest first."""
    with session_scope() as session:
        rows = session.exec(
            select(FineTuningJob, ModelVersion, Assistant)
            .join(ModelVersion, col(ModelVersion.training_job_id) == FineTuningJob.training_job_id)
            .join(Assistant, col(Assistant.id) == FineTuningJob.assistant_id)
            .where(FineTuningJob.owner_id == actor.id)
            .order_by(col(FineTuningJob.id).desc())
        ).all()
        return [_model(api, version, found) for api, version, found in rows]


def fine_tuned_model(*, name: str, user_id: int) -> FineTunedModel:
    """The ``ft:`` model ``name`` if ``user_id`` owns it and its job made it, else
    :class:`ModelNotFound` (another owner's model is not found either)."""
    with session_scope() as session:
        found = session.exec(
            select(FineTuningJob, ModelVersion, Assistant)
            .join(ModelVersion, col(ModelVersion.training_job_id) == FineTuningJob.training_job_id)
            .join(Assistant, col(Assistant.id) == FineTuningJob.assistant_id)
            .where(FineTuningJob.fine_tuned_model == name, FineTuningJob.owner_id == user_id)
        ).first()
        if found is None:
            raise ModelNotFound(
                f"The model '{name}' does not exist, is not yours, or its job has not succeeded."
            )
        return _model(*found)


def _model(api: FineTuningJob, version: ModelVersion, found: Assistant) -> FineTunedModel:
    return FineTunedModel(
        name=api.fine_tuned_model, assistant_id=found.id or 0, version_id=version.id or 0,
        version=version.version, slug=found.slug, adapter_path=version.adapter_path,
        created_at=version.created_at,
    )  # fmt: skip
