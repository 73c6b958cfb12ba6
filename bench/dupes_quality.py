"""Copydays-style quality benchmark for `lookalike dupes`.

Builds a test set from the real photos in ../shared/data (override with $LOOKALIKE_SHARED):
UKBench objects (4 photos each: the first is edited, the other 3 stay as "same object, other photo"
distractors) and celebrity faces (edited originals, the rest as distractors, plus the byte-identical
copies listed in DUPLICATES.txt). Every original gets the edited copies of tests/photo_edits.py.
Ground truth by construction: files derived from the same bytes form a family.

Prints pair precision/recall per tier and per edit at the default thresholds, and what each stage
(plain pHash, flip/rotation-invariant pHash, CNN strict/generous, candidates, verification) finds.

    python bench/dupes_quality.py --limit 200          # 200 edited originals (default)
    python bench/dupes_quality.py --set qualities --rerun   # 2,000 files: 400 photos x 5 JPEG qualities

``--set qualities`` is bench/peers.py's set: the 400 UKBench photos (640x480) each saved at JPEG quality
95, 85, 70, 50 and 30; the five versions of one photo are one family. ``--rerun`` (issue 12) times the
near tier cold (fresh catalog, indexing included), then warm (same catalog: features and verdicts cached),
and ``--tier exact`` cold (a fresh catalog) and warm; CPU includes the verification processes.
"""

from __future__ import annotations

import argparse
import hashlib
import itertools
import os
import resource
import shutil
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))
sys.path.insert(0, str(ROOT / "tests"))  # photo_edits: the edited copies (test-only code, not in the package)

from lookalike.catalog import Catalog  # noqa: E402
from lookalike.dupes import find_duplicates  # noqa: E402
from lookalike.dupes import finder as _finder  # noqa: E402
from lookalike.dupes import verify as _verify  # noqa: E402
from lookalike.dupes.verify import Verifier  # noqa: E402
from lookalike.features import load_extractor  # noqa: E402
from lookalike.index import index_paths  # noqa: E402
from lookalike.search import hamming_distances  # noqa: E402
from photo_edits import EDITS, write_edits  # noqa: E402

SHARED = Path(os.environ.get("LOOKALIKE_SHARED", ROOT.parent / "shared"))
DATA = SHARED / "data"


class RecordingVerifier(Verifier):
    """The finder's verifier, remembering the pairs whose correlation passed but whose geometry said
    "another shot" (the retake test of dupes/verify.py), to count them against the truth."""

    retakes: list[frozenset] = []

    def verify(self, i, j, orientations=(False, True), variant=None):
        v = super().verify(i, j, orientations, variant)
        if not v.ok and v.residual is not None and v.residual.retake:
            RecordingVerifier.retakes.append(frozenset((self.paths[i], self.paths[j])))
        return v


GEOM_COST = [0, 0.0]  # calls of the geometric test, CPU seconds spent in it


def _timed_track_residual(*args, _inner=_verify._track_residual):
    t = time.process_time()
    try:
        return _inner(*args)
    finally:
        GEOM_COST[0] += 1
        GEOM_COST[1] += time.process_time() - t


QUALITIES = (95, 85, 70, 50, 30)


def build_qualities(work: Path, n: int) -> tuple[list[Path], dict[Path, str], dict[Path, str]]:
    """n UKBench photos, each saved at the five JPEG qualities (bench/peers.py's "qualities" set)."""
    from PIL import Image

    files: list[Path] = []
    family: dict[Path, str] = {}
    edit: dict[Path, str] = {}
    for src in sorted((DATA / "photos").glob("ukbench*.jpg"))[:n]:
        fam = hashlib.sha256(src.read_bytes()).hexdigest()
        with Image.open(src) as im:
            rgb = im.convert("RGB")
        for q in QUALITIES:
            dest = work / f"q{q}" / src.name
            dest.parent.mkdir(parents=True, exist_ok=True)
            rgb.save(dest, "JPEG", quality=q)
            files.append(dest)
            family[dest], edit[dest] = fam, f"q{q}"
    return files, family, edit


def cpu_now() -> float:
    """CPU seconds (user + sys) of this process and its finished children (the verification pool)."""
    me, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return me.ru_utime + me.ru_stime + kids.ru_utime + kids.ru_stime


def timed_run(folder: Path, catalog: Catalog, tier: str, workers: int | None) -> tuple:
    """(report, wall seconds, CPU seconds, 1-minute load average at the end)."""
    t, c = time.perf_counter(), cpu_now()
    rep = find_duplicates([folder], tier=tier, catalog=catalog, workers=workers)
    return rep, time.perf_counter() - t, cpu_now() - c, os.getloadavg()[0]


