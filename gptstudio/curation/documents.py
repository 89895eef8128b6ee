"""What a parser returns: a document as sections with provenance, plus ready examples.

A :class:`ParsedDocument` keeps its text as an ordered tuple of :class:`Section` objects. Each
section knows where it came from (PDF page, DOCX/Markdown/HTML heading path, CSV/JSON row) and
its character span in :attr:`ParsedDocument.text`, the sections joined by a blank line. Cleaning
and PII scrubbing replace section texts through :meth:`ParsedDocument.with_sections`, which lays
the offsets out again, so a span always indexes the document text it is stored with.
"""

from __future__ import annotations

import dataclasses
import enum
from collections.abc import Sequence
from dataclasses import dataclass, field

from gptstudio.curation.examples import Example

SECTION_SEPARATOR = "\n\n"


class FileType(enum.StrEnum):
    """The formats the parsers read, decided from the bytes (never from the extension)."""

    PDF = "pdf"
    DOCX = "docx"
    HTML = "html"
    MARKDOWN = "markdown"
    TEXT = "text"
    CSV = "csv"
    JSON = "json"
    JSONL = "jsonl"


@dataclass(frozen=True)
class Section:
    """A run of text from one place in the source document."""

    text: str
    page: int | None = None
    """1-based PDF page, if the format has pages."""
    heading_path: tuple[str, ...] = ()
    """Headings above this text, outermost first (DOCX, Markdown, HTML)."""
    row: int | None = None
    """1-based record number in a CSV, JSON or JSONL file."""
    char_start: int = 0
    char_end: int = 0


@dataclass(frozen=True)
class ParseReport:
    """What the parser found and did, for the "what was done to this document" panel."""

    filename: str
    file_type: FileType
    size_bytes: int
    declared_type: FileType | None = None
    """The type the extension claims, when it names one we know."""
    extension_mismatch: bool = False
    encoding: str | None = None
    pages: int | None = None
    records: int | None = None
    notes: tuple[str, ...] = ()
    columns: tuple[str, ...] = ()
    """CSV/JSON: the columns (keys) the records have."""
    column_choice: dict[str, str] | None = None
    """CSV/JSON: which columns were read as text / instruction / response / context / system."""


@dataclass(frozen=True)
class ParsedDocument:
    """Sections of text and/or ready examples from one uploaded file."""

    document_id: str
    filename: str
    sections: tuple[Section, ...]
    report: ParseReport
    examples: tuple[Example, ...] = field(default=())

    @property
    def text(self) -> str:
        """The whole document text; every section span indexes this string."""
        return SECTION_SEPARATOR.join(section.text for section in self.sections)

    def with_sections(self, sections: Sequence[Section]) -> ParsedDocument:
        """A copy holding ``sections`` (empty ones dropped) with their offsets laid out again."""
        return dataclasses.replace(self, sections=layout_sections(sections=sections))


def layout_sections(*, sections: Sequence[Section]) -> tuple[Section, ...]:
    """Drop empty sections and set each span to its place in the joined document text."""
    laid_out = []
    position = 0
    for section in sections:
        if not section.text:
            continue
        end = position + len(section.text)
        laid_out.append(dataclasses.replace(section, char_start=position, char_end=end))
        position = end + len(SECTION_SEPARATOR)
    return tuple(laid_out)
