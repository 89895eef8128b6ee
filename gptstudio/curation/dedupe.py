"""Exact and near-duplicate detection with clusters, a kept member each, and overrides.

Exact duplicates share a hash of their normalised words (case, Unicode form, punctuation and
spacing ignored). Near duplicates are found among the remaining distinct texts with MinHash +
LSH from datasketch on word shingles, and every LSH candidate pair is verified by the exact
Jaccard similarity of its shingle sets, so no pair below the threshold is reported. The LSH bands
are chosen so a pair exactly at the threshold becomes a candidate with probability
``lsh_recall``; pairs above it are found even more reliably. Clusters never chain: a text is
dropped only for a kept text it is itself similar to (:func:`cluster_pairs`).

Signatures are computed for the whole corpus at once (:mod:`shingles`), which is what makes this
many times faster than feeding ``MinHash.update`` one shingle at a time (see bench/dedupe.py).
"""

from __future__ import annotations

import enum
import hashlib
from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass
from itertools import combinations

import numpy as np
import numpy.typing as npt
from datasketch import LeanMinHash, MinHashLSH
from scipy.sparse import csr_array

from gptstudio.curation.errors import InvalidParameterError
from gptstudio.curation.shingles import (
    U32,
    ShingleSets,
    minhash_signatures,
    shingle_sets,
    words,
)

Link = tuple[int, int, float]
"""Two indices into the texts, first < second, and their similarity."""


class DuplicateKind(enum.StrEnum):
    """Why members of a cluster count as duplicates."""

    EXACT = "exact"
    NEAR = "near"
    SEMANTIC = "semantic"


@dataclass(frozen=True)
class DedupeOptions:
    """Near-duplicate settings."""

    threshold: float = 0.7
    """Jaccard similarity of word shingle sets at or above which two texts are near duplicates."""
    shingle_size: int = 3
    num_perm: int = 128
    seed: int = 1
    lsh_recall: float = 0.98
    """Chance that a pair exactly at the threshold is examined at all (higher: slower, safer)."""
    near: bool = True
    """Also look for near duplicates (exact ones are always found)."""

    def __post_init__(self) -> None:
        if not 0 < self.threshold <= 1:
            raise InvalidParameterError("The near-duplicate threshold must be in (0, 1].")
        if not 0 < self.lsh_recall < 1:
            raise InvalidParameterError("lsh_recall must be in (0, 1).")
        if self.shingle_size < 1 or self.num_perm < 4:
            raise InvalidParameterError("shingle_size must be at least 1 and num_perm at least 4.")


@dataclass(frozen=True)
class SimilarPair:
    """Two ids and their similarity (Jaccard, or cosine for semantic pairs)."""

    first: str
    second: str
    similarity: float


@dataclass(frozen=True)
class DuplicateCluster:
    """A group of duplicates; ``kept`` stay in the dataset, ``dropped`` leave it."""

    members: tuple[str, ...]
    kept: tuple[str, ...]
    dropped: tuple[str, ...]
    kind: DuplicateKind
    pairs: tuple[SimilarPair, ...]
    """The verified links that connect the members."""


@dataclass(frozen=True)
class DedupeResult:
    """Which ids stay, which go, and why."""

    kept: tuple[str, ...]
    dropped: tuple[str, ...]
    clusters: tuple[DuplicateCluster, ...]
    counts: dict[DuplicateKind, int]
    """Dropped ids per kind."""


def exact_key(*, text: str) -> str:
    """A hash of ``text``'s normalised words; equal keys mean exact duplicates."""
    tokens = words(text=text)
    basis = " ".join(tokens) if tokens else " ".join(text.split())
    return hashlib.blake2b(basis.encode("utf-8"), digest_size=16).hexdigest()


