"""Turn a DupesReport into a journal Plan: copy/move groups into DEST/group_0001/... (the keeper's copy named
``KEEP_<name>``), move only the duplicates there (``move-dupes``: the keepers stay where they are), trash,
delete, or replace duplicates by links to their keeper. Files under --keep-in folders are never changed: a
move copies them instead, and move-dupes/trash/delete/link leave them alone.

Every operation that removes or replaces a duplicate names its keeper (path and sha256) for the journal's
pre-action check. Keeper and duplicates are hashed again here: a file whose content is not what the search saw
(``Member.sha256`` / ``Group.keep_sha256``), an "exact" duplicate that is no longer byte-identical to its
keeper, or a group whose keeper is not a regular file is left out, listed in ``plan.skipped`` with the reason.
"""

from __future__ import annotations

import os
import stat
from dataclasses import dataclass
from pathlib import Path

from lookalike.dupes.report import DupesReport, Group
from lookalike.errors import UsageError
from lookalike.journal import ApplyReport, Plan, apply_plan, write_plan
from lookalike.journal.fsops import fingerprint, kind_of, numbered_names, sha256_file
from lookalike.journal.guard import Guard

ACTIONS = ("report", "copy", "move", "move-dupes", "trash", "delete", "link")
#: Actions that put files into ``dest``.
DEST_ACTIONS = ("copy", "move", "move-dupes")
#: What the keeper's copy is called in a group folder of copy/move: ``KEEP_IMG_4711.jpg``.
KEEPER_PREFIX = "KEEP_"
#: What ``--action link`` makes by default: a hard link (same file, no space; a symbolic one can dangle).
DEFAULT_LINK_KIND = "hard"


def _free_name(name: str, used: set[str]) -> str:
    """The first of the journal's numbered names (``IMG (1).jpg``) not yet used in the group folder, compared
    without case (the folder may be on a case-insensitive file system)."""
    cand = next(c for c in numbered_names(name) if c.lower() not in used)
    used.add(cand.lower())
    return cand


def plan_for(report: DupesReport, action: str, dest: str | Path | None = None,
             link_kind: str = DEFAULT_LINK_KIND) -> Plan:
    """The journal plan that carries out ``action`` on every group of ``report``.

    copy/move: every file of group n goes to ``dest/group_000n/``, the keeper first and named
    ``KEEP_<its name>`` so that a person browsing the folder sees which one was kept; move-dupes: only the
    duplicates of group n go to ``dest/group_000n/`` under their own names, the keeper stays where it is
    (siamese's ``clean_move``: the searched folders are left with one copy of each picture); trash/delete:
    the duplicates (not the keeper); link: each duplicate is replaced by a ``link_kind`` link to its keeper.

    move-dupes never moves a keeper, a ``--keep-in`` file or a file that is one file with its keeper (a hard
    link); like a removal, it leaves out a group whose keeper is gone or changed, and a duplicate that changed
    since the search (the move carries its sha256: ``apply`` refuses it if it changes afterwards)."""
    if action not in ACTIONS or action == "report":
        raise UsageError(f"no plan for action {action!r}; choose from {', '.join(ACTIONS[1:])}")
    if action in DEST_ACTIONS and dest is None:
        raise UsageError(f"--action {action} needs --dest DIR")
    plan = Plan(description=f"dupes --tier {report.tier} --action {action}" + (f" --dest {dest}" if dest else ""))
    dest_dir = Path(dest).expanduser().absolute() if dest is not None else None
    guard = Guard.current()
    for n, g in enumerate(report.groups, 1):
        protected = set(g.protected) | ({g.keep} if g.keep_protected else set())
        if action in ("copy", "move"):
            folder = dest_dir / f"group_{n:04d}"
            used: set[str] = set()
            for path in g.paths:
                name = os.path.basename(path)
                is_keeper = path == g.keep
                target = folder / _free_name(KEEPER_PREFIX + name if is_keeper else name, used)
                note = f"the keeper of group {n}" if is_keeper else f"duplicate of {g.keep}"
                if action == "move" and path not in protected:
                    plan.move(path, target).note = note
                else:
                    plan.copy(path, target).note = note
            continue
        members = [m for m in g.members if m.path not in protected]
        if not members:
            continue
        keep_sha, why = _keeper_hash(g, guard)
        if why:
            plan.skipped.extend({"path": m.path, "reason": why} for m in members)
            continue
        used = set()
        for m in members:
            sha, why = _member_hash(m.path, g.keep, keep_sha, m.sha256, m.tier == "exact", guard)
            if why:
                plan.skipped.append({"path": m.path, "reason": why})
                continue
            if sha is None:  # one file with its keeper already (a hard link, or a symlink to it): nothing to do
                continue
            if action == "move-dupes":  # not a removal (the file goes on in dest): no keeper to name
                target = dest_dir / f"group_{n:04d}" / _free_name(os.path.basename(m.path), used)
                plan.move(m.path, target, sha256=sha).note = f"duplicate of {g.keep} (kept in place)"
            elif action == "trash":
                plan.trash(m.path, sha256=sha, keep=g.keep, keep_sha256=keep_sha)
            elif action == "delete":
                plan.delete(m.path, sha256=sha, keep=g.keep, keep_sha256=keep_sha)
            else:
                plan.link(m.path, g.keep, kind=link_kind, replace=True, sha256=sha, keep_sha256=keep_sha)
    return plan


