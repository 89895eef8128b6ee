"""Read PDF text page by page with pypdf, keeping 1-based page numbers.

Password-protected files are refused unless they open with an empty password (owner-only
protection). Pages that fail or hold no text (scans) are noted and skipped; a file with no text
on any page is refused with a hint to run OCR.
"""

from __future__ import annotations

import io
import zlib

from pypdf import PdfReader
from pypdf.errors import PyPdfError

from gptstudio.curation.documents import Section
from gptstudio.curation.errors import CorruptFileError, EmptyFileError, EncryptedFileError
from gptstudio.curation.parsers.limits import ParseLimits
from gptstudio.curation.parsers.parts import ParsedParts

# pypdf reports malformed structures through its own errors and assorted built-ins.
_PDF_ERRORS = (PyPdfError, ValueError, KeyError, IndexError, TypeError, zlib.error, RecursionError)


def _open(data: bytes) -> PdfReader:
    try:
        reader = PdfReader(io.BytesIO(data), strict=False)
        opened = not reader.is_encrypted or bool(reader.decrypt(""))
    except _PDF_ERRORS as error:
        raise CorruptFileError(
            "The PDF is damaged or truncated and cannot be read; export it again from the "
            "program that made it."
        ) from error
    if not opened:
        raise EncryptedFileError(
            "The PDF is password-protected; remove the password (print to PDF or use "
            "'Save without password') and upload it again."
        )
    return reader


def _page_count(reader: PdfReader) -> int:
    try:
        return len(reader.pages)
    except _PDF_ERRORS as error:
        raise CorruptFileError(
            "The PDF's page list is damaged; export it again from the program that made it."
        ) from error


def _page_text(reader: PdfReader, index: int) -> str | None:
    try:
        return reader.pages[index].extract_text()
    except _PDF_ERRORS:
        return None


def parse_pdf(*, data: bytes, limits: ParseLimits) -> ParsedParts:
    """Sections, one per page with text, from PDF bytes."""
    reader = _open(data)
    pages = _page_count(reader)
    parts = ParsedParts(pages=pages)
    if pages > limits.max_pages:
        parts.notes.append(f"Only the first {limits.max_pages} of {pages} pages were read.")
    unreadable, blank = [], []
    for index in range(min(pages, limits.max_pages)):
        text = _page_text(reader, index)
        if text is None:
            unreadable.append(index + 1)
        elif not text.strip():
            blank.append(index + 1)
        else:
            parts.sections.append(Section(text=text, page=index + 1))
    _note_pages(parts, unreadable=unreadable, blank=blank)
    return parts


def _note_pages(parts: ParsedParts, *, unreadable: list[int], blank: list[int]) -> None:
    if unreadable:
        parts.notes.append(f"Pages that could not be read: {_page_list(unreadable)}.")
    if blank:
        parts.notes.append(
            f"Pages without extractable text (scanned images?): {_page_list(blank)}."
        )
    if not parts.sections and unreadable and not blank:
        raise CorruptFileError(
            "No page of the PDF could be read; export it again from the program that made it."
        )
    if not parts.sections:
        raise EmptyFileError(
            "The PDF has no extractable text (it may be a scan); run OCR on it or upload the "
            "original document."
        )


def _page_list(pages: list[int]) -> str:
    shown = ", ".join(str(page) for page in pages[:20])
    return shown + (f" and {len(pages) - 20} more" if len(pages) > 20 else "")