def lsh_bands(*, threshold: float, num_perm: int, recall: float) -> tuple[int, int]:
    """(bands, rows) with the most rows per band that still catches a pair at ``threshold``
    with probability ``recall``: the fewest false candidates for that recall."""
    for rows in range(num_perm // 2, 0, -1):
        bands = num_perm // rows
        if 1 - (1 - threshold**rows) ** bands >= recall:
            return bands, rows
    return num_perm, 1


def _lsh_candidates(
    signatures: U32, indices: Iterable[int], options: DedupeOptions
) -> set[tuple[int, int]]:
    """Index pairs that share an LSH bucket in at least one band."""
    bands, rows = lsh_bands(
        threshold=options.threshold, num_perm=options.num_perm, recall=options.lsh_recall
    )
    lsh = MinHashLSH(num_perm=options.num_perm, params=(bands, rows))
    with lsh.insertion_session() as session:
        for index in indices:
            sketch = LeanMinHash(seed=options.seed, hashvalues=signatures[index], scheme="affine32")
            session.insert(int(index), sketch, check_duplication=False)
    # Reading the shared buckets once gives the same pairs as querying every text, at a
    # fraction of the cost.
    pairs: set[tuple[int, int]] = set()
    for table in lsh.hashtables:
        for bucket, size in table.itemcounts().items():
            if size > 1:
                pairs.update(combinations(sorted(table.get(bucket)), 2))
    return pairs


class _ShingleCache:
    """Python sets of shingle hashes, built only for texts that are LSH candidates."""

    def __init__(self, shingles: ShingleSets) -> None:
        self.shingles = shingles
        self.sets: dict[int, set[int]] = {}

    def jaccard(self, first: int, second: int) -> float:
        a, b = self._set(first), self._set(second)
        return len(a & b) / len(a | b)

    def _set(self, index: int) -> set[int]:
        if index not in self.sets:
            self.sets[index] = set(self.shingles.of(index).tolist())
        return self.sets[index]


def near_duplicate_indices(
    *, texts: Sequence[str], options: DedupeOptions | None = None
) -> list[Link]:
    """Index pairs ``(i, j, jaccard)``, ``i < j``, whose verified Jaccard is >= the threshold."""
    options = options or DedupeOptions()
    shingles = shingle_sets(texts=texts, shingle_size=options.shingle_size)
    signatures = minhash_signatures(shingles=shingles, num_perm=options.num_perm, seed=options.seed)
    cache = _ShingleCache(shingles)
    candidates = _lsh_candidates(signatures, np.flatnonzero(shingles.sizes() > 0), options)
    verified = ((i, j, cache.jaccard(i, j)) for i, j in sorted(candidates))
    return [(i, j, similarity) for i, j, similarity in verified if similarity >= options.threshold]


def _representatives(count: int, links: Sequence[Link]) -> list[int]:
    """For each index, the first index it is an exact copy of (similarity 1.0 links), or itself.

    Exact copies have the same shingle set, so a copy is as similar to anything as its
    representative is."""
    representative = list(range(count))
    for i, j, similarity in links:
        if similarity >= 1.0 and representative[j] == j:
            representative[j] = representative[i]
    return representative


def _choose(
    ids: Sequence[str], links: Sequence[Link], keep: frozenset[str], directed: bool
) -> dict[int, list[tuple[int, float]]]:
    """Kept index -> the (dropped index, similarity) it stands for.

    Greedy in input order, with the creator's ``keep`` first: a text is dropped only when it is
    itself linked (at or above the threshold) to a text already kept, never through a chain of
    other dropped texts; otherwise it is kept. Each dropped text goes to its most similar kept
    text. With ``directed`` a link ``(i, j, s)`` lets only ``j`` go for ``i`` (containment)."""
    # Containment 1.0 is no copy: only symmetric similarity 1.0 means the same shingle set.
    representative = list(range(len(ids))) if directed else _representatives(len(ids), links)
    neighbours: dict[int, dict[int, float]] = {}
    for i, j, similarity in links:
        a, b = representative[i], representative[j]
        if a != b:
            for x, y in ((b, a),) if directed else ((a, b), (b, a)):
                row = neighbours.setdefault(x, {})
                row[y] = max(row.get(y, 0.0), similarity)
    linked = sorted({index for i, j, _ in links for index in (i, j)})
    kept_by_class: dict[int, int] = {}
    chosen: dict[int, list[tuple[int, float]]] = {}
    forced = [index for index in linked if ids[index] in keep]
    for index in (*forced, *(index for index in linked if ids[index] not in keep)):
        if index in chosen:
            continue
        own = representative[index]
        if ids[index] not in keep:
            if own in kept_by_class:
                chosen[kept_by_class[own]].append((index, 1.0))
                continue
            near = neighbours.get(own, {})
            options = [(similarity, c) for c, similarity in near.items() if c in kept_by_class]
            if options:
                similarity, cls = max(options, key=lambda item: (item[0], -item[1]))
                chosen[kept_by_class[cls]].append((index, similarity))
                continue
        kept_by_class.setdefault(own, index)
        chosen[index] = []
    return chosen


def _cluster(
    ids: Sequence[str], kept: int, dropped: Sequence[tuple[int, float]], kind: DuplicateKind
) -> DuplicateCluster:
    indices = sorted([kept, *(index for index, _ in dropped)])
    names = tuple(ids[index] for index in indices)
    gone = tuple(ids[index] for index in indices if index != kept)
    pairs = tuple(SimilarPair(ids[kept], ids[index], similarity) for index, similarity in dropped)
    return DuplicateCluster(names, (ids[kept],), gone, kind, pairs)


def cluster_pairs(
    *,
    ids: Sequence[str],
    pairs: Iterable[Link],
    kind: DuplicateKind | Callable[[Sequence[int]], DuplicateKind],
    keep: Collection[str] = frozenset(),
    directed: bool = False,
) -> DedupeResult:
    """Choose who stays among ``ids`` linked by index ``pairs`` ``(i, j, similarity)``.

    Members listed in ``keep`` always stay (the creator's override); otherwise texts are taken in
    input order and one is dropped only when it is directly linked to a text that stays, so every
    dropped text is within the threshold of a kept one (clusters never chain). A cluster is one
    kept text and the texts dropped for it. ``kind`` is the kind of every cluster, or a function
    of a cluster's member indices. With ``directed``, a pair ``(i, j, s)`` says only that ``j``
    may go for ``i`` (``j`` is contained in ``i``), not the reverse.
    """
    chosen = _choose(ids, list(pairs), frozenset(keep), directed)
    clusters = []
    for kept in sorted(chosen):
        if chosen[kept]:
            members = sorted([kept, *(index for index, _ in chosen[kept])])
            cluster_kind = kind if isinstance(kind, DuplicateKind) else kind(members)
            clusters.append(_cluster(ids, kept, chosen[kept], cluster_kind))
    dropped = {name for cluster in clusters for name in cluster.dropped}
    counts = dict.fromkeys(DuplicateKind, 0)
    for cluster in clusters:
        counts[cluster.kind] += len(cluster.dropped)
    return DedupeResult(
        kept=tuple(name for name in ids if name not in dropped),
        dropped=tuple(name for name in ids if name in dropped),
        clusters=tuple(clusters),
        counts=counts,
    )


def _exact_links(keys: Sequence[str]) -> tuple[list[Link], list[int]]:
    """Links from each exact duplicate to the first text with its key, and those first texts."""
    first_with: dict[str, int] = {}
    links = []
    for index, key in enumerate(keys):
        first = first_with.setdefault(key, index)
        if first != index:
            links.append((first, index, 1.0))
    return links, sorted(first_with.values())


def find_duplicates(
    *,
    texts: Mapping[str, str],
    options: DedupeOptions | None = None,
    keep: Collection[str] = frozenset(),
) -> DedupeResult:
    """Exact and near-duplicate clusters among ``texts`` (id -> text), with kept members.

    Near duplicates are searched among one representative per exact-duplicate group. A cluster
    is ``EXACT`` when all its members have the same normalised words, else ``NEAR``. Ids in
    ``keep`` are never dropped; ids in ``keep`` that are not in ``texts`` are ignored.
    """
    options = options or DedupeOptions()
    ids = list(texts)
    keys = [exact_key(text=texts[name]) for name in ids]
    links, representatives = _exact_links(keys)
    if options.near:
        chosen = [texts[ids[index]] for index in representatives]
        for i, j, similarity in near_duplicate_indices(texts=chosen, options=options):
            links.append((representatives[i], representatives[j], similarity))

    def kind(members: Sequence[int]) -> DuplicateKind:
        same = len({keys[index] for index in members}) == 1
        return DuplicateKind.EXACT if same else DuplicateKind.NEAR

    return cluster_pairs(ids=ids, pairs=links, kind=kind, keep=keep)


@dataclass(frozen=True)
class DocumentDedupeOptions:
    """Whole-document near-duplicate and containment settings (before chunking)."""

    enabled: bool = True
    containment: float = 0.8
    """Share of the smaller document's word shingles found in the larger one at or above which
    the smaller one is dropped: the same document in two formats, or one held in another."""
    shingle_size: int = 5
    min_shingles: int = 20
    """Documents with fewer shingles are too short to judge and always stay."""

    def __post_init__(self) -> None:
        if not 0 < self.containment <= 1:
            raise InvalidParameterError("The document containment threshold must be in (0, 1].")
        if self.shingle_size < 1 or self.min_shingles < 1:
            raise InvalidParameterError("shingle_size and min_shingles must be at least 1.")


def _unique_shingles(texts: Sequence[str], shingle_size: int) -> list[npt.NDArray[np.uint64]]:
    shingles = shingle_sets(texts=texts, shingle_size=shingle_size)
    return [np.unique(shingles.of(index)) for index in range(len(texts))]


def containment_pairs(
    *, texts: Sequence[str], options: DocumentDedupeOptions | None = None
) -> list[tuple[int, int, float]]:
    """``(larger, smaller, containment)`` index pairs: the share of the smaller text's distinct
    shingles that the larger one holds is at least ``options.containment``; when the larger is
    as much held in the smaller (near duplicates), the reverse pair is listed too.

    Exact, from a sparse document-by-shingle matrix times its transpose (the shared shingle
    count of every pair at once); documents are few, so this stays small."""
    options = options or DocumentDedupeOptions()
    return _containment(_unique_shingles(texts, options.shingle_size), options)


def _containment(
    sets: Sequence[npt.NDArray[np.uint64]], options: DocumentDedupeOptions
) -> list[tuple[int, int, float]]:
    sizes = np.array([len(values) for values in sets], dtype=np.int64)
    if len(sets) < 2 or not sizes.any():
        return []
    _, columns = np.unique(np.concatenate(sets), return_inverse=True)
    rows = np.repeat(np.arange(len(sets)), sizes)
    matrix = csr_array(
        (np.ones(len(columns), dtype=np.int64), (rows, columns)),
        shape=(len(sets), int(columns.max()) + 1),
    )
    shared = (matrix @ matrix.T).tocoo()
    found = []
    for i, j, count in zip(
        shared.row.tolist(), shared.col.tolist(), shared.data.tolist(), strict=True
    ):
        if i >= j:
            continue
        small, large = (i, j) if (sizes[i], j) < (sizes[j], i) else (j, i)
        if sizes[small] < options.min_shingles:
            continue
        share = count / sizes[small]
        if share >= options.containment:
            found.append((large, small, float(share)))
            if count / sizes[large] >= options.containment:  # near duplicates: either may go
                found.append((small, large, float(count / sizes[large])))
    return sorted(found)


def find_document_duplicates(
    *,
    texts: Mapping[str, str],
    options: DocumentDedupeOptions | None = None,
    keep: Collection[str] = frozenset(),
) -> DedupeResult:
    """Whole documents (id -> text) that are near duplicates of, or contained in, another.

    Larger documents are preferred (then input order), so of a README in Markdown and in DOCX
    the fuller one stays, and an HTML chapter held in the full text edition goes. A document is
    dropped only for a kept one that contains it (no chaining); ids in ``keep`` always stay.
    """
    options = options or DocumentDedupeOptions()
    ids = list(texts)
    if not options.enabled:
        return cluster_pairs(ids=ids, pairs=[], kind=DuplicateKind.NEAR, keep=keep)
    sets = _unique_shingles([texts[name] for name in ids], options.shingle_size)
    # The order containment_pairs uses too: more distinct shingles first, then input order.
    order = sorted(range(len(ids)), key=lambda index: (-len(sets[index]), index))
    position = {index: rank for rank, index in enumerate(order)}
    links = [
        (position[large], position[small], share)
        for large, small, share in _containment(sets, options)
    ]
    ranked = [ids[index] for index in order]
    keys = [exact_key(text=texts[name]) for name in ranked]

    def kind(members: Sequence[int]) -> DuplicateKind:
        same = len({keys[index] for index in members}) == 1
        return DuplicateKind.EXACT if same else DuplicateKind.NEAR

    result = cluster_pairs(ids=ranked, pairs=links, kind=kind, keep=keep, directed=True)
    dropped = set(result.dropped)
    return DedupeResult(
        kept=tuple(name for name in ids if name not in dropped),
        dropped=tuple(name for name in ids if name in dropped),
        clusters=result.clusters,
        counts=result.counts,
    )
