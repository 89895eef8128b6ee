"""A whole curation run on real files: every step leaves its mark, and nothing leaks."""

from __future__ import annotations

import json

import pytest

from gptstudio.curation.dedupe import DuplicateKind
from gptstudio.curation.documents import ParsedDocument
from gptstudio.curation.examples import ExampleKind
from gptstudio.curation.parsers import parse_document
from gptstudio.curation.pii import PiiCategory
from gptstudio.curation.pipeline import CurationOptions, curate
from gptstudio.curation.splits import Split, check_no_leakage
from tests.curation.builders import make_docx, make_pdf

PAGES = {
    "Mulching": [
        "Mulching is a practice that keeps moisture in the soil and weeds out of the beds.",
        "Straw suits vegetable beds, while bark chips last longer under shrubs and trees.",
        "Spread mulch five centimetres deep and keep it clear of the stems to avoid rot.",
        "Renew organic mulch every spring as worms pull it down into the topsoil.",
    ],
    "Pruning": [
        "Pruning is a task that removes dead or crossing branches to let light into a tree.",
        "Cut just above an outward facing bud with clean, sharp secateurs on a dry day.",
        "Stone fruit trees are pruned in summer to reduce the risk of silver leaf disease.",
        "Burn or bin diseased wood rather than composting it with the kitchen scraps.",
    ],
}


def _manual(title: str, topic: str) -> bytes:
    return make_pdf(
        [
            [
                f"{title} - Field Manual",
                sentence,
                f"Call the {topic.lower()} helpline on (415) 555-26{n:02} for advice on this.",
                f"{title} tip {n}: write down what you did so next season starts well.",
                f"Page {n} of 4",
            ]
            for n, sentence in enumerate(PAGES[topic], start=1)
        ]
    )


@pytest.fixture(scope="module")
def documents() -> list[ParsedDocument]:
    chat = {
        "messages": [
            {"role": "user", "content": "What is loam? Mail me at a@b.org"},
            {"role": "assistant", "content": "Loam is a soil of sand, silt and clay."},
        ]
    }
    docx = make_docx(
        [
            ("h1", "Drip irrigation"),
            (
                "p",
                "Drip irrigation is a method that delivers water directly to the roots of each "
                "plant through small emitters, which saves water in dry climates.",
            ),
            ("h1", "Composting"),
            (
                "p",
                "Compost is a mixture of decayed organic matter used to improve soil structure, "
                "drainage and fertility in every kind of garden bed.",
            ),
        ]
    )
    return [
        parse_document(data=_manual("ACME", "Mulching"), filename="mulch.pdf", document_id="mulch"),
        parse_document(data=_manual("ACME", "Mulching"), filename="copy.pdf", document_id="copy"),
        parse_document(data=_manual("Orbit", "Pruning"), filename="prune.pdf", document_id="prune"),
        parse_document(data=docx, filename="guide.docx", document_id="guide"),
        parse_document(data=json.dumps(chat).encode(), filename="chat.jsonl", document_id="chat"),
    ]


def test_curation_run_end_to_end(documents: list[ParsedDocument]) -> None:
    run = curate(documents=documents, options=CurationOptions(seed=1))
    assert run.reports["mulch"].pii[PiiCategory.PHONE] == 4
    assert run.reports["chat"].pii[PiiCategory.EMAIL] == 1
    assert run.reports["mulch"].cleaning.repeated_lines == ("ACME - Field Manual", "Page 1 of 4")
    # The copy of the manual goes as a whole document, before it is chunked.
    assert run.document_duplicates.dropped == ("copy",)
    assert run.document_duplicates.counts[DuplicateKind.EXACT] == 1
    assert run.reports["copy"].chunks == 0
    assert run.assignment["mulch"] == run.assignment["copy"]
    examples = [example for split in Split for example in run.splits[split]]
    kinds = {example.kind for example in examples}
    assert {ExampleKind.DEFINITION, ExampleKind.HEADING, ExampleKind.IMPORTED} <= kinds
    texts = {document.document_id: document.text for document in run.documents}
    for example in examples:
        if example.source.char_start is not None:
            passage = texts[example.source.document_id][
                example.source.char_start : example.source.char_end
            ]
            assert "[PHONE]" not in example.text or "[PHONE]" in passage
    assert all("555-26" not in example.text for example in examples)
    check_no_leakage(splits=run.splits)


def test_same_input_same_snapshot(documents: list[ParsedDocument]) -> None:
    first = curate(documents=documents)
    assert first.snapshot_hash == curate(documents=documents).snapshot_hash
    assert (
        first.snapshot_hash
        != curate(documents=documents, options=CurationOptions(seed=9)).snapshot_hash
    )
