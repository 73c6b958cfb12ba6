"""Cluster quality (ARI, NMI) on labelled real photos, the choice of `cluster`'s defaults, and time/memory at scale.

    LOOKALIKE_SHARED=/work/shared python bench/cluster_quality.py [--model effnet] [--scale 10000 100000]
    LOOKALIKE_SHARED=/work/shared python bench/cluster_quality.py --defaults   # method x sim on every kind

``--defaults`` scores every method x sim (``--grid``) on three kinds of labelled folder -- objects (UKBench,
group = index // 4), people (celebrity: 12 people x 30; deepface: 9 identities in 25 photos; the kind's
score is the mean of the two), near duplicates (bench/dupes_quality.py's edited copies: a family = one source
photo and its edits, with the other photos of the same set as distractors) -- and picks the one with the
highest mean ARI over the kinds (ties: the higher worst kind). That pick is DEFAULT_METHOD / DEFAULT_SIM in
lookalike/organise/cluster.py (tests/test_organise_defaults.py pins it on a small labelled folder).

Labels: UKBench photos (group = index // 4), celebrity faces (identity = folder), and the celebrity set's
byte-identical pairs (DUPLICATES.txt; every other photo is its own group). Unclustered photos count as
groups of one. "graph" rows force the k-NN-graph mode (used past 20k photos) on the same photos.
Scale: synthetic clustered 1280-d unit vectors, one fresh process per size (peak RSS is its own).
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
sys.path.insert(0, str(ROOT / "bench"))

from lookalike.catalog import Catalog  # noqa: E402
from lookalike.organise.cluster import cluster_vectors  # noqa: E402
from lookalike.organise.vectors import load_vectors  # noqa: E402
from sort_quality import labels_for, synthetic  # noqa: E402

SHARED = Path(os.environ.get("LOOKALIKE_SHARED", ROOT.parent / "shared")).resolve()


def _comb2(x: np.ndarray) -> float:
    x = x.astype(np.float64)
    return float((x * (x - 1) / 2).sum())


def contingency(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    _, ai = np.unique(a, return_inverse=True)
    _, bi = np.unique(b, return_inverse=True)
    m = np.zeros((ai.max() + 1, bi.max() + 1), dtype=np.int64)
    np.add.at(m, (ai, bi), 1)
    return m


def ari(truth: np.ndarray, pred: np.ndarray) -> float:
    """Adjusted Rand index (Hubert and Arabie)."""
    m = contingency(truth, pred)
    n = m.sum()
    sum_ij, sum_a, sum_b = _comb2(m), _comb2(m.sum(1)), _comb2(m.sum(0))
    expected = sum_a * sum_b / (n * (n - 1) / 2) if n > 1 else 0.0
    top = 0.5 * (sum_a + sum_b)
    return 1.0 if top == expected else (sum_ij - expected) / (top - expected)


def nmi(truth: np.ndarray, pred: np.ndarray) -> float:
    """Normalised mutual information (arithmetic-mean normalisation, as scikit-learn's default)."""
    m = contingency(truth, pred).astype(np.float64)
    n = m.sum()
    p = m / n
    pa, pb = p.sum(1), p.sum(0)
    nz = p > 0
    mi = float((p[nz] * np.log(p[nz] / (pa[:, None] * pb[None, :])[nz])).sum())
    ha = -float((pa[pa > 0] * np.log(pa[pa > 0])).sum())
    hb = -float((pb[pb > 0] * np.log(pb[pb > 0])).sum())
    denom = (ha + hb) / 2
    return 1.0 if denom == 0 else mi / denom


def predicted(paths: list[str], result) -> np.ndarray:
    label = {p: i for i, c in enumerate(result.clusters) for p in c}
    nxt = len(result.clusters)
    out = []
    for p in paths:
        if p not in label:
            label[p] = nxt
            nxt += 1
        out.append(label[p])
    return np.array(out)


def duplicate_labels(paths: list[str], folder: Path) -> np.ndarray | None:
    dup = folder / "DUPLICATES.txt"
    if not dup.exists():
        return None
    names = {Path(p).relative_to(folder).as_posix(): i for i, p in enumerate(paths)}
    lab = np.arange(len(paths))
    for para in dup.read_text().split("\n\n"):  # one paragraph per group: "sha256 ...", then its files
        found = [names[w.strip()] for w in para.splitlines() if w.strip() in names]
        for i in found[1:]:
            lab[i] = lab[found[0]]
    return lab


#: The grid ``--defaults`` scores (and the test of the defaults scores on its small folder).
GRID_METHODS = ("average", "complete", "single", "ward")
GRID_SIMS = tuple(round(0.3 + 0.05 * i, 2) for i in range(13))  # 0.30 .. 0.90


def grid_scores(sets: list[tuple[str, object, np.ndarray]], methods=GRID_METHODS, sims=GRID_SIMS
                ) -> dict[tuple[str, float], dict[str, float]]:
    """ARI of every (method, sim) on every set: ``{(method, sim): {kind: ARI}}``; sets of one kind (``(kind,
    vectors, truth)``) are averaged into one score for that kind."""
    out: dict[tuple[str, float], dict[str, float]] = {}
    for method in methods:
        for s in sims:
            per_kind: dict[str, list[float]] = {}
            for kind, vec, truth in sets:
                res = cluster_vectors(vec, sim=s, method=method)
                per_kind.setdefault(kind, []).append(ari(truth, predicted(vec.paths, res)))
            out[(method, s)] = {k: float(np.mean(v)) for k, v in per_kind.items()}
    return out


def best_setting(scores: dict[tuple[str, float], dict[str, float]]) -> tuple[str, float]:
    """The (method, sim) with the highest mean ARI over the kinds; ties (within 1e-9) go to the higher worst kind,
    then to the first in grid order."""
    def key(item):
        vals = list(item[1].values())
        return (round(float(np.mean(vals)), 9), round(min(vals), 9))

    return max(scores.items(), key=key)[0]


def labelled_sets(cat: Catalog, model: str, near_folder: Path, near_limit: int) -> list[tuple[str, str, object,
                                                                                                 np.ndarray]]:
    """``(kind, name, vectors, truth)`` for each labelled folder found under $LOOKALIKE_SHARED."""
    data = SHARED / "data"
    sets = []
    if (data / "photos").exists():
        vec = load_vectors([data / "photos"], model=model, catalog=cat)
        sets.append(("objects", "UKBench objects", vec, labels_for(vec.paths, "ukbench")))
    if (data / "faces" / "celebrity").exists():
        vec = load_vectors([data / "faces" / "celebrity"], model=model, catalog=cat)
        sets.append(("people", "celebrity people", vec, labels_for(vec.paths, "celebrity")))
    if (data / "faces" / "deepface" / "master.csv").exists():
        vec = load_vectors([data / "faces" / "deepface"], model=model, catalog=cat)
        sets.append(("people", "deepface people", vec, deepface_labels(vec.paths, data / "faces" / "deepface")))
    try:
        from dupes_quality import build
    except ImportError:
        build = None
    if build is not None and (data / "photos").exists():
        if not near_folder.exists():  # built once, so the catalog's features are found again next run
            build(near_folder, near_limit)
        vec = load_vectors([near_folder], model=model, catalog=cat)
        sets.append(("near duplicates", f"edited copies ({near_limit} originals)", vec, family_labels(vec.paths)))
    return sets


def deepface_labels(paths: list[str], folder: Path) -> np.ndarray:
    """deepface's identities: the connected parts of master.csv's Yes pairs (a photo alone is its own)."""
    import csv

    index = {Path(p).name: i for i, p in enumerate(paths)}
    parent = list(range(len(paths)))

    def root(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    with open(folder / "master.csv", newline="") as f:
        for row in csv.DictReader(f):
            a, b = index.get(row["file_x"]), index.get(row["file_y"])
            if row["Decision"] == "Yes" and a is not None and b is not None:
                parent[root(a)] = root(b)
    return np.array([root(i) for i in range(len(paths))])


def family_labels(paths: list[str]) -> np.ndarray:
    """The near-duplicate families of a folder bench/dupes_quality.py's ``build`` wrote: an original is its own
    family (its bytes' sha256), an edited copy ``edits/NNNN/<stem>__<edit>`` belongs to its source's."""
    import hashlib

    sha = {}
    stem_of_family: dict[str, str] = {}
    for p in paths:
        if "/orig/" in p:
            sha[p] = hashlib.sha256(Path(p).read_bytes()).hexdigest()
            stem_of_family.setdefault(Path(p).stem, sha[p])
    labels = []
    names: dict[str, int] = {}
    for p in paths:
        fam = sha[p] if p in sha else stem_of_family[Path(p).name.split("__")[0]]
        labels.append(names.setdefault(fam, len(names)))
    return np.array(labels)


def print_defaults(cat: Catalog, model: str, near_folder: Path, near_limit: int, sims=GRID_SIMS,
                   save: Path | None = None) -> None:
    sets = labelled_sets(cat, model, near_folder, near_limit)
    for kind, name, vec, truth in sets:
        print(f"{kind:16} {name:28} {len(vec):4d} photos, {len(set(truth.tolist()))} groups")
    t = time.perf_counter()
    scores = grid_scores([(k, v, tr) for k, _n, v, tr in sets], sims=sims)
    kinds = list(dict.fromkeys(k for k, *_ in sets))
    print(f"model {model}; ARI per kind (people: mean of its sets), mean and worst over the kinds "
          f"({time.perf_counter() - t:.1f} s)")
    print(f"| method | sim | {' | '.join(kinds)} | mean | worst |")
    print("| --- | ---: |" + " ---: |" * (len(kinds) + 2))
    best = best_setting(scores)
    for (method, s), per in scores.items():
        vals = [per[k] for k in kinds]
        mark = " <- best" if (method, s) == best else ""
        print(f"| {method} | {s:.2f} | {' | '.join(f'{v:.3f}' for v in vals)} | {np.mean(vals):.3f} | "
              f"{min(vals):.3f} |{mark}")
    print(f"best: method {best[0]}, sim {best[1]:.2f}")
    if save:  # the measured table the test of the defaults reads (tests/test_organise_defaults.py)
        rows = [{"method": m, "sim": s, "ari": per} for (m, s), per in scores.items()]
        save.write_text(json.dumps({"model": model, "rule": "highest mean ARI over the kinds, ties: higher worst",
                                    "sets": [{"kind": k, "name": n, "photos": len(v),
                                              "groups": len(set(tr.tolist()))} for k, n, v, tr in sets],
                                    "best": {"method": best[0], "sim": best[1]}, "rows": rows}, indent=1) + "\n")


def run_scale(n: int, graph: bool = False) -> dict:
    vec, scenes = synthetic(n, labels=True)
    t0 = time.perf_counter()
    res = cluster_vectors(vec, sim=0.7, **({"exact_limit": 0} if graph else {}))
    sec = time.perf_counter() - t0
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    pred = predicted(vec.paths, res)
    return {"n": n, "seconds": round(sec, 1), "peak_rss_mib": round(rss), "mode": res.mode,
            "clusters": len(res.clusters), "unclustered": len(res.unclustered),
            "ari": round(ari(scenes, pred), 3), "nmi": round(nmi(scenes, pred), 3)}


def near_duplicate_rows(cat: Catalog, model: str, limit: int) -> None:
    """ARI/NMI against the near-duplicate families of issue 3's benchmark (bench/dupes_quality.py's set)."""
    try:
        from dupes_quality import build
    except ImportError:
        print("near-duplicate families: bench/dupes_quality.py not found, skipped")
        return
    with tempfile.TemporaryDirectory() as work:
        files, family, _ = build(Path(work), limit)
        vec = load_vectors([work], model=model, catalog=cat)
        fam = {str(p): f for p, f in family.items()}
        names = sorted(set(fam.values()))
        truth = np.array([names.index(fam[p]) for p in vec.paths])
        label = f"near-dupe families ({len(names)})"
        for method in ("average", "complete"):
            for s in (0.7, 0.8, 0.9):
                res = cluster_vectors(vec, sim=s, method=method)
                pred = predicted(vec.paths, res)
                print(f"{label:18} {len(vec):4d} {method:9} {res.mode:6} {'abs':9} {s:5.2f} {len(res.clusters):6d} "
                      f"{len(res.unclustered):5d} {ari(truth, pred):6.3f} {nmi(truth, pred):6.3f}")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", default="effnet")
    ap.add_argument("--catalog", default=str(Path(tempfile.gettempdir()) / "lookalike-bench" / "catalog.sqlite"))
    ap.add_argument("--sims", type=float, nargs="*", default=[0.5, 0.6, 0.7, 0.8])
    ap.add_argument("--scale", type=int, nargs="*", default=[10000, 100000])
    ap.add_argument("--dupes-limit", type=int, default=40, help="edited originals in the near-duplicate set")
    ap.add_argument("--defaults", action="store_true", help="score method x sim on every kind of labelled folder "
                    "and print the best (cluster's defaults)")
    ap.add_argument("--near-folder", type=Path, help="where --defaults builds the edited-copies set (kept, so "
                    "its features stay in the catalog)")
    ap.add_argument("--save", type=Path, help="with --defaults: write the table as JSON (bench/cluster_defaults.json)")
    ap.add_argument("--one-scale", type=int, help=argparse.SUPPRESS)
    ap.add_argument("--graph", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.one_scale:
        print(json.dumps(run_scale(args.one_scale, args.graph)))
        return

    cat = Catalog(args.catalog)
    if args.defaults:
        near = args.near_folder or Path(args.catalog).parent / f"near-dupes-{args.dupes_limit}"
        print_defaults(cat, args.model, near, args.dupes_limit, save=args.save)
        return
    sets = [("ukbench", SHARED / "data" / "photos"), ("celebrity", SHARED / "data" / "faces" / "celebrity")]
    print(f"model {args.model}; min_size 2; unclustered photos count as groups of one")
    print(f"{'labels':18} {'n':>4} {'method':9} {'mode':6} {'cut':9} {'sim':>5} {'groups':>6} {'uncl.':>5} "
          f"{'ARI':>6} {'NMI':>6} {'sec':>5}")
    for name, folder in sets:
        if not folder.exists():
            print(f"{name}: {folder} not found, skipped")
            continue
        vec = load_vectors([folder], model=args.model, catalog=cat)
        truths = [(name, labels_for(vec.paths, name))]
        dups = duplicate_labels(vec.paths, folder)
        if dups is not None:
            truths.append((f"{name}-exact-dupes", dups))
        for label, truth in truths:
            sims = args.sims if not label.endswith("dupes") else [0.95, 0.99, 1.0]
            runs = [("average", "abs", s, None) for s in sims]
            if not label.endswith("dupes"):
                runs += [(m, "abs", s, None) for m in ("complete", "single", "ward") for s in sims]
                runs += [("average", "relative", s, None) for s in sims]
                runs += [(m, "abs", s, 0) for m in ("average", "single") for s in sims]
            for method, cut, s, limit in runs:
                t = time.perf_counter()
                kw = {"exact_limit": limit} if limit is not None else {}
                res = cluster_vectors(vec, sim=s, method=method, relative=cut == "relative", **kw)
                sec = time.perf_counter() - t
                pred = predicted(vec.paths, res)
                print(f"{label:18} {len(vec):4d} {method:9} {res.mode:6} {cut:9} {s:5.2f} {len(res.clusters):6d} "
                      f"{len(res.unclustered):5d} {ari(truth, pred):6.3f} {nmi(truth, pred):6.3f} {sec:5.2f}")

    if args.dupes_limit:
        near_duplicate_rows(cat, args.model, args.dupes_limit)

    if args.scale:
        head = (f"{'n (synthetic 1280-d)':>20} {'mode':6} {'seconds':>8} {'peak RSS MiB':>12} {'groups':>7} "
                f"{'uncl.':>7} {'ARI':>6} {'NMI':>6}  (sim 0.7, average; labels: the generating scenes)")
        print("\n" + head)
        runs = [(n, False) for n in args.scale] + [(n, True) for n in args.scale if n <= 20000]
        for n, graph in runs:
            cmd = [sys.executable, __file__, "--one-scale", str(n)] + (["--graph"] if graph else [])
            proc = subprocess.run(cmd, capture_output=True, text=True)
            if proc.returncode != 0:
                print(f"{n:>20} failed: {proc.stderr.strip()[-300:]}")
                continue
            r = json.loads(proc.stdout)
            print(f"{r['n']:>20} {r['mode']:6} {r['seconds']:8.1f} {r['peak_rss_mib']:12d} {r['clusters']:7d} "
                  f"{r['unclustered']:7d} {r['ari']:6.3f} {r['nmi']:6.3f}")


if __name__ == "__main__":
    main()
