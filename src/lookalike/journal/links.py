"""Trees of links under a folder, through the journal: the one link writer of ``cluster --links/--copy`` and
``faces cluster --links``.

:func:`plan_link_tree` plans, for each group folder, a symbolic link per photo (a copy where links are
impossible) or a copy, plus files generated for the run (contact sheets, a dendrogram, a manifest: written
first in a temporary folder named ``GENERATED_PREFIX...``, by which a later run recognises them). Given
what earlier runs into the same folder wrote (``created_files``), it first removes that earlier tree:

* each symbolic link is removed as a link (``Plan.unlink``): its keeper is the photo it points to, which the
  journal checks (a regular file with the sha256 it has now) before removing it; a copy is removed only while
  its content equals the photo it copies, which is its keeper; a generated file is replaced by the new one at
  the same name (its keeper), and one nothing replaces (a contact sheet of a cluster that is no more, an old
  dendrogram) is removed with a photo it shows as its keeper: it is a picture of photos, drawn again from
  them at will. What has no keeper (the photo is gone or changed) is left in place and listed in
  ``plan.skipped``. Nothing else in the folder is ever removed.

With ``manifest=True`` the tree also carries its own record, ``OUT/.lookalike-links.json`` (:data:`MANIFEST`):
each link, copy and generated file the run makes, with its fingerprint (and for a generated file the photos it
shows). :func:`earlier_files` reads it beside the journals, so the tree is recognised when the journals are
gone (``lookalike journal purge``): an entry is lookalike's own only while the file at its path still has that
fingerprint; an entry that no longer matches is left alone and reported, and what no entry names is never
touched.

:func:`write_link_tree` applies such a plan in one journal run (one ``lookalike undo`` brings the previous
tree back) and removes the folders the removal left empty. This module knows no layout: the callers choose
the group folders.
"""

from __future__ import annotations

import json
import os
import shutil
import stat
import tempfile
from collections.abc import Collection, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from lookalike.journal.fsops import fingerprint, free_name, json_text
from lookalike.journal.manage import Created, created_files
from lookalike.journal.plan import Plan
from lookalike.journal.run import ApplyReport, Progress, apply_plan

#: Files a run generates (contact sheets, a dendrogram, a manifest) are written first in a temporary folder
#: named so; copied into OUT, they are recognised by it as generated (replaced by a later run, never linked).
GENERATED_PREFIX = "lookalike-cluster-"


#: The tree's own record of what lookalike wrote in it (see the module doc).
MANIFEST = ".lookalike-links.json"
MANIFEST_VERSION = 1
#: Largest manifest read (a record of a million files is far below): a bigger file is not lookalike's.
MANIFEST_LIMIT = 256 << 20


@dataclass
class EarlierTree:
    """What earlier runs wrote under a folder and that is still exactly as they wrote it (from their journals and
    the folder's manifest), the photos each generated file shows, and the manifest's entries that no longer
    match their file (left alone, reported)."""

    files: list[Created] = field(default_factory=list)
    shows: dict[str, list[str]] = field(default_factory=dict)
    changed: list[dict[str, str]] = field(default_factory=list)
    manifest: bool = False  # OUT holds a manifest lookalike wrote (replaced by the new one)
    kept: list[Created] = field(default_factory=list)  # lookalike's files this run leaves alone (still listed)


def read_manifest(out: str | os.PathLike) -> list[dict] | None:
    """The entries of ``OUT/.lookalike-links.json``, or None when there is none or it is not lookalike's (not a
    regular file, too large, not its JSON)."""
    path = os.path.join(os.fspath(out), MANIFEST)
    try:
        st = os.lstat(path)
        if not stat.S_ISREG(st.st_mode) or st.st_size > MANIFEST_LIMIT:
            return None
        with open(path, "rb") as f:
            data = json.loads(f.read().decode("utf-8", "surrogateescape"))
    except (OSError, ValueError):
        return None
    if not isinstance(data, dict) or data.get("lookalike_links") != MANIFEST_VERSION \
            or not isinstance(data.get("files"), list):
        return None
    return [e for e in data["files"] if isinstance(e, dict)]


def _inside(root: str, rel: object) -> str | None:
    """``root/rel`` when ``rel`` is a relative path that stays inside ``root`` (no ``..``, not absolute)."""
    if not isinstance(rel, str) or not rel or os.path.isabs(rel) or "\0" in rel:
        return None
    path = os.path.normpath(os.path.join(root, rel))
    return path if path.startswith(root + os.sep) else None


