"""Split plain text and Markdown into sections under their ATX headings (``#`` to ``######``).

Form feeds (page breaks in text exported from PDFs) start a new page. Text before the first
heading forms a section with an empty heading path.
"""

from __future__ import annotations

import re

from gptstudio.curation.documents import Section
from gptstudio.curation.errors import EmptyFileError
from gptstudio.curation.parsers.parts import ParsedParts

_HEADING = re.compile(r"^(?P<hashes>#{1,6})[ \t]+(?P<title>.+?)[ \t#]*$")
_FENCE = re.compile(r"^\s*(```|~~~)")


class _Splitter:
    """Walks lines, tracking the heading stack and fenced code blocks."""

    def __init__(self, *, page: int | None) -> None:
        self.page = page
        self.headings: list[tuple[int, str]] = []
        self.lines: list[str] = []
        self.sections: list[Section] = []
        self.in_fence = False

    def feed(self, line: str) -> None:
        if _FENCE.match(line):
            self.in_fence = not self.in_fence
        match = None if self.in_fence else _HEADING.match(line)
        if match is None:
            self.lines.append(line)
            return
        self.flush()
        level = len(match["hashes"])
        self.headings = [(lvl, title) for lvl, title in self.headings if lvl < level]
        self.headings.append((level, match["title"].strip()))

    def flush(self) -> None:
        text = "\n".join(self.lines).strip("\n")
        if text.strip():
            path = tuple(title for _, title in self.headings)
            self.sections.append(Section(text=text, page=self.page, heading_path=path))
        self.lines = []


def split_markdown(*, text: str, page: int | None = None) -> list[Section]:
    """Sections of ``text`` under their Markdown headings."""
    splitter = _Splitter(page=page)
    for line in text.splitlines():
        splitter.feed(line)
    splitter.flush()
    return splitter.sections


def parse_text(*, text: str) -> ParsedParts:
    """Sections from decoded plain text or Markdown."""
    pages = text.split("\f")
    sections: list[Section] = []
    for number, page_text in enumerate(pages, start=1):
        sections.extend(split_markdown(text=page_text, page=number if len(pages) > 1 else None))
    if not sections:
        raise EmptyFileError("The file has no text; check that it is the right file.")
    return ParsedParts(sections=sections, pages=len(pages) if len(pages) > 1 else None)
