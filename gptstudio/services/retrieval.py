"""Retrieval with citations (RAG): an assistant's curated chunks, searched for every question.

**Building** (a queue job, :mod:`gptstudio.jobs.retrieval`): the curated chunks of the
assistant's latest dataset version (the ``chunks.jsonl`` its snapshot keeps: cleaned,
PII-scrubbed, quality-filtered, deduplicated) are embedded with MiniLM
(``gptstudio.curation.semantic.minilm_encoder``, the model the engine's ``/v1/embeddings``
serves) and written as one file, ``<artifacts>/assistants/<id>/retrieval/index.npz``: unit
vectors, one JSON line of provenance per chunk (document id, file name, page, section, character
span, text) and a manifest (dataset version, content hash, model, build time). The file is
written beside its final name and moved over it with one ``os.replace``, so a reader sees the
old index or the new one, never half of one.

**Why numpy and not pgvector.** The embedded default database is SQLite, where pgvector does not
exist, and a second code path only for PostgreSQL would double what has to be tested. The
corpora are small and per assistant: a creator's documents make hundreds to a few tens of
thousands of chunks, 1.5 KiB each as 384 float32s, so one assistant's index is a few MiB and an
exact cosine search is one matrix-vector product (microseconds for 1,000 chunks, about a
millisecond for 20,000), with no recall lost to an approximate index. The index is immutable
between builds, is loaded once per web process and reloaded when the file changes, and sits
next to the other artifacts (datasets, adapters) that already live on shared storage.

**Asking** (the web process, :func:`retrieve`): the question is embedded over HTTP by the engine,
or by the server ``GPTSTUDIO_EMBEDDINGS_URL`` names (``settings.resolved_embeddings_url``, model
``settings.embedding_model``; a vLLM chat server serves no MiniLM; the web process never
imports torch), scored against the cached index, and the top ``k`` become numbered
:class:`Passage` objects, which :mod:`.prompt` puts into the system message with the
instruction to cite them as ``[n]``. Retrieval never fails a chat: with no index yet, or the
embeddings service down, the answer goes ahead without passages and :attr:`Retrieval.warning`
says why.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import re
import threading
import uuid
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, Literal

import httpx
import numpy as np
import numpy.typing as npt
from sqlmodel import Session, col, select

from gptstudio import engine_client
from gptstudio.db import session_scope, utcnow
from gptstudio.errors import DomainError, InvalidInput, NotFound, PermissionDenied
from gptstudio.models import Assistant, Dataset, Document
from gptstudio.models.user import UserPublic
from gptstudio.services.assistant import owned_assistant
from gptstudio.settings import get_settings

log = logging.getLogger(__name__)

MODEL_ID = "sentence-transformers/all-MiniLM-L6-v2"
INDEX_FORMAT = 1
MIN_SCORE = 0.15
"""Cosine similarity below which a chunk is not offered as a source (MiniLM puts unrelated
sentences around 0 to 0.1; a passage that answers a question scores well above 0.4)."""
STALE_BUILD = timedelta(minutes=30)
"""A build whose worker has been silent this long is reported as stopped."""
_CACHE_SIZE = 64  # assistants' indexes kept in memory per web process


class RetrievalError(DomainError):
    """The index cannot be built as asked; the message says what to do."""

    status_code = 400
    type = "invalid_request_error"
    code = "retrievalerror"


# --- the index on disk -----------------------------------------------------------------------


def index_folder(assistant_id: int) -> Path:
    return get_settings().artifacts_dir / "assistants" / str(assistant_id) / "retrieval"


def index_path(assistant_id: int) -> Path:
    return index_folder(assistant_id) / "index.npz"


def _status_path(assistant_id: int) -> Path:
    return index_folder(assistant_id) / "status.json"


def _write_atomically(path: Path, write: Callable[[Path], None]) -> None:
    """Write through a temporary file in the same folder, then move it over ``path``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.stem}-{uuid.uuid4().hex}{path.suffix}")
    try:
        write(temporary)
        with temporary.open("rb") as handle:
            os.fsync(handle.fileno())
        os.replace(temporary, path)
    finally:
        temporary.unlink(missing_ok=True)


