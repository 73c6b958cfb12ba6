"""Apply a plan through a journal, resume an interrupted run, undo a run."""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from lookalike.errors import UsageError
from lookalike.journal.fsops import fsync_dir
from lookalike.journal.guard import Guard
from lookalike.journal.manage import latest_to_undo, summarize
from lookalike.journal.ops import KINDS, Ctx, Refused
from lookalike.journal.plan import Op, Plan, load_plan
from lookalike.journal.store import Journal, fold, journal_folders, open_journal, root_dir

Progress = Callable[[int, int], None] | None


@dataclass
class ApplyReport:
    """What a run did. ``journal`` is the journal folder (None for a dry run)."""

    journal: Path | None
    total: int
    done: int = 0
    failed: list[dict[str, Any]] = field(default_factory=list)
    operations: list[dict[str, Any]] = field(default_factory=list)  # as carried out (dry run: as they would be)
    dry_run: bool = False
    resumed: bool = False

    @property
    def id(self) -> str | None:
        return self.journal.name if self.journal else None

    def to_json(self) -> dict[str, Any]:
        return {"journal": str(self.journal) if self.journal else None, "id": self.id, "dry_run": self.dry_run,
                "resumed": self.resumed, "total": self.total, "done": self.done, "failed": self.failed,
                "operations": self.operations}


