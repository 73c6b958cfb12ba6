"""The catalog's tables, and the in-place upgrade of catalogs written by an older lookalike.

Schema 3 (issue 11: a million photos) keys everything by small integers:

* ``contents``: one row per content hash (sha256 of a file's bytes), stored as its 32 raw bytes
  (a hash that is not 64 lowercase hex digits, which lookalike never writes, is kept as TEXT);
* ``models``: one row per (model, version);
* ``files`` (WITHOUT ROWID, keyed by path), ``images`` (keyed by content id) and ``features``
  ((content id, model id) -> blob) refer to them.

New catalogs use 16 KiB pages: a 1280-d float16 vector (2,560 bytes) fills a 4 KiB page alone (one row
per page, 4.1-4.7 KB a picture) but six share a 16 KiB page (2.8 KB a picture, see docs/BENCHMARKS.md).

:func:`prepare` runs inside the transaction that opens a catalog: it creates the tables, or migrates a
schema 1 or 2 catalog (TEXT hex keys) to schema 3 in that same transaction, keeping every file row,
picture fact and feature byte for byte; :func:`repack` then moves a migrated catalog to 16 KiB pages
(VACUUM, outside any transaction, only when no other connection is open). A catalog written by a newer
lookalike is refused with one clear line, and a trigger makes lookalike releases that predate schema 3
refuse a schema-3 catalog with a clear line too (they would otherwise fail on a missing column).
"""

from __future__ import annotations

import random
import re
import sqlite3
import time

from lookalike.errors import CatalogError

#: 1: files; 2: files gained inode and ctime_ns (rows from version 1 have NULL there and count as changed
#: once); 3: integer keys (contents, models), hashes as 32 raw bytes, 16 KiB pages.
SCHEMA_VERSION = 3

#: page size of new catalogs (and of older ones once repacked)
PAGE_SIZE = 16384

