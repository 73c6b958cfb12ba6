"""Scale benchmark (issue 11): the search layer at 10k, 100k and 1M items, each figure from its own process.

Synthetic data like a photo collection's features: 1280-d unit CNN vectors in float16, clustered (themes,
then scenes inside themes, each scene with its own spread), with planted near copies (edited copies:
cosine 0.85-0.98 to their original); 64-bit dihedral pHashes (8 orientations) where each planted copy
matches its original's upright hash within 3 bits in one orientation.

For every size, each task runs in a fresh subprocess (time, CPU time and peak RSS: VmHWM):

* ``candidates``: dupes' CNN candidates (k=12, cos >= 0.5) + hash candidates, and the recall of the
  planted copies among them;
* ``sort_graph`` / ``cluster_graph``: the all-pairs k-NN graphs of sort (k=10) and cluster (k=15);
* ``sort`` / ``cluster``: the whole library work of ``lookalike sort`` / ``lookalike cluster`` after the
  catalog read: the feature matrix (float16, in memory, rows in an order other than the paths', as
  ``Catalog.feature_matrix`` gives it) through ``organise.vectors.from_matrix`` as ``load_vectors`` calls it, then
  ``organise.sort.sort_vectors`` (graph, path fragments, joining, 2-opt / Or-opt) or
  ``organise.cluster.cluster_vectors`` at the command's defaults;
* ``query``: build the persisted index (lookalike.search.VectorIndex), save, reopen, then ms per single
  query and its recall@10 against exact search;
* ``recall``: recall@10 of the all-pairs approximate graph against exact search on a sample of at most
  100k rows (2,000 query rows checked exactly).

Growth exponents ``log(t2/t1) / log(n2/n1)`` are printed between consecutive sizes.

    python bench/scale.py --sizes 10000 100000 1000000 [--tasks ...] [--out results.jsonl]
    python bench/scale.py --threshold     # exact vs approximate crossover (EXACT_LIMIT, FLAT_LIMIT)
"""

from __future__ import annotations

import argparse
import functools
import json
import math
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

DIM = 1280
COPY_SHARE = 0.02  # planted copies: 2% of the items
TASKS = ("candidates", "sort_graph", "cluster_graph", "sort", "cluster", "query", "recall")
SAMPLE_MAX = 100_000


