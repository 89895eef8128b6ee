"""Turn uploaded bytes into a :class:`ParsedDocument`: sniff the type, then read it.

:func:`parse_document` is the one entry point. It checks the size limit, sniffs the type from the
bytes (the extension is only compared, and a mismatch is reported), dispatches to the format
reader, and assembles sections with offsets plus a :class:`ParseReport`. Every problem with the
file raises a :class:`~gptstudio.curation.errors.CurationError` subclass with a message for the
creator.
"""

from __future__ import annotations

import hashlib

from gptstudio.curation.documents import (
    FileType,
    ParsedDocument,
    ParseReport,
    layout_sections,
)
from gptstudio.curation.errors import EmptyFileError, FileTooLargeError
from gptstudio.curation.filenames import safe_filename
from gptstudio.curation.parsers.junk import refuse_junk
from gptstudio.curation.parsers.limits import ParseLimits
from gptstudio.curation.parsers.parts import ParsedParts
from gptstudio.curation.parsers.pdf import parse_pdf
from gptstudio.curation.parsers.plaintext import parse_text
from gptstudio.curation.parsers.sniff import Sniffed, is_mismatch, sniff, type_from_extension
from gptstudio.curation.parsers.tabular import ColumnChoice, parse_records
from gptstudio.curation.parsers.webpage import parse_html
from gptstudio.curation.parsers.word import parse_docx

__all__ = ["ColumnChoice", "ParseLimits", "parse_document"]

_TABULAR = (FileType.CSV, FileType.JSON, FileType.JSONL)
_PROSE = (FileType.TEXT, FileType.MARKDOWN)  # HTML may embed images as base64


def _human_size(size: int) -> str:
    if size >= 1_000_000:
        return f"{size / 1e6:.1f} MB"
    return f"{size / 1e3:.0f} KB" if size >= 1000 else f"{size} bytes"


def _check_size(data: bytes, limits: ParseLimits) -> None:
    if not data.strip():
        raise EmptyFileError("The file is empty; check that you picked the right file.")
    if len(data) > limits.max_bytes:
        raise FileTooLargeError(
            f"The file is {_human_size(len(data))}; the limit is {_human_size(limits.max_bytes)}."
            " Split it into smaller files."
        )


def _read(
    sniffed: Sniffed,
    *,
    data: bytes,
    document_id: str,
    limits: ParseLimits,
    columns: ColumnChoice | None,
) -> ParsedParts:
    if sniffed.file_type == FileType.PDF:
        return parse_pdf(data=data, limits=limits)
    if sniffed.file_type == FileType.DOCX:
        return parse_docx(data=data, limits=limits)
    if sniffed.decoded is None:  # text types always carry their decoded text
        raise EmptyFileError("The file has no readable text.")
    text = sniffed.decoded.text
    if sniffed.file_type in _PROSE:
        refuse_junk(text=text)
    if sniffed.file_type == FileType.HTML:
        return parse_html(text=text)
    if sniffed.file_type in _TABULAR:
        return parse_records(
            text=text,
            file_type=sniffed.file_type,
            document_id=document_id,
            columns=columns,
            max_records=limits.max_records,
        )
    return parse_text(text=text)


def _mismatch_note(filename: str, declared: FileType | None, detected: FileType) -> list[str]:
    if not is_mismatch(declared=declared, detected=detected):
        return []
    return [
        f"The name {filename!r} suggests {declared} but the content is {detected}; "
        f"it was read as {detected}."
    ]


def parse_document(
    *,
    data: bytes,
    filename: str,
    document_id: str | None = None,
    limits: ParseLimits | None = None,
    columns: ColumnChoice | None = None,
) -> ParsedDocument:
    """Parse an upload into sections and/or ready examples, with a report of what was done.

    ``document_id`` defaults to a hash of the bytes; pass the database id to have it in every
    provenance record. ``columns`` chooses the text or instruction/response columns of CSV and
    JSON files (guessed when ``None``). Raises a ``CurationError`` subclass for unusable input.
    """
    limits = limits or ParseLimits()
    name = safe_filename(name=filename)
    _check_size(data, limits)
    document_id = document_id or hashlib.sha256(data).hexdigest()[:20]
    declared = type_from_extension(filename=name)
    sniffed = sniff(data=data, limits=limits, declared=declared)
    parts = _read(sniffed, data=data, document_id=document_id, limits=limits, columns=columns)
    report = ParseReport(
        filename=name,
        file_type=sniffed.file_type,
        size_bytes=len(data),
        declared_type=declared,
        extension_mismatch=is_mismatch(declared=declared, detected=sniffed.file_type),
        encoding=sniffed.decoded.encoding if sniffed.decoded else None,
        pages=parts.pages,
        records=parts.records,
        columns=parts.columns,
        column_choice=parts.column_choice,
        notes=(*_mismatch_note(name, declared, sniffed.file_type), *parts.notes),
    )
    return ParsedDocument(
        document_id=document_id,
        filename=name,
        sections=layout_sections(sections=parts.sections),
        examples=tuple(parts.examples),
        report=report,
    )
