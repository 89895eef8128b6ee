"""Measure the quality of documents-to-dataset curation on real files, one function a measurement.

Run from the repository root after ``make install-dev`` (or with ``PYTHONPATH=.``):
``.venv/bin/python bench/curation_quality.py [--pdf FILE ...] [--repeats 2]``

* :func:`measure_pdf_extractors`: for the chosen PDF extractor (PDFium via pypdfium2, through
  :func:`gptstudio.curation.parsers.pdf.parse_pdf`) and the other candidates (pypdf, pdfminer.six,
  pdfplumber), the share of letters run together into word-less runs
  (:func:`~gptstudio.curation.parsers.pdf.run_together_share`) and pages per second (the fastest
  of ``--repeats`` runs, as ``timeit`` does, so load from other processes does not decide it).
  Targets for the chosen one: run-together <= 2% on every file, >= 100 pages/s.
* :func:`measure_pii`: recall and false positives per 10,000 words of personal-data scrubbing
  on ``tests/curation/data/pii_labelled.jsonl`` plus the shipped manual excerpts (technical
  prose, their e-mail addresses labelled), and :func:`measure_pii_on_prose`: non-e-mail hits in
  Debian changelogs and manuals under /usr/share/doc when present (all false: they hold no such
  data, only versions, counts and dates). Targets: recall >= 0.95, <= 1 false positive per
  10,000 words of prose.
* the examples and dedupe measurements of ``bench/curation_examples.py`` (extracted-pair
  precision and recall against hand labels, the share of examples a reviewer would keep, dedupe
  chaining, the same document in two formats), run from here.
* :func:`measure_end_to_end`: curation MB/s end to end through the app's worker: a fresh
  embedded installation (SQLite, the SQLite Huey queues) with the app's own queue consumers in
  their own processes, as ``make run`` starts them; a creator uploads every file of
  :data:`END_TO_END_FILES` that exists here through the services, the worker parses them, and a
  curation run on the default settings turns them into examples. Printed: megabytes, upload →
  parsed and upload → curation done, in MB/s (wall time on this machine, whatever its load).

Real files and where they come from: ``tests/curation/data/README.md`` (excerpts of the "Guide
for Debian Maintainers", Debian package debmake-doc, Expat licence). When the system has them,
the whole manuals (``/usr/share/doc/debmake-doc/debmake-doc.{en,de}.pdf``, Expat) and up to four
other LaTeX-made PDFs under ``/usr/share/doc`` (plain or gzipped, producer pdfTeX/XeTeX/LuaTeX;
each under its package's licence in ``/usr/share/doc/<package>/copyright``) are added and named
in the output. The script exits 1 when a target is missed.
"""

from __future__ import annotations

import argparse
import gzip
import io
import json
import logging
import re
import subprocess
import sys
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from gptstudio.curation.parsers import parse_document
from gptstudio.curation.parsers.limits import ParseLimits
from gptstudio.curation.parsers.pdf import parse_pdf, run_together_share
from gptstudio.curation.pii import scrub_text

ROOT = Path(__file__).resolve().parent.parent
DATA = ROOT / "tests" / "curation" / "data"
SHIPPED_PDFS = ("debmake-doc-en-excerpt.pdf", "debmake-doc-de-excerpt.pdf")
SYSTEM_DOCS = Path("/usr/share/doc")
LATEX_PRODUCER = re.compile(rb"/Producer\s*\((?:pdfTeX|XeTeX|LuaTeX|dvipdfm)", re.IGNORECASE)
MAX_RUN_TOGETHER = 0.02
MIN_PAGES_PER_SECOND = 100.0
MIN_PII_RECALL = 0.95
MAX_PII_FALSE_PER_10K = 1.0
# Every e-mail address in the shipped manual excerpts is a real address (personal data by policy).
MANUAL_ADDRESSES = {
    "debmake-doc-apa.en.html": ["foo@example.org", "osamu@debian.org"],
    "debmake-doc-en-excerpt.pdf": [
        "debian-chinese-gb@lists.debian.org", "debian-devel@debian.or.jp",
        "debian-devel@lists.debian.org", "debian-mentors@lists.debian.org",
        "your.email.address@example.org", "yourname@example.com",
    ],
}  # fmt: skip

Extractor = Callable[[bytes], list[str]]


def chosen(data: bytes) -> list[str]:
    """The app's own reader: PDFium through parse_pdf (hyphen joins and line ends included)."""
    return [section.text for section in parse_pdf(data=data, limits=ParseLimits()).sections]


