"""Scale benchmark for the duplicate finder's all-against-all candidate search (synthetic data).

Hashes: n items with 8 random 64-bit orientation hashes each (as the `dihash` extractor stores), 1% of
them planted copies of another item (1-3 bits flipped, in a random one of the 8 orientations); searched
with the multi-index hash (lookalike.dupes.candidates.dihedral_pairs_indexed, exact up to 3 bits).
Vectors: n random 1280-d float16 unit vectors (as effnet stores), 1% planted copies (small noise);
k-nearest-neighbour graph with the exact blocked cosine searcher (lookalike.search), k = 12.

Each measurement runs in its own process so that its peak memory (max RSS) is its own.

    python bench/dupes_scale.py                          # hashes 10k/100k/1M, vectors 10k/50k
    python bench/dupes_scale.py --hashes 1000000 --vectors 10000
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))


def _planted(n: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """1% of the items become copies of items that are not copies themselves."""
    perm = rng.permutation(n)
    m = max(1, n // 100)
    copies, others = perm[:m], perm[m:]
    return copies, others[rng.integers(0, len(others), size=m)]


def run_hashes(n: int) -> dict:
    from lookalike.dupes.candidates import dihedral_pairs_indexed

    rng = np.random.default_rng(1)
    h = rng.integers(0, 2**63, size=(n, 8), dtype=np.int64).astype(np.uint64) * np.uint64(2) + np.uint64(1)
    copies, sources = _planted(n, rng)
    for c, s in zip(copies.tolist(), sources.tolist(), strict=True):
        v = int(rng.integers(0, 8))
        word = h[s, v]
        for bit in rng.choice(64, size=int(rng.integers(1, 4)), replace=False).tolist():
            word ^= np.uint64(1) << np.uint64(bit)
        h[c, :] = rng.integers(0, 2**63, size=8).astype(np.uint64)
        h[c, 0] = word  # the copy, upright, is orientation v of its source
    t0 = time.perf_counter()
    pairs = dihedral_pairs_indexed(h, max_bits=3)
    secs = time.perf_counter() - t0
    want = {(min(c, s), max(c, s)) for c, s in zip(copies.tolist(), sources.tolist(), strict=True)}
    return {"kind": "hashes", "n": n, "seconds": secs, "pairs": len(pairs),
            "recall": len(want & set(pairs)) / len(want)}


def run_vectors(n: int, dim: int = 1280, k: int = 12) -> dict:
    from lookalike.features.base import l2_normalise
    from lookalike.search import ExactCosineSearcher

    rng = np.random.default_rng(2)
    v = np.empty((n, dim), dtype=np.float16)
    for s in range(0, n, 65536):
        v[s : s + 65536] = l2_normalise(rng.standard_normal((min(65536, n - s), dim), dtype=np.float32))
    copies, sources = _planted(n, rng)
    noisy = v[sources].astype(np.float32) + 0.02 * rng.standard_normal((len(sources), dim), dtype=np.float32)
    v[copies] = l2_normalise(noisy)
    t0 = time.perf_counter()
    g = ExactCosineSearcher(v).knn_graph(k)
    secs = time.perf_counter() - t0
    found = sum(1 for c, s in zip(copies.tolist(), sources.tolist(), strict=True) if s in g.indices[c])
    return {"kind": "vectors", "n": n, "seconds": secs, "recall": found / len(copies)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--hashes", type=int, nargs="*", default=[10_000, 100_000, 1_000_000])
    ap.add_argument("--vectors", type=int, nargs="*", default=[10_000, 50_000])
    ap.add_argument("--one", nargs=2, metavar=("KIND", "N"), help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.one:
        kind, n = args.one[0], int(args.one[1])
        res = run_hashes(n) if kind == "hashes" else run_vectors(n)
        res["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        print(json.dumps(res))
        return
    print("| data | items | seconds | peak RSS (MB) | recall of planted copies |")
    print("|---|---|---|---|---|")
    for kind, sizes in (("hashes", args.hashes), ("vectors", args.vectors)):
        for n in sizes:
            proc = subprocess.run([sys.executable, __file__, "--one", kind, str(n)], capture_output=True, text=True)
            if proc.returncode != 0:
                print(f"| {kind} | {n:,} | failed: {proc.stderr.strip().splitlines()[-1:]} | | |")
                continue
            r = json.loads(proc.stdout.strip().splitlines()[-1])
            print(f"| {kind} | {n:,} | {r['seconds']:.1f} | {r['peak_rss_mb']:.0f} | {r['recall']:.3f} |", flush=True)


if __name__ == "__main__":
    main()
