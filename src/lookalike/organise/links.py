"""Write a clustering to a folder, through the journal: links (or copies), contact sheets, a dendrogram.

Layout (imagecluster's): ``OUT/cluster_with_<size>/cluster_<i>/<photo name>``, ``i`` counting from 0 within each
size. Run again into the same OUT, the new tree replaces the one earlier runs wrote there, in the same journal
run (so one ``lookalike undo`` brings the previous tree back):

* what an earlier ``cluster`` run into OUT wrote is known from its journal (``journal.created_files``: links and
  copies it made, done, not undone, and still exactly as it made them). Nothing else in OUT is ever removed;
* each such symbolic link is removed as a link (``Plan.unlink``): its keeper is the photo it points to, which
  the journal checks (a regular file with the sha256 it has now) before removing it; a copy (``--copy``, or a
  copy made where links are impossible) is removed only while its content equals the photo it copies, which is
  its keeper; a contact sheet or dendrogram is replaced by the new one at the same name (its keeper). What has
  no keeper (the photo is gone or changed, a sheet nothing replaces) is left in place and listed in
  ``plan.skipped``;
* a ``cluster_<i>`` folder holding anything else (a file of yours, a link left in place) is skipped for the
  next free number; the folders used are in ``result.folders`` (what the CLI prints).
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

from lookalike.errors import UsageError
from lookalike.index import Progress
from lookalike.journal import ApplyReport, Created, Plan, apply_plan, created_files
from lookalike.journal.fsops import fingerprint
from lookalike.organise.cluster import ClusterResult
from lookalike.organise.sheets import contact_sheet, dendrogram_png

_TMP_PREFIX = "lookalike-cluster-"


def _descriptions(out: Path) -> tuple[str, str, str]:
    """The descriptions of the runs that write into ``out`` (how their journals are recognised)."""
    return f"cluster --links {out}", f"cluster --copy {out}", f"cluster sheets/plot {out}"


def _generated(c: Created) -> bool:
    """A sheet or dendrogram: copied from lookalike's own temporary folder (long gone)."""
    return os.path.basename(os.path.dirname(c.source)).startswith(_TMP_PREFIX)


def _only_freed(folder: Path, freed: set[str]) -> bool:
    """Whether everything inside ``folder`` is to be removed by this run (so the folder can be used again)."""
    for dirpath, _dirs, files in os.walk(folder):
        if any(os.path.join(dirpath, f) not in freed for f in files):
            return False
    return True


def cluster_folders(result: ClusterResult, out: str | Path, freed: set[str] | frozenset[str] = frozenset()
                    ) -> list[Path]:
    """The folder each cluster goes to: ``OUT/cluster_with_<size>/cluster_<i>``, skipping folders that hold
    anything but what this run removes (``freed``)."""
    out = Path(os.path.abspath(out))
    next_free: dict[int, int] = {}
    folders = []
    for members in result.clusters:
        size = len(members)
        i = next_free.get(size, 0)
        while True:
            folder = out / f"cluster_with_{size}" / f"cluster_{i}"
            if not os.path.lexists(folder) or (folder.is_dir() and not folder.is_symlink()
                                               and _only_freed(folder, set(freed))):
                break
            i += 1
        next_free[size] = i + 1
        folders.append(folder)
    return folders


def _triage(previous: list[Created], replaced: set[str]) -> tuple[list[tuple[str, Created]], list[dict[str, str]]]:
    """What to do with each file earlier runs wrote: ``("unlink" | "delete", entry)`` for the links and copies
    that have a keeper, and the files left in place (with why). ``replaced``: generated files the new run writes
    again at the same name (replaced by it, see ``_plan_extras``)."""
    remove: list[tuple[str, Created]] = []
    left: list[dict[str, str]] = []
    for c in previous:
        if _generated(c):
            if c.path not in replaced:
                left.append({"path": c.path, "reason": "written by an earlier run, and this run writes nothing in "
                             "its place (no keeper): left in place"})
        elif c.fingerprint.startswith("symlink:"):
            if os.path.isfile(c.source) and not os.path.islink(c.source):
                remove.append(("unlink", c))
            else:
                left.append({"path": c.path, "reason": f"a link an earlier run made to {c.source}, which is no "
                             "longer a photo file (its keeper): left in place"})
        else:
            try:
                same = not os.path.islink(c.source) and fingerprint(c.source) == c.fingerprint
            except OSError:
                same = False
            if same:
                remove.append(("delete", c))
            else:
                left.append({"path": c.path, "reason": f"a copy an earlier run made of {c.source}, which is gone "
                             "or changed since (this copy may be the only one): left in place"})
    return remove, left


