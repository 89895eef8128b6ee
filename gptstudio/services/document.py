"""Documents: streamed uploads with a per-creator quota, parsing on a worker, per-file status.

Uploads are written to disk in chunks (never whole in memory) under the artifacts folder,
encrypted as they arrive (AES-GCM, :mod:`gptstudio.services.file_crypto`); the bytes are
parsed by a queue job (:mod:`gptstudio.jobs.documents`) with the pure
:mod:`gptstudio.curation.parsers`, and every problem ends as a ``failed`` document whose
``error`` tells the creator what to fix.
"""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from sqlalchemy import func, update
from sqlmodel import Session, col, select

from gptstudio.curation.errors import CurationError, InvalidParameterError
from gptstudio.curation.filenames import safe_filename
from gptstudio.db import session_scope
from gptstudio.errors import DomainError, InvalidInput, NotFound
from gptstudio.models import Document
from gptstudio.models.user import UserPublic
from gptstudio.services import creator_tier, file_crypto
from gptstudio.services.assistant import owned_assistant, owner_check
from gptstudio.services.retrieval import source_access
from gptstudio.settings import get_settings

CHUNK = 1024 * 1024


class UploadRefused(DomainError):
    status_code = 413
    type = "invalid_request_error"
    code = "uploadrefused"


@dataclass(frozen=True)
class DocumentInfo:
    id: int
    assistant_id: int
    filename: str
    source_url: str
    content_type: str
    size_bytes: int
    status: str
    error: str
    report: dict[str, Any]
    created_at: datetime
    columns: dict[str, str] | None = None

    @property
    def is_tabular(self) -> bool:
        """A CSV/JSON file whose columns the creator can choose."""
        return bool(self.report.get("columns"))


COLUMN_ROLES = ("text", "instruction", "response", "context", "system")
TEMPLATE_ROLES = ("question_template", "answer_template", "system_template")
"""A row template instead of columns: each row becomes one example, e.g. "What does {name}
cost?" -> "{name} costs {price}. {description}" (:mod:`gptstudio.curation.templates`)."""


def row_template(columns: dict[str, str] | None) -> Any:
    """The stored choice's ``RowTemplate``, or ``None`` when it names columns (or nothing)."""
    from gptstudio.curation.errors import InvalidParameterError
    from gptstudio.curation.templates import RowTemplate

    if not columns or not any(columns.get(role) for role in TEMPLATE_ROLES):
        return None
    question, answer = columns.get("question_template"), columns.get("answer_template")
    if not question or not answer:
        raise InvalidInput("A row template needs both a question and an answer.")
    try:
        return RowTemplate(
            question=question, answer=answer, system=columns.get("system_template") or None
        )
    except InvalidParameterError as error:
        raise InvalidInput(str(error)) from None


def column_choice(columns: dict[str, str] | None) -> Any:
    """The parser's ``ColumnChoice`` for a stored choice (``None``: guess from the names, or the
    choice is a row template)."""
    from gptstudio.curation.parsers import ColumnChoice

    if not columns or row_template(columns) is not None:
        return None
    try:
        return ColumnChoice(**{role: columns.get(role) or None for role in COLUMN_ROLES})
    except InvalidParameterError as error:
        raise InvalidInput(str(error)) from None


def _info(document: Document) -> DocumentInfo:
    return DocumentInfo(
        id=document.id or 0,
        assistant_id=document.assistant_id,
        filename=document.filename,
        source_url=document.source_url,
        content_type=document.content_type,
        size_bytes=document.size_bytes,
        status=document.status,
        error=document.error,
        report=document.report,
        created_at=document.created_at,
        columns=document.columns,
    )


def _documents_dir(assistant_id: int) -> Path:
    folder = get_settings().artifacts_dir / "documents" / str(assistant_id)
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def used_bytes(session: Session, owner_id: int) -> int:
    return int(
        session.exec(
            select(func.coalesce(func.sum(Document.size_bytes), 0)).where(
                Document.owner_id == owner_id
            )
        ).one()
    )


def _clean_name(filename: str) -> str:
    try:
        return safe_filename(name=filename)
    except CurationError as error:
        raise InvalidInput(str(error)) from None


