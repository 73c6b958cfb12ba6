"""How much the journal costs: apply and undo of each operation kind over real photos, against plain os calls.

    python bench/journal_speed.py [--copies 5] [--workdir DIR]

Copies the 400 UKBench photos of ../shared/data/photos (or $LOOKALIKE_SHARED/data/photos) ``--copies`` times
into a scratch folder, then for each kind: builds the plan (hashing every source), applies it through the
journal, undoes it, and times a plain loop of the same os calls (no journal, no hashing) for reference.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from lookalike.journal import Plan, apply_plan, undo  # noqa: E402

SHARED = Path(os.environ.get("LOOKALIKE_SHARED", ROOT.parent / "shared"))


def make_files(src: Path, dst: Path, copies: int) -> list[Path]:
    photos = sorted(src.glob("*.jpg"))
    if not photos:
        raise SystemExit(f"no photos in {src}: set LOOKALIKE_SHARED")
    dst.mkdir(parents=True)
    out = []
    for c in range(copies):
        for p in photos:
            q = dst / f"{c}_{p.name}"
            shutil.copyfile(p, q)
            out.append(q)
    return out


def build(kind: str, files: list[Path], root: Path) -> Plan:
    """The plan for one kind. Removals (delete, trash, replacing hard link) act on copies 1..n-1 of each
    photo and name copy 0 as the keeper, as `dupes` plans do (the journal refuses removals without one)."""
    plan = Plan(description=kind)
    keepers: dict[str, Path] = {}
    for f in files:
        keepers.setdefault(f.name.split("_", 1)[1], f)
    for i, f in enumerate(files):
        keeper = keepers[f.name.split("_", 1)[1]]
        if kind == "rename":
            plan.rename(f, "0_" + f.name)
        elif kind == "move":
            plan.move(f, root / "moved" / f"group_{i // 50:04d}" / f.name)
        elif kind == "copy":
            plan.copy(f, root / "copies" / f.name)
        elif f == keeper:
            continue
        elif kind == "delete":
            plan.delete(f, keep=keeper)
        elif kind == "trash":
            plan.trash(f, keep=keeper)
        elif kind == "hardlink_replace":
            plan.link(f, keeper, kind="hard", replace=True)
    return plan


def plain(kind: str, files: list[Path], root: Path) -> float:
    """The same changes with bare os calls (no hashing, no journal), then put back; returns seconds taken."""
    t = time.perf_counter()
    if kind == "rename":
        for f in files:
            os.rename(f, f.with_name("0_" + f.name))
    elif kind == "move":
        for i, f in enumerate(files):
            d = root / "moved" / f"group_{i // 50:04d}"
            d.mkdir(parents=True, exist_ok=True)
            os.rename(f, d / f.name)
    elif kind == "copy":
        (root / "copies").mkdir()
        for f in files:
            shutil.copy2(f, root / "copies" / f.name)
    else:
        return float("nan")
    elapsed = time.perf_counter() - t
    if kind == "rename":
        for f in files:
            os.rename(f.with_name("0_" + f.name), f)
    elif kind == "move":
        for i, f in enumerate(files):
            os.rename(root / "moved" / f"group_{i // 50:04d}" / f.name, f)
        shutil.rmtree(root / "moved")
    elif kind == "copy":
        shutil.rmtree(root / "copies")
    return elapsed


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--copies", type=int, default=5)
    ap.add_argument("--workdir", default=None)
    ap.add_argument("--kinds", default="rename,move,copy,delete,trash,hardlink_replace")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(dir=args.workdir) as tmp:
        tmp_path = Path(tmp)
        os.environ["LOOKALIKE_HOME"] = str(tmp_path / "home")
        os.environ["XDG_DATA_HOME"] = str(tmp_path / "xdg")  # trash goes here, not to the user's trash
        from send2trash import plat_other

        plat_other.XDG_DATA_HOME = os.fsencode(tmp_path / "xdg")
        plat_other.HOMETRASH_B = os.fsencode(tmp_path / "xdg" / "Trash")
        root = tmp_path / "photos"
        files = make_files(SHARED / "data" / "photos", root, args.copies)
        mb = sum(f.stat().st_size for f in files) / 1e6
        print(f"{len(files)} files, {mb:.0f} MB, on {os.statvfs(tmp).f_bsize}-byte-block fs at {tmp}")
        print(f"{'kind':18} {'ops':>6} {'plan s':>7} {'apply s':>8} {'files/s':>8} {'undo s':>7} {'plain os s':>10}")
        for kind in args.kinds.split(","):
            t0 = time.perf_counter()
            plan = build(kind, files, root)
            t1 = time.perf_counter()
            report = apply_plan(plan)
            t2 = time.perf_counter()
            assert not report.failed, report.failed[:3]
            res = undo(report.journal)
            t3 = time.perf_counter()
            assert res.ok, res.problems[:3]
            base = plain(kind, files, root)
            plain_s = "-" if base != base else f"{base:.2f}"  # nan: no plain equivalent timed
            rate = len(plan) / (t2 - t1)
            print(f"{kind:18} {len(plan):6} {t1 - t0:7.2f} {t2 - t1:8.2f} {rate:8.0f} {t3 - t2:7.2f} {plain_s:>10}")


if __name__ == "__main__":
    main()
