"""CSV, JSON and JSONL: ready examples from chat or instruction data, or text rows."""

from __future__ import annotations

import json

import pytest

from gptstudio.curation.documents import FileType
from gptstudio.curation.errors import (
    ColumnChoiceError,
    CorruptFileError,
    EmptyFileError,
    InvalidParameterError,
)
from gptstudio.curation.examples import ExampleKind, Role
from gptstudio.curation.parsers.parts import ParsedParts
from gptstudio.curation.parsers.tabular import ColumnChoice, parse_records


def parse(text: str, file_type: FileType, columns: ColumnChoice | None = None) -> ParsedParts:
    return parse_records(
        text=text, file_type=file_type, document_id="doc", columns=columns, max_records=1000
    )


def test_chat_jsonl_becomes_examples_with_row_provenance() -> None:
    lines = [
        {
            "messages": [
                {"role": "system", "content": "Be brief."},
                {"role": "user", "content": "What is loam?"},
                {"role": "assistant", "content": "Balanced soil."},
            ]
        },
        {"messages": [{"role": "user", "content": "No answer"}]},
    ]
    parts = parse("\n".join(json.dumps(line) for line in lines), FileType.JSONL)
    (example,) = parts.examples
    assert [m.role for m in example.messages] == [Role.SYSTEM, Role.USER, Role.ASSISTANT]
    assert example.kind == ExampleKind.IMPORTED
    assert (example.source.document_id, example.source.row) == ("doc", 1)
    assert parts.notes == ["Skipped 1 empty or malformed records (rows 2)."]


def test_sharegpt_conversations_are_chat() -> None:
    record = {
        "conversations": [{"from": "human", "value": "Hi?"}, {"from": "gpt", "value": "Hello."}]
    }
    (example,) = parse(json.dumps([record]), FileType.JSON).examples
    assert [m.content for m in example.messages] == ["Hi?", "Hello."]


def test_alpaca_instruction_input_output() -> None:
    records = [{"instruction": "Summarise.", "input": "Lime raises pH.", "output": "Lime: pH up."}]
    (example,) = parse(json.dumps(records), FileType.JSON).examples
    assert example.messages[0].content == "Summarise.\n\nLime raises pH."
    assert example.messages[1].content == "Lime: pH up."


def test_question_answer_csv() -> None:
    text = "Question,Answer\nWhat is pH?,A measure of acidity.\n,missing question\n"
    parts = parse(text, FileType.CSV)
    assert [e.messages[0].content for e in parts.examples] == ["What is pH?"]
    assert parts.records == 2


def test_text_column_rows_become_sections() -> None:
    text = "id,body\n1,Soil pH is a measure of acidity.\n2,Lime raises pH.\n"
    parts = parse(text, FileType.CSV)
    assert [(s.row, s.text) for s in parts.sections] == [
        (1, "Soil pH is a measure of acidity."),
        (2, "Lime raises pH."),
    ]


def test_chosen_columns_override_the_guess() -> None:
    text = "q,a,notes\nWhat is pH?,Acidity.,x\n"
    parts = parse(text, FileType.CSV, ColumnChoice(instruction="q", response="a"))
    assert parts.examples[0].messages[1].content == "Acidity."


def test_ambiguous_columns_ask_for_a_choice() -> None:
    text = (
        "a,b\nfirst long text here yes,second long text here yes\nmore words in a,more in b too\n"
    )
    with pytest.raises(ColumnChoiceError, match="found: a, b"):
        parse(text, FileType.CSV)


def test_missing_chosen_column_names_the_available_ones() -> None:
    with pytest.raises(ColumnChoiceError, match="'body' is not in the file; available: a, b"):
        parse("a,b\n1,2\n3,4\n", FileType.CSV, ColumnChoice(text="body"))


def test_column_choice_must_be_consistent() -> None:
    with pytest.raises(InvalidParameterError):
        ColumnChoice(text="body", instruction="q", response="a")
    with pytest.raises(InvalidParameterError):
        ColumnChoice(instruction="q")


def test_bad_jsonl_line_is_located() -> None:
    with pytest.raises(CorruptFileError, match="Line 2"):
        parse('{"text": "ok"}\n{"text": \n', FileType.JSONL)


def test_json_that_is_not_a_list_of_objects() -> None:
    with pytest.raises(ColumnChoiceError, match="list of objects"):
        parse("[1, 2, 3]", FileType.JSON)


def test_no_usable_record_is_empty() -> None:
    with pytest.raises(EmptyFileError):
        parse('[{"text": ""}]', FileType.JSON)
