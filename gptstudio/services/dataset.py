"""Curation runs, the creator's overrides, and immutable, versioned dataset snapshots.

A run (a queue job, :mod:`gptstudio.jobs.curation`) parses an assistant's documents again, runs
the pure pipeline of :mod:`gptstudio.curation.pipeline` and stores its result as JSON. The
creator previews the examples, edits or drops some, keeps duplicates the run dropped, and
snapshots: a dataset version is written once (train/validation/test JSONL in chat format, the
run's curated chunks, a manifest with the parameters and counts at each step, a content hash)
and never changed afterwards.
"""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import func
from sqlmodel import col, select

from gptstudio.db import session_scope, utcnow
from gptstudio.errors import InvalidInput, NotFound
from gptstudio.models import CurationRun, Dataset, Document, ExampleOverride
from gptstudio.models.user import UserPublic
from gptstudio.services import feedback
from gptstudio.services.assistant import owned_assistant, owner_check
from gptstudio.settings import get_settings

SPLITS = ("train", "validation", "test")
CHUNKS_FILE = "chunks.jsonl"
"""The curated chunks a snapshot keeps beside its splits: the retrieval index is built from them."""
PII_CATEGORIES = ("email", "phone", "card", "iban", "ip_address", "national_id")


@dataclass(frozen=True)
class CurationSettings:
    """What the creator chooses on the data page; stored with the run and the snapshot."""

    pii_categories: tuple[str, ...] = PII_CATEGORIES
    near_duplicate_threshold: float = 0.7
    semantic_dedupe: bool = False
    model_qa: bool = False
    """Add model-written QA pairs (needs GPTSTUDIO_QA_MODEL)."""
    seed: int = 0

    def to_json(self) -> dict[str, Any]:
        return {
            "pii_categories": list(self.pii_categories),
            "near_duplicate_threshold": self.near_duplicate_threshold,
            "semantic_dedupe": self.semantic_dedupe,
            "model_qa": self.model_qa,
            "seed": self.seed,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> CurationSettings:
        return cls(
            pii_categories=tuple(data.get("pii_categories", PII_CATEGORIES)),
            near_duplicate_threshold=float(data.get("near_duplicate_threshold", 0.7)),
            semantic_dedupe=bool(data.get("semantic_dedupe", False)),
            model_qa=bool(data.get("model_qa", False)),
            seed=int(data.get("seed", 0)),
        )


def _check(settings: CurationSettings) -> None:
    unknown = set(settings.pii_categories) - set(PII_CATEGORIES)
    if unknown:
        raise InvalidInput(f"Unknown personal-data categories: {', '.join(sorted(unknown))}.")
    if not 0.3 <= settings.near_duplicate_threshold <= 1:
        raise InvalidInput("The near-duplicate threshold must be between 0.3 and 1.")
    if settings.model_qa and not get_settings().qa_model:
        raise InvalidInput(
            "Model-written questions need a chat model: set GPTSTUDIO_QA_MODEL (and "
            "GPTSTUDIO_QA_MODEL_URL for a server other than the built-in engine)."
        )


# --- runs -------------------------------------------------------------------------------


def start_curation(
    *, actor: UserPublic, assistant_id: int, settings: CurationSettings
) -> CurationRun:
    """Queue a curation run over the assistant's parsed documents."""
    _check(settings)
    with session_scope() as session:
        owned_assistant(session, actor=actor, assistant_id=assistant_id)
        busy = session.exec(
            select(CurationRun.id).where(
                CurationRun.assistant_id == assistant_id,
                col(CurationRun.status).in_(["queued", "running"]),
            )
        ).first()
        if busy is not None:
            raise InvalidInput("A curation run is already in progress; wait for it to finish.")
        parsed = session.exec(
            select(func.count())
            .select_from(Document)
            .where(Document.assistant_id == assistant_id, Document.status == "parsed")
        ).one()
        if not parsed:
            raise InvalidInput("No parsed document yet: upload documents and wait until parsed.")
        run = CurationRun(
            assistant_id=assistant_id,
            options=settings.to_json(),
            progress={"step": "queued", "done": 0, "total": 1},
        )
        session.add(run)
        session.flush()
        run_id = run.id
    from gptstudio.jobs.tasks import hand_over, run_curation_task

    # The run is committed as queued: while the broker is down it waits for the sweep
    # (gptstudio.jobs.outbox) instead of failing here and blocking every later run.
    hand_over(run_curation_task, run_id)
    with session_scope() as session:
        stored = session.get(CurationRun, run_id)
        assert stored is not None
        return stored


def latest_run(*, actor: UserPublic, assistant_id: int) -> CurationRun | None:
    with session_scope() as session:
        owned_assistant(session, actor=actor, assistant_id=assistant_id)
        return session.exec(
            select(CurationRun)
            .where(CurationRun.assistant_id == assistant_id)
            .order_by(col(CurationRun.id).desc())
        ).first()


def run_result(run: CurationRun) -> dict[str, Any]:
    """The stored result of a finished run (examples, clusters, reports, counts)."""
    if run.status != "done" or not run.result_path:
        return {}
    data: dict[str, Any] = json.loads(Path(run.result_path).read_text(encoding="utf-8"))
    return data


def run_chunks_path(result_path: str | Path) -> Path:
    """Where a run keeps the chunks it kept (JSONL), beside its result; runs from before this
    file existed have none."""
    return Path(result_path).with_suffix(".chunks.jsonl")


# --- overrides ----------------------------------------------------------------------------


def set_override(
    *,
    actor: UserPublic,
    assistant_id: int,
    example_id: str,
    action: str,
    messages: list[dict[str, str]] | None = None,
) -> None:
    """Keep a dropped duplicate, drop an example, or replace an example's messages."""
    if action not in {"keep", "drop", "edit", "reset"}:
        raise InvalidInput("An example can be kept, dropped, edited or reset.")
    if action == "edit" and not (messages and all(m.get("content", "").strip() for m in messages)):
        raise InvalidInput("An edited example needs text in every message.")
    with session_scope() as session:
        owned_assistant(session, actor=actor, assistant_id=assistant_id)
        row = session.exec(
            select(ExampleOverride).where(
                ExampleOverride.assistant_id == assistant_id,
                ExampleOverride.example_id == example_id,
            )
        ).first()
        if action == "reset":
            if row is not None:
                session.delete(row)
            return
        row = row or ExampleOverride(
            assistant_id=assistant_id, example_id=example_id, action=action
        )
        row.action, row.messages = action, messages if action == "edit" else None
        session.add(row)


def overrides(*, actor: UserPublic, assistant_id: int) -> dict[str, ExampleOverride]:
    with session_scope() as session:
        owned_assistant(session, actor=actor, assistant_id=assistant_id)
        rows = session.exec(
            select(ExampleOverride).where(ExampleOverride.assistant_id == assistant_id)
        ).all()
        return {row.example_id: row for row in rows}


def apply_overrides(
    examples: list[dict[str, Any]], decided: dict[str, ExampleOverride]
) -> list[dict[str, Any]]:
    """The examples as the creator left them: dropped ones out, edited ones replaced."""
    result = []
    for example in examples:
        override = decided.get(example["id"])
        if override is not None and override.action == "drop":
            continue
        if override is not None and override.action == "edit" and override.messages:
            example = {**example, "messages": override.messages, "edited": True}
        result.append(example)
    return result


# --- snapshots ----------------------------------------------------------------------------


def snapshot(*, actor: UserPublic, assistant_id: int) -> Dataset:
    """Write an immutable dataset version from the latest finished run and the overrides; its
    ``counts["warnings"]`` say what is missing from the held-out splits and what the evaluation
    will use instead."""
    from gptstudio.curation.snapshot import dataset_hash, from_chat_jsonl, split_warnings

    run = latest_run(actor=actor, assistant_id=assistant_id)
    if run is None or run.status != "done":
        raise InvalidInput("Run the curation first; a snapshot is taken from its result.")
    result = run_result(run)
    examples = apply_overrides(
        result["examples"], overrides(actor=actor, assistant_id=assistant_id)
    )
    with session_scope() as session:
        from_feedback = feedback.accepted_examples(session, assistant_id)
    examples += _placed(examples, from_feedback, result["settings"])
    if not any(e["split"] == "train" for e in examples):
        raise InvalidInput("The training split is empty; add documents or undo some drops.")
    by_split = {name: [e for e in examples if e["split"] == name] for name in SPLITS}
    texts = {name: "".join(_jsonl_line(e) for e in items) for name, items in by_split.items()}
    parameters = {"settings": result["settings"], "run": run.id}
    content_hash = dataset_hash(
        examples=[e for name in SPLITS for e in from_chat_jsonl(text=texts[name])],
        parameters=parameters,
    )
    with session_scope() as session:
        owned_assistant(session, actor=actor, assistant_id=assistant_id)
        previous = session.exec(
            select(Dataset)
            .where(Dataset.assistant_id == assistant_id)
            .order_by(col(Dataset.version).desc())
        ).first()
        if previous is not None and previous.content_hash == content_hash:
            raise InvalidInput(f"Nothing changed since version {previous.version}.")
        version = (previous.version if previous else 0) + 1
        folder = get_settings().artifacts_dir / "datasets" / str(assistant_id) / f"v{version}"
        folder.mkdir(parents=True, exist_ok=False)
        for name in SPLITS:
            (folder / f"{name}.jsonl").write_text(texts[name], encoding="utf-8")
        chunks = run_chunks_path(run.result_path)
        if chunks.is_file():
            shutil.copyfile(chunks, folder / CHUNKS_FILE)
        splits = {k: len(v) for k, v in by_split.items()}
        counts = {**result["counts"], "splits": splits,
                  "edited": sum(1 for e in examples if e.get("edited")),
                  "dropped_by_creator": len(result["examples"]) + len(from_feedback)
                  - len(examples),
                  "from_feedback": len(from_feedback),
                  "warnings": list(split_warnings(counts=splits))}  # fmt: skip
        manifest = {"version": version, "content_hash": content_hash, "parameters": parameters,
                    "counts": counts, "created_at": utcnow().isoformat()}  # fmt: skip
        (folder / "manifest.json").write_text(json.dumps(manifest, indent=2), encoding="utf-8")
        dataset = Dataset(
            assistant_id=assistant_id, curation_run_id=run.id, version=version,
            content_hash=content_hash, status="ready", params=parameters, counts=counts,
            storage_path=str(folder),
        )  # fmt: skip
        session.add(dataset)
        feedback.mark_in_version(session, assistant_id, version)
        session.flush()
        return dataset


def _placed(
    examples: list[dict[str, Any]], additions: list[dict[str, Any]], settings: dict[str, Any]
) -> list[dict[str, Any]]:
    """Examples from feedback with their split: that of any example they (near-)duplicate, so
    that no duplicate cluster spans two splits; train otherwise."""
    from gptstudio.curation.dedupe import DedupeOptions
    from gptstudio.curation.splits import Split, place_additions

    if not additions:
        return []

    def text(example: dict[str, Any]) -> str:
        return "\n".join(str(m["content"]) for m in example["messages"])

    threshold = float(settings.get("near_duplicate_threshold", 0.7))
    splits = place_additions(
        existing={e["id"]: (text(e), Split(e["split"])) for e in examples},
        additions={e["id"]: text(e) for e in additions},
        options=DedupeOptions(threshold=threshold),
    )
    return [{**e, "split": splits[e["id"]].value, "provenance": "from feedback"} for e in additions]


def _jsonl_line(example: dict[str, Any]) -> str:
    record = {k: example[k] for k in ("id", "kind", "messages", "source")}
    return json.dumps(record, ensure_ascii=False) + "\n"


def list_datasets(*, actor: UserPublic, assistant_id: int) -> list[Dataset]:
    with session_scope() as session:
        owned_assistant(session, actor=actor, assistant_id=assistant_id)
        return list(
            session.exec(
                select(Dataset)
                .where(Dataset.assistant_id == assistant_id)
                .order_by(col(Dataset.version).desc())
            ).all()
        )


def dataset_file(*, actor: UserPublic, dataset_id: int, split: str) -> Path:
    """The JSONL file of one split of a dataset version (its owner only)."""
    if split not in SPLITS:
        raise NotFound("There is no such split.")
    with session_scope() as session:
        dataset = session.get(Dataset, dataset_id)
        if dataset is None:
            raise NotFound("There is no such dataset.")
        owner_check(session, actor=actor, assistant_id=dataset.assistant_id, what="dataset")
        return Path(dataset.storage_path) / f"{split}.jsonl"


def diff_versions(
    *, actor: UserPublic, assistant_id: int, old_version: int, new_version: int
) -> dict[str, Any]:
    """Examples added, removed and changed between two versions of the assistant's dataset."""
    from gptstudio.curation.snapshot import diff_examples, from_chat_jsonl

    found = {d.version: d for d in list_datasets(actor=actor, assistant_id=assistant_id)}
    if old_version not in found or new_version not in found:
        raise NotFound("Pick two existing versions to compare.")

    def load(dataset: Dataset) -> list[Any]:
        folder = Path(dataset.storage_path)
        text = "".join((folder / f"{s}.jsonl").read_text(encoding="utf-8") for s in SPLITS)
        return list(from_chat_jsonl(text=text))

    diff = diff_examples(old=load(found[old_version]), new=load(found[new_version]))
    return {
        "added": list(diff.added),
        "removed": list(diff.removed),
        "changed": list(diff.changed),
        "unchanged": diff.unchanged,
    }
