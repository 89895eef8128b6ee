"""DOCX reading: heading paths and tables; damaged files and zip bombs refused."""

from __future__ import annotations

import pytest

from gptstudio.curation.errors import CorruptFileError, EmptyFileError, UnsafeArchiveError
from gptstudio.curation.parsers.limits import ParseLimits
from gptstudio.curation.parsers.word import parse_docx
from tests.curation.builders import make_docx, make_zip, make_zip_bomb

LIMITS = ParseLimits()


def test_headings_become_section_paths() -> None:
    data = make_docx(
        [
            ("title", "Garden Guide"),
            ("p", "Read this first."),
            ("h1", "Soil"),
            ("p", "Soil pH matters."),
            ("h2", "Raising pH"),
            ("p", "Lime raises it."),
            ("table", "Product|Dose;Lime|2 kg"),
            ("h1", "Water"),
            ("p", "Water in the morning."),
        ]
    )
    sections = parse_docx(data=data, limits=LIMITS).sections
    assert [(s.heading_path, s.text) for s in sections] == [
        (("Garden Guide",), "Read this first."),
        (("Garden Guide", "Soil"), "Soil pH matters."),
        (("Garden Guide", "Soil", "Raising pH"), "Lime raises it.\nProduct | Dose\nLime | 2 kg"),
        (("Garden Guide", "Water"), "Water in the morning."),
    ]


def test_truncated_docx_is_corrupt() -> None:
    data = make_docx([("p", "Hello")])
    with pytest.raises(CorruptFileError, match="damaged or truncated"):
        parse_docx(data=data[: len(data) // 2], limits=LIMITS)


def test_zip_without_word_parts_is_corrupt() -> None:
    with pytest.raises(CorruptFileError, match="Word document is damaged"):
        parse_docx(data=make_zip({"word/document.xml": b"<not-xml"}), limits=LIMITS)


def test_zip_bomb_is_refused_before_reading() -> None:
    with pytest.raises(UnsafeArchiveError, match="zip bomb"):
        parse_docx(data=make_zip_bomb(expanded_bytes=4 << 20), limits=LIMITS)


def test_expansion_over_the_total_limit_is_refused() -> None:
    limits = ParseLimits(max_uncompressed_bytes=1 << 20)
    with pytest.raises(UnsafeArchiveError, match="would expand to"):
        parse_docx(data=make_zip_bomb(expanded_bytes=2 << 20), limits=limits)


def test_document_without_text_is_empty() -> None:
    with pytest.raises(EmptyFileError, match="no text"):
        parse_docx(data=make_docx([("h1", "Only a heading")]), limits=LIMITS)
