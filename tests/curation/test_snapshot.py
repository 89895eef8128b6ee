"""Snapshot hash, chat JSONL export, curated chunks as JSONL and diffs by stable example id."""

from __future__ import annotations

import dataclasses
import json

import pytest

from gptstudio.curation.chunking import Chunk
from gptstudio.curation.dedupe import DedupeOptions
from gptstudio.curation.errors import InvalidParameterError
from gptstudio.curation.examples import (
    ExampleKind,
    Message,
    Provenance,
    Role,
    make_example,
    question_answer,
)
from gptstudio.curation.snapshot import (
    dataset_hash,
    diff_examples,
    from_chat_jsonl,
    from_chunks_jsonl,
    split_warnings,
    to_chat_jsonl,
    to_chunks_jsonl,
)

SOURCE = Provenance(document_id="doc", page=3, heading_path=("Soil",), char_start=10, char_end=60)
FIRST = make_example(
    messages=question_answer(
        question="What is pH?", answer="A measure of acidity.", system_prompt="Be brief."
    ),
    source=SOURCE,
    kind=ExampleKind.DEFINITION,
)
SECOND = make_example(
    messages=question_answer(question="Fill in: soil ____", answer="pH"),
    source=SOURCE,
    kind=ExampleKind.CLOZE,
)


def test_jsonl_is_chat_format_with_source() -> None:
    line = json.loads(to_chat_jsonl(examples=[FIRST]).splitlines()[0])
    assert line["messages"] == [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "What is pH?"},
        {"role": "assistant", "content": "A measure of acidity."},
    ]
    assert line["source"] == {
        "document_id": "doc",
        "page": 3,
        "heading_path": ["Soil"],
        "char_start": 10,
        "char_end": 60,
    }


def test_jsonl_round_trips() -> None:
    assert from_chat_jsonl(text=to_chat_jsonl(examples=[FIRST, SECOND])) == (FIRST, SECOND)
    with pytest.raises(InvalidParameterError, match="Line 1"):
        from_chat_jsonl(text='{"messages": []}\n')


def test_chunks_round_trip_with_their_provenance() -> None:
    chunks = (
        Chunk(chunk_id="c1", text="Soil pH measures acidity. Été 🐝", source=SOURCE, part=0),
        Chunk(chunk_id="c2", text="Row text", source=Provenance(document_id="7", row=3), part=2),
    )
    text = to_chunks_jsonl(chunks=chunks)
    assert json.loads(text.splitlines()[1]) == {
        "id": "c2", "text": "Row text", "source": {"document_id": "7", "row": 3}, "part": 2,
    }  # fmt: skip
    assert from_chunks_jsonl(text=text + "\n") == chunks
    with pytest.raises(InvalidParameterError, match="Line 2 is not a chunk record"):
        from_chunks_jsonl(text=text.splitlines()[0] + '\n{"id": "c3"}\n')


def test_hash_ignores_order_but_not_content_or_parameters() -> None:
    parameters = {"dedupe": DedupeOptions(), "languages": frozenset({"en", "de"})}
    base = dataset_hash(examples=[FIRST, SECOND], parameters=parameters)
    assert base == dataset_hash(examples=[SECOND, FIRST], parameters=dict(parameters))
    assert len(base) == 64
    other = {"dedupe": DedupeOptions(threshold=0.8), "languages": frozenset({"en", "de"})}
    assert base != dataset_hash(examples=[FIRST, SECOND], parameters=other)
    assert base != dataset_hash(examples=[FIRST], parameters=parameters)


def test_unrecordable_parameters_are_refused() -> None:
    with pytest.raises(InvalidParameterError, match="object values cannot be recorded"):
        dataset_hash(examples=[], parameters={"x": object()})


def test_diff_by_stable_id() -> None:
    reworded = dataclasses.replace(
        FIRST, messages=(Message(Role.USER, "What is pH?"), Message(Role.ASSISTANT, "Acidity."))
    )
    third = make_example(
        messages=question_answer(question="q", answer="a"),
        source=SOURCE,
        kind=ExampleKind.CLOZE,
        ordinal=1,
    )
    diff = diff_examples(old=[FIRST, SECOND], new=[reworded, third])
    assert diff.changed == (FIRST.example_id,)
    assert diff.added == (third.example_id,)
    assert diff.removed == (SECOND.example_id,)
    assert diff.unchanged == 0


def test_split_warnings_say_what_the_evaluation_will_use() -> None:
    assert split_warnings(counts={"train": 20, "validation": 3, "test": 3}) == ()
    (one,) = split_warnings(counts={"train": 17, "validation": 1, "test": 0})
    assert "no test examples" in one.lower() and "1 validation example " in one
    assert "instead" in one
    (none,) = split_warnings(counts={"train": 17, "validation": 0, "test": 0})
    assert "nothing held out" in none.lower()
    (no_validation,) = split_warnings(counts={"train": 17, "validation": 0, "test": 4})
    assert "no validation examples" in no_validation.lower() and "4 test examples" in no_validation
