"""Clean document text and report every change, so the UI can show what was done.

Steps, each counted: Unicode NFC normalisation, control and invisible formatting characters
removed (zero-width joiners kept), whitespace normalised, header/footer lines repeated across PDF
pages removed (running chapter headers whose title changes per chapter included), too-short
sections dropped, and the language detected. Nothing is lowercased,
stemmed or spell-fixed: domain terms ("TNF-α", "pH", "IL-6") come out as they went in.
"""

from __future__ import annotations

import dataclasses
import enum
import math
import re
import unicodedata
from collections import Counter, defaultdict
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import regex

from gptstudio.curation.documents import ParsedDocument, Section
from gptstudio.curation.errors import InvalidParameterError
from gptstudio.curation.examples import Example, Message
from gptstudio.curation.language import LanguageGuess, detect_language

_LINE_BREAKS = re.compile(r"\r\n?|[\f\v\u2028\u2029\x85]")
# Control and format characters, except tab, newline, and ZWNJ/ZWJ (which shape Persian and
# Indic scripts and join emoji).
_INVISIBLE = regex.compile(r"[[\p{Cc}\p{Cf}]--[\t\n\u200c\u200d]]", flags=regex.VERSION1)
_HORIZONTAL_SPACE = re.compile(r"[^\S\n]{2,}|[^\S\n ]")
_TRAILING_SPACE = re.compile(r"[^\S\n]+$", re.MULTILINE)
_BLANK_LINES = re.compile(r"\n{3,}")
_DIGITS = re.compile(r"\d+")
_LANGUAGE_SAMPLE = 10_000
_RUNNING_HEADER_WORDS = 2
_HEADER_CHARS = 120
_SENTENCE_ENDS = (".", ",", ";")


class CleaningStep(enum.StrEnum):
    """The changes cleaning can make; keys of :attr:`CleaningReport.changes`."""

    UNICODE = "unicode_normalised"
    """Words whose Unicode form changed under NFC."""
    CONTROL = "control_characters_removed"
    WHITESPACE = "whitespace_runs_normalised"
    REPEATED_LINES = "repeated_lines_removed"
    SHORT_SECTIONS = "short_sections_dropped"


@dataclass(frozen=True)
class CleaningOptions:
    """Which cleaning steps run, and their thresholds."""

    normalize_unicode: bool = True
    remove_control_characters: bool = True
    normalize_whitespace: bool = True
    remove_repeated_lines: bool = True
    repeated_line_min_pages: int = 3
    """Only documents with at least this many pages are checked for headers and footers."""
    repeated_line_min_fraction: float = 0.5
    """A top or bottom line is boilerplate when it appears on this share of pages."""
    edge_lines: int = 3
    """How many lines at the top and bottom of each page may be headers or footers."""
    min_section_chars: int = 20
    detect_language: bool = True

    def __post_init__(self) -> None:
        if not 0 < self.repeated_line_min_fraction <= 1:
            raise InvalidParameterError("repeated_line_min_fraction must be in (0, 1].")
        if self.repeated_line_min_pages < 2 or self.edge_lines < 1 or self.min_section_chars < 0:
            raise InvalidParameterError(
                "repeated_line_min_pages must be at least 2, edge_lines at least 1 and "
                "min_section_chars not negative."
            )


@dataclass(frozen=True)
class CleanedText:
    """Cleaned text and how many changes each step made."""

    text: str
    changes: Counter[CleaningStep]


@dataclass(frozen=True)
class CleaningReport:
    """What cleaning did to one document."""

    changes: dict[CleaningStep, int]
    repeated_lines: tuple[str, ...]
    """One example of each header/footer line that was removed."""
    language: LanguageGuess | None

    def describe(self) -> list[str]:
        """Sentences for the "what was done to this document" panel."""
        lines = [
            f"{step.value.replace('_', ' ').capitalize()}: {count}."
            for step, count in self.changes.items()
            if count
        ]
        if self.repeated_lines:
            lines.append("Header/footer lines removed: " + "; ".join(self.repeated_lines) + ".")
        if self.language is not None:
            lines.append(f"Language: {self.language.code} ({self.language.confidence:.0%}).")
        return lines


@dataclass(frozen=True)
class CleanedDocument:
    """A cleaned document and its report."""

    document: ParsedDocument
    report: CleaningReport


def _normalize_unicode(text: str, changes: Counter[CleaningStep]) -> str:
    if unicodedata.is_normalized("NFC", text):
        return text
    changes[CleaningStep.UNICODE] += sum(
        1 for word in text.split() if not unicodedata.is_normalized("NFC", word)
    )
    return unicodedata.normalize("NFC", text)


