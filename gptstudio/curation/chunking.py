"""Cut document sections into overlapping chunks that trace back to their source span.

Sizes are counted in the model tokenizer's tokens when :attr:`ChunkingOptions.tokenizer` names
its ``tokenizer.json`` (or the model folder holding it), else in token-ish units
(:func:`estimate_tokens`: words, punctuation marks, and each Chinese, Japanese or Thai character,
since those scripts write no spaces and a subword tokenizer spends about a token per character;
counted as words they made chunks about 5 times too big). Chunks are packed from whole
sentences (。！？ end sentences too); a sentence longer than the limit is cut between words, or
between characters in those scripts.
Chunks never cross sections, so each keeps one page or heading path, and
``document.text[chunk.source.char_start:chunk.source.char_end] == chunk.text`` always holds.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import regex

from gptstudio.curation.documents import ParsedDocument, Section
from gptstudio.curation.errors import InvalidParameterError
from gptstudio.curation.examples import Provenance
from gptstudio.curation.hashing import stable_id

# Scripts written without spaces between words: one unit per character.
_UNSPACED = r"\p{Han}\p{Hiragana}\p{Katakana}\p{Thai}\p{Lao}\p{Khmer}\p{Myanmar}"
_TOKEN = regex.compile(rf"[{_UNSPACED}]|[^\W{_UNSPACED}]+|[^\w\s]")
_SENTENCE = regex.compile(r"\S.*?(?:[.!?]+(?=\s)|[。！？]+|$)", regex.MULTILINE)
TokenCounter = Callable[[str], int]


@dataclass(frozen=True)
class ChunkingOptions:
    """Chunk size and overlap, in the tokenizer's tokens (or token-ish units without one)."""

    max_tokens: int = 256
    overlap_tokens: int = 32
    tokenizer: str | None = None
    """Path of the model's ``tokenizer.json`` or of the model folder holding it; ``None``: the
    tokenizer-free estimate."""

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
    """Words, punctuation marks and unspaced-script characters: a tokenizer-free token count."""
    return sum(1 for _ in _TOKEN.finditer(text))


def _estimate(text: str) -> int:
    return estimate_tokens(text=text)


@functools.cache
def tokenizer_counter(path: str) -> TokenCounter:
    """A token counter from a ``tokenizer.json`` (or the model folder holding it), loaded once.

    Raises :class:`InvalidParameterError` when there is no readable tokenizer there.
    """
    from tokenizers import Tokenizer  # the worker has it; loading costs only here

    file = Path(path)
    file = file / "tokenizer.json" if file.is_dir() else file
    try:
        tokenizer = Tokenizer.from_file(str(file))
    except Exception as error:  # tokenizers raises its own untyped errors for bad files
        raise InvalidParameterError(
            f"No usable tokenizer.json at {path!r}; point ChunkingOptions.tokenizer at the "
            "model's folder or leave it unset to use the estimate."
        ) from error
    tokenizer.no_padding()
    tokenizer.no_truncation()
    return lambda text: len(tokenizer.encode(text, add_special_tokens=False).ids)


def local_tokenizer(*, model: str) -> str | None:
    """``model``'s ``tokenizer.json`` when ``model`` is a local folder holding one, else ``None``
    (a hub id not downloaded here: chunks are then sized by the estimate)."""
    file = Path(model) / "tokenizer.json"
    return str(file) if model and file.is_file() else None


def _counter(options: ChunkingOptions) -> TokenCounter:
    return tokenizer_counter(options.tokenizer) if options.tokenizer else _estimate


def _split_long(
    start: int, end: int, text: str, max_tokens: int, count: TokenCounter
) -> Iterator[_Unit]:
    """Windows of whole words (or characters of unspaced scripts) of at most ``max_tokens``."""
    window_start = window_end = -1
    total = 0
    for piece in _TOKEN.finditer(text, start, end):
        size = count(text[window_end : piece.end()] if window_end >= 0 else piece.group())
        if window_start >= 0 and total + size > max_tokens:
            yield _Unit(window_start, window_end, total)
            window_start, total = -1, 0
            size = count(piece.group())
        if window_start < 0:
            window_start = piece.start()
        window_end, total = piece.end(), total + size
    if window_start >= 0:
        yield _Unit(window_start, window_end, total)


def _units(text: str, max_tokens: int, count: TokenCounter) -> list[_Unit]:
    units: list[_Unit] = []
    for start, end in sentence_spans(text=text):
        tokens = count(text[start:end])
        if tokens > max_tokens:
            units.extend(_split_long(start, end, text, max_tokens, count))
        elif tokens:
            units.append(_Unit(start, end, tokens))
    return units


def _windows(units: Sequence[_Unit], options: ChunkingOptions) -> Iterator[tuple[int, int]]:
    """(first, last exclusive) unit indices of each chunk."""
    first, limit = 0, options.max_tokens
    while first < len(units):
        last, total = first, 0
        # A unit alone over the limit (one long word in the tokenizer's tokens) is a chunk.
        while last < len(units) and (last == first or total + units[last].tokens <= limit):
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
    units = _units(section.text, options.max_tokens, _counter(options))
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
