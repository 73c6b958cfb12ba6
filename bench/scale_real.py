"""Real photos at scale (issue 11): the real commands on a collection of real pictures of growing size.

The collection is made from the shared photos (../shared/data, override with $LOOKALIKE_SHARED): 400 UKBench
photos, the celebrity face photos (byte-identical copies dropped) and the deepface photos. Each source photo
is expanded into many distinct real-looking pictures ("variants"): a crop at its own place and scale (20-55%
of the photo's area, the least overlapping of 40 tries against the photo's earlier variants), a small
rotation, sometimes a quarter turn, a mirror, a colour shift (per-channel gain, gamma, saturation), saved as
a 480-800 px JPEG. Every 12th variant is *planted*: it gets two edited copies (tests/photo_edits.py's edits,
taken in turn), which are the ground truth of ``dupes``: a variant and its copies form one family.

The collection is made in shards of ``--shard`` files (default 2,500; each shard holds its variants and
their copies), with several processes, once, under the user cache
(``~/.cache/lookalike-bench/scale-real-v1-s<shard>``); a size of N files is the first N / shard shards, so
every size contains the smaller ones and a re-run skips generation.

For each size, each command runs in its own fresh process (wall, CPU of the process and its children, peak
RSS: VmHWM), on one catalog made fresh for the size, in this order:

* ``index``: ``index_paths`` with the near tier's models (pixelsha, dihash, effnet);
* ``dupes``: ``find_duplicates`` at the default tier (near) and settings, verification on every core;
  planted-copy pair precision and recall; found pairs outside the truth are split into *siblings* (two
  crops of one source photo: partly the same picture), *same object* (two UKBench photos of one object)
  and *false* (unrelated);
* ``sort``: ``sort_folder`` (order only); ``cluster``: ``cluster_folder`` (groups only, nothing written);
* ``similar``: ``find_similar`` over the whole collection (every shard folder), the query a planted copy:
  the first call (which builds the persisted index above ``similar.INDEX_LIMIT`` pictures) and the median
  of the next ones, with the share whose variant is among the 5 hits; ``walk_s`` is what the indexing
  check of the folders alone costs (every call makes it).

Growth exponents ``log(t2/t1) / log(n2/n1)`` between consecutive sizes are printed, as bench/scale.py does.

    python bench/scale_real.py --sizes 2500 5000 10000 20000 --out real.jsonl
    python bench/scale_real.py --sizes 2500 --tasks index dupes      # some commands only
"""

from __future__ import annotations

import argparse
import functools
import hashlib
import io
import json
import math
import multiprocessing
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))
sys.path.insert(0, str(ROOT / "tests"))  # photo_edits: the edited copies (test-only code)
sys.path.insert(0, str(ROOT / "bench"))

from scale import load, peak_rss_mb, print_growth, record  # noqa: E402  (bench/scale.py's helpers)

SHARED = Path(os.environ.get("LOOKALIKE_SHARED", ROOT.parent / "shared"))
DATA = SHARED / "data"
VERSION = "scale-real-v1"
TASKS = ("index", "dupes", "sort", "cluster", "similar")
PLANT_EVERY = 12  # every 12th variant gets edited copies
COPIES_PER_PLANT = 2
TRIES = 40  # candidate crop boxes per variant; the least overlapping one is kept
#: Source photos that are near-duplicates of each other already (bench/dupes_quality.py's NATURAL_NEAR).
NATURAL_NEAR = [("Tom_Hanks/018_b7231fad.jpg", "Tom_Hanks/023_2029f686.jpg"),
                ("Robert_Downey_Jr/023_51dce41c.jpg", "Robert_Downey_Jr/011_da108a07.jpg")]


# -- sources ----------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Source:
    """One shared photo: its path, upright size, and the group of photos its crops may match besides its
    own (``group``: itself, or the photo it is a natural near-duplicate of; ``obj``: UKBench object)."""

    path: str
    width: int
    height: int
    group: int
    obj: str


def _upright_size(path: Path) -> tuple[int, int]:
    from PIL import Image

    with Image.open(path) as im:
        w, h = im.size
        orient = im.getexif().get(0x0112, 1)
    return (h, w) if orient in (5, 6, 7, 8) else (w, h)


