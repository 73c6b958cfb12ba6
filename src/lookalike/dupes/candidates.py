"""Candidate pairs, all against all, without an N x N matrix: the k nearest neighbours of every picture
by CNN embedding (generous cosine threshold) and by the flip/rotation-invariant pHash (every one of a
picture's 8 orientations is looked up against the others' upright hash)."""

from __future__ import annotations

import numpy as np

from lookalike.search import ExactCosineSearcher, HammingSearcher, hamming_distances

Pair = tuple[int, int]


def _add(out: dict[Pair, str], i: int, j: int, source: str) -> None:
    if i == j or i < 0 or j < 0:
        return
    key = (i, j) if i < j else (j, i)
    prev = out.get(key)
    out[key] = source if prev in (None, source) else "both"


def embedding_pairs(vectors: np.ndarray, k: int, min_cos: float) -> dict[Pair, str]:
    """Pairs among each row's k nearest rows with cosine >= min_cos."""
    out: dict[Pair, str] = {}
    if len(vectors) < 2:
        return out
    g = ExactCosineSearcher(vectors).knn_graph(min(k, len(vectors) - 1))
    rows, cols = np.nonzero(g.scores >= min_cos)
    for i, c in zip(rows.tolist(), cols.tolist(), strict=True):
        _add(out, i, int(g.indices[i, c]), "cnn")
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
    d = hamming_distances(hashes[i : i + 1, :1], hashes[j].reshape(-1, 1))[:, 0]
    best = int(np.argmin(d))
    return int(d[best]), best % 2 == 1
