"""Order photos so that neighbours look alike: a short open path through the k-NN graph.

1. Greedy edge matching: take the k-NN edges from shortest to longest (ties by index) and keep an edge
   when both ends still have fewer than two path neighbours and it closes no cycle. This leaves path
   fragments, each made only of short edges.
2. Joining: the fragments' end points are searched against each other (k-NN among end points only) and
   joined greedily the same way, round after round, until one path remains.
3. Local search with don't-look bits: 2-opt and Or-opt moves (segments of 1-3 photos, either way round),
   each tried only towards a photo's k nearest neighbours, applied while they shorten the path.

Everything is decided by (distance, index) with distances rounded to 1e-6 and rows in path order, so the
same input gives the same order, and adding one photo changes the path only around it.
"""

from __future__ import annotations

import os
from collections import deque
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from lookalike.catalog import Catalog
from lookalike.dask_cluster import local_session
from lookalike.features import DEFAULT_MODEL
from lookalike.index import Progress
from lookalike.options import check_cluster, check_sort_options
from lookalike.organise.vectors import Vectors, load_vectors
from lookalike.search import EXACT_LIMIT, KnnGraph, knn_graph

if TYPE_CHECKING:
    from lookalike.journal import ApplyReport, Plan

#: Neighbours per photo in the k-NN graph the path is drawn through.
DEFAULT_K = 10


@dataclass
class SortResult:
    """``order``: absolute paths, similar photos next to each other. ``distances``: between neighbours."""

    order: list[str]
    model: str = DEFAULT_MODEL
    distances: list[float] = field(default_factory=list)

    def to_json(self) -> dict:
        return {"order": list(self.order)}

    @property
    def mean_distance(self) -> float:
        return float(np.mean(self.distances)) if self.distances else 0.0

    def keys(self) -> list[str]:
        """One sort key per photo (its zero-padded rank), in ``order``."""
        width = rank_width(len(self.order))
        return [f"{i:0{width}d}" for i in range(1, len(self.order) + 1)]


def rank_width(count: int) -> int:
    """Digits needed to number ``count`` photos from 1 (at least 2)."""
    return max(2, len(str(max(count, 1))))


class _UnionFind:
    def __init__(self, n: int) -> None:
        self.parent = list(range(n))

    def find(self, a: int) -> int:
        parent = self.parent
        root = a
        while parent[root] != root:
            root = parent[root]
        while parent[a] != root:
            parent[a], a = root, parent[a]
        return root

    def union(self, a: int, b: int) -> bool:
        ra, rb = self.find(a), self.find(b)
        if ra == rb:
            return False
        if ra < rb:
            ra, rb = rb, ra
        self.parent[ra] = rb
        return True


def _greedy_add(a: np.ndarray, b: np.ndarray, deg: np.ndarray, adj: list[list[int]], uf: _UnionFind) -> int:
    """Join each pair (a[i], b[i]) in order whose ends are both free (degree < 2) and in two different
    fragments; returns how many were joined."""
    added = 0
    for u, v in zip(a.tolist(), b.tolist(), strict=True):
        if deg[u] < 2 and deg[v] < 2 and uf.union(u, v):
            adj[u].append(v)
            adj[v].append(u)
            deg[u] += 1
            deg[v] += 1
            added += 1
    return added