def sources(data: Path = DATA) -> list[Source]:
    """The shared photos, byte-identical copies dropped, in a fixed order."""
    files = (sorted((data / "photos").glob("ukbench*.jpg")) + sorted((data / "faces" / "celebrity").glob("*/*.jpg"))
             + sorted((data / "faces" / "deepface").glob("*.jpg")))
    if not files:
        sys.exit(f"no shared photos under {data}; set LOOKALIKE_SHARED")
    seen: set[str] = set()
    kept: list[Path] = []
    for p in files:
        sha = hashlib.sha256(p.read_bytes()).hexdigest()
        if sha not in seen:
            seen.add(sha)
            kept.append(p)
    index = {f"{p.parent.name}/{p.name}": i for i, p in enumerate(kept)}
    group = list(range(len(kept)))
    for a, b in NATURAL_NEAR:
        if a in index and b in index:
            group[index[b]] = index[a]
    out = []
    for i, p in enumerate(kept):
        w, h = _upright_size(p)
        obj = f"ukbench-{int(p.stem[7:12]) // 4}" if p.name.startswith("ukbench") else f"photo-{group[i]}"
        out.append(Source(str(p), w, h, group[i], obj))
    return out


# -- variants ---------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Variant:
    """How one picture is made from its source: crop box (centre, size in source pixels), rotation about the
    box centre (degrees), quarter turns, mirror, colour (gains, gamma, saturation), long side, JPEG quality."""

    cx: float
    cy: float
    bw: float
    bh: float
    angle: float
    quarter: int
    mirror: bool
    gains: tuple[float, float, float]
    gamma: float
    saturation: float
    long_side: int
    quality: int
    overlap: float  # the largest IoU of its box with its source's earlier variants' boxes


def _iou(a: tuple, b: tuple) -> float:
    ax0, ay0, ax1, ay1 = a[0] - a[2] / 2, a[1] - a[3] / 2, a[0] + a[2] / 2, a[1] + a[3] / 2
    bx0, by0, bx1, by1 = b[0] - b[2] / 2, b[1] - b[3] / 2, b[0] + b[2] / 2, b[1] + b[3] / 2
    iw, ih = max(0.0, min(ax1, bx1) - max(ax0, bx0)), max(0.0, min(ay1, by1) - max(ay0, by0))
    inter = iw * ih
    return inter / (a[2] * a[3] + b[2] * b[3] - inter)


def _box(rng: np.random.Generator, w: int, h: int, angle: float) -> tuple[float, float, float, float]:
    """A crop box whose rotation by ``angle`` about its centre stays inside the w x h photo."""
    area = rng.uniform(0.20, 0.55) * w * h
    aspect = float(rng.choice([4 / 3, 3 / 4, 1.0, 3 / 2]))
    bw, bh = math.sqrt(area * aspect), math.sqrt(area / aspect)
    c, s = abs(math.cos(math.radians(angle))), abs(math.sin(math.radians(angle)))
    ex, ey = bw * c + bh * s, bw * s + bh * c  # the rotated box's bounding box
    shrink = min(1.0, 0.98 * w / ex, 0.98 * h / ey)
    bw, bh, ex, ey = bw * shrink, bh * shrink, ex * shrink, ey * shrink
    cx = rng.uniform(ex / 2, w - ex / 2)
    cy = rng.uniform(ey / 2, h - ey / 2)
    return cx, cy, bw, bh


def variants_of(source_index: int, width: int, height: int, count: int) -> list[Variant]:
    """The first ``count`` variants of one source photo (the j-th depends only on the source and j)."""
    rng = np.random.default_rng([source_index, 17])
    out: list[Variant] = []
    boxes: list[tuple] = []
    for _ in range(count):
        angle = float(rng.uniform(-12, 12)) if rng.random() < 0.6 else 0.0
        tries = [_box(rng, width, height, angle) for _ in range(TRIES)]
        overlaps = [max((_iou(t, b) for b in boxes), default=0.0) for t in tries]
        best = int(np.argmin(overlaps))
        boxes.append(tries[best])
        cx, cy, bw, bh = tries[best]
        out.append(Variant(
            cx=round(cx, 2), cy=round(cy, 2), bw=round(bw, 2), bh=round(bh, 2), angle=round(angle, 2),
            quarter=int(rng.choice([1, 3])) if rng.random() < 0.15 else 0, mirror=bool(rng.random() < 0.5),
            gains=tuple(round(float(g), 3) for g in rng.uniform(0.85, 1.15, 3)),
            gamma=round(float(rng.uniform(0.8, 1.25)), 3), saturation=round(float(rng.uniform(0.7, 1.3)), 3),
            long_side=int(rng.choice([480, 640, 640, 800])), quality=int(rng.integers(80, 96)),
            overlap=round(overlaps[best], 3)))
    return out


