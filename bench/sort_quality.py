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


def held_karp_bound(vec: Vectors, iters: int = 400) -> float:
    """Lower bound on the shortest Hamiltonian path (Held-Karp 1-trees with subgradient steps, over a tour
    through a dummy node at distance 0 from every photo). No path, optimal included, is shorter."""
    from scipy.sparse.csgraph import minimum_spanning_tree

    d = vec.distance_from_cos(vec.x @ vec.x.T).astype(np.float64)
    n = len(d)
    w = np.zeros((n + 1, n + 1))
    w[1:, 1:] = d
    pi = np.zeros(n + 1)
    best, step = -np.inf, 0.01
    for it in range(iters):
        m = w + pi[:, None] + pi[None, :]
        shift = 1.0 - m.min()
        sub = m[1:, 1:] + shift  # all weights > 0 (scipy drops zeros); every 1-tree has n + 1 edges
        np.fill_diagonal(sub, 0)
        tree = minimum_spanning_tree(sub).tocoo()
        deg = np.zeros(n + 1)
        np.add.at(deg, tree.row + 1, 1)
        np.add.at(deg, tree.col + 1, 1)
        e = m[0, 1:]
        two = np.argsort(e)[:2]
        deg[0] += 2
        deg[two + 1] += 1
        cost = tree.data.sum() - shift * len(tree.data) + e[two].sum()
        best = max(best, cost - 2 * pi.sum())
        g = deg - 2
        if not g.any():
            break
        pi += step * g
        if it % 50 == 49:
            step *= 0.7
    return best / (n - 1)


def stability(vec: Vectors, trials: int = 5, seed: int = 0, orderer=None) -> float:
    """Mean share of neighbour pairs kept when one photo is added to the others (then taken out again)."""
    orderer = orderer or (lambda v: order_vectors(v)[0])
    rng = np.random.default_rng(seed)
    kept = []
    for extra in rng.choice(len(vec), trials, replace=False):
        rest = [i for i in range(len(vec)) if i != extra]
        sub = Vectors([vec.paths[i] for i in rest], vec.x[rest], vec.kind)
        old = [sub.paths[i] for i in orderer(sub)]
        new = [vec.paths[i] for i in orderer(vec) if i != extra]
        pairs = [{frozenset(p) for p in zip(o, o[1:], strict=False)} for o in (old, new)]
        kept.append(len(pairs[0] & pairs[1]) / (len(old) - 1))
    return float(np.mean(kept))


def synthetic(n: int, dim: int = 1280, seed: int = 0, labels: bool = False):
    """Clustered unit vectors: about 8 photos per 'scene', scenes spread over 'topics' (with ``labels``:
    also each row's scene)."""
    rng = np.random.default_rng(seed)
    topics = rng.standard_normal((max(1, n // 400), dim)).astype(np.float32)
    scenes = topics[rng.integers(0, len(topics), max(1, n // 8))] + 0.8 * rng.standard_normal(
        (max(1, n // 8), dim)
    ).astype(np.float32)
    scene = rng.integers(0, len(scenes), n)
    x = scenes[scene] + 0.6 * rng.standard_normal((n, dim)).astype(np.float32)
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    vec = Vectors([f"{i:08d}" for i in range(n)], x.astype(np.float16).astype(np.float32), "embedding")
    return (vec, scene) if labels else vec


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
        bound = held_karp_bound(vec)
        print(f"{name:10} lower bound for ANY path (Held-Karp) = {bound:.4f}: best possible ratio "
              f">= {bound / means['greedy NN']:.3f}; lookalike is within {means['lookalike'] / bound - 1:.1%} of it")
        print(f"{name:10} stability: {stability(vec):.1%} of neighbour pairs kept when one photo is added "
              f"(greedy NN chain: {stability(vec, orderer=lambda v: greedy_chain(v, 0)):.1%})")

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
