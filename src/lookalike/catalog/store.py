"""The catalog: one SQLite database (WAL) of files, picture facts and features.

* ``files``: one row per path: (size, mtime_ns, inode, ctime_ns) is the fast path that lets an
  unchanged file go unread (ctime is set by the kernel on every change, and no user tool can set it:
  a file rewritten with its size and mtime kept, as by ``touch -r``, is still seen as changed);
  ``content_hash`` (sha256 of the bytes) keys everything else, so a moved or renamed file reuses its
  features. Paths are stored as TEXT when they are valid UTF-8 and as BLOB (the name's bytes, from
  ``os.fsencode``) when they are not (a name such as ``caf\xe9.jpg``): lossless, and old catalogs
  (all TEXT) read as before.
* ``images``: facts about a content hash learnt while decoding (size, format, EXIF time...).
* ``features``: (content_hash, model, version) -> blob (float16 embedding or uint64 hash words).

Every SQLite failure (a damaged file, a read-only file or folder) surfaces as one CatalogError naming the
catalog, never a traceback. Several processes may index into one catalog at once: WAL mode, a generous
busy timeout and short ``BEGIN IMMEDIATE`` write transactions keep it consistent. Each thread gets its
own connection.
"""

from __future__ import annotations

import functools
import os
import sqlite3
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import numpy as np

from lookalike.config import default_catalog_path
from lookalike.errors import CatalogError

