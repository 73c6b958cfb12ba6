"""Sort quality and scale: mean distance between neighbours and same-class neighbours, on real photos.

    LOOKALIKE_SHARED=/work/shared python bench/sort_quality.py [--model effnet] [--scale 10000 100000]

Real sets (from ../shared/data): UKBench photos (class = index // 4) and celebrity faces (class = folder).
For each: a random order, the plain greedy nearest-neighbour chain (from the first photo), and ours.
Scale: synthetic clustered 1280-d unit vectors; each size runs in a fresh process so the peak RSS is its own.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from lookalike.catalog import Catalog  # noqa: E402
from lookalike.organise.sort import greedy_chain, order_vectors, path_length  # noqa: E402
from lookalike.organise.vectors import Vectors, load_vectors  # noqa: E402

SHARED = Path(os.environ.get("LOOKALIKE_SHARED", ROOT.parent / "shared")).resolve()


def labels_for(paths: list[str], dataset: str) -> np.ndarray:
    if dataset == "ukbench":
        return np.array([int(Path(p).name[7:12]) // 4 for p in paths])
    names = sorted({Path(p).parent.name for p in paths})
    return np.array([names.index(Path(p).parent.name) for p in paths])


def same_class(labels: np.ndarray, order: list[int]) -> float:
    o = np.asarray(order)
    return float(np.mean(labels[o[:-1]] == labels[o[1:]]))


def synthetic(n: int, dim: int = 1280, seed: int = 0) -> Vectors:
    """Clustered unit vectors: about 8 photos per 'scene', scenes spread over 'topics'."""
    rng = np.random.default_rng(seed)
    topics = rng.standard_normal((max(1, n // 400), dim)).astype(np.float32)
    scenes = topics[rng.integers(0, len(topics), max(1, n // 8))] + 0.8 * rng.standard_normal(
        (max(1, n // 8), dim)
    ).astype(np.float32)
    x = scenes[rng.integers(0, len(scenes), n)] + 0.6 * rng.standard_normal((n, dim)).astype(np.float32)
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    return Vectors([f"{i:08d}" for i in range(n)], x.astype(np.float16).astype(np.float32), "embedding")


def run_scale(n: int) -> dict:
    vec = synthetic(n)
    t0 = time.perf_counter()
    order, dist = order_vectors(vec)
    sec = time.perf_counter() - t0
    assert sorted(order) == list(range(n))
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return {"n": n, "seconds": round(sec, 1), "peak_rss_mib": round(rss), "mean_dist": float(np.mean(dist))}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", default="effnet")
    ap.add_argument("--catalog", default=str(Path(tempfile.gettempdir()) / "lookalike-bench" / "catalog.sqlite"))
    ap.add_argument("--scale", type=int, nargs="*", default=[10000, 100000])
    ap.add_argument("--one-scale", type=int, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.one_scale:
        print(json.dumps(run_scale(args.one_scale)))
        return

    cat = Catalog(args.catalog)
    sets = [("ukbench", SHARED / "data" / "photos"), ("celebrity", SHARED / "data" / "faces" / "celebrity")]
    print(f"model {args.model}; distance = 1 - cosine (embeddings) or Hamming/bits (hashes)")
    print(f"{'set':10} {'n':>5} {'method':14} {'mean adj dist':>13} {'same class':>10} {'seconds':>8}")
    for name, folder in sets:
        if not folder.exists():
            print(f"{name}: {folder} not found, skipped")
            continue
        vec = load_vectors([folder], model=args.model, catalog=cat)
        labels = labels_for(vec.paths, name)
        rng = np.random.default_rng(0)
        rows = []
        rand = rng.permutation(len(vec)).tolist()
        rows.append(("random", rand, 0.0))
        t = time.perf_counter()
        greedy = greedy_chain(vec, 0)
        rows.append(("greedy NN", greedy, time.perf_counter() - t))
        t = time.perf_counter()
        ours, _ = order_vectors(vec)
        rows.append(("lookalike", ours, time.perf_counter() - t))
        means = {}
        for label, order, sec in rows:
            means[label] = float(np.mean(path_length(vec, order)))
            frac = same_class(labels, order)
            print(f"{name:10} {len(vec):5d} {label:14} {means[label]:13.4f} {frac:10.3f} {sec:8.2f}")
        print(f"{name:10} ratio lookalike / greedy NN = {means['lookalike'] / means['greedy NN']:.3f} (target <= 0.9)")

    if args.scale:
        print(f"\n{'n (synthetic 1280-d)':>20} {'seconds':>8} {'peak RSS MiB':>12} {'mean adj dist':>13}")
        for n in args.scale:
            proc = subprocess.run([sys.executable, __file__, "--one-scale", str(n)], capture_output=True, text=True)
            if proc.returncode != 0:
                print(f"{n:>20} failed: {proc.stderr.strip()[-300:]}")
                continue
            r = json.loads(proc.stdout)
            print(f"{r['n']:>20} {r['seconds']:8.1f} {r['peak_rss_mib']:12d} {r['mean_dist']:13.4f}")


if __name__ == "__main__":
    main()
