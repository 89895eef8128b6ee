"""PDF reading: page numbers kept; protected, damaged and textless files refused clearly."""

from __future__ import annotations

import pytest

from gptstudio.curation.errors import CorruptFileError, EmptyFileError, EncryptedFileError
from gptstudio.curation.parsers.limits import ParseLimits
from gptstudio.curation.parsers.pdf import parse_pdf
from tests.curation.builders import encrypt_pdf, make_pdf

LIMITS = ParseLimits()


def test_text_keeps_its_page_numbers() -> None:
    data = make_pdf([["Soil pH is a measure of acidity."], [], ["Lime raises the pH."]])
    parts = parse_pdf(data=data, limits=LIMITS)
    assert parts.pages == 3
    assert [(section.page, section.text.strip()) for section in parts.sections] == [
        (1, "Soil pH is a measure of acidity."),
        (3, "Lime raises the pH."),
    ]
    assert parts.notes == ["Pages without extractable text (scanned images?): 2."]


def test_password_protected_pdf_is_refused() -> None:
    data = encrypt_pdf(make_pdf([["secret"]]), user_password="hunter2")
    with pytest.raises(EncryptedFileError, match="password-protected"):
        parse_pdf(data=data, limits=LIMITS)


def test_owner_only_protection_still_reads() -> None:
    data = encrypt_pdf(make_pdf([["open to read"]]), user_password="", owner_password="owner")
    assert parse_pdf(data=data, limits=LIMITS).sections[0].text.strip() == "open to read"


@pytest.mark.parametrize("keep", [0.1, 0.5])
def test_truncated_pdf_is_corrupt(keep: float) -> None:
    data = make_pdf([["Some text on a page."]] * 3)
    with pytest.raises((CorruptFileError, EmptyFileError)):
        parse_pdf(data=data[: int(len(data) * keep)], limits=LIMITS)


def test_garbage_after_the_magic_is_corrupt() -> None:
    with pytest.raises(CorruptFileError, match="damaged or truncated"):
        parse_pdf(data=b"%PDF-1.7\n" + b"not really a pdf" * 20, limits=LIMITS)


def test_a_scan_without_text_asks_for_ocr() -> None:
    with pytest.raises(EmptyFileError, match="OCR"):
        parse_pdf(data=make_pdf([[], []]), limits=LIMITS)


def test_page_limit_is_noted() -> None:
    parts = parse_pdf(
        data=make_pdf([[f"page {n}"] for n in range(5)]), limits=ParseLimits(max_pages=2)
    )
    assert [section.page for section in parts.sections] == [1, 2]
    assert "Only the first 2 of 5 pages were read." in parts.notes
