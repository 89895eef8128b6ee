"""Documents lay their sections out so every span indexes the joined text."""

from __future__ import annotations

from gptstudio.curation.documents import (
    SECTION_SEPARATOR,
    FileType,
    ParsedDocument,
    ParseReport,
    Section,
    layout_sections,
)


def test_layout_skips_empty_sections_and_sets_offsets() -> None:
    sections = layout_sections(
        sections=[Section("alpha", page=1), Section(""), Section("beta", page=2)]
    )
    assert [(s.text, s.char_start, s.char_end) for s in sections] == [
        ("alpha", 0, 5),
        ("beta", 5 + len(SECTION_SEPARATOR), 9 + len(SECTION_SEPARATOR)),
    ]


def test_with_sections_relays_offsets() -> None:
    report = ParseReport(filename="a.txt", file_type=FileType.TEXT, size_bytes=1)
    document = ParsedDocument(
        "d", "a.txt", layout_sections(sections=[Section("one"), Section("two")]), report
    )
    changed = document.with_sections([Section("longer one", char_start=99), document.sections[1]])
    assert changed.text == "longer one\n\ntwo"
    assert [changed.text[s.char_start : s.char_end] for s in changed.sections] == [
        "longer one",
        "two",
    ]