def _fragments_path(vec: Vectors, graph: KnnGraph, progress: Progress | None) -> list[int]:
    n = len(vec)
    deg = np.zeros(n, dtype=np.int64)
    adj: list[list[int]] = [[] for _ in range(n)]
    uf = _UnionFind(n)
    a, b, _ = graph.edges()
    joined = _greedy_add(a, b, deg, adj, uf)
    k = graph.idx.shape[1]
    while joined < n - 1:
        ends = np.flatnonzero(deg < 2)
        sub = Vectors([vec.paths[i] for i in ends], vec.x[ends], vec.kind)
        g = knn_graph(sub, min(max(k, 4), len(ends) - 1), exact_limit=EXACT_LIMIT)
        ea, eb, _ = g.edges()
        ea, eb = ends[ea], ends[eb]
        roots = np.array([uf.find(i) for i in range(n)])
        cross = roots[ea] != roots[eb]
        got = _greedy_add(ea[cross], eb[cross], deg, adj, uf)
        if got == 0:  # cannot happen with k >= 2, but never loop forever: chain what is left by index
            rest = np.asarray([i for i in ends.tolist() if deg[i] < 2], dtype=np.int64)
            got += _greedy_add(rest[:-1], rest[1:], deg, adj, uf)
        joined += got
        if progress:
            progress(joined, max(n - 1, 1))
    # walk the single path from its end with the lower index
    start = int(np.flatnonzero(deg < 2).min()) if n else 0
    path, prev, cur = [start], -1, start
    for _ in range(n - 1):
        nxt = adj[cur][0] if adj[cur][0] != prev else adj[cur][1]
        path.append(nxt)
        prev, cur = cur, nxt
    return path


#: float64 rows the local search keeps (a cache: its moves look at a few photos around two places of the
#: path at a time, and it walks the path in order): 16,384 rows of 1280 values are 160 MiB
ROW_CACHE = 16384
#: path positions on either side of a photo that an Or-opt move around it can touch (segments of 1-3)
_REACH = 3