def with_pypdf(data: bytes) -> list[str]:
    from pypdf import PdfReader

    return [page.extract_text() for page in PdfReader(io.BytesIO(data)).pages]


def with_pdfminer(data: bytes) -> list[str]:
    from pdfminer.high_level import extract_text

    return extract_text(io.BytesIO(data)).split("\f")


def with_pdfplumber(data: bytes) -> list[str]:
    import pdfplumber

    with pdfplumber.open(io.BytesIO(data)) as pdf:
        return [page.extract_text() or "" for page in pdf.pages]


EXTRACTORS: dict[str, Extractor] = {
    "pypdfium2 (chosen)": chosen,
    "pypdf": with_pypdf,
    "pdfminer.six": with_pdfminer,
    "pdfplumber": with_pdfplumber,
}


@dataclass(frozen=True)
class ExtractorResult:
    name: str
    pages: int
    pages_per_second: float
    """Per second of this process's CPU time: other processes on a shared machine do not count."""
    pages_per_wall_second: float
    run_together: float
    """Over all files."""
    per_file: dict[str, float]
    """Run-together share per file name."""


def latex_pdfs(root: Path = SYSTEM_DOCS, limit: int = 6) -> list[Path]:
    """LaTeX-made PDFs under ``root`` (plain or gzipped), smallest first."""
    found = []
    for path in sorted(root.rglob("*.pdf*"), key=lambda p: p.stat().st_size):
        if path.suffix not in (".pdf", ".gz") or path.stat().st_size > 2_000_000:
            continue
        data = read_pdf(path)
        if data is not None and LATEX_PRODUCER.search(data):
            found.append(path)
        if len(found) == limit:
            break
    return found


def system_pdfs(root: Path = SYSTEM_DOCS) -> list[Path]:
    """The whole debmake-doc manuals (``apt-get install debmake-doc``; made with dblatex, no
    space glyphs: the hard case) when installed, and other LaTeX-made PDFs found there."""
    manuals = [root / "debmake-doc" / f"debmake-doc.{lang}.pdf" for lang in ("en", "de")]
    return [path for path in manuals if path.exists()] + latex_pdfs(root, limit=4)


def read_pdf(path: Path) -> bytes | None:
    try:
        data = gzip.decompress(path.read_bytes()) if path.suffix == ".gz" else path.read_bytes()
    except (OSError, EOFError, gzip.BadGzipFile):
        return None
    return data if data.startswith(b"%PDF-") else None


def measure_pdf_extractors(
    files: Sequence[Path], *, repeats: int = 2, extractors: dict[str, Extractor] = EXTRACTORS
) -> list[ExtractorResult]:
    """Run-together share (per file and overall) and pages/s of each extractor on the same PDFs."""
    documents = {path.name: data for path in files if (data := read_pdf(path)) is not None}
    results = []
    for name, extract in extractors.items():
        best, wall, texts = float("inf"), float("inf"), {}
        for _ in range(repeats):
            started, cpu = time.perf_counter(), time.process_time()
            texts = {file: extract(data) for file, data in documents.items()}
            best = min(best, time.process_time() - cpu)
            wall = min(wall, time.perf_counter() - started)
        pages = sum(len(file_pages) for file_pages in texts.values())
        per_file = {file: run_together_share(text="\n".join(t)) for file, t in texts.items()}
        overall = run_together_share(text="\n".join("\n".join(t) for t in texts.values()))
        results.append(ExtractorResult(name, pages, pages / best, pages / wall, overall, per_file))
    return results


@dataclass(frozen=True)
class PiiResult:
    labelled: int
    found: int
    false_positives: int
    words: int

    @property
    def recall(self) -> float:
        return self.found / self.labelled if self.labelled else 1.0

    @property
    def false_per_10k_words(self) -> float:
        return self.false_positives / self.words * 10_000 if self.words else 0.0


def pii_cases(data: Path = DATA) -> list[dict[str, object]]:
    """The labelled set plus the shipped manual excerpts with their e-mail addresses labelled."""
    lines = (data / "pii_labelled.jsonl").read_text(encoding="utf-8").splitlines()
    cases: list[dict[str, object]] = [json.loads(line) for line in lines if line.strip()]
    for name, addresses in MANUAL_ADDRESSES.items():
        text = parse_document(data=(data / name).read_bytes(), filename=name).text
        values = [address for address in addresses for _ in range(text.count(address))]
        cases.append({"text": text, "pii": values, "language": "en"})
    return cases


