"""Examples carry provenance and ids that depend on their source, not their wording."""

from __future__ import annotations

from gptstudio.curation.examples import (
    ExampleKind,
    Provenance,
    Role,
    make_example,
    question_answer,
)

SOURCE = Provenance(document_id="doc", page=2, char_start=5, char_end=40)


def test_ids_depend_on_source_kind_and_ordinal_only() -> None:
    first = make_example(
        messages=question_answer(question="Q?", answer="A."), source=SOURCE, kind=ExampleKind.CLOZE
    )
    reworded = make_example(
        messages=question_answer(question="Q?", answer="B."), source=SOURCE, kind=ExampleKind.CLOZE
    )
    second = make_example(messages=first.messages, source=SOURCE, kind=ExampleKind.CLOZE, ordinal=1)
    assert first.example_id == reworded.example_id != second.example_id
    assert first.text == "Q?\nA."


def test_system_prompt_comes_first() -> None:
    messages = question_answer(question="Q?", answer="A.", system_prompt="Be exact.")
    assert [m.role for m in messages] == [Role.SYSTEM, Role.USER, Role.ASSISTANT]


def test_provenance_json_leaves_out_unset_fields() -> None:
    assert Provenance(document_id="doc", row=4).to_json() == {"document_id": "doc", "row": 4}
    assert SOURCE.to_json() == {"document_id": "doc", "page": 2, "char_start": 5, "char_end": 40}
