"""The parse job: read a stored upload with the pure :mod:`gptstudio.curation.parsers` and record
the outcome on its document (``parsed`` with a report, or ``failed`` with what to fix).

:func:`parse_file` is how every job reads a stored document (curation runs, and retrieval
indexes built from snapshots older than their ``chunks.jsonl``): same limits, same column choice.
"""

from __future__ import annotations

import functools
import hashlib
import logging
import pickle
from pathlib import Path
from typing import Any

from gptstudio.curation.documents import ParsedDocument
from gptstudio.curation.errors import ColumnChoiceError, CurationError
from gptstudio.db import session_scope
from gptstudio.errors import InvalidInput
from gptstudio.jobs.lease import DOCUMENTS, claim, heartbeat, hold
from gptstudio.jobs.tasks import body
from gptstudio.models import Document
from gptstudio.services import file_crypto
from gptstudio.services.document import column_choice, parsed_path, row_template
from gptstudio.settings import get_settings

log = logging.getLogger(__name__)


@functools.cache
def parser_version() -> str:
    """A hash of the code that turns bytes into a parsed document (the parsers and the values
    they return): any change to it parses every document again."""
    import gptstudio.curation.documents as documents
    import gptstudio.curation.examples as examples
    import gptstudio.curation.parsers as parsers

    digest = hashlib.sha256()
    files = [Path(documents.__file__), Path(examples.__file__)]
    files += sorted(Path(parsers.__file__).parent.rglob("*.py"))
    for file in files:
        digest.update(file.name.encode() + b"\0" + file.read_bytes())
    return digest.hexdigest()


def _key(filename: str, document_id: int | str, columns: dict[str, str] | None) -> str:
    limit = get_settings().max_upload_mb
    return f"{parser_version()}|{limit}|{document_id}|{filename}|{sorted((columns or {}).items())}"


def parse_file(
    *, path: str | Path, filename: str, document_id: int | str, columns: dict[str, str] | None
) -> ParsedDocument:
    """The stored file (decrypted) parsed as its upload would be (the upload limit, the
    creator's columns), kept for :func:`parsed_document`; raises the parsers' ``CurationError``,
    ``OSError``, and :mod:`file_crypto`'s errors for a missing key or a damaged file."""
    from gptstudio.curation.parsers import ParseLimits, parse_document

    limits = ParseLimits(max_bytes=get_settings().max_upload_mb * 1024 * 1024)
    data, template = file_crypto.read_plain(path, name=filename), row_template(columns)
    if template is not None:
        parsed = _from_template(data, filename, str(document_id), limits, template)
    else:
        parsed = parse_document(
            data=data, filename=filename, document_id=str(document_id),
            limits=limits, columns=column_choice(columns),
        )  # fmt: skip
    _keep(path, _key(filename, document_id, columns), parsed)
    return parsed


def _from_template(
    data: bytes, filename: str, document_id: str, limits: Any, template: Any
) -> ParsedDocument:
    """A table read through the creator's row template: one example per row, no prose sections
    (the report is the parse of the template's first column: file type, records, columns)."""
    import dataclasses

    from gptstudio.curation.parsers import ColumnChoice, parse_document
    from gptstudio.curation.templates import template_examples

    result = template_examples(
        data=data, filename=filename, document_id=document_id, template=template, limits=limits
    )
    first = parse_document(
        data=data, filename=filename, document_id=document_id, limits=limits,
        columns=ColumnChoice(text=template.columns[0]),
    )  # fmt: skip
    notes = [f"Row template: {len(result.examples)} examples"]
    if result.skipped_rows:
        rows = ", ".join(str(r) for r in result.skipped_rows[:10])
        more = "…" if len(result.skipped_rows) > 10 else ""
        notes.append(
            f"{len(result.skipped_rows)} rows skipped for an empty cell the template uses "
            f"(rows {rows}{more})"
        )
    report = dataclasses.replace(
        first.report, column_choice=None, notes=(*first.report.notes, *notes)
    )
    return dataclasses.replace(first, sections=(), examples=result.examples, report=report)


