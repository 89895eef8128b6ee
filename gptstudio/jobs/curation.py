"""The curation job: read an assistant's parsed documents (parsed once, by the parse job, and
parsed again only when the parser or the column choice changed), run the pure pipeline of
:mod:`gptstudio.curation.pipeline` and store its result as JSON (what the data page previews)
with the kept chunks beside it as JSONL (what a snapshot keeps for the retrieval index).

Any failure ends as a ``failed`` run whose ``error`` says why.
"""

from __future__ import annotations

import json
import logging
from collections import Counter
from typing import Any

from sqlmodel import select

from gptstudio.curation.chunking import Chunk, chunk_document
from gptstudio.curation.documents import ParsedDocument
from gptstudio.curation.errors import CurationError
from gptstudio.db import session_scope, utcnow
from gptstudio.jobs.documents import parsed_document
from gptstudio.jobs.lease import RUNS, claim, heartbeat, hold
from gptstudio.jobs.tasks import body
from gptstudio.models import CurationRun, Document, ExampleOverride
from gptstudio.services.dataset import CurationSettings, run_chunks_path
from gptstudio.settings import get_settings

log = logging.getLogger(__name__)


def _set_progress(run_id: int, attempt: int, **fields: Any) -> bool:
    """Write ``fields`` to the run while this attempt still holds it (:func:`lease.hold`)."""
    return hold(RUNS, run_id, attempt, **fields)


@body("run_curation")
def execute_run(run_id: int) -> None:
    """Parse, curate, store. Any failure ends as a ``failed`` run with a reason."""
    attempt = claim(RUNS, run_id)
    if attempt is None:
        return  # deleted, finished, or running in another copy of this task
    with heartbeat(RUNS, run_id, attempt):
        try:
            _execute(run_id, attempt)
        except CurationError as error:
            _set_progress(run_id, attempt, status="failed", error=str(error), finished_at=utcnow())
        except Exception as error:
            log.exception("curation run %s failed", run_id)
            message = f"The run failed unexpectedly ({type(error).__name__}: {error})."
            _set_progress(
                run_id, attempt, status="failed", error=message[:2000], finished_at=utcnow()
            )


def _execute(run_id: int, attempt: int) -> None:
    from gptstudio.curation.snapshot import to_chunks_jsonl

    with session_scope() as session:
        run = session.get(CurationRun, run_id)
        assert run is not None
        assistant_id, settings = run.assistant_id, CurationSettings.from_json(run.options)
        documents = session.exec(
            select(Document).where(
                Document.assistant_id == assistant_id, Document.status == "parsed"
            )
        ).all()
        sources = [(d.id or 0, d.filename, d.storage_path, d.columns) for d in documents]
        keep = frozenset(
            session.exec(
                select(ExampleOverride.example_id).where(
                    ExampleOverride.assistant_id == assistant_id, ExampleOverride.action == "keep"
                )
            ).all()
        )
    parsed: list[ParsedDocument] = []
    for done, (document_id, name, stored, columns) in enumerate(sources):
        _set_progress(
            run_id, attempt, progress={"step": "reading", "done": done, "total": len(sources)}
        )
        parsed.append(
            parsed_document(path=stored, filename=name, document_id=document_id, columns=columns)
        )
    _set_progress(run_id, attempt, progress={"step": "curating", "done": 0, "total": 1})
    result, chunks = _curate(parsed, settings, keep)
    folder = get_settings().artifacts_dir / "curation" / str(assistant_id)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"run-{run_id}.json"
    path.write_text(json.dumps(result, ensure_ascii=False), encoding="utf-8")
    run_chunks_path(path).write_text(to_chunks_jsonl(chunks=chunks), encoding="utf-8")
    _set_progress(
        run_id, attempt, status="done", result_path=str(path), counts=result["counts"],
        progress={"step": "done", "done": 1, "total": 1}, finished_at=utcnow(),
    )  # fmt: skip


def _semantic_duplicates(run: Any, keep: frozenset[str]) -> Any:
    """Paraphrased examples (MiniLM cosine similarity), after exact and near dedupe."""
    from gptstudio.curation.semantic import find_semantic_duplicates

    texts = {e.example_id: e.text for items in run.splits.values() for e in items}
    return find_semantic_duplicates(texts=texts, keep=keep)


def curation_options(settings: CurationSettings, keep: frozenset[str]) -> Any:
    """The pipeline's options for a run with these settings and the creator's keep decisions
    (also what the retrieval index reproduces an older snapshot's chunks with)."""
    from gptstudio.curation.chunking import ChunkingOptions, local_tokenizer
    from gptstudio.curation.dedupe import DedupeOptions
    from gptstudio.curation.pii import PiiCategory, PiiOptions
    from gptstudio.curation.pipeline import CurationOptions

    return CurationOptions(
        pii=PiiOptions(categories=frozenset(PiiCategory(c) for c in settings.pii_categories)),
        scrub_pii=bool(settings.pii_categories),
        # Chunks sized in the base model's own tokens when its tokenizer is on this machine.
        chunking=ChunkingOptions(
            tokenizer=local_tokenizer(model=get_settings().resolved_base_model)
        ),
        dedupe=DedupeOptions(threshold=settings.near_duplicate_threshold),
        seed=settings.seed,
        keep=keep,
    )


def _curate(
    parsed: list[Any], settings: CurationSettings, keep: frozenset[str]
) -> tuple[dict[str, Any], tuple[Chunk, ...]]:
    """The run's stored result, and the chunks it kept."""
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
    texts.update(
        {d.document_id: f"{names.get(d.document_id, '')}: {d.text}" for d in run.documents}
    )
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
            *run.document_duplicates.clusters,
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
        "documents_dropped_as_duplicates": len(run.document_duplicates.dropped),
        "quality_dropped": {k.value: v for k, v in run.chunk_quality.counts.items() if v},
        "duplicates_dropped": {
            k.value: v
            for k, v in (
                Counter(run.document_duplicates.counts)
                + Counter(run.chunk_duplicates.counts)
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
    result = {
        "examples": examples,
        "clusters": clusters,
        "reports": reports,
        "counts": counts,
        "snapshot_hash": run.snapshot_hash,
        "settings": settings.to_json(),
    }
    return result, run.chunks
