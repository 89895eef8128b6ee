"""Measure the examples and the dedupe of "documents to dataset" on a labelled set.

Run from the repository root (``PYTHONPATH=.`` or after ``make install``):
``.venv/bin/python bench/curation_examples.py``

Prints, and exits 1 when a target is missed:

* extracted-pair precision and recall (target >= 0.9 each): the explicit question/answer pairs
  and the imported CSV rows that ``curate`` produces, against pairs labelled by hand. A pair
  counts when its question starts with the labelled question and its answer starts and ends
  with the labelled words (so an answer cut at a line break, or one that runs into the next
  question, is wrong). Every extracted pair that matches no label is a false positive;
* the share of examples a reviewer would keep, by written rules (a question with no bullet or
  numbering, and no broken word in questions the rules made; an answer of three words or more
  that ends at a sentence end or at the end of its block; no blanked placeholder; no cloze
  begun mid-sentence), over every example of the labelled set and of the real documents;
* dedupe chaining: overlapping windows of one text and a chain of similar table rows, how many
  stay, and the lowest similarity of a dropped text to the kept text it went for;
* the same document in two formats: a real README in Markdown and as DOCX, and real HTML
  chapters of a manual next to its Info (text) edition: documents dropped before chunking, and
  the chunks of the second format that reach the dataset with and without that step.

Real files, all from Debian packages installed on this machine (``/usr/share/doc`` and
``/usr/share/info``), licences as their ``copyright`` files state:

* ``xz-utils/faq.txt.gz``: XZ Utils FAQ, public domain (xz-utils copyright: "Most of the source
  has been put into the public domain");
* ``base-files/FAQ``: Debian base-files FAQ, GPL-2+ (base-files copyright);
* ``socat/FAQ``: socat FAQ, GPL-2 (socat copyright);
* ``zstd/README.md.gz``: Zstandard README, BSD-3-clause or GPL-2 (zstd copyright);
* ``libffi8/html/*.html`` and ``/usr/share/info/libffi.info.gz``: the libffi manual in HTML and
  Info, Expat (libffi8 copyright).

Files that are missing are skipped with a note (the numbers then cover less).
"""

from __future__ import annotations

import csv
import gzip
import io
import random
import re
import sys
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import docx

from gptstudio.curation.chunking import ChunkingOptions
from gptstudio.curation.dedupe import DedupeOptions, DocumentDedupeOptions, find_duplicates
from gptstudio.curation.documents import ParsedDocument
from gptstudio.curation.examples import Example, ExampleKind
from gptstudio.curation.parsers import parse_document
from gptstudio.curation.pipeline import CurationOptions, curate
from gptstudio.curation.qa import BLANK
from gptstudio.curation.shingles import words

DOC = Path("/usr/share/doc")
TARGET = 0.9


@dataclass(frozen=True)
class Label:
    """A labelled pair: the question's start, and the answer's first and last words."""

    question: str
    answer_start: str
    answer_end: str


@dataclass(frozen=True)
class Labelled:
    name: str
    data: bytes
    labels: tuple[Label, ...]


# --- the labelled set ---------------------------------------------------------------------

