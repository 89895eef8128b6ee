"""Exact and near-duplicate clusters: found above the threshold, never below, overridable."""

from __future__ import annotations

import random

import pytest

from gptstudio.curation.dedupe import (
    DedupeOptions,
    DocumentDedupeOptions,
    DuplicateKind,
    containment_pairs,
    exact_key,
    find_document_duplicates,
    find_duplicates,
    lsh_bands,
    near_duplicate_indices,
)
from gptstudio.curation.errors import InvalidParameterError
from gptstudio.curation.shingles import words


def trigram_jaccard(first: str, second: str) -> float:
    def grams(text: str) -> set[tuple[str, ...]]:
        tokens = words(text=text)
        return {tuple(tokens[i : i + 3]) for i in range(len(tokens) - 2)}

    a, b = grams(first), grams(second)
    return len(a & b) / len(a | b)


def paragraph(rng: random.Random, length: int = 80) -> list[str]:
    return [f"w{rng.randrange(100_000)}" for _ in range(length)]


def edited(tokens: list[str], changes: int, rng: random.Random) -> str:
    copy = list(tokens)
    for position in rng.sample(range(len(copy)), changes):
        copy[position] = f"new{rng.randrange(100_000)}"
    return " ".join(copy)


def test_exact_key_ignores_case_punctuation_and_spacing() -> None:
    assert exact_key(text="Soil pH, 6.5!") == exact_key(text="soil   PH 6 5")
    assert exact_key(text="Soil pH") != exact_key(text="Soil pH value")


