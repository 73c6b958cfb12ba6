"""Group photos by similarity: hierarchical clustering cut on the similarity scale itself.

Distances live in 0..1 (see :mod:`lookalike.organise.vectors`): ``d = 1 - cos`` for embeddings (negative
cosines count as 0), ``d = hamming / bits`` for hashes. With ``time_weight`` A the distance is
``A * |t_i - t_j| + (1 - A) * d``, capture times scaled to 0..1 over the set (all equal: the time term is 0).

``sim`` is a similarity in 0..1 and the tree is cut at distance ``1 - sim``:

* ``single``: photos join when a chain of pairs each at similarity >= sim links them;
* ``complete``: every pair inside a group is at similarity >= sim;
* ``average``: the mean similarity between the two groups being merged is >= sim (at every merge);
* ``ward``: runs on ``e = sqrt(2 d)`` (the Euclidean distance of unit vectors) and is cut at ``sqrt(2 (1 - sim))``.
  Two single photos join exactly when their similarity is >= sim, but ward's merge height grows with the
  size of the groups, so larger groups need more than ``sim`` to merge and ``sim = 0`` need not give one group.

So ``sim = 0`` gives one group (single/average/complete) and ``sim = 1`` joins only identical photos
(distance 0, with a 1e-6 tolerance for rounding). ``relative=True`` is imagecluster's cut instead: at
``(1 - sim)`` times the largest pairwise distance of the set, so its meaning changes with every folder.

Past ``exact_limit`` photos (``MATRIX_LIMIT``, 20,000) the N x N distance matrix is not built. Clustering runs over the
k-NN graph (k = 15): ``single`` = connected parts of the links at distance <= 1 - sim; ``average`` and
``complete`` merge the closest pair of groups first, averaging (or taking the largest) over the k-NN links
between them only, while that value is <= 1 - sim. (The links are the shortest distances, so this average
is lower than the exact one and groups can grow larger than in the exact mode.) With ``time_weight`` the
neighbours are found by content and their link distances mixed with time. Photos are only ever joined
through k-NN links, so ``sim = 0`` gives one group per connected part of the k-NN graph. ``ward`` and the
dendrogram need the exact mode: past the limit ``ward`` (the default) becomes ``complete`` linkage over the
graph, and ``result.note`` says so.
"""

from __future__ import annotations

import heapq
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from lookalike.catalog import Catalog, open_catalog
from lookalike.dask_cluster import local_session
from lookalike.errors import UsageError
from lookalike.features import DEFAULT_MODEL
from lookalike.index import Progress
from lookalike.options import check_cluster, check_cluster_options
from lookalike.organise.vectors import Vectors, capture_times, load_vectors, scaled_times
from lookalike.search import knn_graph

if TYPE_CHECKING:
    from lookalike.journal import ApplyReport

METHODS = ("average", "complete", "single", "ward")
#: Defaults of ``cluster`` / ``cluster_folder`` (the CLI and the HTTP service use these): the best mean ARI over
#: three kinds of labelled folder (objects, people, near duplicates; ``bench/cluster_quality.py --defaults``,
#: table in docs/BENCHMARKS.md and bench/cluster_defaults.json).
DEFAULT_METHOD = "ward"
DEFAULT_SIM = 0.45
#: What ``ward`` becomes past ``exact_limit`` photos (ward needs the full distance matrix).
GRAPH_FALLBACK_METHOD = "complete"
DEFAULT_MIN_SIZE = 2
DEFAULT_TIME_WEIGHT = 0.0
#: Photos up to which ``cluster`` builds the full N x N distance matrix (exact hierarchical clustering,
#: ward, the dendrogram); above it clustering runs over the k-NN graph. Not ``search.EXACT_LIMIT``
#: (10,000): that is where exact k-NN *search* stops paying, which decides how the graph itself is found.
#: At 20,000 photos the matrix is 1.6 GB of float64 (scipy's linkage needs it whole).
MATRIX_LIMIT = 20000
GRAPH_K = 15
_TOL = 1e-6
_BLOCKED = float("inf")  # a complete-linkage link above the cut: it can never merge


