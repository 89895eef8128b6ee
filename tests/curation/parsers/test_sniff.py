"""Type detection from bytes: the content decides, the extension is only compared."""

from __future__ import annotations

import pytest

from gptstudio.curation.documents import FileType
from gptstudio.curation.errors import CorruptFileError, UnsupportedFileError
from gptstudio.curation.parsers.limits import ParseLimits
from gptstudio.curation.parsers.sniff import is_mismatch, sniff, type_from_extension
from tests.curation.builders import make_docx, make_pdf, make_zip

LIMITS = ParseLimits()


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        (b"<!DOCTYPE html><html><body><p>Hello</p></body></html>", FileType.HTML),
        (b"<div><p>One</p><p>Two</p><a href='x'>Three</a></div>", FileType.HTML),
        (b'[{"text": "a"}, {"text": "b"}]', FileType.JSON),
        (b'{"text": "a"}\n{"text": "b"}\n', FileType.JSONL),
        (
            b"question,answer\nWhat is pH?,A measure of acidity.\nWhat is lime?,A mineral.\n",
            FileType.CSV,
        ),
        (b"# Title\n\nSome *markdown* text.\n", FileType.MARKDOWN),
        (b"Just a plain sentence, with a comma.\nAnd another one, also.\n", FileType.TEXT),
    ],
)
def test_text_formats_are_told_apart_by_content(data: bytes, expected: FileType) -> None:
    assert sniff(data=data, limits=LIMITS).file_type == expected


def test_binary_formats_are_found_by_magic_numbers() -> None:
    assert sniff(data=make_pdf([["Hello"]]), limits=LIMITS).file_type == FileType.PDF
    assert sniff(data=make_docx([("p", "Hello")]), limits=LIMITS).file_type == FileType.DOCX


def test_a_two_line_table_needs_the_csv_extension() -> None:
    data = b"term,meaning\npH,acidity\n"
    assert sniff(data=data, limits=LIMITS).file_type == FileType.TEXT
    assert sniff(data=data, limits=LIMITS, declared=FileType.CSV).file_type == FileType.CSV


@pytest.mark.parametrize(
    ("data", "words"),
    [
        (b"\x89PNG\r\n\x1a\n" + bytes(100), "PNG image"),
        (b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + bytes(100), "legacy or password-protected Office"),
        (b"MZ\x90\x00" + bytes(100), "Windows program"),
        (bytes(range(256)) * 8, "binary data"),
    ],
)
def test_other_binaries_are_refused_with_what_they_are(data: bytes, words: str) -> None:
    with pytest.raises(UnsupportedFileError, match=words):
        sniff(data=data, limits=LIMITS)


def test_a_zip_that_is_not_a_word_document_is_refused() -> None:
    with pytest.raises(UnsupportedFileError, match="zip archive but not a Word document"):
        sniff(data=make_zip({"notes.txt": b"hello"}), limits=LIMITS)


def test_broken_json_named_json_gets_a_located_error() -> None:
    with pytest.raises(CorruptFileError, match=r"line 2, column"):
        sniff(data=b'[{"text": "a"},\n {"text": }]', limits=LIMITS, declared=FileType.JSON)


def test_extension_claims_and_mismatches() -> None:
    assert type_from_extension(filename="Report.PDF") == FileType.PDF
    assert type_from_extension(filename="notes.unknown") is None
    assert is_mismatch(declared=FileType.PDF, detected=FileType.HTML)
    assert not is_mismatch(declared=FileType.TEXT, detected=FileType.MARKDOWN)
    assert not is_mismatch(declared=FileType.JSON, detected=FileType.JSONL)
    assert not is_mismatch(declared=None, detected=FileType.CSV)
