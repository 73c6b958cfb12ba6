"""lookalike's duplicate finder against its pip-installable peers, on the same files, back to back.

Peers, installed into a virtual environment of their own under the user cache folder (made on the
first run, reused after): czkawka's Python bindings (PyPI package ``czkawka``, the Rust czkawka
library's similar-image finder) and imagededup's hash methods (PHash, DHash, WHash). imagededup
imports torch and torchvision even to hash; when that import fails, imagehash (whose algorithms
imagededup's hashes follow) stands in, with imagededup's default of 10 bits, and the table says so.

Two sets, both made from ../shared/data/photos (UKBench, 640x480; override with $LOOKALIKE_SHARED):
  qualities  N photos (default 400) each saved at five JPEG qualities: 5N files (2,000 by default);
             the five versions of one photo are duplicates, the other views of a UKBench object are not
  edits      M UKBench objects (default 40): the first photo plus its 12 edited copies
             (lookalike's edit generator), the other 3 photos of the object as distractors

Every tool runs in its own subprocess, with wall time and CPU (user+sys, its child processes
included) measured: lookalike `dupes --json` cold (fresh catalog), the same again warm, and
`--tier exact` cold; then czkawka and imagededup PHash/DHash/WHash. Pair precision / recall
against the truth by construction, and the ratios issue 12 asks for.

    python bench/peers.py                    # both sets at full size
    python bench/peers.py --n 100 --m 10     # smaller
    python bench/peers.py --sets qualities
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("LOOKALIKE_SHARED", ROOT.parent / "shared"))
PHOTOS = SHARED / "data" / "photos"

PEER_PINS = ["czkawka==0.1.2", "imagededup==0.3.3.post2", "imagehash==4.3.2"]
QUALITIES = (95, 85, 70, 50, 30)
HASH_BITS = 10  # imagededup's default max_distance_threshold


# ---------------------------------------------------------------- the peers' environment


def cache_dir() -> Path:
    """The user cache folder for benchmark material (``platformdirs.user_cache_dir("lookalike-bench")``)."""
    try:
        import platformdirs

        return Path(platformdirs.user_cache_dir("lookalike-bench"))
    except ImportError:  # pragma: no cover
        return Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "lookalike-bench"


def peers_python() -> Path:
    """The peers' interpreter: a venv under the cache folder with PEER_PINS installed (made once)."""
    venv = cache_dir() / "peers-venv"
    py = venv / "bin" / "python"
    stamp = venv / "pins.txt"
    if py.exists() and stamp.exists() and stamp.read_text().split() == PEER_PINS:
        return py
    print(f"making the peers' environment in {venv} (once; imagededup pulls torch: several GB)", flush=True)
    base = getattr(sys, "_base_executable", sys.executable)
    subprocess.run([base, "-m", "venv", str(venv)], check=True)
    subprocess.run([str(py), "-m", "pip", "install", "-q", *PEER_PINS], check=True)
    stamp.write_text("\n".join(PEER_PINS))
    return py


def imagededup_importable(py: Path) -> tuple[bool, str]:
    """Whether imagededup's hash methods import in the peers' environment (they import torch/torchvision)."""
    probe = subprocess.run([str(py), "-c", "import torch, torchvision; from imagededup.methods import PHash; "
                            "print(torch.__version__, torchvision.__version__)"], capture_output=True, text=True)
    if probe.returncode == 0:
        return True, probe.stdout.strip()
    return False, (probe.stderr.strip().splitlines() or ["import failed"])[-1]


# ---------------------------------------------------------------- the sets


def make_qualities(n: int, dest: Path) -> tuple[list[Path], dict[str, str]]:
    """n UKBench photos x QUALITIES re-encodings; family = the source photo."""
    from PIL import Image

    sources = sorted(PHOTOS.glob("ukbench*.jpg"))[:n]
    dest.mkdir(parents=True, exist_ok=True)
    files, family = [], {}
    for src in sources:
        with Image.open(src) as im:
            rgb = im.convert("RGB")
            exif = im.info.get("exif", b"")
        for q in QUALITIES:
            p = dest / f"{src.stem}_q{q:02d}.jpg"
            rgb.save(p, "JPEG", quality=q, exif=exif)
            files.append(p)
            family[str(p)] = src.stem
    return files, family


