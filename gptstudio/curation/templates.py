"""Examples from several columns of a table: a question and an answer written as templates.

A product list (name, price, description) holds no question column, yet every row can teach
"What does {name} cost?" -> "{name} costs {price}. {description}". :class:`RowTemplate` names
the columns in ``{braces}``; :func:`template_examples` reads each named column through the
ordinary parser (:func:`parsers.parse_document` with a text column choice, so CSV dialects,
encodings, JSON and JSON Lines work as for any upload) and fills the templates row by row. Rows
with an empty cell in a used column are skipped and counted.
"""

from __future__ import annotations

import string
from collections.abc import Mapping
from dataclasses import dataclass

from gptstudio.curation.errors import EmptyFileError, InvalidParameterError
from gptstudio.curation.examples import (
    Example,
    ExampleKind,
    Provenance,
    make_example,
    question_answer,
)
from gptstudio.curation.parsers import ColumnChoice, ParseLimits, parse_document


def _fields(template: str) -> tuple[str, ...]:
    try:
        parsed = list(string.Formatter().parse(template))
    except ValueError as error:
        raise InvalidParameterError(f"The template {template!r} is malformed ({error}).") from error
    names = []
    for _, name, spec, conversion in parsed:
        if name is None:
            continue
        if not name or spec or conversion or not name.strip():
            raise InvalidParameterError(
                f"Write columns in the template as {{column name}}; {template!r} has another form."
            )
        names.append(name)
    return tuple(names)


@dataclass(frozen=True)
class RowTemplate:
    """How one row becomes one example; ``{column}`` is replaced by that row's cell."""

    question: str
    answer: str
    system: str | None = None

    def __post_init__(self) -> None:
        if not _fields(self.question) and not _fields(self.answer):
            raise InvalidParameterError("The template must use at least one {column}.")
        if not self.question.strip() or not self.answer.strip():
            raise InvalidParameterError("The question and the answer template must not be empty.")

    @property
    def columns(self) -> tuple[str, ...]:
        """Every column the templates use, in order of first use."""
        used = (*_fields(self.question), *_fields(self.answer), *_fields(self.system or ""))
        return tuple(dict.fromkeys(used))


@dataclass(frozen=True)
class TemplateResult:
    """The examples, and the rows left out because a used cell was empty."""

    examples: tuple[Example, ...]
    skipped_rows: tuple[int, ...]


def _column(data: bytes, filename: str, name: str, limits: ParseLimits | None) -> dict[int, str]:
    try:
        document = parse_document(
            data=data, filename=filename, limits=limits, columns=ColumnChoice(text=name)
        )
    except EmptyFileError:
        return {}  # every cell of this column is empty: each row is skipped below
    return {section.row: section.text for section in document.sections if section.row}


def template_examples(
    *,
    data: bytes,
    filename: str,
    document_id: str,
    template: RowTemplate,
    limits: ParseLimits | None = None,
) -> TemplateResult:
    """One example per row of the table in ``data``, from the columns the template names.

    Raises the parsers' errors (e.g. ``ColumnChoiceError`` naming the columns there are when a
    template names one that is not in the file)."""
    cells: dict[str, Mapping[int, str]] = {
        name: _column(data, filename, name, limits) for name in template.columns
    }
    rows = sorted({row for column in cells.values() for row in column})
    examples, skipped = [], []
    for row in rows:
        values = {name: cells[name].get(row, "") for name in template.columns}
        if not all(values.values()):
            skipped.append(row)
            continue
        messages = question_answer(
            question=template.question.format_map(values).strip(),
            answer=template.answer.format_map(values).strip(),
            system_prompt=template.system.format_map(values) if template.system else None,
        )
        source = Provenance(document_id=document_id, row=row)
        examples.append(make_example(messages=messages, source=source, kind=ExampleKind.TEMPLATE))
    return TemplateResult(tuple(examples), tuple(skipped))