class UploadWriter:
    """Writes one upload to disk chunk by chunk within the size limit and the creator's quota.

    ``finish`` records the document and queues its parsing; ``abort`` leaves nothing behind.
    """

    def __init__(
        self, *, actor: UserPublic, assistant_id: int, filename: str, source_url: str = ""
    ) -> None:
        settings = get_settings()
        self.actor, self.assistant_id, self.source_url = actor, assistant_id, source_url
        self.name = _clean_name(filename)
        with session_scope() as session:
            owned_assistant(session, actor=actor, assistant_id=assistant_id)
            self.quota_mb = creator_tier.storage_quota_mb(session, user_id=actor.id)
            self.room = self.quota_mb * 1024 * 1024 - used_bytes(session, actor.id)
        self.limit = settings.max_upload_mb * 1024 * 1024
        self.folder = _documents_dir(assistant_id)
        self.partial = self.folder / f".upload-{secrets.token_hex(8)}"
        self.sink = self.partial.open("wb")
        self.cipher = file_crypto.EncryptingWriter(self.sink)
        self.digest, self.size = hashlib.sha256(), 0

    def write(self, chunk: bytes) -> None:
        settings = get_settings()
        self.size += len(chunk)
        if self.size > self.limit:
            raise UploadRefused(
                f"{self.name} is larger than the {settings.max_upload_mb} MB upload limit; "
                "split it into smaller files."
            )
        if self.size > self.room:
            raise UploadRefused(
                f"{self.name} does not fit in your {self.quota_mb} MB of storage; "
                "delete documents you no longer need, or upgrade your GPT Studio tier."
            )
        self.digest.update(chunk)
        self.cipher.write(chunk)

    def finish(self) -> DocumentInfo:
        self.cipher.close()
        self.sink.close()
        try:
            with session_scope() as session:
                document = Document(
                    owner_id=self.actor.id, assistant_id=self.assistant_id, filename=self.name,
                    size_bytes=self.size, sha256=self.digest.hexdigest(),
                    source_url=self.source_url, status="uploaded",
                    encryption_key_id=self.cipher.key_id,
                )  # fmt: skip
                session.add(document)
                session.flush()
                final = self.folder / f"{document.id}-{self.name}"
                self.partial.rename(final)
                document.storage_path = str(final)
                info = _info(document)
        finally:
            self.partial.unlink(missing_ok=True)
        _enqueue_parse(info.id)
        return info

    def abort(self) -> None:
        self.sink.close()
        self.partial.unlink(missing_ok=True)


async def store_upload(
    *,
    actor: UserPublic,
    assistant_id: int,
    filename: str,
    stream: AsyncIterator[bytes],
    source_url: str = "",
) -> DocumentInfo:
    """Store one streamed upload (see :class:`UploadWriter`)."""
    writer = UploadWriter(
        actor=actor, assistant_id=assistant_id, filename=filename, source_url=source_url
    )
    try:
        async for chunk in stream:
            writer.write(chunk)
    except BaseException:
        writer.abort()
        raise
    return writer.finish()


async def _one_chunk(data: bytes) -> AsyncIterator[bytes]:
    for start in range(0, len(data), CHUNK):
        yield data[start : start + CHUNK]


async def store_bytes(
    *, actor: UserPublic, assistant_id: int, filename: str, data: bytes, source_url: str = ""
) -> DocumentInfo:
    """:func:`store_upload` for bytes already in memory (fetched web pages)."""
    return await store_upload(
        actor=actor, assistant_id=assistant_id, filename=filename, stream=_one_chunk(data),
        source_url=source_url,
    )  # fmt: skip


def record_failure(
    *, actor: UserPublic, assistant_id: int, name: str, source_url: str, error: str
) -> DocumentInfo:
    """A document that could not be fetched: listed as failed, with the reason."""
    with session_scope() as session:
        owned_assistant(session, actor=actor, assistant_id=assistant_id)
        document = Document(
            owner_id=actor.id, assistant_id=assistant_id, filename=name[:400],
            source_url=source_url[:2000], status="failed", error=error[:2000],
        )  # fmt: skip
        session.add(document)
        session.flush()
        return _info(document)


def _enqueue_parse(document_id: int) -> None:
    """Hand the committed ``uploaded`` document to a worker; while the broker is down it waits
    for the sweep (``gptstudio.jobs.outbox``), and the upload still succeeds."""
    from gptstudio.jobs.tasks import hand_over, parse_document_task

    hand_over(parse_document_task, document_id)


def parsed_path(storage_path: str | Path) -> Path:
    """Where the parse job keeps a stored upload's parsed document: a folder per assistant
    beside the uploads' (``parsed/<assistant>/<stored name>.parsed``)."""
    stored = Path(storage_path)
    return get_settings().artifacts_dir / "parsed" / stored.parent.name / f"{stored.name}.parsed"


def list_documents(*, actor: UserPublic, assistant_id: int) -> list[DocumentInfo]:
    """The assistant's documents, newest first (its owner only)."""
    with session_scope() as session:
        owned_assistant(session, actor=actor, assistant_id=assistant_id)
        rows = session.exec(
            select(Document)
            .where(Document.assistant_id == assistant_id)
            .order_by(col(Document.id).desc())
        ).all()
        return [_info(d) for d in rows]


