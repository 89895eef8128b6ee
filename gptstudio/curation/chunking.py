"""Cut document sections into overlapping chunks that trace back to their source span.

Sizes are counted in token-ish units (:func:`estimate_tokens`: words and punctuation marks),
which track subword tokenizer counts closely enough for size limits without loading a tokenizer.
Chunks are packed from whole sentences; a sentence longer than the limit is cut between words.
Chunks never cross sections, so each keeps one page or heading path, and
``document.text[chunk.source.char_start:chunk.source.char_end] == chunk.text`` always holds.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

from gptstudio.curation.documents import ParsedDocument, Section
from gptstudio.curation.errors import InvalidParameterError
from gptstudio.curation.examples import Provenance
from gptstudio.curation.hashing import stable_id

_TOKEN = re.compile(r"\w+|[^\w\s]")
_SENTENCE = re.compile(r"\S.*?(?:[.!?]+(?=\s)|$)", re.MULTILINE)


@dataclass(frozen=True)
class ChunkingOptions:
    """Chunk size and overlap, in token-ish units."""

    max_tokens: int = 256
    overlap_tokens: int = 32

    def __post_init__(self) -> None:
        if self.max_tokens < 8:
            raise InvalidParameterError("max_tokens must be at least 8.")
        if not 0 <= self.overlap_tokens <= self.max_tokens // 2:
            raise InvalidParameterError("overlap_tokens must be between 0 and half of max_tokens.")


@dataclass(frozen=True)
class Chunk:
    """A passage of one section, with its provenance."""

    chunk_id: str
    text: str
    source: Provenance
    part: int
    """0-based position of the chunk within its section."""


@dataclass(frozen=True)
class _Unit:
    start: int
    end: int
    tokens: int


def sentence_spans(*, text: str) -> list[tuple[int, int]]:
    """(start, end) of each sentence or line of ``text``, without surrounding spaces."""
    return [
        (match.start(), match.start() + len(match.group().rstrip()))
        for match in _SENTENCE.finditer(text)
    ]


def estimate_tokens(*, text: str) -> int:
    """Words plus punctuation marks: a tokenizer-free stand-in for a token count."""
    return sum(1 for _ in _TOKEN.finditer(text))


def _split_long(start: int, end: int, text: str, max_tokens: int) -> Iterator[_Unit]:
    tokens = list(_TOKEN.finditer(text, start, end))
    for first in range(0, len(tokens), max_tokens):
        window = tokens[first : first + max_tokens]
        yield _Unit(window[0].start(), window[-1].end(), len(window))


def _units(text: str, max_tokens: int) -> list[_Unit]:
    units: list[_Unit] = []
    for start, end in sentence_spans(text=text):
        tokens = estimate_tokens(text=text[start:end])
        if tokens > max_tokens:
            units.extend(_split_long(start, end, text, max_tokens))
        elif tokens:
            units.append(_Unit(start, end, tokens))
    return units


def _windows(units: Sequence[_Unit], options: ChunkingOptions) -> Iterator[tuple[int, int]]:
    """(first, last exclusive) unit indices of each chunk."""
    first = 0
    while first < len(units):
        last, total = first, 0
        while last < len(units) and total + units[last].tokens <= options.max_tokens:
            total += units[last].tokens
            last += 1
        yield first, last
        if last == len(units):
            return
        overlap_start, overlap = last, 0
        while overlap_start - 1 > first and overlap + units[overlap_start - 1].tokens <= (
            options.overlap_tokens
        ):
            overlap_start -= 1
            overlap += units[overlap_start].tokens
        first = overlap_start


def chunk_section(
    *, section: Section, document_id: str, options: ChunkingOptions | None = None
) -> list[Chunk]:
    """Chunks of one section; spans are offsets in the document text."""
    options = options or ChunkingOptions()
    units = _units(section.text, options.max_tokens)
    chunks = []
    for part, (first, last) in enumerate(_windows(units, options)):
        start = section.char_start + units[first].start
        end = section.char_start + units[last - 1].end
        source = Provenance(
            document_id=document_id,
            page=section.page,
            heading_path=section.heading_path,
            row=section.row,
            char_start=start,
            char_end=end,
        )
        text = section.text[units[first].start : units[last - 1].end]
        chunks.append(Chunk(stable_id(document_id, start, end), text, source, part))
    return chunks


def chunk_document(
    *, document: ParsedDocument, options: ChunkingOptions | None = None
) -> tuple[Chunk, ...]:
    """All chunks of a document, in reading order."""
    return tuple(
        chunk
        for section in document.sections
        for chunk in chunk_section(
            section=section, document_id=document.document_id, options=options
        )
    )
