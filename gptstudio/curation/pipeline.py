"""One curation run: parsed documents in, a split, leak-checked dataset snapshot out.

Steps per document: clean, scrub personal data. Then over the whole collection: whole-document
near-duplicate and containment detection (the same document in two formats has different chunk
boundaries, so chunk dedupe alone misses it), chunking of the documents that stay, quality
filter on chunks, exact/near dedupe of chunks, question/answer synthesis (plus imported examples
from chat or instruction files), dedupe of examples, document split that keeps duplicate-linked
documents together, an independent leakage check, and the snapshot hash. Pure: the caller loads
documents and stores the result (the queue task in the worker).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Collection, Iterable, Sequence
from dataclasses import dataclass, field

from gptstudio.curation.chunking import Chunk, ChunkingOptions, chunk_document
from gptstudio.curation.cleaning import CleaningOptions, CleaningReport, clean_document
from gptstudio.curation.dedupe import (
    DedupeOptions,
    DedupeResult,
    DocumentDedupeOptions,
    find_document_duplicates,
    find_duplicates,
)
from gptstudio.curation.documents import ParsedDocument
from gptstudio.curation.examples import Example
from gptstudio.curation.pii import PiiCategory, PiiOptions, scrub_document
from gptstudio.curation.qa import (
    QAGenerator,
    SynthesisOptions,
    SynthesisResult,
    synthesize_examples,
)
from gptstudio.curation.quality import QualityResult, QualityRules, filter_quality
from gptstudio.curation.snapshot import dataset_hash
from gptstudio.curation.splits import (
    Split,
    SplitRatios,
    assign_examples,
    check_no_leakage,
    linked_documents,
    split_documents,
)


@dataclass(frozen=True)
class CurationOptions:
    """Every setting of a run; the whole object is part of the snapshot hash."""

    cleaning: CleaningOptions = field(default_factory=CleaningOptions)
    scrub_pii: bool = True
    pii: PiiOptions = field(default_factory=PiiOptions)
    chunking: ChunkingOptions = field(default_factory=ChunkingOptions)
    quality: QualityRules = field(default_factory=QualityRules)
    dedupe: DedupeOptions = field(default_factory=DedupeOptions)
    document_dedupe: DocumentDedupeOptions = field(default_factory=DocumentDedupeOptions)
    synthesis: SynthesisOptions = field(default_factory=SynthesisOptions)
    ratios: SplitRatios = field(default_factory=SplitRatios)
    seed: int = 0
    keep: frozenset[str] = frozenset()
    """Chunk or example ids the creator chose to keep despite being duplicates."""


@dataclass(frozen=True)
class DocumentReport:
    """What happened to one document, for its "what was done" panel."""

    cleaning: CleaningReport
    pii: dict[PiiCategory, int]
    chunks: int


@dataclass(frozen=True)
class CurationRun:
    """Everything a run produced; store what the UI needs."""

    documents: tuple[ParsedDocument, ...]
    """Cleaned and scrubbed documents: example spans index their ``text``."""
    reports: dict[str, DocumentReport]
    chunks: tuple[Chunk, ...]
    """Chunks that passed the quality filter and dedupe."""
    chunk_quality: QualityResult
    document_duplicates: DedupeResult
    """Whole documents dropped before chunking (their imported examples stay)."""
    chunk_duplicates: DedupeResult
    synthesis: SynthesisResult
    example_duplicates: DedupeResult
    assignment: dict[str, Split]
    splits: dict[Split, tuple[Example, ...]]
    snapshot_hash: str


def _prepare(
    document: ParsedDocument, options: CurationOptions
) -> tuple[ParsedDocument, CleaningReport, dict[PiiCategory, int]]:
    cleaned = clean_document(document=document, options=options.cleaning)
    current, pii = cleaned.document, dict.fromkeys(PiiCategory, 0)
    if options.scrub_pii:
        language = cleaned.report.language.code if cleaned.report.language else None
        scrubbed = scrub_document(document=current, options=options.pii, language=language)
        current, pii = scrubbed.document, scrubbed.counts
    return current, cleaned.report, pii


def _chunk(
    documents: Sequence[ParsedDocument], options: CurationOptions
) -> tuple[DedupeResult, dict[str, tuple[Chunk, ...]]]:
    """Whole-document duplicates, then the chunks of every document that stays."""
    duplicates = find_document_duplicates(
        texts={document.document_id: document.text for document in documents},
        options=options.document_dedupe,
        keep=options.keep,
    )
    gone = set(duplicates.dropped)
    chunks = {
        document.document_id: ()
        if document.document_id in gone
        else chunk_document(document=document, options=options.chunking)
        for document in documents
    }
    return duplicates, chunks


def _select_chunks(
    chunks: Sequence[Chunk], options: CurationOptions
) -> tuple[tuple[Chunk, ...], QualityResult, DedupeResult]:
    quality = filter_quality(texts={c.chunk_id: c.text for c in chunks}, rules=options.quality)
    passed = set(quality.kept)
    texts = {chunk.chunk_id: chunk.text for chunk in chunks if chunk.chunk_id in passed}
    duplicates = find_duplicates(texts=texts, options=options.dedupe, keep=options.keep)
    kept = set(duplicates.kept)
    return tuple(c for c in chunks if c.chunk_id in kept), quality, duplicates


def _example_weights(
    documents: Iterable[ParsedDocument], examples: Iterable[Example]
) -> dict[str, float]:
    counts = Counter(example.source.document_id for example in examples)
    return {
        document.document_id: float(max(counts[document.document_id], 1)) for document in documents
    }


def _links(
    duplicates: Sequence[DedupeResult],
    documents: Sequence[ParsedDocument],
    chunks: Sequence[Chunk],
    examples: Sequence[Example],
) -> list[frozenset[str]]:
    document_of = {document.document_id: document.document_id for document in documents}
    document_of.update({chunk.chunk_id: chunk.source.document_id for chunk in chunks})
    document_of.update({e.example_id: e.source.document_id for e in examples})
    clusters = [cluster for result in duplicates for cluster in result.clusters]
    return linked_documents(clusters=clusters, document_of=document_of)


def _dedupe_examples(
    examples: Sequence[Example], options: CurationOptions, keep: Collection[str]
) -> tuple[tuple[Example, ...], DedupeResult]:
    texts = {example.example_id: example.text for example in examples}
    result = find_duplicates(texts=texts, options=options.dedupe, keep=keep)
    kept = set(result.kept)
    return tuple(e for e in examples if e.example_id in kept), result


def curate(
    *,
    documents: Sequence[ParsedDocument],
    options: CurationOptions | None = None,
    generator: QAGenerator | None = None,
) -> CurationRun:
    """Run the whole curation on parsed documents; raises ``CurationError`` subclasses only."""
    options = options or CurationOptions()
    prepared = [_prepare(document, options) for document in documents]
    cleaned = tuple(document for document, _, _ in prepared)
    document_duplicates, chunked = _chunk(cleaned, options)
    all_chunks = [chunk for document in cleaned for chunk in chunked[document.document_id]]
    chunks, quality, chunk_duplicates = _select_chunks(all_chunks, options)
    synthesis = synthesize_examples(
        chunks=chunks, documents=cleaned, options=options.synthesis, generator=generator
    )
    imported = [example for document in cleaned for example in document.examples]
    everything = [*synthesis.examples, *imported]
    examples, example_duplicates = _dedupe_examples(everything, options, options.keep)
    assignment = split_documents(
        weights=_example_weights(cleaned, examples),
        links=_links(
            (document_duplicates, chunk_duplicates, example_duplicates),
            cleaned,
            all_chunks,
            everything,
        ),
        ratios=options.ratios,
        seed=options.seed,
    )
    splits = assign_examples(examples=examples, assignment=assignment)
    check_no_leakage(splits=splits, options=options.dedupe)
    reports = {
        document.document_id: DocumentReport(report, pii, len(chunked[document.document_id]))
        for document, report, pii in prepared
    }
    return CurationRun(
        documents=cleaned,
        reports=reports,
        chunks=chunks,
        chunk_quality=quality,
        document_duplicates=document_duplicates,
        chunk_duplicates=chunk_duplicates,
        synthesis=synthesis,
        example_duplicates=example_duplicates,
        assignment=assignment,
        splits=splits,
        snapshot_hash=dataset_hash(
            examples=examples,
            parameters={"options": options, "assignment": assignment},
        ),
    )