def render(source: str, v: Variant) -> bytes:
    """The variant's JPEG bytes."""
    from PIL import Image, ImageEnhance, ImageOps

    with Image.open(source) as im:
        img = ImageOps.exif_transpose(im).convert("RGB")
    if v.angle:
        img = img.rotate(v.angle, resample=Image.Resampling.BICUBIC, center=(v.cx, v.cy))
    img = img.crop((round(v.cx - v.bw / 2), round(v.cy - v.bh / 2), round(v.cx + v.bw / 2), round(v.cy + v.bh / 2)))
    if v.quarter:
        img = img.transpose(Image.Transpose.ROTATE_90 if v.quarter == 1 else Image.Transpose.ROTATE_270)
    if v.mirror:
        img = img.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
    arr = np.asarray(img, dtype=np.float32) / 255.0
    arr = np.clip(arr ** v.gamma * np.asarray(v.gains, dtype=np.float32), 0.0, 1.0)
    img = ImageEnhance.Color(Image.fromarray((arr * 255.0 + 0.5).astype(np.uint8))).enhance(v.saturation)
    scale = v.long_side / max(img.size)
    img = img.resize((max(1, round(img.width * scale)), max(1, round(img.height * scale))),
                     Image.Resampling.LANCZOS)
    buf = io.BytesIO()
    img.save(buf, "JPEG", quality=v.quality)
    return buf.getvalue()


# -- the collection ---------------------------------------------------------------------------------
def cache_root(shard: int) -> Path:
    """Where the collection made of shards of ``shard`` files is kept."""
    try:
        import platformdirs

        base = Path(platformdirs.user_cache_dir("lookalike-bench"))
    except ImportError:  # pragma: no cover
        base = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "lookalike-bench"
    return base / f"{VERSION}-s{shard}"


def variants_per_shard(shard: int) -> int:
    """Variants in a shard of ``shard`` files (the rest are the planted copies): the most that fit."""
    v = shard
    while v + COPIES_PER_PLANT * math.ceil(v / PLANT_EVERY) > shard:
        v -= 1
    return v


def _make_one(job: tuple) -> list[dict]:
    """Write one variant (and its edited copies when planted); its manifest rows."""
    from photo_edits import write_edits

    folder, name, src, spec, edits, row = job
    dest = Path(folder) / "pictures" / f"{name}.jpg"
    if not dest.exists():
        tmp = dest.with_suffix(".part")
        tmp.write_bytes(render(src, Variant(**spec)))
        tmp.replace(dest)
    rows = [dict(row, path=str(dest.relative_to(folder)), edit="orig")]
    if edits:
        for edit, path in write_edits(dest, Path(folder) / "copies", edits).items():
            rows.append(dict(row, path=str(path.relative_to(folder)), edit=edit))
    return rows


def make_shard(k: int, shard: int, root: Path, srcs: list[Source], processes: int) -> Path:
    """Shard k of the collection (made once): its folder, holding ``manifest.json``."""
    from photo_edits import EDITS

    folder = root / f"shard-{k:03d}"
    if (folder / "manifest.json").exists():
        return folder
    (folder / "pictures").mkdir(parents=True, exist_ok=True)
    (folder / "copies").mkdir(parents=True, exist_ok=True)
    per = variants_per_shard(shard)
    first, last = k * per, (k + 1) * per
    counts: dict[int, int] = defaultdict(int)
    for g in range(last):
        counts[g % len(srcs)] = g // len(srcs) + 1
    specs = {s: variants_of(s, srcs[s].width, srcs[s].height, n) for s, n in counts.items()}
    names = list(EDITS)
    jobs = []
    for g in range(first, last):
        s, j = g % len(srcs), g // len(srcs)
        local = g - first
        planted = local % PLANT_EVERY == 0
        p = g // PLANT_EVERY
        edits = [names[(COPIES_PER_PLANT * p + e) % len(names)] for e in range(COPIES_PER_PLANT)] if planted else []
        v = specs[s][j]
        row = {"family": g, "source": s, "group": srcs[s].group, "obj": srcs[s].obj, "variant": j,
               "overlap": v.overlap}
        jobs.append((str(folder), f"v{g:06d}_s{s:04d}_{j:03d}", srcs[s].path, asdict(v), edits, row))
    rows: list[dict] = []
    ctx = multiprocessing.get_context("spawn")
    if processes > 1:
        with ctx.Pool(processes) as pool:
            for r in pool.imap(_make_one, jobs, chunksize=16):
                rows.extend(r)
    else:
        for job in jobs:
            rows.extend(_make_one(job))
    (folder / "manifest.part").write_text(json.dumps({"shard": k, "files": rows}))
    (folder / "manifest.part").replace(folder / "manifest.json")
    return folder