class _Path:
    """An open path as arrays: p (nodes), pos (node -> position), elen (length of edge p[i] - p[i+1]).

    Distances are the cosines of the stored rows in float64 (products of float16 or float32 values are
    exact there, so a distance does not depend on how or where it is computed), mapped to 0..1 and
    rounded to 1e-6. Rows are turned into float64 only as the search reaches them, kept in a bounded
    cache (``cache_rows``): never a whole-collection copy."""

    def __init__(self, vec: Vectors, order: Sequence[int], cache_rows: int = ROW_CACHE) -> None:
        self.vec = vec
        self.x = vec.x
        self.hash = vec.kind == "hash"
        self.p = np.asarray(order, dtype=np.int64)
        self.n = len(self.p)
        self.pos = np.empty(self.n, dtype=np.int64)
        self.pos[self.p] = np.arange(self.n)
        cap = max(1, min(self.n, cache_rows))
        self._cache = np.empty((cap, self.x.shape[1] if self.x.ndim == 2 else 0), dtype=np.float64)
        self._slot: dict[int, int] = {}
        self._owner = [-1] * cap
        self._next = 0
        self.elen = np.zeros(max(self.n - 1, 0), dtype=np.float64)
        for s in range(0, self.n - 1, 8192):
            e = min(self.n - 1, s + 8192)
            a = np.asarray(self.x[self.p[s:e]], dtype=np.float64)
            b = np.asarray(self.x[self.p[s + 1 : e + 1]], dtype=np.float64)
            self.elen[s:e] = self._dist(np.einsum("ij,ij->i", a, b))

    def _dist(self, cos: np.ndarray) -> np.ndarray:
        v = (1.0 - cos) * 0.5 if self.hash else 1.0 - cos
        return np.round(np.clip(v, 0.0, 1.0), 6)

    def rows(self, nodes: Sequence[int]) -> np.ndarray:
        """float64 rows of ``nodes`` (through the cache; the oldest entries make room)."""
        out = np.empty((len(nodes), self._cache.shape[1]), dtype=np.float64)
        hit_k, hit_s, miss_k, miss_u = [], [], [], []
        slot = self._slot
        for k, u in enumerate(nodes):
            s = slot.get(u)
            if s is None:
                miss_k.append(k)
                miss_u.append(u)
            else:
                hit_k.append(k)
                hit_s.append(s)
        if hit_k:
            out[hit_k] = self._cache[hit_s]
        if miss_k:
            fresh = np.asarray(self.x[miss_u], dtype=np.float64)
            out[miss_k] = fresh
            cap = len(self._owner)
            for u, row in zip(miss_u, fresh, strict=True):
                if u in slot:  # asked for twice in one call
                    continue
                s = self._next
                self._next = (s + 1) % cap
                old = self._owner[s]
                if old >= 0:
                    del slot[old]
                self._owner[s] = u
                slot[u] = s
                self._cache[s] = row
        return out

    def distances_among(self, positions: Sequence[int]) -> list[list[float]]:
        """Distances among the photos at ``positions`` (one product), as nested lists."""
        r = self.rows([int(self.p[q]) for q in positions])
        return self._dist(r @ r.T).tolist()

    def d(self, a: int, b: int) -> float:
        r = self.rows([a, b])
        return float(self._dist(np.dot(r[0], r[1])))

    def edge(self, x: int) -> float:
        return float(self.elen[x]) if 0 <= x < self.n - 1 else 0.0

    def reverse(self, x: int, y: int) -> None:
        """Reverse p[x+1 .. y] (x may be -1, y may be n-1)."""
        lo, hi = x + 1, y
        if hi <= lo:
            return
        p = self.p
        p[lo : hi + 1] = p[lo : hi + 1][::-1].copy()
        self.pos[p[lo : hi + 1]] = np.arange(lo, hi + 1)
        if hi - 1 >= lo:
            self.elen[lo:hi] = self.elen[lo:hi][::-1].copy()
        if x >= 0:
            self.elen[x] = self.d(int(p[x]), int(p[x + 1]))
        if y < self.n - 1:
            self.elen[y] = self.d(int(p[y]), int(p[y + 1]))

    def two_opt_gain(self, x: int, y: int) -> float:
        """Length saved by reversing p[x+1 .. y]."""
        p, n = self.p, self.n
        new_a = self.d(int(p[x]), int(p[y])) if x >= 0 else 0.0
        new_b = self.d(int(p[x + 1]), int(p[y + 1])) if y + 1 <= n - 1 else 0.0
        return self.edge(x) + self.edge(y) - new_a - new_b

    def node(self, i: int) -> int | None:
        return int(self.p[i]) if 0 <= i < self.n else None

    def dd(self, a: int | None, b: int | None) -> float:
        return 0.0 if a is None or b is None else self.d(a, b)

    def or_gain(self, i: int, e: int, j: int, rev: bool) -> float:
        """Length saved by moving segment p[i..e] between p[j] and p[j+1] (reversed if ``rev``)."""
        first, last = int(self.p[i]), int(self.p[e])
        if rev:
            first, last = last, first
        before, after = self.node(i - 1), self.node(e + 1)
        left, right = self.node(j), self.node(j + 1)
        removed = self.edge(i - 1) + self.edge(e) + self.edge(j)
        added = self.dd(before, after) + self.dd(left, first) + self.dd(last, right)
        return removed - added

    def or_move(self, i: int, e: int, j: int, rev: bool) -> None:
        seg = e - i + 1
        if j > e:  # P S Q R -> P Q S R
            q = j - e
            self.reverse(i - 1, j)  # P Q^r S^r R
            self.reverse(i - 1, i - 1 + q)  # P Q S^r R
            if not rev:
                self.reverse(i - 1 + q, j)
        else:  # j < i - 1: P Q S R -> P S Q R
            self.reverse(j, e)  # P S^r Q^r R
            self.reverse(j + seg, e)  # P S^r Q R
            if not rev:
                self.reverse(j, j + seg)


_EPS = 3e-3  # moves saving less than this (on the 0..1 distance scale) are not worth a pass