def measure_pii(cases: Iterable[dict[str, object]]) -> PiiResult:
    """Labelled values replaced, and replacements that hit none, over all cases."""
    labelled = found = false = words = 0
    for case in cases:
        text, values = str(case["text"]), [str(value) for value in case["pii"]]  # type: ignore[attr-defined]
        result = scrub_text(text=text, language=str(case.get("language") or "") or None)
        hit = sum(
            min(values.count(value), text.count(value) - result.text.count(value))
            for value in set(values)
        )
        labelled, found = labelled + len(values), found + hit
        false += max(sum(result.counts.values()) - hit, 0)
        words += len(text.split())
    return PiiResult(labelled, found, false, words)


def measure_pii_on_prose(paths: Iterable[Path]) -> PiiResult:
    """Replacements other than e-mail addresses in unlabelled technical prose (gzipped or plain).

    Changelogs and manuals under /usr/share/doc name their authors' real addresses, so e-mail
    hits are true; any IP, phone, card, IBAN or ID found there is a false positive (they hold
    version numbers, section numbers, counts and timestamps, and no such personal data).
    """
    false = words = 0
    for path in paths:
        raw = path.read_bytes()
        text = (gzip.decompress(raw) if path.suffix == ".gz" else raw).decode("utf-8", "replace")
        counts = scrub_text(text=text, language="en").counts
        false += sum(count for category, count in counts.items() if category.value != "email")
        words += len(text.split())
    return PiiResult(0, 0, false, words)


SYSTEM_PROSE = (
    "dpkg/changelog.gz",
    "bzip2/changelog.gz",
    "debmake-doc/debmake-doc.en.txt.gz",
    "debmake-doc/debmake-doc.de.txt.gz",
)


# Real files for the end-to-end run: the shipped ones, and Debian documentation that a base
# system with this project's packages has (each under its package's licence, in
# /usr/share/doc/<package>/copyright); missing ones are skipped and the run says which it used.
END_TO_END_FILES = (
    *(DATA / name for name in (*SHIPPED_PDFS, "debmake-doc-apa.en.html")),
    *(ROOT / "tests" / "e2e" / "data" / name for name in (
        "procps-bugs.md", "base-passwd-users-and-groups.html", "base-passwd-README.txt",
    )),
    *(SYSTEM_DOCS / name for name in (
        "socat/socat.html", "socat/socat-openssltunnel.html", "socat/socat-multicast.html",
        "socat/FAQ", "libffi8/html/The-Basics.html", "libffi8/html/The-Closure-API.html",
        "libffi8/html/Primitive-Types.html", "python3/python-policy.html",
        "zlib1g-dev/examples/zlib_how.html", "base-files/FAQ", "nodejs/api/process.md",
        "nodejs/api/net.md", "nodejs/api/url.md", "nodejs/api/packages.md",
        "nodejs/BUILDING.md", "nodejs/README.md",
    )),
)  # fmt: skip