@dataclass
class UndoReport:
    """What an undo did: operations reversed, already reversed, and those it could not reverse (with why)."""

    journal: Path
    undone: int = 0
    already: int = 0
    problems: list[dict[str, Any]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    summary: str = ""  # the run undone, in one sentence (see ``journal list``)

    @property
    def ok(self) -> bool:
        return not self.problems

    def to_json(self) -> dict[str, Any]:
        return {"journal": str(self.journal), "id": self.journal.name, "undone": self.undone,
                "already_undone": self.already, "problems": self.problems, "notes": self.notes,
                "summary": self.summary}


def _public(seq: int, rec: dict[str, Any]) -> dict[str, Any]:
    """The user-facing view of an intended record."""
    keep = ("op", "src", "dst", "path", "target", "kind", "replace", "keep", "kept", "before", "after")
    return {"seq": seq, **{k: rec[k] for k in keep if rec.get(k) not in (None, False)}}


#: Operations journaled together under one fsync (a group ends early when an operation touches a path an
#: earlier one in the group touches, so every operation is prepared against the files as they then are).
GROUP = 128


def _outside_journals(op: Op, ctx: Ctx) -> None:
    """No operation reads or changes anything inside the journals' folder: the copies they keep are what makes
    earlier runs undoable (with LOOKALIKE_HOME inside a searched folder, they look like duplicates)."""
    for name in ("src", "dst", "path", "target", "keep"):
        value = getattr(op, name)
        where = ctx.folders().journal_folder_of(value) if value else None
        if where:
            raise Refused(f"{value} lies inside lookalike's journal folder ({where}): the copies the journal keeps "
                          "are never acted on")


def _intend(seq: int, op: Op, ctx: Ctx) -> dict[str, Any]:
    _outside_journals(op, ctx)
    rec = {"type": "op", "seq": seq, "state": "intended", "op": op.op, **KINDS[op.op].prepare(op, ctx)}
    if op.op in ("move", "copy", "rename") and rec["dst"] != op.dst:
        rec["planned_dst"] = op.dst
    if op.op == "link" and not op.replace and rec["path"] != op.path:
        rec["planned_path"] = op.path
    return rec


def _act(journal: Journal, seq: int, rec: dict[str, Any], ctx: Ctx, report: ApplyReport) -> None:
    try:
        KINDS[rec["op"]].act(rec, ctx)
    except Exception as exc:  # any failure of one operation (OSError, OpError, send2trash's) must not stop the run
        error = _message(exc)
        journal.append({"type": "op", "seq": seq, "state": "failed", "error": error}, sync=False)
        report.failed.append({"seq": seq, "op": rec["op"], "path": rec.get("src") or rec.get("path"), "error": error})
        return
    ctx.checkpoint("acted")
    journal.append({"type": "op", "seq": seq, "state": "done", "after": rec["after"]}, sync=False)
    report.done += 1
    report.operations.append(_public(seq, rec))


def _message(exc: BaseException) -> str:
    if isinstance(exc, OSError) and exc.strerror:
        return f"{exc.strerror}: {exc.filename}" if exc.filename else exc.strerror
    return str(exc) or type(exc).__name__


def _refused(journal: Journal | None, seq: int, op: Op, exc: Exception, report: ApplyReport) -> None:
    if journal is not None:
        journal.append({"type": "op", "seq": seq, "state": "failed", "error": str(exc)}, sync=False)
    report.failed.append({"seq": seq, "op": op.op, "path": op.source or op.path or op.dst, "error": str(exc)})


def _ancestors(path: str) -> set[str]:
    out = set()
    parent = os.path.dirname(path)
    while parent and parent not in out and os.path.dirname(parent) != parent:
        out.add(parent)
        parent = os.path.dirname(parent)
    return out


def _op_paths(op: Op) -> tuple[set[str], set[str]]:
    """(paths an operation only reads, paths it may change: its own and the folders above its destination)."""
    reads = {p for p in (op.target, op.keep, op.src if op.op == "copy" else None) if p}
    writes = {p for p in (op.src if op.op != "copy" else None, op.dst, op.path) if p}
    for p in (op.dst, op.path):
        if p:
            writes |= _ancestors(p)
    return reads, writes


def _rec_paths(rec: dict[str, Any]) -> tuple[set[str], set[str]]:
    """(paths a prepared operation reads, paths it changes)."""
    reads = {p for p in (rec.get("target"), rec.get("keep"), rec.get("src") if rec["op"] == "copy" else None) if p}
    writes = {p for p in (rec.get("src") if rec["op"] != "copy" else None, rec.get("dst"), rec.get("path")) if p}
    return reads, writes | set(rec.get("mkdirs", []))


class RemovalLock:
    """An exclusive flock on ``<journals>/remove.lock``, taken around each removal (re-entrant per instance).
    Without fcntl (Windows) it does nothing."""

    def __init__(self, folder: str) -> None:
        self.path = os.path.join(folder, "remove.lock")
        self.fd: int | None = None
        self.depth = 0

    def __enter__(self) -> RemovalLock:
        if self.depth == 0:
            try:
                import fcntl
            except ImportError:  # pragma: no cover - Windows
                self.depth += 1
                return self
            if self.fd is None:
                os.makedirs(os.path.dirname(self.path), exist_ok=True)
                self.fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
            fcntl.flock(self.fd, fcntl.LOCK_EX)
        self.depth += 1
        return self

    def __exit__(self, *exc: object) -> None:
        self.depth -= 1
        if self.depth == 0 and self.fd is not None:
            import fcntl

            fcntl.flock(self.fd, fcntl.LOCK_UN)

    def close(self) -> None:
        if self.fd is not None:
            os.close(self.fd)
            self.fd = None


class _Runner:
    """Prepares operations, journals them in fsynced groups, then carries each group out in order."""

    def __init__(self, journal: Journal, report: ApplyReport, progress: Progress, done_before: int = 0) -> None:
        self.journal, self.report, self.progress = journal, report, progress
        self.count = done_before
        self.taken: set[str] = set()
        self.pending: list[tuple[int, dict[str, Any], Ctx]] = []
        self.reads: set[str] = set()  # what the pending group reads and changes
        self.writes: set[str] = set()
        self.staged = False
        self.guard = Guard.current(journal.folder.parent)
        self.hashes: dict[tuple[int, ...], str] = {}
        self.removal_lock = RemovalLock(self.guard.journals[0])

    def ctx(self, seq: int) -> Ctx:
        return Ctx(self.journal.id, str(self.journal.folder), seq, self.taken, guard=self.guard, hashes=self.hashes)

    def tick(self) -> None:
        self.count += 1
        if self.progress:
            self.progress(self.count, self.report.total)

    def add(self, seq: int, op: Op) -> None:
        reads, writes = _op_paths(op)
        if self.pending and (len(self.pending) >= GROUP or (reads | writes) & self.writes or writes & self.reads):
            self.flush()
        ctx = self.ctx(seq)
        try:
            rec = _intend(seq, op, ctx)
        except Refused as exc:
            _refused(self.journal, seq, op, exc, self.report)
            self.tick()
            return
        self.journal.append(rec, sync=False)
        stage = getattr(KINDS[op.op], "stage", None)
        if stage is not None:  # e.g. keep a copy in the journal folder; covered by the group's fsync
            try:
                stage(rec, ctx)
                self.staged = True
            except OSError:
                pass  # act() makes the copy itself, or reports why it cannot
        self.pending.append((seq, rec, ctx))
        reads, writes = _rec_paths(rec)
        self.reads |= reads
        self.writes |= writes

    def finish_intended(self, seq: int, rec: dict[str, Any]) -> None:
        """Complete an operation an earlier run journaled (it may be done, half done or not started)."""
        self.flush()
        self.act(seq, rec, self.ctx(seq))
        self.tick()

    def act(self, seq: int, rec: dict[str, Any], ctx: Ctx) -> None:
        """Carry out one journaled operation. One that removes or replaces a file does its last keeper check and
        its action under a lock shared by every lookalike process (and thread), so that two runs removing each
        other's keepers at the same moment cannot both succeed."""
        if rec["op"] in ("delete", "trash") or (rec["op"] == "link" and rec.get("replace")):
            with self.removal_lock:
                _act(self.journal, seq, rec, ctx, self.report)
        else:
            _act(self.journal, seq, rec, ctx, self.report)

    def flush(self) -> None:
        if not self.pending:
            return
        self.journal.sync()  # the group's intended records are on disk before its first action
        if self.staged:
            fsync_dir(str(self.journal.folder / "kept"))
            self.staged = False
        for seq, rec, ctx in self.pending:
            ctx.checkpoint("intended")
            self.act(seq, rec, ctx)
            self.tick()
        self.pending.clear()
        self.reads.clear()
        self.writes.clear()


def apply_plan(plan: Plan | str | os.PathLike, journal_dir: str | os.PathLike | None = None, progress: Progress = None,
               dry_run: bool = False) -> ApplyReport:
    """Carry out ``plan`` (a Plan or a plan file), journaling every operation before it happens.

    Each source is checked against the plan's sha256 first; a changed or missing source, or any failure, is
    recorded in ``report.failed`` and the run goes on. Names already taken are never overwritten: the first
    free ``name (n).ext`` is used and journaled. Operations run in plan order; a name counts as taken if a file
    is there when the operation runs. ``dry_run`` checks each operation against the files as they are now and
    writes nothing. Returns an ApplyReport whose ``journal`` is the folder to give ``undo``.
    """
    plan_file = None
    if not isinstance(plan, Plan):
        plan_file = str(Path(plan).resolve())
        plan = load_plan(plan)
    report = ApplyReport(journal=None, total=len(plan), dry_run=dry_run)
    if dry_run:
        taken: set[str] = set()
        gone: set[str] = set()  # removed by earlier operations: no keeper any more
        guard = Guard.current(root_dir(journal_dir))
        for seq, op in enumerate(plan.operations):
            try:
                rec = _intend(seq, op, Ctx("dry-run", None, seq, taken, guard=guard, gone=gone))
            except Refused as exc:
                _refused(None, seq, op, exc, report)
            else:
                report.operations.append(_public(seq, rec))
                if op.op in ("move", "rename", "delete", "trash") or (op.op == "link" and op.replace
                                                                      and op.kind == "symbolic"):
                    gone.add(op.source or "")
            if progress:
                progress(seq + 1, len(plan))
        return report
    text = plan.dumps()
    header = {"description": plan.description, "plan_file": plan_file, "total": len(plan),
              "plan_sha256": hashlib.sha256(text.encode()).hexdigest(), "cwd": os.getcwd()}
    with Journal.create(root_dir(journal_dir), header, text) as journal:
        report.journal = journal.folder
        runner = _Runner(journal, report, progress)
        try:
            for seq, op in enumerate(plan.operations):
                runner.add(seq, op)
            runner.flush()
        finally:
            runner.removal_lock.close()
        journal.append({"type": "end", "done": report.done, "failed": len(report.failed)})
    return report


def find_interrupted(plan_file: str | os.PathLike | None = None,
                     journal_dir: str | os.PathLike | None = None) -> Journal | None:
    """The latest interrupted journal (of ``plan_file`` when given), or None."""
    want = str(Path(plan_file).resolve()) if plan_file else None
    for folder in reversed(journal_folders(journal_dir)):
        j = Journal(folder)
        try:
            st = fold(j.records())
        except UsageError:  # a damaged journal is not resumed (`lookalike journal list` shows it)
            continue
        if st.status() != "interrupted" or (want and st.header.get("plan_file") != want):
            continue
        if j.is_locked_elsewhere():
            continue
        return j
    return None


def resume(journal: str | os.PathLike | Journal | None = None, journal_dir: str | os.PathLike | None = None,
           progress: Progress = None, *, plan_file: str | os.PathLike | None = None) -> ApplyReport:
    """Complete an interrupted run: finish the operations that were under way, then do the rest of its plan.

    ``journal`` is a journal id or folder; None = the latest interrupted one (of ``plan_file`` when given:
    ``lookalike apply FILE --resume``)."""
    if isinstance(journal, Journal):
        j = journal
    elif journal is None:
        found = find_interrupted(plan_file, journal_dir)
        if found is None:
            what = f"of {plan_file} " if plan_file else ""
            raise UsageError(f"there is no interrupted run {what}to resume")
        j = found
    else:
        j = open_journal(journal, journal_dir)
    j.lock()
    try:
        st = fold(j.records())
        if st.status() != "interrupted":
            raise UsageError(f"journal {j.id} is {st.status()}: nothing to resume")
        plan = load_plan(j.plan_file)
        report = ApplyReport(journal=j.folder, total=len(plan), resumed=True)
        runner = _Runner(j, report, progress)
        try:
            for seq, op in enumerate(plan.operations):
                state = st.state.get(seq)
                if state == "done":
                    report.done += 1
                    report.operations.append(_public(seq, st.intended.get(seq, {"op": op.op})))
                    runner.tick()
                elif state == "failed":
                    report.failed.append({"seq": seq, "op": op.op, "path": op.source or op.path or op.dst,
                                          "error": st.errors.get(seq, "")})
                    runner.tick()
                elif state == "intended":
                    runner.finish_intended(seq, st.intended[seq])
                else:
                    runner.add(seq, op)
            runner.flush()
        finally:
            runner.removal_lock.close()
        j.append({"type": "end", "done": report.done, "failed": len(report.failed), "resumed": True})
        return report
    finally:
        j.close()


def undo(journal: str | os.PathLike | Journal | None = None, journal_dir: str | os.PathLike | None = None,
         progress: Progress = None, *, journal_path: str | os.PathLike | None = None) -> UndoReport:
    """Reverse a run, newest operation first, from whatever state it was left in. None = the newest run not yet
    undone that changed something (:func:`latest_to_undo`), so calling ``undo()`` again steps back one run.

    Files are restored only when their sha256 matches the journal; a file the run did not create is never
    deleted or replaced. Idempotent: running it again reverses only what is left. Anything that cannot be
    restored is listed in ``report.problems`` with the reason and where the data is. (``journal_path`` is
    another name for ``journal``.)"""
    journal = journal if journal is not None else journal_path
    if isinstance(journal, Journal):
        j = journal
    elif journal is None:
        j = latest_to_undo(journal_dir)
    else:
        j = open_journal(journal, journal_dir)
    j.lock()
    try:
        st = fold(j.records())
        report = UndoReport(journal=j.folder, summary=summarize(st))
        seqs = sorted(st.intended, reverse=True)
        for i, seq in enumerate(seqs):
            rec = st.intended[seq]
            if st.undo_state.get(seq) == "undone":
                report.already += 1
            else:
                ctx = Ctx(j.id, str(j.folder), seq)
                try:
                    KINDS[rec["op"]].undo(rec, ctx)
                except Exception as exc:  # one operation that cannot be reversed must not stop the others
                    reason = _message(exc)
                    j.append({"type": "undo", "seq": seq, "state": "undo_failed", "reason": reason}, sync=False)
                    report.problems.append({"seq": seq, "op": rec["op"], "path": rec.get("src") or rec.get("path"),
                                            "reason": reason})
                else:
                    j.append({"type": "undo", "seq": seq, "state": "undone"}, sync=False)
                    report.undone += 1
                report.notes.extend(ctx.notes)
            if progress:
                progress(i + 1, len(seqs))
        j.append({"type": "undo_end", "undone": report.undone, "problems": len(report.problems)})
        return report
    finally:
        j.close()