TABLES = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT);
CREATE TABLE IF NOT EXISTS contents (id INTEGER PRIMARY KEY, sha256 BLOB NOT NULL UNIQUE);
CREATE TABLE IF NOT EXISTS models (
    id INTEGER PRIMARY KEY, model TEXT NOT NULL, version TEXT NOT NULL, UNIQUE (model, version)
);
CREATE TABLE IF NOT EXISTS files (
    path TEXT PRIMARY KEY,
    size INTEGER NOT NULL,
    mtime_ns INTEGER NOT NULL,
    content_id INTEGER,
    status TEXT NOT NULL,
    error TEXT,
    seen_at REAL NOT NULL,
    inode INTEGER,
    ctime_ns INTEGER
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS files_by_hash ON files(content_id);
CREATE TABLE IF NOT EXISTS images (
    content_id INTEGER PRIMARY KEY,
    width INTEGER, height INTEGER, format TEXT, mode TEXT,
    truncated INTEGER, frames INTEGER, exif_datetime TEXT, exif_tags INTEGER, bytes INTEGER
);
CREATE TABLE IF NOT EXISTS features (
    content_id INTEGER NOT NULL,
    model_id INTEGER NOT NULL,
    data BLOB NOT NULL,
    PRIMARY KEY (content_id, model_id)
);
"""
# ``files_by_hash`` keeps its schema-2 name on purpose: a lookalike of schema 2 runs
# ``CREATE INDEX IF NOT EXISTS files_by_hash ON files(content_hash)`` when it opens a catalog, which
# would fail on the missing column before reaching the version check below.

#: Releases before schema 3 insert their version with INSERT OR IGNORE when they open a catalog; this
#: trigger turns that into one clear error instead of "no such column" later.
_GUARD = """
CREATE TRIGGER IF NOT EXISTS meta_newer_catalog BEFORE INSERT ON meta
WHEN NEW.key = 'schema_version'
 AND CAST(NEW.value AS INTEGER) < (SELECT CAST(value AS INTEGER) FROM meta WHERE key = 'schema_version')
BEGIN
    SELECT RAISE(ABORT, 'this catalog was written by a newer lookalike: upgrade lookalike to open it');
END
"""

#: The tables of schema 2 (and the columns schema 1 lacked), created where missing before migrating.
_SCHEMA_2 = """
CREATE TABLE IF NOT EXISTS files (
    path TEXT PRIMARY KEY, size INTEGER NOT NULL, mtime_ns INTEGER NOT NULL, content_hash TEXT,
    status TEXT NOT NULL, error TEXT, seen_at REAL NOT NULL, inode INTEGER, ctime_ns INTEGER
);
CREATE TABLE IF NOT EXISTS images (
    content_hash TEXT PRIMARY KEY,
    width INTEGER, height INTEGER, format TEXT, mode TEXT,
    truncated INTEGER, frames INTEGER, exif_datetime TEXT, exif_tags INTEGER, bytes INTEGER
);
CREATE TABLE IF NOT EXISTS features (
    content_hash TEXT NOT NULL, model TEXT NOT NULL, version TEXT NOT NULL, data BLOB NOT NULL,
    PRIMARY KEY (content_hash, model, version)
) WITHOUT ROWID;
"""

_MIGRATE_2_TO_3 = """
CREATE TABLE contents (id INTEGER PRIMARY KEY, sha256 BLOB NOT NULL UNIQUE);
CREATE TABLE models (id INTEGER PRIMARY KEY, model TEXT NOT NULL, version TEXT NOT NULL, UNIQUE (model, version));
INSERT OR IGNORE INTO contents (sha256)
    SELECT lk_hash_key(h) FROM (SELECT content_hash AS h FROM files WHERE content_hash IS NOT NULL
                                UNION SELECT content_hash FROM images WHERE content_hash IS NOT NULL
                                UNION SELECT content_hash FROM features) ORDER BY h;
INSERT INTO models (model, version) SELECT DISTINCT model, version FROM features ORDER BY model, version;
CREATE TABLE files_v3 (
    path TEXT PRIMARY KEY, size INTEGER NOT NULL, mtime_ns INTEGER NOT NULL, content_id INTEGER,
    status TEXT NOT NULL, error TEXT, seen_at REAL NOT NULL, inode INTEGER, ctime_ns INTEGER
) WITHOUT ROWID;
INSERT INTO files_v3
    SELECT f.path, f.size, f.mtime_ns, c.id, f.status, f.error, f.seen_at, f.inode, f.ctime_ns
    FROM files f LEFT JOIN contents c ON c.sha256 = lk_hash_key(f.content_hash) WHERE f.path IS NOT NULL;
CREATE TABLE images_v3 (
    content_id INTEGER PRIMARY KEY,
    width INTEGER, height INTEGER, format TEXT, mode TEXT,
    truncated INTEGER, frames INTEGER, exif_datetime TEXT, exif_tags INTEGER, bytes INTEGER
);
INSERT INTO images_v3
    SELECT c.id, i.width, i.height, i.format, i.mode, i.truncated, i.frames, i.exif_datetime, i.exif_tags, i.bytes
    FROM images i JOIN contents c ON c.sha256 = lk_hash_key(i.content_hash);
CREATE TABLE features_v3 (
    content_id INTEGER NOT NULL, model_id INTEGER NOT NULL, data BLOB NOT NULL, PRIMARY KEY (content_id, model_id)
);
INSERT INTO features_v3 (content_id, model_id, data)
    SELECT c.id, m.id, x.data FROM features x
    JOIN contents c ON c.sha256 = lk_hash_key(x.content_hash)
    JOIN models m ON m.model = x.model AND m.version = x.version;
DROP TABLE files;
DROP TABLE images;
DROP TABLE features;
ALTER TABLE files_v3 RENAME TO files;
ALTER TABLE images_v3 RENAME TO images;
ALTER TABLE features_v3 RENAME TO features;
CREATE INDEX files_by_hash ON files(content_id);
"""

_HEX64 = re.compile(r"[0-9a-f]{64}")


def hash_key(content_hash: str | None) -> bytes | str | None:
    """How a content hash is stored: 64 lowercase hex digits as their 32 bytes; anything else as is."""
    if content_hash is None:
        return None
    if len(content_hash) == 64 and _HEX64.fullmatch(content_hash):
        return bytes.fromhex(content_hash)
    return content_hash


def hash_text(value: bytes | str | None) -> str | None:
    """The inverse of :func:`hash_key`: the public form (hex) of a stored content hash."""
    if value is None or isinstance(value, str):
        return value
    if len(value) == 32:
        return value.hex()
    return value.decode("utf-8", "surrogateescape")  # a TEXT key bound as bytes (not valid UTF-8)


def register_functions(conn: sqlite3.Connection) -> None:
    """SQL functions the migration needs (SQLite 3.40 has no unhex())."""
    conn.create_function("lk_hash_key", 1, hash_key, deterministic=True)


def _statements(script: str) -> list[str]:
    return [s for s in script.split(";\n") if s.strip()]


def stored_version(db: sqlite3.Connection) -> int | None:
    """The schema version written in ``meta`` (None for a new, empty database)."""
    tables = {r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type='table'")}
    if "meta" not in tables:
        return None if "files" not in tables else 1
    row = db.execute("SELECT value FROM meta WHERE key='schema_version'").fetchone()
    try:
        return int(row[0]) if row else (1 if "files" in tables else None)
    except (TypeError, ValueError):
        return 1


def prepare(db: sqlite3.Connection, path: object) -> bool:
    """Create the tables, or migrate an older catalog to :data:`SCHEMA_VERSION` (inside the caller's open
    transaction, so a failure leaves the catalog as it was). Returns True when a migration ran."""
    version = stored_version(db)
    if version is not None and version > SCHEMA_VERSION:
        raise CatalogError(f"catalog {path} was written by a newer lookalike (catalog schema {version}; this "
                           f"lookalike reads up to {SCHEMA_VERSION}): upgrade lookalike to open it, or choose "
                           "another --catalog")
    tables = {r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type='table'")}
    migrated = "files" in tables and "contents" not in tables
    if migrated:
        for statement in _statements(_SCHEMA_2):
            db.execute(statement)
        columns = {r[1] for r in db.execute("PRAGMA table_info(files)")}
        for name in ("inode", "ctime_ns"):  # schema 1: NULL there counts as changed once, then is filled in
            if name not in columns:
                db.execute(f"ALTER TABLE files ADD COLUMN {name} INTEGER")
        for statement in _statements(_MIGRATE_2_TO_3):
            db.execute(statement)
    for statement in _statements(TABLES):
        db.execute(statement)
    db.execute("INSERT OR IGNORE INTO meta VALUES ('schema_version', ?)", (str(SCHEMA_VERSION),))
    db.execute("UPDATE meta SET value=? WHERE key='schema_version' AND CAST(value AS INTEGER) < ?",
               (str(SCHEMA_VERSION), SCHEMA_VERSION))
    db.execute(_GUARD)
    return migrated


def page_size(db: sqlite3.Connection) -> int:
    return int(db.execute("PRAGMA page_size").fetchone()[0])


def repack(db: sqlite3.Connection) -> bool:
    """Rewrite a catalog with pages smaller than :data:`PAGE_SIZE` (a migrated one) into such pages, and
    give freed pages back to the disk (VACUUM). Only when this is the only connection: otherwise (or on any
    failure, a full disk included) the catalog stays as it was, valid, and False is returned. Must run
    outside a transaction."""
    if page_size(db) >= PAGE_SIZE:
        return False
    db.execute("PRAGMA busy_timeout=0")
    try:
        try:
            mode = db.execute("PRAGMA journal_mode=DELETE").fetchone()[0]
        except CatalogError:
            return False
        if str(mode).lower() != "delete":
            return False
        try:
            db.execute(f"PRAGMA page_size={PAGE_SIZE}")
            db.execute("VACUUM")
        except CatalogError:
            return False
        return page_size(db) >= PAGE_SIZE
    finally:
        db.execute("PRAGMA busy_timeout=60000")
        use_wal(db)


def use_wal(db: sqlite3.Connection, wait_s: float = 60.0) -> None:
    """Put the database in WAL mode. Switching needs the database to itself, and SQLite answers "locked" at
    once, without its busy timeout, while another process holds it (two lookalikes opening an older catalog
    at once: one migrates and repacks it while the other opens it): try again for up to ``wait_s``, as the
    busy timeout would."""
    deadline = time.monotonic() + wait_s
    while True:
        try:
            db.execute("PRAGMA journal_mode=WAL")
            return
        except CatalogError as exc:
            if "locked" not in str(exc.__cause__ or exc) or time.monotonic() > deadline:
                raise
            time.sleep(random.uniform(0.01, 0.08))  # two processes trying at once do not keep meeting
