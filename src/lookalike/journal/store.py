"""Journal folders: one per run, holding ``journal.jsonl`` (append-only, one fsynced JSON line per event),
``plan.json`` (the plan as applied, for ``--resume``) and ``kept/`` (copies of deleted, trashed and replaced files).

Records (``type`` field):
- ``header``: id, created, description, plan_file, plan_sha256, total.
- ``op``: seq (index in the plan), state ``intended`` (written and fsynced BEFORE acting; holds everything needed
  to finish or reverse the operation) then ``done`` (with ``after``) or ``failed`` (with ``error``).
  Intended records are fsynced in groups (one fsync before the group's first action); done, failed and undo
  records are not fsynced one by one: losing them in a power cut is harmless, because resume and undo decide
  from the files' fingerprints, not from these records.
- ``undo``: seq, state ``undone`` or ``undo_failed`` (with ``reason``).
- ``end`` (apply finished), ``undo_end`` (an undo run finished).
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from lookalike import config
from lookalike.errors import UsageError
from lookalike.journal.fsops import fsync_dir, json_text

JOURNAL_FILE = "journal.jsonl"
PLAN_FILE = "plan.json"
KEPT_DIR = "kept"
LOCK_FILE = "lock"


def root_dir(journal_dir: str | os.PathLike | None = None) -> Path:
    if journal_dir is None:
        return config.journal_dir()
    path = Path(journal_dir)
    path.mkdir(parents=True, exist_ok=True)
    return path


class Journal:
    """One run's journal folder. Use ``Journal.create`` for a new run, ``open_journal`` for an existing one."""

    def __init__(self, folder: Path) -> None:
        self.folder = Path(folder)
        self.id = self.folder.name
        self._fh = None
        self._lock_fd: int | None = None

    # ----- creation and records
    @classmethod
    def create(cls, root: Path, header: dict[str, Any], plan_text: str) -> Journal:
        now = time.time_ns()
        stamp = time.strftime("%Y%m%d-%H%M%S", time.gmtime(now / 1e9))
        # ids sort in creation order (microseconds), so "the latest journal" is well defined
        folder = root / f"{stamp}-{now // 1000 % 1_000_000:06d}-{secrets.token_hex(2)}"
        (folder / KEPT_DIR).mkdir(parents=True)
        j = cls(folder)
        j.lock()
        plan_path = folder / PLAN_FILE
        with open(plan_path, "w", encoding="utf-8") as f:
            f.write(plan_text)
            f.flush()
            os.fsync(f.fileno())
        created = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(now / 1e9)) + f".{now // 1000 % 1_000_000:06d}Z"
        j.append({"type": "header", "version": 1, "id": j.id, "created": created, **header})
        fsync_dir(str(folder))
        fsync_dir(str(root))
        return j

    @property
    def file(self) -> Path:
        return self.folder / JOURNAL_FILE

    @property
    def plan_file(self) -> Path:
        return self.folder / PLAN_FILE

    def kept_path(self, rel: str) -> str:
        return str(self.folder / rel)

    def append(self, record: dict[str, Any], sync: bool = True) -> None:
        """Write one record (handed to the OS at once, so it survives the process being killed); with ``sync``
        also fsync it (so it survives a power cut) before returning."""
        if self._fh is None:
            self._fh = open(self.file, "a", encoding="utf-8")
        self._fh.write(json_text(record) + "\n")
        self._fh.flush()
        if sync:
            os.fsync(self._fh.fileno())

    def sync(self) -> None:
        """fsync the records written so far."""
        if self._fh is not None:
            self._fh.flush()
            os.fsync(self._fh.fileno())

    def records(self) -> list[dict[str, Any]]:
        """All records; a torn last line (the process was killed while writing it) is ignored. A journal
        damaged anywhere else (junk, a record of the wrong shape) raises UsageError naming the file and line."""
        try:
            data = self.file.read_bytes()
        except FileNotFoundError as exc:
            raise UsageError(f"{self.folder} holds no journal") from exc
        except OSError as exc:
            raise UsageError(f"cannot read journal {self.file}: {exc.strerror or exc}") from exc
        lines = data.split(b"\n")
        while lines and not lines[-1].strip():
            lines.pop()
        out = []
        for i, raw in enumerate(lines):
            if not raw.strip():
                continue
            try:
                record = json.loads(raw.decode("utf-8"))
            except (UnicodeDecodeError, json.JSONDecodeError):
                if i == len(lines) - 1:
                    continue  # torn by a crash while it was being written
                raise UsageError(f"journal {self.file} is damaged at line {i + 1} (not a JSON record)") from None
            problem = check_record(record, i == 0)
            if problem:
                raise UsageError(f"journal {self.file} is damaged at line {i + 1}: {problem}")
            out.append(record)
        if not out:
            raise UsageError(f"journal {self.file} is empty or damaged: it has no header")
        return out

    def header(self, records: list[dict[str, Any]] | None = None) -> dict[str, Any]:
        recs = records if records is not None else self.records()
        if not recs or recs[0].get("type") != "header":
            raise UsageError(f"journal {self.file} has no header")
        return recs[0]

    def close(self) -> None:
        if self._fh is not None:
            self._fh.close()
            self._fh = None
        self.unlock()

    # ----- locking: one process at a time works on a journal
    def lock(self) -> None:
        try:
            import fcntl
        except ImportError:  # pragma: no cover - Windows: no advisory locks, single use assumed
            return
        fd = os.open(self.folder / LOCK_FILE, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            os.close(fd)
            raise UsageError(f"journal {self.id} is in use by another lookalike process") from None
        self._lock_fd = fd

    def unlock(self) -> None:
        if self._lock_fd is not None:
            os.close(self._lock_fd)
            self._lock_fd = None

    def is_locked_elsewhere(self) -> bool:
        try:
            self.lock()
        except UsageError:
            return True
        self.unlock()
        return False

    def __enter__(self) -> Journal:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


#: What an intended record of each kind holds (strings unless said otherwise), so that a damaged journal is
#: reported as such before anything acts on it.
_INTENDED_FIELDS = {
    "move": ("src", "dst", "sha256", "tmp"), "rename": ("src", "dst", "sha256", "tmp"),
    "copy": ("src", "dst", "sha256", "tmp"), "delete": ("path", "sha256", "kept", "tmp"),
    "trash": ("path", "sha256", "kept", "tmp"), "link": ("path", "target", "kind", "tmp"), "mkdir": ("path",),
}
_STATES = {"op": ("intended", "done", "failed"), "undo": ("undone", "undo_failed")}


def _is_kept_name(value: Any) -> bool:
    """A kept copy's name: ``kept/<one name>``, never a path that leaves the journal's folder."""
    if not isinstance(value, str) or not value.startswith(KEPT_DIR + "/"):
        return False
    name = value[len(KEPT_DIR) + 1:]
    return bool(name) and "/" not in name and "\\" not in name and name not in (".", "..")


def check_record(r: Any, first: bool) -> str | None:
    """Why a parsed journal line is not a valid record (None when it is)."""
    if not isinstance(r, dict) or not isinstance(r.get("type"), str):
        return "not a journal record"
    kind = r["type"]
    if first != (kind == "header"):
        return "the first record must be the header" if first else "a second header"
    if kind == "header" and (not isinstance(r.get("total", 0), int) or isinstance(r.get("total"), bool)):
        return "the header's operation count is not a number"
    if kind in _STATES:
        seq = r.get("seq")
        if not isinstance(seq, int) or isinstance(seq, bool) or seq < 0:
            return "an operation number that is not a number"
        if r.get("state") not in _STATES[kind]:
            return f"unknown state {r.get('state')!r}"
        if kind == "op" and r["state"] == "intended":
            op = r.get("op")
            if op not in _INTENDED_FIELDS:
                return f"unknown operation {op!r}"
            need = list(_INTENDED_FIELDS[op])
            if op == "link" and r.get("replace"):
                need += ["sha256", "kept"]
            for name in need:
                if not isinstance(r.get(name), str) or not r[name]:
                    return f"operation {seq} ({op}) has no valid {name!r}"
            if op == "delete" and r.get("kind") not in (None, "symbolic"):
                return f"operation {seq} ({op}) has an invalid 'kind'"
            for name in ("keep", "keep_sha256"):
                if r.get(name) is not None and not isinstance(r[name], str):
                    return f"operation {seq} ({op}) has an invalid {name!r}"
            if "kept" in r and not _is_kept_name(r["kept"]):
                return f"operation {seq} ({op}) keeps its copy outside the journal folder"
            tmp = r.get("tmp")
            if tmp is not None and not (os.path.basename(tmp).startswith(".lookalike-") and tmp.endswith(".tmp")):
                return f"operation {seq} ({op}) has an invalid temporary name"
            mk = r.get("mkdirs", [])
            if not isinstance(mk, list) or not all(isinstance(d, str) for d in mk):
                return f"operation {seq} ({op}) has an invalid folder list"
    return None


@dataclass
class JournalState:
    """A journal's records folded into per-operation states."""

    header: dict[str, Any]
    intended: dict[int, dict[str, Any]]  # seq -> latest intended record
    state: dict[int, str]  # seq -> intended | done | failed
    errors: dict[int, str]
    undo_state: dict[int, str]  # seq -> undone | undo_failed
    undo_reasons: dict[int, str]
    ended: bool
    undo_runs: int

    @property
    def total(self) -> int:
        return int(self.header.get("total", 0))

    def status(self) -> str:
        """complete | interrupted | undone | undo incomplete."""
        if self.undo_runs or self.undo_state:
            pending = [s for s in self.intended if self.undo_state.get(s) != "undone"]
            return "undo incomplete" if pending else "undone"
        return "complete" if self.ended else "interrupted"

    def counts(self) -> dict[str, int]:
        values = list(self.state.values())
        return {"total": self.total, "done": values.count("done"), "failed": values.count("failed"),
                "unfinished": values.count("intended"),
                "undone": list(self.undo_state.values()).count("undone")}


def fold(records: list[dict[str, Any]]) -> JournalState:
    header = records[0] if records and records[0].get("type") == "header" else {}
    st = JournalState(header, {}, {}, {}, {}, {}, False, 0)
    for r in records:
        kind = r.get("type")
        if kind == "op":
            seq = int(r["seq"])
            st.state[seq] = r["state"]
            if r["state"] == "intended":
                st.intended[seq] = r
            elif r["state"] == "failed":
                st.errors[seq] = r.get("error", "")
        elif kind == "undo":
            seq = int(r["seq"])
            st.undo_state[seq] = r["state"]
            if r.get("reason"):
                st.undo_reasons[seq] = r["reason"]
            else:
                st.undo_reasons.pop(seq, None)
        elif kind == "end":
            st.ended = True
        elif kind == "undo_end":
            st.undo_runs += 1
    return st


def journal_folders(journal_dir: str | os.PathLike | None = None) -> list[Path]:
    """Every journal folder, oldest first."""
    root = root_dir(journal_dir)
    return sorted(p for p in root.iterdir() if (p / JOURNAL_FILE).is_file())


def open_journal(ref: str | os.PathLike | None = None, journal_dir: str | os.PathLike | None = None) -> Journal:
    """A journal by id, folder or journal file path; None = the run a plain ``undo`` reverses
    (:func:`lookalike.journal.manage.latest_to_undo`, the one rule for "the latest journal")."""
    if ref is None:
        from lookalike.journal.manage import latest_to_undo

        return latest_to_undo(journal_dir)
    p = Path(ref)
    if p.name == JOURNAL_FILE:
        p = p.parent
    if (p / JOURNAL_FILE).is_file():
        return Journal(p)
    candidate = root_dir(journal_dir) / str(ref)
    if (candidate / JOURNAL_FILE).is_file():
        return Journal(candidate)
    matches = [f for f in journal_folders(journal_dir) if f.name.startswith(str(ref)) or f.name.endswith(str(ref))]
    if len(matches) == 1:
        return Journal(matches[0])
    if matches:
        raise UsageError(f"{ref!r} matches several journals: {', '.join(m.name for m in matches)}")
    raise UsageError(f"no journal {ref!r} (see `lookalike journal list`)")


def folder_size(folder: Path) -> int:
    total = 0
    for dirpath, _dirs, files in os.walk(folder):
        for name in files:
            try:
                total += os.lstat(os.path.join(dirpath, name)).st_size
            except OSError:
                pass
    return total


def remove_journal(journal: Journal) -> None:
    shutil.rmtree(journal.folder)