def collection(n: int, shard: int = 2500, processes: int | None = None, root: Path | None = None) -> list[Path]:
    """The shard folders of a collection of about n files (made as needed)."""
    root = root or cache_root(shard)
    srcs = sources()
    count = max(1, math.ceil(n / shard))
    return [make_shard(k, shard, root, srcs, processes or os.cpu_count() or 1) for k in range(count)]


def manifest(folders: list[Path]) -> dict[str, dict]:
    """Absolute path -> its manifest row, over the given shard folders."""
    out = {}
    for f in folders:
        for row in json.loads((f / "manifest.json").read_text())["files"]:
            out[str(f / row["path"])] = row
    return out


def truth_pairs(rows: dict[str, dict]) -> set[frozenset]:
    """Pairs that ``dupes`` should find: a planted variant and its copies, two by two."""
    fam: dict[int, list[str]] = defaultdict(list)
    for path, row in rows.items():
        fam[row["family"]].append(path)
    return {frozenset((a, b)) for members in fam.values() if len(members) > 1
            for i, a in enumerate(members) for b in members[i + 1:]}


def pair_kind(a: dict, b: dict) -> str:
    """truth (one family), sibling (crops of one source photo), same_object (one UKBench object) or false."""
    if a["family"] == b["family"]:
        return "truth"
    if a["group"] == b["group"]:
        return "sibling"
    if a["obj"] == b["obj"]:
        return "same_object"
    return "false"


def score_groups(groups: list[list[str]], rows: dict[str, dict]) -> dict:
    """Pair precision / recall of the found groups against the planted families, and the kinds of the rest."""
    found = {frozenset((a, b)) for g in groups for i, a in enumerate(g) for b in g[i + 1:]}
    truth = truth_pairs(rows)
    kinds: dict[str, int] = defaultdict(int)
    for pair in found:
        a, b = sorted(pair)
        kinds[pair_kind(rows[a], rows[b])] += 1
    tp = len(found & truth)
    by_edit: dict[str, list[bool]] = defaultdict(list)
    orig = {row["family"]: p for p, row in rows.items() if row["edit"] == "orig"}
    for p, row in rows.items():
        if row["edit"] != "orig":
            by_edit[row["edit"]].append(frozenset((orig[row["family"]], p)) in found)
    return {"pairs": len(found), "truth_pairs": len(truth),
            "precision": round(tp / len(found), 4) if found else 1.0,
            "precision_without_siblings": round(tp / max(1, len(found) - kinds["sibling"]), 4),
            "recall": round(tp / len(truth), 4) if truth else 1.0, "kinds": dict(kinds),
            "recall_by_edit": {e: round(float(np.mean(v)), 3) for e, v in sorted(by_edit.items())}}


def crop_overlap(a: Variant, b: Variant) -> float:
    """Shared area of two crops of one photo over the smaller crop's area (boxes taken upright: the
    rotations are small). The near tier's verifier asks an overlap of at least 0.45 of the smaller picture
    (dupes/verify.py's MIN_OVERLAP) of an edited copy."""
    iw = max(0.0, min(a.cx + a.bw / 2, b.cx + b.bw / 2) - max(a.cx - a.bw / 2, b.cx - b.bw / 2))
    ih = max(0.0, min(a.cy + a.bh / 2, b.cy + b.bh / 2) - max(a.cy - a.bh / 2, b.cy - b.bh / 2))
    return iw * ih / min(a.bw * a.bh, b.bw * b.bh)