def earlier_files(out: str | os.PathLike, descriptions: Collection[str] | None = None,
                  journal_dir: str | os.PathLike | None = None) -> EarlierTree:
    """What earlier runs (those with one of ``descriptions``) wrote under ``out``: the journals' record
    (``created_files``) joined with the folder's manifest, each file only while its fingerprint is the one
    recorded. A manifest entry whose file changed or went is in ``changed``; nothing else is listed."""
    root = os.path.normpath(os.path.abspath(out))
    tree = EarlierTree()
    if not os.path.isdir(root):
        return tree
    real_root = os.path.realpath(root)
    found = {c.path: c for c in created_files(root, descriptions, journal_dir)}
    entries = read_manifest(root)
    tree.manifest = entries is not None
    for e in entries or []:
        path = _inside(root, e.get("path"))
        made = [m for m in e.get("fingerprints") or [] if isinstance(m, str)]
        source = e.get("source")
        if path is None or not made or not isinstance(source, str) or not os.path.isabs(source):
            continue
        if not os.path.realpath(os.path.dirname(path)).startswith(real_root + os.sep) and \
                os.path.realpath(os.path.dirname(path)) != real_root:
            continue  # a folder of the tree replaced by a link to elsewhere: not the tree lookalike wrote
        shows = [p for p in e.get("shows") or [] if isinstance(p, str) and os.path.isabs(p)]
        if shows:
            tree.shows[path] = shows
        if path in found:
            continue
        try:
            now = fingerprint(path)
        except OSError:
            now = None
        if now is not None and now in made:
            found[path] = Created(path, now, source, "manifest")
        elif now is not None or os.path.lexists(path):
            tree.changed.append({"path": path, "reason": "written by an earlier run, changed since (not "
                                 "lookalike's as it made it): left in place"})
    tree.files = sorted(found.values(), key=lambda c: c.path)
    return tree


def generated(c: Created) -> bool:
    """A sheet or dendrogram: copied from lookalike's own temporary folder (long gone)."""
    return os.path.basename(os.path.dirname(c.source)).startswith(GENERATED_PREFIX)


def _shown_photo(photos: Sequence[str]) -> str | None:
    """The first photo of a generated file that is still a regular file (its keeper when it is removed)."""
    for p in photos:
        try:
            if stat.S_ISREG(os.lstat(p).st_mode):
                return p
        except OSError:
            continue
    return None


def triage(previous: list[Created], replaced: set[str], shows: dict[str, list[str]] | None = None
           ) -> tuple[list[tuple[str, Created, str]], list[dict[str, str]]]:
    """What to do with each file earlier runs wrote: ``("unlink" | "delete", entry, keeper)`` for the links and
    copies that have a keeper, and the files left in place (with why). ``replaced``: generated files the new run
    writes again at the same name (replaced by it, see ``_plan_extras``); another generated file is removed with a
    photo it shows (``shows``) as its keeper."""
    remove: list[tuple[str, Created, str]] = []
    left: list[dict[str, str]] = []
    for c in previous:
        if generated(c):
            if c.path in replaced or os.path.basename(c.path) == MANIFEST:
                continue
            keeper = _shown_photo((shows or {}).get(c.path, []))
            if keeper is not None:
                remove.append(("delete", c, keeper))
            else:
                left.append({"path": c.path, "reason": "written by an earlier run; this run writes nothing in its "
                             "place and none of the photos it shows is left (no keeper): left in place"})
        elif c.fingerprint.startswith("symlink:"):
            if os.path.isfile(c.source) and not os.path.islink(c.source):
                remove.append(("unlink", c, c.source))
            else:
                left.append({"path": c.path, "reason": f"a link an earlier run made to {c.source}, which is no "
                             "longer a photo file (its keeper): left in place"})
        else:
            try:
                same = not os.path.islink(c.source) and fingerprint(c.source) == c.fingerprint
            except OSError:
                same = False
            if same:
                remove.append(("delete", c, c.source))
            else:
                left.append({"path": c.path, "reason": f"a copy an earlier run made of {c.source}, which is gone "
                             "or changed since (this copy may be the only one): left in place"})
    return remove, left


def plan_removals(plan: Plan, remove: list[tuple[str, Created, str]]) -> None:
    """Remove what earlier runs wrote in OUT, each removal naming its keeper (checked again by the journal)."""
    for how, c, keeper in remove:
        if how == "unlink":
            plan.unlink(c.path, keep=keeper)
        elif generated(c):  # a picture of photos: one of them is its keeper (hashed now, checked at apply)
            plan.delete(c.path, sha256=c.fingerprint, keep=keeper)
        else:
            plan.delete(c.path, sha256=c.fingerprint, keep=keeper, keep_sha256=c.fingerprint)


