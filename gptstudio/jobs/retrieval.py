"""The retrieval index job: embed the curated chunks of an assistant's latest dataset version into
its sources index (the index format, and asking it, are :mod:`gptstudio.services.retrieval`).

The chunks are the ``chunks.jsonl`` the snapshot keeps beside its splits. A snapshot written
before that file existed has none: its curation run's chunks are produced again (the pipeline is
pure, so the same documents and settings give the same chunks; the run's snapshot hash is
compared to prove it, and the manifest says ``reproduced``).

Never raises for a bad input: a failed build is recorded (``index_status().error``) and the
previous index, if any, stays in use.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
from sqlmodel import select

from gptstudio.curation.chunking import Chunk
from gptstudio.curation.errors import CurationError
from gptstudio.curation.snapshot import from_chunks_jsonl
from gptstudio.db import session_scope, utcnow
from gptstudio.jobs.curation import curation_options
from gptstudio.jobs.documents import parse_file
from gptstudio.jobs.tasks import body
from gptstudio.models import CurationRun, Dataset, Document, ExampleOverride
from gptstudio.services.dataset import CHUNKS_FILE, CurationSettings
from gptstudio.services.retrieval import (
    INDEX_FORMAT,
    MODEL_ID,
    RetrievalError,
    clear_status,
    index_path,
    latest_dataset,
    read_status,
    unit_vectors,
    write_index,
    write_status,
)

log = logging.getLogger(__name__)
Notes = dict[str, Any]
GONE = "The documents of this dataset version are gone; upload them again."


@body("build_retrieval_index")
def build_index(assistant_id: int) -> None:
    """Embed the latest dataset version's curated chunks into the assistant's index."""
    try:
        _build(assistant_id)
    except RetrievalError as error:
        _fail(assistant_id, str(error))
    except Exception as error:
        log.exception("building the retrieval index of assistant %s failed", assistant_id)
        _fail(assistant_id, f"The index build failed unexpectedly ({type(error).__name__}).")


def _fail(assistant_id: int, message: str) -> None:
    status = read_status(assistant_id)
    status.update(state="failed", error=message[:2000], updated_at=utcnow().isoformat())
    write_status(assistant_id, status)


def _progress(assistant_id: int, dataset: Dataset | None, step: str) -> None:
    status = read_status(assistant_id)
    status.update(state="building", step=step, updated_at=utcnow().isoformat())
    if dataset is not None:
        status.update(dataset_id=dataset.id, dataset_version=dataset.version)
    write_status(assistant_id, status)


def _build(assistant_id: int) -> None:
    _progress(assistant_id, None, "reading documents")
    dataset = latest_dataset(assistant_id)
    if dataset is None:
        raise RetrievalError("Snapshot a dataset first: the index is built from its passages.")
    documents = _parsed_documents(assistant_id)
    stored = Path(dataset.storage_path) / CHUNKS_FILE
    if stored.is_file():
        _progress(assistant_id, dataset, "reading passages")
        chunks, notes = _stored_chunks(stored, dataset, documents)
    else:
        _progress(assistant_id, dataset, "curating")
        try:
            chunks, notes = _reproduced_chunks(dataset, documents)
        except CurationError as error:
            raise RetrievalError(f"The documents could not be read again: {error}") from error
    rows = [_row(chunk, documents[chunk.source.document_id]) for chunk in chunks]
    if not rows:
        raise RetrievalError("The dataset's documents hold no passages to index.")
    _progress(assistant_id, dataset, f"embedding {len(rows)} passages")
    vectors = _embed_rows(rows)
    manifest = {
        "format": INDEX_FORMAT, "assistant_id": assistant_id, "dataset_id": dataset.id,
        "dataset_version": dataset.version, "dataset_hash": dataset.content_hash,
        "curation_run_id": dataset.curation_run_id,
        "content_hash": _content_hash(dataset, rows), "model": MODEL_ID,
        "dimensions": int(vectors.shape[1]), "chunks": len(rows),
        "built_at": utcnow().isoformat(), **notes,
    }  # fmt: skip
    write_index(index_path(assistant_id), vectors=vectors, rows=rows, manifest=manifest)
    clear_status(assistant_id)
    log.info("retrieval index of assistant %s: %d passages", assistant_id, len(rows))


def _parsed_documents(assistant_id: int) -> dict[str, Document]:
    """The assistant's parsed documents by id (as chunks name them)."""
    with session_scope() as session:
        documents = session.exec(
            select(Document).where(
                Document.assistant_id == assistant_id, Document.status == "parsed"
            )
        ).all()
    return {str(d.id): d for d in documents}


