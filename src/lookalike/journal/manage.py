"""List, show and purge journals."""

from __future__ import annotations

import json
import os
import re
from collections.abc import Collection
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from lookalike.errors import UsageError
from lookalike.journal.fsops import fingerprint
from lookalike.journal.store import Journal, fold, folder_size, journal_folders, open_journal, remove_journal


@dataclass
class JournalInfo:
    """A journal at a glance."""

    id: str
    path: Path
    created: str
    description: str
    status: str  # complete | interrupted | running | undone | undo incomplete
    counts: dict[str, int]
    kept_bytes: int
    summary: str = ""  # one human sentence: the command, what it changed, where

    def to_json(self) -> dict[str, Any]:
        return {"id": self.id, "path": str(self.path), "created": self.created, "description": self.description,
                "summary": self.summary or self.description, "status": self.status, **self.counts,
                "kept_bytes": self.kept_bytes}

    @property
    def undoable(self) -> bool:
        """Whether a plain ``undo`` would reverse something of this run: not damaged, not (wholly) undone, and
        it changed or started to change a file (a run whose every operation was refused changed nothing)."""
        if self.status in ("damaged", "undone"):
            return False
        return self.counts.get("done", 0) + self.counts.get("unfinished", 0) > 0


#: How each kind of operation is told in a summary: (singular noun, verb).
_TOLD = {"move": "moved", "copy": "copied", "rename": "renamed", "delete": "deleted", "trash": "sent to the trash",
         "link": "linked", "mkdir": "made"}


def _where(paths: list[str]) -> str:
    folders = sorted({os.path.dirname(p) for p in paths if p})
    if not folders:
        return ""
    try:
        common = os.path.commonpath(folders)
    except ValueError:  # mixed drives (Windows)
        common = ""
    if common and os.path.dirname(common) != common:
        return common
    return f"{len(folders)} folders"


def summarize(state) -> str:
    """One sentence for a journal: ``dupes --tier exact --action delete: 3 files deleted in /photos``.

    Counts the operations that were carried out (or are under way, for an interrupted run); a command line
    that already ends with the folder (``cluster --links /out``) or a photo count is not repeated."""
    command = str(state.header.get("description") or "a plan")
    by_kind: dict[str, int] = {}
    paths: list[str] = []
    for seq, rec in state.intended.items():
        if state.state.get(seq) == "failed":
            continue
        kind = rec.get("op", "")
        if kind == "link" and rec.get("replace"):
            kind = "replace"
        elif kind == "delete" and rec.get("kind") == "symbolic":
            kind = "unlink"
        by_kind[kind] = by_kind.get(kind, 0) + 1
        if kind != "mkdir":
            paths.append(rec.get("dst") or rec.get("path") or rec.get("src") or "")
    files = {k: n for k, n in by_kind.items() if k != "mkdir"}
    if not files:
        what = "nothing changed" if not by_kind else f"{by_kind['mkdir']} folder(s) made"
    else:
        parts = []
        for kind, n in sorted(files.items(), key=lambda kv: -kv[1]):
            noun = "link" if kind == "unlink" else "file"
            verb = {"replace": "replaced", "unlink": "removed"}.get(kind) or _TOLD.get(kind, kind)
            parts.append(f"{n} {noun}{'s' if n != 1 else ''} {verb}")
        what = ", ".join(parts)
    where = _where(paths)
    command = re.sub(r" \(\d+ photos?\)$", "", command)
    folder = where
    while folder and os.path.dirname(folder) != folder:  # the command names the folder (or one above): say it once
        if command.endswith(" " + folder):
            command, where = command[: -len(folder) - 1], folder
            break
        folder = os.path.dirname(folder)
    failed = list(state.state.values()).count("failed")
    tail = f" in {where}" if where and files else ""
    return f"{command}: {what}{tail}" + (f" ({failed} refused)" if failed else "")


def journal_info(journal: Journal, tolerate: bool = False) -> JournalInfo:
    """A journal at a glance; with ``tolerate`` a damaged one is described as such (status "damaged", the
    reason as its description) instead of raising UsageError."""
    try:
        st = fold(journal.records())
    except UsageError as exc:
        if not tolerate:
            raise
        counts = {"total": 0, "done": 0, "failed": 0, "unfinished": 0, "undone": 0}
        return JournalInfo(journal.id, journal.folder, "", str(exc), "damaged", counts,
                           folder_size(journal.folder / "kept"), f"damaged: {exc}")
    status = st.status()
    if status == "interrupted" and journal.is_locked_elsewhere():
        status = "running"
    return JournalInfo(journal.id, journal.folder, st.header.get("created", ""), st.header.get("description", ""),
                       status, st.counts(), folder_size(journal.folder / "kept"), summarize(st))


def list_journals(journal_dir: str | os.PathLike | None = None) -> list[JournalInfo]:
    """Every journal, oldest first."""
    return [journal_info(Journal(f), tolerate=True) for f in journal_folders(journal_dir)]


