"""Connected components of small undirected graphs, via scipy's csgraph."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from scipy.sparse import coo_array
from scipy.sparse.csgraph import connected_components


def component_labels(*, count: int, edges: Sequence[tuple[int, int]]) -> list[int]:
    """A label per node ``0..count-1``; nodes joined by ``edges`` share a label."""
    if not edges:
        return list(range(count))
    rows = np.fromiter((a for a, _ in edges), dtype=np.int64, count=len(edges))
    cols = np.fromiter((b for _, b in edges), dtype=np.int64, count=len(edges))
    graph = coo_array((np.ones(len(edges)), (rows, cols)), shape=(count, count))
    _, labels = connected_components(graph, directed=False)
    return [int(label) for label in labels]
