"""The all-pairs k-NN graph on a Dask cluster, partitioned by inverted-file cell (issue 11).

``sort``, ``cluster`` (graph mode) and ``dupes`` (CNN candidates) reach this through
``make_searcher(..., cluster=...)`` / ``knn_graph(..., cluster=...)`` when a Dask scheduler address or a
local worker count is given. The driver (this process) does what a local run does before the search:
:meth:`InvertedFileSearcher.layout` learns the cells on a sample and files every row under its nearest cell
(and lists its ``probes`` nearest). The rows are then laid out cell by cell (float16, as stored), sent once,
and cut into tasks of consecutive cells (about :data:`TASKS_PER_WORKER` a worker, equal rows). A task
searches the rows of its cells against the members of the cells each row probes, with the very code of a
local search (:func:`lookalike.search.ivf.search_cells`), and returns (first row, neighbour ids, scores) as
int32/float32 blocks; the driver writes each block into the (N, k) graph as it arrives. Candidates are
merged by (score, id), so the graph equals the local inverted file's for the same cells and probes.

Exact search (at most ``EXACT_LIMIT`` rows, or ``exact=True``) is split by rows instead: shards of whole
``ROW_BLOCK`` blocks, each searched by :meth:`ExactCosineSearcher.graph_rows` against every row, so the
graph equals the local exact graph.

How the rows travel (``transport``): ``"file"`` writes them to a memory-mapped .npy under ``shared_dir``
(a folder every worker sees under the same path; for a LocalCluster, the system's temporary folder) and
workers map it (pages shared by every worker process of a machine, read as touched); ``"scatter"`` sends
them once through Dask (``client.scatter``: a copy in each worker's memory). ``"auto"``: file for a local
cluster or when ``shared_dir`` is given, scatter otherwise. Both are measured in docs/BENCHMARKS.md.
"""

from __future__ import annotations

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
from lookalike.search.ivf import InvertedFileSearcher, search_cells

#: Tasks per worker: enough for the scheduler to even out slow and fast workers, few enough that each task
#: amortises its overhead (tens of milliseconds).
TASKS_PER_WORKER = 4
TRANSPORTS = ("auto", "file", "scatter")

_MAPPED: dict[str, tuple[np.ndarray, np.ndarray | None, np.ndarray]] = {}  # a worker's open file (the latest)
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
    train_s: float = 0.0  # driver: cells learnt and rows filed (nothing in exact mode)
    send_s: float = 0.0  # driver: rows laid out and written / scattered
    search_s: float = 0.0  # from the first task sent to the last block written
    task_s: list[float] = field(default_factory=list)  # each task's own seconds on its worker

    def to_json(self) -> dict:
        return {"scheduler": self.scheduler, "workers": self.workers, "tasks": self.tasks, "cells": self.cells,
                "exact": self.exact, "transport": self.transport, "train_s": round(self.train_s, 3),
                "send_s": round(self.send_s, 3), "search_s": round(self.search_s, 3),
                "task_s_sum": round(sum(self.task_s), 3)}


@dataclass
class _Split:
    """The order tasks read the rows in (cell by cell): the id of each ordered row (None: the identity), the
    cell boundaries, and ``probe`` (n, probes): each ordered row's cells (None in exact mode: every row)."""

    ids: np.ndarray | None
    bounds: np.ndarray
    probe: np.ndarray | None


def _ivf_split(data: np.ndarray, probes: int, cells: int | None, seed: int) -> _Split:
    lay = InvertedFileSearcher(data, probes=probes, cells=cells, seed=seed).layout()
    return _Split(lay.members, lay.bounds, lay.probe[lay.members].astype(np.int32))