def test_planted_pairs_are_found_exactly_when_at_or_above_the_threshold() -> None:
    rng = random.Random(11)
    texts = []
    for _ in range(150):  # families of five: a paragraph and four edits of it
        base = paragraph(rng)
        texts.append(" ".join(base))
        texts.extend(edited(base, changes, rng) for changes in (1, 3, 6, 12))
    options = DedupeOptions(threshold=0.7)
    found = {(i, j): s for i, j, s in near_duplicate_indices(texts=texts, options=options)}
    # Paragraphs of random words from 100,000 share no trigram across families.
    truth = {
        (i, j)
        for i in range(len(texts))
        for j in range(i + 1, (i // 5 + 1) * 5)
        if trigram_jaccard(texts[i], texts[j]) >= 0.7
    }
    assert len(truth) > 300
    assert all(similarity >= 0.7 for similarity in found.values())
    assert set(found) <= truth
    assert len(set(found) & truth) >= 0.98 * len(truth)
    for (i, j), similarity in found.items():
        assert similarity == pytest.approx(trigram_jaccard(texts[i], texts[j]))


def test_clusters_keep_the_first_member_and_count_drops() -> None:
    rng = random.Random(5)
    base = paragraph(rng, 60)
    texts = {
        "a": " ".join(base),
        "b": " ".join(base).upper() + "!",  # exact duplicate after normalisation
        "c": edited(base, 1, rng),
        "d": " ".join(paragraph(rng, 60)),
        "e": " ".join(paragraph(rng, 60)),
        "f": "",
        "g": "   ",
    }
    texts["h"] = texts["e"]
    result = find_duplicates(texts=texts)
    by_members = {cluster.members: cluster for cluster in result.clusters}
    assert set(by_members) == {("a", "b", "c"), ("e", "h"), ("f", "g")}
    assert by_members[("a", "b", "c")].kind == DuplicateKind.NEAR
    assert by_members[("a", "b", "c")].kept == ("a",)
    assert by_members[("e", "h")].kind == DuplicateKind.EXACT
    assert result.kept == ("a", "d", "e", "f")
    assert result.counts == {
        DuplicateKind.EXACT: 2,
        DuplicateKind.NEAR: 2,
        DuplicateKind.SEMANTIC: 0,
    }


def test_keep_set_overrides_the_choice() -> None:
    texts = {"a": "one two three four five six", "b": "one two three four five six"}
    result = find_duplicates(texts=texts, keep={"b", "not-there"})
    assert result.kept == ("b",)
    assert result.clusters[0].dropped == ("a",)
    assert find_duplicates(texts=texts, keep={"a", "b"}).dropped == ()


def test_near_search_can_be_switched_off() -> None:
    texts = {"a": "one two three four five six seven", "b": "one two three four five six eight"}
    assert (
        find_duplicates(texts=texts, options=DedupeOptions(threshold=0.5, near=False)).clusters
        == ()
    )
    assert find_duplicates(texts=texts, options=DedupeOptions(threshold=0.5)).dropped == ("b",)


def test_lsh_bands_reach_the_requested_recall() -> None:
    bands, rows = lsh_bands(threshold=0.7, num_perm=128, recall=0.98)
    assert bands * rows <= 128
    assert 1 - (1 - 0.7**rows) ** bands >= 0.98
    assert 1 - (1 - 0.7 ** (rows + 1)) ** (128 // (rows + 1)) < 0.98


def test_options_are_checked() -> None:
    with pytest.raises(InvalidParameterError):
        DedupeOptions(threshold=1.5)


def test_clusters_do_not_chain_through_dropped_members() -> None:
    # Twelve overlapping windows of one text: neighbours are near duplicates (Jaccard ~0.72),
    # windows further apart are not; a chain must not drop them all in favour of the first.
    tokens = paragraph(random.Random(5), 200)
    windows = {f"w{k:02d}": " ".join(tokens[k * 10 : k * 10 + 60]) for k in range(12)}
    options = DedupeOptions(threshold=0.7)
    result = find_duplicates(texts=windows, options=options)
    assert trigram_jaccard(windows["w00"], windows["w01"]) >= 0.7
    assert trigram_jaccard(windows["w00"], windows["w02"]) < 0.7
    for name in result.dropped:
        best = max(trigram_jaccard(windows[name], windows[kept]) for kept in result.kept)
        assert best >= 0.7, name
    assert result.kept == ("w00", "w02", "w04", "w06", "w08", "w10")
    for cluster in result.clusters:
        (kept,) = cluster.kept
        for pair in cluster.pairs:
            assert kept in (pair.first, pair.second) and pair.similarity >= 0.7


def test_exact_copies_of_a_dropped_text_are_dropped_with_it_not_kept() -> None:
    tokens = paragraph(random.Random(6), 80)
    base = " ".join(tokens)
    near = edited(tokens, 1, random.Random(7))
    texts = {"a": base, "b": near, "c": near.upper(), "d": " ".join(paragraph(random.Random(8)))}
    result = find_duplicates(texts=texts)
    assert result.kept == ("a", "d")
    assert result.dropped == ("b", "c")


def test_a_long_chain_of_rows_keeps_every_row_not_similar_to_a_kept_one() -> None:
    # The CSV case: rows that differ from the previous row by one field, thousands of them.
    rows = {f"r{k}": f"item {k} item {k + 1} item {k + 2} item {k + 3}" for k in range(3000)}
    result = find_duplicates(texts=rows, options=DedupeOptions(threshold=0.5))
    assert len(result.kept) > 100


def test_a_document_contained_in_a_larger_one_goes_and_the_larger_stays() -> None:
    rng = random.Random(9)
    book = paragraph(rng, 400)
    texts = {
        "chapter": " ".join(book[100:200]) + " a short note only the web edition has",
        "book": " ".join(book),
        "other": " ".join(paragraph(rng, 200)),
        "tiny": " ".join(book[:6]),  # too short to judge
    }
    result = find_document_duplicates(texts=texts)
    assert result.dropped == ("chapter",)
    (cluster,) = result.clusters
    assert cluster.kept == ("book",) and cluster.kind == DuplicateKind.NEAR
    assert cluster.pairs[0].similarity >= 0.8
    assert find_document_duplicates(texts=texts, keep={"chapter"}).dropped == ()
    off = DocumentDedupeOptions(enabled=False)
    assert find_document_duplicates(texts=texts, options=off).dropped == ()


def test_document_containment_does_not_chain() -> None:
    # b is mostly in a, c is wholly in b but hardly in a: dropping b must not drop c.
    rng = random.Random(10)
    tokens, extra = paragraph(rng, 400), paragraph(rng, 40)
    texts = {
        "a": " ".join(tokens),
        "b": " ".join(tokens[150:] + extra),
        "c": " ".join(tokens[380:] + extra),
    }
    shares = {(large, small): share for large, small, share in containment_pairs(
        texts=list(texts.values())
    )}  # fmt: skip
    assert set(shares) == {(0, 1), (1, 2)}  # c is not in a; a is not in b
    result = find_document_duplicates(texts=texts)
    assert result.dropped == ("b",)
    assert result.kept == ("a", "c")
    # What the creator keeps stays, and never drops a larger document it does not contain.
    assert find_document_duplicates(texts=texts, keep={"c"}).kept == ("a", "c")
    assert find_document_duplicates(texts=texts, keep={"b"}).dropped == ("c",)
    same = {"x": texts["a"], "y": texts["a"].upper()}
    assert find_document_duplicates(texts=same).dropped == ("y",)
    assert find_document_duplicates(texts=same, keep={"y"}).dropped == ("x",)
