"""The catalog: one SQLite database (WAL) of files, picture facts and features.

Tables (schema 3, :mod:`lookalike.catalog.schema`; the public API speaks hex content hashes throughout):

* ``contents``: one row per content hash (sha256 of a file's bytes, stored as 32 raw bytes) and its
  integer id, which keys everything below, so a moved or renamed file reuses its features;
* ``models``: one row per (model, version) and its integer id;
* ``files``: one row per path: (size, mtime_ns, inode, ctime_ns) is the fast path that lets an
  unchanged file go unread (ctime is set by the kernel on every change, and no user tool can set it:
  a file rewritten with its size and mtime kept, as by ``touch -r``, is still seen as changed);
  ``content_id`` says which content it holds. Paths are stored as TEXT when they are valid UTF-8 and
  as BLOB (the name's bytes, from ``os.fsencode``) when they are not (a name such as ``caf\xe9.jpg``):
  lossless, and old catalogs (all TEXT) read as before.
* ``images``: facts about a content learnt while decoding (size, format, EXIF time...).
* ``features``: (content_id, model_id) -> blob (float16 embedding or uint64 hash words).
  :meth:`Catalog.iter_feature_blocks` streams them a block at a time.

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

from lookalike.catalog import schema
from lookalike.catalog.schema import hash_key, hash_text
from lookalike.config import default_catalog_path
from lookalike.errors import CatalogError

SCHEMA_VERSION = schema.SCHEMA_VERSION

_CHUNK = 500  # parameters per IN (...) query
_T = TypeVar("_T")
#: paths per block while feature_matrix fills its result: the memory beyond the result is about two such blocks
_MATRIX_BLOCK = 8192


_FILE_COLUMNS = "f.path,f.size,f.mtime_ns,c.sha256,f.status,f.error,f.inode,f.ctime_ns"
_FILES_JOIN = "files f LEFT JOIN contents c ON c.id = f.content_id"


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
    return FileRow(from_db_path(row[0]), row[1], row[2], hash_text(row[3]), *row[4:])


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


def _in_lists(values: Sequence[_T]) -> Iterator[tuple[Sequence[_T], str]]:
    """``values`` in slices of at most ``_CHUNK``, each with the ``?,?,...`` of its ``IN (...)`` clause."""
    for i in range(0, len(values), _CHUNK):
        chunk = values[i : i + _CHUNK]
        yield chunk, ",".join("?" * len(chunk))


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
    ``--catalog`` cannot leave folders behind). None: the default catalog under lookalike's home.
    A catalog written by an older lookalike is migrated in place when opened (:mod:`.schema`)."""

    def __init__(self, path: str | Path | None = None) -> None:
        if path:
            self.path = Path(os.path.abspath(Path(path).expanduser()))
            try:
                is_dir, parent_is_dir = self.path.is_dir(), self.path.parent.is_dir()
            except OSError as exc:  # a folder on the way that this user may not enter
                raise CatalogError(f"cannot open catalog {self.path} ({exc.strerror or exc}); check that the file "
                                   "and its folder exist and can be written") from exc
            if is_dir:
                raise CatalogError(f"catalog {self.path} is a folder, not a database file")
            if not parent_is_dir:
                raise CatalogError(f"cannot open catalog {self.path}: its folder {self.path.parent} does not exist "
                                   "(create it first, or choose another --catalog)")
        else:
            self.path = default_catalog_path()
        self._local = threading.local()
        self._all: list[sqlite3.Connection] = []
        self._lock = threading.Lock()
        with self.transaction() as db:
            migrated = schema.prepare(db, self.path)
        if migrated:  # one-off: 16 KiB pages and the old tables' space back (skipped while others hold it)
            schema.repack(self.connection())

    # -- connections -------------------------------------------------------------------------
    def connection(self) -> sqlite3.Connection:
        """This thread's connection (autocommit mode; use :meth:`transaction` to write)."""
        conn = getattr(self._local, "conn", None)
        if conn is None:
            try:
                conn = sqlite3.connect(self.path, timeout=60, isolation_level=None, check_same_thread=False,
                                       factory=_Connection)
                conn.catalog_path = str(self.path)
                schema.register_functions(conn)
                conn.execute("PRAGMA busy_timeout=60000")
                conn.execute(f"PRAGMA page_size={schema.PAGE_SIZE}")  # new databases only (before WAL)
                schema.use_wal(conn)
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

    # -- integer keys ------------------------------------------------------------------------
    @staticmethod
    def _content_ids(db: sqlite3.Connection, hashes: Iterable[str | None], create: bool = False) -> dict[str, int]:
        """content hash (hex) -> its id in ``contents`` (created when ``create``; else absent ones are left out)."""
        keys = {h: hash_key(h) for h in hashes if h}
        if not keys:
            return {}
        if create:
            db.executemany("INSERT OR IGNORE INTO contents (sha256) VALUES (?)", [(k,) for k in keys.values()])
        by_key = {_bind_value(k): h for h, k in keys.items()}
        values = list(keys.values())
        out: dict[str, int] = {}
        for i in range(0, len(values), _CHUNK):
            chunk = values[i : i + _CHUNK]
            q = f"SELECT id, sha256 FROM contents WHERE sha256 IN ({','.join('?' * len(chunk))})"
            for cid, key in db.execute(q, chunk):
                out[by_key[key]] = cid
        return out

    @classmethod
    def _hashes_by_id(cls, db: sqlite3.Connection, hashes: Iterable[str]) -> dict[int, str]:
        """content id -> content hash, for the given hashes the catalog knows."""
        return {cid: h for h, cid in cls._content_ids(db, hashes).items()}

    @staticmethod
    def _model_id(db: sqlite3.Connection, model: str, version: str, create: bool = False) -> int | None:
        """The id of (model, version) in ``models`` (created when ``create``; else None when unknown)."""
        if create:
            db.execute("INSERT OR IGNORE INTO models (model, version) VALUES (?, ?)", (model, version))
        row = db.execute("SELECT id FROM models WHERE model=? AND version=?", (model, version)).fetchone()
        return None if row is None else int(row[0])

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
            q = f"SELECT {_FILE_COLUMNS} FROM {_FILES_JOIN} WHERE f.path IN ({marks})"
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
        q = f"SELECT {_FILE_COLUMNS} FROM {_FILES_JOIN} WHERE f.path >= ? AND f.path < ?"
        if isinstance(text_prefix, str):  # UTF-8 names below a UTF-8 folder (TEXT rows)
            hi = prefix[:-1] + chr(ord(os.sep) + 1)
            rows += [_file_row(r) for r in db.execute(q, (prefix, hi))]
        raw = os.fsencode(prefix)  # names that are not UTF-8 (BLOB rows; BLOBs compare bytewise)
        raw_hi = raw[:-1] + bytes([raw[-1] + 1])
        rows += [_file_row(r) for r in db.execute(q, (raw, raw_hi))]
        return rows

    @_guarded
    def hashes_with_feature(
        self, hashes: Iterable[str], model: str, version: str, nbytes: int | None = None
    ) -> set[str]:
        """The subset of ``hashes`` that already have this model's feature (of ``nbytes`` bytes when given:
        a stored blob of another size is damaged and counts as missing, so indexing computes it again)."""
        db = self.connection()
        mid = self._model_id(db, model, version)
        if mid is None:
            return set()
        by_id = self._hashes_by_id(db, hashes)
        found: set[str] = set()
        size = "" if nbytes is None else f"AND LENGTH(data)={int(nbytes)} "
        for chunk, marks in _in_lists(list(by_id)):
            q = f"SELECT content_id FROM features WHERE model_id=? {size}AND content_id IN ({marks})"
            found.update(by_id[r[0]] for r in db.execute(q, (mid, *chunk)))
        return found

    @_guarded
    def has_image(self, content_hash: str) -> bool:
        row = self.connection().execute(
            "SELECT 1 FROM images i JOIN contents c ON c.id = i.content_id WHERE c.sha256=?", (hash_key(content_hash),)
        ).fetchone()
        return row is not None

    @_guarded
    def hashes_of_size(self, sizes: Iterable[int]) -> dict[int, list[str]]:
        """File size -> content hashes of the known pictures of that many bytes (one scan of ``images``): the
        contents a new file of that size may turn out to be, for a reader that cannot ask per file."""
        wanted = set(sizes)
        out: dict[int, list[str]] = {}
        if wanted:
            q = "SELECT c.sha256, i.bytes FROM images i JOIN contents c ON c.id = i.content_id"
            for h, n in self.connection().execute(q):
                if n in wanted:
                    out.setdefault(n, []).append(hash_text(h))
        return out

    def iter_stored_features(self, model: str, version: str, page: int = 4096) -> Iterator[tuple[str, str, bytes]]:
        """(path, content hash, stored blob) of every good file that has this model's feature, by path; read a
        page at a time (no read transaction held between pages, no whole-collection copy)."""
        after: str | bytes | None = None
        while True:
            rows = self._stored_features_page(model, version, after, page)
            for path, h, data in rows:
                yield from_db_path(path), hash_text(h), data
            if len(rows) < page:
                return
            after = rows[-1][0]

    @_guarded
    def _stored_features_page(self, model: str, version: str, after: str | bytes | None, page: int) -> list:
        db = self.connection()
        mid = self._model_id(db, model, version)
        if mid is None:
            return []
        # paths are TEXT (UTF-8) or BLOB (other bytes); SQLite orders every TEXT before every BLOB
        q = ("SELECT f.path, c.sha256, x.data FROM files f JOIN contents c ON c.id = f.content_id "
             "JOIN features x ON x.content_id = f.content_id WHERE x.model_id = ? AND f.status != 'error' "
             + ("AND f.path > ? " if after is not None else "") + "ORDER BY f.path LIMIT ?")
        args = (mid, after, page) if after is not None else (mid, page)
        return db.execute(q, args).fetchall()

    @_guarded
    def images(self, hashes: Iterable[str]) -> dict[str, ImageRow]:
        """Picture facts by content hash."""
        db = self.connection()
        by_id = self._hashes_by_id(db, hashes)
        out: dict[str, ImageRow] = {}
        for chunk, marks in _in_lists(list(by_id)):
            for r in db.execute(f"SELECT * FROM images WHERE content_id IN ({marks})", chunk):
                h = by_id[r[0]]
                out[h] = ImageRow(h, r[1], r[2], r[3], r[4], bool(r[5]), r[6], r[7], r[8], r[9])
        return out

    @_guarded
    def features_for_hashes(self, hashes: Sequence[str], model: str, version: str) -> dict[str, bytes]:
        """content hash -> stored blob of this model, for the hashes that have one."""
        db = self.connection()
        mid = self._model_id(db, model, version)
        if mid is None:
            return {}
        by_id = self._hashes_by_id(db, hashes)
        out: dict[str, bytes] = {}
        for chunk, marks in _in_lists(list(by_id)):
            q = f"SELECT content_id, data FROM features WHERE model_id=? AND content_id IN ({marks})"
            out.update((by_id[cid], data) for cid, data in db.execute(q, (mid, *chunk)))
        return out

    def _feature_blocks(
        self, paths: Sequence[str], model: str, version: str, kind: str, nbytes: int | None, block: int
    ) -> Iterator[tuple[list[str], np.ndarray, list[str], dict[int, str]]]:
        """(kept paths, float16/uint64 matrix, paths whose blob was damaged, content id -> what is wrong) per
        block of ``block`` paths. Damaged blobs are deleted before their block is yielded. ``nbytes`` None:
        the size most blobs of the first block that has any have (then fixed for every later block)."""
        db = self.connection()
        mid = self._model_id(db, model, version)
        for start in range(0, len(paths), block):
            chunk = paths[start : start + block]
            ids: dict[str, int] = {}
            blobs: dict[int, bytes] = {}
            if mid is not None:
                keys = [to_db_path(p) for p in chunk]
                for i in range(0, len(keys), _CHUNK):
                    sub = keys[i : i + _CHUNK]
                    q = ("SELECT f.path, f.content_id, x.data FROM files f JOIN features x "
                         "ON x.content_id = f.content_id AND x.model_id = ? "
                         f"WHERE f.status != 'error' AND f.path IN ({','.join('?' * len(sub))})")
                    for path, cid, data in db.execute(q, (mid, *sub)):
                        ids[from_db_path(path)] = cid
                        blobs[cid] = data
            bad = self._wrong_size(blobs, kind, nbytes)
            if nbytes is None and len(bad) < len(blobs):
                nbytes = next(len(b) for cid, b in blobs.items() if cid not in bad)
            kept = [p for p in chunk if p in ids and ids[p] not in bad]
            mat = self._stack([blobs[ids[p]] for p in kept], kind, nbytes)
            del blobs
            if kind != "hash" and len(kept):  # embeddings must be finite
                finite = np.isfinite(mat).all(axis=1)
                if not finite.all():
                    bad.update({ids[kept[i]]: "not a finite number" for i in np.flatnonzero(~finite)})
                    mat = mat[finite]
                    kept = [p for p, ok in zip(kept, finite, strict=True) if ok]
            if bad:
                with self.transaction() as tx:
                    tx.executemany("DELETE FROM features WHERE content_id=? AND model_id=?",
                                   [(cid, mid) for cid in sorted(bad)])
            names = [p for p in chunk if ids.get(p) in bad]
            yield kept, mat, names, bad

    @staticmethod
    def _stack(blobs: list[bytes], kind: str, nbytes: int | None) -> np.ndarray:
        """Blobs of one checked size as one matrix, filled row by row (no joined copy of the block)."""
        if not blobs or not nbytes:
            return decode_features([], kind)
        dtype = np.dtype("<u8") if kind == "hash" else np.dtype("<f2")
        out = np.empty((len(blobs), nbytes // dtype.itemsize), dtype=dtype)
        for i, blob in enumerate(blobs):
            out[i] = np.frombuffer(blob, dtype=dtype)
        return out

    def _damage_error(self, model: str, names: list[str], why: str) -> DamagedFeatureError:
        first = names[0] if names else "a picture"
        more = f" and {len(names) - 1} other file(s)" if len(names) > 1 else ""
        return DamagedFeatureError(
            f"catalog {self.path}: the stored {model} feature of {first}{more} was damaged ({why}); "
            "it has been removed and is computed again on the next run", names)

    @_guarded
    def iter_feature_blocks(
        self, paths: Sequence[str], model: str, version: str, kind: str, nbytes: int | None = None,
        block: int = 65536,
    ) -> Iterator[tuple[list[str], np.ndarray]]:
        """Stream :meth:`feature_matrix` block by block: (paths of this block that have the feature, their
        features as stored: float16 (n, dim) for embeddings, uint64 words for hashes), ``block`` paths at a
        time, in the order of ``paths``. Memory: one block (65,536 1280-d rows: 168 MB), never the whole
        collection. Each block is read on its own (no read transaction is held between blocks, so writers
        and checkpoints go on). A damaged blob is removed and DamagedFeatureError raised when its block is
        reached."""
        if block < 1:
            raise ValueError(f"block must be at least 1, not {block}")
        return self._iter_blocks(paths, model, version, kind, nbytes, block)

    def _iter_blocks(
        self, paths: Sequence[str], model: str, version: str, kind: str, nbytes: int | None, block: int
    ) -> Iterator[tuple[list[str], np.ndarray]]:
        try:
            for kept, mat, names, bad in self._feature_blocks(paths, model, version, kind, nbytes, block):
                if bad:
                    raise self._damage_error(model, names, next(iter(bad.values())))
                yield kept, mat
        except sqlite3.Error as exc:
            raise catalog_error(self.path, exc) from exc

    @_guarded
    def feature_matrix(
        self, paths: Sequence[str], model: str, version: str, kind: str, nbytes: int | None = None
    ) -> tuple[list[str], np.ndarray]:
        """(paths that have the feature, matrix of their features in that order): float16 (n, dim) for
        embeddings, uint64 (n, words) for hashes, as stored (:meth:`iter_feature_blocks` streams it).

        Every blob is checked: all of one size (``nbytes`` when given, else the size most of them have),
        and, for embeddings, finite. Damaged ones are deleted (the next indexing run computes them again)
        and DamagedFeatureError is raised, so a tampered catalog never gives a NaN score or a wrong shape."""
        kept: list[str] = []
        out: np.ndarray | None = None
        damaged: list[str] = []
        why = ""
        for k, mat, names, bad in self._feature_blocks(paths, model, version, kind, nbytes, _MATRIX_BLOCK):
            if len(k):
                if out is None:  # one allocation for the whole result, filled block by block
                    out = np.empty((len(paths), mat.shape[1]), dtype=mat.dtype)
                out[len(kept) : len(kept) + len(k)] = mat
                kept += k
            damaged += names
            if bad and not why:
                why = next(iter(bad.values()))
        if why:
            raise self._damage_error(model, damaged, why)
        if out is None:
            return kept, decode_features([], kind)
        if len(kept) < len(out):
            out.resize((len(kept), out.shape[1]), refcheck=False)  # in place: no second copy
        return kept, out

    @staticmethod
    def _wrong_size(blobs: dict[int, bytes], kind: str, nbytes: int | None) -> dict[int, str]:
        """key -> what is wrong, for blobs whose size cannot be this model's feature (``nbytes``, or the size
        most of them have when None; all of them when that size is no whole number of values)."""
        if not blobs:
            return {}
        itemsize = 8 if kind == "hash" else 2
        if nbytes is None:
            counts: dict[int, int] = {}
            for b in blobs.values():
                counts[len(b)] = counts.get(len(b), 0) + 1
            nbytes = max(counts, key=lambda n: (counts[n], n))
        if nbytes == 0 or nbytes % itemsize:
            return {h: f"{len(b)} bytes" for h, b in blobs.items()}
        return {h: f"{len(b)} bytes instead of {nbytes}" for h, b in blobs.items()
                if len(b) != nbytes or not isinstance(b, bytes)}

    @_guarded
    def stats(self) -> dict:
        """Counts of files, pictures and features per model, and the database size."""
        db = self.connection()
        files = dict(db.execute("SELECT status, COUNT(*) FROM files GROUP BY status").fetchall())
        models = [
            {"model": m, "version": v, "count": n, "bytes": b}
            for m, v, n, b in db.execute(
                "SELECT m.model, m.version, COUNT(*), SUM(LENGTH(x.data)) FROM features x "
                "JOIN models m ON m.id = x.model_id GROUP BY x.model_id ORDER BY m.model, m.version"
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
        with self.transaction() as db:
            hashes = {f.content_hash for f in files} | {i.content_hash for i in images}
            ids = self._content_ids(db, hashes | {f.content_hash for f in features}, create=True)
            if images:
                db.executemany("INSERT OR REPLACE INTO images VALUES (?,?,?,?,?,?,?,?,?,?)",
                               [(ids[i.content_hash], *i.values()[1:]) for i in images])
            if features:
                mids = {(f.model, f.version) for f in features}
                model_ids = {mv: self._model_id(db, *mv, create=True) for mv in sorted(mids)}
                db.executemany("INSERT OR REPLACE INTO features (content_id, model_id, data) VALUES (?,?,?)",
                               [(ids[f.content_hash], model_ids[f.model, f.version], f.data) for f in features])
            if files:
                db.executemany(
                    "INSERT OR REPLACE INTO files (path,size,mtime_ns,content_id,status,error,seen_at,inode,"
                    "ctime_ns) VALUES (?,?,?,?,?,?,?,?,?)",
                    [(to_db_path(f.path), f.size, f.mtime_ns, ids.get(f.content_hash) if f.content_hash else None,
                      f.status, _db_text(f.error), now, f.inode, f.ctime_ns) for f in files],
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
        used = "(SELECT content_id FROM files WHERE content_id IS NOT NULL)"
        n = db.execute(f"DELETE FROM features WHERE content_id NOT IN {used}").rowcount
        db.execute(f"DELETE FROM images WHERE content_id NOT IN {used}")
        db.execute(f"DELETE FROM contents WHERE id NOT IN {used}")
        return n

    @_guarded
    def prune(self, verdict_version: str | None = None) -> dict[str, int]:
        """Drop entries of files that no longer exist, then features nobody refers to, then the duplicate
        finder's verdicts no run reads again (of contents gone, or of a verifier version other than
        ``verdict_version``), and repack a catalog migrated from an older lookalike that could not be
        repacked then."""
        from lookalike.catalog.verdicts import VerdictStore  # it builds on this module

        paths = [from_db_path(r[0]) for r in self.connection().execute("SELECT path FROM files")]
        gone = [p for p in paths if not os.path.exists(p)]
        self.forget_paths(gone)
        with self.transaction() as db:
            dropped = self._drop_orphans(db)
        verdicts = VerdictStore(self).prune(verdict_version)
        self.connection().execute("PRAGMA wal_checkpoint(TRUNCATE)")
        schema.repack(self.connection())
        return {"files_removed": len(gone), "features_removed": dropped, "verdicts_removed": verdicts}

    @_guarded
    def clear(self, model: str | None = None) -> int:
        """Drop one model's features, or everything. Returns rows removed."""
        with self.transaction() as db:
            if model:
                return db.execute("DELETE FROM features WHERE model_id IN (SELECT id FROM models WHERE model=?)",
                                  (model,)).rowcount
            n = db.execute("DELETE FROM features").rowcount
            n += db.execute("DELETE FROM images").rowcount
            n += db.execute("DELETE FROM files").rowcount
            db.execute("DELETE FROM contents")
        return n


def open_catalog(catalog: Catalog | str | Path | None = None) -> Catalog:
    """A Catalog from a handle (returned as is), a database path, or None (the default catalog)."""
    return catalog if isinstance(catalog, Catalog) else Catalog(catalog)