XZ_FAQ = (
    Label("What do the letters XZ mean?", "Nothing. They are", "no deeper meaning."),
    Label("What are LZMA and LZMA2?", "LZMA stands for Lempel-Ziv-Markov", ".xz file format."),
    Label("There are many LZMA related projects.", "7-Zip and LZMA SDK", "links.html>."),
    Label("Why is liblzma named liblzma", "When the designing of", "wasn't changed."),
    Label("Do XZ Utils support the .7z format?", "No. Use 7-Zip", "handle .7z files."),
    Label("I have many .tar.7z files.", 'In the "extra" directory,', "the original file!"),
    Label("I have many .lzma files.", "For now, no.", "offer some money."),
    Label("I have installed xz, but my tar", "xz -dc foo.tar.xz", "tar xf -"),
    Label("Can I recover parts of a broken", "It may be possible", "no recovery program yet."),
    Label("Is (some part of) XZ Utils patented?", "Lasse Collin is not", "third party patent(s)."),
    Label("Where can I find documentation", "The .xz format is", "used in Deflate."),
    Label("I cannot find BCJ and BCJ2 filters.", 'BCJ filter is called "x86"', "output stream."),
    Label('I need to use a script that runs "xz -9".', "Set a default memory", "resource limits."),
    Label("How do I create files that can be", "See the documentation in", "memory usage."),
    Label("How is multi-threaded compression", "The simplest method is", "also useful."),
    Label("I told xz to use many threads", "Since multi-threaded compression", "in the file."),
    Label("How do I build a program that needs", "liblzmadec is part of", "tukaani.org/lzma/>."),
    Label("The default build of liblzma is too big.", "Give --enable-small to", "embedded.html>."),
)
_SID = "That would be nice,"
BASE_FILES_FAQ = (
    Label("I upgraded my system to the testing", _SID, "whatever is appropriate)."),
    Label("I upgraded my system to the unstable", _SID, "whatever is appropriate)."),
    Label('Why "trixie/sid" and not', "The codename is a", "changes over time."),
    Label("Ok, but how do I know which", "If you are running", "much better way."),
    Label("There is a new point release", "Yes. The release managers", "tools like reportbug."),
    Label("After upgrading my system recently,", "Those files are configuration", "mechanism."),
    Label('Why isn\'t license "foo" included', "I delegate such decisions", "a new one."),
    Label("I upgraded from woody to sarge.", "Achieving FHS compliance by", "systems only."),
)
SOCAT_FAQ = (
    Label("What is the clue of socat?", "socat probably doesn't have", "differently under UNIX."),
    Label("What does the prefix XIO mean?", 'XIO means "extended input/output".', "of socat."),
    Label("Is there a Windows port of socat", "Try with Cygwin from", "upgrade to Linux."),
    Label("I succeeded to configure and make socat,", "You need a bash", "in $PATH)"),
    Label("configure disables readline", "For include locations, use", "./configure; make"),
    Label("I succeeded to make socat, but the test.sh", "Probably your socat", "generate a key."),
    Label("When I specify a dual address", "'!' is appearently used", "your (bash) profile."),
    Label(
        "On Solaris, socat was built successfully, but when started, it gets killed",
        "The configure script finds",
        "./configure; make",
    ),
    Label(
        "On Solaris, socat was built successfully, but when started, an assertion",
        "Probably, in a second",
        "./configure; make",
    ),
    Label("A socat process, run in background", "The terminal (window) might", "situation."),
)

HTML_FAQ = b"""<!doctype html><html><head><title>Garden club FAQ</title></head><body>
<nav><a href="/">Home</a> | <a href="/faq">FAQ</a> | <a href="/join">Join</a></nav>
<main><h1>Garden club: frequently asked questions</h1>
<p>These answers cover membership, the allotments and the seed library of the club.</p>
<h2>Membership</h2>
<h3>How much does membership cost?</h3>
<p>A year of membership costs twenty pounds. Students and pensioners pay ten pounds.</p>
<h3>Can I join in the middle of the year?</h3>
<p>Yes. You pay for the months that are left, rounded up to whole months.</p>
<h2>Allotments</h2>
<dl>
<dt>How long is the waiting list for an allotment?</dt>
<dd>About eighteen months at the moment, shorter for half plots.</dd>
<dt>May I keep chickens on my plot?</dt>
<dd>No, animals are not allowed on the allotments under the lease.</dd>
</dl>
<details><summary>Is there water on every plot?</summary>
<p>Every second plot has a tap, and rain butts are free for members.</p></details>
<div itemscope itemtype="https://schema.org/Question"><h3 itemprop="name">Who mows the paths?</h3>
<div itemprop="acceptedAnswer" itemscope itemtype="https://schema.org/Answer">
<p itemprop="text">Volunteers mow the paths on the first Saturday of each month.</p></div></div>
<p><strong>Q:</strong> What happens if I neglect my plot?</p>
<p><strong>A:</strong> You get a reminder, and after two months the plot is offered to the next
person on the list.</p>
</main><footer>Registered charity. Contact the secretary.</footer></body></html>"""
HTML_FAQ_LABELS = (
    Label("How much does membership cost?", "A year of membership", "pay ten pounds."),
    Label("Can I join in the middle of the year?", "Yes. You pay", "to whole months."),
    Label("How long is the waiting list", "About eighteen months at", "for half plots."),
    Label("May I keep chickens on my plot?", "No, animals are not", "under the lease."),
    Label("Is there water on every plot?", "Every second plot has", "free for members."),
    Label("Who mows the paths?", "Volunteers mow the paths", "of each month."),
    Label("What happens if I neglect my plot?", "You get a reminder,", "on the list."),
)