def _candidate_moves(n: int, i: int, j: int) -> Iterator[tuple]:
    """The moves that make the photos at positions i (a) and j (c) neighbours, in the order they are tried:
    ("2opt", x, y), breaking the edges after or before both, then ("or", s, e, jj, rev), moving a segment
    of 1, 2 or 3 photos that starts or ends at a next to c (after c or before it)."""
    lo, hi = min(i, j), max(i, j)
    for x, y in ((lo, hi), (lo - 1, hi - 1)):
        if x >= -1 and y <= n - 1 and y > x + 1:
            yield ("2opt", x, y)
    for seg in (1, 2, 3):
        for s, e in ((i, i + seg - 1), (i - seg + 1, i)) if seg > 1 else ((i, i),):
            if s < 0 or e > n - 1 or s <= j <= e:
                continue
            a_first = s == i
            # place a next to c: after c (j) or before c (j - 1), orientation decides which end is a
            for jj, rev in ((j, not a_first), (j - 1, a_first)):
                if -1 <= jj <= n - 1 and not s - 1 <= jj <= e:
                    yield ("or", s, e, jj, rev)


def _find_move(path: _Path, i: int, j: int) -> tuple | None:
    """The first of :func:`_candidate_moves` that saves more than _EPS (the path as it is now), distances one
    at a time through the path's methods: the reference for :func:`_find_move_near`."""
    for move in _candidate_moves(path.n, i, j):
        gain = path.two_opt_gain(*move[1:]) if move[0] == "2opt" else path.or_gain(*move[1:])
        if gain > _EPS:
            return move
    return None


def _find_move_near(path: _Path, i: int, j: int) -> tuple | None:
    """:func:`_find_move` with every distance it may need computed in one product first (positions
    i-3..i+3 and j-1..j+1) and the gains in plain Python."""
    n = path.n
    window = [q for q in range(i - _REACH, i + _REACH + 1) if 0 <= q < n]
    window += [q for q in (j - 1, j, j + 1) if 0 <= q < n and not i - _REACH <= q <= i + _REACH]
    near = path.distances_among(window)
    at = {q: k for k, q in enumerate(window)}
    elen = path.elen

    def dist(u: int, v: int) -> float:  # between positions; 0 for a position off the path
        return near[at[u]][at[v]] if 0 <= u < n and 0 <= v < n else 0.0

    def edge(x: int) -> float:
        return float(elen[x]) if 0 <= x < n - 1 else 0.0

    for move in _candidate_moves(n, i, j):
        if move[0] == "2opt":
            _, x, y = move
            gain = edge(x) + edge(y) - dist(x, y) - dist(x + 1, y + 1)
        else:
            _, s, e, jj, rev = move
            first, last = (e, s) if rev else (s, e)
            gain = (edge(s - 1) + edge(e) + edge(jj)) - (dist(s - 1, e + 1) + dist(jj, first) + dist(last, jj + 1))
        if gain > _EPS:
            return move
    return None


def improve(path: _Path, neighbours: np.ndarray, max_rounds: int = 10, progress: Progress | None = None,
            start: Sequence[int] | None = None, window: bool = True) -> None:
    """2-opt + Or-opt over k-NN candidates with don't-look bits, until no move helps (``start``: the only
    photos to look at first; default all, in path order).

    ``window``: compute the distances a move may need (the photos within reach of both places) in one
    product before trying the moves; False computes each distance alone (the same values: a test checks)."""
    n = path.n
    if n < 4:
        return
    queue = deque(path.p.tolist() if start is None else start)
    queued = np.zeros(n, dtype=bool)
    queued[list(queue)] = True
    nb = neighbours.tolist()
    budget = max_rounds * n
    done = 0

    def wake(*nodes: int | None) -> None:
        for v in nodes:
            if v is not None and not queued[v]:
                queued[v] = True
                queue.append(v)

    while queue and done < budget:
        a = queue.popleft()
        queued[a] = False
        done += 1
        if progress and done % 5000 == 0:
            progress(min(done, n), n)
        move = None
        for c in nb[a]:
            if c < 0:
                break
            i, j = int(path.pos[a]), int(path.pos[c])
            dac = path.d(a, c)
            if dac >= max(path.edge(i - 1), path.edge(i)) - _EPS:
                break  # neighbour lists are sorted: later ones are no closer
            move = _find_move_near(path, i, j) if window else _find_move(path, i, j)
            if move is not None:
                break
        if move is None:
            continue
        if move[0] == "2opt":
            _, x, y = move
            touched = (path.node(x), path.node(x + 1), path.node(y), path.node(y + 1))
            path.reverse(x, y)
        else:
            _, s, e, jj, rev = move
            touched = (path.node(s - 1), path.node(s), path.node(e), path.node(e + 1),
                       path.node(jj), path.node(jj + 1))
            path.or_move(s, e, jj, rev)
        wake(*touched)
        wake(a)


