"""The catalog at scale (issue 11): the lean schema 3 (integer keys, hashes as 32 raw bytes, 16 KiB pages),
the in-place migration of a schema-2 catalog written by the previous lookalike, the refusal of a catalog
written by a newer one, and the streamed feature reader."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import sqlite3
import tempfile
from pathlib import Path

import numpy as np
import pytest

from conftest import ROOT, shared_data
from lookalike.catalog import Catalog, DamagedFeatureError, FeatureRow, FileRow, encode_feature
from lookalike.catalog.generation import generation
from lookalike.errors import CatalogError
from lookalike.index import index_paths

V2_SCRIPT = ROOT / "tests" / "data" / "catalog_schema2.sql"
V2_LIB = "/lookalike-v2/lib"  # where tests/data/make_catalog_schema2.py indexed the photos


def _raw(db: Path) -> sqlite3.Connection:
    return sqlite3.connect(db, isolation_level=None)


def schema2_catalog(tmp_path: Path) -> tuple[Path, Path]:
    """(catalog, folder): the saved schema-2 catalog, its photos copied to ``folder`` and its file rows moved
    there with the stat the old indexer would have recorded for them (so the fast path applies)."""
    lib = tmp_path / "lib"
    lib.mkdir()
    for i in range(6):
        shutil.copy(shared_data("photos", f"ukbench{i:05d}.jpg"), lib / f"p{i}.jpg")
    shutil.copy(lib / "p0.jpg", lib / "copy_of_p0.jpg")
    (lib / "broken.jpg").write_bytes(b"not a picture")
    db = tmp_path / "v2.sqlite"
    conn = _raw(db)
    conn.executescript(V2_SCRIPT.read_text())
    for (path,) in conn.execute("SELECT path FROM files").fetchall():
        new = str(lib / os.path.basename(path))
        st = os.stat(new)
        conn.execute("UPDATE files SET path=?, size=?, mtime_ns=?, inode=CASE WHEN inode IS NULL THEN NULL ELSE ? END, "
                     "ctime_ns=CASE WHEN ctime_ns IS NULL THEN NULL ELSE ? END WHERE path=?",
                     (new, st.st_size, st.st_mtime_ns, st.st_ino, st.st_ctime_ns, path))
    conn.close()
    return db, lib


def _v2_rows(db: Path) -> tuple[dict, dict, dict]:
    conn = _raw(db)
    files = {r[0]: r[1:] for r in conn.execute(
        "SELECT path, size, mtime_ns, content_hash, status, error, inode, ctime_ns FROM files")}
    images = {r[0]: r[1:] for r in conn.execute("SELECT * FROM images")}
    features = {(h, m, v): d for h, m, v, d in conn.execute("SELECT content_hash, model, version, data FROM features")}
    conn.close()
    return files, images, features


def test_schema2_catalog_migrates_in_place_byte_for_byte(tmp_path):
    db, lib = schema2_catalog(tmp_path)
    files, images, features = _v2_rows(db)
    assert len(files) == 8 and len(images) == 6 and len(features) == 18
    with Catalog(db) as cat:
        rows = cat.lookup_files(list(files))
        assert {p: (r.size, r.mtime_ns, r.content_hash, r.status, r.error, r.inode, r.ctime_ns)
                for p, r in rows.items()} == files
        assert {h: r.values()[1:] for h, r in cat.images(list(images)).items()} == images
        for (h, model, version), data in features.items():
            assert cat.features_for_hashes([h], model, version) == {h: data}
        assert sum(m["count"] for m in cat.stats()["features"]) == 18
        good = sorted(p for p, r in files.items() if r[3] != "error")
        kept, mat = cat.feature_matrix(good, "synthetic", "2", "embedding", 2560)
        assert kept == good and mat.dtype == np.float16
        assert [mat[i].tobytes() for i in range(len(kept))] == [features[files[p][2], "synthetic", "2"] for p in kept]
        # the fast path survives the migration: nothing is read again
        rep = index_paths([lib], cat, ["phash", "dhash"])
        assert (rep.new, rep.changed, rep.unchanged, rep.decoded, rep.reused) == (0, 0, 7, 0, 0)
        assert [f.path for f in rep.failed] == [str(lib / "broken.jpg")]
    conn = _raw(db)
    assert conn.execute("SELECT value FROM meta WHERE key='schema_version'").fetchone()[0] == "3"
    assert conn.execute("PRAGMA page_size").fetchone()[0] == 16384  # repacked once migrated
    assert conn.execute("PRAGMA freelist_count").fetchone()[0] == 0  # the old tables' space given back
    assert {len(k) for (k,) in conn.execute("SELECT sha256 FROM contents")} == {32}
    assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    conn.close()


def test_migration_is_one_transaction_a_damaged_schema2_catalog_is_left_as_it_was(tmp_path, run_cli):
    db, lib = schema2_catalog(tmp_path)
    conn = _raw(db)
    (root,) = conn.execute("SELECT rootpage FROM sqlite_master WHERE name='features'").fetchone()
    (page,) = conn.execute("PRAGMA page_size").fetchone()
    conn.close()
    with open(db, "r+b") as fh:  # the features table's root page becomes garbage
        fh.seek((root - 1) * page)
        fh.write(b"\xff" * page)
    before = db.read_bytes()
    res = run_cli("--catalog", db, "index", lib, "-m", "phash", check=False)
    assert res.returncode == 1
    assert res.stderr.strip().count("\n") == 0 and f"catalog {db} is damaged" in res.stderr, res.stderr
    assert "Traceback" not in res.stderr
    conn = _raw(db)
    assert conn.execute("SELECT value FROM meta WHERE key='schema_version'").fetchone()[0] == "2"
    assert "contents" not in {r[0] for r in conn.execute("SELECT name FROM sqlite_master")}
    conn.close()
    assert db.read_bytes()[100:] == before[100:]  # only the header's change counter may move


def test_catalog_of_a_newer_lookalike_is_refused_in_one_line(tmp_path, run_cli):
    db = tmp_path / "c.sqlite"
    Catalog(db).close()
    conn = _raw(db)
    conn.execute("UPDATE meta SET value='7' WHERE key='schema_version'")
    conn.close()
    with pytest.raises(CatalogError, match="newer lookalike .catalog schema 7; this lookalike reads up to 3"):
        Catalog(db)
    res = run_cli("--catalog", db, "cache", "stats", check=False)
    assert res.returncode == 1 and res.stderr.strip().count("\n") == 0 and "newer lookalike" in res.stderr


# What a lookalike of schema 2 ran when opening a catalog (store.py at 7d55393), statement by statement.
_SCHEMA2_OPEN = [
    "CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT)",
    "CREATE TABLE IF NOT EXISTS files (path TEXT PRIMARY KEY, size INTEGER NOT NULL, mtime_ns INTEGER NOT NULL, "
    "content_hash TEXT, status TEXT NOT NULL, error TEXT, seen_at REAL NOT NULL, inode INTEGER, ctime_ns INTEGER)",
    "CREATE INDEX IF NOT EXISTS files_by_hash ON files(content_hash)",
    "CREATE TABLE IF NOT EXISTS images (content_hash TEXT PRIMARY KEY, width INTEGER, height INTEGER, format TEXT, "
    "mode TEXT, truncated INTEGER, frames INTEGER, exif_datetime TEXT, exif_tags INTEGER, bytes INTEGER)",
    "CREATE TABLE IF NOT EXISTS features (content_hash TEXT NOT NULL, model TEXT NOT NULL, version TEXT NOT NULL, "
    "data BLOB NOT NULL, PRIMARY KEY (content_hash, model, version)) WITHOUT ROWID",
    "UPDATE meta SET value='2' WHERE key='schema_version' AND CAST(value AS INTEGER) < 2",
    "INSERT OR IGNORE INTO meta VALUES ('schema_version', '2')",
]


def test_previous_lookalike_opening_a_schema3_catalog_gets_a_clear_message(tmp_path):
    db = tmp_path / "c.sqlite"
    Catalog(db).close()
    conn = _raw(db)
    conn.execute("BEGIN IMMEDIATE")
    with pytest.raises(sqlite3.DatabaseError, match="written by a newer lookalike: upgrade lookalike to open it"):
        for statement in _SCHEMA2_OPEN:
            conn.execute(statement)
    conn.execute("ROLLBACK")
    conn.close()
    with Catalog(db) as cat:  # and the catalog is untouched for this lookalike
        assert cat.stats()["files"] == 0


def _synthetic(cat: Catalog, n: int, dim: int = 1280, model: str = "effnet", seed: int = 0) -> tuple[list, np.ndarray]:
    rng = np.random.default_rng(seed)
    vecs = rng.standard_normal((n, dim)).astype(np.float16)
    paths = [f"/photos/{i // 1000:03d}/IMG_{i:06d}.jpg" for i in range(n)]
    hashes = [hashlib.sha256(p.encode()).hexdigest() for p in paths]
    files = [FileRow(p, 1000 + i, 10**18 + i, h, "ok", None, i + 1, 10**18 + i)
             for i, (p, h) in enumerate(zip(paths, hashes, strict=True))]
    feats = [FeatureRow(h, model, "1", encode_feature(v, "embedding")) for h, v in zip(hashes, vecs, strict=True)]
    for i in range(0, n, 1000):
        cat.write(files=files[i : i + 1000], features=feats[i : i + 1000])
    return paths, vecs


def test_lean_feature_table_bytes_per_picture(tmp_path):
    n = 2000
    with Catalog(tmp_path / "c.sqlite") as cat:
        paths, vecs = _synthetic(cat, n)
        db = cat.connection()
        db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        pages, size = (db.execute(f"PRAGMA {p}").fetchone()[0] for p in ("page_count", "page_size"))
        kept, mat = cat.feature_matrix(paths, "effnet", "1", "embedding", 2560)
    # schema 2 took 5.2 KB a picture here (4.7 KB of it the feature); the vector itself is 2,560 bytes
    assert pages * size / n < 3100, pages * size / n
    assert kept == paths and mat.dtype == np.float16 and np.array_equal(mat, vecs)


def test_iter_feature_blocks_streams_float16_blocks_in_path_order(tmp_path):
    with Catalog(tmp_path / "c.sqlite") as cat:
        paths, vecs = _synthetic(cat, 10, dim=64)
        asked = [*paths[:4], "/not/indexed.jpg", *paths[4:]]
        blocks = list(cat.iter_feature_blocks(asked, "effnet", "1", "embedding", block=3))
        assert [len(k) for k, _ in blocks] == [3, 2, 3, 2]  # block 2 held the unknown path
        assert all(m.dtype == np.float16 and m.shape == (len(k), 64) for k, m in blocks)
        assert [p for k, _ in blocks for p in k] == paths
        assert np.array_equal(np.concatenate([m for _, m in blocks]), vecs)
        empty = list(cat.iter_feature_blocks(paths, "other", "1", "embedding"))
        assert [k for k, _ in empty] == [[]] and empty[0][1].shape[0] == 0
        with pytest.raises(ValueError):
            cat.iter_feature_blocks(paths, "effnet", "1", "embedding", block=0)


def test_iter_feature_blocks_damaged_blob_is_removed_when_its_block_is_reached(tmp_path):
    with Catalog(tmp_path / "c.sqlite") as cat:
        paths, _ = _synthetic(cat, 9, dim=64)
        h7 = cat.lookup_files([paths[7]])[paths[7]].content_hash
        nan = np.full(64, np.nan, dtype="<f2").tobytes()
        cat.write(features=[FeatureRow(h7, "effnet", "1", nan)])
        stream = cat.iter_feature_blocks(paths, "effnet", "1", "embedding", 128, block=4)
        assert next(stream)[0] == paths[:4]
        with pytest.raises(DamagedFeatureError) as exc:
            next(stream)
        assert exc.value.paths == [paths[7]] and "not a finite number" in str(exc.value)
        kept = [p for k, _ in cat.iter_feature_blocks(paths, "effnet", "1", "embedding", 128, block=4) for p in k]
        assert kept == paths[:7] + paths[8:]
        assert generation(cat, "effnet", "1")[2] == 8


def test_content_hashes_stay_hex_in_the_api_and_unknown_forms_round_trip(tmp_path):
    with Catalog(tmp_path / "c.sqlite") as cat:
        h = "ab" * 32
        cat.write(files=[FileRow("/a.jpg", 1, 2, h, "ok", None, 3, 4), FileRow("/b.jpg", 1, 2, "AB" * 32, "ok", None),
                         FileRow("/c.jpg", 1, 2, "h1", "ok", None), FileRow("/d.jpg", 1, 2, None, "error", "x")])
        rows = cat.lookup_files(["/a.jpg", "/b.jpg", "/c.jpg", "/d.jpg"])
        assert [rows[p].content_hash for p in ("/a.jpg", "/b.jpg", "/c.jpg", "/d.jpg")] == [h, "AB" * 32, "h1", None]
        cat.write(features=[FeatureRow(h, "phash", "1", b"\x00" * 8)])
        assert cat.hashes_with_feature([h, "AB" * 32, "h1", "cd" * 32], "phash", "1", 8) == {h}
        cat.forget_paths(["/a.jpg"])
        assert cat.prune()["features_removed"] == 1
        assert cat.features_for_hashes([h], "phash", "1") == {}


def test_read_only_schema2_catalog_is_one_clear_error_and_stays_schema2(tmp_path):
    from test_safety_identity import _as_nobody

    home = tmp_path / "home"
    home.mkdir()
    os.chmod(home, 0o777)
    # a folder the unprivileged user may not enter (pytest's are 0700): one line, not a PermissionError
    res = _as_nobody("--catalog", tmp_path / "c.sqlite", "cache", "stats", home=home)
    assert res.returncode == 1 and "Traceback" not in res.stderr and res.stderr.strip().count("\n") == 0
    assert f"cannot open catalog {tmp_path / 'c.sqlite'}" in res.stderr
    base = Path(tempfile.mkdtemp(prefix="lookalike-ro-"))  # outside pytest's 0700 folders
    try:
        db, lib = schema2_catalog(base)
        for p in (base, lib):
            os.chmod(p, 0o755)
        before = db.read_bytes()
        os.chmod(db, 0o444)
        os.chmod(base, 0o555)  # neither the file nor its folder (journals) can be written
        res = _as_nobody("--catalog", db, "cache", "stats", home=home)
        os.chmod(base, 0o755)
        assert res.returncode == 1, res.stdout
        assert "Traceback" not in res.stderr and res.stderr.strip().count("\n") == 0, res.stderr
        assert f"catalog {db}" in res.stderr and ("read-only" in res.stderr or "cannot open" in res.stderr)
        assert db.read_bytes() == before
    finally:
        os.chmod(base, 0o755)
        shutil.rmtree(base, ignore_errors=True)


def test_two_processes_opening_a_schema2_catalog_at_once_both_get_it_migrated_once(tmp_path):
    import subprocess
    import sys

    from conftest import SRC

    db, lib = schema2_catalog(tmp_path)
    env = {**os.environ, "PYTHONPATH": str(SRC)}
    procs = [subprocess.Popen([sys.executable, "-m", "lookalike", "--catalog", str(db), "cache", "stats", "--json"],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env) for _ in range(2)]
    outs = [p.communicate(timeout=300) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], outs
    for out, _ in outs:
        stats = json.loads(out)
        assert stats["files"] == 8 and sum(m["count"] for m in stats["features"]) == 18
    conn = _raw(db)
    assert conn.execute("SELECT value FROM meta WHERE key='schema_version'").fetchone()[0] == "3"
    assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    conn.close()


def test_migrated_catalog_held_open_elsewhere_is_repacked_by_prune_later(tmp_path):
    db, lib = schema2_catalog(tmp_path)
    _, _, features = _v2_rows(db)
    other = _raw(db)
    other.execute("PRAGMA journal_mode=WAL")
    other.execute("SELECT COUNT(*) FROM files").fetchone()  # another process has the catalog open
    with Catalog(db) as cat:
        assert cat.connection().execute("PRAGMA page_size").fetchone()[0] == 4096  # migrated, not repacked
        other.close()
        assert cat.prune() == {"files_removed": 0, "features_removed": 0, "verdicts_removed": 0}
        assert cat.connection().execute("PRAGMA page_size").fetchone()[0] == 16384
        assert cat.connection().execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        for (h, model, version), data in features.items():
            assert cat.features_for_hashes([h], model, version) == {h: data}
