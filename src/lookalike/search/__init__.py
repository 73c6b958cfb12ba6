"""One search interface over embeddings (cosine) and hashes (Hamming).

``make_searcher(kind, data)`` returns a :class:`Searcher`; ``query(vectors, k)`` gives the k best rows
of ``data`` for each query. Search is exact: queries are processed in blocks against the base in
blocks, so memory stays at block x block, never N x N. An approximate index can later implement the
same interface.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass

import numpy as np

from lookalike.features.base import l2_normalise


@dataclass
class SearchResult:
    """Row ``i`` holds the best matches of query ``i``, best first. Missing slots: index -1."""

    indices: np.ndarray  # (nq, k) int64
    scores: np.ndarray  # (nq, k) float32: cosine similarity, or Hamming distance in bits


class Searcher(ABC):
    """k-nearest-neighbour search over a fixed matrix of features."""

    #: True when a larger score means closer (cosine); False for distances (Hamming).
    higher_is_better: bool = True

    def __len__(self) -> int:
        return int(self.data.shape[0])

    data: np.ndarray

    query_block: int
    base_block: int

    @abstractmethod
    def query(self, queries: np.ndarray, k: int) -> SearchResult:
        """The k best base rows for each query row."""

    @abstractmethod
    def _scores(self, queries: np.ndarray, base_start: int) -> np.ndarray:
        """(nq, block) float32 scores of the queries against one block of base rows."""

    def _blocked_top_k(self, q_all: np.ndarray, k: int) -> SearchResult:
        """Top k over the base, queries and base both in blocks, merged block by block."""
        largest = self.higher_is_better
        n, nq = len(self), len(q_all)
        k_eff = min(k, n)
        out_i = np.full((nq, k), -1, dtype=np.int64)
        out_s = np.full((nq, k), np.nan, dtype=np.float32)
        if n == 0 or k_eff == 0:
            return SearchResult(out_i, out_s)
        for qs in range(0, nq, self.query_block):
            q = q_all[qs : qs + self.query_block]
            best_i = best_s = None
            for bs in range(0, n, self.base_block):
                bi, bsc = _top_k(self._scores(q, bs), k_eff, largest=largest)
                bi = bi + bs
                if best_i is None:
                    best_i, best_s = bi, bsc
                else:
                    best_i, best_s = _merge(best_i, best_s, bi, bsc, k_eff, largest=largest)
            out_i[qs : qs + len(q), :k_eff] = best_i
            out_s[qs : qs + len(q), :k_eff] = best_s
        return SearchResult(out_i, out_s)

    def knn_graph(self, k: int) -> SearchResult:
        """For every base row, its k best *other* rows (the item itself is removed)."""
        n = len(self)
        res = self.query(self.data, min(k + 1, n))
        idx = np.full((n, k), -1, dtype=np.int64)
        sc = np.full((n, k), np.nan, dtype=np.float32)
        for i in range(n):
            keep = res.indices[i] != i
            row_i, row_s = res.indices[i][keep][:k], res.scores[i][keep][:k]
            idx[i, : len(row_i)], sc[i, : len(row_s)] = row_i, row_s
        return SearchResult(idx, sc)


def _top_k(scores: np.ndarray, k: int, largest: bool) -> tuple[np.ndarray, np.ndarray]:
    """Indices and values of the k best columns per row, sorted best first (ties by index)."""
    n = scores.shape[1]
    k = min(k, n)
    key = -scores if largest else scores
    if k < n:
        part = np.argpartition(key, k - 1, axis=1)[:, :k]
    else:
        part = np.tile(np.arange(n), (scores.shape[0], 1))
    part_keys = np.take_along_axis(key, part, axis=1)
    order = np.lexsort((part, part_keys), axis=1)
    best = np.take_along_axis(part, order, axis=1)
    return best, np.take_along_axis(scores, best, axis=1)


def _merge(a_idx, a_sc, b_idx, b_sc, k: int, largest: bool):
    idx = np.concatenate([a_idx, b_idx], axis=1)
    sc = np.concatenate([a_sc, b_sc], axis=1)
    sel, vals = _top_k(sc, k, largest)
    return np.take_along_axis(idx, sel, axis=1), vals


class ExactCosineSearcher(Searcher):
    """Exact cosine search with blocked matrix products (float32 maths over float16/32 storage)."""

    higher_is_better = True

    def __init__(self, data: np.ndarray, query_block: int = 1024, base_block: int = 16384) -> None:
        self.data = np.asarray(data)
        self.query_block, self.base_block = query_block, base_block

    def query(self, queries: np.ndarray, k: int) -> SearchResult:
        return self._blocked_top_k(l2_normalise(np.atleast_2d(queries)), k)

    def _scores(self, queries: np.ndarray, base_start: int) -> np.ndarray:
        base = np.asarray(self.data[base_start : base_start + self.base_block], dtype=np.float32)
        return queries @ base.T


def hamming_distances(queries: np.ndarray, base: np.ndarray) -> np.ndarray:
    """(nq, n) Hamming distances between uint64-packed hashes (nq, w) and (n, w)."""
    q = np.ascontiguousarray(queries, dtype=np.uint64)
    b = np.ascontiguousarray(base, dtype=np.uint64)
    d = np.zeros((len(q), len(b)), dtype=np.uint16)
    for w in range(q.shape[1]):
        d += np.bitwise_count(q[:, w : w + 1] ^ b[None, :, w]).astype(np.uint16)
    return d


class HammingSearcher(Searcher):
    """Exact Hamming search over uint64-packed hashes (XOR + popcount, vectorised, blocked)."""

    higher_is_better = False

    def __init__(self, data: np.ndarray, query_block: int = 256, base_block: int = 262144) -> None:
        self.data = np.ascontiguousarray(data, dtype=np.uint64)
        if self.data.ndim == 1:
            self.data = self.data.reshape(-1, 1)
        self.query_block, self.base_block = query_block, base_block

    def query(self, queries: np.ndarray, k: int) -> SearchResult:
        q_all = np.ascontiguousarray(queries, dtype=np.uint64).reshape(-1, self.data.shape[1])
        return self._blocked_top_k(q_all, k)

    def _scores(self, queries: np.ndarray, base_start: int) -> np.ndarray:
        block = self.data[base_start : base_start + self.base_block]
        return hamming_distances(queries, block).astype(np.float32)


def make_searcher(kind: str, data: np.ndarray) -> Searcher:
    """The searcher for a feature kind: ``"hash"`` -> Hamming, anything else -> cosine."""
    return HammingSearcher(data) if kind == "hash" else ExactCosineSearcher(data)


__all__ = [
    "ExactCosineSearcher",
    "HammingSearcher",
    "SearchResult",
    "Searcher",
    "hamming_distances",
    "make_searcher",
]
