"""Approximate cosine search with an inverted file (moved here from organise/knn.py, issue 11).

k-means cells are learnt on a sample, every row is filed under its nearest cell, and each query is
searched exactly among the members of its ``probes`` nearest cells. Cost: about N * probes * N / cells
dot products for the all-pairs graph (cells ~ 2 sqrt(N), so N^1.5), against N^2 for exact search.
Memory: the stored rows (float16 from the catalog), the centroids, the (N, k) result and one cell in
float32 at a time; never N x N and never the whole collection in float32.

Measured against faiss IVF on the same 100k x 1280 vectors (docs/BENCHMARKS.md): this builds the
all-pairs k-NN graph in about half the time at the same recall, because it searches a whole cell's
queries with one matrix product; faiss serves the persisted single-query index (see index.py).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from lookalike.search.base import (
    Progress,
    Searcher,
    SearchResult,
    merge_top_k,
    unit_block,
)
from lookalike.search.exact import ExactCosineSearcher

#: products (queries x members) per block inside a cell: bounds the float32 score block to 64 MB
CELL_PRODUCTS = 16_000_000
#: k-means sample: this many rows per cell
SAMPLE_PER_CELL = 40
KMEANS_ITERS = 8


def cells_for(n: int) -> int:
    """Number of k-means cells for n rows: about 2 sqrt(n), at least 64 rows a cell on average."""
    return int(max(1, min(n // 64, round(2 * np.sqrt(n)))))


def kmeans_cosine(x: np.ndarray, cells: int, iters: int, rng: np.random.Generator) -> np.ndarray:
    """Spherical k-means (unit centroids, assignment by largest cosine) on float32 unit rows ``x``."""
    cent = x[rng.choice(len(x), cells, replace=False)].copy()
    for _ in range(iters):
        assign = nearest_cells(x, cent, 1)[:, 0]
        sums = np.zeros_like(cent)
        np.add.at(sums, assign, x)
        norms = np.linalg.norm(sums, axis=1, keepdims=True)
        empty = norms[:, 0] == 0
        cent = np.where(empty[:, None], cent, sums / np.where(norms == 0, 1, norms))
    return cent.astype(np.float32)


def nearest_cells(rows: np.ndarray, cent: np.ndarray, probes: int, block: int = 8192) -> np.ndarray:
    """(n, probes) the probes nearest centroids of every row, nearest first (rows converted per block)."""
    n = len(rows)
    out = np.empty((n, probes), dtype=np.int64)
    for s in range(0, n, block):
        sims = unit_block(rows[s : s + block]) @ cent.T
        if probes < sims.shape[1]:
            part = np.argpartition(-sims, probes - 1, axis=1)[:, :probes]
        else:
            part = np.tile(np.arange(sims.shape[1]), (len(sims), 1))
        order = np.argsort(-np.take_along_axis(sims, part, axis=1), axis=1, kind="stable")
        out[s : s + block] = np.take_along_axis(part, order, axis=1)
    return out


class InvertedFileSearcher(Searcher):
    """Approximate cosine search over unit rows: exact inside each query's ``probes`` nearest cells.

    The cells are learnt on first use. A ``query`` of few rows (under 1/64 of the collection) before any
    training is answered by an exact scan instead: k-means on the collection costs more than that."""

    higher_is_better = True
    exact = False

    def __init__(self, data: np.ndarray, probes: int = 4, cells: int | None = None, seed: int = 0) -> None:
        self.data = np.asarray(data)
        self.probes = probes
        self.seed = seed
        self._cells = cells
        self._learnt: np.ndarray | None = None
        self._cent: np.ndarray | None = None
        self._members: np.ndarray | None = None
        self._bounds: np.ndarray | None = None
        self._probe: np.ndarray | None = None

    def learn_cells(self) -> np.ndarray:
        """The cells' unit centroids, learnt by k-means on a sample (once; the same for the same seed)."""
        if self._learnt is None:
            n = len(self)
            rng = np.random.default_rng(self.seed)
            cells = max(1, min(self._cells or cells_for(n), n))
            sample = unit_block(self.data[np.sort(rng.choice(n, min(n, SAMPLE_PER_CELL * cells), replace=False))])
            self._learnt = kmeans_cosine(sample, cells, KMEANS_ITERS, rng)
        return self._learnt

    def train(self, probe: np.ndarray | None = None) -> None:
        """Learn the cells and file every row under its nearest one (done once). ``probe``: the filing when it
        was computed elsewhere: ``nearest_cells(data, learn_cells(), probes)`` (a Dask cluster's, by shards)."""
        if self._cent is not None:
            return
        cent = self.learn_cells()
        # every row's probes nearest cells, once: the first is its home, all are searched by knn_graph
        self._probe = nearest_cells(self.data, cent, min(self.probes, len(cent))) if probe is None else probe
        self._cent = cent
        home = self._probe[:, 0]
        self._members = np.argsort(home, kind="stable")
        self._bounds = np.searchsorted(home[self._members], np.arange(len(cent) + 1))

    def query(self, queries: np.ndarray, k: int) -> SearchResult:
        q = unit_block(np.atleast_2d(queries))
        if self._cent is None and len(q) * 64 < len(self):
            return ExactCosineSearcher(self.data).query(q, k)
        self.train()
        return self._search(lambda rows: q[rows], len(q), k, None, None)

    def knn_graph(self, k: int, progress: Progress | None = None) -> SearchResult:
        """Every row's k best other rows (approximate), padded with -1 / NaN like the exact graph."""
        n = len(self)
        if n < 2:
            return SearchResult(np.full((n, k), -1, np.int64), np.full((n, k), np.nan, np.float32))
        self.train()
        return self._search(lambda rows: unit_block(self.data[rows]), n, k, np.arange(n), progress)

    def layout(self) -> CellLayout:
        """The trained cells (learnt on first use): what a search split across machines needs."""
        self.train()
        assert self._cent is not None and self._members is not None and self._bounds is not None
        assert self._probe is not None
        return CellLayout(self._cent, self._members, self._bounds, self._probe[:, : min(self.probes, len(self._cent))])

    def _search(self, rows_of, nq: int, k: int, self_rows: np.ndarray | None,
                progress: Progress | None) -> SearchResult:
        assert self._cent is not None and self._members is not None and self._bounds is not None
        cells = len(self._cent)
        probes = min(self.probes, cells)
        # the cells each query probes
        if self_rows is None:
            probe = nearest_cells(rows_of(np.arange(nq)), self._cent, probes)
        else:
            assert self._probe is not None
            probe = self._probe[:, :probes]
        members, bounds = self._members, self._bounds

        def cell(c: int) -> tuple[np.ndarray, np.ndarray]:
            base = members[bounds[c] : bounds[c + 1]]
            return base, unit_block(self.data[base])

        return search_cells(probe, rows_of, cell, k, self_rows,
                            None if progress is None else (lambda c: progress(c + 1, cells)))