def write_status(assistant_id: int, status: dict[str, Any]) -> None:
    text = json.dumps(status, ensure_ascii=False)

    def write(target: Path) -> None:
        target.write_text(text, encoding="utf-8")

    _write_atomically(_status_path(assistant_id), write)


def read_status(assistant_id: int) -> dict[str, Any]:
    try:
        status: dict[str, Any] = json.loads(_status_path(assistant_id).read_text(encoding="utf-8"))
    except (FileNotFoundError, ValueError):
        return {}
    return status


def clear_status(assistant_id: int) -> None:
    """Forget the last build's progress and failure (a build just succeeded)."""
    _status_path(assistant_id).unlink(missing_ok=True)


def _bytes_array(text: str) -> npt.NDArray[np.uint8]:
    return np.frombuffer(text.encode("utf-8"), dtype=np.uint8)


def write_index(
    path: Path, *, vectors: npt.NDArray[np.float32], rows: list[dict[str, Any]],
    manifest: dict[str, Any],
) -> None:  # fmt: skip
    """One ``.npz`` (no pickles): ``vectors``, ``meta`` (JSON lines) and ``manifest`` (JSON)."""
    meta = "".join(json.dumps(row, ensure_ascii=False) + "\n" for row in rows)

    def write(target: Path) -> None:
        with target.open("wb") as handle:
            np.savez(
                handle,
                vectors=vectors.astype(np.float32),
                meta=_bytes_array(meta),
                manifest=_bytes_array(json.dumps(manifest, ensure_ascii=False)),
            )

    _write_atomically(path, write)


@dataclass(frozen=True)
class LoadedIndex:
    """An index in memory: unit vectors, one provenance row per vector, the manifest."""

    vectors: npt.NDArray[np.float32]
    rows: list[dict[str, Any]]
    manifest: dict[str, Any]


def unit_vectors(matrix: npt.NDArray[np.float32]) -> npt.NDArray[np.float32]:
    """Each row scaled to length 1 (the index and the queries: cosine is a dot product)."""
    norms = np.linalg.norm(matrix, axis=-1, keepdims=True)
    return (matrix / np.maximum(norms, 1e-12)).astype(np.float32)


def read_index(path: Path) -> LoadedIndex:
    with np.load(path, allow_pickle=False) as data:
        vectors = np.asarray(data["vectors"], dtype=np.float32)
        meta = bytes(data["meta"]).decode("utf-8")
        manifest = json.loads(bytes(data["manifest"]).decode("utf-8"))
    rows = [json.loads(line) for line in meta.splitlines() if line]
    if len(rows) != len(vectors):
        raise ValueError(f"{path} holds {len(vectors)} vectors but {len(rows)} rows")
    return LoadedIndex(vectors=vectors, rows=rows, manifest=manifest)


# --- status and requests (creator) -----------------------------------------------------------


@dataclass(frozen=True)
class IndexStatus:
    """Where an assistant's index stands, for the settings page.

    ``state`` is ``none`` (never built), ``building`` (queued or running; ``step`` says where) or
    ``ready``. ``error`` is the last build's failure, shown also when an older index is still
    ``ready``. ``outdated`` is true when a newer dataset version than the indexed one exists.
    """

    state: Literal["none", "building", "ready"]
    chunks: int = 0
    dataset_id: int | None = None
    dataset_version: int | None = None
    built_at: datetime | None = None
    error: str = ""
    step: str = ""
    latest_dataset_version: int | None = None

    @property
    def outdated(self) -> bool:
        return (
            self.state == "ready"
            and self.latest_dataset_version is not None
            and self.latest_dataset_version != self.dataset_version
        )

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready, with ``outdated``, for state vars and API answers."""
        data = asdict(self)
        data["built_at"] = self.built_at.isoformat() if self.built_at else ""
        return {**data, "outdated": self.outdated}


def latest_dataset(assistant_id: int) -> Dataset | None:
    """The assistant's newest dataset version: what the index should be built from."""
    with session_scope() as session:
        return session.exec(
            select(Dataset)
            .where(Dataset.assistant_id == assistant_id)
            .order_by(col(Dataset.version).desc())
        ).first()


