"""The parse job: read a stored upload with the pure :mod:`gptstudio.curation.parsers` and record
the outcome on its document (``parsed`` with a report, or ``failed`` with what to fix).

:func:`parse_file` is how every job reads a stored document (curation runs, and retrieval
indexes built from snapshots older than their ``chunks.jsonl``): same limits, same column choice.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from gptstudio.curation.documents import ParsedDocument
from gptstudio.curation.errors import ColumnChoiceError, CurationError
from gptstudio.db import session_scope
from gptstudio.errors import InvalidInput
from gptstudio.jobs.tasks import body
from gptstudio.models import Document
from gptstudio.services.document import column_choice
from gptstudio.settings import get_settings

log = logging.getLogger(__name__)


def parse_file(
    *, path: str | Path, filename: str, document_id: int | str, columns: dict[str, str] | None
) -> ParsedDocument:
    """The stored file parsed as its upload would be (the upload limit, the creator's columns);
    raises the parsers' ``CurationError`` and ``OSError``."""
    from gptstudio.curation.parsers import ParseLimits, parse_document

    limits = ParseLimits(max_bytes=get_settings().max_upload_mb * 1024 * 1024)
    return parse_document(
        data=Path(path).read_bytes(), filename=filename, document_id=str(document_id),
        limits=limits, columns=column_choice(columns),
    )  # fmt: skip


@body("parse_document")
def parse_stored(document_id: int) -> None:
    """Parse a stored upload and record the outcome on the document."""
    with session_scope() as session:
        document = session.get(Document, document_id)
        if document is None:
            return  # deleted before the worker got to it
        document.status = "parsing"
        path, name, columns = document.storage_path, document.filename, document.columns
    status, error, report = "failed", "", {}
    try:
        parsed = parse_file(path=path, filename=name, document_id=document_id, columns=columns)
        status, report = "parsed", parse_report(parsed)
    except ColumnChoiceError as failure:
        error, report = str(failure), {"columns": list(failure.columns)}
    except (CurationError, InvalidInput) as failure:
        error = str(failure)
    except OSError as failure:
        error = f"The stored file cannot be read ({failure.strerror}); upload it again."
    except Exception as failure:
        log.exception("parsing document %s failed", document_id)
        error = f"This file could not be read ({type(failure).__name__}); try another format."
    with session_scope() as session:
        document = session.get(Document, document_id)
        if document is not None:
            document.status, document.error, document.report = status, error, report
            document.content_type = str(report.get("file_type", document.content_type))


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
