"""Turn a DupesReport into a journal Plan: copy/move groups into DEST/group_0001/..., trash, delete, or
replace duplicates by links to their keeper. Files under --keep-in folders are never changed: a move
copies them instead, and trash/delete/link leave them alone."""

from __future__ import annotations

import os
from pathlib import Path

from lookalike.dupes.report import DupesReport
from lookalike.errors import UsageError
from lookalike.journal import Plan

ACTIONS = ("report", "copy", "move", "trash", "delete", "link")


def _free_name(name: str, used: set[str]) -> str:
    stem, ext = os.path.splitext(name)
    n, cand = 1, name
    while cand.lower() in used:
        cand = f"{stem} ({n}){ext}"
        n += 1
    used.add(cand.lower())
    return cand


def plan_for(report: DupesReport, action: str, dest: str | Path | None = None, link_kind: str = "hard") -> Plan:
    """The journal plan that carries out ``action`` on every group of ``report``.

    copy/move: every file of group n (keeper first) goes to ``dest/group_000n/``; trash/delete: the
    duplicates (not the keeper); link: each duplicate is replaced by a ``link_kind`` link to its keeper."""
    if action not in ACTIONS or action == "report":
        raise UsageError(f"no plan for action {action!r}; choose from {', '.join(ACTIONS[1:])}")
    if action in ("copy", "move") and dest is None:
        raise UsageError(f"--action {action} needs --dest DIR")
    plan = Plan(description=f"dupes --tier {report.tier} --action {action}" + (f" --dest {dest}" if dest else ""))
    dest_dir = Path(dest).expanduser().absolute() if dest is not None else None
    for n, g in enumerate(report.groups, 1):
        protected = set(g.protected) | ({g.keep} if g.keep_protected else set())
        if action in ("copy", "move"):
            folder = dest_dir / f"group_{n:04d}"
            used: set[str] = set()
            for path in g.paths:
                target = folder / _free_name(os.path.basename(path), used)
                if action == "move" and path not in protected:
                    plan.move(path, target)
                else:
                    plan.copy(path, target)
            continue
        for m in g.members:
            if m.path in protected:
                continue
            if action == "trash":
                plan.trash(m.path)
            elif action == "delete":
                plan.delete(m.path)
            else:
                plan.link(m.path, g.keep, kind=link_kind, replace=True)
    return plan
