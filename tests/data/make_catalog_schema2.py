"""Writes tests/data/catalog_schema2.sql: run it with the schema-2 lookalike (commit 7d55393) first on
PYTHONPATH, as root (it writes under /lookalike-v2): ``python make_catalog_schema2.py OUT.sql``."""

import os
import shutil
import sqlite3
import sys

import numpy as np

from lookalike.catalog import Catalog, FeatureRow, encode_feature
from lookalike.index import index_paths

lib = "/lookalike-v2/lib"
out = sys.argv[1]
os.makedirs(lib, exist_ok=True)
for i in range(6):
    shutil.copy(f"/work/shared/data/photos/ukbench{i:05d}.jpg", f"{lib}/p{i}.jpg")
shutil.copy(f"{lib}/p0.jpg", f"{lib}/copy_of_p0.jpg")  # two paths, one content
with open(f"{lib}/broken.jpg", "wb") as fh:
    fh.write(b"not a picture")
db = "/lookalike-v2/v2.sqlite"
for s in ("", "-wal", "-shm"):
    if os.path.exists(db + s):
        os.remove(db + s)
with Catalog(db) as cat:
    rep = index_paths([lib], cat, ["phash", "dhash"])
    print(rep.to_json())
    rng = np.random.default_rng(11)
    rows = cat.lookup_files(rep.paths)
    feats = [FeatureRow(h, "synthetic", "2", encode_feature(rng.standard_normal(1280).astype(np.float32), "embedding"))
             for h in sorted({r.content_hash for r in rows.values()})]
    cat.write(features=feats)
    cat.connection().execute("PRAGMA wal_checkpoint(TRUNCATE)")
conn = sqlite3.connect(db)
with open(out, "w") as fh:
    fh.write("-- A schema-2 catalog written by lookalike at commit 7d55393 (index_paths of 6 UKBench photos, a copy\n"
             "-- and a broken file under /lookalike-v2/lib with phash and dhash, plus 1280-d float16 'synthetic'\n"
             "-- features through Catalog.write), dumped with sqlite3 iterdump.\n"
             "-- Regenerate: tests/data/make_catalog_schema2.py.\n")
    for line in conn.iterdump():
        fh.write(line + "\n")
print(conn.execute("select count(*) from files").fetchone(), conn.execute("select count(*) from features").fetchone())
