"""Decide a file's type from its bytes; the extension is only compared, never trusted.

Binary formats are recognised by magic numbers (PDF, DOCX = a zip holding ``word/document.xml``);
everything else must decode as text and is then told apart by content: HTML markup, JSON, JSON
Lines, delimited tables (see :mod:`delimited`), Markdown, or plain text. A file named .csv that
is not a table is refused with the reason.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import PurePath
from typing import Any

from gptstudio.curation.documents import FileType
from gptstudio.curation.errors import CorruptFileError, UnsupportedFileError
from gptstudio.curation.parsers.archive import is_word_document, open_checked_zip
from gptstudio.curation.parsers.delimited import NotATableError, detect_dialect
from gptstudio.curation.parsers.encoding import DecodedText, decode_text
from gptstudio.curation.parsers.limits import ParseLimits

_EXTENSIONS = {
    ".pdf": FileType.PDF,
    ".docx": FileType.DOCX,
    ".html": FileType.HTML,
    ".htm": FileType.HTML,
    ".md": FileType.MARKDOWN,
    ".markdown": FileType.MARKDOWN,
    ".txt": FileType.TEXT,
    ".text": FileType.TEXT,
    ".csv": FileType.CSV,
    ".tsv": FileType.CSV,
    ".json": FileType.JSON,
    ".jsonl": FileType.JSONL,
    ".ndjson": FileType.JSONL,
}
# Types that are read the same way, so a swap between them is not worth a warning.
_FAMILIES = ({FileType.TEXT, FileType.MARKDOWN}, {FileType.JSON, FileType.JSONL})
_OTHER_BINARIES = (
    (
        b"\xd0\xcf\x11\xe0",
        "a legacy or password-protected Office file; save it as an unprotected .docx",
    ),
    (b"\x89PNG", "a PNG image"),
    (b"\xff\xd8\xff", "a JPEG image"),
    (b"GIF8", "a GIF image"),
    (b"\x1f\x8b", "a gzip archive"),
    (b"Rar!", "a RAR archive"),
    (b"7z\xbc\xaf", "a 7-Zip archive"),
    (b"\x7fELF", "a program"),
    (b"MZ", "a Windows program"),
    (b"{\\rtf", "an RTF document; save it as .docx"),
)
_HTML_START = re.compile(r"<(?:!doctype\s+html|html|head|body)\b", re.IGNORECASE)
_HTML_TAGS = re.compile(r"<(?:p|div|h[1-6]|article|section|body|br|span|a)\b[^>]*>", re.I)
_MARKDOWN = re.compile(r"^(?:#{1,6} \S|```|\s*[-*] \S|\d+\. \S)", re.MULTILINE)
_PROBE_ROWS = 20


@dataclass(frozen=True)
class Sniffed:
    """The detected type and, for text formats, the decoded text."""

    file_type: FileType
    decoded: DecodedText | None = None


def type_from_extension(*, filename: str) -> FileType | None:
    """The type a filename's extension claims, or ``None`` for extensions we do not know."""
    return _EXTENSIONS.get(PurePath(filename).suffix.lower())


def is_mismatch(*, declared: FileType | None, detected: FileType) -> bool:
    """Whether the extension names a type that differs from the content's."""
    if declared is None or declared == detected:
        return False
    return not any({declared, detected} <= family for family in _FAMILIES)


def _refuse_known_binaries(data: bytes) -> None:
    for magic, what in _OTHER_BINARIES:
        if data.startswith(magic):
            raise UnsupportedFileError(
                f"The file is {what}, not a document we can read; upload a PDF, DOCX, HTML, "
                "Markdown, text, CSV or JSON file."
            )


def _sniff_zip(data: bytes, limits: ParseLimits) -> Sniffed:
    archive = open_checked_zip(
        data=data,
        max_uncompressed_bytes=limits.max_uncompressed_bytes,
        max_compression_ratio=limits.max_compression_ratio,
    )
    with archive:
        if not is_word_document(archive=archive):
            raise UnsupportedFileError(
                "The file is a zip archive but not a Word document; upload the documents inside "
                "it one by one."
            )
    return Sniffed(FileType.DOCX)


def sniff(*, data: bytes, limits: ParseLimits, declared: FileType | None = None) -> Sniffed:
    """Detect the type of ``data`` or raise a :class:`CurationError` saying what it is instead.

    ``declared`` (the extension's claim) only breaks ties: a short table needs it to be read as
    CSV, and text that starts like JSON but does not parse is an error when it is named JSON.
    """
    if b"%PDF-" in data[:1024]:
        return Sniffed(FileType.PDF)
    if data.startswith(b"PK\x03\x04"):
        return _sniff_zip(data, limits)
    _refuse_known_binaries(data)
    decoded = decode_text(data=data)
    return Sniffed(_text_type(decoded.text, declared), decoded)


def _text_type(text: str, declared: FileType | None) -> FileType:
    stripped = text.lstrip("\ufeff \t\r\n")
    if _HTML_START.match(stripped):
        return FileType.HTML
    if stripped.startswith(("{", "[")):
        json_type = _json_type(stripped)
        if json_type is not None:
            return json_type
        if declared in (FileType.JSON, FileType.JSONL):
            _raise_json_error(stripped)
    if stripped.startswith("<") and len(_HTML_TAGS.findall(stripped[:4096])) >= 3:
        return FileType.HTML
    if _looks_like_csv(stripped, declared):
        return FileType.CSV
    if _MARKDOWN.search(stripped[:20_000]):
        return FileType.MARKDOWN
    return FileType.TEXT


def loads_json(text: str) -> Any:
    """``json.loads`` whose nesting limit is a :class:`CorruptFileError`, not a RecursionError."""
    try:
        return json.loads(text)
    except RecursionError as error:
        raise CorruptFileError(
            "The JSON is nested too deeply (hundreds of levels of brackets) to hold training data; "
            "save the records as a flat list of objects."
        ) from error


def _json_type(text: str) -> FileType | None:
    try:
        loads_json(text)
    except json.JSONDecodeError:
        lines = [line for line in text.splitlines() if line.strip()]
        if lines and all(_is_json_object(line) for line in lines[:_PROBE_ROWS]):
            return FileType.JSONL
        return None
    return FileType.JSON


def _is_json_object(line: str) -> bool:
    try:
        return isinstance(loads_json(line), dict)
    except json.JSONDecodeError:
        return False


def _raise_json_error(text: str) -> None:
    try:
        loads_json(text)
    except json.JSONDecodeError as error:
        raise CorruptFileError(
            f"The file is named as JSON but is not valid JSON (line {error.lineno}, column "
            f"{error.colno}: {error.msg}); fix it, or save one JSON object per line as JSON Lines."
        ) from error


def _looks_like_csv(text: str, declared: FileType | None) -> bool:
    """Whether ``text`` is a table; a file named .csv that is not one is refused with the reason."""
    try:
        detect_dialect(text=text)
    except NotATableError as problem:
        if declared == FileType.CSV:
            raise CorruptFileError(
                f"The file is named as CSV but is not a table: {problem}. Fix it, save it again "
                "as CSV from the spreadsheet, or rename it to .txt to read it as text."
            ) from problem
        return False
    # Two lines of prose with one comma each also "parse"; without the extension's word a
    # table needs a header and at least two data rows.
    return declared == FileType.CSV or len(text.splitlines()) >= 3
