"""Split plain text and Markdown into sections under their headings.

Both heading styles count: ATX (``#`` to ``######``) and setext, a paragraph's single line
underlined with ``===`` (level 1) or ``---`` (level 2). A ``---`` after a blank line, a list item
or a second paragraph line is a rule or text, not an underline.

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
_UNDERLINE = re.compile(r"^ {0,3}(?P<marks>=+|-+)[ \t]*$")
_NOT_A_TITLE = re.compile(r"^\s*(?:[-*+>|]|\d+[.)]\s|#{1,6}\s|```|~~~)|^ {4}|^\t")


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
        if match is not None:
            self.flush()
            self.push(len(match["hashes"]), match["title"])
            return
        underline = None if self.in_fence else _UNDERLINE.match(line)
        if underline is not None and self._titled():
            title = self.lines.pop()
            self.flush()
            self.push(1 if underline["marks"][0] == "=" else 2, title)
            return
        self.lines.append(line)

    def _titled(self) -> bool:
        """Whether the last line is a one-line paragraph that an underline makes a heading."""
        if not self.lines or not self.lines[-1].strip() or _NOT_A_TITLE.match(self.lines[-1]):
            return False
        before = self.lines[-2] if len(self.lines) > 1 else ""
        return not before.strip() or _UNDERLINE.match(before) is not None

    def push(self, level: int, title: str) -> None:
        self.headings = [(lvl, text) for lvl, text in self.headings if lvl < level]
        self.headings.append((level, title.strip()))

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
