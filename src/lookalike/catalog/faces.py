"""Face tables of the catalog: the faces found in a picture and their embeddings, keyed like features by
(content_hash, model, version) plus the detector chain that found them, so that a picture seen again
(or moved, or copied) costs no detection and no embedding.

* ``face_scans``: one row per (picture, embedder, detector): how many faces were found (0 is remembered
  too, so pictures without a face are not scanned again).
* ``face_embeddings``: one row per face: index (left to right), box, score, which detector found it, and
  the embedding as little-endian float32.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from lookalike.catalog.store import Catalog

_SCHEMA = """
CREATE TABLE IF NOT EXISTS face_scans (
    content_hash TEXT NOT NULL, model TEXT NOT NULL, version TEXT NOT NULL, detector TEXT NOT NULL,
    n_faces INTEGER NOT NULL, width INTEGER, height INTEGER,
    PRIMARY KEY (content_hash, model, version, detector)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS face_embeddings (
    content_hash TEXT NOT NULL, model TEXT NOT NULL, version TEXT NOT NULL, detector TEXT NOT NULL,
    face_index INTEGER NOT NULL, left INTEGER, top INTEGER, right INTEGER, bottom INTEGER,
    score REAL, found_by TEXT, embedding BLOB NOT NULL,
    PRIMARY KEY (content_hash, model, version, detector, face_index)
) WITHOUT ROWID;
"""

_CHUNK = 400
_ready: set[str] = set()


@dataclass(frozen=True)
class FaceRow:
    box: tuple[int, int, int, int]
    score: float
    found_by: str
    embedding: np.ndarray  # float32 (dim,)


@dataclass(frozen=True)
class FaceScan:
    """What a scan of one picture found: its size and its faces (possibly none)."""

    width: int
    height: int
    faces: list[FaceRow]


def ensure_tables(catalog: Catalog) -> None:
    key = str(catalog.path)
    if key in _ready:
        return
    with catalog.transaction() as db:
        for statement in _SCHEMA.split(";"):
            if statement.strip():
                db.execute(statement)
    _ready.add(key)


def load_scans(
    catalog: Catalog, hashes: Sequence[str], model: str, version: str, detector: str
) -> dict[str, FaceScan]:
    """Stored scans of the given pictures (those never scanned are absent)."""
    ensure_tables(catalog)
    db = catalog.connection()
    hashes = list(dict.fromkeys(hashes))
    out: dict[str, FaceScan] = {}
    for i in range(0, len(hashes), _CHUNK):
        chunk = hashes[i : i + _CHUNK]
        marks = ",".join("?" * len(chunk))
        args = (model, version, detector, *chunk)
        for h, w, ht in db.execute(
            f"SELECT content_hash, width, height FROM face_scans WHERE model=? AND version=? AND detector=? "
            f"AND content_hash IN ({marks})", args
        ):
            out[h] = FaceScan(w or 0, ht or 0, [])
        for h, _i, left, top, right, bottom, score, found_by, blob in db.execute(
            "SELECT content_hash, face_index, left, top, right, bottom, score, found_by, embedding "
            f"FROM face_embeddings WHERE model=? AND version=? AND detector=? AND content_hash IN ({marks}) "
            "ORDER BY content_hash, face_index", args
        ):
            if h in out:
                vec = np.frombuffer(blob, dtype="<f4").astype(np.float32)
                out[h].faces.append(FaceRow((left, top, right, bottom), float(score), found_by, vec))
    return out


def store_scans(catalog: Catalog, model: str, version: str, detector: str, scans: dict[str, FaceScan]) -> None:
    """Write (replace) scans in one transaction."""
    if not scans:
        return
    ensure_tables(catalog)
    with catalog.transaction() as db:
        for h, scan in scans.items():
            key = (h, model, version, detector)
            db.execute("DELETE FROM face_embeddings WHERE content_hash=? AND model=? AND version=? AND detector=?", key)
            db.execute("INSERT OR REPLACE INTO face_scans VALUES (?,?,?,?,?,?,?)",
                       (*key, len(scan.faces), scan.width, scan.height))
            db.executemany(
                "INSERT INTO face_embeddings VALUES (?,?,?,?,?,?,?,?,?,?,?,?)",
                [(*key, i, *map(int, f.box), float(f.score), f.found_by,
                  np.ascontiguousarray(f.embedding, dtype="<f4").tobytes()) for i, f in enumerate(scan.faces)],
            )


def clear_faces(catalog: Catalog, model: str | None = None) -> int:
    """Drop stored face scans (of one embedder, or all). Returns the number of scans removed."""
    ensure_tables(catalog)
    with catalog.transaction() as db:
        where, args = ("WHERE model=?", (model,)) if model else ("", ())
        n = db.execute(f"DELETE FROM face_scans {where}", args).rowcount
        db.execute(f"DELETE FROM face_embeddings {where}", args)
    return n
