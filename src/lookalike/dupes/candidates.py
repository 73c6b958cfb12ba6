"""Candidate pairs, all against all, without an N x N matrix: the k nearest neighbours of every picture
by CNN embedding (generous cosine threshold) and by the flip/rotation-invariant pHash (every one of a
picture's 8 orientations is looked up against the others' upright hash).

CNN neighbours go through lookalike.search: exact up to ``search.EXACT_LIMIT`` pictures, the inverted
file above it (at 100k exact search took 5.5-9 min, growing as N^2). The vectors are searched as stored
(float16 from the catalog), one block at a time in float32."""

from __future__ import annotations

import numpy as np

from lookalike.search import EXACT_LIMIT, HammingSearcher, hamming_distances, make_searcher

Pair = tuple[int, int]


def _add(out: dict[Pair, str], i: int, j: int, source: str) -> None:
    if i == j or i < 0 or j < 0:
        return
    key = (i, j) if i < j else (j, i)
    prev = out.get(key)
    out[key] = source if prev in (None, source) else "both"


def embedding_pairs(vectors: np.ndarray, k: int, min_cos: float, exact_limit: int = EXACT_LIMIT,
                    cluster: str | int | None = None) -> dict[Pair, str]:
    """Pairs among each row's k nearest rows with cosine >= min_cos (rows: unit vectors, float16 or
    float32; exact search up to ``exact_limit`` rows, approximate above; the k-NN graph on the Dask
    ``cluster`` when one is given)."""
    out: dict[Pair, str] = {}
    if len(vectors) < 2:
        return out
    searcher = make_searcher("embedding", vectors, exact_limit=exact_limit, cluster=cluster)
    g = searcher.knn_graph(min(k, len(vectors) - 1))
    rows, cols = np.nonzero(g.scores >= min_cos)
    j = g.indices[rows, cols]
    a, b = np.minimum(rows, j), np.maximum(rows, j)
    ok = (a != b) & (a >= 0)
    n = len(vectors)
    codes = np.unique(a[ok].astype(np.int64) * n + b[ok])  # each pair once, in (i, j) order
    for i, jj in zip((codes // n).tolist(), (codes % n).tolist(), strict=True):
        out[(i, jj)] = "cnn"
    return out


def dihedral_pairs(hashes: np.ndarray, k: int, max_bits: int) -> dict[Pair, str]:
    """Pairs whose pHash differs by at most max_bits in the best of the 8 orientations.

    ``hashes``: (n, 8) uint64, column 0 the upright hash, columns 1-7 the rotated/flipped ones."""
    out: dict[Pair, str] = {}
    n = len(hashes)
    if n < 2:
        return out
    searcher = HammingSearcher(np.ascontiguousarray(hashes[:, :1]))
    kk = min(k + 1, n)
    for v in range(hashes.shape[1]):
        res = searcher.query(np.ascontiguousarray(hashes[:, v : v + 1]), kk)
        rows, cols = np.nonzero(res.scores <= max_bits)
        for i, c in zip(rows.tolist(), cols.tolist(), strict=True):
            _add(out, i, int(res.indices[i, c]), "hash")
    return out


def dihedral_distance(hashes: np.ndarray, i: int, j: int) -> tuple[int, bool]:
    """Best-orientation Hamming distance between pictures i and j, and whether that orientation is a
    mirror image (odd variants are the flipped ones)."""
    bits, variant = dihedral_match(hashes, i, j)
    return bits, variant % 2 == 1


def dihedral_match(hashes: np.ndarray, i: int, j: int) -> tuple[int, int]:
    """Best-orientation Hamming distance between pictures i and j, and that orientation: the variant v
    (features.hashes.dihedral_variants) for which ``rot90(j, v // 2)``, mirrored when v is odd, looks like
    i upright (the first such variant on a tie)."""
    d = hamming_distances(hashes[i : i + 1, :1], hashes[j].reshape(-1, 1))[0]  # (1, 8): one per variant
    best = int(np.argmin(d))
    return int(d[best]), best


def dihedral_pairs_indexed(hashes: np.ndarray, max_bits: int = 3, block: int = 32768) -> dict[Pair, str]:
    """Like :func:`dihedral_pairs` for very large sets: a multi-index hash instead of a scan.

    The upright 64-bit hashes are indexed four times, by each 16-bit quarter. Two hashes within 3 bits
    agree exactly on at least one quarter (pigeonhole), so looking up each of a picture's 8 orientations
    in the four tables finds every pair within ``max_bits`` <= 3 exactly (pairs further apart are found
    only when a quarter happens to match). Cost grows with n times the bucket size, not n squared."""
    n = len(hashes)
    up = np.ascontiguousarray(hashes[:, 0], dtype=np.uint64)
    tables = []
    for t in range(4):
        key = ((up >> np.uint64(16 * t)) & np.uint64(0xFFFF)).astype(np.int64)
        order = np.argsort(key, kind="stable")
        starts = np.searchsorted(key[order], np.arange(65537))
        tables.append((order, starts))
    found: list[np.ndarray] = []
    for qs in range(0, n, block):
        qi = np.arange(qs, min(n, qs + block))
        for v in range(hashes.shape[1]):
            q = np.ascontiguousarray(hashes[qi, v], dtype=np.uint64)
            for t, (order, starts) in enumerate(tables):
                qk = ((q >> np.uint64(16 * t)) & np.uint64(0xFFFF)).astype(np.int64)
                s, counts = starts[qk], starts[qk + 1] - starts[qk]
                total = int(counts.sum())
                if total == 0:
                    continue
                rows = np.repeat(np.arange(len(qi)), counts)
                offsets = np.arange(total) - np.repeat(np.cumsum(counts) - counts, counts)
                cand = order[np.repeat(s, counts) + offsets]
                d = np.bitwise_count(q[rows] ^ up[cand])
                keep = (d <= max_bits) & (cand != qi[rows])
                a, b = qi[rows[keep]], cand[keep]
                found.append(np.minimum(a, b) * n + np.maximum(a, b))
    out: dict[Pair, str] = {}
    if found:
        for code in np.unique(np.concatenate(found)).tolist():
            out[(code // n, code % n)] = "hash"
    return out