def order_vectors(vec: Vectors, k: int = DEFAULT_K, progress: Progress | None = None,
                  exact_limit: int = EXACT_LIMIT, dask: str | int | None = None) -> tuple[list[int], np.ndarray]:
    """(row order, neighbour distances) of a short path through the rows of ``vec`` (``dask``: the k-NN graph
    is computed on that Dask cluster, see :func:`sort_order`)."""
    n = len(vec)
    if n <= 2:
        order = list(range(n))
        return order, vec.pair_distance(order[:-1], order[1:]) if n == 2 else np.zeros(0)
    graph = knn_graph(vec, k, exact_limit=exact_limit, progress=progress, cluster=dask)
    order = _fragments_path(vec, graph, progress)
    path = _Path(vec, order)
    improve(path, graph.idx, progress=progress)
    p = path.p
    if p[0] > p[-1]:  # orientation: start at the end with the lower index
        p = p[::-1]
        elen = path.elen[::-1]
    else:
        elen = path.elen
    return p.tolist(), np.asarray(elen, dtype=np.float64)


def greedy_chain(vec: Vectors, start: int = 0) -> list[int]:
    """Baseline: the plain nearest-neighbour chain (from ``start``, always to the closest unvisited row)."""
    n = len(vec)
    left = np.ones(n, dtype=bool)
    order = [start]
    left[start] = False
    cur = start
    for _ in range(n - 1):
        d = vec.distance_from_cos(vec.x @ vec.x[cur])
        d[~left] = np.inf
        cur = int(np.argmin(d))
        order.append(cur)
        left[cur] = False
    return order


def path_length(vec: Vectors, order: Sequence[int]) -> np.ndarray:
    """Distances between consecutive rows of ``order``."""
    o = np.asarray(order, dtype=np.int64)
    return vec.pair_distance(o[:-1], o[1:]) if len(o) > 1 else np.zeros(0)


def sort_order(
    paths: Sequence[str | Path] | str | Path,
    model: str = DEFAULT_MODEL,
    catalog: Catalog | str | Path | None = None,
    progress: Progress | None = None,
    recursive: bool = True,
    k: int = DEFAULT_K,
    dask: str | int | None = None,
) -> SortResult:
    """Index ``paths`` as needed and order their photos so that lookalikes sit together.

    ``dask``: a Dask scheduler address or a number of local Dask worker processes: the indexing and the
    k-NN graph run there (the same order as without)."""
    k = check_sort_options(k)  # before anything is indexed
    if isinstance(check_cluster(dask), int):  # one LocalCluster for the indexing and the graph
        with local_session(dask) as address:
            return sort_order(paths, model, catalog, progress, recursive, k, dask=address)
    if isinstance(paths, str | Path):
        paths = [paths]
    vec = load_vectors(paths, model=model, catalog=catalog, progress=progress, recursive=recursive, dask=dask)
    return sort_vectors(vec, model, k=k, progress=progress, dask=dask)


