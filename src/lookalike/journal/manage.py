"""List, show and purge journals."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from lookalike.errors import UsageError
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

    def to_json(self) -> dict[str, Any]:
        return {"id": self.id, "path": str(self.path), "created": self.created, "description": self.description,
                "status": self.status, **self.counts, "kept_bytes": self.kept_bytes}


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
                           folder_size(journal.folder / "kept"))
    status = st.status()
    if status == "interrupted" and journal.is_locked_elsewhere():
        status = "running"
    return JournalInfo(journal.id, journal.folder, st.header.get("created", ""), st.header.get("description", ""),
                       status, st.counts(), folder_size(journal.folder / "kept"))


def list_journals(journal_dir: str | os.PathLike | None = None) -> list[JournalInfo]:
    """Every journal, oldest first."""
    return [journal_info(Journal(f), tolerate=True) for f in journal_folders(journal_dir)]


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