def _regular_hash(path: str) -> tuple[str | None, str]:
    """(sha256 of the regular file at ``path``, "") or (None, why not); a symlink is not followed."""
    try:
        st = os.lstat(path)
        if stat.S_ISLNK(st.st_mode):
            return None, "is a symbolic link"
        if not stat.S_ISREG(st.st_mode):
            return None, f"is a {kind_of(st.st_mode)}"
        return sha256_file(path), ""
    except FileNotFoundError:
        return None, "no longer exists"
    except OSError as exc:
        return None, f"cannot be read ({exc.strerror or exc})"


def _keeper_hash(g: Group, guard: Guard) -> tuple[str, str]:
    """The keeper's sha256 now, or why its group cannot be cleaned up."""
    where = guard.data_folder_of(g.keep, follow=True)
    if where:
        return "", f"its keeper {g.keep} lies inside lookalike's own data folder ({where})"
    sha, why = _regular_hash(g.keep)
    if sha is None:
        return "", f"its keeper {g.keep} {why}"
    if g.keep_sha256 and sha != g.keep_sha256:
        return "", f"its keeper {g.keep} changed since the duplicates were found"
    return sha, ""


def _member_hash(path: str, keep: str, keep_sha: str, seen: str, exact: bool, guard: Guard
                 ) -> tuple[str | None, str]:
    """(the member's fingerprint for the plan, "") if it may be removed; (None, "") if it is one file with its
    keeper already; (None, why) if it is left out."""
    where = guard.data_folder_of(path)
    if where:
        return None, f"lies inside lookalike's own data folder ({where}): never acted on"
    try:
        same = os.path.samefile(path, keep) or os.path.realpath(path) == os.path.realpath(keep)
    except OSError:
        same = False
    if same:
        return None, ""
    if os.path.islink(path):  # a symlink to another copy: its content is its target's, the plan names the link
        content, why = _regular_hash(os.path.realpath(path))
        why = f"is a symbolic link whose target {why}" if content is None else ""
        try:
            fp = fingerprint(path)
        except OSError as exc:
            content, why = None, f"cannot be read ({exc.strerror or exc})"
    else:
        content, why = _regular_hash(path)
        fp = content
    if content is None:
        return None, why or "cannot be read"
    if seen and content != seen:
        return None, "changed since the duplicates were found"
    if exact and content != keep_sha:
        return None, f"is no longer byte-identical to its keeper {keep}"
    return fp, ""


@dataclass
class ActionReport:
    """What ``lookalike dupes --action`` did with a search's ``report``: the ``plan`` (``plan.skipped``: groups
    and files left out, with why), written to ``plan_file`` for ``lookalike apply`` or carried out
    (``applied``: the journal's report, a dry run's included)."""

    report: DupesReport
    action: str
    plan: Plan
    plan_file: str | None = None
    applied: ApplyReport | None = None

    @property
    def failed(self) -> bool:
        """Whether a change asked for was not (or would not be) made: refused by the journal, or left out."""
        return bool(self.plan.skipped or (self.applied is not None and self.applied.failed))

    def to_json(self) -> dict:
        data = self.report.to_json()
        if self.plan_file is not None:
            data["plan"] = self.plan_file
        if self.applied is not None:
            data["apply"] = self.applied.to_json()
        data["skipped"] = list(self.plan.skipped)
        return data


def act_on(report: DupesReport, action: str, dest: str | Path | None = None, link_kind: str = DEFAULT_LINK_KIND,
           *, dry_run: bool = False, plan_file: str | os.PathLike | None = None, progress=None) -> ActionReport:
    """``lookalike dupes --action ACTION``: the plan of :func:`plan_for`, written to ``plan_file`` (nothing is
    changed) or applied through the journal (``dry_run``: checked, nothing changed); ``lookalike undo`` reverses
    it."""
    plan = plan_for(report, action, dest, link_kind=link_kind)
    if plan_file is not None:
        write_plan(plan, plan_file)
        return ActionReport(report, action, plan, plan_file=str(plan_file))
    return ActionReport(report, action, plan, applied=apply_plan(plan, progress=progress, dry_run=dry_run))
