"""Indexing speed against its floors, measured in one run on the same files.

    python bench/index_speed.py FOLDER            # the images of FOLDER
    python bench/index_speed.py --make 2000       # 2,000 real photos made from ../shared/data/photos
    python bench/index_speed.py --real-size 300 --heic 20   # 12 MP camera JPEGs (+ HEICs), bench/realsize.py

Prints, as images/s and as ratios:
  decode floor   the bare decoder to RGB arrays at the size indexing asks for, on all cores (threads):
                 the fastest one (simplejpeg: libjpeg-turbo DCT scaling) and Pillow's draft mode
  hash indexing  `index -m phash` into a fresh catalog, vs the fastest decode floor at the size pHash needs.
                 Each indexing figure is given for the paths of --index-path, back to back on the same files
                 and then again in reverse order (each figure the mean of its two runs):
                 "processes" (lookalike.index.pool's worker processes), "threads" (the decode threads) and
                 "before" (the threads, reading files as lookalike did before issue 12)
  model only     effnet inference on pre-decoded, pre-resized batches (the model's own limit)
  bound          1 / (1/decode floor(224) + 1/model only): decoding and inference sharing the same cores
  effnet index   `index -m effnet` end to end into a fresh catalog, vs model only and vs the bound
  re-run         the same index again with nothing changed, vs the first effnet run
  CPU accounting CPU ms per image, one thread, of each decoder and of the model, against lookalike's own CPU
                 per image while indexing (all its threads, and its index worker processes): the same ratios,
                 robust to other load. The worker pool is started before the timed runs (once per process,
                 as in any long-lived process); its start is printed on its own line
  HEIC           (--heic) pillow-heif full decode and reduced decode (embedded thumbnail) floors, and
                 hash / effnet indexing of the HEICs
and the peak resident memory of the process. Targets: issue 2: hash >= 0.8x floor, effnet >= 0.8x model
only, unchanged re-run <= 2% of the first run; issue 12 (12 MP JPEGs): effnet >= 0.9x the bound with the
fastest decoder's floor, hash >= 0.8x that floor.
"""

from __future__ import annotations

import argparse
import importlib
import io
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

sys.path.insert(0, str(ROOT / "bench"))

from lookalike.catalog import Catalog  # noqa: E402
from lookalike.config import cpu_count  # noqa: E402
from lookalike.features import load_extractor  # noqa: E402
from lookalike.index import index_paths, pool  # noqa: E402
from lookalike.media import decode, iter_images  # noqa: E402
from lookalike.media import files as files_module  # noqa: E402
from realsize import real_size_heics, real_size_jpegs  # noqa: E402

try:
    import simplejpeg
except ImportError:  # the fast floor is then not measured
    simplejpeg = None

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


