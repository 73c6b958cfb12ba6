"""The search interface: :class:`Searcher` (``query(vectors, k)``, ``knn_graph(k)``) and its result.

Helpers here merge top-k lists block by block, so no searcher ever holds an N x N matrix, and turn rows
into float32 only one block at a time (the collection itself stays float16 or packed bits).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

#: progress(done, total), called now and then by long searches
Progress = Callable[[int, int], None]

#: rows of a block turned into float32 at once (queries of a knn_graph, members of a cell)
ROW_BLOCK = 4096


@dataclass
class SearchResult:
    """Row ``i`` holds the best matches of query ``i``, best first. Missing slots: index -1, score NaN."""

    indices: np.ndarray  # (nq, k) int64
    scores: np.ndarray  # (nq, k) float32: cosine similarity, or Hamming distance in bits


def unit_block(rows: np.ndarray) -> np.ndarray:
    """A block of rows as float32 unit vectors (zero rows stay zero)."""
    v = np.asarray(rows, dtype=np.float32)
    norms = np.linalg.norm(v, axis=1, keepdims=True)
    norms[norms == 0] = 1.0
    return v / norms


class Searcher(ABC):
    """k-nearest-neighbour search over a fixed matrix of features (row numbers are the ids)."""

    #: True when a larger score means closer (cosine); False for distances (Hamming).
    higher_is_better: bool = True
    #: False for approximate searchers (their results may miss a few true neighbours)
    exact: bool = True

    data: np.ndarray

    def __len__(self) -> int:
        return int(self.data.shape[0])

    @abstractmethod
    def query(self, queries: np.ndarray, k: int) -> SearchResult:
        """The k best base rows for each query row."""

    def _query_rows(self, start: int, stop: int, k: int) -> SearchResult:
        """``query`` for base rows start..stop used as queries (subclasses may search them faster)."""
        return self.query(self.data[start:stop], k)

    def knn_graph(self, k: int, progress: Progress | None = None) -> SearchResult:
        """For every base row, its k best *other* rows (the row itself removed; -1 / NaN pad the rest)."""
        n = len(self)
        idx = np.full((n, k), -1, dtype=np.int64)
        sc = np.full((n, k), np.nan, dtype=np.float32)
        for s in range(0, n, ROW_BLOCK):
            e = min(n, s + ROW_BLOCK)
            idx[s:e], sc[s:e] = self.graph_rows(s, e, k)
            if progress:
                progress(e, n)
        return SearchResult(idx, sc)

    def graph_rows(self, start: int, stop: int, k: int) -> tuple[np.ndarray, np.ndarray]:
        """Rows start..stop of :meth:`knn_graph` (one block: ``knn_graph`` cuts at multiples of ROW_BLOCK, and a
        search split across machines cuts at the same places, so both compute the very same products)."""
        res = self._query_rows(start, stop, min(k + 1, len(self)))
        return drop_self(res, np.arange(start, stop), k)


def drop_self(res: SearchResult, rows: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """The first k entries of each result row other than ``rows[i]`` itself (and -1 slots), padded."""
    keep = (res.indices != rows[:, None]) & (res.indices >= 0)
    # stable: move kept entries to the front, keeping their order
    order = np.argsort(~keep, axis=1, kind="stable")[:, :k]
    idx = np.take_along_axis(res.indices, order, axis=1)
    sc = np.take_along_axis(res.scores, order, axis=1).astype(np.float32)
    ok = np.take_along_axis(keep, order, axis=1)
    idx = np.where(ok, idx, -1)
    sc = np.where(ok, sc, np.nan).astype(np.float32)
    if idx.shape[1] < k:
        pad = k - idx.shape[1]
        idx = np.pad(idx, ((0, 0), (0, pad)), constant_values=-1)
        sc = np.pad(sc, ((0, 0), (0, pad)), constant_values=np.nan)
    return idx, sc


def top_k(scores: np.ndarray, k: int, largest: bool) -> tuple[np.ndarray, np.ndarray]:
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


def merge_top_k(a_idx: np.ndarray, a_sc: np.ndarray, b_idx: np.ndarray, b_sc: np.ndarray, k: int,
                largest: bool) -> tuple[np.ndarray, np.ndarray]:
    """The k best of two candidate lists per row; slots with index -1 never win over a real one
    (ties by index, so the result does not depend on the order the blocks came in)."""
    idx = np.concatenate([a_idx, b_idx], axis=1)
    sc = np.concatenate([a_sc, b_sc], axis=1).astype(np.float32)
    worst = -np.inf if largest else np.inf
    sc = np.where(idx < 0, worst, sc)
    key = -sc if largest else sc
    order = np.lexsort((np.where(idx < 0, np.iinfo(np.int64).max, idx), key), axis=1)[:, :k]
    out_i = np.take_along_axis(idx, order, axis=1)
    out_s = np.take_along_axis(sc, order, axis=1)
    return out_i, np.where(out_i < 0, np.nan, out_s).astype(np.float32)


class BlockedSearcher(Searcher):
    """Exact search: queries and base both in blocks, top-k lists merged block by block."""

    query_block: int
    base_block: int

    @abstractmethod
    def _scores(self, queries: np.ndarray, base_start: int) -> np.ndarray:
        """(nq, block) float32 scores of the queries against one block of base rows."""

    def _blocked_top_k(self, q_all: np.ndarray, k: int, prepare: Callable[[np.ndarray], np.ndarray]) -> SearchResult:
        largest = self.higher_is_better
        n, nq = len(self), len(q_all)
        k_eff = min(k, n)
        out_i = np.full((nq, k), -1, dtype=np.int64)
        out_s = np.full((nq, k), np.nan, dtype=np.float32)
        if n == 0 or k_eff == 0:
            return SearchResult(out_i, out_s)
        for qs in range(0, nq, self.query_block):
            q = prepare(q_all[qs : qs + self.query_block])
            best_i = best_s = None
            for bs in range(0, n, self.base_block):
                bi, bsc = top_k(self._scores(q, bs), k_eff, largest=largest)
                bi = bi + bs
                if best_i is None:
                    best_i, best_s = bi, bsc
                else:
                    best_i, best_s = merge_top_k(best_i, best_s, bi, bsc, k_eff, largest=largest)
            out_i[qs : qs + len(q), :k_eff] = best_i
            out_s[qs : qs + len(q), :k_eff] = best_s
        return SearchResult(out_i, out_s)