def _manifest(assistant_id: int) -> dict[str, Any] | None:
    try:
        with np.load(index_path(assistant_id), allow_pickle=False) as data:
            manifest: dict[str, Any] = json.loads(bytes(data["manifest"]).decode("utf-8"))
    except (FileNotFoundError, OSError, KeyError, ValueError):
        return None
    return manifest


def _is_stale(status: dict[str, Any]) -> bool:
    try:
        updated = datetime.fromisoformat(str(status.get("updated_at")))
    except ValueError:
        return True
    return utcnow() - updated > STALE_BUILD


def _status(assistant_id: int) -> IndexStatus:
    status = read_status(assistant_id)
    manifest = _manifest(assistant_id)
    latest = latest_dataset(assistant_id)
    newest = latest.version if latest else None
    error = str(status.get("error", "")) if status.get("state") == "failed" else ""
    if status.get("state") == "building":
        if not _is_stale(status):
            return IndexStatus(
                state="building", step=str(status.get("step", "")),
                dataset_id=status.get("dataset_id"), dataset_version=status.get("dataset_version"),
                latest_dataset_version=newest,
            )  # fmt: skip
        error = "The last index build stopped without finishing (its worker quit); rebuild it."
    if manifest is None:
        return IndexStatus(state="none", error=error, latest_dataset_version=newest)
    return IndexStatus(
        state="ready", chunks=int(manifest["chunks"]), dataset_id=manifest["dataset_id"],
        dataset_version=manifest["dataset_version"],
        built_at=datetime.fromisoformat(manifest["built_at"]), error=error,
        latest_dataset_version=newest,
    )  # fmt: skip


def index_status(*, actor: UserPublic, assistant_id: int) -> IndexStatus:
    """The assistant's index: none, building or ready (owner or admin only)."""
    with session_scope() as session:
        owned_assistant(session, actor=actor, assistant_id=assistant_id)
    return _status(assistant_id)


def request_build(*, actor: UserPublic, assistant_id: int) -> IndexStatus:
    """Queue a (re)build of the index from the latest dataset version (owner or admin only)."""
    with session_scope() as session:
        owned_assistant(session, actor=actor, assistant_id=assistant_id)
    latest = latest_dataset(assistant_id)
    if latest is None:
        raise InvalidInput(
            "Snapshot a dataset first: the sources index is built from the latest dataset version."
        )
    current = read_status(assistant_id)
    if current.get("state") == "building" and not _is_stale(current):
        raise InvalidInput("The sources index is already being built; wait for it to finish.")
    write_status(
        assistant_id,
        {"state": "building", "step": "queued", "dataset_id": latest.id,
         "dataset_version": latest.version, "updated_at": utcnow().isoformat()},
    )  # fmt: skip
    from gptstudio.jobs.tasks import build_retrieval_index_task

    build_retrieval_index_task(assistant_id)
    return _status(assistant_id)


# --- asking (web process) --------------------------------------------------------------------


@dataclass(frozen=True)
class Passage:
    """One retrieved chunk, numbered as the answer cites it (``[n]``)."""

    n: int
    document_id: int
    filename: str
    page: int | None
    text: str
    score: float
    section: str = ""
    char_start: int | None = None
    char_end: int | None = None
    source_url: str = ""

    @property
    def label(self) -> str:
        """``bees.pdf, page 2`` / ``guide.md, Varroa > Treatment``: where the passage is from."""
        where = f"page {self.page}" if self.page is not None else self.section
        return f"{self.filename}, {where}" if where else self.filename

    @property
    def document_url(self) -> str:
        """Where the chat links to the source: the scrubbed passage in its document's context
        (:func:`source_in_context`), scrolled to it."""
        at = f"?at={self.char_start}" if self.char_start is not None else ""
        return f"/api/sources/{self.document_id}{at}#cited"

    def to_citation(self, *, cited: bool | None = None) -> dict[str, Any]:
        """What a message stores in ``Message.citations`` (JSON) and the chat page renders."""
        citation: dict[str, Any] = {
            "n": self.n, "document_id": self.document_id, "filename": self.filename,
            "page": self.page, "section": self.section, "label": self.label,
            "char_start": self.char_start, "char_end": self.char_end,
            "source_url": self.source_url, "score": round(self.score, 4),
            "url": self.source_url or self.document_url,
            "snippet": _snippet(self.text),
        }  # fmt: skip
        if cited is not None:
            citation["cited"] = cited
        return citation