def _draft_size(w: int, h: int, side: int) -> tuple[int, int]:
    """The size Pillow's draft mode (and so lookalike's decode) gives a w x h JPEG for ``side``."""
    scale = min(w // side, h // side)
    s = next(f for f in (8, 4, 2, 1) if scale >= f)
    return (w + s - 1) // s, (h + s - 1) // s


def _threaded_rate(fn, paths: list[str], workers: int) -> float:
    t = time.perf_counter()
    with ThreadPoolExecutor(workers) as pool:
        list(pool.map(fn, paths))
    return len(paths) / (time.perf_counter() - t)


def pillow_floor(paths: list[str], side: int | None, workers: int) -> float:
    """Pillow (draft mode for JPEG and HEIC; HEIC through pillow-heif's plugin) to an RGB array."""
    def one(p: str) -> int:
        with Image.open(p) as im:
            if side:
                im.draft("RGB", (side, side))
            return np.asarray(im.convert("RGB")).shape[0]

    return _threaded_rate(one, paths, workers)


def simplejpeg_floor(paths: list[str], side: int, workers: int) -> float | None:
    """simplejpeg (libjpeg-turbo DCT scaling) straight to the size lookalike's decode asks for."""
    if simplejpeg is None:
        return None

    def one(p: str) -> int:
        data = Path(p).read_bytes()
        h, w, _, _ = simplejpeg.decode_jpeg_header(data)
        tw, th = _draft_size(w, h, side)
        return simplejpeg.decode_jpeg(data, colorspace="RGB", min_width=tw, min_height=th).shape[0]

    return _threaded_rate(one, paths, workers)


def _head(path: str) -> bytes:
    with open(path, "rb") as f:
        return f.read(3)


def fastest_floor(paths: list[str], side: int, workers: int) -> tuple[float, str]:
    """(rate, decoder name) of the fastest decoder for these files at ``side``: simplejpeg for JPEGs."""
    if simplejpeg is not None and all(_head(p) == b"\xff\xd8\xff" for p in paths):
        return simplejpeg_floor(paths, side, workers), "simplejpeg"
    return pillow_floor(paths, side, workers), "pillow"


def model_only(paths: list[str], batch: int = 16) -> float:
    ext = load_extractor("effnet")
    sample = paths[: min(len(paths), 256)]
    prepared = np.stack([ext.prepare(decode(p, min_side=224).image) for p in sample])
    ext.infer(prepared[:batch])  # warm-up
    t = time.perf_counter()
    for i in range(0, len(prepared), batch):
        ext.infer(prepared[i : i + batch])
    return len(prepared) / (time.perf_counter() - t)


INDEX_CPU: list[float] = []  # CPU seconds (this process's threads and the index workers) of each timed_index


def cpu_now() -> float:
    """CPU seconds so far of this process (all threads) and of the index worker processes alive now."""
    total = time.process_time()
    tick = os.sysconf("SC_CLK_TCK")
    for pid in pool.worker_pids():
        try:
            with open(f"/proc/{pid}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
            total += (int(fields[11]) + int(fields[12])) / tick  # utime, stime
        except (OSError, IndexError, ValueError):
            pass
    return total


def start_pool() -> tuple[float, float]:
    """Start the index worker pool now (wall seconds, CPU seconds of this process and the workers)."""
    t, c = time.perf_counter(), time.process_time()
    ex = pool.worker_pool()
    ex.submit(int).result()
    while len(pool.worker_pids()) < cpu_count():
        time.sleep(0.01)
    for _ in range(4 * cpu_count()):  # every worker has imported lookalike and is idle
        ex.submit(int).result()
    return time.perf_counter() - t, cpu_now() - c


def _read_as_before(path, max_bytes: int = files_module.MAX_READ_BYTES) -> bytes:
    """``read_regular`` as it was before issue 12 (one read of ``max_bytes + 1``, which allocates that much)."""
    with files_module.open_regular(path) as fh:
        data = fh.read(max_bytes + 1)
    if len(data) > max_bytes:
        raise ValueError("too large")
    return data


def timed_index(cat: Catalog, folder: str, models: list[str], path: str = "auto") -> tuple[float, object]:
    """Index into ``cat``. ``path``: "processes" or "threads" forces the indexer's path; "before" is the
    thread path with files read as before issue 12 (lookalike's code before this change); "auto" lets the
    indexer choose."""
    pool.USE_PROCESSES = {"auto": None, "processes": True, "threads": False, "before": False}[path]
    decode_module = importlib.import_module("lookalike.media.decode")
    if path == "before":
        decode_module.read_regular = _read_as_before
    try:
        t, c = time.perf_counter(), cpu_now()
        rep = index_paths([folder], cat, models)
        INDEX_CPU.append(cpu_now() - c)
        return time.perf_counter() - t, rep
    finally:
        pool.USE_PROCESSES = None
        decode_module.read_regular = files_module.read_regular


def cpu_costs(paths: list[str], sample: int = 60, batch: int = 16, model: bool = True) -> dict[str, float]:
    """CPU milliseconds per image, one thread, of each decoder at 224 and 64 px and of the model (batch 16):
    what the cores must spend whatever the load, unlike the wall-clock rates."""
    sample_paths = paths[:sample]
    datas = [Path(p).read_bytes() for p in sample_paths]
    out: dict[str, float] = {}
    for side in (224, 64):
        def pil(d: bytes, side=side) -> None:
            with Image.open(io.BytesIO(d)) as im:
                im.draft("RGB", (side, side))
                np.asarray(im.convert("RGB"))

        def fast(d: bytes, side=side) -> None:
            h, w, _, _ = simplejpeg.decode_jpeg_header(d)
            tw, th = _draft_size(w, h, side)
            simplejpeg.decode_jpeg(d, colorspace="RGB", min_width=tw, min_height=th)

        for name, fn in (("pillow", pil), ("simplejpeg", fast)):
            if name == "simplejpeg" and (simplejpeg is None or any(d[:3] != b"\xff\xd8\xff" for d in datas)):
                continue
            best = float("inf")
            for _ in range(2):
                c = time.process_time()
                for d in datas:
                    fn(d)
                best = min(best, (time.process_time() - c) / len(datas) * 1e3)
            out[f"{name} {side}"] = best
    if not model:
        return out
    ext = load_extractor("effnet")
    prepared = np.stack([ext.prepare(decode(p, min_side=224).image) for p in paths[:128]])
    ext.infer(prepared[:batch])
    c = time.process_time()
    for i in range(0, len(prepared), batch):
        ext.infer(prepared[i : i + batch])
    out["model"] = (time.process_time() - c) / len(prepared) * 1e3
    return out


def _runs(cat_dir: Path, folder: str, models: list[str], paths: tuple[str, ...], n: int
          ) -> dict[str, tuple[float, float]]:
    """index path -> (seconds, CPU ms per image) of indexing ``folder`` into fresh catalogs: the paths back
    to back, then again in reverse order (a drift of the machine's load favours none), each the mean of its
    two runs."""
    order = list(paths) + list(reversed(paths))
    seen: dict[str, list[tuple[float, float]]] = {p: [] for p in paths}
    for path in order:
        k = len(seen[path])
        secs, _ = timed_index(Catalog(cat_dir / f"{models[0]}-{path}-{k}.sqlite"), folder, models, path)
        seen[path].append((secs, INDEX_CPU[-1] / n * 1e3))
    return {p: (sum(s for s, _ in r) / len(r), sum(c for _, c in r) / len(r)) for p, r in seen.items()}


def jpeg_rows(cat_dir: Path, folder: str, paths: list[str], workers: int, skip_effnet: bool,
              compare_pillow: bool = False, index_paths_run: tuple[str, ...] = ("processes", "threads", "before")
              ) -> list[tuple]:
    """The floors, model rate, bound and lookalike's indexing rates for one folder (see the module doc)."""
    n = len(paths)
    rows: list[tuple] = []
    # Each ratio's denominator is measured just before and just after its numerator and averaged,
    # so that a drift in machine load during the run biases neither side.
    pil224 = pillow_floor(paths, 224, workers)
    fast224, name = fastest_floor(paths, 224, workers)
    rows.append((f"decode floor, Pillow draft to >=224 px, {workers} threads", pil224, ""))
    rows.append((f"decode floor, {name} to >=224 px, {workers} threads", fast224, f"{fast224 / pil224:.2f}x Pillow"))
    pil64 = pillow_floor(paths, 64, workers)
    fast64_before, _ = fastest_floor(paths, 64, workers)
    hash_runs = _runs(cat_dir, folder, ["phash"], index_paths_run, n)
    fast64 = (fast64_before + fastest_floor(paths, 64, workers)[0]) / 2
    rows.append((f"decode floor, Pillow draft to >=64 px, {workers} threads", pil64, ""))
    rows.append((f"decode floor, {name} to >=64 px, {workers} threads", fast64,
                 f"{fast64 / pil64:.2f}x Pillow; mean of before/after"))
    for path, (secs, _) in hash_runs.items():
        rows.append((f"hash indexing (phash), {path}", n / secs, f"{n / secs / fast64:.2f}x {name} floor(64), "
                     f"{n / secs / pil64:.2f}x Pillow floor(64)"))
    first = index_paths_run[0]
    cat = Catalog(cat_dir / f"phash-{first}-0.sqlite")
    hash_rerun, _ = timed_index(cat, folder, ["phash"], first)
    rows.append((f"hash re-run, nothing changed ({first})", n / hash_rerun,
                 f"{hash_rerun / hash_runs[first][0]:.1%} of first run"))

    def hash_cpu_rows(cost: dict[str, float]) -> list[tuple]:
        dec64 = cost.get(f"{name} 64", cost["pillow 64"])
        return [(f"CPU accounting: hash indexing, {path}", 1e3 / hash_cpu,
                 f"{hash_cpu:.1f} ms/img; decode {name}(64) / it = {dec64 / hash_cpu:.2f}")
                for path, (_, hash_cpu) in hash_runs.items()]

    if skip_effnet:
        cost = cpu_costs(paths, model=False)
        rows += [(f"CPU ms per image, one thread: {key}", 1e3 / ms, f"{ms:.1f} ms") for key, ms in cost.items()]
        return rows + hash_cpu_rows(cost)
    mo_before = model_only(paths)
    fast224_before, _ = fastest_floor(paths, 224, workers)
    effnet_runs = _runs(cat_dir, folder, ["effnet"], index_paths_run, n)
    mo = (mo_before + model_only(paths)) / 2
    fast224 = (fast224_before + fastest_floor(paths, 224, workers)[0]) / 2
    bound = 1 / (1 / fast224 + 1 / mo)
    rows.append(("effnet model only (batch 16)", mo, "mean of before/after"))
    rows.append((f"decode floor, {name} to >=224 px (again)", fast224, "mean of before/after"))
    rows.append(("bound 1/(1/decode + 1/model)", bound, f"decode floor {name}"))
    for path, (secs, _) in effnet_runs.items():
        rate_e = n / secs
        rows.append((f"effnet indexing end to end, {path}", rate_e,
                     f"{rate_e / bound:.2f}x bound, {rate_e / mo:.2f}x model only"))
    rerun, rep2 = timed_index(Catalog(cat_dir / f"effnet-{first}-0.sqlite"), folder, ["effnet"], first)
    assert rep2.unchanged == n - len(rep2.failed)
    rows.append((f"effnet re-run, nothing changed ({first})", n / rerun,
                 f"{rerun / effnet_runs[first][0]:.2%} of first run"))
    cost = cpu_costs(paths)
    dec = cost.get(f"{name} 224", cost["pillow 224"])
    for key, ms in cost.items():
        rows.append((f"CPU ms per image, one thread: {key}", 1e3 / ms, f"{ms:.1f} ms"))
    for path, (_, effnet_cpu) in effnet_runs.items():
        rows.append((f"CPU accounting: effnet indexing, {path}", 1e3 / effnet_cpu,
                     f"{effnet_cpu:.1f} ms/img; (decode {name} + model) / it = "
                     f"{(dec + cost['model']) / effnet_cpu:.2f}"))
    rows += hash_cpu_rows(cost)
    if compare_pillow:  # lookalike itself with Pillow's draft mode instead of simplejpeg, same files
        decode_module = importlib.import_module("lookalike.media.decode")
        chosen, decode_module.JPEG_DECODER = decode_module.JPEG_DECODER, "pillow"
        # interleaved: chosen decoder, Pillow, chosen decoder again (fresh catalogs), so that load drift
        # biases neither side
        for model in ("phash", "effnet"):
            decode_module.JPEG_DECODER = chosen
            path = index_paths_run[0]
            before, _ = timed_index(Catalog(cat_dir / f"{model}-a.sqlite"), folder, [model], path)
            decode_module.JPEG_DECODER = "pillow"
            try:
                with_pillow, _ = timed_index(Catalog(cat_dir / f"{model}-pillow.sqlite"), folder, [model], path)
            finally:
                decode_module.JPEG_DECODER = chosen
            after, _ = timed_index(Catalog(cat_dir / f"{model}-b.sqlite"), folder, [model], path)
            rows.append((f"{model} indexing, {chosen} (mean of two runs around the next)", 2 * n / (before + after),
                         ""))
            rows.append((f"{model} indexing, lookalike decoding with Pillow draft", n / with_pillow,
                         f"{with_pillow / ((before + after) / 2):.2f}x the time with {chosen}"))
    return rows


def heic_rows(cat_dir: Path, folder: str, paths: list[str], workers: int, skip_effnet: bool,
              path: str = "processes") -> list[tuple]:
    """HEIC: pillow-heif's full decode, its reduced decode (the embedded thumbnail), lookalike's rates."""
    n = len(paths)
    full = pillow_floor(paths, None, workers)
    thumb = pillow_floor(paths, 224, workers)
    rows = [(f"HEIC decode floor, pillow-heif full 12 MP, {workers} threads", full, ""),
            (f"HEIC decode floor, pillow-heif draft (thumbnail) >=224 px, {workers} threads", thumb,
             f"{thumb / full:.1f}x full decode")]
    secs, _ = timed_index(Catalog(cat_dir / "heic-hash.sqlite"), folder, ["phash"], path)
    rows.append((f"HEIC hash indexing (phash), {path}", n / secs, f"{n / secs / thumb:.2f}x thumbnail floor"))
    if not skip_effnet:
        mo = model_only(paths)
        secs, _ = timed_index(Catalog(cat_dir / "heic-effnet.sqlite"), folder, ["effnet"], path)
        bound = 1 / (1 / thumb + 1 / mo)
        rows.append(("HEIC effnet model only (batch 16)", mo, ""))
        rows.append((f"HEIC effnet indexing end to end, {path}", n / secs, f"{n / secs / bound:.2f}x bound "
                     f"1/(1/thumbnail floor + 1/model) = {bound:.1f}"))
    return rows


def _linked(paths: list[str], folder: str) -> list[str]:
    """Hard links (copies across file systems) of paths in a new folder: their new paths."""
    os.mkdir(folder)
    out = []
    for p in paths:
        q = os.path.join(folder, os.path.basename(p))
        try:
            os.link(p, q)
        except OSError:
            shutil.copyfile(p, q)
        out.append(q)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("folder", nargs="?", help="folder of images (default: --make)")
    ap.add_argument("--make", type=int, default=0, help="make this many photos from the shared UKBench set")
    ap.add_argument("--real-size", type=int, default=0, metavar="N",
                    help="use N 12 MP camera-like JPEGs made from the shared photos (cached; bench/realsize.py)")
    ap.add_argument("--heic", type=int, default=0, metavar="M", help="with --real-size: also M 12 MP HEICs")
    ap.add_argument("--skip-effnet", action="store_true", help="hash figures only")
    ap.add_argument("--index-path", choices=("all", "processes", "threads", "before"), default="all",
                    help="indexing in worker processes (lookalike's default for hash-only runs), in threads, in "
                         "threads reading files as before issue 12 (the code before it), or all three back to "
                         "back on the same files (default)")
    ap.add_argument("--compare-pillow", action="store_true",
                    help="also index with lookalike's decoder set to Pillow's draft mode instead of simplejpeg")
    args = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="lookalike-bench-"))
    try:
        heics: list[str] = []
        if args.folder:
            folder = os.path.abspath(args.folder)
            paths = list(iter_images([folder]))
        elif args.real_size:
            paths = real_size_jpegs(args.real_size)
            heics = real_size_heics(args.heic)
            # the cache may hold more pictures than asked for: index exactly these (hard links; the walk
            # rightly follows no symbolic link out of the searched folder)
            folder = str(tmp / "jpeg")
            paths = _linked(paths, folder)
        else:
            folder = str(tmp / "photos")
            paths = make_photos(args.make or 2000, Path(folder))
        workers = cpu_count()
        n = len(paths)
        size = sum(os.path.getsize(p) for p in paths) / n / 2**20
        print(f"{n} images in {folder} ({size:.1f} MiB each on average); {workers} cores; "
              f"load average {os.getloadavg()[0]:.2f}", flush=True)
        # read every file once so that all figures see a warm page cache
        for p in paths + heics:
            Path(p).read_bytes()
        index_paths_run = ("processes", "threads", "before") if args.index_path == "all" else (args.index_path,)
        if "processes" in index_paths_run:
            wall, cpu = start_pool()
            print(f"index worker pool started: {wall:.2f} s wall, {cpu:.2f} s CPU (once per process)", flush=True)
        rows = jpeg_rows(tmp, folder, paths, workers, args.skip_effnet, args.compare_pillow, index_paths_run)
        if heics:
            hfolder = str(tmp / "heic")
            heics = _linked(heics, hfolder)
            print(f"{len(heics)} HEICs; load average {os.getloadavg()[0]:.2f}", flush=True)
            rows += heic_rows(tmp, hfolder, heics, workers, args.skip_effnet, index_paths_run[0])
        print(f"{'figure':68s} {'images/s':>10s}  ratio")
        for name, rate, ratio in rows:
            print(f"{name:68s} {rate:10.1f}  {ratio}")
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        print(f"peak resident memory: {peak:.0f} MiB; load average after: {os.getloadavg()[0]:.2f}")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
