"""Trees of links under a folder, through the journal: the one link writer of ``cluster --links/--copy`` and
``faces cluster --links``.

:func:`plan_link_tree` plans, for each group folder, a symbolic link per photo (a copy where links are
impossible) or a copy, plus files generated for the run (contact sheets, a dendrogram, a manifest: written
first in a temporary folder named ``GENERATED_PREFIX...``, by which a later run recognises them). Given
what earlier runs into the same folder wrote (``created_files``), it first removes that earlier tree:

* each symbolic link is removed as a link (``Plan.unlink``): its keeper is the photo it points to, which the
  journal checks (a regular file with the sha256 it has now) before removing it; a copy is removed only while
  its content equals the photo it copies, which is its keeper; a generated file is replaced by the new one at
  the same name (its keeper). What has no keeper (the photo is gone or changed, a sheet nothing replaces) is
  left in place and listed in ``plan.skipped``. Nothing else in the folder is ever removed.

:func:`write_link_tree` applies such a plan in one journal run (one ``lookalike undo`` brings the previous
tree back) and removes the folders the removal left empty. This module knows no layout: the callers choose
the group folders.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

from lookalike.journal.fsops import fingerprint, free_name
from lookalike.journal.manage import Created
from lookalike.journal.plan import Plan
from lookalike.journal.run import ApplyReport, Progress, apply_plan

#: Files a run generates (contact sheets, a dendrogram, a manifest) are written first in a temporary folder
#: named so; copied into OUT, they are recognised by it as generated (replaced by a later run, never linked).
GENERATED_PREFIX = "lookalike-cluster-"


def generated(c: Created) -> bool:
    """A sheet or dendrogram: copied from lookalike's own temporary folder (long gone)."""
    return os.path.basename(os.path.dirname(c.source)).startswith(GENERATED_PREFIX)


def triage(previous: list[Created], replaced: set[str]) -> tuple[list[tuple[str, Created]], list[dict[str, str]]]:
    """What to do with each file earlier runs wrote: ``("unlink" | "delete", entry)`` for the links and copies
    that have a keeper, and the files left in place (with why). ``replaced``: generated files the new run writes
    again at the same name (replaced by it, see ``_plan_extras``)."""
    remove: list[tuple[str, Created]] = []
    left: list[dict[str, str]] = []
    for c in previous:
        if generated(c):
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


def plan_removals(plan: Plan, remove: list[tuple[str, Created]]) -> None:
    """Remove what earlier runs wrote in OUT, each removal naming its keeper (checked again by the journal)."""
    for how, c in remove:
        if how == "unlink":
            plan.unlink(c.path, keep=c.source)
        else:
            plan.delete(c.path, sha256=c.fingerprint, keep=c.source, keep_sha256=c.fingerprint)


def plan_link_tree(
    groups: Sequence[tuple[str | Path, Sequence[str]]], description: str, *, copy: bool = False,
    extras: dict[str, str] | None = None, previous: Sequence[Created] = (), hashes: dict[str, str] | None = None,
) -> Plan:
    """THE plan of a tree of links: for each ``(folder, photos)`` a symbolic link per photo in ``folder`` (a copy
    where links are impossible), or a copy with ``copy=True``, after removing what earlier runs wrote
    (``previous``, each removal naming its keeper, see the module doc). Two photos of one name in a folder get
    the journal's numbered names (``IMG (1).jpg``). ``extras``: files already written elsewhere (source ->
    destination) to copy in as well (one an earlier run wrote at the same destination is replaced).
    ``hashes``: the sha256 of photos already known (not hashed again)."""
    plan = Plan(description=description)
    remove, plan.skipped = triage(list(previous), set((extras or {}).values()))
    plan_removals(plan, remove)
    for folder, members in groups:
        used: set[str] = set()
        for photo in members:
            dst = free_name(os.path.join(os.fspath(folder), os.path.basename(photo)), used, on_disk=False)
            used.add(dst)
            sha = (hashes or {}).get(photo)
            if copy:
                plan.copy(photo, dst, sha256=sha)
            else:
                plan.link(dst, photo, kind="symbolic", fallback="copy", sha256=sha)
    _plan_extras(plan, extras or {}, previous)
    return plan


def _plan_extras(plan: Plan, extras: dict[str, str], previous: Sequence[Created]) -> None:
    earlier = {c.path for c in previous if generated(c)}
    for src, dst in extras.items():
        if dst in earlier:  # the earlier run's sheet/dendrogram: replaced by this one (its keeper), kept in the journal
            plan.link(dst, src, kind="hard", replace=True, fallback="copy")
        else:
            plan.copy(src, dst)


def write_link_tree(
    groups: Sequence[tuple[str | Path, Sequence[str]]], out: str | Path, description: str, *, copy: bool = False,
    extras: dict[str, str] | None = None, previous: Sequence[Created] = (), hashes: dict[str, str] | None = None,
    dry_run: bool = False, journal_dir: str | Path | None = None, progress: Progress = None,
) -> tuple[Plan, ApplyReport]:
    """Plan (:func:`plan_link_tree`) and apply, in one journal run, a tree of links under ``out``; then remove
    the folders under ``out`` that removing an earlier tree left empty. The journal-based link writer of
    ``cluster --links/--copy`` and ``faces cluster --links``."""
    plan = plan_link_tree(groups, description, copy=copy, extras=extras, previous=previous, hashes=hashes)
    report = apply_plan(plan, journal_dir=journal_dir, progress=progress, dry_run=dry_run)
    if not dry_run:
        drop_empty_folders(report, Path(os.path.abspath(out)))
    return plan, report


def drop_empty_folders(report: ApplyReport, out: Path) -> None:
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