def _snippet(text: str, limit: int = 400) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1].rsplit(" ", 1)[0] + "…"


class Retrieval(list[Passage]):
    """The passages found (best first, numbered from 1), and why there are none if so.

    A ``list[Passage]``; ``warning`` is empty when the search ran, else a sentence for the user
    (no index yet, embeddings service down), already logged.
    """

    def __init__(self, passages: Sequence[Passage] = (), *, warning: str = "") -> None:
        super().__init__(passages)
        self.warning = warning


_cache: OrderedDict[int, tuple[tuple[int, int, int], LoadedIndex]] = OrderedDict()
_cache_lock = threading.Lock()  # questions for several assistants load on several threads


def _cached_index(assistant_id: int) -> LoadedIndex | None:
    """The assistant's index, read again only when the file changed (blocking: run in a thread)."""
    path = index_path(assistant_id)
    with _cache_lock:
        try:
            stat = path.stat()
        except FileNotFoundError:
            _cache.pop(assistant_id, None)
            return None
        signature = (stat.st_ino, stat.st_mtime_ns, stat.st_size)
        hit = _cache.get(assistant_id)
        if hit is not None and hit[0] == signature:
            _cache.move_to_end(assistant_id)
            return hit[1]
        index = read_index(path)
        _cache[assistant_id] = (signature, index)
        while len(_cache) > _CACHE_SIZE:
            _cache.popitem(last=False)
        return index


def indexed_documents(assistant_id: int) -> set[int]:
    """The documents the assistant's index can cite (none without an index; blocking)."""
    index = _cached_index(assistant_id)
    return set() if index is None else {int(row["document_id"]) for row in index.rows}


async def embed_query(text: str) -> npt.NDArray[np.float32]:
    """The embeddings server's vector for ``text`` (``POST /v1/embeddings``); raises ``httpx``
    errors."""
    body = {"model": get_settings().embedding_model, "input": [text], "encoding_format": "float"}
    # The first call loads the model on the engine.
    async with engine_client.embeddings_client(httpx.Timeout(5, read=60)) as client:
        response = await client.post("/v1/embeddings", json=body)
        response.raise_for_status()
        vector = response.json()["data"][0]["embedding"]
    return unit_vectors(np.asarray(vector, dtype=np.float32))


def top_k(
    index: LoadedIndex, query: npt.NDArray[np.float32], *, k: int, min_score: float = MIN_SCORE
) -> list[Passage]:
    """Exact cosine top ``k`` (vectors are unit length: a dot product), numbered from 1."""
    scores = index.vectors @ query
    k = min(k, len(scores))
    best = np.argpartition(-scores, k - 1)[:k] if k else np.array([], dtype=np.int64)
    ranked = sorted(best.tolist(), key=lambda i: -float(scores[i]))
    chosen = [i for i in ranked if float(scores[i]) >= min_score]
    return [_passage(n, index.rows[i], float(scores[i])) for n, i in enumerate(chosen, 1)]


def _passage(n: int, row: dict[str, Any], score: float) -> Passage:
    return Passage(
        n=n, document_id=int(row["document_id"]), filename=str(row["filename"]),
        page=row.get("page"), text=str(row["text"]), score=score,
        section=str(row.get("section", "")), char_start=row.get("char_start"),
        char_end=row.get("char_end"), source_url=str(row.get("source_url", "")),
    )  # fmt: skip


