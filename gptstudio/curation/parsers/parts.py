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