def latest_to_undo(journal_dir: str | os.PathLike | None = None) -> Journal:
    """The run a plain ``undo`` reverses: the newest one that is not yet (wholly) undone and changed something.
    So ``undo`` run again steps back one run at a time. A run whose undo left problems stays the one chosen
    until they are solved (its files are not all back). The CLI and the service's ``/v1/undo`` both use this.
    Raises UsageError when there is none."""
    folders = journal_folders(journal_dir)
    if not folders:
        raise UsageError("there is no journal yet: nothing to undo")
    for folder in reversed(folders):
        j = Journal(folder)
        if journal_info(j, tolerate=True).undoable:
            return j
    raise UsageError(f"nothing to undo: every run ({len(folders)}) is already undone or changed no files "
                     "(see `lookalike journal list`)")


@dataclass
class Created:
    """A file an earlier run created (a new link, or a copy) that is still there exactly as that run made it."""

    path: str
    fingerprint: str  # ``symlink:<target>`` for a symbolic link, else the sha256
    source: str  # what it links to or was copied from
    journal: str  # the id of the run that made it


def _description(j: Journal) -> str | None:
    """The description in a journal's first line (its header), or None."""
    try:
        with open(j.file, "rb") as f:
            head = json.loads(f.readline().decode("utf-8"))
    except (OSError, UnicodeDecodeError, ValueError):
        return None
    return head.get("description") if isinstance(head, dict) else None


def created_files(under: str | os.PathLike, descriptions: Collection[str] | None = None,
                  journal_dir: str | os.PathLike | None = None) -> list[Created]:
    """The files that runs (those whose description is one of ``descriptions``, when given) created under ``under`` --
    new links and copies that were done and not undone -- and that still hold what the run made (their
    fingerprint now equals the journal's). What is not listed was not written by lookalike, or was changed
    since: it is never to be removed as lookalike's own. The newest run's record wins for a path."""
    root = os.path.normpath(os.path.abspath(under))
    found: dict[str, Created] = {}
    for folder in journal_folders(journal_dir):
        j = Journal(folder)
        if descriptions is not None and _description(j) not in descriptions:
            continue  # told by the header alone: the other journals are not read
        try:
            st = fold(j.records())
        except UsageError:
            continue  # a damaged journal proves nothing
        if descriptions is not None and st.header.get("description") not in descriptions:
            continue
        for seq, rec in st.intended.items():
            if st.state.get(seq) != "done" or st.undo_state.get(seq) == "undone":
                continue
            if rec.get("op") == "copy":
                path, source = rec.get("dst"), rec.get("src")
            elif rec.get("op") == "link" and not rec.get("replace"):
                path, source = rec.get("path"), rec.get("target")
            else:
                continue
            made = {(rec.get("after") or {}).get(path)}
            if rec.get("op") == "link" and rec.get("fallback") == "copy":
                made.add(rec.get("target_sha256"))  # a copy where the link could not be made
            made.discard(None)
            if not path or not source or not made or not os.path.normpath(path).startswith(root + os.sep):
                continue
            found[path] = (made, source, j.id)
    out = []
    for path, (made, source, jid) in found.items():
        try:
            now = fingerprint(path)
        except OSError:
            continue
        if now in made:
            out.append(Created(path, now, source, jid))
    return sorted(out, key=lambda c: c.path)


def show_journal(ref: str | os.PathLike | None = None, journal_dir: str | os.PathLike | None = None
                 ) -> dict[str, Any]:
    """A journal's summary and its operations, each with its last state (and undo state)."""
    j = open_journal(ref, journal_dir)
    st = fold(j.records())
    ops = []
    for seq in sorted(set(st.state)):
        rec = st.intended.get(seq, {})
        entry: dict[str, Any] = {"seq": seq, "op": rec.get("op"), "state": st.state[seq]}
        for key in ("src", "dst", "path", "target", "kind", "keep", "kept", "before", "after"):
            if rec.get(key) is not None:
                entry[key] = rec[key]
        if seq in st.errors:
            entry["error"] = st.errors[seq]
        if seq in st.undo_state:
            entry["undo"] = st.undo_state[seq]
        if seq in st.undo_reasons:
            entry["undo_problem"] = st.undo_reasons[seq]
        ops.append(entry)
    return {**journal_info(j).to_json(), "operations": ops}


def purge(ref: str | os.PathLike | None = None, all: bool = False, force: bool = False,
          journal_dir: str | os.PathLike | None = None) -> dict[str, list[str]]:
    """Delete journals (and the copies they keep: deleted files then become unrecoverable).
    Returns ``{"removed": [ids], "skipped": ["id (status)"]}``.

    An interrupted or running journal, or one whose undo left problems, is only removed with ``force``."""
    if all == (ref is not None):
        raise UsageError("purge needs a journal id, or all=True (--all)")
    targets = [Journal(f) for f in journal_folders(journal_dir)] if all else [open_journal(ref, journal_dir)]
    removed, refused = [], []
    for j in targets:
        info = journal_info(j, tolerate=True)
        if info.status in ("interrupted", "running", "undo incomplete", "damaged") and not force:
            refused.append(f"{j.id} ({info.status})")
            continue
        remove_journal(j)
        removed.append(j.id)
    if refused and not all:
        raise UsageError(f"journal {refused[0]} may hold the only copy of files: finish it with `lookalike apply "
                         "--resume` or `lookalike undo`, or purge with --force")
    return {"removed": removed, "skipped": refused}
