"""Chunks respect size limits, overlap, and always point back at their exact source span."""

from __future__ import annotations

import random
from itertools import pairwise

import pytest

from gptstudio.curation.chunking import ChunkingOptions, chunk_document, estimate_tokens
from gptstudio.curation.documents import FileType, ParsedDocument, ParseReport, Section
from gptstudio.curation.errors import InvalidParameterError


def _document(*sections: Section) -> ParsedDocument:
    report = ParseReport(filename="doc.txt", file_type=FileType.TEXT, size_bytes=1)
    return ParsedDocument("doc", "doc.txt", (), report).with_sections(sections)


def _sentences(count: int, seed: int = 1) -> str:
    rng = random.Random(seed)
    vocabulary = ["soil", "pH", "lime", "acid", "root", "water", "TNF-α", "plant", "loam"]
    return " ".join(
        " ".join(rng.choice(vocabulary) for _ in range(rng.randint(3, 14))).capitalize() + "."
        for _ in range(count)
    )


def test_every_chunk_is_its_source_span() -> None:
    document = _document(
        Section(_sentences(30), page=4),
        Section(_sentences(20, seed=2).replace(". ", ".\n"), heading_path=("Guide", "Lime")),
        Section("word " * 500),
    )
    options = ChunkingOptions(max_tokens=40, overlap_tokens=10)
    chunks = chunk_document(document=document, options=options)
    assert len(chunks) > 10
    for chunk in chunks:
        start, end = chunk.source.char_start, chunk.source.char_end
        assert start is not None and end is not None
        assert document.text[start:end] == chunk.text
        assert estimate_tokens(text=chunk.text) <= 40
    assert {chunk.source.page for chunk in chunks} == {4, None}
    assert ("Guide", "Lime") in {chunk.source.heading_path for chunk in chunks}


def test_consecutive_chunks_overlap() -> None:
    chunks = chunk_document(
        document=_document(Section(_sentences(40))),
        options=ChunkingOptions(max_tokens=60, overlap_tokens=20),
    )
    spans = [(c.source.char_start or 0, c.source.char_end or 0) for c in chunks]
    assert all(later[0] < earlier[1] for earlier, later in pairwise(spans))
    assert [c.part for c in chunks] == list(range(len(chunks)))


def test_chunk_ids_are_stable() -> None:
    document = _document(Section(_sentences(10)))
    first = chunk_document(document=document)
    assert [c.chunk_id for c in first] == [c.chunk_id for c in chunk_document(document=document)]


def test_token_estimate_counts_words_and_punctuation() -> None:
    assert estimate_tokens(text="Soil pH, 6.5!") == 7


def test_options_are_checked() -> None:
    with pytest.raises(InvalidParameterError):
        ChunkingOptions(max_tokens=100, overlap_tokens=60)