def _remove_invisible(text: str, changes: Counter[CleaningStep]) -> str:
    text, removed = _INVISIBLE.subn("", text)
    changes[CleaningStep.CONTROL] += removed
    return text


def _normalize_whitespace(text: str, changes: Counter[CleaningStep]) -> str:
    for pattern, replacement in (
        (_HORIZONTAL_SPACE, " "),
        (_TRAILING_SPACE, ""),
        (_BLANK_LINES, "\n\n"),
    ):
        text, count = pattern.subn(replacement, text)
        changes[CleaningStep.WHITESPACE] += count
    return text.strip()


def clean_text(*, text: str, options: CleaningOptions | None = None) -> CleanedText:
    """Normalise one text; line breaks always become ``\\n``, other steps follow ``options``."""
    options = options or CleaningOptions()
    changes: Counter[CleaningStep] = Counter()
    text = _LINE_BREAKS.sub("\n", text)
    if options.normalize_unicode:
        text = _normalize_unicode(text, changes)
    if options.remove_control_characters:
        text = _remove_invisible(text, changes)
    if options.normalize_whitespace:
        text = _normalize_whitespace(text, changes)
    return CleanedText(text=text, changes=changes)


def _line_key(line: str) -> str:
    """Lines that differ only in page numbers, spacing or case share a key."""
    return _DIGITS.sub("#", " ".join(line.split())).casefold()


