"""The all-pairs k-NN graph on a Dask cluster, partitioned by inverted-file cell (issue 11).

``sort``, ``cluster`` (graph mode) and ``dupes`` (CNN candidates) reach this through
``make_searcher(..., cluster=...)`` / ``knn_graph(..., cluster=...)`` when a Dask scheduler address or a
local worker count is given. Three steps, each the code of a local inverted file:

1. the driver (this process) learns the cells: :meth:`InvertedFileSearcher.learn_cells` (k-means on a
   sample, the same centroids as a local run) and sends the rows once (float16 as stored, in their order);
2. the workers file every row under its ``probes`` nearest cells (:func:`file_shard`: ``nearest_cells`` on
   shards of whole 8192-row blocks); the driver turns that into the cells' member lists (``train(probe)``);
3. the cells are cut into tasks of consecutive cells of about equal rows (:data:`TASKS_PER_WORKER` a worker).
   A task (:func:`search_group`) searches the rows of its cells against the members of the cells each row
   probes with :func:`lookalike.search.ivf.search_cells` and returns (position, neighbour ids, scores) as
   int32/float32 blocks, which the driver writes into the (N, k) graph as they arrive.

Candidates are merged by (score, id), so the graph is the local inverted file's for the same cells and probes:
measured, 2 of 1,000,000 neighbour ids differ at 100k rows (scores within 5e-7), which is what the local graph
itself does under another BLAS thread count (float products may differ in their last bit, so two neighbours
tied to 1e-6 can trade places). Exact search (at most ``EXACT_LIMIT`` rows, or ``exact=True``) is split by rows
instead: shards of whole ``ROW_BLOCK`` blocks, each searched by :meth:`ExactCosineSearcher.graph_rows` against
every row, as the local exact graph cuts them.

How the rows travel (``transport``): ``"file"`` saves them as .npy in a fresh folder under ``shared_dir`` (one
every worker sees under the same path; by default the system's temporary folder) and workers map it (one copy
in the page cache for every worker process of a machine, pages read as touched); ``"scatter"`` sends them
once through Dask (``client.scatter``: a copy in each worker's memory, fetched from peers). ``"auto"``: file
when ``shared_dir`` is given or every worker listens on loopback (a LocalCluster), scatter otherwise. Measured
in docs/BENCHMARKS.md ("Past one machine (issue 11)"): on one machine the file costs 0.1 s to write at 100k
rows against 2.8 s to scatter, for the same search time.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from lookalike.dask_cluster import (
    ClusterError,
    check_workers,
    connected,
    fingerprint,
    require_dask,
    workers_are_local,
)
from lookalike.search.base import ROW_BLOCK, Progress, Searcher, SearchResult, unit_block
from lookalike.search.exact import ExactCosineSearcher
from lookalike.search.ivf import InvertedFileSearcher, nearest_cells, search_cells

#: Tasks per worker: enough for the scheduler to even out slow and fast workers, few enough that each task
#: amortises its overhead (tens of milliseconds).
TASKS_PER_WORKER = 4
TRANSPORTS = ("auto", "file", "scatter")

#: rows a filing task sends to nearest_cells at once (its block size: the same products as a local filing)
FILE_BLOCK = 8192

_MAPPED: dict[str, np.ndarray] = {}  # a worker's mapped rows file (the latest run's)
_ROWS_SEARCHED = 0  # rows this worker process has searched (see :func:`worker_stats`)


@dataclass
class GraphStats:
    """What a k-NN graph on Dask did: the split, the transport, and where the time went (seconds)."""

    scheduler: str = ""
    workers: int = 0
    tasks: int = 0
    cells: int = 0
    exact: bool = False
    transport: str = ""
    train_s: float = 0.0  # driver: k-means on the sample (nothing in exact mode)
    send_s: float = 0.0  # driver: rows written to the shared file, or scattered
    file_s: float = 0.0  # workers: every row filed under its nearest cells (driver: the cells' member lists)
    search_s: float = 0.0  # from the first search task sent to the last block written
    file_task_s: list[float] = field(default_factory=list)  # each filing task's own seconds on its worker
    task_s: list[float] = field(default_factory=list)  # each search task's own seconds on its worker

    def to_json(self) -> dict:
        return {"scheduler": self.scheduler, "workers": self.workers, "tasks": self.tasks, "cells": self.cells,
                "exact": self.exact, "transport": self.transport, "train_s": round(self.train_s, 3),
                "send_s": round(self.send_s, 3), "file_s": round(self.file_s, 3),
                "search_s": round(self.search_s, 3), "file_task_s_sum": round(sum(self.file_task_s), 3),
                "task_s_sum": round(sum(self.task_s), 3)}


def _exact_bounds(n: int, shards: int) -> np.ndarray:
    """Row shards of whole ROW_BLOCK blocks (the local exact graph's blocks), at most ``shards``."""
    blocks = -(-n // ROW_BLOCK)
    per = -(-blocks // max(1, min(shards, blocks)))
    return np.unique(np.minimum(np.arange(0, blocks + per, per) * ROW_BLOCK, n))


def _groups(bounds: np.ndarray, tasks: int) -> list[tuple[int, int]]:
    """Consecutive runs of cells (c0, c1) of about equal rows, at most ``tasks`` of them, none empty."""
    n, cells = int(bounds[-1]), len(bounds) - 1
    cuts = np.searchsorted(bounds, np.linspace(0, n, max(1, tasks) + 1)[1:-1], side="left")
    edges = np.unique(np.concatenate([[0], np.clip(cuts, 1, cells), [cells]]))
    return [(int(a), int(b)) for a, b in zip(edges[:-1], edges[1:], strict=True) if bounds[b] > bounds[a]]


def _rows(source: Any) -> np.ndarray:
    """Run on a worker: the rows, scattered, or mapped from the folder the driver wrote (kept mapped for the
    next task of the same run; an older run's mapping is dropped)."""
    if not isinstance(source, str):
        return source
    if source not in _MAPPED:
        _MAPPED.clear()
        _MAPPED[source] = np.load(Path(source) / "rows.npy", mmap_mode="r")
    return _MAPPED[source]


def forget_rows(source: str) -> None:
    """Run on every worker after a graph: drop the mapping of that run's rows file."""
    _MAPPED.pop(source, None)


def _cells_index(index: Any) -> tuple[np.ndarray | None, np.ndarray]:
    """Run on a worker: (row ids cell by cell, cell bounds), given or from the run's folder."""
    if not isinstance(index, str):
        return index
    return np.load(Path(index) / "ids.npy", mmap_mode="r"), np.load(Path(index) / "bounds.npy")


def file_shard(source: Any, start: int, stop: int, centroids: np.ndarray, probes: int,
               wanted: dict) -> tuple[int, np.ndarray, float]:
    """Run on a worker: the ``probes`` nearest cells of rows start..stop, nearest first (int32)."""
    t0 = time.perf_counter()
    if fingerprint() != wanted:
        raise ClusterError(f"this worker runs {fingerprint()}, the driver {wanted}")
    probe = nearest_cells(_rows(source)[start:stop], centroids, probes, block=FILE_BLOCK)
    return start, probe.astype(np.int32), time.perf_counter() - t0


def search_group(source: Any, index: Any, c0: int, c1: int, probe: np.ndarray | None, k: int,
                 wanted: dict) -> tuple[int, np.ndarray, np.ndarray, float]:
    """Run on a worker: the k nearest other rows of the rows of cells c0..c1 (``probe``: their cells; None:
    exact search against every row). Returns (first position, ids (rows, k) int32, scores, seconds)."""
    global _ROWS_SEARCHED
    t0 = time.perf_counter()
    if fingerprint() != wanted:
        raise ClusterError(f"this worker runs {fingerprint()}, the driver {wanted}")
    rows = _rows(source)
    ids, bounds = _cells_index(index)
    s0, s1 = int(bounds[c0]), int(bounds[c1])
    if probe is None:  # exact: the rows' blocks, as the local exact graph cuts them
        searcher = ExactCosineSearcher(rows)
        out_i = np.empty((s1 - s0, k), dtype=np.int64)
        out_s = np.empty((s1 - s0, k), dtype=np.float32)
        for s in range(s0, s1, ROW_BLOCK):
            e = min(s1, s + ROW_BLOCK)
            out_i[s - s0 : e - s0], out_s[s - s0 : e - s0] = searcher.graph_rows(s, e, k)
    else:
        assert ids is not None
        mine = np.asarray(ids[s0:s1])

        def cell(c: int) -> tuple[np.ndarray, np.ndarray]:
            members = np.asarray(ids[int(bounds[c]) : int(bounds[c + 1])])
            return members, unit_block(rows[members])

        res = search_cells(np.asarray(probe, dtype=np.int64), lambda q: unit_block(rows[mine[q]]), cell, k, mine)
        out_i, out_s = res.indices, res.scores
    _ROWS_SEARCHED += s1 - s0
    return s0, out_i.astype(np.int32), out_s, time.perf_counter() - t0


def worker_stats() -> dict:
    """Run on a worker (``client.run(worker_stats)``): how many rows this process has searched for graphs."""
    return {"rows_searched": _ROWS_SEARCHED, "pid": os.getpid()}


def _transport(transport: str, client: Any, shared_dir: str | os.PathLike | None) -> str:
    if transport not in TRANSPORTS:
        raise ValueError(f"transport must be one of {TRANSPORTS}, not {transport!r}")
    if transport == "auto":
        return "file" if shared_dir is not None or workers_are_local(client) else "scatter"
    return transport


def knn_graph_on_cluster(
    data: np.ndarray,
    k: int,
    cluster: str | int | Any,
    *,
    exact: bool = False,
    probes: int = 4,
    cells: int | None = None,
    seed: int = 0,
    transport: str = "auto",
    shared_dir: str | os.PathLike | None = None,
    progress: Progress | None = None,
    stats: GraphStats | None = None,
) -> SearchResult:
    """Every row's k best *other* rows (cosine), computed on a Dask cluster; padded with -1 / NaN like
    :meth:`Searcher.knn_graph`. The graph ``InvertedFileSearcher(data, probes, cells, seed)`` (or, with
    ``exact``, ``ExactCosineSearcher``) computes here (float products may differ in the last bit: see the
    module docstring).

    ``cluster``: a scheduler address, a number of local worker processes (a LocalCluster for this call), or a
    connected ``distributed.Client``. ``transport`` / ``shared_dir``: how the rows reach the workers (see the
    module docstring). ``stats``: filled with the split and the timings."""
    data = np.asarray(data)
    n = len(data)
    stats = stats if stats is not None else GraphStats()
    if n < 2 or k < 1:
        return SearchResult(np.full((n, max(k, 0)), -1, np.int64), np.full((n, max(k, 0)), np.nan, np.float32))
    if n > np.iinfo(np.int32).max:
        raise ValueError("more rows than int32 ids can number")
    distributed = require_dask()
    if isinstance(cluster, distributed.Client):
        return _Run(cluster, data, k, stats).graph(exact, probes, cells, seed, transport, shared_dir, progress)
    with connected(cluster) as (client, _local, address):
        stats.scheduler = address
        return _Run(client, data, k, stats).graph(exact, probes, cells, seed, transport, shared_dir, progress)


class _Run:
    """One graph on one client: send the rows, file them (approximate), search, assemble."""

    def __init__(self, client: Any, data: np.ndarray, k: int, stats: GraphStats) -> None:
        self.client, self.data, self.k, self.stats = client, data, k, stats
        self.distributed = require_dask()
        self.futures: list[Any] = []
        self.wanted = fingerprint()
        self.tag = f"{os.getpid()}-{time.time_ns()}"

    def graph(self, exact: bool, probes: int, cells: int | None, seed: int, transport: str,
              shared_dir: str | os.PathLike | None, progress: Progress | None) -> SearchResult:
        st, n = self.stats, len(self.data)
        st.scheduler = st.scheduler or str(self.client.scheduler.address)
        st.exact, st.transport = exact, _transport(transport, self.client, shared_dir)
        st.workers = check_workers(self.client)
        tasks = st.workers * TASKS_PER_WORKER
        folder: Path | None = None
        try:
            t0 = time.perf_counter()
            ivf = None if exact else InvertedFileSearcher(self.data, probes=probes, cells=cells, seed=seed)
            centroids = None if ivf is None else ivf.learn_cells()
            t1 = time.perf_counter()
            st.train_s = t1 - t0
            if st.transport == "file":
                try:
                    folder = Path(tempfile.mkdtemp(prefix="lookalike-knn-", dir=shared_dir))
                    np.save(folder / "rows.npy", self.data)
                except OSError as exc:
                    raise ClusterError(f"cannot write the rows for the Dask workers under "
                                       f"{shared_dir or tempfile.gettempdir()}: {exc.strerror or exc}") from exc
                source: Any = str(folder)
            else:
                [source] = self.client.scatter([self.data], hash=False)
            t2 = time.perf_counter()
            st.send_s = t2 - t1
            if ivf is None:
                bounds, ids, probe = _exact_bounds(n, tasks), None, None
                index: Any = (None, bounds)
            else:
                ivf.train(self._file(source, centroids, min(probes, len(centroids)), tasks))
                lay = ivf.layout()
                bounds, ids, probe = lay.bounds, lay.members, lay.probe[lay.members].astype(np.int32)
                if folder is not None:
                    np.save(folder / "ids.npy", ids)
                    np.save(folder / "bounds.npy", bounds)
                    index = str(folder)
                else:
                    [index] = self.client.scatter([(ids, bounds)], hash=False)
            t3 = time.perf_counter()
            st.file_s = t3 - t2
            st.cells = len(bounds) - 1
            out = self._search(source, index, bounds, ids, probe, tasks, progress)
            st.search_s = time.perf_counter() - t3
            return out
        except BaseException:
            if self.futures:
                self.client.cancel(self.futures)
            raise
        finally:
            if folder is not None:
                with contextlib.suppress(Exception):  # workers let go of the file (its pages), then it goes
                    self.client.run(forget_rows, str(folder))
                shutil.rmtree(folder, ignore_errors=True)

    def _file(self, source: Any, centroids: np.ndarray, probes: int, tasks: int) -> np.ndarray:
        """Every row's ``probes`` nearest cells, computed by the workers in shards of whole FILE_BLOCKs."""
        n = len(self.data)
        per = max(FILE_BLOCK, -(-n // (tasks * FILE_BLOCK)) * FILE_BLOCK)
        [cent] = self.client.scatter([centroids], hash=False)
        self.futures = [self.client.submit(file_shard, source, s, min(n, s + per), cent, probes, self.wanted,
                                           pure=False, key=f"lookalike-knn-file-{s}-{self.tag}")
                        for s in range(0, n, per)]
        probe = np.empty((n, probes), dtype=np.int64)
        for _fut, (s, part, seconds) in self.distributed.as_completed(self.futures, with_results=True):
            probe[s : s + len(part)] = part
            self.stats.file_task_s.append(seconds)
        self.futures = []
        return probe

    def _search(self, source: Any, index: Any, bounds: np.ndarray, ids: np.ndarray | None,
                probe: np.ndarray | None, tasks: int, progress: Progress | None) -> SearchResult:
        n, k = len(self.data), self.k
        groups = _groups(bounds, tasks)
        self.stats.tasks = len(groups)
        self.futures = [self.client.submit(search_group, source, index, c0, c1,
                                           None if probe is None else probe[bounds[c0] : bounds[c1]], k,
                                           self.wanted, pure=False, key=f"lookalike-knn-{i}-{self.tag}")
                        for i, (c0, c1) in enumerate(groups)]
        out_i = np.full((n, k), -1, dtype=np.int64)
        out_s = np.full((n, k), np.nan, dtype=np.float32)
        done = 0
        for _fut, (s0, idx, sc, seconds) in self.distributed.as_completed(self.futures, with_results=True):
            target = ids[s0 : s0 + len(idx)] if ids is not None else np.arange(s0, s0 + len(idx))
            out_i[target], out_s[target] = idx, sc
            self.stats.task_s.append(seconds)
            done += len(idx)
            if progress:
                progress(done, n)
        self.futures = []
        return SearchResult(out_i, out_s)


class DaskGraphSearcher(Searcher):
    """A searcher whose :meth:`knn_graph` runs on a Dask cluster (:func:`knn_graph_on_cluster`); single
    queries are answered here by the local searcher of the same kind."""

    def __init__(self, data: np.ndarray, cluster: str | int | Any, exact: bool, probes: int = 4,
                 seed: int = 0) -> None:
        self.data = np.asarray(data)
        self.cluster, self.exact, self.probes, self.seed = cluster, exact, probes, seed
        self.stats = GraphStats()
        self._local: Searcher = (ExactCosineSearcher(self.data) if exact
                                 else InvertedFileSearcher(self.data, probes=probes, seed=seed))

    def query(self, queries: np.ndarray, k: int) -> SearchResult:
        return self._local.query(queries, k)

    def knn_graph(self, k: int, progress: Callable[[int, int], None] | None = None) -> SearchResult:
        return knn_graph_on_cluster(self.data, k, self.cluster, exact=self.exact, probes=self.probes,
                                    seed=self.seed, progress=progress, stats=self.stats)