@dataclass
class CellLayout:
    """Trained cells: ``members`` (row ids sorted by home cell), ``bounds`` (cell c holds
    ``members[bounds[c]:bounds[c + 1]]``) and ``probe`` (n, probes): each row's nearest cells, home first."""

    centroids: np.ndarray
    members: np.ndarray
    bounds: np.ndarray
    probe: np.ndarray


def search_cells(probe: np.ndarray, rows_of: Callable[[np.ndarray], np.ndarray],
                 cell: Callable[[int], tuple[np.ndarray, np.ndarray]], k: int,
                 self_ids: np.ndarray | None = None, done: Callable[[int], None] | None = None) -> SearchResult:
    """Each query's k best rows among the members of the cells it probes (exact inside those cells).

    ``probe`` (nq, probes): the cells of each query; ``rows_of(positions)``: those queries as float32 unit rows;
    ``cell(c)``: (member ids, their float32 unit rows); ``self_ids``: each query's own id when the queries are
    members (never its own neighbour). Cells are searched in ascending order, each against every query that
    probes it, in blocks; ``done(c)`` after each. The result does not depend on which queries are searched
    together: candidates are merged by (score, id)."""
    nq, probes = probe.shape
    # for each probe slot, the queries sorted by that cell
    q_sorted = np.argsort(probe, axis=0, kind="stable")
    q_cells = np.take_along_axis(probe, q_sorted, axis=0)
    best_i = np.full((nq, k), -1, dtype=np.int64)
    best_s = np.full((nq, k), np.nan, dtype=np.float32)
    for c in np.unique(probe).tolist():
        base, xb = cell(c)
        if len(base) == 0:
            continue
        slots = []
        for p in range(probes):
            lo, hi = np.searchsorted(q_cells[:, p], [c, c + 1])
            slots.append(q_sorted[lo:hi, p])
        qs = np.concatenate(slots)
        kk = min(k, len(base))
        step = int(max(64, min(4096, CELL_PRODUCTS // len(base))))
        for s in range(0, len(qs), step):
            qb = qs[s : s + step]
            sims = rows_of(qb) @ xb.T
            if self_ids is not None:
                sims[base[None, :] == self_ids[qb][:, None]] = -np.inf
            part = np.argpartition(-sims, kk - 1, axis=1)[:, :kk] if kk < len(base) else \
                np.tile(np.arange(len(base)), (len(qb), 1))
            cand_s = np.take_along_axis(sims, part, axis=1)
            cand_i = np.where(np.isfinite(cand_s), base[part], -1)
            if kk < k:
                cand_i = np.pad(cand_i, ((0, 0), (0, k - kk)), constant_values=-1)
                cand_s = np.pad(cand_s, ((0, 0), (0, k - kk)), constant_values=np.nan)
            best_i[qb], best_s[qb] = merge_top_k(best_i[qb], best_s[qb], cand_i, cand_s, k, largest=True)
        if done:
            done(c)
    return SearchResult(best_i, best_s)