def sibling_report(groups: list[list[str]], rows: dict[str, dict], cut: float = 0.45) -> dict:
    """Pairs of two crops of one source photo (variants, their copies left out): how many the collection
    holds with a crop overlap at or above ``cut`` and below it, and how many of each ``dupes`` grouped."""
    srcs = sources()
    found = {frozenset((a, b)) for g in groups for i, a in enumerate(g) for b in g[i + 1:]}
    by_source: dict[int, list[str]] = defaultdict(list)
    for p, row in rows.items():
        if row["edit"] == "orig":
            by_source[row["source"]].append(p)
    counts = {"high_total": 0, "high_found": 0, "low_total": 0, "low_found": 0}
    for s, paths in by_source.items():
        if len(paths) < 2:
            continue
        vs = variants_of(s, srcs[s].width, srcs[s].height, 1 + max(rows[p]["variant"] for p in paths))
        for i, a in enumerate(paths):
            for b in paths[i + 1:]:
                side = "high" if crop_overlap(vs[rows[a]["variant"]], vs[rows[b]["variant"]]) >= cut else "low"
                counts[f"{side}_total"] += 1
                counts[f"{side}_found"] += frozenset((a, b)) in found
    return counts


# -- tasks (each in its own process) ----------------------------------------------------------------
def cpu_s() -> float:
    """CPU seconds of this process and its finished children."""
    me, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return me.ru_utime + me.ru_stime + kids.ru_utime + kids.ru_stime


def run_task(task: str, folders: list[Path], catalog: Path) -> dict:
    """One command on the collection; its figures (the caller adds time and memory)."""
    from lookalike.catalog import Catalog

    cat = Catalog(catalog)
    strs = [str(f) for f in folders]
    out: dict = {}
    if task == "index":
        from lookalike.dupes.finder import MODELS_FOR_TIER
        from lookalike.index import index_paths

        rep = index_paths(strs, cat, MODELS_FOR_TIER["near"])
        out.update(files=len(rep.paths), new=rep.new, decoded=rep.decoded, failed=len(rep.failed),
                   models=list(MODELS_FOR_TIER["near"]))
    elif task == "dupes":
        from lookalike.dupes import find_duplicates

        rep = find_duplicates(strs, catalog=cat, workers=os.cpu_count() or 1)
        (catalog.parent / "dupes_groups.json").write_text(json.dumps([g.paths for g in rep.groups]))
        out.update(groups=len(rep.groups), **score_groups([g.paths for g in rep.groups], manifest(folders)))
        out["stats"] = {k: v for k, v in rep.stats.items() if isinstance(v, int | float | dict)}
    elif task == "sort":
        from lookalike.organise import sort_folder

        rep = sort_folder(strs, catalog=cat)
        out.update(files=len(rep.order), mean_distance=round(float(rep.mean_distance), 4))
    elif task == "cluster":
        from lookalike.organise import cluster_folder

        res = cluster_folder(strs, catalog=cat)
        where = {p: i for i, c in enumerate(res.clusters) for p in c}
        fams: dict[int, list[int | None]] = defaultdict(list)
        for p, row in manifest(folders).items():
            fams[row["family"]].append(where.get(p))
        planted = [c for c in fams.values() if len(c) > 1]
        together = sum(1 for c in planted if c[0] is not None and len(set(c)) == 1)
        out.update(clusters=len(res.clusters), clustered=sum(len(c) for c in res.clusters),
                   unclustered=len(res.unclustered), mode=res.mode,
                   planted_families_in_one_cluster=round(together / max(1, len(planted)), 3))
    elif task == "similar":
        out.update(_similar(folders, cat))
    else:
        raise SystemExit(f"unknown task {task}")
    return out


