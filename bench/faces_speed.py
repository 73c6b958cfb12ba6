"""Faces speed: a cold scan of the shared per-person photos, in wall time and by CPU accounting.

    python bench/faces_speed.py                     # 2 workers, a throw-away catalog
    python bench/faces_speed.py --workers 1 --profile 50

Prints faces/s in wall time, the CPU seconds of this process and of its workers (getrusage, the pool shut
down before it is read), the rate that CPU time gives on idle cores (workers x faces / CPU seconds), the
share of a core the run got (CPU / wall), the load average before and after, and, with ``--profile N``,
where one core's time goes (CPU time per stage: decode, each HOG pass, landmarks + chip, embedding) on N
photos. On a shared machine the wall figure is what the scheduler gave this run; the CPU figures are not
affected by other jobs (beyond cache sharing).
"""

from __future__ import annotations

import argparse
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


def photos() -> list[str]:
    celeb = SHARED / "data" / "faces" / "celebrity"
    if not celeb.is_dir():
        sys.exit(f"no test data at {celeb} (set LOOKALIKE_SHARED)")
    seen: set[bytes] = set()
    out = []
    for p in sorted(celeb.glob("*/*.jpg")):
        data = p.read_bytes()
        if data not in seen:  # the byte-identical copies of DUPLICATES.txt, once
            seen.add(data)
            out.append(str(p))
    return out


def profile(paths: list[str]) -> None:
    from lookalike.faces.detect import HogDetector, _resized
    from lookalike.faces.embed import load_face_embedder
    from lookalike.media import decode

    emb, hog = load_face_embedder(), HogDetector()
    det = hog.load()
    t = dict.fromkeys(("decode", "hog first pass (reduced)", "hog other passes", "landmarks + chip", "embedding"),
                      0.0)
    faces = later = 0
    clock = time.thread_time
    for p in paths:
        c0 = clock()
        arr = np.asarray(decode(p).image)
        t["decode"] += clock() - c0
        found = hog(arr)  # warm, untimed: gives the boxes; the passes are timed one by one below
        for i, (scale, up) in enumerate(hog.passes(*arr.shape[:2])):
            c1 = clock()
            rects, _, _ = det.run(_resized(arr, scale), up, 0.0)
            reduced = i == 0 and len(hog.passes(*arr.shape[:2])) > hog.max_upsample + 1
            t["hog first pass (reduced)" if reduced else "hog other passes"] += clock() - c1
            later += not reduced
            if rects:
                break
        c2 = clock()
        chips = [emb.align(arr, f) for f in found]
        c3 = clock()
        if chips:
            emb.infer(np.stack(chips))
        t["landmarks + chip"] += c3 - c2
        t["embedding"] += clock() - c3
        faces += len(chips)
    total = sum(t.values())
    print(f"profile, one core, CPU time (thread_time) on {len(paths)} photos, {faces} faces "
          f"({later} passes after the first):")
    for k, v in t.items():
        print(f"  {k:26s} {1000 * v / len(paths):6.1f} ms/photo  {100 * v / total:5.1f}%")
    print(f"  {'total':26s} {1000 * total / max(1, faces):6.1f} ms/face -> {faces / total:.1f} faces/s per core")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--limit", type=int, default=0, help="first N photos only (0: all)")
    ap.add_argument("--profile", type=int, default=0, help="also profile the stages on N photos, one core")
    args = ap.parse_args()
    from lookalike.catalog import Catalog
    from lookalike.faces import scan_paths
    from lookalike.faces.scan import shutdown_pool

    paths = photos()[:args.limit or None]
    with tempfile.TemporaryDirectory(prefix="lookalike-faces-speed-") as tmp:
        cat = Catalog(Path(tmp) / "cold.sqlite")
        load0 = os.getloadavg()
        s0, c0 = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
        t0 = time.perf_counter()
        res = scan_paths(paths, cat, workers=args.workers)
        wall = time.perf_counter() - t0
        shutdown_pool()  # workers' CPU time is counted once they are joined
        s1, c1 = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
        load1 = os.getloadavg()
    own = s1.ru_utime + s1.ru_stime - s0.ru_utime - s0.ru_stime
    kids = c1.ru_utime + c1.ru_stime - c0.ru_utime - c0.ru_stime
    cpu = own + kids
    faces = sum(len(r.faces) for r in res)
    errors = sum(bool(r.error) for r in res)
    print(f"{len(paths)} photos, {faces} faces ({errors} errors), {args.workers} worker(s), cold catalog")
    print(f"wall {wall:.1f} s -> {faces / wall:.1f} faces/s; CPU {cpu:.1f} s (this process {own:.1f}, workers "
          f"{kids:.1f}) = {1000 * cpu / faces:.0f} ms/face -> {max(1, args.workers) * faces / cpu:.1f} faces/s "
          f"on {max(1, args.workers)} idle core(s); share of the machine this run got: {cpu / wall:.2f} cores")
    print(f"load average before {load0[0]:.2f} {load0[1]:.2f}, after {load1[0]:.2f} {load1[1]:.2f} "
          f"(2 cores; other jobs slow the wall figure)")
    if args.profile:
        profile(paths[:args.profile])


if __name__ == "__main__":
    main()
