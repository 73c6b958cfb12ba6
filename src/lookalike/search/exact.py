"""Exact searchers: the reference, and what every size below the approximate threshold uses.

Cosine: blocked matrix products (float32 maths, one block at a time, over float16 or float32 storage;
base rows are taken as stored: the catalog keeps unit vectors). Hamming: XOR + popcount over
uint64-packed hashes. Exact Hamming search stays at every size: one query against a million 64-bit hashes
is a few milliseconds, and the all-pairs hash candidates of ``dupes`` use a multi-index hash
(:func:`lookalike.dupes.candidates.dihedral_pairs_indexed`), which is exact up to 3 bits and grows with
N times the bucket size (1M in 17-37 s), so an approximate Hamming index would buy nothing there.
"""

from __future__ import annotations

import numpy as np

from lookalike.search.base import BlockedSearcher, SearchResult, unit_block


class ExactCosineSearcher(BlockedSearcher):
    """Exact cosine search with blocked matrix products (float32 maths over float16/32 storage)."""

    higher_is_better = True

    def __init__(self, data: np.ndarray, query_block: int = 1024, base_block: int = 16384) -> None:
        self.data = np.asarray(data)
        self.query_block, self.base_block = query_block, base_block

    def query(self, queries: np.ndarray, k: int) -> SearchResult:
        return self._blocked_top_k(np.atleast_2d(queries), k, unit_block)

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


def _as_words(queries: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(queries, dtype=np.uint64)


class HammingSearcher(BlockedSearcher):
    """Exact Hamming search over uint64-packed hashes (XOR + popcount, vectorised, blocked)."""

    higher_is_better = False

    def __init__(self, data: np.ndarray, query_block: int = 256, base_block: int = 262144) -> None:
        self.data = np.ascontiguousarray(data, dtype=np.uint64)
        if self.data.ndim == 1:
            self.data = self.data.reshape(-1, 1)
        self.query_block, self.base_block = query_block, base_block

    def query(self, queries: np.ndarray, k: int) -> SearchResult:
        q_all = np.ascontiguousarray(queries, dtype=np.uint64).reshape(-1, self.data.shape[1])
        return self._blocked_top_k(q_all, k, _as_words)

    def _scores(self, queries: np.ndarray, base_start: int) -> np.ndarray:
        block = self.data[base_start : base_start + self.base_block]
        return hamming_distances(queries, block).astype(np.float32)
