"""Feature vectors and capture times for a set of photos, on one distance scale.

Every organise algorithm works on unit float32 rows ``X`` and a *content distance* in 0..1:

* embeddings (cosine): ``d = clip(1 - cos, 0, 1)``: similarity ``sim = cos`` (negative cosines count as 0);
* hashes (Hamming): ``d = hamming / bits``: similarity ``sim = 1 - hamming / bits``. Bits are mapped to
  +-1/sqrt(bits) rows, whose cosine is ``1 - 2 * hamming / bits``, so the same cosine search serves both.

Rows are float32 up to ``COMPACT_ABOVE`` photos and float16 above it (a million 1280-d rows: 2.6 GB
instead of 5.1 GB); they are made block by block, so no whole-collection float32 copy ever exists, and
lookalike.search turns one block at a time into float32 for its products.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import numpy as np

from lookalike.catalog import Catalog
from lookalike.collection import Collection
from lookalike.errors import UsageError
from lookalike.features import DEFAULT_MODEL, load_extractor
from lookalike.index import Progress, file_sha256
from lookalike.search.base import unit_block

#: above this many rows, unit rows are kept in float16: past the sizes where cluster may still build
#: the full distance matrix (its float32 products need float32 rows), search turns blocks into float32
COMPACT_ABOVE = 20000


@dataclass
class Vectors:
    """Unit rows for ``paths`` (sorted by path) and how to turn cosines into 0..1 distances."""

    paths: list[str]
    x: np.ndarray  # (n, dim) unit rows: float32, float16 above COMPACT_ABOVE rows
    kind: str  # "embedding" or "hash"

    def __len__(self) -> int:
        return len(self.paths)

    def distance_from_cos(self, cos: np.ndarray) -> np.ndarray:
        """Content distance in 0..1 from cosines of the rows."""
        cos = np.asarray(cos, dtype=np.float32)
        if self.kind == "hash":
            return np.clip((1.0 - cos) * 0.5, 0.0, 1.0)
        return np.clip(1.0 - cos, 0.0, 1.0)

    def pair_distance(self, i: np.ndarray | int, j: np.ndarray | int) -> np.ndarray:
        """Distance between rows i and j (vectorised over equal-length index arrays)."""
        xi = np.asarray(self.x[np.atleast_1d(i)], dtype=np.float32)
        xj = np.asarray(self.x[np.atleast_1d(j)], dtype=np.float32)
        return self.distance_from_cos(np.einsum("ij,ij->i", xi, xj))


def unit_rows(matrix: np.ndarray, kind: str, order: Sequence[int] | np.ndarray | None = None,
              block: int = 8192) -> np.ndarray:
    """Unit rows from a catalog matrix (rows taken in ``order`` when given): float16 embeddings, or
    uint64-packed hashes as +-1 bits. float32 up to ``COMPACT_ABOVE`` rows, float16 above; built one
    block at a time."""
    rows = np.arange(len(matrix)) if order is None else np.asarray(order, dtype=np.int64)
    n = len(rows)
    cols = np.shape(matrix)[1] if np.ndim(matrix) == 2 else 0
    dim = cols * 64 if kind == "hash" else cols
    out = np.empty((n, dim), dtype=np.float16 if n > COMPACT_ABOVE else np.float32)
    for s in range(0, n, block):
        part = np.asarray(matrix[rows[s : s + block]])
        if kind == "hash":
            words = np.ascontiguousarray(part, dtype=">u8")
            bits = np.unpackbits(words.view(np.uint8), axis=1).astype(np.float32)
            out[s : s + block] = (bits * 2.0 - 1.0) / np.sqrt(bits.shape[1], dtype=np.float32)
        else:
            out[s : s + block] = unit_block(part)
    return out


def from_matrix(paths: Sequence[str], matrix: np.ndarray, kind: str, *, reuse: bool = False) -> Vectors:
    """Vectors from (paths, features); rows are put in path order so results do not depend on walk order.

    ``reuse``: the caller hands ``matrix`` over (it is not used again): embeddings already in the dtype the
    rows are kept in (float16 from the catalog above ``COMPACT_ABOVE`` rows) are then put in order and
    normalised in place, so there is never a second whole-collection copy (a million 1280-d rows: 2.6 GB)."""
    order = sorted(range(len(paths)), key=lambda i: paths[i])
    if reuse and _reusable(matrix, kind):
        return Vectors([paths[i] for i in order], _unit_rows_in_place(matrix, order), kind)
    return Vectors([paths[i] for i in order], unit_rows(matrix, kind, order), kind)


def _reusable(matrix: np.ndarray, kind: str) -> bool:
    n = len(matrix)
    want = np.float16 if n > COMPACT_ABOVE else np.float32
    return (kind != "hash" and isinstance(matrix, np.ndarray) and not isinstance(matrix, np.memmap)
            and matrix.ndim == 2 and matrix.dtype == want and matrix.flags.writeable and matrix.flags.c_contiguous)


def _unit_rows_in_place(matrix: np.ndarray, order: Sequence[int], block: int = 8192) -> np.ndarray:
    """``unit_rows(matrix, "embedding", order)`` computed inside ``matrix`` itself: the rows are permuted
    by following the permutation's cycles (one spare row), then normalised block by block."""
    n = len(matrix)
    dest_of = np.asarray(order, dtype=np.int64)  # row t of the result is matrix[order[t]]
    done = np.zeros(n, dtype=bool)
    for t in np.flatnonzero(dest_of != np.arange(n)).tolist():
        if done[t]:
            continue
        spare = matrix[t].copy()
        cur = t
        while True:
            done[cur] = True
            src = int(dest_of[cur])
            if src == t:
                matrix[cur] = spare
                break
            matrix[cur] = matrix[src]
            cur = src
    for s in range(0, n, block):
        matrix[s : s + block] = unit_block(matrix[s : s + block])
    return matrix