def build(work: Path, limit: int) -> tuple[list[Path], dict[Path, str], dict[Path, str]]:
    """Copy originals + distractors and write edits. Returns files, family (sha of the source bytes)
    and edit name ("orig" for untouched files) per file."""
    n_ukb = (limit + 1) // 2
    n_cel = limit - n_ukb
    ukb = sorted((DATA / "photos").glob("ukbench*.jpg"))[: 4 * n_ukb]
    cel_all = sorted((DATA / "faces" / "celebrity").glob("*/*.jpg"))
    sha = {p: hashlib.sha256(p.read_bytes()).hexdigest() for p in cel_all}
    seen: set[str] = set()
    cel_orig = []
    for p in cel_all:
        if sha[p] not in seen:
            seen.add(sha[p])
            cel_orig.append(p)
    step = max(1, len(cel_orig) // max(1, n_cel))
    cel_edit = cel_orig[::step][:n_cel]
    files: list[Path] = []
    family: dict[Path, str] = {}
    edit: dict[Path, str] = {}
    to_edit = [p for i, p in enumerate(ukb) if i % 4 == 0] + cel_edit
    sources = ukb + cel_all
    for src in sources:
        dest = work / "orig" / src.parent.name / src.name
        dest.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(src, dest)
        files.append(dest)
        family[dest] = hashlib.sha256(src.read_bytes()).hexdigest()
        edit[dest] = "orig"
    for k, src in enumerate(to_edit):
        out = work / "edits" / f"{k:04d}"
        for name, path in write_edits(src, out).items():
            files.append(path)
            family[path] = hashlib.sha256(src.read_bytes()).hexdigest()
            edit[path] = name
    return files, family, edit


#: Pairs of source photos that are near-duplicates of each other already (found by this benchmark,
#: checked by eye): they join one family. Tom Hanks 023 is a tighter crop of the same shot as 018;
#: Robert Downey Jr 011 is a tight crop of 023, enlarged (same expression, same people behind).
NATURAL_NEAR = [("Tom_Hanks/018_b7231fad.jpg", "Tom_Hanks/023_2029f686.jpg"),
                ("Robert_Downey_Jr/023_51dce41c.jpg", "Robert_Downey_Jr/011_da108a07.jpg")]


def truth_pairs(files: list[Path], family: dict, edit: dict, tier: str) -> set[frozenset]:
    """True pairs at a tier. similar: near pairs plus other photos of the same UKBench object."""
    fam: dict[str, list[Path]] = defaultdict(list)
    merged = _natural_merges(files, family, edit) if tier in ("near", "similar") else {}
    if tier == "similar":
        for f in files:
            if edit[f] == "orig" and f.name.startswith("ukbench"):
                merged[family[f]] = f"ukbench-object-{int(f.stem[7:12]) // 4}"
    for f in files:
        fam[merged.get(family[f], family[f])].append(f)
    pixel_edits = {n for n, (t, _, _) in EDITS.items() if t == "pixel"} | {"orig"}
    out = set()
    for members in fam.values():
        for a, b in itertools.combinations(members, 2):
            both_orig = edit[a] == "orig" and edit[b] == "orig"
            if tier == "exact" and not both_orig:
                continue
            if tier == "pixel" and not (edit[a] in pixel_edits and edit[b] in pixel_edits):
                continue
            out.add(frozenset((str(a), str(b))))
    return out


def _natural_merges(files: list[Path], family: dict, edit: dict) -> dict[str, str]:
    by_name = {f"{f.parent.name}/{f.name}": family[f] for f in files if edit[f] == "orig"}
    return {by_name[b]: by_name[a] for a, b in NATURAL_NEAR if a in by_name and b in by_name}


def group_pairs(groups: list[list[str]]) -> set[frozenset]:
    return {frozenset(p) for g in groups for p in itertools.combinations(g, 2)}


def pr(pred: set, truth: set) -> tuple[float, float, int, int]:
    tp = len(pred & truth)
    return (tp / len(pred) if pred else 1.0), (tp / len(truth) if truth else 1.0), len(pred) - tp, len(truth) - tp


def edit_recall(pred: set, files: list[Path], family: dict, edit: dict) -> dict[str, float]:
    """Per edit: share of (original, edited copy) pairs found."""
    orig_of = {family[f]: str(f) for f in files if edit[f] == "orig"}
    hit: dict[str, list[bool]] = defaultdict(list)
    for f in files:
        if edit[f] != "orig":
            hit[edit[f]].append(frozenset((orig_of[family[f]], str(f))) in pred)
    return {k: float(np.mean(v)) for k, v in hit.items()}


def stage_pairs(cat: Catalog, paths: list[str]) -> dict[str, set[frozenset]]:
    """Pairs each single signal finds on its own (all pairs computed: fine at benchmark size)."""
    out = {}
    for model in ("phash", "dihash", "effnet"):
        ext = load_extractor(model)
        have, mat = cat.feature_matrix(paths, ext.id, ext.version, ext.kind)
        assert len(have) == len(paths)
        if model == "phash":
            d = hamming_distances(mat, mat)
            out["pHash <= 10 bits (plain)"] = _pairs(paths, d <= 10)
        elif model == "dihash":
            d = np.min([hamming_distances(mat[:, :1], np.ascontiguousarray(mat[:, v : v + 1]))
                        for v in range(8)], axis=0)
            out["dihedral pHash <= 10 bits"] = _pairs(paths, d <= 10)
        else:
            m = np.asarray(mat, dtype=np.float32)
            s = m @ m.T
            out["CNN cosine >= 0.90 (strict)"] = _pairs(paths, s >= 0.90)
            out["CNN cosine >= 0.50 (generous)"] = _pairs(paths, s >= 0.50)
    return out


def _pairs(paths: list[str], mask: np.ndarray) -> set[frozenset]:
    i, j = np.nonzero(np.triu(mask, 1))
    return {frozenset((paths[a], paths[b])) for a, b in zip(i.tolist(), j.tolist(), strict=True)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--limit", type=int, default=200, help="edited originals (half UKBench, half faces)")
    ap.add_argument("--work", type=Path, help="working folder (default: a temporary one, removed)")
    ap.add_argument("--similar", action="store_true", help="also run the similar tier")
    ap.add_argument("--show-errors", type=int, default=5, help="print this many wrong pairs per tier")
    ap.add_argument("--set", choices=("edits", "qualities"), default="edits", dest="which",
                    help="edits: originals and their edited copies (default); qualities: 5 JPEG qualities")
    ap.add_argument("--photos", type=int, default=400, help="--set qualities: photos (x5 files)")
    ap.add_argument("--rerun", action="store_true", help="time cold / warm near and exact runs (issue 12)")
    ap.add_argument("--workers", type=int, default=os.cpu_count() or 1,
                    help="verification processes (default: every core)")
    args = ap.parse_args()
    if not DATA.is_dir():
        sys.exit(f"shared data not found at {DATA}; set LOOKALIKE_SHARED")
    tmp = Path(tempfile.mkdtemp(prefix="lookalike-dupes-bench-")) if args.work is None else args.work
    os.environ.setdefault("LOOKALIKE_HOME", str(tmp / "home"))
    try:
        t0 = time.perf_counter()
        if args.which == "qualities":
            files, family, edit = build_qualities(tmp / "set", args.photos)
            print(f"test set: {len(files)} files, {args.photos} photos x {len(QUALITIES)} JPEG qualities "
                  f"({time.perf_counter() - t0:.1f}s to build)")
        else:
            files, family, edit = build(tmp / "set", args.limit)
            print(f"test set: {len(files)} files, {args.limit} edited originals x {len(EDITS)} edits "
                  f"({time.perf_counter() - t0:.1f}s to build)")
        cat = Catalog(tmp / "catalog.sqlite")
        results = {}
        tiers = ["exact", "pixel", "near"] + (["similar"] if args.similar else [])
        _finder.Verifier = RecordingVerifier
        _verify._track_residual = _timed_track_residual
        for tier in ("near", *[t for t in tiers if t != "near"]):  # near first: it indexes everything
            RecordingVerifier.retakes = []
            cpu0 = cpu_now()
            t1, c1 = time.perf_counter(), time.process_time()
            rep = find_duplicates([tmp / "set"], tier=tier, catalog=cat, workers=args.workers)
            if tier == "near":
                near_retakes, near_cpu = set(RecordingVerifier.retakes), time.process_time() - c1
                geom_calls, geom_cpu = GEOM_COST
                timing = [("near, cold (fresh catalog)", rep, time.perf_counter() - t1, cpu_now() - cpu0,
                           os.getloadavg()[0])]
                if args.rerun:
                    timing.append(("near, warm re-run", *timed_run(tmp / "set", cat, "near", args.workers)))
                    fresh = Catalog(tmp / "exact.sqlite")
                    timing.append(("exact, cold (fresh catalog)",
                                   *timed_run(tmp / "set", fresh, "exact", args.workers)))
                    timing.append(("exact, warm re-run", *timed_run(tmp / "set", fresh, "exact", args.workers)))
            secs = time.perf_counter() - t1
            groups = [g.paths for g in rep.groups]
            results[tier] = (group_pairs(groups), secs, rep)
        print("\n## Pair precision / recall per tier (default thresholds)")
        print("| tier | precision | recall | false pairs | missed pairs | groups | seconds |")
        print("|---|---|---|---|---|---|---|")
        for tier in tiers:
            pred, secs, rep = results[tier]
            truth = truth_pairs(files, family, edit, tier)
            p, r, fp, fn = pr(pred, truth)
            print(f"| {tier} | {p:.4f} | {r:.4f} | {fp} | {fn} | {len(rep.groups)} | {secs:.1f} |")
        near_pred, _, near_rep = results["near"]
        print(f"\nnear-tier stats: {near_rep.stats}")
        print("\n## Cold and warm runs (wall and CPU seconds; CPU includes the verification processes)")
        print("| run | wall s | CPU s | load | verified | cached | decoded | stats |")
        print("|---|---:|---:|---:|---:|---:|---:|---|")
        for name, r, wall, cpu, load in timing:
            st = r.stats
            extra = {k: st[k] for k in ("unique_size", "fast_path", "read_partial", "read_full", "index_s",
                                         "verify_s", "group_s") if k in st}
            print(f"| {name} | {wall:.1f} | {cpu:.1f} | {load:.1f} | {st.get('verified', 0)} | "
                  f"{st.get('cached', 0)} | {st.get('decoded', 0)} | {extra} |")
        if len(timing) > 1:
            print(f"warm / cold: wall {timing[1][2] / timing[0][2]:.3f}, CPU {timing[1][3] / timing[0][3]:.3f}; "
                  f"warm groups identical to cold: "
                  f"{[g.to_json() for g in timing[1][1].groups] == [g.to_json() for g in timing[0][1].groups]}")
        if args.which == "qualities":
            return
        near_truth = truth_pairs(files, family, edit, "near")
        print(f"geometric test (verify._track_residual): {len(near_retakes)} pairs passed the correlation but "
              f"were rejected as another shot; {len(near_retakes & near_truth)} of them are true pairs; "
              f"{geom_calls} calls, {geom_cpu:.1f} s CPU of the near tier's {near_cpu:.1f} s CPU (this process; "
              "pairs verified in the worker processes are not seen here: --workers 1 to count them all)")
        for pair in sorted(near_retakes & near_truth, key=sorted)[: args.show_errors]:
            a, b = sorted(pair)
            print(f"  true pair rejected as a retake: {os.path.relpath(a, tmp)} ~ {os.path.relpath(b, tmp)}")
        print("\n## Near tier: recall per edit (original <-> edited copy in one group)")
        rec = edit_recall(near_pred, files, family, edit)
        print("| edit | " + " | ".join(rec) + " |")
        print("|---|" + "---|" * len(rec))
        print("| recall | " + " | ".join(f"{v:.3f}" for v in rec.values()) + " |")

        print("\n## What each stage finds alone (pairs vs near-tier truth)")
        truth = truth_pairs(files, family, edit, "near")
        paths = [str(f) for f in files]
        index_paths(paths, cat, ["phash"])
        stages = stage_pairs(cat, paths)
        names = list(rec)
        print("| stage | precision | recall | " + " | ".join(names) + " |")
        print("|---|---|---|" + "---|" * len(names))
        for name, pairs in stages.items():
            p, r, _, _ = pr(pairs, truth)
            er = edit_recall(pairs, files, family, edit)
            print(f"| {name} | {p:.4f} | {r:.4f} | " + " | ".join(f"{er[n]:.2f}" for n in names) + " |")
        p, r, _, _ = pr(near_pred, truth)
        print(f"| full pipeline (near tier) | {p:.4f} | {r:.4f} | " + " | ".join(f"{rec[n]:.2f}" for n in names) + " |")
        for tier in tiers:
            pred = results[tier][0]
            t = truth_pairs(files, family, edit, tier)
            wrong = sorted(pred - t, key=sorted)[: args.show_errors]
            missed = sorted(t - pred, key=sorted)[: args.show_errors]
            for kind, pairs in (("false", wrong), ("missed", missed)):
                for pair in pairs:
                    a, b = sorted(pair)
                    print(f"{tier} {kind}: {os.path.relpath(a, tmp)} ~ {os.path.relpath(b, tmp)}")
        print("\n## Near tier: wrong merges by source photo (pairs)")
        t = truth_pairs(files, family, edit, "near")
        stem = {str(f): family[f] for f in files}
        name = {family[f]: f"{f.parent.name}/{f.name}" for f in files if edit[f] == "orig"}
        merges: dict[tuple, int] = defaultdict(int)
        for pair in results["near"][0] - t:
            a, b = sorted(name[stem[p]] for p in pair)
            merges[(a, b)] += 1
        for (a, b), n in sorted(merges.items(), key=lambda kv: -kv[1]):
            print(f"- {a} ~ {b}: {n}")
        print(f"\ntotal {time.perf_counter() - t0:.1f}s")
    finally:
        if args.work is None:
            shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