#: 2: files gained inode and ctime_ns (rows from version 1 have NULL there and count as changed once).
SCHEMA_VERSION = 2

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT);
CREATE TABLE IF NOT EXISTS files (
    path TEXT PRIMARY KEY,
    size INTEGER NOT NULL,
    mtime_ns INTEGER NOT NULL,
    content_hash TEXT,
    status TEXT NOT NULL,
    error TEXT,
    seen_at REAL NOT NULL,
    inode INTEGER,
    ctime_ns INTEGER
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


_FILE_COLUMNS = "path,size,mtime_ns,content_hash,status,error,inode,ctime_ns"


@dataclass(frozen=True)
class FileRow:
    """One row of ``files``, as read back and as written (:meth:`Catalog.write`).

    ``status``: "ok", "truncated" or "error" (then ``error`` says why). Without ``inode`` and ``ctime_ns``
    the row never passes the fast path: the file is hashed again next time."""

    path: str
    size: int
    mtime_ns: int
    content_hash: str | None
    status: str
    error: str | None
    inode: int | None = None
    ctime_ns: int | None = None

    def same_file(self, st: os.stat_result) -> bool:
        """True when ``st`` (an ``os.stat`` of the path) shows the file this row describes, unchanged:
        same size, mtime, inode and ctime. A row without inode/ctime (older catalogs) never matches."""
        return (
            self.inode is not None
            and self.ctime_ns is not None
            and self.size == st.st_size
            and self.mtime_ns == st.st_mtime_ns
            and self.inode == st.st_ino
            and self.ctime_ns == st.st_ctime_ns
        )


def _file_row(row: Sequence[Any]) -> FileRow:
    return FileRow(from_db_path(row[0]), *row[1:])


def to_db_path(path: str) -> str | bytes:
    """How a path is stored: itself when it is valid UTF-8 (TEXT), else its bytes (BLOB).

    Python gives undecodable bytes of a file name as lone surrogates (``'caf\\udce9.jpg'``), which
    SQLite cannot store as TEXT; ``os.fsencode`` turns them back into the name's real bytes. TEXT and
    BLOB never compare equal in SQLite, and the bytes of such a name are never valid UTF-8, so no two
    paths share a key."""
    if path.isascii():
        return path
    try:
        path.encode("utf-8")
        return path
    except UnicodeEncodeError:
        try:
            return os.fsencode(path)
        except UnicodeEncodeError:  # a surrogate no file system gives: keep it, losslessly
            return path.encode("utf-8", "surrogatepass")


def from_db_path(value: str | bytes) -> str:
    """The inverse of :func:`to_db_path`."""
    return value if isinstance(value, str) else os.fsdecode(value)


def _db_text(text: str | None) -> str | None:
    """Free text (error messages) made storable: lone surrogates become backslash escapes."""
    if text is None or text.isascii():
        return text
    return text.encode("utf-8", "backslashreplace").decode("utf-8")


def feature_nbytes(kind: str, dim: int) -> int:
    """Size in bytes of one stored feature: 64 bits per uint64 word for hashes, float16 otherwise."""
    return ((dim + 63) // 64) * 8 if kind == "hash" else dim * 2


class DamagedFeatureError(CatalogError):
    """Stored features were unreadable (wrong size, NaN or infinity). They have been removed, so the
    next indexing run computes them again; ``paths`` names the files concerned."""

    def __init__(self, message: str, paths: Sequence[str]) -> None:
        super().__init__(message)
        self.paths = list(paths)


def catalog_error(path: Path | str, exc: BaseException) -> CatalogError:
    """One clear line for an SQLite failure on the catalog at ``path``."""
    text = str(exc) or type(exc).__name__
    low = text.lower()
    if "malformed" in low or "not a database" in low or "corrupt" in low:
        return CatalogError(f"catalog {path} is damaged ({text}): move it away to start a new one, or choose "
                            "another with --catalog")
    if "readonly" in low or "read-only" in low:
        return CatalogError(f"catalog {path} is read-only ({text}); make the file and its folder writable, or "
                            "choose another with --catalog")
    if "unable to open" in low or "disk i/o" in low:
        return CatalogError(f"cannot open catalog {path} ({text}); check that the file and its folder exist and "
                            "can be written")
    if "locked" in low or "busy" in low:
        return CatalogError(f"catalog {path} is busy ({text}); another lookalike may be holding it")
    if "full" in low:
        return CatalogError(f"catalog {path}: the disk is full ({text})")
    return CatalogError(f"catalog {path}: {text}")


def _bind_value(v: Any) -> Any:
    return to_db_path(v) if isinstance(v, str) and not v.isascii() else v


def _bind(params: Any) -> Any:
    """Parameters made storable: a str that is not valid UTF-8 (a path with surrogate escapes) is bound
    as :func:`to_db_path` stores it, so no statement of ``catalog/`` fails on such a name."""
    if isinstance(params, dict):
        return {k: _bind_value(v) for k, v in params.items()}
    if isinstance(params, list | tuple):
        return [_bind_value(v) for v in params]
    return params


class _Connection(sqlite3.Connection):
    """A connection whose statements raise CatalogError (naming the catalog) instead of sqlite3 errors,
    so code elsewhere in ``catalog/`` that runs its own SQL gets the same clear messages, and whose
    parameters are bound with :func:`_bind` (paths that are not UTF-8 are stored as their bytes). Code
    reading a path column back decodes it with :func:`from_db_path`."""

    catalog_path: str = "?"

    def execute(self, sql: str, parameters: Any = (), /) -> sqlite3.Cursor:  # type: ignore[override]
        try:
            return super().execute(sql, _bind(parameters))
        except sqlite3.Error as exc:
            raise catalog_error(self.catalog_path, exc) from exc

    def executemany(self, sql: str, parameters: Any, /) -> sqlite3.Cursor:  # type: ignore[override]
        try:
            return super().executemany(sql, (_bind(p) for p in parameters))
        except sqlite3.Error as exc:
            raise catalog_error(self.catalog_path, exc) from exc


_F = TypeVar("_F", bound=Callable[..., Any])


def _guarded(method: _F) -> _F:
    """Turn sqlite3 errors raised anywhere in a Catalog method (cursor iteration included) into CatalogError."""

    @functools.wraps(method)
    def wrapper(self: Catalog, *args: Any, **kwargs: Any) -> Any:
        try:
            return method(self, *args, **kwargs)
        except sqlite3.Error as exc:
            raise catalog_error(self.path, exc) from exc

    return wrapper  # type: ignore[return-value]


@dataclass(frozen=True)
class ImageRow:
    """One row of ``images``: facts about a content hash learnt while decoding it."""

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

    def values(self) -> tuple:
        return (self.content_hash, self.width, self.height, self.format, self.mode, int(self.truncated),
                self.frames, self.exif_datetime, self.exif_tags, self.bytes)


@dataclass(frozen=True)
class FeatureRow:
    """One row of ``features``: a model's feature of a content hash, as stored (:func:`encode_feature`)."""

    content_hash: str
    model: str
    version: str
    data: bytes


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
    sizes = {len(b) for b in blobs}
    if len(sizes) != 1 or 0 in sizes or next(iter(sizes)) % dtype.itemsize:
        raise CatalogError(f"stored features have unusable sizes ({sorted(sizes)} bytes)")
    joined = b"".join(blobs)
    return np.frombuffer(joined, dtype=dtype).reshape(len(blobs), -1)


class Catalog:
    """Handle on a catalog database. Cheap to create; thread-safe (a connection per thread).

    ``path``: the database file; its folder must exist (it is never created, so a mistyped
    ``--catalog`` cannot leave folders behind). None: the default catalog under lookalike's home."""

    def __init__(self, path: str | Path | None = None) -> None:
        if path:
            self.path = Path(os.path.abspath(Path(path).expanduser()))
            if self.path.is_dir():
                raise CatalogError(f"catalog {self.path} is a folder, not a database file")
            if not self.path.parent.is_dir():
                raise CatalogError(f"cannot open catalog {self.path}: its folder {self.path.parent} does not exist "
                                   "(create it first, or choose another --catalog)")
        else:
            self.path = default_catalog_path()
        self._local = threading.local()
        self._all: list[sqlite3.Connection] = []
        self._lock = threading.Lock()
        with self.transaction() as db:
            for statement in _SCHEMA.split(";"):
                if statement.strip():
                    db.execute(statement)
            self._migrate(db)
            db.execute("INSERT OR IGNORE INTO meta VALUES ('schema_version', ?)", (str(SCHEMA_VERSION),))

    @staticmethod
    def _migrate(db: sqlite3.Connection) -> None:
        """Bring a catalog written by an older lookalike up to this schema (inside the open transaction)."""
        columns = {r[1] for r in db.execute("PRAGMA table_info(files)")}
        for name in ("inode", "ctime_ns"):
            if name not in columns:  # old rows get NULL: they count as changed once, then are filled in
                db.execute(f"ALTER TABLE files ADD COLUMN {name} INTEGER")
        db.execute("UPDATE meta SET value=? WHERE key='schema_version' AND CAST(value AS INTEGER) < ?",
                   (str(SCHEMA_VERSION), SCHEMA_VERSION))

    # -- connections -------------------------------------------------------------------------
    def connection(self) -> sqlite3.Connection:
        """This thread's connection (autocommit mode; use :meth:`transaction` to write)."""
        conn = getattr(self._local, "conn", None)
        if conn is None:
            try:
                conn = sqlite3.connect(self.path, timeout=60, isolation_level=None, check_same_thread=False,
                                       factory=_Connection)
                conn.catalog_path = str(self.path)
                conn.execute("PRAGMA busy_timeout=60000")
                conn.execute("PRAGMA journal_mode=WAL")
                conn.execute("PRAGMA synchronous=NORMAL")
                conn.execute("PRAGMA foreign_keys=ON")
            except sqlite3.Error as exc:
                raise catalog_error(self.path, exc) from exc
            self._local.conn = conn
            with self._lock:
                self._all.append(conn)
        return conn

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """A short write transaction (BEGIN IMMEDIATE, so writers queue instead of deadlocking).

        Any SQLite failure inside (damaged file, read-only catalog) is rolled back and raised as CatalogError."""
        db = self.connection()
        for attempt in range(50):
            try:
                db.execute("BEGIN IMMEDIATE")
                break
            except CatalogError as exc:  # busy beyond the timeout: try again
                cause = str(exc.__cause__ or exc)
                if "locked" not in cause or attempt == 49:
                    raise
                time.sleep(0.1)
        try:
            yield db
        except BaseException as exc:
            try:
                db.execute("ROLLBACK")
            except (CatalogError, sqlite3.Error):
                pass
            if isinstance(exc, sqlite3.Error):
                raise catalog_error(self.path, exc) from exc
            raise
        else:
            try:
                db.execute("COMMIT")
            except CatalogError:
                try:
                    db.execute("ROLLBACK")
                except (CatalogError, sqlite3.Error):
                    pass
                raise

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
    @_guarded
    def lookup_files(self, paths: Sequence[str]) -> dict[str, FileRow]:
        """Rows of the given paths that the catalog knows."""
        db = self.connection()
        out: dict[str, FileRow] = {}
        keys = [to_db_path(p) for p in paths]
        for i in range(0, len(keys), _CHUNK):
            chunk = keys[i : i + _CHUNK]
            marks = ",".join("?" * len(chunk))
            q = f"SELECT {_FILE_COLUMNS} FROM files WHERE path IN ({marks})"
            for row in db.execute(q, chunk):
                r = _file_row(row)
                out[r.path] = r
        return out

    @_guarded
    def files_under(self, folder: str | Path) -> list[FileRow]:
        """Every file row at or below a folder (by path prefix)."""
        prefix = os.path.join(os.path.abspath(folder), "")
        db = self.connection()
        rows: list[FileRow] = []
        text_prefix = to_db_path(prefix)
        if isinstance(text_prefix, str):  # UTF-8 names below a UTF-8 folder (TEXT rows)
            hi = prefix[:-1] + chr(ord(os.sep) + 1)
            rows += [_file_row(r) for r in db.execute(
                f"SELECT {_FILE_COLUMNS} FROM files WHERE path >= ? AND path < ?", (prefix, hi))]
        raw = os.fsencode(prefix)  # names that are not UTF-8 (BLOB rows; BLOBs compare bytewise)
        raw_hi = raw[:-1] + bytes([raw[-1] + 1])
        rows += [_file_row(r) for r in db.execute(
            f"SELECT {_FILE_COLUMNS} FROM files WHERE path >= ? AND path < ?", (raw, raw_hi))]
        return rows

    @_guarded
    def hashes_with_feature(
        self, hashes: Iterable[str], model: str, version: str, nbytes: int | None = None
    ) -> set[str]:
        """The subset of ``hashes`` that already have this model's feature (of ``nbytes`` bytes when given:
        a stored blob of another size is damaged and counts as missing, so indexing computes it again)."""
        hashes = list(hashes)
        db = self.connection()
        found: set[str] = set()
        size = "" if nbytes is None else f"AND LENGTH(data)={int(nbytes)} "
        for i in range(0, len(hashes), _CHUNK):
            chunk = hashes[i : i + _CHUNK]
            q = (
                f"SELECT content_hash FROM features WHERE model=? AND version=? {size}"
                f"AND content_hash IN ({','.join('?' * len(chunk))})"
            )
            found.update(r[0] for r in db.execute(q, (model, version, *chunk)))
        return found

    @_guarded
    def has_image(self, content_hash: str) -> bool:
        row = self.connection().execute("SELECT 1 FROM images WHERE content_hash=?", (content_hash,)).fetchone()
        return row is not None

    @_guarded
    def hashes_of_size(self, sizes: Iterable[int]) -> dict[int, list[str]]:
        """File size -> content hashes of the known pictures of that many bytes (one scan of ``images``): the
        contents a new file of that size may turn out to be, for a reader that cannot ask per file."""
        wanted = set(sizes)
        out: dict[int, list[str]] = {}
        if wanted:
            for h, n in self.connection().execute("SELECT content_hash, bytes FROM images"):
                if n in wanted:
                    out.setdefault(n, []).append(h)
        return out

    @_guarded
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

    @_guarded
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

    @_guarded
    def feature_matrix(
        self, paths: Sequence[str], model: str, version: str, kind: str, nbytes: int | None = None
    ) -> tuple[list[str], np.ndarray]:
        """(paths that have the feature, matrix of their features in that order).

        Every blob is checked: all of one size (``nbytes`` when given, else the size most of them have),
        and, for embeddings, finite. Damaged ones are deleted (the next indexing run computes them again)
        and DamagedFeatureError is raised, so a tampered catalog never gives a NaN score or a wrong shape."""
        rows = self.lookup_files(paths)
        hashes = {p: r.content_hash for p, r in rows.items() if r.content_hash and r.status != "error"}
        blobs = self.features_for_hashes(sorted(set(hashes.values())), model, version)
        bad = self._damaged(blobs, kind, nbytes)
        if bad:
            with self.transaction() as db:
                db.executemany("DELETE FROM features WHERE content_hash=? AND model=? AND version=?",
                               [(h, model, version) for h in sorted(bad)])
            names = [p for p in paths if hashes.get(p) in bad]
            first = names[0] if names else sorted(bad)[0]
            more = f" and {len(names) - 1} other file(s)" if len(names) > 1 else ""
            why = bad[hashes[first]] if first in hashes else next(iter(bad.values()))
            raise DamagedFeatureError(
                f"catalog {self.path}: the stored {model} feature of {first}{more} was damaged ({why}); "
                "it has been removed and is computed again on the next run", names)
        kept = [p for p in paths if hashes.get(p) in blobs]
        return kept, decode_features([blobs[hashes[p]] for p in kept], kind)

    @staticmethod
    def _damaged(blobs: dict[str, bytes], kind: str, nbytes: int | None) -> dict[str, str]:
        """content_hash -> what is wrong, for blobs that cannot be a feature."""
        if not blobs:
            return {}
        itemsize = 8 if kind == "hash" else 2
        if nbytes is None:  # the size most blobs have
            counts: dict[int, int] = {}
            for b in blobs.values():
                counts[len(b)] = counts.get(len(b), 0) + 1
            nbytes = max(counts, key=lambda n: (counts[n], n))
        bad = {h: f"{len(b)} bytes instead of {nbytes}" for h, b in blobs.items()
               if len(b) != nbytes or not isinstance(b, bytes)}
        if nbytes == 0 or nbytes % itemsize:
            return {h: f"{len(b)} bytes" for h, b in blobs.items()}
        if kind != "hash":
            good = [h for h in blobs if h not in bad]
            if good:
                mat = np.frombuffer(b"".join(blobs[h] for h in good), dtype="<f2").reshape(len(good), -1)
                finite = np.isfinite(mat).all(axis=1)
                for i in np.flatnonzero(~finite):
                    bad[good[i]] = "not a finite number"
        return bad

    @_guarded
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
        size = 0
        for suffix in ("", "-wal", "-shm"):
            try:
                size += os.stat(str(self.path) + suffix).st_size
            except OSError:
                pass
        return {
            "catalog": str(self.path),
            "files": sum(files.values()),
            "by_status": files,
            "images": db.execute("SELECT COUNT(*) FROM images").fetchone()[0],
            "features": models,
            "bytes_on_disk": size,
        }

    # -- writes ------------------------------------------------------------------------------
    @_guarded
    def write(
        self,
        files: Sequence[FileRow] = (),
        images: Sequence[ImageRow] = (),
        features: Sequence[FeatureRow] = (),
    ) -> None:
        """Write a batch of rows in one transaction (a row replaces the one of the same key)."""
        if not (files or images or features):
            return
        now = time.time()
        rows = [(to_db_path(f.path), f.size, f.mtime_ns, f.content_hash, f.status, _db_text(f.error), now, f.inode,
                 f.ctime_ns) for f in files]
        with self.transaction() as db:
            if images:
                db.executemany("INSERT OR REPLACE INTO images VALUES (?,?,?,?,?,?,?,?,?,?)",
                               [i.values() for i in images])
            if features:
                db.executemany("INSERT OR REPLACE INTO features VALUES (?,?,?,?)",
                               [(f.content_hash, f.model, f.version, f.data) for f in features])
            if rows:
                db.executemany(
                    "INSERT OR REPLACE INTO files (path,size,mtime_ns,content_hash,status,error,seen_at,inode,"
                    "ctime_ns) VALUES (?,?,?,?,?,?,?,?,?)", rows
                )

    @_guarded
    def forget_paths(self, paths: Iterable[str]) -> int:
        keys = [to_db_path(p) for p in paths]
        with self.transaction() as db:
            for i in range(0, len(keys), _CHUNK):
                chunk = keys[i : i + _CHUNK]
                db.execute(f"DELETE FROM files WHERE path IN ({','.join('?' * len(chunk))})", chunk)
        return len(keys)

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

    @_guarded
    def prune(self) -> dict[str, int]:
        """Drop entries of files that no longer exist, then features nobody refers to."""
        paths = [from_db_path(r[0]) for r in self.connection().execute("SELECT path FROM files")]
        gone = [p for p in paths if not os.path.exists(p)]
        self.forget_paths(gone)
        with self.transaction() as db:
            dropped = self._drop_orphans(db)
        self.connection().execute("PRAGMA wal_checkpoint(TRUNCATE)")
        return {"files_removed": len(gone), "features_removed": dropped}

    @_guarded
    def clear(self, model: str | None = None) -> int:
        """Drop one model's features, or everything. Returns rows removed."""
        with self.transaction() as db:
            if model:
                return db.execute("DELETE FROM features WHERE model=?", (model,)).rowcount
            n = db.execute("DELETE FROM features").rowcount
            n += db.execute("DELETE FROM images").rowcount
            n += db.execute("DELETE FROM files").rowcount
        return n


def open_catalog(catalog: Catalog | str | Path | None = None) -> Catalog:
    """A Catalog from a handle (returned as is), a database path, or None (the default catalog)."""
    return catalog if isinstance(catalog, Catalog) else Catalog(catalog)
