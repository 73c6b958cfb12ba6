"""Catalog-wide ``similar`` at scale (issue 11): exact search vs the persisted index, one process, one run.

A real catalog (SQLite) is filled through ``Catalog.write`` with N file rows and N float16 1280-d features
(bench/scale.py's synthetic clustered vectors); then, for the same query rows:

* service, exact: ``MatrixCache.catalog_scope`` with the index off (the scope's float32 matrix in memory),
  build time and ms per query;
* service, index: the same scope through the persisted index: first sync (built from the catalog), a
  later reload with nothing new, an incremental sync after 100 new pictures, and ms per query;
* library (folder scope, what ``find_similar`` does after indexing the folder): exact (feature_matrix +
  exact search) vs index (sync check + IndexedScope), seconds per call;
* recall@10 of the index's answers against exact ones.

    python bench/similar_scale.py --n 100000 [--queries 100] [--folder /tmp/lk-similar-bench]
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from scale import make_data  # noqa: E402  (the synthetic vectors of bench/scale.py)


def fill(cat, vec: np.ndarray, model: str, version: str, start: int = 0, batch: int = 5000) -> list[str]:
    """Write one file row and one feature row per vector; returns the paths."""
    from lookalike.catalog import FeatureRow, FileRow, encode_feature

    paths = []
    for s in range(0, len(vec), batch):
        files, feats = [], []
        for i in range(s, min(len(vec), s + batch)):
            h = hashlib.sha256(f"bench-{start + i}".encode()).hexdigest()
            p = f"/bench/photos/{(start + i) // 1000:04d}/{start + i:07d}.jpg"
            files.append(FileRow(p, 1, 1, h, "ok", None))
            feats.append(FeatureRow(h, model, version, encode_feature(vec[i], "embedding")))
            paths.append(p)
        cat.write(files, (), feats)
    return paths


def timed(fn):
    t = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - t


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=100_000)
    ap.add_argument("--queries", type=int, default=100)
    ap.add_argument("--limit", type=int, default=10_000, help="INDEX_LIMIT (a small --n needs a small one)")
    ap.add_argument("--folder", type=Path, default=Path("/tmp/lk-similar-bench"))
    args = ap.parse_args()

    import lookalike.similar as similar
    from lookalike.catalog import Catalog
    from lookalike.features import load_extractor
    from lookalike.search import ExactCosineSearcher, index_path
    from lookalike.service.matrix_cache import MatrixCache, rank
    from lookalike.service.metrics import Metrics

    ext = load_extractor("effnet")
    data = args.folder / f"data-{args.n}"
    make_data(args.n + 100, data)
    vec = np.load(data / "vectors.npy", mmap_mode="r")
    db = args.folder / f"catalog-{args.n}.sqlite"
    for p in args.folder.glob(f"catalog-{args.n}.sqlite*"):
        p.unlink()
    cat = Catalog(db)
    out: dict = {"n": args.n, "load_before": os.getloadavg()[0]}
    paths, out["fill_s"] = timed(lambda: fill(cat, vec[: args.n], ext.id, ext.version))
    rows = np.sort(np.random.default_rng(5).choice(args.n, args.queries, replace=False))
    queries = [np.asarray(vec[r], dtype=np.float32) for r in rows.tolist()]

    def per_query(entry) -> tuple[float, list[list[str]]]:
        rank(entry, queries[0], 10, "effnet", "q")  # warm up
        found, t = [], time.perf_counter()
        for r, q in zip(rows.tolist(), queries, strict=True):
            found.append([h.path for h in rank(entry, q, 10, "effnet", "q", exclude=paths[r]).results])
        return 1000 * (time.perf_counter() - t) / len(queries), found

    similar.INDEX_LIMIT = 10**12
    entry, out["service_exact_build_s"] = timed(lambda: MatrixCache(cat, [], Metrics()).catalog_scope("effnet"))
    out["service_exact_ms_per_query"], truth = per_query(entry)
    del entry

    similar.INDEX_LIMIT = search_limit = args.limit
    entry, out["service_index_first_sync_s"] = timed(lambda: MatrixCache(cat, [], Metrics()).catalog_scope("effnet"))
    out["index_layout"] = entry.indexed.index.layout
    out["index_file_mb"] = round(index_path(db, ext.id, ext.version).stat().st_size / 2**20, 1)
    out["service_index_ms_per_query"], found = per_query(entry)
    hits = sum(len(set(f) & set(t)) for f, t in zip(found, truth, strict=True))
    out["recall_at_10"] = round(hits / sum(len(t) for t in truth), 4)
    out["fallbacks"] = entry.fallbacks
    del entry
    _, out["service_index_reload_unchanged_s"] = timed(lambda: MatrixCache(cat, [], Metrics()).catalog_scope("effnet"))
    fill(cat, vec[args.n : args.n + 100], ext.id, ext.version, start=args.n)
    _, out["service_index_sync_100_new_s"] = timed(lambda: MatrixCache(cat, [], Metrics()).catalog_scope("effnet"))

    # the library's folder scope (find_similar after index_paths): whole catalog as the folder
    def lib_exact():
        kept, mat = cat.feature_matrix(paths, ext.id, ext.version, ext.kind)
        return similar.rank(ExactCosineSearcher(mat), kept, queries[0], 10, "effnet", "q")

    def lib_index():
        return similar.IndexedScope.of_catalog(cat, "effnet", paths).rank(queries[0], 10, "effnet", "q")

    _, out["library_exact_s_per_call"] = timed(lib_exact)
    _, out["library_index_s_per_call"] = timed(lib_index)
    out["index_limit"] = search_limit
    out["load_after"] = os.getloadavg()[0]
    print(json.dumps({k: round(v, 4) if isinstance(v, float) else v for k, v in out.items()}))
    cat.close()


if __name__ == "__main__":
    main()
