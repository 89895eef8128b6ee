"""The common result of the format parsers, before the dispatcher assembles a document."""

from __future__ import annotations

from dataclasses import dataclass, field

from gptstudio.curation.documents import Section
from gptstudio.curation.examples import Example


@dataclass
class ParsedParts:
    """Sections and/or examples a format parser found, plus notes for the report."""

    sections: list[Section] = field(default_factory=list)
    examples: list[Example] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    pages: int | None = None
    records: int | None = None
    columns: tuple[str, ...] = ()
    """CSV/JSON: the columns (keys) found in the records."""
    column_choice: dict[str, str] | None = None
    """CSV/JSON: the columns read (guessed or chosen); ``None`` for chat records."""
