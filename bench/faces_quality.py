"""Face detection/recognition quality and speed on the real photos of ../shared/data/faces.

    python bench/faces_quality.py                # embeddings cached in a bench catalog: re-runs are fast
    python bench/faces_quality.py --fresh        # cold run into a throw-away catalog (measures faces/s)

celebrity/ (12 people x 30 photos): byte-identical copies (DUPLICATES.txt) are reduced to one file first,
so no copy can sit on both sides of a split. Folds: each fold holds 3 people out of training entirely
(strangers) and trains on the first 20 photos of each of the other 9 with the real training code (face
model on disk, calibrated threshold); the rest of their photos are the known test faces. The largest
face of each photo is its subject. Top-k is over people (a person's rank = its nearest prototype).

deepface/master.csv: 300 labelled pairs; the largest face of each photo; accuracy at the calibrated
threshold and at the best threshold, and ROC AUC.

Speed: faces per second end to end (decode, HOG, landmarks, embedding, catalog write) with a process
pool of --workers on a cold catalog (wall, and by CPU accounting: the pool is shut down after the scan so
its workers' CPU time is counted), and a per-stage breakdown on one core in CPU time (bench/faces_speed.py
has the detailed profile).
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import os
import resource
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

SHARED = Path(os.environ.get("LOOKALIKE_SHARED", ROOT.parent / "shared"))
TARGETS = {"top1": 0.99, "strangers_unknown": 0.99, "known_unknown": 0.05, "faces_per_s": 10.0}  # issue 12


def sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def auc(pos: np.ndarray, neg: np.ndarray) -> float:
    """P(distance of a same-person pair < distance of a different-person pair), ties count half."""
    pos, neg = np.asarray(pos), np.asarray(neg)
    less = (pos[:, None] < neg[None, :]).sum() + 0.5 * (pos[:, None] == neg[None, :]).sum()
    return float(less / (len(pos) * len(neg)))


def stage_times(paths: list[str], n: int = 20) -> dict[str, float]:
    from lookalike.faces.detect import get_detector
    from lookalike.faces.embed import load_face_embedder
    from lookalike.media import decode

    det, emb = get_detector("auto"), load_face_embedder()
    t = {"decode": 0.0, "detect": 0.0, "align": 0.0, "embed": 0.0}
    faces = 0
    clock = time.thread_time  # CPU time: other jobs on a shared machine do not inflate it
    det(np.asarray(decode(paths[0]).image))  # the detector loads at its first picture (0.5 s): not a stage
    for p in paths[:n]:
        t0 = clock()
        arr = np.asarray(decode(p).image)
        t1 = clock()
        found = det(arr)
        t2 = clock()
        chips = [emb.align(arr, f) for f in found]
        t3 = clock()
        if chips:
            emb.infer(np.stack(chips))
        t4 = clock()
        faces += len(chips)
        for k, v in zip(t, (t1 - t0, t2 - t1, t3 - t2, t4 - t3), strict=True):
            t[k] += v
    return {"photos": min(n, len(paths)), "faces": faces, **{f"{k}_ms_per_photo": 1000 * v / min(n, len(paths))
                                                              for k, v in t.items()},
            "embed_ms_per_face": 1000 * t["embed"] / max(1, faces)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--catalog", help="bench catalog (default: <lookalike home>/bench-faces.sqlite)")
    ap.add_argument("--fresh", action="store_true", help="use a new, empty catalog (cold timing)")
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--train", type=int, default=20, help="training photos per known person")
    ap.add_argument("--holdout", type=int, default=3, help="people held out per fold")
    args = ap.parse_args()

    t_bench = time.perf_counter()
    tmp = tempfile.TemporaryDirectory(prefix="lookalike-faces-bench-")
    os.environ["LOOKALIKE_FACES_DIR"] = os.path.join(tmp.name, "faces")  # models made here are thrown away
    from lookalike.catalog import Catalog
    from lookalike.config import home_dir
    from lookalike.faces import add_examples, scan_paths
    from lookalike.faces.recognize import Matcher
    from lookalike.faces.scan import shutdown_pool
    from lookalike.faces.store import FaceModel

    celeb = SHARED / "data" / "faces" / "celebrity"
    deep = SHARED / "data" / "faces" / "deepface"
    if not celeb.is_dir():
        sys.exit(f"no test data at {celeb} (set LOOKALIKE_SHARED)")
    cat_path = Path(tmp.name) / "cold.sqlite" if args.fresh else Path(args.catalog or home_dir() / "bench-faces.sqlite")
    cat = Catalog(cat_path)

    people = sorted(p.name for p in celeb.iterdir() if p.is_dir())
    photos: dict[str, list[str]] = {}
    seen: set[str] = set()
    dropped = 0
    for person in people:
        keep = []
        for f in sorted((celeb / person).glob("*.jpg")):
            h = sha(f)
            if h in seen:
                dropped += 1
                continue
            seen.add(h)
            keep.append(str(f))
        photos[person] = keep
    all_paths = [p for person in people for p in photos[person]]
    print(f"celebrity: {len(people)} people, {len(all_paths)} distinct photos ({dropped} byte-identical copies "
          f"dropped), catalog {cat_path}")

    # -- speed + scan of everything ----------------------------------------------------------------------
    load_before = os.getloadavg()[0]
    cpu0 = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    scanned = scan_paths(all_paths, cat, workers=args.workers)
    wall = time.perf_counter() - t0
    shutdown_pool()  # the workers' CPU time is in RUSAGE_CHILDREN once they are joined
    cpu1 = resource.getrusage(resource.RUSAGE_CHILDREN)
    worker_cpu = (cpu1.ru_utime + cpu1.ru_stime) - (cpu0.ru_utime + cpu0.ru_stime)
    load_after = os.getloadavg()[0]
    n_faces = sum(len(s.faces) for s in scanned)
    cached = sum(s.cached for s in scanned)
    by_path = {s.path: s for s in scanned}
    detected = sum(1 for s in scanned if s.faces)
    print(f"scan: {len(scanned)} photos, {n_faces} faces in {wall:.1f} s with {args.workers} processes"
          f" ({cached} from the catalog) -> {n_faces / wall:.1f} faces/s; worker CPU {worker_cpu:.1f} s; "
          f"load average {load_before:.1f} -> {load_after:.1f} (other jobs on this machine slow it)")
    cpu_rate = args.workers * n_faces / worker_cpu if worker_cpu > 0 and not cached else float("nan")
    stages = stage_times(all_paths)
    per_photo = ", ".join(f"{k[:-13]} {v:.1f}" for k, v in stages.items() if k.endswith("ms_per_photo"))
    print(f"one core, CPU ms per photo: {per_photo}; embedding {stages['embed_ms_per_face']:.1f} ms per face")

    # -- folds ---------------------------------------------------------------------------------------------
    folds = [people[i:i + args.holdout] for i in range(0, len(people), args.holdout)]
    n_top1 = n_top5 = n_known = n_known_unk = n_str = n_str_unk = n_named = 0
    fixed = {0.5: [0, 0], 0.6: [0, 0]}  # tolerance -> [known called unknown, strangers called unknown]
    thresholds = []
    t_train = 0.0
    for fi, held in enumerate(folds):
        known = [p for p in people if p not in held]
        examples = [(p, path, None) for p in known for path in photos[p][:args.train]]
        t1 = time.perf_counter()
        rep = add_examples(f"fold{fi}", examples, catalog=cat, workers=args.workers)
        t_train += time.perf_counter() - t1
        thresholds.append(rep.threshold)
        m = Matcher(FaceModel.load(f"fold{fi}"))
        for person in people:
            test = photos[person][args.train:] if person in known else photos[person]
            for path in test:
                face = by_path[path].largest()
                if face is None:
                    continue
                ranked = m.rank_labels(face.embedding)
                labels = [lab for lab, _ in ranked]
                d = ranked[0][1]
                if person in known:
                    n_known += 1
                    n_top1 += labels[0] == person
                    n_top5 += person in labels[:5]
                    n_known_unk += d > m.threshold
                    n_named += labels[0] == person and d <= m.threshold
                    for tol in fixed:
                        fixed[tol][0] += d > tol
                else:
                    n_str += 1
                    n_str_unk += d > m.threshold
                    for tol in fixed:
                        fixed[tol][1] += d > tol
        print(f"fold {fi}: held out {', '.join(held)}; trained {rep.prototypes} prototypes "
              f"({len(rep.no_face)} photos without a face, {len(rep.several_faces)} with several); "
              f"threshold {rep.threshold}")

    # -- deepface pairs ---------------------------------------------------------------------------------
    ver = {}
    if (deep / "master.csv").is_file():
        rows = list(csv.DictReader(open(deep / "master.csv")))
        imgs = sorted({r["file_x"] for r in rows} | {r["file_y"] for r in rows})
        dscan = {Path(s.path).name: s for s in scan_paths([str(deep / i) for i in imgs], cat, workers=args.workers)}
        emb = {k: s.largest().embedding for k, s in dscan.items() if s.faces}
        pos, neg, missing = [], [], 0
        for r in rows:
            if r["file_x"] not in emb or r["file_y"] not in emb:
                missing += 1
                continue
            dist = float(np.linalg.norm(emb[r["file_x"]] - emb[r["file_y"]]))
            (pos if r["Decision"] == "Yes" else neg).append(dist)
        pos_a, neg_a = np.asarray(pos), np.asarray(neg)
        t_cal = float(np.mean(thresholds))
        cands = np.unique(np.concatenate([pos_a, neg_a]))
        accs = [((pos_a <= c).sum() + (neg_a > c).sum()) / (len(pos_a) + len(neg_a)) for c in cands]
        best = int(np.argmax(accs))
        ver = {"pairs": len(pos) + len(neg), "same": len(pos), "different": len(neg), "missing": missing,
               "faces_found": f"{len(emb)}/{len(imgs)}",
               "acc_calibrated": ((pos_a <= t_cal).sum() + (neg_a > t_cal).sum()) / (len(pos_a) + len(neg_a)),
               "t_calibrated": t_cal,
               "acc_0.6": ((pos_a <= 0.6).sum() + (neg_a > 0.6).sum()) / (len(pos_a) + len(neg_a)),
               "acc_best": accs[best], "t_best": float(cands[best]), "auc": auc(pos_a, neg_a)}

    # -- table -----------------------------------------------------------------------------------------
    det_rate = detected / len(scanned)
    top1, top5 = n_top1 / n_known, n_top5 / n_known
    known_unk, str_unk = n_known_unk / n_known, n_str_unk / n_str
    fps = n_faces / wall
    print()
    print(f"{'measure':44s} {'value':>10s}  target")
    rows_out = [
        ("photos with a face detected (celebrity)", f"{det_rate:.1%}", f"{detected}/{len(scanned)}"),
        ("closed-set top-1 (known people's test faces)", f"{top1:.2%}", f">= {TARGETS['top1']:.0%}  n={n_known}"),
        ("closed-set top-5", f"{top5:.2%}", ""),
        ("known faces named right (open set, calibrated)", f"{n_named / n_known:.2%}", ""),
        ("strangers called unknown (calibrated)", f"{str_unk:.2%}",
         f">= {TARGETS['strangers_unknown']:.0%}  n={n_str}"),
        ("known faces called unknown (calibrated)", f"{known_unk:.2%}", f"<= {TARGETS['known_unknown']:.0%}"),
        ("calibrated thresholds (per fold)", " ".join(f"{t:.3f}" for t in thresholds), ""),
    ]
    for tol, (ku, su) in fixed.items():
        rows_out.append((f"  at fixed {tol}: strangers / known unknown", f"{su / n_str:.1%} / {ku / n_known:.1%}", ""))
    if ver:
        rows_out += [
            ("deepface pairs: faces found", ver["faces_found"], f"{ver['pairs']} pairs ({ver['same']} same)"),
            ("deepface verification acc @ calibrated", f"{ver['acc_calibrated']:.1%}", f"t={ver['t_calibrated']:.3f}"),
            ("deepface verification acc @ 0.6", f"{ver['acc_0.6']:.1%}", ""),
            ("deepface verification acc @ best t", f"{ver['acc_best']:.1%}", f"t={ver['t_best']:.3f}"),
            ("deepface verification ROC AUC", f"{ver['auc']:.4f}", ""),
        ]
    rows_out += [
        (f"faces/s end to end, {args.workers} processes", f"{fps:.1f}",
         f">= {TARGETS['faces_per_s']:.0f}" + ("  (from cache: use --fresh)" if cached else "")),
        (f"  CPU-bound rate: {args.workers} cores / worker CPU per face", f"{cpu_rate:.1f}",
         "what the pool reaches on idle cores (incl. start-up)"),
        ("one core: decode / detect / align CPU ms per photo",
         f"{stages['decode_ms_per_photo']:.0f}/{stages['detect_ms_per_photo']:.0f}/{stages['align_ms_per_photo']:.1f}",
         ""),
        ("one core: embedding CPU ms per face", f"{stages['embed_ms_per_face']:.0f}", ""),
        ("training time, all folds (cached embeddings)", f"{t_train:.1f} s", ""),
    ]
    for name, val, tgt in rows_out:
        print(f"{name:44s} {val:>10s}  {tgt}")
    print(f"bench wall time {time.perf_counter() - t_bench:.0f} s; load average now "
          + " ".join(f"{x:.1f}" for x in os.getloadavg()))
    tmp.cleanup()


if __name__ == "__main__":
    main()