def _write_edits():
    try:
        from lookalike.dupes.edits import write_edits
    except ImportError:  # issue 14 moves the test-only edit generator out of the package
        for folder in (ROOT / "bench", ROOT / "tests"):
            sys.path.insert(0, str(folder))
        from edits import write_edits  # type: ignore[no-redef]
    return write_edits


def make_edits(m: int, dest: Path) -> tuple[list[Path], dict[str, str]]:
    """m UKBench objects: photo 0 and its edited copies (one family), photos 1-3 alone."""
    sys.path.insert(0, str(ROOT / "src"))
    write_edits = _write_edits()
    photos = sorted(PHOTOS.glob("ukbench*.jpg"))[: 4 * m]
    dest.mkdir(parents=True, exist_ok=True)
    scratch = dest.parent / (dest.name + "-scratch")
    files, family = [], {}
    for i, src in enumerate(photos):
        p = dest / src.name
        shutil.copyfile(src, p)
        files.append(p)
        family[str(p)] = src.stem
        if i % 4 == 0:
            for name, made in write_edits(src, scratch / src.stem).items():
                q = dest / f"{src.stem}_edit_{name}{Path(made).suffix}"
                shutil.move(made, q)
                files.append(q)
                family[str(q)] = src.stem
    shutil.rmtree(scratch, ignore_errors=True)
    return files, family


def truth_pairs(family: dict[str, str]) -> set[frozenset]:
    members: dict[str, list[str]] = {}
    for path, fam in family.items():
        members.setdefault(fam, []).append(path)
    return {frozenset(p) for ms in members.values() for p in itertools.combinations(sorted(ms), 2)}


def group_pairs(groups: list[list[str]]) -> set[frozenset]:
    return {frozenset(p) for g in groups for p in itertools.combinations(sorted(set(g)), 2)}


# ---------------------------------------------------------------- workers (run in subprocesses)


def worker_czkawka(folder: str) -> list[list[str]]:
    from czkawka import ImageSimilarity

    finder = ImageSimilarity()
    finder.set_directories([Path(folder)])
    return [[str(p) for p in g] for g in finder.find_similar()]


def worker_imagededup(folder: str, method: str) -> list[list[str]]:
    import logging

    logging.disable(logging.WARNING)
    from imagededup import methods

    hasher = getattr(methods, method)(verbose=False)
    found = hasher.find_duplicates(image_dir=folder, max_distance_threshold=HASH_BITS)
    return [[os.path.join(folder, k), *(os.path.join(folder, v) for v in vs)] for k, vs in found.items() if vs]


def worker_imagehash(folder: str, method: str) -> list[list[str]]:
    """Stand-in for imagededup: imagehash's hash of the same name, all pairs within HASH_BITS."""
    import imagehash
    import numpy as np
    from PIL import Image

    fn = {"PHash": imagehash.phash, "DHash": imagehash.dhash, "WHash": imagehash.whash}[method]
    paths = sorted(str(p) for p in Path(folder).iterdir())
    bits = []
    for p in paths:
        with Image.open(p) as im:
            bits.append(fn(im).hash.reshape(-1))
    b = np.array(bits, dtype=np.uint8)
    d = (b[:, None, :] != b[None, :, :]).sum(-1)
    i, j = np.nonzero(np.triu(d <= HASH_BITS, 1))
    return [[paths[a], paths[c]] for a, c in zip(i.tolist(), j.tolist(), strict=True)]


def worker_main(argv: list[str]) -> None:
    tool, folder, out = argv[:3]
    if tool == "czkawka":
        groups = worker_czkawka(folder)
    elif tool.startswith("imagededup-"):
        groups = worker_imagededup(folder, tool.split("-", 1)[1])
    elif tool.startswith("imagehash-"):
        groups = worker_imagehash(folder, tool.split("-", 1)[1])
    else:
        raise SystemExit(f"unknown tool {tool}")
    Path(out).write_text(json.dumps(groups))


