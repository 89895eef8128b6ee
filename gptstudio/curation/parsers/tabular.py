"""Read CSV, JSON and JSON Lines: as ready examples or as text rows.

A file that already holds training data becomes examples directly: chat records (``messages``
lists of role/content, or ShareGPT ``conversations`` of from/value) or instruction records
(instruction/input/output, prompt/response, prompt/completion, question/answer). Otherwise one
column is read as text, one section per row. :class:`ColumnChoice` overrides the guess.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any

from gptstudio.curation.documents import FileType, Section
from gptstudio.curation.errors import (
    ColumnChoiceError,
    CorruptFileError,
    EmptyFileError,
    InvalidParameterError,
)
from gptstudio.curation.examples import (
    Example,
    ExampleKind,
    Message,
    Provenance,
    Role,
    make_example,
    question_answer,
)
from gptstudio.curation.parsers.delimited import NotATableError, detect_dialect
from gptstudio.curation.parsers.parts import ParsedParts
from gptstudio.curation.parsers.sniff import loads_json

Record = Mapping[str, Any]

_INSTRUCTION_PAIRS = (
    ("instruction", "output"),
    ("instruction", "response"),
    ("prompt", "response"),
    ("prompt", "completion"),
    ("question", "answer"),
    ("query", "response"),
    ("input", "output"),
)
_CONTEXT_COLUMNS = ("input", "context")
_TEXT_COLUMNS = ("text", "content", "body", "passage", "document")
_SHAREGPT_ROLES = {
    "human": Role.USER,
    "user": Role.USER,
    "gpt": Role.ASSISTANT,
    "assistant": Role.ASSISTANT,
    "system": Role.SYSTEM,
}
_PROBE_RECORDS = 100


@dataclass(frozen=True)
class ColumnChoice:
    """Which columns (CSV) or keys (JSON) to read; set ``text`` or ``instruction``+``response``."""

    text: str | None = None
    instruction: str | None = None
    response: str | None = None
    context: str | None = None
    """Optional extra input appended to the instruction (Alpaca's ``input``)."""
    system: str | None = None

    def __post_init__(self) -> None:
        pair = self.instruction is not None and self.response is not None
        if (self.text is None) == (not pair):
            raise InvalidParameterError(
                "Choose either a text column, or both an instruction and a response column."
            )
        if self.text is not None and (self.context or self.system or self.instruction):
            raise InvalidParameterError(
                "Context, system and instruction columns only apply to instruction data."
            )


def _keys(records: Sequence[Record]) -> dict[str, str]:
    """Lower-cased key -> key as written, over the first records."""
    found: dict[str, str] = {}
    for record in records[:_PROBE_RECORDS]:
        for key in record:
            found.setdefault(str(key).lower(), str(key))
    return found


def _instruction_columns(keys: Mapping[str, str]) -> ColumnChoice | None:
    for instruction, response in _INSTRUCTION_PAIRS:
        if instruction in keys and response in keys:
            contexts = [keys[c] for c in _CONTEXT_COLUMNS if c in keys and c != instruction]
            return ColumnChoice(
                instruction=keys[instruction],
                response=keys[response],
                context=contexts[0] if contexts else None,
                system=keys.get("system"),
            )
    return None


def _text_column(records: Sequence[Record], keys: Mapping[str, str]) -> ColumnChoice | None:
    named = [keys[name] for name in _TEXT_COLUMNS if name in keys]
    textual = named[:1] or [key for key in keys.values() if _mostly_text(records, key)]
    return ColumnChoice(text=textual[0]) if len(textual) == 1 else None


def guess_columns(*, records: Sequence[Record]) -> ColumnChoice | None:
    """The instruction or text columns the records use; ``None`` for chat records."""
    keys = _keys(records)
    if "messages" in keys or "conversations" in keys:
        return None
    choice = _instruction_columns(keys) or _text_column(records, keys)
    if choice is None:
        raise ColumnChoiceError(
            "Choose which column holds the text, or the instruction and response columns; "
            f"found: {', '.join(keys.values()) or 'no columns'}.",
            columns=tuple(keys.values()),
        )
    return choice


def _mostly_text(records: Sequence[Record], key: str) -> bool:
    values = [record.get(key) for record in records[:_PROBE_RECORDS]]
    strings = [value for value in values if isinstance(value, str) and len(value.split()) > 3]
    return len(strings) * 2 > len(values)


def _cell(record: Record, key: str | None) -> str:
    value = record.get(key) if key else None
    if value is None or isinstance(value, (dict, list)):
        return ""
    return str(value).strip()


def _check_columns(records: Sequence[Record], choice: ColumnChoice) -> None:
    keys = set(_keys(records).values())
    wanted = [choice.text, choice.instruction, choice.response, choice.context, choice.system]
    missing = [name for name in wanted if name is not None and name not in keys]
    if missing:
        raise ColumnChoiceError(
            f"Column {missing[0]!r} is not in the file; available: {', '.join(sorted(keys))}.",
            columns=tuple(sorted(keys)),
        )


def _chat_messages(record: Record) -> tuple[Message, ...] | None:
    """Messages of a chat record, or ``None`` when the record is not valid chat data."""
    turns = record.get("messages", record.get("conversations"))
    if not isinstance(turns, list):
        return None
    messages = []
    for turn in turns:
        if not isinstance(turn, dict):
            return None
        role = _SHAREGPT_ROLES.get(str(turn.get("role", turn.get("from", ""))).lower())
        content = turn.get("content", turn.get("value"))
        if role is None or not isinstance(content, str) or not content.strip():
            return None
        messages.append(Message(role, content))
    roles = {message.role for message in messages}
    return tuple(messages) if {Role.USER, Role.ASSISTANT} <= roles else None


def _instruction_messages(record: Record, choice: ColumnChoice) -> tuple[Message, ...] | None:
    instruction = _cell(record, choice.instruction)
    response = _cell(record, choice.response)
    if not instruction or not response:
        return None
    context = _cell(record, choice.context)
    question = f"{instruction}\n\n{context}" if context else instruction
    return question_answer(
        question=question, answer=response, system_prompt=_cell(record, choice.system) or None
    )


def _example(messages: tuple[Message, ...], *, document_id: str, row: int) -> Example:
    return make_example(
        messages=messages,
        source=Provenance(document_id=document_id, row=row),
        kind=ExampleKind.IMPORTED,
    )


def _record_output(
    record: Record, *, row: int, choice: ColumnChoice | None, document_id: str
) -> Section | Example | None:
    if choice is not None and choice.text is not None:
        text = _cell(record, choice.text)
        return Section(text=text, row=row) if text else None
    messages = _chat_messages(record) if choice is None else _instruction_messages(record, choice)
    return None if messages is None else _example(messages, document_id=document_id, row=row)


def records_to_parts(
    *, records: Sequence[Record], document_id: str, columns: ColumnChoice | None
) -> ParsedParts:
    """Examples (chat or instruction data) or text sections from parsed records."""
    if not records:
        raise EmptyFileError("The file holds no records; check that it is the right file.")
    choice = columns if columns is not None else guess_columns(records=records)
    if choice is not None:
        _check_columns(records, choice)
    parts = ParsedParts(records=len(records), columns=tuple(_keys(records).values()))
    if choice is not None:
        parts.column_choice = {
            role: name for role, name in asdict(choice).items() if name is not None
        }
    skipped = []
    for row, record in enumerate(records, start=1):
        output = _record_output(record, row=row, choice=choice, document_id=document_id)
        if isinstance(output, Section):
            parts.sections.append(output)
        elif isinstance(output, Example):
            parts.examples.append(output)
        else:
            skipped.append(row)
    _note_skipped(parts, skipped)
    return parts


def _note_skipped(parts: ParsedParts, skipped: list[int]) -> None:
    if not parts.sections and not parts.examples:
        raise EmptyFileError(
            "No record has usable text in the chosen columns; check the column choice."
        )
    if skipped:
        shown = ", ".join(map(str, skipped[:10])) + (" ..." if len(skipped) > 10 else "")
        parts.notes.append(f"Skipped {len(skipped)} empty or malformed records (rows {shown}).")


def _capped(rows: Iterable[Record], limit: int, notes: list[str]) -> list[Record]:
    records: list[Record] = []
    for record in rows:
        if len(records) == limit:
            notes.append(f"Only the first {limit} records were read.")
            break
        records.append(record)
    return records


def _read_csv(text: str) -> Iterator[Record]:
    """Rows of a delimited table with a header, as dicts; missing trailing fields are empty."""
    try:
        dialect = detect_dialect(text=text)
    except NotATableError as problem:
        raise CorruptFileError(
            f"The file is not a table: {problem}. Fix it or save it again as CSV."
        ) from problem
    reader = csv.DictReader(io.StringIO(text), dialect=dialect)
    try:
        for row in reader:
            yield {key: value for key, value in row.items() if key is not None}
    except csv.Error as error:
        raise CorruptFileError(
            f"The table is malformed near line {reader.line_num} ({error}); fix the quoting or "
            "save it again as CSV."
        ) from error


def _read_json(text: str) -> list[Record]:
    """Records of a JSON document: a list of objects, one chat object, or ``{"key": [...]}``."""
    try:
        value = loads_json(text)
    except json.JSONDecodeError as error:
        raise CorruptFileError(
            f"The JSON is invalid at line {error.lineno}, column {error.colno} ({error.msg})."
        ) from error
    if isinstance(value, dict):
        lists = [item for item in value.values() if isinstance(item, list)]
        value = [value] if "messages" in value or len(lists) != 1 else lists[0]
    if not isinstance(value, list) or not all(isinstance(item, dict) for item in value):
        raise ColumnChoiceError(
            "The JSON must be a list of objects (one per example or text); found something else."
        )
    return value


def _read_jsonl(text: str) -> Iterator[Record]:
    """One object per non-empty line."""
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            value = loads_json(line)
        except json.JSONDecodeError as error:
            raise CorruptFileError(
                f"Line {number} of the JSON Lines file is not valid JSON ({error.msg})."
            ) from error
        if not isinstance(value, dict):
            raise CorruptFileError(f"Line {number} of the JSON Lines file is not an object.")
        yield value


def parse_records(
    *,
    text: str,
    file_type: FileType,
    document_id: str,
    columns: ColumnChoice | None,
    max_records: int,
) -> ParsedParts:
    """Examples or sections from a CSV, JSON or JSON Lines text."""
    readers = {FileType.CSV: _read_csv, FileType.JSON: _read_json, FileType.JSONL: _read_jsonl}
    notes: list[str] = []
    records = _capped(readers[file_type](text), max_records, notes)
    parts = records_to_parts(records=records, document_id=document_id, columns=columns)
    parts.notes[:0] = notes
    return parts


MAX_LINE_PROBLEMS = 20


@dataclass
class ChatLines:
    """A chat-format JSON Lines file read strictly: its examples, and every line that is not one
    (``"Line N …"``, at most :data:`MAX_LINE_PROBLEMS`; ``more_problems`` counts the rest)."""

    examples: list[Example]
    problems: list[str]
    more_problems: int = 0


def _chat_problem(record: Record) -> str | None:
    """Why a record is not a chat example (``None`` when it is one)."""
    turns = record.get("messages", record.get("conversations"))
    if not isinstance(turns, list) or not turns:
        return 'needs "messages": a list of {"role", "content"} objects'
    for number, turn in enumerate(turns, start=1):
        if not isinstance(turn, dict):
            return f"message {number} is not an object"
        role = str(turn.get("role", turn.get("from", "")))
        if role.lower() not in _SHAREGPT_ROLES:
            return f"message {number} has role {role!r}; use system, user or assistant"
        content = turn.get("content", turn.get("value"))
        if not isinstance(content, str) or not content.strip():
            return f"message {number} needs text content"
    return None if _chat_messages(record) else "needs at least one user and one assistant message"


def read_chat_jsonl(*, text: str, document_id: str) -> ChatLines:
    """Chat examples from JSON Lines, one per non-empty line, with the upload's per-line errors
    (invalid JSON, not an object) and the reason a record is not chat data."""
    result = ChatLines(examples=[], problems=[])

    def problem(message: str) -> None:
        if len(result.problems) < MAX_LINE_PROBLEMS:
            result.problems.append(message)
        else:
            result.more_problems += 1

    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            record = loads_json(line)
        except json.JSONDecodeError as error:
            problem(f"Line {number} of the JSON Lines file is not valid JSON ({error.msg}).")
            continue
        if not isinstance(record, dict):
            problem(f"Line {number} of the JSON Lines file is not an object.")
            continue
        why = _chat_problem(record)
        messages = None if why else _chat_messages(record)
        if messages is None:
            problem(f"Line {number}: {why}.")
            continue
        result.examples.append(_example(messages, document_id=document_id, row=number))
    return result
