"""Rule-based question/answer synthesis and the model hook, all with source spans."""

from __future__ import annotations

from collections.abc import Sequence

from gptstudio.curation.chunking import Chunk, ChunkingOptions, chunk_document
from gptstudio.curation.documents import FileType, ParsedDocument, ParseReport, Section
from gptstudio.curation.examples import Example, ExampleKind, Role
from gptstudio.curation.parsers import parse_document
from gptstudio.curation.qa import (
    QAPair,
    SynthesisOptions,
    cloze_pairs,
    definition_pairs,
    explicit_pairs,
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
    result = synthesize_examples(
        chunks=chunk_document(document=document),
        documents=[document],
        options=SynthesisOptions(cloze=True),
    )
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
            assert passage[0].isupper()  # a whole sentence, never one begun mid-way
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


def _markdown(text: str, document_id: str = "faq") -> ParsedDocument:
    return parse_document(data=text.encode(), filename=f"{document_id}.md", document_id=document_id)


def _examples(document: ParsedDocument, **options: object) -> list[Example]:
    chunks = chunk_document(
        document=document, options=ChunkingOptions(max_tokens=60, overlap_tokens=10)
    )
    settings = SynthesisOptions(**options)  # type: ignore[arg-type]
    return list(synthesize_examples(chunks=chunks, documents=[document], options=settings).examples)


FAQ = """# Frequently asked questions

Q: How do I install the tool?
A: Run the installer from the download page and follow the prompts.

Q: Which systems are supported?
A: Linux, macOS and Windows 10 or later are supported.

**Q:** Can I use it offline?

**A:** Yes. After the first start it needs no network.

Question: Where are settings stored?
Answer: In the file settings.toml in your home folder.

Q: Is there a
command-line interface?
A: Yes, run the tool with --help to see every command and
option it accepts.

Q: How do I report a bug?
A: Open an issue on the tracker and attach the log file.
"""


def test_question_and_answer_markers_become_examples_as_written() -> None:
    examples = _examples(_markdown(FAQ), definitions=False, headings=False)
    pairs = [(e.messages[0].content, e.messages[1].content) for e in examples]
    assert pairs == [
        (
            "How do I install the tool?",
            "Run the installer from the download page and follow the prompts.",
        ),
        ("Which systems are supported?", "Linux, macOS and Windows 10 or later are supported."),
        ("Can I use it offline?", "Yes. After the first start it needs no network."),
        ("Where are settings stored?", "In the file settings.toml in your home folder."),
        (
            "Is there a command-line interface?",
            "Yes, run the tool with --help to see every command and option it accepts.",
        ),
        ("How do I report a bug?", "Open an issue on the tracker and attach the log file."),
    ]
    assert {e.kind for e in examples} == {ExampleKind.EXPLICIT}


def test_faq_questions_definition_lists_and_question_headings_are_taken_as_written() -> None:
    text = (
        "# Help\n\n## How do I reset my password?\n\nOpen the account page and choose Reset. "
        "A link arrives by e-mail within a minute.\n\n## Glossary\n\n"
        "- What is a workspace?\n- A workspace is a folder that holds your projects.\n"
        "- Why is sync slow?\n- Large files are uploaded one at a time.\n\n"
        "Quota\n: The space your plan allows, counted over all workspaces.\n\n"
        "Does the app keep old versions?\n\nIt keeps thirty days of versions. Older ones are "
        "removed at night.\n"
    )
    examples = _examples(_markdown(text), definitions=False, headings=False)
    pairs = {e.messages[0].content: e.messages[1].content for e in examples}
    assert pairs == {
        "How do I reset my password?": "Open the account page and choose Reset. A link "
        "arrives by e-mail within a minute.",
        "What is a workspace?": "A workspace is a folder that holds your projects.",
        "Why is sync slow?": "Large files are uploaded one at a time.",
        "What is Quota?": "The space your plan allows, counted over all workspaces.",
        "Does the app keep old versions?": "It keeps thirty days of versions. Older ones are "
        "removed at night.",
    }


def test_definitions_end_at_sentence_ends_not_at_hard_line_breaks() -> None:
    text = (
        "PAM is the most basic way to initialize environment variables for\n"
        "the login shell and for every program started from it. Other\n"
        "mechanisms exist.\n"
    )
    (pair,) = definition_pairs(text=text)
    assert pair.question == "What is PAM?"
    assert pair.answer == (
        "PAM is the most basic way to initialize environment variables for the login shell "
        "and for every program started from it."
    )


def test_placeholders_are_never_blanked() -> None:
    text = (
        "Set the variable with git config user.email [EMAIL] before the first commit. "
        "Replace <username> and {hostname} in the SSHCONFIG template with your values."
    )
    for seed in range(40):
        for pair in cloze_pairs(text=text, limit=2, seed=seed):
            assert pair.answer not in {"EMAIL", "username", "hostname", "SSHCONFIG"}
            assert "[EMAIL]" in pair.question or "<username>" in pair.question


def test_cloze_is_off_by_default_and_starts_at_sentence_starts() -> None:
    text = "# Guide\n\n" + TEXT.replace(". ", ".\n")
    assert not [e for e in _examples(_markdown(text)) if e.kind == ExampleKind.CLOZE]
    wrapped = "continues the last page. The quick brown chromatography column separates\n"
    wrapped += "the mixture within minutes."
    for seed in range(10):
        for pair in cloze_pairs(text=wrapped, seed=seed):
            assert pair.question.startswith("Fill in the blank: The quick brown")


def test_questions_carry_no_bullets_or_broken_words() -> None:
    text = (
        "• The argu-\nment is a value passed to a command on its line.\n\n"
        "- The ar gument is a value that breaks words apart.\n\n"
        "3.5. An option is a flag that changes how the command runs.\n"
    )
    questions = [pair.question for pair in definition_pairs(text=text)]
    assert questions == ["What is the argument?", "What is an option?"]
    document = _markdown("# 3.5. • Tool setups\n\nThe tools are installed with the manager.")
    (heading,) = [e for e in _examples(document) if e.kind == ExampleKind.HEADING]
    assert heading.messages[0].content == "What should I know about tool setups?"


def test_a_sentence_in_the_overlap_of_two_chunks_is_one_example() -> None:
    sentences = [
        f"Tool {name} is a program that formats the {name} files of a project for you."
        for name in ("alpha", "beta", "gamma", "delta", "epsilon", "zeta", "eta", "theta")
    ]
    document = _markdown("# Tools\n\n" + " ".join(sentences))
    chunks = chunk_document(
        document=document, options=ChunkingOptions(max_tokens=40, overlap_tokens=18)
    )
    assert len(chunks) > 3  # overlapping windows share sentences
    result = synthesize_examples(chunks=chunks, documents=[document])
    definitions = [e for e in result.examples if e.kind == ExampleKind.DEFINITION]
    assert len(definitions) == len(sentences)
    ids = [e.example_id for e in result.examples]
    assert len(ids) == len(set(ids))
    # Without the documents each chunk is read alone: still one example per span and kind.
    alone = synthesize_examples(chunks=chunks).examples
    assert len({e.example_id for e in alone}) == len(alone)


def test_lines_of_code_are_no_definitions_and_stay_lines_in_answers() -> None:
    text = (
        "To delete the block, run:\n\n"
        "     sed -f script.sed myfile   # 'script.sed' is the file of commands\n"
        "     # 'myfile' is the file being changed\n"
        "     $ sed '/^Abel$/,/^Zebra$/d' files\n\n"
        "A script file is a list of commands that sed reads before the input.\n"
    )
    assert [pair.question for pair in definition_pairs(text=text)] == ["What is a script file?"]
    faq = "Q: How do I delete a block?\nA: Use a range:\n\n     sed '/^Abel$/,/^Zebra$/d' files\n"
    (pair,) = explicit_pairs(text=faq)
    assert pair.answer == "Use a range:\n\nsed '/^Abel$/,/^Zebra$/d' files"


def test_definitions_need_a_term_and_a_whole_answer() -> None:
    text = (
        "Though this is an unlikely combination, it is worth remembering.\n\n"
        "In general its operation is the same as for the other call.\n\n"
        "Echos is an echo command that does not issue a trailing newline:\n\n"
        "A cartridge is the part that holds the ink of the printer.\n"
    )
    assert [p.question for p in definition_pairs(text=text)] == ["What is a cartridge?"]
    document = _markdown("## Dictionary compression How To:\n\nTrain a dictionary on samples.")
    (heading,) = [e for e in _examples(document) if e.kind == ExampleKind.HEADING]
    assert heading.messages[0].content == (
        "What should I know about dictionary compression How To?"
    )


def test_a_table_of_contents_is_no_answer_and_faq_sections_are_taught_by_their_pairs() -> None:
    toc = (
        "Where can I learn more?\n\n2.3.1. Books 2.3.2. Mailing list 2.3.3. Tutorials\n"
        "2.3.4. Web sites 3. TECHNICAL 3.1. Basics 3.1.1. Expressions 3.1.2. Escapes\n"
    )
    assert explicit_pairs(text=toc) == []
    document = _markdown(
        "# Allotments\n\n- How long is the waiting list?\n- About eighteen months just now.\n"
        "- May I keep chickens?\n- No, animals are not allowed under the lease.\n"
    )
    kinds = [e.kind for e in _examples(document)]
    assert kinds == [ExampleKind.EXPLICIT, ExampleKind.EXPLICIT]