MARKDOWN_FAQ = b"""Printer help
============

Why does the printer print blank pages?
---------------------------------------

The cartridge is empty or its tape was not removed. Take the cartridge out
and check it for tape.

**Q:** How do I print on both sides?
**A:** Choose "Two-sided" in the print dialog; the printer turns the paper
itself.

Question: Which paper weights work?
Answer: Paper from 60 to 120 g/m2. Heavier card jams the feeder.

Q. Can I print from my phone?

Q. Can I print from a tablet?

A. Yes, from both: install the vendor app and join the printer's network.

Toner
: The powder a laser printer melts onto the paper.

Do I need to switch the printer off at night?

No. It sleeps after ten minutes and uses under one watt.

Before you call us, did you restart the printer? Most problems go away then.
"""
MARKDOWN_FAQ_LABELS = (
    Label("Why does the printer print blank pages?", "The cartridge is empty", "it for tape."),
    Label("How do I print on both sides?", 'Choose "Two-sided" in', "the paper itself."),
    Label("Which paper weights work?", "Paper from 60 to", "jams the feeder."),
    Label("Can I print from my phone?", "Yes, from both:", "the printer's network."),
    Label("Can I print from a tablet?", "Yes, from both:", "the printer's network."),
    Label("What is Toner?", "The powder a laser", "onto the paper."),
    Label("Do I need to switch the printer off", "No. It sleeps after", "under one watt."),
)

MANUAL = b"""Using the backup tool
=====================

A snapshot is a read-only copy of a folder at one moment. The tool keeps
snapshots for thirty days and then removes the oldest ones first, unless
you pin them.

Why keep thirty days? Most people notice a lost file within a week, and a
month covers holidays. You can change the period in the settings.

To restore a file, open the snapshot list and pick the date:

    $ backup list
    Which snapshot? [latest]
    $ backup restore --date 2024-03-01 notes.txt

A retention policy is the rule that decides how long snapshots stay. The
default policy keeps daily snapshots for a month and weekly ones for a year.
"""

CSV_FAQ_ROWS = [
    ("What is the return period?", "You can return items within 30 days of delivery."),
    ("Do you ship abroad?", "Yes, to every country in the European Union."),
    ("How do I track my parcel?", "Use the tracking link in your dispatch e-mail."),
    ("Can I change my order?", "Yes, until it is packed, usually within two hours."),
    ("Which payment methods do you take?", "Cards, bank transfer and PayPal."),
]


def _csv_faq() -> bytes:
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(["Question", "Answer", "Category"])
    for question, answer in CSV_FAQ_ROWS:
        writer.writerow([question, answer, "shop"])
    return buffer.getvalue().encode()


def _real(path: Path) -> bytes | None:
    if not path.exists():
        print(f"  (skipped, not installed: {path})")
        return None
    data = path.read_bytes()
    return gzip.decompress(data) if path.suffix == ".gz" else data


def labelled_set() -> list[Labelled]:
    """The files with their labels: three real FAQs, and pages, a manual and a CSV of ours."""
    items = [
        Labelled("garden-faq.html", HTML_FAQ, HTML_FAQ_LABELS),
        Labelled("printer-faq.md", MARKDOWN_FAQ, MARKDOWN_FAQ_LABELS),
        Labelled("backup-manual.md", MANUAL, ()),
        Labelled(
            "shop-faq.csv",
            _csv_faq(),
            tuple(Label(q, " ".join(a.split()[:3]), a.split()[-1]) for q, a in CSV_FAQ_ROWS),
        ),
    ]
    for path, name, labels in (
        (DOC / "xz-utils/faq.txt.gz", "xz-faq.txt", XZ_FAQ),
        (DOC / "base-files/FAQ", "base-files-faq.txt", BASE_FILES_FAQ),
        (DOC / "socat/FAQ", "socat-faq.txt", SOCAT_FAQ),
    ):
        data = _real(path)
        if data is not None:
            items.append(Labelled(name, data, labels))
    return items


# --- measuring ----------------------------------------------------------------------------


def _plain(text: str) -> str:
    return " ".join(text.split())


def _matches(example: Example, label: Label) -> bool:
    question = _plain(example.messages[-2].content)
    answer = _plain(example.messages[-1].content)
    return (
        question.startswith(_plain(label.question))
        and answer.startswith(_plain(label.answer_start))
        and answer.endswith(_plain(label.answer_end))
    )


@dataclass
class Score:
    labels: int = 0
    extracted: int = 0
    found: int = 0
    correct: int = 0

    def add(self, extracted: Sequence[Example], labels: Sequence[Label]) -> None:
        self.labels += len(labels)
        self.extracted += len(extracted)
        self.found += sum(any(_matches(e, label) for e in extracted) for label in labels)
        self.correct += sum(any(_matches(e, label) for label in labels) for e in extracted)

    @property
    def precision(self) -> float:
        return self.correct / self.extracted if self.extracted else 1.0

    @property
    def recall(self) -> float:
        return self.found / self.labels if self.labels else 1.0