def _stored_chunks(
    path: Path, dataset: Dataset, documents: dict[str, Document]
) -> tuple[list[Chunk], Notes]:
    """The snapshot's chunks whose documents are still there, and which documents are not."""
    try:
        chunks = from_chunks_jsonl(text=path.read_text(encoding="utf-8"))
    except (OSError, CurationError) as error:
        raise RetrievalError(
            f"The chunks of dataset version {dataset.version} cannot be read ({error}); run the "
            "curation and snapshot again."
        ) from error
    missing = sorted({c.source.document_id for c in chunks} - set(documents))
    present = [c for c in chunks if c.source.document_id in documents]
    if chunks and not present:
        raise RetrievalError(GONE)
    notes = {"chunks_from": "snapshot", "reproduced": not missing, "missing_documents": missing}
    return present, notes


def _reproduced_chunks(
    dataset: Dataset, documents: dict[str, Document]
) -> tuple[list[Chunk], Notes]:
    """The kept chunks of the run behind a snapshot without ``chunks.jsonl``, produced again; and
    notes on how faithful the reproduction is."""
    from gptstudio.curation.pipeline import curate

    with session_scope() as session:
        run = session.get(CurationRun, dataset.curation_run_id or 0)
        if run is None or run.status != "done" or not run.result_path:
            raise RetrievalError(
                f"Dataset version {dataset.version} has no finished curation run to take "
                "passages from; run the curation and snapshot again."
            )
        keep = session.exec(
            select(ExampleOverride.example_id).where(
                ExampleOverride.assistant_id == dataset.assistant_id,
                ExampleOverride.action == "keep",
            )
        ).all()
    try:
        result = json.loads(Path(run.result_path).read_text(encoding="utf-8"))
    except (OSError, ValueError) as error:
        raise RetrievalError(
            f"The result of curation run {run.id} cannot be read ({error}); run the "
            "curation and snapshot again."
        ) from error
    wanted = set(result.get("reports", {}))
    present = [d for key, d in documents.items() if key in wanted]
    missing = sorted(wanted - set(documents))
    parsed = [
        parse_file(path=d.storage_path, filename=d.filename, document_id=d.id or 0,
                   columns=d.columns)
        for d in present
    ]  # fmt: skip
    if not parsed:
        raise RetrievalError(GONE)
    settings = CurationSettings.from_json(run.options)
    curated = curate(documents=parsed, options=curation_options(settings, frozenset(keep)))
    reproduced = curated.snapshot_hash == result.get("snapshot_hash")
    if not reproduced:
        log.warning(
            "index of assistant %s: the chunks of run %s could not be reproduced exactly "
            "(documents missing: %s, or the creator's keep decisions changed)",
            dataset.assistant_id, run.id, missing or "none",
        )  # fmt: skip
    notes = {"chunks_from": "curation run", "reproduced": reproduced, "missing_documents": missing}
    return list(curated.chunks), notes


def _row(chunk: Chunk, document: Document) -> dict[str, Any]:
    source = chunk.source
    return {
        "chunk_id": chunk.chunk_id,
        "document_id": document.id,
        "filename": document.filename,
        "source_url": document.source_url,
        "page": source.page,
        "section": " > ".join(source.heading_path),
        "row": source.row,
        "char_start": source.char_start,
        "char_end": source.char_end,
        "text": chunk.text,
    }


def _embed_rows(rows: list[dict[str, Any]]) -> npt.NDArray[np.float32]:
    """Unit vectors of each chunk (its section heading first, as context), with MiniLM."""
    from gptstudio.curation.semantic import minilm_encoder

    texts = [f"{r['section']}\n{r['text']}" if r["section"] else r["text"] for r in rows]
    return unit_vectors(np.asarray(minilm_encoder()(texts), dtype=np.float32))


def _content_hash(dataset: Dataset, rows: list[dict[str, Any]]) -> str:
    from gptstudio.curation.hashing import sha256_hex

    return sha256_hex(value={"model": MODEL_ID, "dataset": dataset.content_hash, "rows": rows})
