"""Organise at scale (issue 11): sort's local search within bounded memory, the catalog matrix reused in place."""

from __future__ import annotations

import importlib

import numpy as np
import pytest

import lookalike.organise.vectors as vectors
from lookalike.organise import sort
from lookalike.organise.vectors import Vectors, from_matrix
from lookalike.search import knn_graph


def _scenes(n: int, dim: int = 48, per: int = 8, seed: int = 0, dtype=np.float16) -> np.ndarray:
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((max(1, n // per), dim))
    x = centres[rng.integers(0, len(centres), n)] + 0.7 * rng.standard_normal((n, dim))
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(dtype)


def test_window_search_makes_the_same_moves_as_one_distance_at_a_time():
    # float16 rows, as sort keeps them above COMPACT_ABOVE photos; a row cache far smaller than the set
    vec = Vectors([f"/p/{i:04d}.jpg" for i in range(600)], _scenes(600), "embedding")
    graph = knn_graph(vec, 10)
    start = sort._fragments_path(vec, graph, None)
    fast = sort._Path(vec, start, cache_rows=40)
    sort.improve(fast, graph.idx)
    slow = sort._Path(vec, start, cache_rows=40)
    sort.improve(slow, graph.idx, window=False)
    assert fast.p.tolist() == slow.p.tolist()
    assert np.array_equal(fast.elen, slow.elen)
    assert len(fast._slot) <= 40  # the float64 rows never exceed the cache
    first = sort._Path(vec, start)
    assert fast.elen.sum() < first.elen.sum() - 0.5  # the search did move photos
    # every edge length is the float64 cosine of the stored rows, rounded to 1e-6
    x = vec.x.astype(np.float64)
    want = np.round(np.clip(1.0 - np.einsum("ij,ij->i", x[fast.p[:-1]], x[fast.p[1:]]), 0, 1), 6)
    assert np.array_equal(fast.elen, want)


def test_sort_vectors_is_order_vectors_with_paths():
    vec = Vectors([f"/p/{i:04d}.jpg" for i in range(300)], _scenes(300, seed=2, dtype=np.float32), "embedding")
    order, dist = sort.order_vectors(vec)
    res = sort.sort_vectors(vec)
    assert res.order == [vec.paths[i] for i in order]
    assert res.distances == dist.tolist()


@pytest.mark.parametrize("rows", [100, 30])  # above COMPACT_ABOVE (float16) and below it (float32)
def test_from_matrix_reuses_the_handed_over_matrix_in_place(monkeypatch, rows):
    monkeypatch.setattr(vectors, "COMPACT_ABOVE", 50)
    rng = np.random.default_rng(3)
    stored = (_scenes(rows, seed=3) * 1.001).astype(np.float16)  # not quite unit, as float16 rounding leaves it
    paths = [f"/p/{int(v):06d}.jpg" for v in rng.permutation(10**6)[:rows]]
    copied = from_matrix(paths, stored.copy(), "embedding")
    given = stored.copy()
    reused = from_matrix(paths, given, "embedding", reuse=True)
    assert reused.paths == copied.paths == sorted(paths)
    assert reused.x.dtype == copied.x.dtype
    assert np.array_equal(reused.x, copied.x)
    assert (reused.x is given) == (rows > 50)  # float16 above the limit: no second copy
    # a memory-mapped or hash matrix is never written to
    kept = stored.copy()
    ro = kept.copy()
    ro.flags.writeable = False
    assert np.array_equal(from_matrix(paths, ro, "embedding", reuse=True).x, copied.x)
    words = rng.integers(0, 2**63, size=(rows, 1), dtype=np.int64).astype(np.uint64)
    before = words.copy()
    from_matrix(paths, words, "hash", reuse=True)
    assert np.array_equal(words, before)


def _greedy_merges(n: int, edges: list[tuple[int, int, float]], t: float, method: str) -> list[frozenset]:
    """The oracle: merge the two groups with the smallest link value (largest / mean of the graph links
    between them) while it is <= t, by brute force."""
    groups = [{i} for i in range(n)]
    while True:
        best = None
        for x in range(len(groups)):
            for y in range(x + 1, len(groups)):
                ws = [w for u, v, w in edges
                      if (u in groups[x] and v in groups[y]) or (u in groups[y] and v in groups[x])]
                if ws:
                    val = max(ws) if method == "complete" else sum(ws) / len(ws)
                    if val <= t + 1e-6 and (best is None or val < best[0]):
                        best = (val, x, y)
        if best is None:
            return sorted(map(frozenset, groups), key=min)
        _, x, y = best
        groups[x] |= groups.pop(y)


@pytest.mark.parametrize("method", ["complete", "average"])
def test_graph_clustering_by_parts_merges_like_the_greedy_oracle(method, monkeypatch):
    from lookalike.search.graph import KnnGraph

    cl = importlib.import_module("lookalike.organise.cluster")  # the package's ``cluster`` is the function

    parts: list[int] = []
    real = cl._hac_part
    monkeypatch.setattr(cl, "_hac_part", lambda n, *rest: parts.append(n) or real(n, *rest))

    rng = np.random.default_rng(7)
    n = 60
    idx = np.stack([rng.choice(np.delete(np.arange(n), i), 5, replace=False) for i in range(n)])
    dist = np.sort(np.round(rng.uniform(0.1, 0.9, (n, 5)), 6).astype(np.float32), axis=1)
    a, b, d = KnnGraph(idx, dist, False).edges()
    d = np.round(d.astype(np.float64), 6)
    roots = cl._sparse_hac(n, a, b, d, 0.35, method)
    got = {}
    for i, r in enumerate(roots.tolist()):
        got.setdefault(r, set()).add(i)
    want = _greedy_merges(n, list(zip(a.tolist(), b.tolist(), d.tolist(), strict=True)), 0.35, method)
    assert sorted(map(frozenset, got.values()), key=min) == want
    assert 1 < len(want) < n  # some merged, the cut stopped others
    assert parts and max(parts) < n and sum(parts) <= n  # one connected part (links <= t) at a time
