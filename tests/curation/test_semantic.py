"""Semantic duplicates: cosine pairs from any encoder, and the bundled MiniLM model."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import numpy.typing as npt
import pytest

from gptstudio.curation.dedupe import DuplicateKind
from gptstudio.curation.errors import InvalidParameterError
from gptstudio.curation.semantic import find_semantic_duplicates, similar_pairs


def test_similar_pairs_use_cosine_not_length() -> None:
    embeddings = np.array([[1.0, 0.0], [10.0, 0.5], [0.0, 1.0], [-1.0, 0.0]])
    pairs = similar_pairs(embeddings=embeddings, threshold=0.95)
    assert [(i, j) for i, j, _ in pairs] == [(0, 1)]
    assert pairs[0][2] == pytest.approx(10 / np.hypot(10, 0.5))


def letter_counts(texts: Sequence[str]) -> npt.NDArray[np.floating]:
    """A tiny real encoder: letter frequencies (anagrams are 'paraphrases')."""
    return np.array([[text.count(chr(c)) for c in range(97, 123)] for text in texts], dtype=float)


def test_any_encoder_can_be_plugged_in() -> None:
    texts = {"a": "listen", "b": "silent", "c": "banana"}
    result = find_semantic_duplicates(texts=texts, threshold=0.99, encoder=letter_counts)
    assert [c.members for c in result.clusters] == [("a", "b")]
    assert result.clusters[0].kind == DuplicateKind.SEMANTIC
    assert result.kept == ("a", "c")


def test_importing_the_curation_core_does_not_load_torch() -> None:
    code = (
        "import sys, gptstudio.curation.pipeline, gptstudio.curation.semantic; "
        "print(sorted(m for m in ('torch', 'sentence_transformers') if m in sys.modules))"
    )
    root = Path(__file__).resolve().parents[2]
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=root, capture_output=True, text=True, check=True
    )
    assert done.stdout.strip() == "[]"


def test_threshold_is_checked() -> None:
    with pytest.raises(InvalidParameterError):
        find_semantic_duplicates(texts={"a": "x"}, threshold=0)


@pytest.mark.slow
def test_bundled_minilm_finds_paraphrases() -> None:
    texts = {
        "q1": "How do I raise the pH of my garden soil?",
        "q2": "What is the way to increase soil pH in a garden?",
        "other": "The stock market fell sharply on Monday.",
    }
    result = find_semantic_duplicates(texts=texts, threshold=0.85)
    assert [cluster.members for cluster in result.clusters] == [("q1", "q2")]
    assert result.dropped == ("q2",)
