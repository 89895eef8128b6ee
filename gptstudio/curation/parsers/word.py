"""Read DOCX text with python-docx, keeping the heading path of every paragraph.

Paragraphs styled ``Title`` or ``Heading N`` open a section; body paragraphs and tables (one line
per row, cells joined by `` | ``) fill it. The zip container is size-checked before python-docx
reads it (see :mod:`archive`).
"""

from __future__ import annotations

import io
import re
import zipfile
from collections.abc import Iterator

import docx
from docx.document import Document as WordDocument
from docx.opc.exceptions import PackageNotFoundError
from docx.table import Table
from docx.text.paragraph import Paragraph
from lxml.etree import LxmlError

from gptstudio.curation.documents import Section
from gptstudio.curation.errors import CorruptFileError, EmptyFileError
from gptstudio.curation.parsers.archive import open_checked_zip
from gptstudio.curation.parsers.limits import ParseLimits
from gptstudio.curation.parsers.parts import ParsedParts

_HEADING = re.compile(r"^(?:Heading (?P<level>\d)|Title)$")
_DOCX_ERRORS = (PackageNotFoundError, zipfile.BadZipFile, KeyError, ValueError, LxmlError)


def _heading_level(paragraph: Paragraph) -> int | None:
    style = paragraph.style.name if paragraph.style is not None else ""
    match = _HEADING.match(style or "")
    if match is None:
        return None
    return int(match["level"]) if match["level"] else 0


def _table_lines(table: Table) -> Iterator[str]:
    for row in table.rows:
        cells = [cell.text.strip() for cell in row.cells]
        if any(cells):
            yield " | ".join(cells)


class _SectionBuilder:
    """Collects body lines under the current heading path."""

    def __init__(self) -> None:
        self.headings: list[tuple[int, str]] = []
        self.lines: list[str] = []
        self.sections: list[Section] = []

    def heading(self, level: int, title: str) -> None:
        self.flush()
        self.headings = [(lvl, text) for lvl, text in self.headings if lvl < level]
        self.headings.append((level, title))

    def flush(self) -> None:
        text = "\n".join(self.lines).strip()
        if text:
            path = tuple(title for _, title in self.headings)
            self.sections.append(Section(text=text, heading_path=path))
        self.lines = []


def _load(data: bytes) -> WordDocument:
    try:
        return docx.Document(io.BytesIO(data))
    except _DOCX_ERRORS as error:
        raise CorruptFileError(
            "The Word document is damaged or incomplete; open it in Word, save it again and "
            "upload the new file."
        ) from error


def parse_docx(*, data: bytes, limits: ParseLimits) -> ParsedParts:
    """Sections with heading paths from DOCX bytes."""
    open_checked_zip(
        data=data,
        max_uncompressed_bytes=limits.max_uncompressed_bytes,
        max_compression_ratio=limits.max_compression_ratio,
    ).close()
    builder = _SectionBuilder()
    for block in _load(data).iter_inner_content():
        if isinstance(block, Table):
            builder.lines.extend(_table_lines(block))
            continue
        level = _heading_level(block)
        if level is not None and block.text.strip():
            builder.heading(level, block.text.strip())
        elif block.text.strip():
            builder.lines.append(block.text)
    builder.flush()
    if not builder.sections:
        raise EmptyFileError("The Word document has no text; check that it is the right file.")
    return ParsedParts(sections=builder.sections)