def _exact_split(n: int, shards: int) -> _Split:
    blocks = -(-n // ROW_BLOCK)
    per = -(-blocks // max(1, min(shards, blocks)))
    bounds = np.minimum(np.arange(0, blocks + per, per) * ROW_BLOCK, n)
    return _Split(None, np.unique(bounds), None)


def _groups(bounds: np.ndarray, tasks: int) -> list[tuple[int, int]]:
    """Consecutive runs of cells (c0, c1) of about equal rows, at most ``tasks`` of them, none empty."""
    n, cells = int(bounds[-1]), len(bounds) - 1
    cuts = np.searchsorted(bounds, np.linspace(0, n, max(1, tasks) + 1)[1:-1], side="left")
    edges = np.unique(np.concatenate([[0], np.clip(cuts, 1, cells), [cells]]))
    return [(int(a), int(b)) for a, b in zip(edges[:-1], edges[1:], strict=True) if bounds[b] > bounds[a]]


def _write_rows(folder: Path, data: np.ndarray, split: _Split) -> None:
    """The rows in task order, as .npy files in ``folder`` (block by block: no second copy in memory)."""
    ordered = np.lib.format.open_memmap(folder / "rows.npy", mode="w+", dtype=data.dtype, shape=data.shape)
    for s in range(0, len(data), 65536):
        e = min(len(data), s + 65536)
        ordered[s:e] = data[split.ids[s:e]] if split.ids is not None else data[s:e]
    ordered.flush()
    del ordered
    np.save(folder / "bounds.npy", split.bounds)
    if split.ids is not None:
        np.save(folder / "ids.npy", split.ids)


def _arrays(source: Any) -> tuple[np.ndarray, np.ndarray | None, np.ndarray]:
    """Run on a worker: (rows, ids, bounds) from a scattered tuple, or mapped from a folder written by the
    driver (kept open for the next task of the same run; an older run's mapping is dropped)."""
    if not isinstance(source, str):
        return source
    if source not in _MAPPED:
        _MAPPED.clear()
        folder = Path(source)
        ids = np.load(folder / "ids.npy", mmap_mode="r") if (folder / "ids.npy").exists() else None
        _MAPPED[source] = (np.load(folder / "rows.npy", mmap_mode="r"), ids, np.load(folder / "bounds.npy"))
    return _MAPPED[source]


def search_group(source: Any, c0: int, c1: int, probe: np.ndarray | None, k: int,
                 wanted: dict) -> tuple[int, np.ndarray, np.ndarray, float]:
    """Run on a worker: the k nearest other rows of the rows of cells c0..c1 (``probe``: their cells; None:
    exact search against every row). Returns (first ordered row, ids (rows, k) int32, scores, seconds)."""
    t0 = time.perf_counter()
    if fingerprint() != wanted:
        raise ClusterError(f"this worker runs {fingerprint()}, the driver {wanted}")
    rows, ids, bounds = _arrays(source)
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

        def cell(c: int) -> tuple[np.ndarray, np.ndarray]:
            a, b = int(bounds[c]), int(bounds[c + 1])
            return np.asarray(ids[a:b]), unit_block(rows[a:b])

        res = search_cells(np.asarray(probe, dtype=np.int64), lambda q: unit_block(rows[s0 + q]), cell, k,
                           np.asarray(ids[s0:s1]))
        out_i, out_s = res.indices, res.scores
    global _ROWS_SEARCHED
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
    :meth:`Searcher.knn_graph`. The same graph as ``InvertedFileSearcher(data, probes, cells, seed)`` (or, with
    ``exact``, as ``ExactCosineSearcher``) computes here.

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
        return _on_client(cluster, str(cluster.scheduler.address), data, k, exact, probes, cells, seed,
                          transport, shared_dir, progress, stats)
    with connected(cluster) as (client, _local, address):
        return _on_client(client, address, data, k, exact, probes, cells, seed, transport, shared_dir,
                          progress, stats)


def _on_client(client: Any, address: str, data: np.ndarray, k: int, exact: bool, probes: int,
               cells: int | None, seed: int, transport: str, shared_dir: str | os.PathLike | None,
               progress: Progress | None, stats: GraphStats) -> SearchResult:
    distributed = require_dask()
    n = len(data)
    stats.scheduler, stats.exact = address, exact
    stats.transport = _transport(transport, client, shared_dir)
    stats.workers = check_workers(client)
    tasks = stats.workers * TASKS_PER_WORKER
    t0 = time.perf_counter()
    split = _exact_split(n, tasks) if exact else _ivf_split(data, probes, cells, seed)
    stats.cells = len(split.bounds) - 1
    groups = _groups(split.bounds, tasks)
    stats.tasks = len(groups)
    t1 = time.perf_counter()
    stats.train_s = t1 - t0
    folder: Path | None = None
    futures: list[Any] = []
    try:
        if stats.transport == "file":
            folder = Path(tempfile.mkdtemp(prefix="lookalike-knn-", dir=shared_dir))
            _write_rows(folder, data, split)
            source: Any = str(folder)
        else:
            rows = data[split.ids] if split.ids is not None else data
            [source] = client.scatter([(rows, split.ids, split.bounds)], hash=False)
            del rows
        t2 = time.perf_counter()
        stats.send_s = t2 - t1
        wanted = fingerprint()
        tag = f"{os.getpid()}-{time.time_ns()}"
        futures = [client.submit(search_group, source, c0, c1,
                                 None if split.probe is None else split.probe[split.bounds[c0] : split.bounds[c1]],
                                 k, wanted, pure=False, key=f"lookalike-knn-{i}-{tag}")
                   for i, (c0, c1) in enumerate(groups)]
        out_i = np.full((n, k), -1, dtype=np.int64)
        out_s = np.full((n, k), np.nan, dtype=np.float32)
        done = 0
        for _fut, (s0, idx, sc, seconds) in distributed.as_completed(futures, with_results=True):
            rows_at = slice(s0, s0 + len(idx))
            target = split.ids[rows_at] if split.ids is not None else np.arange(s0, s0 + len(idx))
            out_i[target], out_s[target] = idx, sc
            stats.task_s.append(seconds)
            done += len(idx)
            if progress:
                progress(done, n)
        stats.search_s = time.perf_counter() - t2
        return SearchResult(out_i, out_s)
    except BaseException:
        if futures:
            client.cancel(futures)
        raise
    finally:
        if folder is not None:
            shutil.rmtree(folder, ignore_errors=True)


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
