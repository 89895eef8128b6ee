"""Train/validation/test splits by document, with no leakage across splits.

Whole documents go to one split, so no passage is seen in training and again in evaluation.
Documents that share a duplicate cluster (their chunks are exact, near or semantic duplicates)
are joined first and always land together. Assignment is deterministic for a seed: groups are
shuffled by the seed, then each goes to the split furthest below its target share of the total
weight (e.g. the number of examples). A split with a share is never left empty while another
split holds two or more groups: with a handful of documents (a first upload) the shares alone
would give the smallest split nothing, and an empty test split leaves the gate nothing to measure.
:func:`check_no_leakage` verifies a finished split independently, from the examples themselves.
"""

from __future__ import annotations

import enum
import random
from collections import defaultdict
from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass

from gptstudio.curation.dedupe import DedupeOptions, DuplicateCluster, find_duplicates
from gptstudio.curation.errors import InvalidParameterError, LeakageError
from gptstudio.curation.examples import Example
from gptstudio.curation.graphs import component_labels


class Split(enum.StrEnum):
    """The three dataset splits."""

    TRAIN = "train"
    VALIDATION = "validation"
    TEST = "test"


@dataclass(frozen=True)
class SplitRatios:
    """Target shares of the total weight; they must add up to 1."""

    train: float = 0.8
    validation: float = 0.1
    test: float = 0.1

    def __post_init__(self) -> None:
        shares = (self.train, self.validation, self.test)
        if min(shares) < 0 or abs(sum(shares) - 1) > 1e-9 or self.train == 0:
            raise InvalidParameterError(
                "Split ratios must be non-negative, give training a share, and add up to 1."
            )

    def share(self, split: Split) -> float:
        """The target share of ``split``."""
        return {Split.TRAIN: self.train, Split.VALIDATION: self.validation, Split.TEST: self.test}[
            split
        ]


def linked_documents(
    *, clusters: Iterable[DuplicateCluster], document_of: Mapping[str, str]
) -> list[frozenset[str]]:
    """For each duplicate cluster spanning two or more documents, the set of those documents.

    ``document_of`` maps each clustered id (chunk or example id) to its document id.
    """
    links = []
    for cluster in clusters:
        documents = frozenset(document_of[member] for member in cluster.members)
        if len(documents) > 1:
            links.append(documents)
    return links


def _groups(documents: Sequence[str], links: Iterable[Collection[str]]) -> list[list[str]]:
    """Documents joined by any link, each group sorted, groups sorted by first member."""
    index = {document: position for position, document in enumerate(documents)}
    edges: list[tuple[int, int]] = []
    for link in links:
        members = sorted(index[document] for document in link if document in index)
        edges.extend((members[0], other) for other in members[1:])
    grouped: defaultdict[int, list[str]] = defaultdict(list)
    for position, label in enumerate(component_labels(count=len(documents), edges=edges)):
        grouped[label].append(documents[position])
    return sorted(sorted(group) for group in grouped.values())


def split_documents(
    *,
    weights: Mapping[str, float],
    links: Iterable[Collection[str]] = (),
    ratios: SplitRatios | None = None,
    seed: int = 0,
) -> dict[str, Split]:
    """Assign every document in ``weights`` (document id -> weight) to a split.

    Documents in one ``links`` set always share a split. The same inputs and seed always give
    the same assignment.
    """
    ratios = ratios or SplitRatios()
    groups = _groups(sorted(weights), links)
    random.Random(seed).shuffle(groups)  # noqa: S311 -- reproducible shuffling, not security
    total = sum(weights.values()) or 1.0
    filled = dict.fromkeys(Split, 0.0)
    open_splits = [split for split in Split if ratios.share(split) > 0]
    placed: dict[Split, list[list[str]]] = {split: [] for split in Split}
    for group in groups:
        split = max(open_splits, key=lambda s: ratios.share(s) * total - filled[s])
        filled[split] += sum(weights[document] for document in group)
        placed[split].append(group)
    _fill_empty_splits(placed, open_splits, weights)
    return {document: split for split, found in placed.items() for g in found for document in g}