@dataclass
class ClusterResult:
    """Groups of at least ``min_size`` photos (largest first) and the photos left on their own."""

    clusters: list[list[str]]
    unclustered: list[str]
    method: str = DEFAULT_METHOD
    sim: float = DEFAULT_SIM
    mode: str = "exact"  # "exact" (full distance matrix) or "graph" (k-NN graph)
    threshold: float = 0.5  # where the tree was cut, on the distance scale used by the method
    paths: list[str] = field(default_factory=list)
    linkage: np.ndarray | None = None  # scipy linkage matrix (exact mode), rows of ``paths``
    relative: bool = False  # cut relative to the largest distance (imagecluster's)
    absolute_cut: float | None = None  # with ``relative``: where the absolute cut for ``sim`` would be
    same_as_absolute: bool | None = None  # with ``relative``: the absolute cut's groups? (None: not known)
    folders: list[str] = field(default_factory=list)  # set by ``write_links``: the folder of each cluster
    left: list[dict[str, str]] = field(default_factory=list)  # set by ``write_links``: earlier files left in OUT
    applied: ApplyReport | None = None  # set by ``cluster_folder``: the journal run that wrote OUT
    note: str | None = None  # a method asked for that could not be used, and what was used instead

    def to_json(self) -> dict:
        return {"clusters": [{"members": list(c)} for c in self.clusters], "unclustered": list(self.unclustered)}

    def names(self) -> list[str]:
        """Each cluster's name: its folder under OUT (``cluster_with_<size>/cluster_<i>``, ``i`` counting from 0
        within each size, as imagecluster lays them out), the one ``write_links`` used when it ran."""
        if self.folders:
            return [os.path.join(os.path.basename(os.path.dirname(f)), os.path.basename(f)) for f in self.folders]
        seen: dict[int, int] = {}
        out = []
        for c in self.clusters:
            i = seen.get(len(c), 0)
            seen[len(c)] = i + 1
            out.append(f"cluster_with_{len(c)}/cluster_{i}")
        return out

    def size_table(self) -> list[str]:
        """imagecluster's summary: ``#images : #clusters``, one ``size : count`` line per cluster size
        (smallest first), then the number of photos in clusters."""
        counts: dict[int, int] = {}
        for c in self.clusters:
            counts[len(c)] = counts.get(len(c), 0) + 1
        lines = ["#images : #clusters", *(f"{size} : {n}" for size, n in sorted(counts.items()))]
        lines.append(f"#images in clusters total: {sum(size * n for size, n in counts.items())}")
        return lines


