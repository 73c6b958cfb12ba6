"""Indexing speed against its floors, measured in one run on the same files.

    python bench/index_speed.py FOLDER            # the images of FOLDER
    python bench/index_speed.py --make 2000       # 2,000 real photos made from ../shared/data/photos

Prints, as images/s and as ratios:
  decode floor   plain Pillow reduced-size decode (draft) to RGB arrays, on all cores (threads)
  hash indexing  `index -m phash` into a fresh catalog, vs the decode floor at the size pHash needs
  model only     effnet inference on pre-decoded, pre-resized batches (the model's own limit)
  effnet index   `index -m effnet` end to end into a fresh catalog, vs model only
  re-run         the same index again with nothing changed, vs the first effnet run
and the peak resident memory of the process. Targets (issue 2): hash >= 0.8x floor, effnet >= 0.8x
model only, unchanged re-run <= 2% of the first run.
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from lookalike.catalog import Catalog  # noqa: E402
from lookalike.config import cpu_count  # noqa: E402
from lookalike.features import load_extractor  # noqa: E402
from lookalike.index import index_paths  # noqa: E402
from lookalike.media import decode, iter_images  # noqa: E402

SHARED = Path(os.environ.get("LOOKALIKE_SHARED", ROOT.parent / "shared"))


def make_photos(n: int, dest: Path) -> list[str]:
    """n distinct real photos: the shared UKBench photos re-encoded with different crops and qualities."""
    src = sorted((SHARED / "data" / "photos").glob("*.jpg"))
    if not src:
        sys.exit(f"no photos in {SHARED / 'data' / 'photos'}; give a FOLDER instead")
    dest.mkdir(parents=True, exist_ok=True)
    out = []
    for i in range(n):
        img = Image.open(src[i % len(src)]).convert("RGB")
        v = i // len(src)
        if v:
            w, h = img.size
            img = img.crop((v % 7, v % 5, w - v % 3, h - v % 4))
        p = dest / f"photo_{i:05d}.jpg"
        img.save(p, quality=80 + v % 15)
        out.append(str(p))
    return out


def pillow_floor(paths: list[str], side: int, workers: int) -> float:
    def one(p: str) -> int:
        with Image.open(p) as im:
            im.draft("RGB", (side, side))
            return np.asarray(im.convert("RGB")).shape[0]

    t = time.perf_counter()
    with ThreadPoolExecutor(workers) as pool:
        list(pool.map(one, paths))
    return len(paths) / (time.perf_counter() - t)


def model_only(paths: list[str], batch: int = 16) -> float:
    ext = load_extractor("effnet")
    sample = paths[: min(len(paths), 256)]
    prepared = np.stack([ext.prepare(decode(p, min_side=224).image) for p in sample])
    ext.infer(prepared[:batch])  # warm-up
    t = time.perf_counter()
    for i in range(0, len(prepared), batch):
        ext.infer(prepared[i : i + batch])
    return len(prepared) / (time.perf_counter() - t)


def timed_index(cat: Catalog, folder: str, models: list[str]) -> tuple[float, object]:
    t = time.perf_counter()
    rep = index_paths([folder], cat, models)
    return time.perf_counter() - t, rep


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("folder", nargs="?", help="folder of images (default: --make)")
    ap.add_argument("--make", type=int, default=0, help="make this many photos from the shared UKBench set")
    ap.add_argument("--skip-effnet", action="store_true", help="hash figures only")
    args = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="lookalike-bench-"))
    try:
        if args.folder:
            folder = os.path.abspath(args.folder)
            paths = list(iter_images([folder]))
        else:
            folder = str(tmp / "photos")
            paths = make_photos(args.make or 2000, Path(folder))
        workers = cpu_count()
        n = len(paths)
        print(f"{n} images in {folder}; {workers} cores; load average {os.getloadavg()[0]:.2f}")
        # read every file once so that all figures see a warm page cache
        for p in paths:
            Path(p).read_bytes()
        rows = []
        # Each ratio's denominator is measured just before and just after its numerator and averaged,
        # so that a drift in machine load during the run biases neither side.
        floor224 = pillow_floor(paths, 224, workers)
        floor64_before = pillow_floor(paths, 64, workers)
        cat = Catalog(tmp / "hash.sqlite")
        secs, rep = timed_index(cat, folder, ["phash"])
        hash_rate = n / secs
        floor64 = (floor64_before + pillow_floor(paths, 64, workers)) / 2
        rows.append(("decode floor (draft to >=224 px)", floor224, ""))
        rows.append(("decode floor (draft to >=64 px)", floor64, "mean of before/after"))
        rows.append(("hash indexing (phash)", hash_rate, f"{hash_rate / floor64:.2f}x floor(64)"))
        hash_rerun, _ = timed_index(cat, folder, ["phash"])
        rows.append(("hash re-run, nothing changed", n / hash_rerun, f"{hash_rerun / secs:.1%} of first run"))
        if not args.skip_effnet:
            mo_before = model_only(paths)
            cat = Catalog(tmp / "effnet.sqlite")
            secs_e, rep = timed_index(cat, folder, ["effnet"])
            rate_e = n / secs_e
            mo = (mo_before + model_only(paths)) / 2
            rows.append(("effnet model only (batch 16)", mo, "mean of before/after"))
            rows.append(("effnet indexing end to end", rate_e, f"{rate_e / mo:.2f}x model only"))
            rerun, rep2 = timed_index(cat, folder, ["effnet"])
            assert rep2.unchanged == n - len(rep2.failed)
            rows.append(("effnet re-run, nothing changed", n / rerun, f"{rerun / secs_e:.2%} of first run"))
        print(f"{'figure':40s} {'images/s':>10s}  ratio")
        for name, rate, ratio in rows:
            print(f"{name:40s} {rate:10.1f}  {ratio}")
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        print(f"peak resident memory: {peak:.0f} MiB; load average after: {os.getloadavg()[0]:.2f}")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