# -- synthetic data ---------------------------------------------------------------------------------
def make_data(n: int, folder: Path, seed: int = 0) -> dict:
    """Write vectors.npy (float16, n x DIM), hashes.npy (uint64, n x 8) and planted.npy ((m, 2): original,
    copy) under folder; returns facts about them. Rows are made in blocks (memory: one block)."""
    folder.mkdir(parents=True, exist_ok=True)
    done = folder / "facts.json"
    if done.exists():
        return json.loads(done.read_text())
    rng = np.random.default_rng(seed)
    copies = int(n * COPY_SHARE)
    originals = n - copies
    themes = max(4, int(round(np.sqrt(n) / 4)))
    scenes = max(8, originals // 40)
    theme_c = rng.standard_normal((themes, DIM)).astype(np.float32)
    theme_c /= np.linalg.norm(theme_c, axis=1, keepdims=True)
    scene_theme = rng.integers(0, themes, scenes)
    scene_c = theme_c[scene_theme] + 0.9 * rng.standard_normal((scenes, DIM)).astype(np.float32) / np.sqrt(DIM)
    scene_c /= np.linalg.norm(scene_c, axis=1, keepdims=True)
    scene_spread = rng.uniform(0.7, 1.4, scenes).astype(np.float32)
    item_scene = rng.integers(0, scenes, originals)
    vec = np.lib.format.open_memmap(folder / "vectors.npy", mode="w+", dtype=np.float16, shape=(n, DIM))
    block = 16384
    for s in range(0, originals, block):
        e = min(originals, s + block)
        sc = item_scene[s:e]
        noise = rng.standard_normal((e - s, DIM), dtype=np.float32) / np.sqrt(DIM)
        x = scene_c[sc] + scene_spread[sc, None] * noise
        vec[s:e] = x / np.linalg.norm(x, axis=1, keepdims=True)
    src = np.sort(rng.choice(originals, copies, replace=False))
    for s in range(0, copies, block):
        e = min(copies, s + block)
        amount = rng.uniform(0.2, 0.6, e - s).astype(np.float32)  # cosine 0.86-0.98 to the original
        noise = rng.standard_normal((e - s, DIM), dtype=np.float32) / np.sqrt(DIM)
        x = vec[src[s:e]].astype(np.float32) + amount[:, None] * noise
        vec[originals + s : originals + e] = x / np.linalg.norm(x, axis=1, keepdims=True)
    vec.flush()
    del vec
    hashes = rng.integers(0, 2**63, size=(n, 8), dtype=np.int64).astype(np.uint64)
    hashes[:, 0] |= rng.integers(0, 2, n, dtype=np.uint64) << np.uint64(63)
    for c in range(copies):
        orient = int(rng.integers(0, 8))
        h = int(hashes[src[c], 0])
        for b in rng.choice(64, int(rng.integers(0, 4)), replace=False).tolist():
            h ^= 1 << b
        hashes[originals + c, orient] = np.uint64(h)
    np.save(folder / "hashes.npy", hashes)
    planted = np.stack([src, np.arange(originals, n)], axis=1).astype(np.int64)
    np.save(folder / "planted.npy", planted)
    facts = {"n": n, "dim": DIM, "copies": copies, "themes": themes, "scenes": scenes}
    done.write_text(json.dumps(facts))
    return facts


# -- tasks (each runs in its own process) -----------------------------------------------------------
def _planted_recall(pairs: set | dict, planted: np.ndarray) -> float:
    if len(planted) == 0:
        return 1.0
    got = sum(1 for a, b in planted.tolist() if (min(a, b), max(a, b)) in pairs)
    return got / len(planted)


def _exact_rows(vec: np.ndarray, rows: np.ndarray, k: int) -> np.ndarray:
    from lookalike.search import ExactCosineSearcher

    res = ExactCosineSearcher(vec).query(vec[rows], k + 1)
    out = np.full((len(rows), k), -1, dtype=np.int64)
    for r, row in enumerate(res.indices):
        kept = row[row != rows[r]][:k]
        out[r, : len(kept)] = kept
    return out


def _recall(found: np.ndarray, truth: np.ndarray) -> float:
    hits = sum(len(set(f.tolist()) & set(t[t >= 0].tolist())) for f, t in zip(found, truth, strict=True))
    return hits / max(1, int((truth >= 0).sum()))


def _synthetic_paths(n: int) -> list[str]:
    """Paths for the rows, in an order other than the rows' (the catalog's order is not the path order)."""
    perm = np.random.default_rng(4).permutation(n)
    return [f"/photos/{d // 1000:04d}/IMG_{d:07d}.jpg" for d in perm.tolist()]


def _organise(task: str, folder: Path, n: int) -> dict:
    """``sort`` / ``cluster`` as the commands run them once the catalog has given (paths, float16 matrix)."""
    from lookalike.organise.vectors import from_matrix

    out: dict = {}
    paths = _synthetic_paths(n)
    matrix = np.load(folder / "vectors.npy")  # in memory, as Catalog.feature_matrix returns it
    t0, c0 = time.perf_counter(), time.process_time()
    vec = from_matrix(paths, matrix, "embedding", reuse=True)  # as load_vectors: the matrix is handed over
    del matrix, paths
    out["vectors_s"] = round(time.perf_counter() - t0, 2)
    out["vectors_cpu_s"] = round(time.process_time() - c0, 2)
    out["vectors_rss_mb"] = peak_rss_mb()
    t1, c1 = time.perf_counter(), time.process_time()
    if task == "sort":
        from lookalike.organise.sort import sort_vectors

        res = sort_vectors(vec, progress=_stages(out, t1))
        out["mean_distance"] = round(res.mean_distance, 4)
        out["photos"] = len(res.order)
    else:
        from lookalike.organise.cluster import cluster_vectors

        res = cluster_vectors(vec, progress=_stages(out, t1))
        out["mode"], out["method"] = res.mode, res.method
        out["clusters"] = len(res.clusters)
        out["clustered"] = sum(len(c) for c in res.clusters)
        out["largest"] = max((len(c) for c in res.clusters), default=0)
    out["organise_s"] = round(time.perf_counter() - t1, 2)
    out["organise_cpu_s"] = round(time.process_time() - c1, 2)
    return out


def _stages(out: dict, start: float):
    """A progress callback that records when each run of calls began (a stage: graph, joining, ...)."""
    marks: list = []
    out["stages_s"] = marks
    last = {"total": None}

    def progress(done: int, total: int) -> None:
        if total != last["total"]:
            last["total"] = total
            marks.append(round(time.perf_counter() - start, 1))

    return progress


def run_task(task: str, folder: Path) -> dict:
    """One measurement; returns its figures (the caller adds time and memory)."""
    vec = np.load(folder / "vectors.npy", mmap_mode="r")
    n = len(vec)
    planted = np.load(folder / "planted.npy")
    out: dict = {}
    if task == "candidates":
        from lookalike.dupes.candidates import dihedral_pairs, dihedral_pairs_indexed, embedding_pairs
        from lookalike.dupes.finder import CNN_K, CNN_MIN_COS, HASH_K, HASH_MAX_BITS, HASH_SCAN_MAX

        hashes = np.load(folder / "hashes.npy")
        t0 = time.perf_counter()
        cand = embedding_pairs(vec, CNN_K, CNN_MIN_COS)
        out["cnn_s"] = round(time.perf_counter() - t0, 2)
        t1 = time.perf_counter()
        hp = (dihedral_pairs(hashes, HASH_K, HASH_MAX_BITS) if n <= HASH_SCAN_MAX
              else dihedral_pairs_indexed(hashes, max_bits=3))
        out["hash_s"] = round(time.perf_counter() - t1, 2)
        out["cnn_pairs"], out["hash_pairs"] = len(cand), len(hp)
        out["planted_recall_cnn"] = round(_planted_recall(cand, planted), 4)
        out["planted_recall_hash"] = round(_planted_recall(hp, planted), 4)
        cand.update(hp)
        out["planted_recall"] = round(_planted_recall(cand, planted), 4)
    elif task in ("sort_graph", "cluster_graph"):
        from lookalike.organise.vectors import Vectors
        from lookalike.search import EXACT_LIMIT, knn_graph

        k = 10 if task == "sort_graph" else 15
        g = knn_graph(Vectors([""] * n, vec, "embedding"), k, exact_limit=EXACT_LIMIT)
        out["k"], out["exact"] = k, g.exact
        out["edges"] = int((g.idx >= 0).sum())
    elif task in ("sort", "cluster"):
        out.update(_organise(task, folder, n))
    elif task == "query":
        from lookalike.search import ExactCosineSearcher, open_index

        path = folder / "bench.index"
        path.unlink(missing_ok=True)
        t0 = time.perf_counter()
        index = open_index(path, "embedding", DIM)
        index.rebuild(np.arange(n, dtype=np.int64), lambda ids: vec[ids])
        index.save()
        out["build_s"] = round(time.perf_counter() - t0, 2)
        out["layout"] = index.layout
        out["file_mb"] = round(path.stat().st_size / 2**20, 1)
        del index
        t1 = time.perf_counter()
        index = open_index(path, "embedding", DIM)
        out["open_s"] = round(time.perf_counter() - t1, 2)
        rng = np.random.default_rng(1)
        rows = np.sort(rng.choice(n, min(n, 200), replace=False))
        index.query(vec[rows[:5]], 10)  # warm up
        times, found = [], []
        for r in rows.tolist():
            q = np.asarray(vec[r : r + 1], dtype=np.float32)
            t = time.perf_counter()
            res = index.query(q, 11)
            times.append(time.perf_counter() - t)
            row = res.indices[0]
            found.append(row[row != r][:10])
        out["ms_per_query"] = round(1000 * float(np.median(times)), 3)
        out["ms_per_query_p95"] = round(1000 * float(np.percentile(times, 95)), 3)
        truth = _exact_rows(vec, rows, 10)
        out["recall_at_10"] = round(_recall(np.array(found), truth), 4)
        t2 = time.perf_counter()
        ExactCosineSearcher(vec).query(np.asarray(vec[rows[:3]], dtype=np.float32), 10)
        out["exact_ms_per_query"] = round(1000 * (time.perf_counter() - t2) / 3, 1)
        path.unlink(missing_ok=True)
    elif task == "recall":
        from lookalike.search import InvertedFileSearcher

        rng = np.random.default_rng(2)
        sample = np.sort(rng.choice(n, min(n, SAMPLE_MAX), replace=False))
        sub = np.asarray(vec[sample])
        t0 = time.perf_counter()
        g = InvertedFileSearcher(sub).knn_graph(10)
        out["ann_graph_s"] = round(time.perf_counter() - t0, 2)
        rows = np.sort(rng.choice(len(sub), min(len(sub), 2000), replace=False))
        out["sample"] = len(sub)
        out["recall_at_10"] = round(_recall(g.indices[rows], _exact_rows(sub, rows, 10)), 4)
    elif task in ("exact_graph", "ivf_graph"):
        from lookalike.search import ExactCosineSearcher, InvertedFileSearcher

        s = ExactCosineSearcher(vec) if task == "exact_graph" else InvertedFileSearcher(vec)
        s.knn_graph(12)
    elif task in ("flat_query", "ivf_query"):
        import lookalike.search.index as ix

        index = ix.VectorIndex(None, "embedding", DIM)
        limit = ix.FLAT_LIMIT
        ix.FLAT_LIMIT = 10**12 if task == "flat_query" else 0
        try:
            index.rebuild(np.arange(n, dtype=np.int64), lambda ids: vec[ids])
        finally:
            ix.FLAT_LIMIT = limit
        rows = np.random.default_rng(3).choice(n, 100, replace=False)
        t = time.perf_counter()
        for r in rows.tolist():
            index.query(np.asarray(vec[r : r + 1], dtype=np.float32), 10)
        out["ms_per_query"] = round(1000 * (time.perf_counter() - t) / len(rows), 3)
    else:
        raise SystemExit(f"unknown task {task}")
    return out


def peak_rss_mb() -> float:
    """This process's peak resident memory. VmHWM, not getrusage: Linux carries ru_maxrss over fork and
    exec, so a child would report its parent's peak (the data generator's) when that is larger."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return round(int(line.split()[1]) / 1024, 1)
    except OSError:
        pass
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)


def _child(task: str, folder: str) -> None:
    t0, c0 = time.perf_counter(), time.process_time()
    out = run_task(task, Path(folder))
    out["wall_s"] = round(time.perf_counter() - t0, 2)
    out["cpu_s"] = round(time.process_time() - c0, 2)
    out["peak_rss_mb"] = peak_rss_mb()
    print("RESULT " + json.dumps(out), flush=True)


def measure(task: str, folder: Path, timeout: float | None) -> dict:
    """Run one task in a fresh interpreter; its figures, or why it failed."""
    env = dict(os.environ)
    src = str(Path(__file__).resolve().parent.parent / "src")
    env["PYTHONPATH"] = src + os.pathsep + env.get("PYTHONPATH", "")
    cmd = [sys.executable, __file__, "--child", task, str(folder)]
    try:
        done = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=timeout)
    except subprocess.TimeoutExpired:
        return {"error": f"over {timeout} s"}
    for line in done.stdout.splitlines():
        if line.startswith("RESULT "):
            return json.loads(line[7:])
    return {"error": (done.stderr or done.stdout)[-600:]}


def growth(rows: list[dict], key: str) -> list[str]:
    """Growth exponents of ``key`` between consecutive sizes."""
    out = []
    for a, b in zip(rows, rows[1:], strict=False):
        if a.get(key) and b.get(key):
            out.append(f"{a['n']}->{b['n']}: {math.log(b[key] / a[key]) / math.log(b['n'] / a['n']):.2f}")
    return out


def load() -> str:
    return "load {:.2f} {:.2f} {:.2f}".format(*os.getloadavg())


def record(task: str, n: int, run, results: dict[str, list[dict]], out: Path | None, **extra) -> dict:
    """Run one figure (``run()`` returns its dict), stamp it with size, task and the load before and after,
    print it as a JSON line, keep it in ``results`` and append it to ``out``."""
    before = load()
    r = run()
    r.update(n=n, task=task, load_before=before, load_after=load(), **extra)
    results[task].append(r)
    print(json.dumps(r), flush=True)
    if out:
        with out.open("a") as fh:
            fh.write(json.dumps(r) + "\n")
    return r


def print_growth(results: dict[str, list[dict]]) -> None:
    """Growth exponents between consecutive sizes of every task (CPU time; wall time; peak RSS)."""
    print("# growth exponents (CPU time; wall time; peak RSS)")
    for task, rows in results.items():
        rows = [r for r in rows if "error" not in r]
        print(f"{task}: cpu {growth(rows, 'cpu_s') or '-'}; wall {growth(rows, 'wall_s') or '-'}; "
              f"rss {growth(rows, 'peak_rss_mb') or '-'}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000, 1_000_000])
    ap.add_argument("--tasks", nargs="+", default=list(TASKS))
    ap.add_argument("--data", type=Path, default=Path(tempfile.gettempdir()) / "lookalike-scale")
    ap.add_argument("--out", type=Path, default=None, help="append one JSON line per figure")
    ap.add_argument("--timeout", type=float, default=None, help="seconds per task")
    ap.add_argument("--threshold", action="store_true", help="measure the exact/approximate crossover")
    ap.add_argument("--child", nargs=2, metavar=("TASK", "FOLDER"), help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        _child(*args.child)
        return
    if args.threshold:
        args.tasks = ["exact_graph", "ivf_graph", "flat_query", "ivf_query"]
    results: dict[str, list[dict]] = {t: [] for t in args.tasks}
    for n in args.sizes:
        folder = args.data / str(n)
        t = time.perf_counter()
        facts = make_data(n, folder)
        print(f"# n={n}: data ready in {time.perf_counter() - t:.1f} s ({facts}); {load()}", flush=True)
        for task in args.tasks:
            record(task, n, functools.partial(measure, task, folder, args.timeout), results, args.out)
    print_growth(results)


if __name__ == "__main__":
    main()