_PAIR_KINDS = (ExampleKind.EXPLICIT, ExampleKind.IMPORTED)
_MADE_QUESTIONS = (ExampleKind.DEFINITION, ExampleKind.HEADING, ExampleKind.CLOZE)
_BROKEN = re.compile(
    r"\b(?!(?:a|i|an|as|at|be|by|do|go|if|in|is|it|me|my|no|of|on|or|so|to|up|us|we)\b)[a-z]{1,2}\b"
)
_ENDS = (".", "!", "?", ":", ")", '"', "'", "`", ">", "]")


def reviewer_keeps(example: Example) -> bool:
    """The written rules a reviewer applies to one example."""
    question = example.messages[-2].content
    answer = example.messages[-1].content.strip()
    if re.match(r"^\s*(?:[-*•·▪]|\d+(?:\.\d+)*\.?\s)", question):
        return False  # a bullet or section number in the question
    written = re.sub(r"\w+['’]\w+", "", question.replace(BLANK, ""))  # "don't", "I'm"
    if example.kind in _MADE_QUESTIONS and _BROKEN.search(written):
        return False  # "What is the ar gument?"
    if example.kind == ExampleKind.CLOZE:
        sentence = question.removeprefix("Fill in the blank: ")
        placeholder = re.search(r"\[[A-Z_]+\]|<\w+>|\{\w+\}", sentence.replace(BLANK, "x"))
        return sentence[:1].isupper() and not (placeholder and answer.isupper())
    if len(answer.split()) < 3 and example.kind != ExampleKind.IMPORTED:
        return False
    last_line = answer.splitlines()[-1].strip()
    code_like = last_line.startswith(("$", "make", "export")) or "|" in last_line
    return answer.endswith(_ENDS) or code_like


def measure_pairs(items: Sequence[Labelled]) -> tuple[Score, list[Example]]:
    score = Score()
    examples: list[Example] = []
    for item in items:
        document = parse_document(data=item.data, filename=item.name, document_id=item.name)
        run = curate(documents=[document])
        produced = [e for split in run.splits.values() for e in split]
        examples.extend(produced)
        # Extraction is measured before example dedupe: two questions that share one answer
        # (base-files) are both extracted, then one of them goes as a near duplicate.
        made = [*run.synthesis.examples, *run.documents[0].examples]
        extracted = [e for e in made if e.kind in _PAIR_KINDS]
        before = (score.found, score.correct)
        score.add(extracted, item.labels)
        found, correct = score.found - before[0], score.correct - before[1]
        print(
            f"  {item.name:22} labelled {len(item.labels):3}  extracted {len(extracted):3}  "
            f"found {found:3}  correct {correct:3}  (all examples: {len(produced)})"
        )
    return score, examples


def real_documents() -> list[ParsedDocument]:
    """Real documents with few explicit pairs, for the reviewer share of the other kinds."""
    documents = []
    for path in (
        DOC / "zstd/README.md.gz",
        DOC / "libffi8/html/Introduction.html",
        DOC / "libffi8/html/The-Basics.html",
        DOC / "libffi8/html/Types.html",
        DOC / "sed/sedfaq.txt.gz",
    ):
        data = _real(path)
        if data is not None:
            name = path.name.removesuffix(".gz")
            name = name if "." in name else f"{name}.txt"
            documents.append(parse_document(data=data, filename=name, document_id=name))
    return documents


def reviewer_share(examples: Sequence[Example]) -> None:
    kept = Counter(e.kind for e in examples if reviewer_keeps(e))
    total = Counter(e.kind for e in examples)
    for kind in ExampleKind:
        if total[kind]:
            print(f"  {kind.value:10} {kept[kind]:4} of {total[kind]:4} kept")
    share = sum(kept.values()) / max(sum(total.values()), 1)
    print(f"  reviewer keeps {share:.2f} of {sum(total.values())} examples")


# --- dedupe -------------------------------------------------------------------------------


def _jaccard(first: str, second: str) -> float:
    def grams(text: str) -> set[tuple[str, ...]]:
        tokens = words(text=text)
        return {tuple(tokens[i : i + 3]) for i in range(len(tokens) - 2)}

    a, b = grams(first), grams(second)
    return len(a & b) / len(a | b) if a | b else 1.0