def _edge_indices(lines: Sequence[str], edge_lines: int) -> set[int]:
    filled = [index for index, line in enumerate(lines) if line.strip()]
    # A short page is mostly body: only its very first and last lines can be furniture.
    edge = min(edge_lines, max(1, len(filled) // 4))
    return {*filled[:edge], *filled[-edge:]}


def find_repeated_lines(
    *, pages: Sequence[str], min_pages: int = 3, min_fraction: float = 0.5, edge_lines: int = 3
) -> frozenset[str]:
    """Keys of lines at the top or bottom of at least ``min_fraction`` of ``pages``.

    Digits are ignored when comparing, so "Page 3 of 40" matches "Page 4 of 40".
    """
    if len(pages) < min_pages:
        return frozenset()
    pages_with: defaultdict[str, set[int]] = defaultdict(set)
    for number, page in enumerate(pages):
        lines = page.split("\n")
        for index in _edge_indices(lines, edge_lines):
            pages_with[_line_key(lines[index])].add(number)
    needed = max(min_pages, math.ceil(min_fraction * len(pages)))
    return frozenset(key for key, found in pages_with.items() if key and len(found) >= needed)


def _prefix_key(line: str) -> str:
    """The first two words of a line, digits ignored: "CHAPTER 3. TOOL SETUPS" -> "chapter #."."""
    return " ".join(_line_key(line).split()[:_RUNNING_HEADER_WORDS])


def _header_like(line: str, prefix: str) -> bool:
    """Short, numbered, and not a sentence: "CHAPTER 3. TOOL SETUPS", not "See 3 files."."""
    stripped = line.strip()
    return (
        len(prefix.split()) == _RUNNING_HEADER_WORDS
        and len(stripped) <= _HEADER_CHARS
        and any(character.isdigit() for character in stripped)
        and not stripped.endswith(_SENTENCE_ENDS)
    )


def _outer_lines(lines: Sequence[str]) -> list[int]:
    filled = [index for index, line in enumerate(lines) if line.strip()]
    return sorted({filled[0], filled[-1]}) if filled else []


def find_running_headers(
    *, pages: Sequence[str], min_pages: int = 3, min_fraction: float = 0.5
) -> frozenset[str]:
    """Two-word prefixes that start the first or last line of ``min_fraction`` of pages, or of
    ``min_pages`` pages in a row.

    Running headers repeat their start ("CHAPTER 3. TOOL SETUPS 3.5. DEVSCRIPTS", then "CHAPTER
    4. SIMPLE EXAMPLE 4.2. ...") while the titles after it change per chapter, so whole-line
    matching misses them. Only short numbered lines that are not sentences count, so body text
    that happens to start pages with the same words stays.
    """
    if len(pages) < min_pages:
        return frozenset()
    pages_with: defaultdict[str, set[int]] = defaultdict(set)
    for number, page in enumerate(pages):
        lines = page.split("\n")
        for index in _outer_lines(lines):
            key = _prefix_key(lines[index])
            if _header_like(lines[index], key):
                pages_with[key].add(number)
    needed = max(min_pages, math.ceil(min_fraction * len(pages)))
    return frozenset(
        key
        for key, found in pages_with.items()
        if len(found) >= needed or _longest_run(found) >= min_pages
    )


def _longest_run(numbers: set[int]) -> int:
    """The most consecutive page numbers in ``numbers`` (an appendix's header runs on)."""
    return max(sum(1 for _ in _run_from(n, numbers)) for n in numbers if n - 1 not in numbers)


def _run_from(start: int, numbers: set[int]) -> Iterator[int]:
    while start in numbers:
        yield start
        start += 1


@dataclass(frozen=True)
class _Furniture:
    lines: frozenset[str]
    prefixes: frozenset[str]

    def __bool__(self) -> bool:
        return bool(self.lines or self.prefixes)

    def drop(self, lines: Sequence[str], edge_lines: int) -> set[int]:
        drop = {i for i in _edge_indices(lines, edge_lines) if _line_key(lines[i]) in self.lines}
        for index in _outer_lines(lines):
            line = lines[index]
            if _header_like(line, _prefix_key(line)) and _prefix_key(line) in self.prefixes:
                drop.add(index)
        return drop


def _strip_repeated(text: str, furniture: _Furniture, edge_lines: int) -> tuple[str, list[str]]:
    lines = text.split("\n")
    drop = furniture.drop(lines, edge_lines)
    kept = [line for index, line in enumerate(lines) if index not in drop]
    return "\n".join(kept).strip(), [lines[index].strip() for index in sorted(drop)]


def _remove_repeated_lines(
    sections: list[Section], options: CleaningOptions, changes: Counter[CleaningStep]
) -> tuple[list[Section], tuple[str, ...]]:
    paged = [section for section in sections if section.page is not None]
    pages = [section.text for section in paged]
    keys = _Furniture(
        lines=find_repeated_lines(
            pages=pages,
            min_pages=options.repeated_line_min_pages,
            min_fraction=options.repeated_line_min_fraction,
            edge_lines=options.edge_lines,
        ),
        prefixes=find_running_headers(
            pages=pages,
            min_pages=options.repeated_line_min_pages,
            min_fraction=options.repeated_line_min_fraction,
        ),
    )
    if not keys or len({section.page for section in paged}) < options.repeated_line_min_pages:
        return sections, ()
    examples: dict[str, str] = {}
    cleaned = []
    for section in sections:
        if section.page is None:
            cleaned.append(section)
            continue
        text, removed = _strip_repeated(section.text, keys, options.edge_lines)
        changes[CleaningStep.REPEATED_LINES] += len(removed)
        for line in removed:
            key = _line_key(line)
            examples.setdefault(
                _prefix_key(line) if _prefix_key(line) in keys.prefixes else key, line
            )
        cleaned.append(dataclasses.replace(section, text=text))
    return cleaned, tuple(examples.values())


def _clean_examples(
    examples: Sequence[Example], options: CleaningOptions, changes: Counter[CleaningStep]
) -> tuple[Example, ...]:
    cleaned = []
    for example in examples:
        messages = []
        for message in example.messages:
            result = clean_text(text=message.content, options=options)
            changes.update(result.changes)
            messages.append(Message(message.role, result.text))
        cleaned.append(dataclasses.replace(example, messages=tuple(messages)))
    return tuple(cleaned)


def clean_document(
    *, document: ParsedDocument, options: CleaningOptions | None = None
) -> CleanedDocument:
    """Clean every section (and imported example) of ``document`` and report the changes."""
    options = options or CleaningOptions()
    changes: Counter[CleaningStep] = Counter()
    sections = []
    for section in document.sections:
        result = clean_text(text=section.text, options=options)
        changes.update(result.changes)
        sections.append(dataclasses.replace(section, text=result.text))
    repeated: tuple[str, ...] = ()
    if options.remove_repeated_lines:
        sections, repeated = _remove_repeated_lines(sections, options, changes)
    long_enough = [s for s in sections if len(s.text) >= max(options.min_section_chars, 1)]
    changes[CleaningStep.SHORT_SECTIONS] += len(sections) - len(long_enough)
    cleaned = dataclasses.replace(
        document.with_sections(long_enough),
        examples=_clean_examples(document.examples, options, changes),
    )
    return CleanedDocument(document=cleaned, report=_report(cleaned, changes, repeated, options))


def _report(
    document: ParsedDocument,
    changes: Counter[CleaningStep],
    repeated: tuple[str, ...],
    options: CleaningOptions,
) -> CleaningReport:
    sample = document.text[:_LANGUAGE_SAMPLE] or "\n".join(e.text for e in document.examples[:50])
    language = detect_language(text=sample) if options.detect_language else None
    return CleaningReport(
        changes={step: changes[step] for step in CleaningStep},
        repeated_lines=repeated,
        language=language,
    )