def _fill_empty_splits(
    placed: dict[Split, list[list[str]]], open_splits: list[Split], weights: Mapping[str, float]
) -> None:
    """Move the lightest group of the split holding most groups (training first on a tie) into
    each empty split with a share, test before validation, while a split can spare one. With
    only two groups the held-out one goes to test (what the gate measures); the trainer then
    holds out its own eval examples from the training split."""
    for empty in (Split.TEST, Split.VALIDATION):
        if empty not in open_splits or placed[empty]:
            continue
        donor = max(Split, key=lambda s: (len(placed[s]), s == Split.TRAIN))
        if len(placed[donor]) < 2:
            if empty == Split.TEST and placed[Split.VALIDATION]:
                donor = Split.VALIDATION
            else:
                return
        lightest = min(placed[donor], key=lambda g: (sum(weights[d] for d in g), g))
        placed[donor].remove(lightest)
        placed[empty].append(lightest)


def assign_examples(
    *, examples: Iterable[Example], assignment: Mapping[str, Split]
) -> dict[Split, tuple[Example, ...]]:
    """Examples grouped by the split of their source document."""
    grouped: dict[Split, list[Example]] = {split: [] for split in Split}
    for example in examples:
        split = assignment.get(example.source.document_id)
        if split is None:
            raise InvalidParameterError(
                f"Document {example.source.document_id!r} has no split; split the documents "
                "again after adding it."
            )
        grouped[split].append(example)
    return {split: tuple(members) for split, members in grouped.items()}


class LeakKind(enum.StrEnum):
    """How data leaks between splits."""

    SHARED_DOCUMENT = "shared_document"
    DUPLICATE = "duplicate"


@dataclass(frozen=True)
class Leak:
    """Something that appears in more than one split."""

    kind: LeakKind
    splits: tuple[Split, ...]
    ids: tuple[str, ...]
    """The document id, or the ids of the duplicate examples."""


def _document_leaks(splits: Mapping[Split, Sequence[Example]]) -> list[Leak]:
    found: defaultdict[str, set[Split]] = defaultdict(set)
    for split, examples in splits.items():
        for example in examples:
            found[example.source.document_id].add(split)
    return [
        Leak(LeakKind.SHARED_DOCUMENT, tuple(sorted(where)), (document,))
        for document, where in sorted(found.items())
        if len(where) > 1
    ]


def _duplicate_leaks(
    splits: Mapping[Split, Sequence[Example]], options: DedupeOptions | None
) -> list[Leak]:
    split_of = {example.example_id: split for split, found in splits.items() for example in found}
    texts = {example.example_id: example.text for found in splits.values() for example in found}
    leaks = []
    for cluster in find_duplicates(texts=texts, options=options).clusters:
        where = {split_of[member] for member in cluster.members}
        if len(where) > 1:
            leaks.append(Leak(LeakKind.DUPLICATE, tuple(sorted(where)), cluster.members))
    return leaks


def find_leaks(
    *, splits: Mapping[Split, Sequence[Example]], options: DedupeOptions | None = None
) -> list[Leak]:
    """Documents with examples in two splits, and duplicate clusters of examples across splits."""
    return _document_leaks(splits) + _duplicate_leaks(splits, options)


def check_no_leakage(
    *, splits: Mapping[Split, Sequence[Example]], options: DedupeOptions | None = None
) -> None:
    """Raise :class:`LeakageError` if any document or duplicate cluster spans two splits."""
    leaks = find_leaks(splits=splits, options=options)
    if leaks:
        first = leaks[0]
        raise LeakageError(
            f"{len(leaks)} leak(s) between splits, e.g. {first.kind.value} "
            f"{', '.join(first.ids[:3])} in {', '.join(first.splits)}; split the documents again "
            "with their duplicate links."
        )


def place_additions(
    *,
    existing: Mapping[str, tuple[str, Split]],
    additions: Mapping[str, str],
    options: DedupeOptions | None = None,
    default: Split = Split.TRAIN,
) -> dict[str, Split]:
    """The split of each added example (id -> text), such that no duplicate cluster spans two
    splits: an addition that is a duplicate (exact or near) of an existing example (id ->
    (text, split)) joins that example's split, and additions that are duplicates of each other
    share one; the rest go to ``default``. Used for corrections from feedback, whose questions
    are often reworded copies of what the documents already hold."""
    texts = {name: text for name, (text, _) in existing.items()}
    clash = set(texts) & set(additions)
    if clash:
        raise ValueError(f"ids both existing and added: {sorted(clash)[:3]}")
    texts.update(additions)
    placed = dict.fromkeys(additions, default)
    order = list(Split)
    for cluster in find_duplicates(texts=texts, options=options).clusters:
        added = [member for member in cluster.members if member in additions]
        if not added:
            continue
        there = sorted({existing[m][1] for m in cluster.members if m in existing}, key=order.index)
        for member in added:
            placed[member] = there[0] if there else default
    return placed
