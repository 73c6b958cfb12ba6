"""All-pairs k-nearest-neighbour graphs on a 0..1 distance scale (used by ``sort`` and ``cluster``).

:func:`knn_graph` picks the searcher by size through :func:`lookalike.search.make_searcher`: exact up to
``exact_limit`` rows, the inverted file above it. Distances come from the caller's rows object (cosine
for embeddings, a Hamming share for hashes mapped to +-1 rows, see lookalike.organise.vectors).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np

from lookalike.search.base import Progress, Searcher, SearchResult
from lookalike.search.select import EXACT_LIMIT, make_searcher


class UnitRows(Protocol):
    """Unit rows and the map from their cosines to 0..1 distances (lookalike.organise.vectors.Vectors)."""

    x: np.ndarray

    def __len__(self) -> int: ...

    def distance_from_cos(self, cos: np.ndarray) -> np.ndarray: ...


@dataclass
class KnnGraph:
    """Row i: its k nearest other rows (``idx``, -1 when missing) and their distances (``dist``, 0..1)."""

    idx: np.ndarray  # (n, k) int64
    dist: np.ndarray  # (n, k) float32
    exact: bool

    def edges(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Undirected edges (i < j, each once) with their distances, sorted by (distance, i, j)."""
        n, k = self.idx.shape
        i = np.repeat(np.arange(n, dtype=np.int64), k)
        j = self.idx.ravel()
        d = self.dist.ravel()
        ok = j >= 0
        i, j, d = i[ok], j[ok], d[ok]
        a, b = np.minimum(i, j), np.maximum(i, j)
        key = a * n + b
        key, first = np.unique(key, return_index=True)
        a, b, d = a[first], b[first], d[first]
        order = np.lexsort((b, a, d))
        return a[order], b[order], d[order]


def _quantise(d: np.ndarray) -> np.ndarray:
    # Round so that float noise (different block layouts) cannot flip ties between runs.
    return np.round(d.astype(np.float64), 6).astype(np.float32)


def _sorted_rows(idx: np.ndarray, dist: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    big = np.where(idx < 0, np.inf, dist)
    order = np.lexsort((np.where(idx < 0, np.iinfo(np.int64).max, idx), big), axis=1)
    return np.take_along_axis(idx, order, axis=1), np.take_along_axis(dist, order, axis=1)


def graph_from(vec: UnitRows, res: SearchResult, exact: bool) -> KnnGraph:
    """A searcher's knn_graph as distances (missing neighbours: -1 and infinity), rows sorted."""
    missing = res.indices < 0
    cos = np.where(missing, -1.0, np.nan_to_num(res.scores, nan=-1.0))
    dist = np.where(missing, np.inf, _quantise(vec.distance_from_cos(cos))).astype(np.float32)
    idx, dist = _sorted_rows(res.indices, dist)
    return KnnGraph(idx, dist, exact)


def _effective_k(n: int, k: int) -> int:
    return max(1, min(k, n - 1))


def exact_knn(vec: UnitRows, k: int, cluster: str | int | Any | None = None) -> KnnGraph:
    """Exact k-NN graph (blocked; memory block x block); on a Dask ``cluster`` when one is given."""
    n = len(vec)
    if n < 2:
        return KnnGraph(np.full((n, 1), -1, np.int64), np.full((n, 1), np.inf, np.float32), True)
    k = _effective_k(n, k)
    return graph_from(vec, make_searcher("embedding", vec.x, exact=True, cluster=cluster).knn_graph(k), True)


def ivf_knn(vec: UnitRows, k: int, probes: int = 4, progress: Progress | None = None, seed: int = 0,
            cluster: str | int | Any | None = None) -> KnnGraph:
    """Approximate k-NN graph: exact search inside each row's ``probes`` nearest k-means cells (on a Dask
    ``cluster``, split by cell, when one is given: the same graph)."""
    from lookalike.search.ivf import InvertedFileSearcher

    n = len(vec)
    if n < 2:
        return exact_knn(vec, k)
    k = _effective_k(n, k)
    if cluster is not None:
        from lookalike.search.distributed import DaskGraphSearcher

        searcher: Searcher = DaskGraphSearcher(vec.x, cluster, exact=False, probes=probes, seed=seed)
    else:
        searcher = InvertedFileSearcher(vec.x, probes=probes, seed=seed)
    return graph_from(vec, searcher.knn_graph(k, progress), False)


def knn_graph(vec: UnitRows, k: int = 10, exact_limit: int = EXACT_LIMIT,
              progress: Progress | None = None, cluster: str | int | Any | None = None) -> KnnGraph:
    """Exact up to ``exact_limit`` rows, inverted-file search above it; on a Dask ``cluster`` (a scheduler
    address or a number of local workers) when one is given, with the same result."""
    if len(vec) <= exact_limit:
        return exact_knn(vec, k, cluster)
    return ivf_knn(vec, k, progress=progress, cluster=cluster)