def choose_columns(
    *, actor: UserPublic, document_id: int, columns: dict[str, str] | None
) -> DocumentInfo:
    """Set which CSV/JSON columns hold the text, or the instruction and response, or a row
    template over several columns (``None``: guess again from the names), and parse the document
    again with that choice (its owner only)."""
    cleaned = {r: str(v).strip() for r, v in (columns or {}).items() if v and str(v).strip()}
    if unknown := set(cleaned) - set(COLUMN_ROLES) - set(TEMPLATE_ROLES):
        raise InvalidInput(f"Unknown column role: {', '.join(sorted(unknown))}.")
    template = row_template(cleaned)
    if template is not None and set(cleaned) & set(COLUMN_ROLES):
        raise InvalidInput("Choose either columns or a row template, not both.")
    column_choice(cleaned)  # validates the combination
    used = list(template.columns) if template is not None else list(cleaned.values())
    with session_scope() as session:
        document = session.get(Document, document_id)
        if document is None:
            raise NotFound("There is no such document.")
        owner_check(session, actor=actor, assistant_id=document.assistant_id, what="document")
        available = document.report.get("columns") or []
        if not available:
            raise InvalidInput("Columns can only be chosen for CSV and JSON files.")
        if missing := [c for c in used if c not in available]:
            raise InvalidInput(
                f"Column {missing[0]!r} is not in the file; available: {', '.join(available)}."
            )
        # Only a finished parse is parsed again: a worker holding this one would otherwise
        # record the old choice. The attempts start over: a new parse, not a retry of the last.
        again = session.execute(
            update(Document)
            .where(col(Document.id) == document_id, col(Document.status).in_(["parsed", "failed"]))
            .values(columns=cleaned or None, status="uploaded", error="", attempts=0)
        )
        if not again.rowcount:  # type: ignore[attr-defined]
            raise InvalidInput("This file is still being read; choose its columns once it is.")
        session.refresh(document)
        info = _info(document)
    _enqueue_parse(document_id)
    return info


@dataclass(frozen=True)
class Source:
    """A document as a citation links to it: the stored file and how to send it."""

    path: Path
    filename: str
    media_type: str
    inline: bool

    def content(self) -> Iterator[bytes]:
        """The original bytes, decrypted as they are sent (never whole in memory)."""
        return file_crypto.iter_plain(self.path, name=self.filename)


def cited_source(*, actor: UserPublic, document_id: int) -> Source:
    """The original file behind a citation, before PII scrubbing: for its owner (and admins),
    and for anyone signed in only where the creator lets subscribers open the originals of
    what their assistant cites (:func:`.retrieval.source_access`). PDFs open in the browser;
    other files download, so an uploaded HTML page never runs on this site."""
    with session_scope() as session:
        row = session.get(Document, document_id)
        if row is None or not row.storage_path:
            raise NotFound("There is no such document.")
        if not source_access(session, actor=actor, document=row).original:
            raise NotFound("There is no such document.")
        path, name = Path(row.storage_path), row.filename
        is_pdf = str(row.report.get("file_type", row.content_type)) == "pdf"
    if not path.is_file():
        raise NotFound("The file of this document is no longer stored.")
    media_type = "application/pdf" if is_pdf else "application/octet-stream"
    return Source(path=path, filename=name, media_type=media_type, inline=is_pdf)


def delete_document(*, actor: UserPublic, document_id: int) -> None:
    """Remove a document and its file (its owner only)."""
    with session_scope() as session:
        document = session.get(Document, document_id)
        if document is None:
            raise NotFound("There is no such document.")
        owner_check(session, actor=actor, assistant_id=document.assistant_id, what="document")
        path = Path(document.storage_path) if document.storage_path else None
        session.delete(document)
    if path is not None:
        path.unlink(missing_ok=True)
        parsed_path(path).unlink(missing_ok=True)


def storage_summary(*, actor: UserPublic) -> tuple[int, int]:
    """(bytes used, bytes allowed) for the actor's documents."""
    with session_scope() as session:
        used = used_bytes(session, actor.id)
        quota = creator_tier.storage_quota_mb(session, user_id=actor.id)
    return used, quota * 1024 * 1024


@dataclass(frozen=True)
class Rotation:
    """What :func:`reencrypt_originals` did."""

    key_id: str
    reencrypted: int
    already_current: int
    missing: list[str]
    failed: list[str]
    parsed_dropped: int


def reencrypt_originals() -> Rotation:
    """Re-encrypt every stored original not under the current key (older keys, and plain files
    stored before encryption) and record the key per document; drop parsed copies under other
    keys (jobs parse those again). An operator's command (``python -m gptstudio.rotate_keys``):
    safe to run again, and while the app runs (each file is replaced atomically)."""
    current = file_crypto.keyring().current
    with session_scope() as session:
        rows = session.exec(
            select(Document.id, Document.storage_path, Document.filename).where(
                Document.storage_path != ""
            )
        ).all()
    done = current_count = 0
    missing: list[str] = []
    failed: list[str] = []
    for document_id, path, name in rows:
        label = f"document {document_id} ({name})"
        stored = Path(path)
        if not stored.is_file():
            missing.append(label)
            continue
        try:
            if file_crypto.key_id_of(stored) == current:
                current_count += 1
                key_id = current
            else:
                key_id = file_crypto.reencrypt(stored, name=label)
                done += 1
        except (file_crypto.KeyMissing, file_crypto.StoredFileDamaged) as error:
            failed.append(str(error))
            continue
        with session_scope() as session:
            row = session.get(Document, document_id)
            if row is not None:
                row.encryption_key_id = key_id
    dropped = 0
    for copy in (get_settings().artifacts_dir / "parsed").glob("*/*.parsed"):
        if file_crypto.key_id_of(copy) != current:
            copy.unlink(missing_ok=True)
            dropped += 1
    return Rotation(current, done, current_count, missing, failed, dropped)
