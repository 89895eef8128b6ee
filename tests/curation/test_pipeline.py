"""A whole curation run on real files: every step leaves its mark, and nothing leaks."""

from __future__ import annotations

import json
import random

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
    assert len({example.example_id for example in examples}) == len(examples)
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


VOCABULARY = (
    "program folder settings file option start terminal project source page change disk log "
    "issue tracker version verbose flag comment report rebuild watch install copy path rights "
    "system server mirror signature key package upload archive release test build network "
    "quickly carefully always never often later first every each small large new old clear "
    "writes reads checks keeps sends makes finds shows opens closes moves runs stops waits"
)


def _prose(seed: int, sentences: int) -> list[str]:
    """Varied sentences of ordinary words: text that passes the quality filter."""
    rng, vocabulary = random.Random(seed), VOCABULARY.split()
    out = []
    for _ in range(sentences):
        words = [rng.choice(vocabulary) for _ in range(rng.randint(12, 20))]
        out.append(" ".join(words).capitalize() + ".")
    return out


README = {title: " ".join(_prose(n, 6)) for n, title in enumerate(
    ["Installing", "Configuring", "Running", "Reporting problems"]
)}  # fmt: skip


def _readme_markdown() -> bytes:
    blocks = [f"## {title}\n\n{body}" for title, body in README.items()]
    return ("# Sitebuilder\n\n" + "\n\n".join(blocks) + "\n").encode()


def _readme_docx() -> bytes:
    # Pandoc-style output without heading styles: one section, so other chunk boundaries.
    blocks = [("p", "Sitebuilder")]
    for title, body in README.items():
        blocks += [("p", title), ("p", body)]
    return make_docx(blocks)


CHAPTERS = {f"Chapter {n}": _prose(100 + n, 24) for n in range(1, 5)}


def _text_edition() -> bytes:
    parts = [f"{title}\n\n" + " ".join(sentences) for title, sentences in CHAPTERS.items()]
    return "\n\n\n".join(parts).encode()


def _html_chapter() -> bytes:
    sentences = CHAPTERS["Chapter 2"]
    paragraphs = "".join(
        f"<p>{' '.join(sentences[k : k + 3])}</p>" for k in range(0, len(sentences) - 2, 3)
    )
    return (
        "<html><head><title>Chapter 2</title></head><body><nav><a href='/'>Home</a> | "
        "<a href='/toc'>Contents</a></nav><main><h1>Chapter 2. Signing</h1>"
        f"{paragraphs}<p>This web edition adds a note on mirrors.</p></main>"
        "<footer>Copyright the authors</footer></body></html>"
    ).encode()


def test_the_same_document_in_two_formats_is_dropped_before_chunking() -> None:
    documents = [
        parse_document(data=_readme_markdown(), filename="README.md", document_id="md"),
        parse_document(data=_readme_docx(), filename="README.docx", document_id="docx"),
        parse_document(data=_text_edition(), filename="book.txt", document_id="book"),
        parse_document(data=_html_chapter(), filename="chapter2.html", document_id="html"),
    ]
    run = curate(documents=documents)
    # Either README may stay (the one with more distinct text does); one of them goes.
    (readme,) = set(run.document_duplicates.dropped) - {"html"}
    assert readme in {"md", "docx"} and "html" in run.document_duplicates.dropped
    kept_documents = {chunk.source.document_id for chunk in run.chunks}
    assert kept_documents == {"md", "docx", "book"} - {readme}
    assert run.reports["html"].chunks == 0
    assert run.assignment["html"] == run.assignment["book"]
    assert run.assignment["md"] == run.assignment["docx"]
    by_dropped = {c.dropped: c for c in run.document_duplicates.clusters}
    assert by_dropped[("html",)].kept == ("book",)
