"""Rule-based question/answer synthesis and the model hook, all with source spans."""

from __future__ import annotations

from collections.abc import Sequence

from gptstudio.curation.chunking import Chunk, chunk_document
from gptstudio.curation.documents import FileType, ParsedDocument, ParseReport, Section
from gptstudio.curation.examples import ExampleKind, Role
from gptstudio.curation.qa import (
    QAPair,
    SynthesisOptions,
    cloze_pairs,
    definition_pairs,
    synthesize_examples,
)

TEXT = (
    "Soil pH is a measure of the acidity or alkalinity of soil. Most vegetables prefer a soil "
    "pH between 6.0 and 7.0. It is a good idea to test every spring. Agricultural lime is a "
    "ground limestone that raises the pH of acidic soil over several months. Raised beds are "
    "an easy way to improve drainage in heavy clay."
)


def _document() -> ParsedDocument:
    report = ParseReport(filename="guide.md", file_type=FileType.MARKDOWN, size_bytes=1)
    sections = [
        Section("Intro without a heading, long enough to stand as its own small chunk of text."),
        Section(TEXT, heading_path=("Guide", "Raising soil pH")),
    ]
    return ParsedDocument("doc", "guide.md", (), report).with_sections(sections)


def test_definitions_become_what_is_questions() -> None:
    pairs = definition_pairs(text=TEXT)
    assert [pair.question for pair in pairs] == [
        "What is soil pH?",
        "What is agricultural lime?",
        "What are raised beds?",
    ]
    assert pairs[0].answer == "Soil pH is a measure of the acidity or alkalinity of soil."
    assert all(TEXT[p.char_start or 0 : p.char_end] == p.answer for p in pairs)


def test_cloze_blanks_a_technical_term_reproducibly() -> None:
    (pair,) = cloze_pairs(text="Most vegetables prefer a soil pH between 6.0 and 7.0.", seed=1)
    assert (
        pair.question
        == "Fill in the blank: Most vegetables prefer a soil ____ between 6.0 and 7.0."
    )
    assert pair.answer == "pH"
    assert cloze_pairs(text=TEXT, limit=2, seed=4) == cloze_pairs(text=TEXT, limit=2, seed=4)


def test_examples_trace_back_to_their_source_span() -> None:
    document = _document()
    result = synthesize_examples(chunks=chunk_document(document=document))
    assert result.counts[ExampleKind.DEFINITION] == 3
    assert result.counts[ExampleKind.HEADING] == 1
    assert result.counts[ExampleKind.CLOZE] >= 1
    for example in result.examples:
        start, end = example.source.char_start, example.source.char_end
        assert start is not None and end is not None
        passage = document.text[start:end]
        if example.kind == ExampleKind.DEFINITION:
            assert passage == example.messages[-1].content
        if example.kind == ExampleKind.CLOZE:
            assert example.messages[-1].content in passage
    heading = next(e for e in result.examples if e.kind == ExampleKind.HEADING)
    assert heading.messages[0].content == "What should I know about raising soil pH?"


def test_system_prompt_and_rule_switches() -> None:
    options = SynthesisOptions(cloze=False, headings=False, system_prompt="You are a gardener.")
    result = synthesize_examples(chunks=chunk_document(document=_document()), options=options)
    assert {example.kind for example in result.examples} == {ExampleKind.DEFINITION}
    assert all(example.messages[0].role == Role.SYSTEM for example in result.examples)


class ScriptedGenerator:
    """A stand-in for a chat model: returns fixed pairs, some of them unusable."""

    def __init__(self) -> None:
        self.calls = 0

    def __call__(self, *, chunk: Chunk, max_pairs: int) -> Sequence[QAPair]:
        self.calls += 1
        first_sentence_end = chunk.text.find(".") + 1
        return [
            QAPair(
                "What does the passage cover?",
                chunk.text[:first_sentence_end],
                0,
                first_sentence_end,
            ),
            QAPair("", "an empty question is rejected"),
            QAPair("Span out of range?", "keeps the chunk span", 5, 10_000),
            QAPair("One too many?", "over the limit"),
        ]


def test_generated_pairs_are_checked_and_limited() -> None:
    generator = ScriptedGenerator()
    chunks = chunk_document(document=_document())
    options = SynthesisOptions(
        definitions=False, headings=False, cloze=False, max_generated_per_chunk=2
    )
    result = synthesize_examples(chunks=chunks, options=options, generator=generator)
    assert generator.calls == len(chunks)
    assert result.counts[ExampleKind.GENERATED] == 2 * len(chunks)
    assert result.rejected_generated == 2 * len(chunks)
    narrow, wide = result.examples[0], result.examples[1]
    assert narrow.source.char_end == (narrow.source.char_start or 0) + len(
        narrow.messages[1].content
    )
    assert (wide.source.char_start, wide.source.char_end) == (
        chunks[0].source.char_start,
        chunks[0].source.char_end,
    )


def test_example_ids_are_stable_and_distinct() -> None:
    chunks = chunk_document(document=_document())
    first = synthesize_examples(chunks=chunks).examples
    second = synthesize_examples(chunks=chunks).examples
    assert [e.example_id for e in first] == [e.example_id for e in second]
    assert len({e.example_id for e in first}) == len(first)