def chaining() -> None:
    rng = random.Random(5)
    tokens = [f"w{rng.randrange(100_000)}" for _ in range(200)]
    windows = {f"w{k:02d}": " ".join(tokens[k * 10 : k * 10 + 60]) for k in range(12)}
    rows = {f"r{k}": f"item {k} item {k + 1} item {k + 2} item {k + 3}" for k in range(5000)}
    for name, texts, threshold in (("12 overlapping windows", windows, 0.7),
                                   ("5,000 chained table rows", rows, 0.5)):  # fmt: skip
        result = find_duplicates(texts=texts, options=DedupeOptions(threshold=threshold))
        worst = min(
            (pair.similarity for cluster in result.clusters for pair in cluster.pairs),
            default=1.0,
        )
        exact = min(
            (
                max(_jaccard(texts[d], texts[k]) for k in cluster.kept)
                for cluster in result.clusters
                for d in cluster.dropped
            ),
            default=1.0,
        )
        print(
            f"  {name:26} kept {len(result.kept):5}, dropped {len(result.dropped):5}; lowest "
            f"similarity of a dropped text to its kept one {worst:.2f} (exact {exact:.2f}, "
            f"threshold {threshold})"
        )


def _markdown_to_docx(markdown: str) -> bytes:
    """What a plain conversion makes of a README: headings as headings, the rest as text."""
    document = docx.Document()
    for block in re.split(r"\n\s*\n", markdown):
        heading = re.match(r"^(#{1,3})\s+(.*)", block)
        if heading:
            document.add_heading(heading[2], level=len(heading[1]))
        elif block.strip():
            text = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", " ".join(block.split()))
            document.add_paragraph(text)
    buffer = io.BytesIO()
    document.save(buffer)
    return buffer.getvalue()


def _chunks_of(documents: Sequence[ParsedDocument], second: set[str], on: bool) -> int:
    options = CurationOptions(
        document_dedupe=DocumentDedupeOptions(enabled=on),
        chunking=ChunkingOptions(),
    )
    run = curate(documents=documents, options=options)
    return sum(1 for chunk in run.chunks if chunk.source.document_id in second)


def cross_format() -> None:
    readme = _real(DOC / "zstd/README.md.gz")
    if readme is not None:
        documents = [
            parse_document(data=readme, filename="README.md", document_id="README.md"),
            parse_document(
                data=_markdown_to_docx(readme.decode()),
                filename="README.docx",
                document_id="README.docx",
            ),
        ]
        _report_pair("zstd README, Markdown and DOCX", documents)
    info = _real(Path("/usr/share/info/libffi.info.gz"))
    html_files = sorted((DOC / "libffi8/html").glob("*.html"))
    if info is not None and html_files:
        documents = [parse_document(data=info, filename="libffi.txt", document_id="info")]
        for path in html_files:
            if path.name not in {"index.html", "Index.html"}:
                documents.append(
                    parse_document(
                        data=path.read_bytes(), filename=path.name, document_id=path.name
                    )
                )
        _report_pair(f"libffi: {len(documents) - 1} HTML chapters and Info", documents)


def _report_pair(name: str, documents: Sequence[ParsedDocument]) -> None:
    run = curate(documents=documents)
    dropped = run.document_duplicates.dropped
    second = set(dropped)
    shares = [pair.similarity for c in run.document_duplicates.clusters for pair in c.pairs]
    lowest = f", lowest containment {min(shares):.2f}" if shares else ""
    without = _chunks_of(documents, second, on=False)
    with_it = _chunks_of(documents, second, on=True)
    print(
        f"  {name}: {len(dropped)} of {len(documents)} documents dropped before chunking"
        f"{lowest}; chunks of the dropped documents that reach the dataset: {without} without "
        f"document dedupe (chunk dedupe alone), {with_it} with it"
    )


def main() -> int:
    print("Extracted question/answer pairs against labels:")
    score, examples = measure_pairs(labelled_set())
    print(
        f"  precision {score.precision:.3f} ({score.correct}/{score.extracted}), "
        f"recall {score.recall:.3f} ({score.found}/{score.labels})"
    )
    print("Reviewer share, labelled set and real documents (written rules):")
    extra = curate(documents=real_documents())
    reviewer_share([*examples, *(e for split in extra.splits.values() for e in split)])
    print("Dedupe chaining:")
    chaining()
    print("The same document in two formats:")
    cross_format()
    missed = [
        name
        for name, value in (("precision", score.precision), ("recall", score.recall))
        if value < TARGET
    ]
    if missed:
        print(f"Missed the {TARGET} target: {', '.join(missed)}")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