def _keep(path: str | Path, key: str, parsed: ParsedDocument) -> None:
    # The parsed copy holds the original's text: encrypted at rest like the original (which
    # also authenticates it: only this code's own pickles are ever loaded).
    target = parsed_path(path)
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        data = pickle.dumps((key, parsed), protocol=pickle.HIGHEST_PROTOCOL)
        file_crypto.write_encrypted(target, data)  # atomic: a reader sees old or new
    except OSError:
        log.warning("could not keep the parsed document %s", target, exc_info=True)


def parsed_document(
    *, path: str | Path, filename: str, document_id: int | str, columns: dict[str, str] | None
) -> ParsedDocument:
    """The document as its parse job left it, or parsed again (and kept) when the parser, the
    column choice or the limits changed since (see :func:`parse_file`)."""
    key = _key(filename, document_id, columns)
    try:
        # Written by these jobs only, encrypted and authenticated with the installation's key,
        # under a key naming this code's hash: never a file a user supplied. A copy under a key
        # since removed, or damaged, is parsed again.
        kept_key, parsed = pickle.loads(file_crypto.read_plain(parsed_path(path)))  # noqa: S301
    except (
        OSError, pickle.UnpicklingError, EOFError, AttributeError, ValueError, TypeError,
        file_crypto.KeyMissing, file_crypto.StoredFileDamaged,
    ):  # fmt: skip
        kept_key, parsed = None, None
    if kept_key == key and isinstance(parsed, ParsedDocument):
        return parsed
    return parse_file(path=path, filename=filename, document_id=document_id, columns=columns)


@body("parse_document")
def parse_stored(document_id: int) -> None:
    """Parse a stored upload and record the outcome on the document.

    The document is leased (:mod:`gptstudio.jobs.lease`): claimed ``uploaded`` → ``parsing`` (a
    second copy of the task finds it taken), its heartbeat kept during the parse however long a
    PDF takes, and the outcome written only while this attempt still holds it. A parse whose
    worker dies, or that raised before recording its outcome (Huey's retry then finds the row
    taken), is given to the queue again once by the sweep when its heartbeat is stale, then
    failed with a message."""
    attempt = claim(DOCUMENTS, document_id)
    if attempt is None:
        return  # deleted, or parsed or being parsed by another copy of this task
    with session_scope() as session:
        document = session.get(Document, document_id)
        assert document is not None
        path, name, columns = document.storage_path, document.filename, document.columns
        content_type = document.content_type
    with heartbeat(DOCUMENTS, document_id, attempt):
        status, error, report = _outcome(path, name, document_id, columns)
        hold(
            DOCUMENTS, document_id, attempt, status=status, error=error, report=report,
            content_type=str(report.get("file_type", content_type)),
        )  # fmt: skip


def _outcome(
    path: str, name: str, document_id: int, columns: dict[str, str] | None
) -> tuple[str, str, dict[str, Any]]:
    """The parse's status, error and report: ``failed`` says what to fix."""
    try:
        parsed = parse_file(path=path, filename=name, document_id=document_id, columns=columns)
        return "parsed", "", parse_report(parsed)
    except ColumnChoiceError as failure:
        return "failed", str(failure), {"columns": list(failure.columns)}
    except (
        CurationError, InvalidInput, file_crypto.KeyMissing, file_crypto.StoredFileDamaged
    ) as failure:  # fmt: skip
        return "failed", str(failure), {}
    except OSError as failure:
        return (
            "failed",
            f"The stored file cannot be read ({failure.strerror}); upload it again.",
            {},
        )
    except Exception as failure:
        log.exception("parsing document %s failed", document_id)
        return (
            "failed",
            f"This file could not be read ({type(failure).__name__}); try another format.",
            {},
        )


def parse_report(parsed: ParsedDocument) -> dict[str, Any]:
    """What the document page shows about a parse."""
    report = parsed.report
    return {
        "file_type": report.file_type.value,
        "declared_type": report.declared_type.value if report.declared_type else None,
        "extension_mismatch": report.extension_mismatch,
        "encoding": report.encoding,
        "pages": report.pages,
        "records": report.records,
        "sections": len(parsed.sections),
        "examples": len(parsed.examples),
        "characters": sum(len(s.text) for s in parsed.sections),
        "notes": list(report.notes),
        "columns": list(report.columns),
        "column_choice": report.column_choice,
    }
