"""Write a clustering to a folder, through the journal: links (or copies), contact sheets, a dendrogram.

Layout (imagecluster's): ``OUT/cluster_with_<size>/cluster_<i>/<photo name>``. Everything is a journal
operation that only creates new entries: a name already taken in OUT is never overwritten (the journal
uses ``name (1).jpg``), a ``cluster_<i>`` folder that already exists is skipped for the next free number,
and ``lookalike undo`` removes exactly what this run wrote (and the folders it created, when empty).
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

from lookalike.errors import UsageError
from lookalike.journal import ApplyReport, Plan, apply_plan
from lookalike.organise.cluster import ClusterResult
from lookalike.organise.sheets import contact_sheet, dendrogram_png
from lookalike.pipeline import Progress


def cluster_folders(result: ClusterResult, out: str | Path) -> list[Path]:
    """The folder each cluster goes to: ``OUT/cluster_with_<size>/cluster_<i>``, skipping existing ones."""
    out = Path(os.path.abspath(out))
    next_free: dict[int, int] = {}
    folders = []
    for members in result.clusters:
        size = len(members)
        i = next_free.get(size, 0)
        while (out / f"cluster_with_{size}" / f"cluster_{i}").exists():
            i += 1
        next_free[size] = i + 1
        folders.append(out / f"cluster_with_{size}" / f"cluster_{i}")
    return folders


def plan_links(
    result: ClusterResult, out: str | Path, copy: bool = False, extras: dict[str, str] | None = None
) -> Plan:
    """A plan of new symbolic links (a copy where links are impossible), or of copies with ``copy=True``.

    ``extras``: files already written elsewhere (source -> destination) to copy into OUT as well."""
    plan = Plan(description=f"cluster --{'copy' if copy else 'links'} {os.path.abspath(out)}")
    for folder, members in zip(cluster_folders(result, out), result.clusters, strict=True):
        for photo in members:
            dst = folder / os.path.basename(photo)
            if copy:
                plan.copy(photo, dst)
            else:
                plan.link(dst, photo, kind="symbolic", fallback="copy")
    for src, dst in (extras or {}).items():
        plan.copy(src, dst)
    return plan


def write_links(
    result: ClusterResult,
    out: str | Path,
    mode: str | None = "link",
    sheet: bool = False,
    plot: bool = False,
    dry_run: bool = False,
    journal_dir: str | Path | None = None,
    progress: Progress | None = None,
) -> ApplyReport:
    """Write the clusters under ``out``: ``mode`` "link" (symlinks, copies where impossible), "copy", or None
    (nothing but the sheets/plot); ``sheet``: ``cluster_<i>_sheet.jpg`` beside each cluster folder; ``plot``:
    ``OUT/dendrogram.png``. All through one journal run (undo with ``lookalike undo``)."""
    if mode not in ("link", "copy", None):
        raise UsageError(f"unknown mode {mode!r}: use 'link' or 'copy'")
    if plot and result.linkage is None:
        raise UsageError("--plot needs the exact mode (at most 20,000 photos): the k-NN graph mode has no dendrogram")
    out_abs = Path(os.path.abspath(out))
    if out_abs.exists() and not out_abs.is_dir():
        raise UsageError(f"{out_abs} exists and is not a folder")
    tmp = Path(tempfile.mkdtemp(prefix="lookalike-cluster-"))
    try:
        extras: dict[str, str] = {}
        if sheet:
            for i, (folder, members) in enumerate(zip(cluster_folders(result, out_abs), result.clusters, strict=True)):
                src = contact_sheet(members, tmp / f"sheet_{i}.jpg")
                extras[str(src)] = str(folder.parent / f"{folder.name}_sheet.jpg")
        if plot:
            src = dendrogram_png(result.linkage, tmp / "dendrogram.png", cut=result.threshold)
            extras[str(src)] = str(out_abs / "dendrogram.png")
        if mode is None:
            plan = Plan(description=f"cluster sheets/plot {out_abs}")
            for s, d in extras.items():
                plan.copy(s, d)
        else:
            plan = plan_links(result, out_abs, copy=mode == "copy", extras=extras)
        return apply_plan(plan, journal_dir=journal_dir, progress=progress, dry_run=dry_run)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