def plan_link_tree(
    groups: Sequence[tuple[str | Path, Sequence[str]]], description: str, *, copy: bool = False,
    extras: dict[str, str] | None = None, previous: Sequence[Created] = (), hashes: dict[str, str] | None = None,
    shows: dict[str, list[str]] | None = None,
) -> Plan:
    """THE plan of a tree of links: for each ``(folder, photos)`` a symbolic link per photo in ``folder`` (a copy
    where links are impossible), or a copy with ``copy=True``, after removing what earlier runs wrote
    (``previous``, each removal naming its keeper, see the module doc). Two photos of one name in a folder get
    the journal's numbered names (``IMG (1).jpg``). ``extras``: files already written elsewhere (source ->
    destination) to copy in as well (one an earlier run wrote at the same destination is replaced).
    ``hashes``: the sha256 of photos already known (not hashed again). ``shows``: for earlier generated files, the
    photos each one shows (one is the keeper of a sheet nothing replaces)."""
    plan = Plan(description=description)
    remove, plan.skipped = triage(list(previous), set((extras or {}).values()), shows)
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
    extras: dict[str, str] | None = None, previous: Sequence[Created] | EarlierTree = (),
    hashes: dict[str, str] | None = None, shows: dict[str, Sequence[str]] | None = None, manifest: bool = False,
    dry_run: bool = False, journal_dir: str | Path | None = None, progress: Progress = None,
) -> tuple[Plan, ApplyReport]:
    """Plan (:func:`plan_link_tree`) and apply, in one journal run, a tree of links under ``out``; then remove
    the folders under ``out`` that removing an earlier tree left empty. The journal-based link writer of
    ``cluster --links/--copy`` and ``faces cluster --links``. ``previous``: what earlier runs wrote (an
    :class:`EarlierTree` from :func:`earlier_files`, or the journals' list). ``manifest``: write the tree's
    record ``OUT/.lookalike-links.json`` too (``shows``: the photos each generated file shows, by destination)."""
    earlier = previous if isinstance(previous, EarlierTree) else EarlierTree(list(previous))
    plan = plan_link_tree(groups, description, copy=copy, extras=extras, previous=earlier.files, hashes=hashes,
                          shows=earlier.shows)
    plan.skipped.extend(earlier.changed)
    out_abs = os.path.normpath(os.path.abspath(out))
    tmp = tempfile.mkdtemp(prefix=GENERATED_PREFIX) if manifest else None
    try:
        if tmp is not None:
            _plan_manifest(plan, out_abs, tmp, extras or {}, shows or {}, earlier)
        report = apply_plan(plan, journal_dir=journal_dir, progress=progress, dry_run=dry_run)
    finally:
        if tmp is not None:
            shutil.rmtree(tmp, ignore_errors=True)
    if not dry_run:
        drop_empty_folders(report, Path(out_abs))
    return plan, report


def _plan_manifest(plan: Plan, out: str, tmp: str, extras: dict[str, str], shows: dict[str, Sequence[str]],
                   earlier: EarlierTree) -> None:
    """Add the tree's manifest to ``plan``: every link, copy and generated file it makes under ``out`` (path
    relative to ``out``, what it stands for, the fingerprints it may have), written to ``tmp`` and copied in
    (replacing the earlier manifest, which is lookalike's own record)."""
    files = []
    touched = {op.path for op in plan.operations if op.removes}
    for c in [*earlier.files, *earlier.kept]:  # earlier files this run leaves as they are stay lookalike's
        if c.path not in touched and os.path.basename(c.path) != MANIFEST:
            entry = {"path": os.path.relpath(c.path, out), "source": c.source, "fingerprints": [c.fingerprint]}
            if c.path in earlier.shows:
                entry["shows"] = earlier.shows[c.path]
            files.append(entry)
    for op in plan.operations:
        if op.op == "copy" and op.dst and op.src:
            dst, src, made = op.dst, op.src, [op.sha256] if op.sha256 else []
        elif op.op == "link" and not op.replace and op.path and op.target:
            dst, src = op.path, op.target
            made = ["symlink:" + op.target] if op.kind == "symbolic" else []
            if op.fallback == "copy" and op.sha256:
                made.append(op.sha256)  # a copy where the link could not be made
        elif op.op == "link" and op.replace and op.path and op.target:  # a generated file written again
            dst, src, made = op.path, op.target, [op.keep_sha256] if op.keep_sha256 else []
        else:
            continue
        rel = os.path.relpath(dst, out)
        if rel.startswith(os.pardir) or not made:
            continue
        entry = {"path": rel, "source": src, "fingerprints": made}
        if src in extras and dst in shows:
            entry["shows"] = list(shows[dst])
        files.append(entry)
    dst = os.path.join(out, MANIFEST)
    src = os.path.join(tmp, MANIFEST)
    with open(src, "w", encoding="utf-8") as f:  # json_text writes names that are not UTF-8 as \udcXX escapes
        f.write(f'{{"lookalike_links": {MANIFEST_VERSION}, "note": "what lookalike wrote here (lookalike cluster); '
                'a later run replaces these files while they are unchanged", "files": [\n')
        f.write(",\n".join(json_text(e) for e in files))
        f.write("\n]}\n")
    if earlier.manifest:
        plan.link(dst, src, kind="hard", replace=True, fallback="copy")
    elif os.path.lexists(dst):
        plan.skipped.append({"path": dst, "reason": "a file of that name that is not lookalike's manifest: left "
                             "in place, no manifest written (a re-run after `journal purge` will not know this tree)"})
    else:
        plan.copy(src, dst)


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
