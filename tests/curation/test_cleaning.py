"""Cleaning changes only what it reports, and never touches domain terms."""

from __future__ import annotations

from pathlib import Path

import pytest

from gptstudio.curation.cleaning import (
    CleaningOptions,
    CleaningStep,
    clean_document,
    clean_text,
    find_repeated_lines,
    find_running_headers,
)
from gptstudio.curation.errors import InvalidParameterError
from gptstudio.curation.parsers import parse_document
from tests.curation.builders import make_pdf


def test_unicode_controls_and_whitespace_are_normalised_and_counted() -> None:
    result = clean_text(text="Cafe\u0301  au\u00a0lait\u200b\x07 ok\r\n\r\n\r\n\r\nnext  ")
    assert result.text == "Café au lait ok\n\nnext"
    assert result.changes[CleaningStep.UNICODE] == 1
    assert result.changes[CleaningStep.CONTROL] == 2
    assert result.changes[CleaningStep.WHITESPACE] >= 3


def test_terms_and_joiners_survive() -> None:
    text = "TNF-α and IL-6 rise; pH 6.5; mRNA; می\u200cخواهم; 👩\u200d🔬 CO₂"
    assert clean_text(text=text).text == text


def test_steps_can_be_switched_off() -> None:
    options = CleaningOptions(normalize_whitespace=False, remove_control_characters=False)
    assert clean_text(text="a  b\x07", options=options).text == "a  b\x07"


def test_repeated_lines_need_enough_pages() -> None:
    pages = ["ACME Manual\nbody one\nbody\nbody\nPage 1", "ACME Manual\nbody two\nx\ny\nPage 2"]
    assert find_repeated_lines(pages=pages) == frozenset()
    assert find_repeated_lines(pages=pages, min_pages=2) == {"acme manual", "page #"}


def _manual(pages: int) -> bytes:
    return make_pdf(
        [
            [
                "ACME Field Manual - Confidential",
                f"Plot {n}: soil pH is a measure of acidity; TNF-α is unrelated.",
                "Lime raises the pH of acidic soil over several months.",
                "Water deeply but rarely so roots grow down.",
                f"Page {n} of {pages}",
            ]
            for n in range(1, pages + 1)
        ]
    )


def test_pdf_headers_and_footers_are_removed_and_reported() -> None:
    document = parse_document(data=_manual(4), filename="manual.pdf")
    cleaned = clean_document(document=document)
    text = cleaned.document.text
    assert "Confidential" not in text
    assert "Page 2 of 4" not in text
    assert "Plot 3: soil pH is a measure of acidity; TNF-α is unrelated." in text
    report = cleaned.report
    assert report.changes[CleaningStep.REPEATED_LINES] == 8
    assert report.repeated_lines == ("ACME Field Manual - Confidential", "Page 1 of 4")
    assert report.language is not None and report.language.code == "en"
    assert any("Header/footer lines removed" in line for line in report.describe())


def test_offsets_still_index_the_cleaned_text() -> None:
    cleaned = clean_document(document=parse_document(data=_manual(3), filename="m.pdf")).document
    for section in cleaned.sections:
        assert cleaned.text[section.char_start : section.char_end] == section.text


def test_short_sections_are_dropped_and_counted() -> None:
    document = parse_document(
        data=b"# A\nTiny.\n# B\nThis section is long enough.", filename="a.md"
    )
    cleaned = clean_document(document=document, options=CleaningOptions(min_section_chars=10))
    assert [s.heading_path for s in cleaned.document.sections] == [("B",)]
    assert cleaned.report.changes[CleaningStep.SHORT_SECTIONS] == 1


def test_imported_examples_are_cleaned_too() -> None:
    data = (
        '{"messages":[{"role":"user","content":"Q\u200b?  "},{"role":"assistant","content":"A"}]}'
    )
    document = parse_document(data=data.encode(), filename="chat.jsonl")
    cleaned = clean_document(document=document)
    assert cleaned.document.examples[0].messages[0].content == "Q?"


def test_options_are_checked() -> None:
    with pytest.raises(InvalidParameterError):
        CleaningOptions(repeated_line_min_fraction=0)


def _chaptered_pages() -> list[str]:
    titles = ["1.1. GETTING STARTED", "1.2. SETUP", "2.1. TOOLS", "2.3. DEVSCRIPTS", "3.1. DEBUG"]
    return [
        f"CHAPTER {title[0]}. SOME PART {title}\n"
        f"Body sentence {n} explains the debsign command in detail.\n"
        "Another line of body text follows here, long enough to be a real sentence.\n"
        f"Body sentence {n} closes the page with its own words.\n"
        f"{n + 1}"
        for n, title in enumerate(titles)
    ]


def test_running_chapter_headers_that_change_per_chapter_are_found() -> None:
    pages = _chaptered_pages()
    assert find_running_headers(pages=pages) == {"chapter #."}
    # Body lines that share their first words are not headers.
    assert find_running_headers(pages=[page.split("\n", 1)[1] for page in pages]) == frozenset()


def test_running_chapter_headers_are_removed_from_a_pdf() -> None:
    pdf = make_pdf([page.split("\n") for page in _chaptered_pages()])
    cleaned = clean_document(document=parse_document(data=pdf, filename="guide.pdf"))
    text = cleaned.document.text
    assert "CHAPTER" not in text
    assert "Body sentence 3 explains the debsign command in detail." in text
    assert "CHAPTER 1. SOME PART 1.1. GETTING STARTED" in cleaned.report.repeated_lines


def test_real_manual_loses_its_running_headers() -> None:
    data = (Path(__file__).parent / "data" / "debmake-doc-en-excerpt.pdf").read_bytes()
    cleaned = clean_document(document=parse_document(data=data, filename="debmake-doc.pdf"))
    assert "CHAPTER 2. PREREQUISITES" not in cleaned.document.text
    assert "CHAPTER 3. TOOL SETUPS" not in cleaned.document.text
    assert "Debian documentation" in cleaned.document.text