async def retrieve(*, assistant_id: int, query: str, k: int) -> Retrieval:
    """The ``k`` passages of the assistant's index closest to ``query``, best first.

    Never raises for a missing index or an unreachable embeddings service: it returns no
    passages and a ``warning`` (also logged), so the chat answers without sources.
    """
    if not query.strip() or k < 1:
        return Retrieval()
    try:
        index = await asyncio.to_thread(_cached_index, assistant_id)
    except (OSError, ValueError, KeyError) as error:
        log.warning("retrieval index of assistant %s is unreadable: %s", assistant_id, error)
        return Retrieval(warning="The sources index cannot be read; the creator should rebuild it.")
    if index is None or not len(index.rows):
        log.warning("assistant %s has RAG on but no sources index yet", assistant_id)
        return Retrieval(warning="Sources are not indexed yet, so this answer cites no documents.")
    try:
        vector = await embed_query(query)
    except (httpx.HTTPError, ValueError, KeyError, IndexError) as error:
        log.warning("embedding a question for assistant %s failed: %r", assistant_id, error)
        return Retrieval(
            warning="Searching the sources is unavailable right now, so this answer cites no "
            "documents."
        )
    if vector.shape != index.vectors.shape[1:]:
        log.warning(
            "assistant %s: query vectors have %s dimensions, the index %s (another model?)",
            assistant_id, vector.shape, index.vectors.shape[1:],
        )  # fmt: skip
        return Retrieval(
            warning="The sources index was built with another embedding model; rebuild it."
        )
    return Retrieval(top_k(index, vector, k=k))


# --- opening a cited source -------------------------------------------------------------------


@dataclass(frozen=True)
class SourceAccess:
    """What ``actor`` may open of a document: its scrubbed passages in context (``passages``),
    and the original upload, before PII scrubbing (``original``)."""

    passages: bool
    original: bool


def source_access(session: Session, *, actor: UserPublic, document: Document) -> SourceAccess:
    """Who may open a cited document. Its owner (and admins): the passages and the original.
    Anyone signed in, where a published assistant with retrieval on can cite it: the scrubbed
    passages; the original too only when the creator lets subscribers open originals
    (``Assistant.rag_originals_for_subscribers``). Anyone else: nothing (not found)."""
    try:
        owned_assistant(session, actor=actor, assistant_id=document.assistant_id)
        return SourceAccess(passages=True, original=True)
    except (PermissionDenied, NotFound):
        pass
    assistant = session.get(Assistant, document.assistant_id)
    citable = (
        assistant is not None and assistant.is_published and assistant.rag_enabled
        and (document.id or 0) in indexed_documents(document.assistant_id)
    )  # fmt: skip
    originals = citable and assistant is not None and assistant.rag_originals_for_subscribers
    return SourceAccess(passages=citable, original=originals)


@dataclass(frozen=True)
class SourceView:
    """A cited document as a citation opens it: its passages in the index (scrubbed, in
    document order) and whether the viewer may also open the original file."""

    document_id: int
    filename: str
    passages: list[Passage]
    original: bool


def source_in_context(*, actor: UserPublic, document_id: int) -> SourceView:
    """The document's indexed passages for a citation (see :func:`source_access`)."""
    with session_scope() as session:
        document = session.get(Document, document_id)
        if document is None:
            raise NotFound("There is no such document.")
        access = source_access(session, actor=actor, document=document)
        if not access.passages:
            raise NotFound("There is no such document.")
        assistant_id, filename = document.assistant_id, document.filename
    index = _cached_index(assistant_id)
    rows = [r for r in (index.rows if index else []) if int(r["document_id"]) == document_id]
    rows.sort(key=lambda r: (r.get("page") or 0, r.get("char_start") or 0))
    passages = [_passage(n, row, 0.0) for n, row in enumerate(rows, 1)]
    return SourceView(document_id, filename, passages, access.original)


def citations(passages: Sequence[Passage], answer: str) -> list[dict[str, Any]]:
    """The citations to store with an answer: every passage given, ``cited`` when ``[n]`` is in
    the answer."""
    used = {int(n) for n in re.findall(r"\[(\d+)\]", answer)}
    return [p.to_citation(cited=p.n in used) for p in passages]