def load_vectors(
    paths: Sequence[str | Path],
    model: str = DEFAULT_MODEL,
    catalog: Catalog | str | Path | None = None,
    progress: Progress | None = None,
    recursive: bool = True,
    dask: str | int | None = None,
) -> Vectors:
    """Index ``paths`` (folders or files) as needed (on the Dask cluster ``dask`` when given) and return
    their features in path order."""
    if not paths:
        raise UsageError("give at least one folder")
    col = Collection(*paths, catalog=catalog, recursive=recursive)
    kind = load_extractor(model).kind
    got, matrix = col.features(model, progress=progress, cluster=dask)
    if not got:
        raise UsageError("no readable images found in " + ", ".join(map(str, paths)))
    return from_matrix(got, matrix, kind, reuse=True)


def _parse_exif_time(value: str | None) -> float | None:
    if not value:
        return None
    for fmt in ("%Y:%m:%d %H:%M:%S", "%Y-%m-%d %H:%M:%S", "%Y:%m:%d %H:%M", "%Y-%m-%dT%H:%M:%S"):
        try:
            return datetime.strptime(value.strip()[:19], fmt).timestamp()
        except ValueError:
            continue
    return None


def capture_times(paths: Sequence[str], catalog: Catalog | None = None) -> np.ndarray:
    """Seconds since the epoch per photo: EXIF DateTimeOriginal from the catalog, else the file's mtime."""
    hashes: dict[str, str] = {}
    if catalog is not None:
        rows = catalog.lookup_files(list(paths))
        hashes = {p: r.content_hash for p, r in rows.items() if r.content_hash}
    facts = catalog.images(set(hashes.values())) if catalog is not None else {}
    out = np.empty(len(paths), dtype=np.float64)
    for i, p in enumerate(paths):
        h = hashes.get(p)
        t = _parse_exif_time(facts[h].exif_datetime) if h in facts else None
        if t is None:
            try:
                t = os.stat(p).st_mtime
            except OSError:
                t = 0.0
        out[i] = t
    return out


def scaled_times(times: np.ndarray) -> np.ndarray:
    """Times mapped to 0..1 over their range; all zeros when every time is equal (no division by zero)."""
    t = np.asarray(times, dtype=np.float64)
    if len(t) == 0:
        return t
    span = float(t.max() - t.min())
    if not np.isfinite(span) or span <= 0:
        return np.zeros_like(t)
    return (t - t.min()) / span


__all__ = ["Vectors", "capture_times", "file_sha256", "from_matrix", "load_vectors", "scaled_times", "unit_rows"]