def measure_end_to_end(files: Sequence[Path]) -> int:
    """Upload ``files`` to a fresh installation, let its worker parse them and curate them on the
    default settings; print MB/s. Run in a process of its own (it configures the environment)."""
    import asyncio
    import shutil
    import tempfile

    sys.path.insert(0, str(Path(__file__).resolve().parent))
    import first_hour  # the same fresh installation and consumers as the first-hour benchmark

    workdir = Path(tempfile.mkdtemp(prefix="curation-e2e-"))
    env = first_hour.configure(workdir)
    from gptstudio.models import Role
    from gptstudio.run import migrate
    from gptstudio.services import account, assistant, dataset, document

    migrate()
    size = sum(path.stat().st_size for path in files)
    try:
        with first_hour.workers(workdir, env):
            account.register(email="admin@example.com", password=first_hour.PASSWORD)
            creator = account.register(
                email="reader@example.com", password=first_hour.PASSWORD, role=Role.creator
            )
            bot = assistant.create_assistant(actor=creator, name="Manuals").id
            start = time.monotonic()
            for path in files:
                asyncio.run(document.store_bytes(
                    actor=creator, assistant_id=bot, filename=path.name, data=path.read_bytes()
                ))  # fmt: skip

            def parsed() -> bool:
                rows = document.list_documents(actor=creator, assistant_id=bot)
                return all(r.status in ("parsed", "failed") for r in rows)

            first_hour.wait_for("parsing", parsed)
            parse_seconds = time.monotonic() - start
            failed = [
                f"{r.filename}: {r.error}"
                for r in document.list_documents(actor=creator, assistant_id=bot)
                if r.status == "failed"
            ]
            dataset.start_curation(
                actor=creator, assistant_id=bot, settings=dataset.CurationSettings()
            )

            def curated() -> bool:
                run = dataset.latest_run(actor=creator, assistant_id=bot)
                if run is not None and run.status == "failed":
                    raise SystemExit(f"curation failed: {run.error}")
                return run is not None and run.status == "done"

            first_hour.wait_for("curation", curated)
            total_seconds = time.monotonic() - start
            run = dataset.latest_run(actor=creator, assistant_id=bot)
            counts = run.counts if run is not None else {}
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    megabytes = size / 1e6
    print(f"End to end through the worker: {len(files)} files, {megabytes:.2f} MB")
    for path in files:
        print(f"  {path}")
    if failed:
        print(f"  not readable (counted in the bytes): {failed}")
    print(
        f"  upload -> parsed: {parse_seconds:.1f} s ({megabytes / parse_seconds:.2f} MB/s); "
        f"upload -> curation done: {total_seconds:.1f} s ({megabytes / total_seconds:.2f} MB/s)"
    )
    print(f"  examples: {counts.get('examples')}, splits: {counts.get('splits')}")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pdf", type=Path, nargs="*", help="PDFs to measure instead")
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument(
        "--only-end-to-end", action="store_true", help="only the end-to-end MB/s through the worker"
    )
    args = parser.parse_args(argv)
    present = [path for path in END_TO_END_FILES if path.is_file()]
    if args.only_end_to_end:
        return measure_end_to_end(present)
    files = args.pdf or [DATA / name for name in SHIPPED_PDFS] + system_pdfs()
    print("PDFs:", ", ".join(str(path) for path in files))
    failures = []
    logging.getLogger("pypdf").setLevel(logging.ERROR)  # fonts it cannot fully parse, per page
    print(f"{'extractor':<20} {'pages':>6} {'pages/s':>9} {'(wall)':>8} {'run-together':>13}")
    results = []
    for name, extract in EXTRACTORS.items():  # one at a time, so each row shows when measured
        (result,) = measure_pdf_extractors(files, repeats=args.repeats, extractors={name: extract})
        results.append(result)
        print(
            f"{result.name:<20} {result.pages:>6} {result.pages_per_second:>9.1f} "
            f"{result.pages_per_wall_second:>8.1f} {result.run_together:>12.2%}",
            flush=True,
        )
    print("run-together per file:", " | ".join(result.name for result in results))
    for file in results[0].per_file:
        print(f"  {file:<36}", " | ".join(f"{r.per_file[file]:>7.2%}" for r in results))
    for result in results:
        worst = max(result.per_file.values(), default=0.0)
        if result.name.endswith("(chosen)") and (
            worst > MAX_RUN_TOGETHER or result.pages_per_second < MIN_PAGES_PER_SECOND
        ):
            failures.append(
                f"PDF extraction misses its target: {worst:.2%} run together on the worst file, "
                f"{result.pages_per_second:.0f} pages/s"
            )
    pii = measure_pii(pii_cases())
    print(
        f"PII: recall {pii.recall:.3f} ({pii.found}/{pii.labelled}), false positives "
        f"{pii.false_per_10k_words:.2f} per 10k words ({pii.false_positives} in {pii.words} words)"
    )
    prose = [SYSTEM_DOCS / name for name in SYSTEM_PROSE if (SYSTEM_DOCS / name).exists()]
    if prose:
        system = measure_pii_on_prose(prose)
        print(
            f"PII on {', '.join(map(str, prose))}: {system.false_positives} non-e-mail hits in "
            f"{system.words} words ({system.false_per_10k_words:.2f} per 10k words)"
        )
        pii = PiiResult(pii.labelled, pii.found, pii.false_positives + system.false_positives,
                        pii.words + system.words)  # fmt: skip
        print(f"PII false positives over all prose: {pii.false_per_10k_words:.2f} per 10k words")
    if pii.recall < MIN_PII_RECALL or pii.false_per_10k_words > MAX_PII_FALSE_PER_10K:
        failures.append("PII scrubbing misses its target")
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    import curation_examples

    if curation_examples.main() != 0:
        failures.append("extracted pairs miss their target")
    # A process of its own: the end-to-end run configures a fresh installation's environment.
    script = [sys.executable, str(Path(__file__).resolve()), "--only-end-to-end"]
    if subprocess.run(script, check=False).returncode != 0:
        failures.append("the end-to-end run failed")
    for failure in failures:
        print("FAILED:", failure, file=sys.stderr)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