def sort_vectors(vec: Vectors, model: str = DEFAULT_MODEL, k: int = DEFAULT_K,
                 progress: Progress | None = None, dask: str | int | None = None) -> SortResult:
    """:func:`sort_order` on prepared vectors (what ``lookalike sort`` does once the features are read;
    ``dask``: the k-NN graph is computed on that Dask cluster)."""
    order, dist = order_vectors(vec, k=k, progress=progress, dask=dask)
    return SortResult([vec.paths[i] for i in order], model, dist.tolist())


@dataclass
class SortReport:
    """What ``lookalike sort`` did: the order, and for ``--rename`` / ``--strip`` the journal plan and run.

    ``action``: "order" (nothing changed), "rename" or "strip". ``order``: absolute paths, lookalikes next to
    each other, under the names they have after the run (a renamed photo under its new name; empty for
    "strip"). ``plan``: the journal plan of a rename or strip; ``plan_file``: where it was written instead of
    applied; ``applied``: the journal's report (None when the plan was written, or had nothing to do)."""

    action: str = "order"
    order: list[str] = field(default_factory=list)
    keys: list[str] = field(default_factory=list)
    model: str = DEFAULT_MODEL
    distances: list[float] = field(default_factory=list)
    plan: Plan | None = None
    plan_file: str | None = None
    applied: ApplyReport | None = None

    @property
    def mean_distance(self) -> float:
        return float(np.mean(self.distances)) if self.distances else 0.0

    @property
    def failed(self) -> list[dict]:
        """The operations the journal refused or could not do."""
        return self.applied.failed if self.applied else []

    def to_json(self) -> dict:
        """``{"order": [...]}``; a strip gives the journal's report (``{}`` when nothing was applied)."""
        if self.action == "strip":
            return self.applied.to_json() if self.applied else {}
        return {"order": list(self.order)}


def sort_folder(
    folders: Sequence[str | Path] | str | Path,
    model: str = DEFAULT_MODEL,
    *,
    rename: bool = False,
    strip: bool = False,
    plan_file: str | os.PathLike | None = None,
    dry_run: bool = False,
    recursive: bool = True,
    catalog: Catalog | str | Path | None = None,
    progress: Progress | None = None,
    k: int = DEFAULT_K,
    dask: str | int | None = None,
) -> SortReport:
    """``lookalike sort``: order the photos under ``folders`` so lookalikes sit together (indexed as needed).

    ``rename``: then give each photo its rank prefix (``0001_IMG_4711.jpg``) through the journal, and report
    the order under the new names; ``strip``: remove the rank prefixes lookalike added (nothing is sorted).
    With ``plan_file`` the journal plan is written there for ``lookalike apply`` instead; with ``dry_run``
    nothing changes. ``dask``: index and build the k-NN graph on a Dask cluster (see :func:`sort_order`).
    See :mod:`lookalike.organise.rename` for which prefixes are ever replaced or removed."""
    from lookalike.catalog import open_catalog
    from lookalike.errors import UsageError
    from lookalike.organise.rename import rename_photos, strip_prefixes

    if rename and strip:
        raise UsageError("--rename and --strip cannot be combined")
    dask = check_cluster(dask)  # before the catalog is opened
    if isinstance(folders, str | Path):
        folders = [folders]
    cat = open_catalog(catalog)
    if strip:
        run = strip_prefixes(folders, cat, recursive=recursive, dry_run=dry_run, plan_file=plan_file)
        return SortReport("strip", model=model, plan=run.plan, plan_file=run.plan_file, applied=run.report)
    result = sort_order([str(f) for f in folders], model=model, catalog=cat, progress=progress,
                        recursive=recursive, k=k, dask=dask)
    report = SortReport("order", result.order, result.keys(), model, result.distances)
    if rename:
        run = rename_photos(result.order, cat, dry_run=dry_run, plan_file=plan_file)
        report.action, report.order = "rename", run.order
        report.plan, report.plan_file, report.applied = run.plan, run.plan_file, run.report
    return report