# ---------------------------------------------------------------- the runner


def timed(cmd: list[str], env: dict | None = None, stdout_to: Path | None = None) -> tuple[float, float]:
    """Run cmd; (wall seconds, CPU seconds user+sys of it and its children)."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t = time.perf_counter()
    with open(stdout_to or os.devnull, "wb") as out:
        proc = subprocess.run(cmd, env=env, stdout=out, stderr=subprocess.PIPE)
    wall = time.perf_counter() - t
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if proc.returncode not in (0,):
        raise SystemExit(f"{' '.join(cmd)} failed ({proc.returncode}): {proc.stderr.decode()[-2000:]}")
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return wall, cpu


def lookalike_groups(report_file: Path) -> list[list[str]]:
    data = json.loads(report_file.read_text())
    return [[g["keep"], *(m["path"] for m in g["members"])] for g in data["groups"]]


def pr(pred: set, truth: set) -> tuple[float | None, float | None]:
    tp = len(pred & truth)
    p = tp / len(pred) if pred else (1.0 if truth else None)
    r = tp / len(truth) if truth else None
    return p, r


def run_set(name: str, folder: Path, family: dict[str, str], work: Path, peers_py: Path, use_imagededup: bool,
            exact: bool) -> list[dict]:
    truth = truth_pairs(family)
    for p in folder.iterdir():  # every tool sees a warm page cache
        p.read_bytes()
    rows: list[dict] = []
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src"), "LOOKALIKE_HOME": str(work / "home")}
    lk = [sys.executable, "-m", "lookalike", "dupes", str(folder), "--json"]
    runs = [("lookalike near, cold", lk + ["--catalog", str(work / f"{name}-near.sqlite")], "near"),
            ("lookalike near, warm re-run", lk + ["--catalog", str(work / f"{name}-near.sqlite")], "near")]
    if exact:
        runs.append(("lookalike --tier exact, cold", lk + ["--tier", "exact", "--catalog",
                                                           str(work / f"{name}-exact.sqlite")], "exact"))
    me = str(Path(__file__).resolve())
    runs.append(("czkawka 0.1.2 (default similarity)", [str(peers_py), me, "--worker", "czkawka", str(folder)],
                 "peer"))
    for method in ("PHash", "DHash", "WHash"):
        tool = f"imagededup-{method}" if use_imagededup else f"imagehash-{method}"
        label = (f"imagededup 0.3.3 {method} (<= {HASH_BITS} bits)" if use_imagededup
                 else f"imagehash 4.3.2 {method.lower()} standing in for imagededup (<= {HASH_BITS} bits)")
        runs.append((label, [str(peers_py), me, "--worker", tool, str(folder)], "peer"))
    for k, (label, cmd, kind) in enumerate(runs):
        out = work / f"{name}-{k}.json"
        if kind == "peer":
            wall, cpu = timed([*cmd, str(out)], env={**os.environ, "PYTHONPATH": ""})
            groups = json.loads(out.read_text())
        else:
            wall, cpu = timed(cmd, env=env, stdout_to=out)
            groups = lookalike_groups(out)
        pred = group_pairs(groups)
        p, r = pr(pred, truth)
        row = {"set": name, "tool": label, "wall": wall, "cpu": cpu, "pairs": len(pred), "precision": p,
               "recall": r, "load": os.getloadavg()[0]}
        if kind == "exact":  # by construction no two files of these sets share their bytes
            row["precision"], row["recall"] = None, None
        rows.append(row)
        print(f"  {label}: {wall:.1f} s wall, {cpu:.1f} s CPU, {len(pred)} pairs, load {row['load']:.2f}",
              flush=True)
    return rows


def _f(x: float | None, fmt: str = ".3f") -> str:
    return "n/a" if x is None else format(x, fmt)


def print_table(rows: list[dict], files: int, truth: int) -> None:
    print(f"\n{rows[0]['set']}: {files} files, {truth} true pairs")
    print("| tool | precision | recall | pairs | CPU s | wall s | load |")
    print("| --- | ---: | ---: | ---: | ---: | ---: | ---: |")
    for r in rows:
        print(f"| {r['tool']} | {_f(r['precision'])} | {_f(r['recall'])} | {r['pairs']} | {r['cpu']:.1f} | "
              f"{r['wall']:.1f} | {r['load']:.2f} |")
    cold = next((r for r in rows if r["tool"] == "lookalike near, cold"), None)
    warm = next((r for r in rows if r["tool"] == "lookalike near, warm re-run"), None)
    czk = next((r for r in rows if r["tool"].startswith("czkawka")), None)
    phash = next((r for r in rows if "PHash" in r["tool"]), None)
    exact = next((r for r in rows if "exact" in r["tool"]), None)
    print("\nratios (issue 12 Done-when):")
    if cold and warm:
        print(f"- warm / cold re-run: wall {warm['wall'] / cold['wall']:.3f}, CPU {warm['cpu'] / cold['cpu']:.3f} "
              "(target <= 0.05)")
    if warm and czk:
        print(f"- lookalike warm vs czkawka cold: wall {warm['wall'] / czk['wall']:.2f}x, "
              f"CPU {warm['cpu'] / czk['cpu']:.2f}x (target <= 1)")
    if cold and phash:
        print(f"- near tier cold CPU vs {phash['tool'].split(' (')[0]}: {cold['cpu'] / phash['cpu']:.2f}x "
              "(target <= 3)")
    if exact and czk:
        print(f"- --tier exact vs czkawka cold: wall {exact['wall'] / czk['wall']:.2f}x, "
              f"CPU {exact['cpu'] / czk['cpu']:.2f}x (target <= 1)")


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "--worker":
        worker_main(sys.argv[2:])
        return
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=400, help="photos in the qualities set (x5 files; at most 400)")
    ap.add_argument("--m", type=int, default=40, help="UKBench objects in the edits set (x16 files; at most 100)")
    ap.add_argument("--sets", nargs="*", default=["qualities", "edits"], choices=["qualities", "edits"])
    ap.add_argument("--imagehash", action="store_true", help="use imagehash for the hash peers even where "
                    "imagededup imports")
    ap.add_argument("--json", type=Path, help="also write every row to this file")
    args = ap.parse_args()
    if not PHOTOS.is_dir():
        sys.exit(f"shared photos not found at {PHOTOS}; set LOOKALIKE_SHARED")
    py = peers_python()
    ok, why = (False, "--imagehash given") if args.imagehash else imagededup_importable(py)
    print(f"peers' environment: {py}; imagededup hash methods: "
          + (f"run (torch/torchvision {why})" if ok else f"cannot run ({why}); imagehash stands in"))
    print(f"{os.cpu_count()} cores; load average {os.getloadavg()[0]:.2f}", flush=True)
    for what, code in (("czkawka", "import czkawka"), ("imagededup", "import imagededup.methods"),
                       ("lookalike CLI", None)):
        cmd = ([str(py), "-c", code] if code else [sys.executable, "-m", "lookalike", "--help"])
        wall, cpu = timed(cmd, env={**os.environ, "PYTHONPATH": str(ROOT / "src") if code is None else ""})
        print(f"start-up alone, {what}: {wall:.1f} s wall, {cpu:.1f} s CPU (included in its rows below)")
    work = Path(tempfile.mkdtemp(prefix="lookalike-peers-"))
    all_rows = []
    try:
        for name in args.sets:
            folder = work / name
            files, family = (make_qualities(args.n, folder) if name == "qualities" else make_edits(args.m, folder))
            print(f"{name}: {len(files)} files in {folder}", flush=True)
            rows = run_set(name, folder, family, work, py, ok, exact=(name == "qualities"))
            print_table(rows, len(files), len(truth_pairs(family)))
            all_rows += rows
        if args.json:
            args.json.write_text(json.dumps(all_rows, indent=1))
        print(f"\nload average after: {os.getloadavg()[0]:.2f}")
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
