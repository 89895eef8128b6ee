"""Vectorised shingles and signatures agree with the plain definitions and with datasketch."""

from __future__ import annotations

import random

import numpy as np
from datasketch import MinHash

from gptstudio.curation.shingles import (
    minhash_inputs,
    minhash_signatures,
    shingle_sets,
    word_hashes,
    words,
)

TEXTS = [
    "The quick brown fox jumps over the lazy dog; the QUICK brown fox!",
    "",
    "...",
    "two words",
    "Ünïcödé ﬁne words and naïve café",
    "snake_case and CamelCase 42x",
    "x" * 3000 + " tail",
]


def test_word_hashes_follow_the_word_splitter() -> None:
    hashes, counts = word_hashes(texts=TEXTS)
    assert counts.tolist() == [len(words(text=text)) for text in TEXTS]
    by_word: dict[str, int] = {}
    for word, value in zip([w for t in TEXTS for w in words(text=t)], hashes.tolist(), strict=True):
        assert by_word.setdefault(word, value) == value
    assert len(set(by_word.values())) == len(by_word)


def test_shingle_sets_match_the_plain_definition() -> None:
    shingles = shingle_sets(texts=TEXTS, shingle_size=3)
    for index, text in enumerate(TEXTS):
        tokens = words(text=text)
        expected = {tuple(tokens[i : i + 3]) for i in range(len(tokens) - 2)}
        if 0 < len(tokens) < 3:
            expected = {tuple(tokens)}
        assert len(set(shingles.of(index).tolist())) == len(expected)


def test_signatures_equal_datasketch_update_batch() -> None:
    rng = random.Random(3)
    texts = [
        " ".join(rng.choice("abcdefghij") * 3 for _ in range(rng.randint(0, 60))) for _ in range(50)
    ]
    shingles = shingle_sets(texts=texts + TEXTS, shingle_size=2)
    signatures = minhash_signatures(shingles=shingles, num_perm=32, seed=5)
    inputs = minhash_inputs(shingles=shingles)
    for index in range(len(texts) + len(TEXTS)):
        reference = MinHash(num_perm=32, seed=5, hashfunc=lambda value: value)
        values = inputs[shingles.offsets[index] : shingles.offsets[index + 1]].tolist()
        if values:
            reference.update_batch(values)
        assert np.array_equal(reference.hashvalues, signatures[index])
