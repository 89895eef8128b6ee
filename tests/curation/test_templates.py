"""Examples from several columns of a table, through question/answer templates."""

from __future__ import annotations

import dataclasses

import pytest

from gptstudio.curation.errors import ColumnChoiceError, InvalidParameterError
from gptstudio.curation.examples import ExampleKind, Role
from gptstudio.curation.parsers import parse_document
from gptstudio.curation.pipeline import curate
from gptstudio.curation.splits import Split
from gptstudio.curation.templates import RowTemplate, template_examples

PRODUCTS = (
    "sku,name,price,description\n"
    'A1,Trowel,£8,"A hand trowel with an ash handle, for planting bulbs."\n'
    'A2,Hoe,£21,"A Dutch hoe that cuts weeds below the surface, pushed, not pulled."\n'
    "A3,Rake,,A rake with twelve steel tines.\n"
    'A4,Sieve,£12,"A garden sieve with a 6 mm mesh\nfor potting compost."\n'
).encode()
TEMPLATE = RowTemplate(
    question="What does the {name} cost, and what is it?",
    answer="The {name} costs {price}. {description}",
)


def test_a_row_becomes_one_example_from_several_columns() -> None:
    result = template_examples(
        data=PRODUCTS, filename="products.csv", document_id="p", template=TEMPLATE
    )
    assert TEMPLATE.columns == ("name", "price", "description")
    first = result.examples[0]
    assert [m.role for m in first.messages] == [Role.USER, Role.ASSISTANT]
    assert first.messages[0].content == "What does the Trowel cost, and what is it?"
    assert first.messages[1].content == (
        "The Trowel costs £8. A hand trowel with an ash handle, for planting bulbs."
    )
    assert first.kind == ExampleKind.TEMPLATE and first.source.row == 1
    assert "6 mm mesh\nfor potting compost." in result.examples[-1].messages[1].content
    assert [e.source.row for e in result.examples] == [1, 2, 4]
    assert result.skipped_rows == (3,)  # the rake has no price
    assert len({e.example_id for e in result.examples}) == 3


def test_template_examples_go_through_curation_with_the_document() -> None:
    document = parse_document(data=PRODUCTS, filename="products.csv", document_id="p")
    made = template_examples(
        data=PRODUCTS, filename="products.csv", document_id="p", template=TEMPLATE
    )
    document = dataclasses.replace(document, examples=made.examples)
    run = curate(documents=[document])
    examples = [e for split in Split for e in run.splits[split]]
    assert sum(e.kind == ExampleKind.TEMPLATE for e in examples) == 3


def test_a_template_naming_a_missing_column_says_which_columns_exist() -> None:
    template = RowTemplate(question="What is {name}?", answer="{colour}")
    with pytest.raises(ColumnChoiceError, match="colour") as caught:
        template_examples(data=PRODUCTS, filename="p.csv", document_id="p", template=template)
    assert "price" in caught.value.columns


@pytest.mark.parametrize(
    ("question", "answer"),
    [("What is it?", "Nothing to fill in."), ("What is {name!r}?", "{price}"), ("{", "{x}")],
)
def test_malformed_templates_are_refused(question: str, answer: str) -> None:
    with pytest.raises(InvalidParameterError):
        RowTemplate(question=question, answer=answer)