def _plan_removals(plan: Plan, remove: list[tuple[str, Created]]) -> None:
    """Remove what earlier runs wrote in OUT, each removal naming its keeper (checked again by the journal)."""
    for how, c in remove:
        if how == "unlink":
            plan.unlink(c.path, keep=c.source)
        else:
            plan.delete(c.path, sha256=c.fingerprint, keep=c.source, keep_sha256=c.fingerprint)


def plan_links(
    result: ClusterResult, out: str | Path, copy: bool = False, extras: dict[str, str] | None = None,
    previous: list[Created] | None = None, folders: list[Path] | None = None,
) -> Plan:
    """A plan of new symbolic links (a copy where links are impossible), or of copies with ``copy=True``, after
    removing what earlier runs wrote (``previous``, see the module doc).

    ``extras``: files already written elsewhere (source -> destination) to copy into OUT as well (one of an
    earlier run at the same destination is replaced)."""
    out_abs = Path(os.path.abspath(out))
    plan = Plan(description=_descriptions(out_abs)[1 if copy else 0])
    remove, plan.skipped = _triage(previous or [], set((extras or {}).values()))
    _plan_removals(plan, remove)
    if folders is None:
        folders = cluster_folders(result, out_abs, {c.path for _how, c in remove})
    for folder, members in zip(folders, result.clusters, strict=True):
        for photo in members:
            dst = folder / os.path.basename(photo)
            if copy:
                plan.copy(photo, dst)
            else:
                plan.link(dst, photo, kind="symbolic", fallback="copy")
    _plan_extras(plan, extras or {}, previous or [])
    return plan


def _plan_extras(plan: Plan, extras: dict[str, str], previous: list[Created]) -> None:
    earlier = {c.path for c in previous if _generated(c)}
    for src, dst in extras.items():
        if dst in earlier:  # the earlier run's sheet/dendrogram: replaced by this one (its keeper), kept in the journal
            plan.link(dst, src, kind="hard", replace=True, fallback="copy")
        else:
            plan.copy(src, dst)


def _drop_empty_folders(report: ApplyReport, out: Path) -> None:
    """Remove the folders under OUT that the removal of an earlier tree left empty (only empty ones: nothing is
    lost; undoing the run puts each link back and creates its folder again)."""
    folders = {os.path.dirname(op["path"]) for op in report.operations if op.get("op") == "delete"}
    root = str(out)
    for folder in sorted(folders, key=len, reverse=True):
        while folder.startswith(root + os.sep):
            try:
                os.rmdir(folder)
            except OSError:
                break
            folder = os.path.dirname(folder)


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
    ``OUT/dendrogram.png``. What earlier runs wrote into ``out`` is replaced (see the module doc). All through one
    journal run (undo with ``lookalike undo``). Sets ``result.folders`` to the folders used."""
    if mode not in ("link", "copy", None):
        raise UsageError(f"unknown mode {mode!r}: use 'link' or 'copy'")
    if plot and result.linkage is None:
        raise UsageError("--plot needs the exact mode (at most 20,000 photos): the k-NN graph mode has no dendrogram")
    out_abs = Path(os.path.abspath(out))
    if out_abs.exists() and not out_abs.is_dir():
        raise UsageError(f"{out_abs} exists and is not a folder")
    previous = created_files(out_abs, _descriptions(out_abs), journal_dir) if out_abs.is_dir() else []
    if mode is None:  # sheets/plot only: the links of earlier runs stay
        previous = [c for c in previous if _generated(c)]
    tmp = Path(tempfile.mkdtemp(prefix=_TMP_PREFIX))
    try:
        remove, _left = _triage(previous, set())
        folders = cluster_folders(result, out_abs, {c.path for _how, c in remove})  # folders freed can be used again
        result.folders = [str(f) for f in folders]
        extras: dict[str, str] = {}
        if sheet:
            for i, (folder, members) in enumerate(zip(folders, result.clusters, strict=True)):
                src = contact_sheet(members, tmp / f"sheet_{i}.jpg")
                extras[str(src)] = str(folder.parent / f"{folder.name}_sheet.jpg")
        if plot:
            src = dendrogram_png(result.linkage, tmp / "dendrogram.png", cut=result.threshold)
            extras[str(src)] = str(out_abs / "dendrogram.png")
        if mode is None:
            plan = Plan(description=_descriptions(out_abs)[2])
            remove, plan.skipped = _triage(previous, set(extras.values()))
            _plan_removals(plan, remove)
            _plan_extras(plan, extras, previous)
        else:
            plan = plan_links(result, out_abs, copy=mode == "copy", extras=extras, previous=previous, folders=folders)
        result.left = plan.skipped
        report = apply_plan(plan, journal_dir=journal_dir, progress=progress, dry_run=dry_run)
        if not dry_run:
            _drop_empty_folders(report, out_abs)
        return report
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
