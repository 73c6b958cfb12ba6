"""Catalog size and feature read speed (issue 11): the schema-2 catalog against this checkout's, in one run.

    python bench/catalog_size.py                 # 100,000 synthetic 1280-d float16 vectors
    python bench/catalog_size.py -n 20000 --before-src /path/to/old/src
    python bench/catalog_size.py -n 20000 --layouts  # candidate feature tables alone, 4-64 KiB pages

Each side runs in its own process on the same synthetic collection (file rows with realistic paths,
picture facts, one 1280-d float16 feature each, written in batches of 1,000 as the indexer does):
bytes per picture (page_count * page_size / n, after a WAL checkpoint, and the features table's own
share from dbstat), the write time, the time (three runs) and memory of ``feature_matrix`` over all of them,
and (new side) the time of ``iter_feature_blocks``. The old side's sources default to
``git archive 7d55393`` (schema 2). Last, the old side's catalog is opened with this checkout: the
one-off migration to schema 3 (and repack to 16 KiB pages), timed.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
OLD_COMMIT = "7d55393"


def measure(n: int, dim: int, folder: str) -> dict:
    """Build the synthetic catalog with whatever lookalike is importable, and measure it."""
    import numpy as np

    from lookalike.catalog import Catalog, FeatureRow, FileRow, ImageRow, encode_feature

    rng = np.random.default_rng(0)
    db = os.path.join(folder, "catalog.sqlite")
    paths = [f"/home/someone/Pictures/{2000 + i // 20000}/{i // 500:04d} holiday/IMG_{i:06d}.JPG" for i in range(n)]
    hashes = [hashlib.sha256(p.encode()).hexdigest() for p in paths]
    t0 = time.perf_counter()
    with Catalog(db) as cat:
        for s in range(0, n, 1000):
            sl = slice(s, min(n, s + 1000))
            vecs = rng.standard_normal((sl.stop - sl.start, dim)).astype(np.float16)
            cat.write(
                files=[FileRow(p, 2_000_000 + i, 1_600_000_000_000_000_000 + i, h, "ok", None, 10_000_000 + i,
                               1_600_000_000_000_000_000 + i)
                       for i, (p, h) in enumerate(zip(paths[sl], hashes[sl], strict=True), sl.start)],
                images=[ImageRow(h, 4032, 3024, "JPEG", "RGB", False, 1, "2021:07:14 12:00:00", 40, 2_000_000)
                        for h in hashes[sl]],
                features=[FeatureRow(h, "effnet", "1", encode_feature(v, "embedding"))
                          for h, v in zip(hashes[sl], vecs, strict=True)],
            )
        write_s = time.perf_counter() - t0
        db_conn = cat.connection()
        db_conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        pages = db_conn.execute("PRAGMA page_count").fetchone()[0]
        page = db_conn.execute("PRAGMA page_size").fetchone()[0]
        by_table = dict(db_conn.execute("SELECT name, SUM(pgsize) FROM dbstat GROUP BY name").fetchall())
    out = {"n": n, "page_size": page, "bytes_per_picture": round(pages * page / n),
           "features_bytes_per_picture": round(by_table.get("features", 0) / n),
           "tables_bytes_per_picture": {k: round(v / n) for k, v in sorted(by_table.items())},
           "write_s": round(write_s, 2)}
    with Catalog(db) as cat:  # a fresh handle, as a command would open it
        rss0 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        times = []
        for _ in range(3):  # best of three: the machine is shared
            t0 = time.perf_counter()
            kept, mat = cat.feature_matrix(paths, "effnet", "1", "embedding", dim * 2)
            times.append(time.perf_counter() - t0)
            assert len(kept) == n
            dtype = str(mat.dtype)
            del mat
        out["feature_matrix_s"] = [round(t, 2) for t in times]
        out["feature_matrix_dtype"] = dtype
        out["feature_matrix_peak_mb"] = round((resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - rss0) / 1024)
        if hasattr(cat, "iter_feature_blocks"):
            times = []
            for _ in range(3):
                t0 = time.perf_counter()
                rows = sum(len(k) for k, _ in cat.iter_feature_blocks(paths, "effnet", "1", "embedding", dim * 2))
                times.append(time.perf_counter() - t0)
                assert rows == n
            out["iter_feature_blocks_s"] = [round(t, 2) for t in times]
    return out


_LAYOUTS = {
    "schema 2: TEXT hex keys, WITHOUT ROWID": (
        "CREATE TABLE features (content_hash TEXT NOT NULL, model TEXT NOT NULL, version TEXT NOT NULL, "
        "data BLOB NOT NULL, PRIMARY KEY (content_hash, model, version)) WITHOUT ROWID", False),
    "integer keys, WITHOUT ROWID": (
        "CREATE TABLE features (content_id INTEGER NOT NULL, model_id INTEGER NOT NULL, data BLOB NOT NULL, "
        "PRIMARY KEY (content_id, model_id)) WITHOUT ROWID", True),
    "integer keys, rowid table (chosen)": (
        "CREATE TABLE features (content_id INTEGER NOT NULL, model_id INTEGER NOT NULL, data BLOB NOT NULL, "
        "PRIMARY KEY (content_id, model_id))", True),
}


def layouts(n: int, dim: int, page_sizes: list[int], folder: str) -> None:
    """Bytes per row of candidate feature tables alone (plus ``contents`` where keyed by integers), raw SQL."""
    import sqlite3

    import numpy as np

    vecs = np.random.default_rng(0).standard_normal((n, dim)).astype("<f2")
    digests = [hashlib.sha256(str(i).encode()).digest() for i in range(n)]
    for name, (ddl, ids) in _LAYOUTS.items():
        sizes = []
        for page in page_sizes:
            db = os.path.join(folder, f"layout-{page}.sqlite")
            conn = sqlite3.connect(db, isolation_level=None)
            conn.execute(f"PRAGMA page_size={page}")
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("BEGIN")
            conn.execute(ddl)
            if ids:
                conn.execute("CREATE TABLE contents (id INTEGER PRIMARY KEY, sha256 BLOB NOT NULL UNIQUE)")
                conn.executemany("INSERT INTO contents VALUES (?, ?)", ((i + 1, d) for i, d in enumerate(digests)))
                rows = ((i + 1, vecs[i].tobytes()) for i in range(n))
                conn.executemany("INSERT INTO features VALUES (?, 1, ?)", rows)
            else:
                conn.executemany("INSERT INTO features VALUES (?, 'effnet', '1', ?)",
                                 ((d.hex(), vecs[i].tobytes()) for i, d in enumerate(digests)))
            conn.execute("COMMIT")
            conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
            pages = conn.execute("PRAGMA page_count").fetchone()[0]
            sizes.append(f"{page // 1024} KiB pages {pages * page / n:,.0f} B")
            conn.close()
            for suffix in ("", "-wal", "-shm"):
                if os.path.exists(db + suffix):
                    os.remove(db + suffix)
        print(f"layout {name}: " + ", ".join(sizes), flush=True)


def migrate(db: str, n: int) -> dict:
    """Open a schema-2 catalog with this checkout: the one-off migration (and repack), timed."""
    from lookalike.catalog import Catalog

    before = os.path.getsize(db)
    rss0 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    t0 = time.perf_counter()
    with Catalog(db) as cat:
        seconds = time.perf_counter() - t0
        conn = cat.connection()
        pages = conn.execute("PRAGMA page_count").fetchone()[0]
        page = conn.execute("PRAGMA page_size").fetchone()[0]
        count = sum(m["count"] for m in cat.stats()["features"])
    assert count == n
    return {"migrate_s": round(seconds, 1), "file_mb_before": round(before / 2**20),
            "file_mb_after": round(os.path.getsize(db) / 2**20), "page_size": page,
            "bytes_per_picture": round(pages * page / n),
            "peak_rss_mb": round((resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - rss0) / 1024)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("-n", type=int, default=100_000)
    ap.add_argument("--dim", type=int, default=1280)
    ap.add_argument("--before-src", help=f"sources of the schema-2 lookalike (default: git archive {OLD_COMMIT})")
    ap.add_argument("--page-sizes", default="", help="this checkout also with these page sizes (e.g. 8192,65536)")
    ap.add_argument("--layouts", action="store_true", help="only compare candidate feature tables (raw SQL)")
    ap.add_argument("--side", help=argparse.SUPPRESS)
    ap.add_argument("--keep", help=argparse.SUPPRESS)
    ap.add_argument("--migrate", help=argparse.SUPPRESS)
    ap.add_argument("--page-size", type=int, default=0, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.layouts:
        with tempfile.TemporaryDirectory() as tmp:
            layouts(args.n, args.dim, [4096, 8192, 16384, 65536], tmp)
        return
    if args.migrate:  # a child: migrate the old side's catalog
        print(json.dumps(migrate(args.migrate, args.n)))
        return
    if args.side:  # a child: measure with the lookalike on PYTHONPATH
        if args.page_size:
            from lookalike.catalog import schema

            schema.PAGE_SIZE = args.page_size
        with tempfile.TemporaryDirectory() as tmp:
            print(json.dumps(measure(args.n, args.dim, args.keep or tmp)))
        return
    with tempfile.TemporaryDirectory() as tmp:
        old_src = args.before_src
        if not old_src:
            subprocess.run(f"git -C {ROOT} archive {OLD_COMMIT} src | tar -x -C {tmp}", shell=True, check=True)
            old_src = os.path.join(tmp, "src")
        results = {}
        sides = [("schema 2 (before)", old_src, 0), ("this checkout", str(ROOT / "src"), 0)]
        extra = [int(p) for p in args.page_sizes.split(",") if p]
        sides += [(f"this checkout, {p}-byte pages", str(ROOT / "src"), p) for p in extra]
        keep = os.path.join(tmp, "old")
        os.mkdir(keep)
        for side, src, page_size in sides:
            env = {**os.environ, "PYTHONPATH": src}
            more = ["--keep", keep] if src == old_src else []
            proc = subprocess.run([sys.executable, __file__, "--side", side, "-n", str(args.n), "--dim",
                                   str(args.dim), "--page-size", str(page_size), *more],
                                  capture_output=True, text=True, env=env, check=True)
            results[side] = json.loads(proc.stdout.strip().splitlines()[-1])
            print(f"{side}: {json.dumps(results[side])}", flush=True)
        env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
        proc = subprocess.run([sys.executable, __file__, "--migrate", os.path.join(keep, "catalog.sqlite"), "-n",
                               str(args.n)], capture_output=True, text=True, env=env, check=True)
        print(f"schema 2 -> 3 migration: {proc.stdout.strip().splitlines()[-1]}", flush=True)
    print(f"load average at the end: {os.getloadavg()[0]:.1f} (cores: {os.cpu_count()})")


if __name__ == "__main__":
    main()
