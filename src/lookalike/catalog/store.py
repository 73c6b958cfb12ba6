"""The catalog: one SQLite database (WAL) of files, picture facts and features.

* ``files``: one row per path: (size, mtime_ns) is the fast path that lets an unchanged file go
  unread; ``content_hash`` (sha256 of the bytes) keys everything else, so a moved or renamed file
  reuses its features.
* ``images``: facts about a content hash learnt while decoding (size, format, EXIF time...).
* ``features``: (content_hash, model, version) -> blob (float16 embedding or uint64 hash words).

Several processes may index into one catalog at once: WAL mode, a generous busy timeout and short
``BEGIN IMMEDIATE`` write transactions keep it consistent. Each thread gets its own connection.
"""

from __future__ import annotations

import os
import sqlite3
import threading
import time
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from lookalike.config import default_catalog_path
from lookalike.errors import CatalogError

SCHEMA_VERSION = 1

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT);
CREATE TABLE IF NOT EXISTS files (
    path TEXT PRIMARY KEY,
    size INTEGER NOT NULL,
    mtime_ns INTEGER NOT NULL,
    content_hash TEXT,
    status TEXT NOT NULL,
    error TEXT,
    seen_at REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS files_by_hash ON files(content_hash);
CREATE TABLE IF NOT EXISTS images (
    content_hash TEXT PRIMARY KEY,
    width INTEGER, height INTEGER, format TEXT, mode TEXT,
    truncated INTEGER, frames INTEGER, exif_datetime TEXT, exif_tags INTEGER, bytes INTEGER
);
CREATE TABLE IF NOT EXISTS features (
    content_hash TEXT NOT NULL,
    model TEXT NOT NULL,
    version TEXT NOT NULL,
    data BLOB NOT NULL,
    PRIMARY KEY (content_hash, model, version)
) WITHOUT ROWID;
"""

_CHUNK = 500  # parameters per IN (...) query


@dataclass(frozen=True)
class FileRow:
    path: str
    size: int
    mtime_ns: int
    content_hash: str | None
    status: str
    error: str | None


@dataclass(frozen=True)
class ImageRow:
    content_hash: str
    width: int
    height: int
    format: str
    mode: str
    truncated: bool
    frames: int
    exif_datetime: str | None
    exif_tags: int
    bytes: int


def encode_feature(vec: np.ndarray, kind: str) -> bytes:
    """Blob for a feature row: hashes as little-endian uint64 words; embeddings as float16.

    float16 halves the catalog and the memory of a search (a million 1280-d vectors: 2.5 GB instead
    of 5); cosine scores move by under 1e-3, far below any threshold we use."""
    if kind == "hash":
        return np.ascontiguousarray(vec, dtype="<u8").tobytes()
    return np.ascontiguousarray(vec, dtype="<f2").tobytes()


def decode_features(blobs: Sequence[bytes], kind: str) -> np.ndarray:
    """Stack blobs back into a matrix: uint64 (n, words) for hashes, float16 (n, dim) otherwise."""
    dtype = np.dtype("<u8") if kind == "hash" else np.dtype("<f2")
    if not blobs:
        return np.zeros((0, 1), dtype=dtype)
    joined = b"".join(blobs)
    return np.frombuffer(joined, dtype=dtype).reshape(len(blobs), -1)


class Catalog:
    """Handle on a catalog database. Cheap to create; thread-safe (a connection per thread)."""

    def __init__(self, path: str | Path | None = None) -> None:
        self.path = Path(path).expanduser() if path else default_catalog_path()
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise CatalogError(f"cannot create the catalog folder {self.path.parent}: {exc}") from exc
        self._local = threading.local()
        self._all: list[sqlite3.Connection] = []
        self._lock = threading.Lock()
        with self.transaction() as db:
            for statement in _SCHEMA.split(";"):
                if statement.strip():
                    db.execute(statement)
            db.execute("INSERT OR IGNORE INTO meta VALUES ('schema_version', ?)", (str(SCHEMA_VERSION),))

    # -- connections -------------------------------------------------------------------------
    def connection(self) -> sqlite3.Connection:
        """This thread's connection (autocommit mode; use :meth:`transaction` to write)."""
        conn = getattr(self._local, "conn", None)
        if conn is None:
            try:
                conn = sqlite3.connect(self.path, timeout=60, isolation_level=None, check_same_thread=False)
                conn.execute("PRAGMA journal_mode=WAL")
                conn.execute("PRAGMA synchronous=NORMAL")
                conn.execute("PRAGMA busy_timeout=60000")
                conn.execute("PRAGMA foreign_keys=ON")
            except sqlite3.Error as exc:
                raise CatalogError(f"cannot open catalog {self.path}: {exc}") from exc
            self._local.conn = conn
            with self._lock:
                self._all.append(conn)
        return conn

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """A short write transaction (BEGIN IMMEDIATE, so writers queue instead of deadlocking)."""
        db = self.connection()
        for attempt in range(50):
            try:
                db.execute("BEGIN IMMEDIATE")
                break
            except sqlite3.OperationalError as exc:  # busy beyond the timeout: try again
                if "locked" not in str(exc) or attempt == 49:
                    raise CatalogError(f"catalog {self.path} is busy: {exc}") from exc
                time.sleep(0.1)
        try:
            yield db
        except BaseException:
            db.execute("ROLLBACK")
            raise
        else:
            db.execute("COMMIT")

    def close(self) -> None:
        with self._lock:
            for conn in self._all:
                try:
                    conn.close()
                except sqlite3.Error:
                    pass
            self._all.clear()
        self._local = threading.local()

    def __enter__(self) -> Catalog:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- reads -------------------------------------------------------------------------------
    def lookup_files(self, paths: Sequence[str]) -> dict[str, FileRow]:
        """Rows of the given paths that the catalog knows."""
        db = self.connection()
        out: dict[str, FileRow] = {}
        for i in range(0, len(paths), _CHUNK):
            chunk = paths[i : i + _CHUNK]
            marks = ",".join("?" * len(chunk))
            q = f"SELECT path,size,mtime_ns,content_hash,status,error FROM files WHERE path IN ({marks})"
            for row in db.execute(q, chunk):
                out[row[0]] = FileRow(*row)
        return out

    def files_under(self, folder: str | Path) -> list[FileRow]:
        """Every file row at or below a folder (by path prefix)."""
        prefix = os.path.join(os.path.abspath(folder), "")
        hi = prefix[:-1] + chr(ord(os.sep) + 1)
        rows = self.connection().execute(
            "SELECT path,size,mtime_ns,content_hash,status,error FROM files WHERE path >= ? AND path < ?",
            (prefix, hi),
        )
        return [FileRow(*r) for r in rows]

    def hashes_with_feature(self, hashes: Iterable[str], model: str, version: str) -> set[str]:
        """The subset of ``hashes`` that already have this model's feature."""
        hashes = list(hashes)
        db = self.connection()
        found: set[str] = set()
        for i in range(0, len(hashes), _CHUNK):
            chunk = hashes[i : i + _CHUNK]
            q = (
                "SELECT content_hash FROM features WHERE model=? AND version=? "
                f"AND content_hash IN ({','.join('?' * len(chunk))})"
            )
            found.update(r[0] for r in db.execute(q, (model, version, *chunk)))
        return found

    def has_image(self, content_hash: str) -> bool:
        row = self.connection().execute("SELECT 1 FROM images WHERE content_hash=?", (content_hash,)).fetchone()
        return row is not None

    def images(self, hashes: Iterable[str]) -> dict[str, ImageRow]:
        """Picture facts by content hash."""
        hashes = list(hashes)
        db = self.connection()
        out: dict[str, ImageRow] = {}
        for i in range(0, len(hashes), _CHUNK):
            chunk = hashes[i : i + _CHUNK]
            q = f"SELECT * FROM images WHERE content_hash IN ({','.join('?' * len(chunk))})"
            for r in db.execute(q, chunk):
                out[r[0]] = ImageRow(r[0], r[1], r[2], r[3], r[4], bool(r[5]), r[6], r[7], r[8], r[9])
        return out

    def features_for_hashes(self, hashes: Sequence[str], model: str, version: str) -> dict[str, bytes]:
        db = self.connection()
        out: dict[str, bytes] = {}
        for i in range(0, len(hashes), _CHUNK):
            chunk = hashes[i : i + _CHUNK]
            q = (
                "SELECT content_hash, data FROM features WHERE model=? AND version=? "
                f"AND content_hash IN ({','.join('?' * len(chunk))})"
            )
            out.update(db.execute(q, (model, version, *chunk)))
        return out

    def feature_matrix(
        self, paths: Sequence[str], model: str, version: str, kind: str
    ) -> tuple[list[str], np.ndarray]:
        """(paths that have the feature, matrix of their features in that order)."""
        rows = self.lookup_files(paths)
        hashes = {p: r.content_hash for p, r in rows.items() if r.content_hash and r.status != "error"}
        blobs = self.features_for_hashes(sorted(set(hashes.values())), model, version)
        kept = [p for p in paths if hashes.get(p) in blobs]
        return kept, decode_features([blobs[hashes[p]] for p in kept], kind)

    def stats(self) -> dict:
        """Counts of files, pictures and features per model, and the database size."""
        db = self.connection()
        files = dict(db.execute("SELECT status, COUNT(*) FROM files GROUP BY status").fetchall())
        models = [
            {"model": m, "version": v, "count": n, "bytes": b}
            for m, v, n, b in db.execute(
                "SELECT model, version, COUNT(*), SUM(LENGTH(data)) FROM features GROUP BY model, version"
            )
        ]
        size = sum(p.stat().st_size for p in self.path.parent.glob(self.path.name + "*") if p.is_file())
        return {
            "catalog": str(self.path),
            "files": sum(files.values()),
            "by_status": files,
            "images": db.execute("SELECT COUNT(*) FROM images").fetchone()[0],
            "features": models,
            "bytes_on_disk": size,
        }

    # -- writes ------------------------------------------------------------------------------
    def write(
        self,
        files: Sequence[tuple] = (),
        images: Sequence[tuple] = (),
        features: Sequence[tuple] = (),
    ) -> None:
        """Write a batch in one transaction.

        files: (path, size, mtime_ns, content_hash, status, error); images: ImageRow fields in order;
        features: (content_hash, model, version, blob).
        """
        if not (files or images or features):
            return
        now = time.time()
        with self.transaction() as db:
            if images:
                db.executemany("INSERT OR REPLACE INTO images VALUES (?,?,?,?,?,?,?,?,?,?)", images)
            if features:
                db.executemany("INSERT OR REPLACE INTO features VALUES (?,?,?,?)", features)
            if files:
                db.executemany(
                    "INSERT OR REPLACE INTO files VALUES (?,?,?,?,?,?,?)", [(*f, now) for f in files]
                )

    def forget_paths(self, paths: Iterable[str]) -> int:
        paths = list(paths)
        with self.transaction() as db:
            for i in range(0, len(paths), _CHUNK):
                chunk = paths[i : i + _CHUNK]
                db.execute(f"DELETE FROM files WHERE path IN ({','.join('?' * len(chunk))})", chunk)
        return len(paths)

    def _drop_orphans(self, db: sqlite3.Connection) -> int:
        n = db.execute(
            "DELETE FROM features WHERE content_hash NOT IN (SELECT content_hash FROM files "
            "WHERE content_hash IS NOT NULL)"
        ).rowcount
        db.execute(
            "DELETE FROM images WHERE content_hash NOT IN (SELECT content_hash FROM files "
            "WHERE content_hash IS NOT NULL)"
        )
        return n

    def prune(self) -> dict[str, int]:
        """Drop entries of files that no longer exist, then features nobody refers to."""
        gone = [r[0] for r in self.connection().execute("SELECT path FROM files") if not os.path.exists(r[0])]
        self.forget_paths(gone)
        with self.transaction() as db:
            dropped = self._drop_orphans(db)
        self.connection().execute("PRAGMA wal_checkpoint(TRUNCATE)")
        return {"files_removed": len(gone), "features_removed": dropped}

    def clear(self, model: str | None = None) -> int:
        """Drop one model's features, or everything. Returns rows removed."""
        with self.transaction() as db:
            if model:
                return db.execute("DELETE FROM features WHERE model=?", (model,)).rowcount
            n = db.execute("DELETE FROM features").rowcount
            n += db.execute("DELETE FROM images").rowcount
            n += db.execute("DELETE FROM files").rowcount
        return n
