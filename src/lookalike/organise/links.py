"""Write a clustering to a folder, through the journal: links (or copies), contact sheets, a dendrogram.

Layout (imagecluster's): ``OUT/cluster_with_<size>/cluster_<i>/<photo name>``, ``i`` counting from 0 within each
size. Run again into the same OUT, the new tree replaces the one earlier runs wrote there, in the same journal
run (so one ``lookalike undo`` brings the previous tree back):

* what an earlier ``cluster`` run into OUT wrote is known from its journal (``journal.created_files``) and from
  the tree's manifest, ``OUT/.lookalike-links.json``, which every run writes (so the tree is still recognised
  after ``lookalike journal purge``); either way a file counts as lookalike's only while it is exactly as
  lookalike made it. Nothing else in OUT is ever removed; a manifest entry whose file changed is reported;
* each such symbolic link is removed as a link (``Plan.unlink``): its keeper is the photo it points to, which
  the journal checks (a regular file with the sha256 it has now) before removing it; a copy (``--copy``, or a
  copy made where links are impossible) is removed only while its content equals the photo it copies, which is
  its keeper; a contact sheet or dendrogram is replaced by the new one at the same name (its keeper), and one
  the new run does not write again (a sheet of a cluster that is no more, a dendrogram not asked for again) is
  removed with a photo it shows as its keeper. What has no keeper (the photo is gone or changed) is left in
  place and listed in ``plan.skipped``;
* a ``cluster_<i>`` folder holding anything else (a file of yours, a link left in place) is skipped for the
  next free number; the folders used are in ``result.folders`` (what the CLI prints).

The writing itself (removing the earlier tree, links, copies, generated files) is the journal's one link writer,
:func:`lookalike.journal.links.write_link_tree`; this module only chooses the layout.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

from lookalike.errors import UsageError
from lookalike.index import Progress
from lookalike.journal import ApplyReport
from lookalike.journal.links import GENERATED_PREFIX, EarlierTree, earlier_files, generated, triage, write_link_tree
from lookalike.organise.cluster import ClusterResult
from lookalike.organise.sheets import contact_sheet, dendrogram_png


def _descriptions(out: Path) -> tuple[str, str, str]:
    """The descriptions of the runs that write into ``out`` (how their journals are recognised)."""
    return f"cluster --links {out}", f"cluster --copy {out}", f"cluster sheets/plot {out}"


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
    earlier = earlier_files(out_abs, _descriptions(out_abs), journal_dir)
    if mode is None:  # sheets/plot only: the links of earlier runs stay (and so does what the manifest says of them)
        earlier = EarlierTree([c for c in earlier.files if generated(c)], earlier.shows, [], earlier.manifest,
                              kept=[c for c in earlier.files if not generated(c)])
    tmp = Path(tempfile.mkdtemp(prefix=GENERATED_PREFIX))
    try:
        remove, _left = triage(earlier.files, set(), earlier.shows)
        freed = {c.path for _how, c, _keeper in remove}
        folders = cluster_folders(result, out_abs, freed)  # folders freed can be used again
        result.folders = [str(f) for f in folders]
        extras: dict[str, str] = {}
        shows: dict[str, list[str]] = {}
        if sheet:
            for i, (folder, members) in enumerate(zip(folders, result.clusters, strict=True)):
                src = contact_sheet(members, tmp / f"sheet_{i}.jpg")
                extras[str(src)] = dst = str(folder.parent / f"{folder.name}_sheet.jpg")
                shows[dst] = list(members)
        if plot:
            drawn = dendrogram_png(result.linkage, tmp / "dendrogram.png", cut=result.threshold, paths=result.paths)
            extras[str(drawn.path)] = dst = str(out_abs / "dendrogram.png")
            shows[dst] = list(result.paths)
        groups = list(zip(folders, result.clusters, strict=True)) if mode is not None else []
        description = _descriptions(out_abs)[{"link": 0, "copy": 1, None: 2}[mode]]
        plan, report = write_link_tree(groups, out_abs, description, copy=mode == "copy", extras=extras,
                                       previous=earlier, shows=shows, manifest=True, dry_run=dry_run,
                                       journal_dir=journal_dir, progress=progress)
        result.left = plan.skipped
        return report
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
