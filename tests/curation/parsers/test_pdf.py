"""PDF reading: page numbers kept; protected, damaged and textless files refused clearly."""

from __future__ import annotations

from pathlib import Path

import pytest

from gptstudio.curation.errors import CorruptFileError, EmptyFileError, EncryptedFileError
from gptstudio.curation.parsers.limits import ParseLimits
from gptstudio.curation.parsers.pdf import parse_pdf, run_together_share
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


DATA = Path(__file__).parent.parent / "data"


@pytest.mark.parametrize("name", ["debmake-doc-en-excerpt.pdf", "debmake-doc-de-excerpt.pdf"])
def test_latex_made_pdf_keeps_spaces_between_words(name: str) -> None:
    # dblatex output places words by position and draws no space glyphs; pypdf ran 30-35% of
    # these letters together ("Thedebsigncommand,includedin...").
    parts = parse_pdf(data=(DATA / name).read_bytes(), limits=LIMITS)
    text = "\n".join(section.text for section in parts.sections)
    assert run_together_share(text=text) <= 0.02
    assert len(text.split()) > 500


def test_english_excerpt_reads_sentences_as_written() -> None:
    parts = parse_pdf(data=(DATA / "debmake-doc-en-excerpt.pdf").read_bytes(), limits=LIMITS)
    assert parts.pages == 12
    text = " ".join(" ".join(section.text.split()) for section in parts.sections)
    assert "Please make yourself ready to read the pertinent part of the latest Debian" in text


def test_words_split_at_a_line_end_are_joined() -> None:
    parts = parse_pdf(data=(DATA / "debmake-doc-en-excerpt.pdf").read_bytes(), limits=LIMITS)
    text = "\n".join(section.text for section in parts.sections)
    assert "\x02" not in text and "\r" not in text


def test_run_together_share_counts_letters_in_joined_words() -> None:
    joined = "Thedebsigncommandincludedinthedevscriptspackage signs files."
    assert run_together_share(text=joined) > 0.7
    assert run_together_share(text="The debsign command signs files.") == 0.0
    # Paths, identifiers and URLs are long by nature.
    assert run_together_share(text="see /usr/share/doc/debmake-doc/examples DEB_BUILD_MAINT") == 0


def test_a_pdf_whose_words_still_run_together_is_noted() -> None:
    joined = "Thedebsigncommandincludedinthedevscriptspackagesignsfiles"
    parts = parse_pdf(data=make_pdf([[joined, "A normal line of text."]]), limits=LIMITS)
    assert any("run together without spaces" in note for note in parts.notes)
    clean = parse_pdf(data=make_pdf([["A normal line of text."]]), limits=LIMITS)
    assert not any("run together" in note for note in clean.notes)
