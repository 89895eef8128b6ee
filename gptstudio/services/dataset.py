"""Curation runs, the creator's overrides, and immutable, versioned dataset snapshots.

A run (a queue task) parses an assistant's documents again, runs the pure pipeline of
:mod:`gptstudio.curation.pipeline` and stores its result as JSON. The creator previews the
examples, edits or drops some, keeps duplicates the run dropped, and snapshots: a dataset version
is written once (train/validation/test JSONL in chat format, a manifest with the parameters and
counts at each step, a content hash) and never changed afterwards.
"""

from __future__ import annotations

import json
import logging
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import func
from sqlmodel import col, select

from gptstudio.curation.errors import CurationError
from gptstudio.db import session_scope, utcnow
from gptstudio.errors import InvalidInput, NotFound
from gptstudio.models import CurationRun, Dataset, Document, ExampleOverride
from gptstudio.models.user import UserPublic
from gptstudio.services.assistant import owned_assistant
from gptstudio.services.document import column_choice
from gptstudio.settings import get_settings

log = logging.getLogger(__name__)
SPLITS = ("train", "validation", "test")
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
    from trainer import tasks

    tasks.run_curation_task(run_id)
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


def _set_progress(run_id: int, **fields: Any) -> None:
    with session_scope() as session:
        run = session.get(CurationRun, run_id)
        if run is not None:
            for name, value in fields.items():
                setattr(run, name, value)


def execute_run(run_id: int) -> None:
    """Worker side: parse, curate, store. Any failure ends as a ``failed`` run with a reason."""
    try:
        _execute(run_id)
    except CurationError as error:
        _set_progress(run_id, status="failed", error=str(error), finished_at=utcnow())
    except Exception as error:
        log.exception("curation run %s failed", run_id)
        message = f"The run failed unexpectedly ({type(error).__name__}: {error})."
        _set_progress(run_id, status="failed", error=message[:2000], finished_at=utcnow())


def _execute(run_id: int) -> None:
    from gptstudio.curation.parsers import ParseLimits, parse_document

    with session_scope() as session:
        run = session.get(CurationRun, run_id)
        if run is None:
            return
        run.status = "running"
        assistant_id, settings = run.assistant_id, CurationSettings.from_json(run.options)
        documents = session.exec(
            select(Document).where(
                Document.assistant_id == assistant_id, Document.status == "parsed"
            )
        ).all()
        sources = [(str(d.id), d.filename, d.storage_path, d.columns) for d in documents]
        keep = frozenset(
            session.exec(
                select(ExampleOverride.example_id).where(
                    ExampleOverride.assistant_id == assistant_id, ExampleOverride.action == "keep"
                )
            ).all()
        )
    limits = ParseLimits(max_bytes=get_settings().max_upload_mb * 1024 * 1024)
    parsed = []
    for done, (document_id, name, stored, columns) in enumerate(sources):
        _set_progress(run_id, progress={"step": "reading", "done": done, "total": len(sources)})
        data = Path(stored).read_bytes()
        parsed.append(
            parse_document(
                data=data,
                filename=name,
                document_id=document_id,
                limits=limits,
                columns=column_choice(columns),
            )
        )
    _set_progress(run_id, progress={"step": "curating", "done": 0, "total": 1})
    result = _curate(parsed, settings, keep)
    folder = get_settings().artifacts_dir / "curation" / str(assistant_id)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"run-{run_id}.json"
    path.write_text(json.dumps(result, ensure_ascii=False), encoding="utf-8")
    _set_progress(
        run_id, status="done", result_path=str(path), counts=result["counts"],
        progress={"step": "done", "done": 1, "total": 1}, finished_at=utcnow(),
    )  # fmt: skip


def _semantic_duplicates(run: Any, keep: frozenset[str]) -> Any:
    """Paraphrased examples (MiniLM cosine similarity), after exact and near dedupe."""
    from gptstudio.curation.semantic import find_semantic_duplicates

    texts = {e.example_id: e.text for items in run.splits.values() for e in items}
    return find_semantic_duplicates(texts=texts, keep=keep)


def curation_options(settings: CurationSettings, keep: frozenset[str]) -> Any:
    """The pipeline's options for a run with these settings and the creator's keep decisions
    (also what the retrieval index reproduces a run's chunks with)."""
    from gptstudio.curation.dedupe import DedupeOptions
    from gptstudio.curation.pii import PiiCategory, PiiOptions
    from gptstudio.curation.pipeline import CurationOptions

    return CurationOptions(
        pii=PiiOptions(categories=frozenset(PiiCategory(c) for c in settings.pii_categories)),
        scrub_pii=bool(settings.pii_categories),
        dedupe=DedupeOptions(threshold=settings.near_duplicate_threshold),
        seed=settings.seed,
        keep=keep,
    )


