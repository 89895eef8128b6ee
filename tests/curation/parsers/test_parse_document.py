"""The parse entry point: limits, sniffing over extensions, reports and offsets."""

from __future__ import annotations

import codecs
import time
from pathlib import Path

import pytest

from gptstudio.curation.documents import FileType
from gptstudio.curation.errors import (
    CorruptFileError,
    CurationError,
    EmptyFileError,
    EncryptedFileError,
    FileTooLargeError,
    UndecodableTextError,
    UnsafeArchiveError,
    UnsafeFilenameError,
    UnsupportedFileError,
)
from gptstudio.curation.parsers import ParseLimits, parse_document
from gptstudio.curation.parsers.pdf import parse_pdf
from gptstudio.curation.parsers.webpage import html_to_markdown
from tests.curation.builders import encrypt_pdf, make_docx, make_pdf, make_zip_bomb

LIMITS = ParseLimits()
HTML = (
    b"<html><body><article><h1>Lime</h1><p>Agricultural lime raises the pH of acidic "
    b"soil over several months, so apply it in autumn before spring planting.</p>"
    b"</article></body></html>"
)


def test_sniffing_wins_over_a_lying_extension_and_is_reported() -> None:
    document = parse_document(data=HTML, filename="report.pdf")
    assert document.report.file_type == FileType.HTML
    assert document.report.declared_type == FileType.PDF
    assert document.report.extension_mismatch
    assert "suggests pdf but the content is html" in document.report.notes[0]


def test_sections_index_the_document_text() -> None:
    data = make_docx([("h1", "A"), ("p", "First part."), ("h1", "B"), ("p", "Second part.")])
    document = parse_document(data=data, filename="guide.docx", document_id="doc-7")
    assert document.document_id == "doc-7"
    for section in document.sections:
        assert document.text[section.char_start : section.char_end] == section.text


def test_report_describes_the_file() -> None:
    data = make_pdf([["Hello there."], ["Second page."]])
    report = parse_document(data=data, filename="a.pdf").report
    assert (report.file_type, report.pages, report.size_bytes) == (FileType.PDF, 2, len(data))
    assert not report.extension_mismatch


def test_document_id_defaults_to_a_content_hash() -> None:
    first = parse_document(data=b"Same text here.", filename="a.txt")
    second = parse_document(data=b"Same text here.", filename="b.txt")
    assert first.document_id == second.document_id


def test_size_limit() -> None:
    with pytest.raises(FileTooLargeError, match="is 2 KB; the limit is 1 KB"):
        parse_document(data=b"x" * 2000, filename="a.txt", limits=ParseLimits(max_bytes=1000))


@pytest.mark.parametrize("data", [b"", b"   \n\t  "])
def test_empty_files(data: bytes) -> None:
    with pytest.raises(EmptyFileError, match="empty"):
        parse_document(data=data, filename="a.txt")


def test_unsafe_names_are_refused_before_reading() -> None:
    with pytest.raises(UnsafeFilenameError):
        parse_document(data=b"text", filename="../../etc/passwd")


def test_encoding_is_reported_for_text() -> None:
    document = parse_document(
        data="Crème brûlée à la française.".encode("latin-1"), filename="a.txt"
    )
    assert document.report.encoding in {"cp1252", "latin_1", "iso8859_15"}
    assert document.text == "Crème brûlée à la française."


BAD_INPUTS = [
    ("bomb.docx", make_zip_bomb(expanded_bytes=3 << 20), UnsafeArchiveError, "zip bomb"),
    ("cut.docx", make_docx([("p", "Hello")])[:900], CorruptFileError, "truncated"),
    (
        "locked.pdf",
        encrypt_pdf(make_pdf([["x"]]), user_password="pw"),
        EncryptedFileError,
        "password",
    ),
    ("cut.pdf", make_pdf([["Some text."]])[:300], CorruptFileError, "damaged"),
    ("photo.txt", b"\x89PNG\r\n\x1a\n" + bytes(64), UnsupportedFileError, "PNG image"),
    ("junk.md", bytes((i * 7919) % 256 for i in range(3000)), UnsupportedFileError, "binary"),
    ("bad.txt", codecs.BOM_UTF16_LE + b"\x00\xd8", UndecodableTextError, "UTF-16"),
    ("none.pdf", make_pdf([[]]), EmptyFileError, "OCR"),
    ("a\x1b.txt", b"fine text", UnsafeFilenameError, "control"),
]


@pytest.mark.parametrize(("filename", "data", "error", "words"), BAD_INPUTS)
def test_bad_input_raises_one_typed_error_with_a_message(
    filename: str, data: bytes, error: type[CurationError], words: str
) -> None:
    with pytest.raises(error, match=words) as raised:
        parse_document(data=data, filename=filename)
    assert isinstance(raised.value, CurationError)
    assert isinstance(raised.value, ValueError)


@pytest.mark.parametrize(
    ("data", "words"),
    [
        (b"a" * (20 * 1024 * 1024), "unbroken run of characters"),
        (b"ab " * (300 * 1024), "repeats the same few characters"),
    ],
)
def test_a_run_of_one_letter_is_refused_as_junk_quickly(data: bytes, words: str) -> None:
    started = time.perf_counter()
    with pytest.raises(UnsupportedFileError, match=words):
        parse_document(data=data, filename="notes.txt")
    assert time.perf_counter() - started < 5  # it cost curation 28 s before


def test_long_real_prose_is_not_junk() -> None:
    data_dir = Path(__file__).parent.parent / "data"
    manual, _ = html_to_markdown(text=(data_dir / "debmake-doc-apa.en.html").read_text())
    pages = parse_pdf(data=(data_dir / "debmake-doc-en-excerpt.pdf").read_bytes(), limits=LIMITS)
    text = "\n\n".join([manual, *(section.text for section in pages.sections)])
    assert len(text) > 32 * 1024  # the size where the junk checks start
    assert parse_document(data=text.encode(), filename="manual.md").sections


@pytest.mark.parametrize("filename", ["deep.json", "deep.txt", "deep.jsonl"])
def test_deeply_nested_json_gets_a_clear_message(filename: str) -> None:
    data = b"[" * 100_000 + b"]" * 100_000
    with pytest.raises(CorruptFileError, match="nested too deeply"):
        parse_document(data=data, filename=filename)