def _similar(folders: list[Path], cat, queries: int = 21) -> dict:
    """Catalog-wide ``find_similar`` as the command runs it (exact search up to ``similar.INDEX_LIMIT``
    pictures), then forced through the persisted index (the first call builds it), then the index's search
    alone (the scope made once, the query's feature read from the catalog): seconds and ms per query."""
    import lookalike.similar as sim
    from lookalike.index import index_paths

    rows = manifest(folders)
    orig = {row["family"]: p for p, row in rows.items() if row["edit"] == "orig"}
    copies = sorted(p for p, row in rows.items() if row["edit"] != "orig")
    picked = copies[:: max(1, len(copies) // queries)][:queries]
    strs = [str(f) for f in folders]
    t = time.perf_counter()
    paths = index_paths(strs, cat, ["effnet"]).paths
    out: dict = {"queries": len(picked), "walk_s": round(time.perf_counter() - t, 3),
                 "default_through_index": len(paths) > sim.INDEX_LIMIT}

    def timed(name: str, call) -> None:
        times, hits = [], 0
        for q in picked:
            t = time.perf_counter()
            res = call(q)
            times.append(time.perf_counter() - t)
            hits += orig[rows[q]["family"]] in {h.path for h in res.results}
        later = times[1:] or times
        out[f"{name}_first_s"] = round(times[0], 3)
        out[f"{name}_ms"] = round(1000 * float(np.median(later)), 2)
        out[f"{name}_ms_p95"] = round(1000 * float(np.percentile(later, 95)), 2)
        out[f"{name}_variant_in_top5"] = round(hits / len(picked), 3)

    timed("command", lambda q: sim.find_similar(q, strs, k=5, catalog=cat))
    limit, sim.INDEX_LIMIT = sim.INDEX_LIMIT, 0
    try:
        timed("command_index", lambda q: sim.find_similar(q, strs, k=5, catalog=cat))
        scope = sim.IndexedScope.of_catalog(cat, "effnet", paths)
        timed("index_search", lambda q: scope.rank(sim.query_feature(q, cat), 5, "effnet", q, exclude=q))
    finally:
        sim.INDEX_LIMIT = limit
    return out


def _child(task: str, spec: str) -> None:
    s = json.loads(Path(spec).read_text())
    t0, c0 = time.perf_counter(), cpu_s()
    out = run_task(task, [Path(f) for f in s["folders"]], Path(s["catalog"]))
    out["wall_s"] = round(time.perf_counter() - t0, 2)
    out["cpu_s"] = round(cpu_s() - c0, 2)
    out["peak_rss_mb"] = peak_rss_mb()
    out["children_peak_rss_mb"] = round(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024, 1)
    print("RESULT " + json.dumps(out), flush=True)


def measure(task: str, spec: Path, timeout: float | None) -> dict:
    """Run one task in a fresh interpreter; its figures, or why it failed."""
    env = dict(os.environ)
    env["PYTHONPATH"] = str(ROOT / "src") + os.pathsep + env.get("PYTHONPATH", "")
    cmd = [sys.executable, __file__, "--child", task, str(spec)]
    try:
        done = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=timeout)
    except subprocess.TimeoutExpired:
        return {"error": f"over {timeout} s"}
    for line in done.stdout.splitlines():
        if line.startswith("RESULT "):
            return json.loads(line[7:])
    return {"error": (done.stderr or done.stdout)[-800:]}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sizes", type=int, nargs="+", default=[2500, 5000, 10000])
    ap.add_argument("--tasks", nargs="+", default=list(TASKS), choices=TASKS)
    ap.add_argument("--shard", type=int, default=2500, help="files per shard (sizes are whole shards)")
    ap.add_argument("--processes", type=int, default=os.cpu_count() or 1, help="processes making the pictures")
    ap.add_argument("--work", type=Path, default=Path(tempfile.gettempdir()) / "lookalike-scale-real",
                    help="catalogs (one per size, made fresh)")
    ap.add_argument("--out", type=Path, default=None, help="append one JSON line per figure")
    ap.add_argument("--timeout", type=float, default=None, help="seconds per task")
    ap.add_argument("--siblings", action="store_true",
                    help="only: for each size, the crop overlaps of the sibling pairs its last dupes run grouped")
    ap.add_argument("--child", nargs=2, metavar=("TASK", "SPEC"), help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        _child(*args.child)
        return
    if args.siblings:
        for n in args.sizes:
            folders = collection(n, args.shard, args.processes)
            rows = manifest(folders)
            saved = args.work / str(len(rows)) / "dupes_groups.json"
            if saved.exists():
                print(json.dumps({"n": len(rows), **sibling_report(json.loads(saved.read_text()), rows)}))
        return
    results: dict[str, list[dict]] = {t: [] for t in args.tasks}
    for n in args.sizes:
        t = time.perf_counter()
        before = load()
        folders = collection(n, args.shard, args.processes)
        files = len(manifest(folders))
        print(f"# n={files} ({len(folders)} shards): collection ready in {time.perf_counter() - t:.1f} s "
              f"({before} -> {load()}); {folders[0].parent}", flush=True)
        work = args.work / str(files)
        if "index" in args.tasks:
            shutil.rmtree(work, ignore_errors=True)
        work.mkdir(parents=True, exist_ok=True)
        spec = work / "spec.json"
        spec.write_text(json.dumps({"folders": [str(f) for f in folders], "catalog": str(work / "catalog.sqlite")}))
        for task in args.tasks:
            record(task, files, functools.partial(measure, task, spec, args.timeout), results, args.out,
                   date=time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()))
    print_growth(results)


if __name__ == "__main__":
    main()