def _curate(parsed: list[Any], settings: CurationSettings, keep: frozenset[str]) -> dict[str, Any]:
    from gptstudio.curation.chunking import chunk_document
    from gptstudio.curation.pipeline import curate
    from gptstudio.curation.snapshot import example_record

    options = curation_options(settings, keep)
    generator = None
    if settings.model_qa:
        from gptstudio.services.qa_generation import ChatModelQA

        generator = ChatModelQA.from_settings()
    run = curate(documents=parsed, options=options, generator=generator)
    names = {d.document_id: d.filename for d in parsed}
    # Chunk again to show the text of dropped duplicates too (the run keeps only kept chunks).
    texts = {
        chunk.chunk_id: chunk.text
        for cleaned in run.documents
        for chunk in chunk_document(document=cleaned, options=options.chunking)
    }
    everything = {e.example_id: e for e in run.synthesis.examples}
    for document in parsed:
        everything.update({e.example_id: e for e in document.examples})
    texts.update({i: e.text for i, e in everything.items()})
    semantic = _semantic_duplicates(run, keep) if settings.semantic_dedupe else None
    gone = set(semantic.dropped) if semantic else set()
    examples = [
        {**example_record(example=e), "split": split.value}
        for split, items in run.splits.items()
        for e in items
        if e.example_id not in gone
    ]
    clusters = [
        {
            "kind": cluster.kind.value,
            "members": [{"id": m, "text": texts.get(m, "")[:300]} for m in cluster.members],
            "kept": list(cluster.kept),
            "dropped": list(cluster.dropped),
        }
        for cluster in (
            *run.chunk_duplicates.clusters,
            *run.example_duplicates.clusters,
            *(semantic.clusters if semantic else ()),
        )
    ]
    reports = {
        document_id: {
            "filename": names.get(document_id, document_id),
            "what_was_done": report.cleaning.describe(),
            "pii": {k.value: v for k, v in report.pii.items() if v},
            "chunks": report.chunks,
        }
        for document_id, report in run.reports.items()
    }
    counts = {
        "documents": len(parsed),
        "chunks_kept": len(run.chunks),
        "quality_dropped": {k.value: v for k, v in run.chunk_quality.counts.items() if v},
        "duplicates_dropped": {
            k.value: v
            for k, v in (
                Counter(run.chunk_duplicates.counts)
                + Counter(run.example_duplicates.counts)
                + Counter(semantic.counts if semantic else {})
            ).items()
        },
        "examples": {k.value: v for k, v in run.synthesis.counts.items() if v},
        "imported_examples": sum(len(d.examples) for d in parsed),
        "splits": dict(Counter(e["split"] for e in examples)),
        "pii_replaced": dict(sum((Counter(r["pii"]) for r in reports.values()), Counter())),
    }
    if generator is not None:
        counts["model_qa"] = {
            "calls": generator.calls,
            "rejected": run.synthesis.rejected_generated,
            "failed_calls": len(generator.failures),
        }
    return {
        "examples": examples,
        "clusters": clusters,
        "reports": reports,
        "counts": counts,
        "snapshot_hash": run.snapshot_hash,
        "settings": settings.to_json(),
    }


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
    """Write an immutable dataset version from the latest finished run and the overrides."""
    from gptstudio.curation.snapshot import dataset_hash, from_chat_jsonl

    run = latest_run(actor=actor, assistant_id=assistant_id)
    if run is None or run.status != "done":
        raise InvalidInput("Run the curation first; a snapshot is taken from its result.")
    result = run_result(run)
    examples = apply_overrides(
        result["examples"], overrides(actor=actor, assistant_id=assistant_id)
    )
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
        counts = {**result["counts"], "splits": {k: len(v) for k, v in by_split.items()},
                  "edited": sum(1 for e in examples if e.get("edited")),
                  "dropped_by_creator": len(result["examples"]) - len(examples)}  # fmt: skip
        manifest = {"version": version, "content_hash": content_hash, "parameters": parameters,
                    "counts": counts, "created_at": utcnow().isoformat()}  # fmt: skip
        (folder / "manifest.json").write_text(json.dumps(manifest, indent=2), encoding="utf-8")
        dataset = Dataset(
            assistant_id=assistant_id, curation_run_id=run.id, version=version,
            content_hash=content_hash, status="ready", params=parameters, counts=counts,
            storage_path=str(folder),
        )  # fmt: skip
        session.add(dataset)
        session.flush()
        return dataset


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
        owned_assistant(session, actor=actor, assistant_id=dataset.assistant_id)
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