def condensed_distances(
    vec: Vectors, times: np.ndarray | None = None, time_weight: float = 0.0, progress: Progress | None = None
) -> np.ndarray:
    """The n(n-1)/2 pairwise distances (scipy's condensed order), computed in row blocks."""
    n = len(vec)
    out = np.empty(n * (n - 1) // 2, dtype=np.float64)
    block = max(1, min(n, 4_000_000 // max(n, 1)))
    pos = 0
    for s in range(0, n, block):
        e = min(n, s + block)
        d = vec.distance_from_cos(vec.x[s:e] @ vec.x.T).astype(np.float64)
        if times is not None and time_weight > 0:
            d = time_weight * np.abs(times[s:e, None] - times[None, :]) + (1.0 - time_weight) * d
        for r in range(s, e):
            seg = d[r - s, r + 1 :]
            out[pos : pos + len(seg)] = seg
            pos += len(seg)
        if progress:
            progress(e, n)
    return np.round(out, 6, out=out)  # in place: at MATRIX_LIMIT photos the matrix alone is 1.6 GB


def _exact_labels(
    vec: Vectors, times: np.ndarray | None, time_weight: float, sim: float, method: str, relative: bool,
    progress: Progress | None,
) -> tuple[np.ndarray, np.ndarray, float]:
    from scipy.cluster import hierarchy  # scipy loads in ~0.6 s: only when clustering, not at CLI start

    dist = condensed_distances(vec, times, time_weight, progress)
    if method == "ward":  # in place (no second matrix-sized array)
        np.sqrt(np.multiply(dist, 2.0, out=dist), out=dist)
    z = hierarchy.linkage(dist, method=method)
    if relative:
        t = (1.0 - sim) * float(dist.max(initial=0.0))
    else:
        t = float(np.sqrt(2.0 * (1.0 - sim))) if method == "ward" else 1.0 - sim
    labels = hierarchy.fcluster(z, t=t + _TOL, criterion="distance")
    return labels, z, t


def _graph_edges(vec: Vectors, times: np.ndarray | None, time_weight: float, k: int, progress: Progress | None,
                 dask: str | int | None = None):
    g = knn_graph(vec, k, progress=progress, cluster=dask)  # exact up to search.EXACT_LIMIT rows, then IVF
    a, b, d = g.edges()
    d = d.astype(np.float64)
    if times is not None and time_weight > 0:
        d = time_weight * np.abs(times[a] - times[b]) + (1.0 - time_weight) * d
    return a, b, np.round(d, 6)


def _sparse_hac(n: int, a: np.ndarray, b: np.ndarray, d: np.ndarray, t: float, method: str) -> np.ndarray:
    """Agglomerate over graph links only, closest first, while the link value stays <= t.

    Every merge joins two groups through at least one link <= t, so a group never leaves its connected
    part of the graph's links <= t: each such part is agglomerated on its own (links between parts can
    never decide a merge and are dropped), one at a time, so memory is that of the largest part."""
    roots = np.arange(n)
    close = d <= t + _TOL
    if not close.any():
        return roots
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components

    m = coo_matrix((np.ones(int(close.sum()), dtype=np.int8), (a[close], b[close])), shape=(n, n))
    _, part = connected_components(m, directed=False)
    del m
    inside = part[a] == part[b]
    a, b, d = a[inside], b[inside], d[inside]
    by_part = np.argsort(part[a], kind="stable")  # edges stay in their (distance, i, j) order within a part
    a, b, d = a[by_part], b[by_part], d[by_part]
    edge_bounds = np.searchsorted(part[a], np.arange(part.max() + 2))
    nodes = np.argsort(part, kind="stable")  # ascending node ids within each part
    node_bounds = np.searchsorted(part[nodes], np.arange(part.max() + 2))
    local = np.empty(n, dtype=np.int64)
    for p in np.flatnonzero(np.diff(node_bounds) > 1).tolist():
        members = nodes[node_bounds[p] : node_bounds[p + 1]]
        local[members] = np.arange(len(members))  # increasing with the node id: ties break as before
        lo, hi = edge_bounds[p], edge_bounds[p + 1]
        found = _hac_part(len(members), local[a[lo:hi]], local[b[lo:hi]], d[lo:hi], t, method)
        roots[members] = members[found]
    return roots


def _hac_part(n: int, a: np.ndarray, b: np.ndarray, d: np.ndarray, t: float, method: str) -> np.ndarray:
    """:func:`_sparse_hac` inside one connected part (rows 0..n-1): each node's links in a dict, a heap
    of the links whose value is <= t. ``complete`` keeps the largest link, with every value above t as
    one shared infinity (such a link can never merge); ``average`` keeps (sum, count)."""
    limit = t + _TOL
    average = method == "average"
    links: list[dict] = [{} for _ in range(n)]
    heap = []
    for u, v, w in zip(a.tolist(), b.tolist(), d.tolist(), strict=True):
        if average:
            links[u][v] = links[v][u] = (w, 1)
        else:
            links[u][v] = links[v][u] = w if w <= limit else _BLOCKED
        if w <= limit:
            heap.append((w, u, v))
    heapq.heapify(heap)

    def value(entry) -> float:
        return round(entry[0] / entry[1], 9) if average else entry

    parent = np.arange(n)
    alive = np.ones(n, dtype=bool)
    while heap:
        val, u, v = heapq.heappop(heap)
        if val > limit:
            break
        if not (alive[u] and alive[v]) or v not in links[u] or value(links[u][v]) != val:
            continue  # stale entry
        keep, gone = (u, v) if len(links[u]) >= len(links[v]) else (v, u)
        del links[keep][gone]
        for c, e in links[gone].items():
            if c == keep:
                continue
            del links[c][gone]
            old = links[keep].get(c)
            if old is None:
                new = e
            elif average:
                new = (e[0] + old[0], e[1] + old[1])
            else:
                new = e if e >= old else old
            links[keep][c] = links[c][keep] = new
            if old is None or value(new) != value(old):
                nv = value(new)
                if nv <= limit:
                    heapq.heappush(heap, (nv, min(keep, c), max(keep, c)))
        links[gone] = {}
        alive[gone] = False
        parent[gone] = keep
    roots = parent.copy()
    while True:
        nxt = roots[roots]
        if np.array_equal(nxt, roots):
            break
        roots = nxt
    return roots


def _graph_labels(
    vec: Vectors, times: np.ndarray | None, time_weight: float, sim: float, method: str, relative: bool,
    progress: Progress | None, k: int = GRAPH_K, dask: str | int | None = None,
) -> tuple[np.ndarray, float]:
    if method == "ward":
        raise UsageError(f"--method ward needs the full distance matrix: use it on at most {MATRIX_LIMIT} photos")
    n = len(vec)
    a, b, d = _graph_edges(vec, times, time_weight, k, progress, dask)
    t = (1.0 - sim) * float(d.max(initial=0.0)) if relative else 1.0 - sim
    if method == "single":
        from scipy.sparse import coo_matrix
        from scipy.sparse.csgraph import connected_components

        keep = d <= t + _TOL
        m = coo_matrix((np.ones(int(keep.sum())), (a[keep], b[keep])), shape=(n, n))
        _, labels = connected_components(m, directed=False)
        return labels, t
    return _sparse_hac(n, a, b, d, t, method), t


def cluster_vectors(
    vec: Vectors,
    sim: float = DEFAULT_SIM,
    method: str = DEFAULT_METHOD,
    min_size: int = DEFAULT_MIN_SIZE,
    time_weight: float = DEFAULT_TIME_WEIGHT,
    times: np.ndarray | None = None,
    relative: bool = False,
    exact_limit: int = MATRIX_LIMIT,
    progress: Progress | None = None,
    dask: str | int | None = None,
) -> ClusterResult:
    """Cluster prepared vectors (``times``: seconds per row, needed when ``time_weight`` > 0; ``dask``: the
    k-NN graph of the graph mode is computed on that Dask cluster)."""
    check_cluster_options(sim, min_size, time_weight, method, METHODS)
    n = len(vec)
    scaled = scaled_times(times) if times is not None and time_weight > 0 else None
    if time_weight > 0 and scaled is None:
        raise UsageError("time_weight needs the photos' times")
    z = None
    note = None
    if method == "ward" and n > exact_limit:
        note = (f"ward linkage needs the full distance matrix (at most {exact_limit} photos): "
                f"{GRAPH_FALLBACK_METHOD} linkage over the k-NN graph used instead")
        method = GRAPH_FALLBACK_METHOD
    if n < 2:
        labels, mode, t = np.zeros(n, dtype=np.int64), "exact", 1.0 - sim
    elif n <= exact_limit:
        labels, z, t = _exact_labels(vec, scaled, time_weight, sim, method, relative, progress)
        mode = "exact"
    else:
        labels, t = _graph_labels(vec, scaled, time_weight, sim, method, relative, progress, dask=dask)
        mode = "graph"
    groups: dict[int, list[int]] = {}
    for i, lab in enumerate(np.asarray(labels).tolist()):
        groups.setdefault(lab, []).append(i)
    big = [g for g in groups.values() if len(g) >= min_size]
    big.sort(key=lambda g: (-len(g), vec.paths[g[0]]))
    clustered = {i for g in big for i in g}
    clusters = [[vec.paths[i] for i in g] for g in big]
    rest = [vec.paths[i] for i in range(n) if i not in clustered]
    res = ClusterResult(clusters, rest, method, sim, mode, t, list(vec.paths), z, relative=relative, note=note)
    if relative:
        res.absolute_cut = float(np.sqrt(2.0 * (1.0 - sim))) if method == "ward" else 1.0 - sim
        if abs(res.absolute_cut - t) <= _TOL:
            res.same_as_absolute = True
        elif z is not None:  # the same groups at the absolute cut?
            from scipy.cluster import hierarchy

            other = hierarchy.fcluster(z, t=res.absolute_cut + _TOL, criterion="distance")
            res.same_as_absolute = _same_partition(np.asarray(labels), other)
    return res


def _same_partition(a: np.ndarray, b: np.ndarray) -> bool:
    """Whether two labellings group the items alike (labels themselves may differ)."""
    pairs = set(zip(a.tolist(), b.tolist(), strict=True))
    return len(pairs) == len(set(a.tolist())) == len(set(b.tolist()))


def cluster(
    paths: Sequence[str | Path] | str | Path,
    sim: float = DEFAULT_SIM,
    method: str = DEFAULT_METHOD,
    min_size: int = DEFAULT_MIN_SIZE,
    time_weight: float = DEFAULT_TIME_WEIGHT,
    model: str = DEFAULT_MODEL,
    catalog: Catalog | str | Path | None = None,
    progress: Progress | None = None,
    relative: bool = False,
    recursive: bool = True,
    exact_limit: int = MATRIX_LIMIT,
    dask: str | int | None = None,
) -> ClusterResult:
    """Index ``paths`` as needed and group their photos (see the module doc for what ``sim`` means).

    ``dask``: a Dask scheduler address or a number of local Dask worker processes: the indexing, and the
    k-NN graph past ``exact_limit`` photos, run there (the same groups as without)."""
    check_cluster_options(sim, min_size, time_weight, method, METHODS)  # before anything is indexed
    if isinstance(check_cluster(dask), int):  # one LocalCluster for the indexing and the graph
        with local_session(dask) as address:
            return cluster(paths, sim, method, min_size, time_weight, model, catalog, progress, relative, recursive,
                           exact_limit, dask=address)
    if isinstance(paths, str | Path):
        paths = [paths]
    cat = open_catalog(catalog)
    vec = load_vectors(paths, model=model, catalog=cat, progress=progress, recursive=recursive, dask=dask)
    times = capture_times(vec.paths, cat) if time_weight > 0 else None
    return cluster_vectors(vec, sim, method, min_size, time_weight, times, relative, exact_limit, progress,
                           dask=dask)


def cluster_folder(
    folders: Sequence[str | Path] | str | Path,
    sim: float = DEFAULT_SIM,
    method: str = DEFAULT_METHOD,
    min_size: int = DEFAULT_MIN_SIZE,
    time_weight: float = DEFAULT_TIME_WEIGHT,
    model: str = DEFAULT_MODEL,
    *,
    relative: bool = False,
    out: str | Path | None = None,
    mode: str | None = None,
    sheet: bool = False,
    plot: bool = False,
    dry_run: bool = False,
    recursive: bool = True,
    catalog: Catalog | str | Path | None = None,
    progress: Progress | None = None,
    dask: str | int | None = None,
) -> ClusterResult:
    """``lookalike cluster``: group the photos under ``folders`` (see :func:`cluster`) and, with ``out``, write
    the groups there through one journal run (:func:`lookalike.organise.links.write_links`): ``mode`` "link"
    (symbolic links, copies where impossible), "copy", or None (only the contact sheets / dendrogram asked
    for by ``sheet`` / ``plot``). ``dry_run``: plan the writing, change nothing. The run's report is in
    ``result.applied``; the folders used in ``result.folders``; earlier files left in OUT in ``result.left``.
    ``dask``: index and build the k-NN graph on a Dask cluster (see :func:`cluster`)."""
    check_cluster_options(sim, min_size, time_weight, method, METHODS)  # before the catalog is opened
    dask = check_cluster(dask)
    if mode not in ("link", "copy", None):
        raise UsageError(f"unknown mode {mode!r}: use 'link' or 'copy'")
    if out is None:
        if mode is not None:
            raise UsageError(f"--{'links' if mode == 'link' else 'copy'} needs a folder OUT")
        if sheet or plot:
            raise UsageError("--sheet/--plot need a folder: give --links OUT, --copy OUT or --out DIR")
        if dry_run:
            raise UsageError("--dry-run only applies with --links/--copy/--out")
    result = cluster(folders, sim=sim, method=method, min_size=min_size, time_weight=time_weight, model=model,
                     catalog=catalog, progress=progress, relative=relative, recursive=recursive, dask=dask)
    if out is not None:
        from lookalike.organise.links import write_links

        result.applied = write_links(result, out, mode=mode, sheet=sheet, plot=plot, dry_run=dry_run)
    return result
