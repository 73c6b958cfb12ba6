"""Rank prefixes: ``sort --rename`` (``0001_IMG_4711.jpg``) and ``sort --strip``, through the journal.

The guarantee: lookalike only ever removes a prefix it wrote itself, whatever the sequence of rename, strip,
undo and apply (plans applied later included). A prefix is *recognised* (:func:`recognise`) only when

- the catalog holds a row for that exact path (``catalog/organise.py``): "lookalike gave this name, whose
  first characters are the prefix ``"05_"``, to the file with this inode, size and sha256";
- the file now at the path is that very file: same inode (a rename keeps it, a copy or a new file does
  not), same size, same content fingerprint, not a symlink standing in for it;
- and the name without the prefix is not held by the same file under another name (a hard link: then the
  prefixed name may be the user's own, e.g. after an undo).

Nothing is ever read from the shape of a name: a user's ``2019_holiday.jpg`` or ``20190610_143000.jpg`` has
no row (or a row for another file), so it is never stripped, and a second ``--rename`` keeps it whole
(``03_2019_holiday.jpg``). Rows are written only for names that a rename plan writes (never by a strip or
any other plan), and are kept after an undo: they vouch only for their own file at their own path, so when
an undo brings a file back under a name lookalike gave it earlier (undoing a second rename, or a strip),
that prefix is recognised again, and a copy or another file put under that name is not. Paths are keyed
by their resolved folder (a folder reached through a symlink is the same folder). A renamed photo the
user moved or renamed keeps its prefix (it is never guessed).

:func:`rename_photos` and :func:`strip_prefixes` are the whole workflow (plan, record, apply); the CLI calls
them. :func:`plan_rename` / :func:`plan_strip` / :func:`record_applied` / :func:`record_planned` are the
pieces, for library callers who apply the plan themselves.
"""

from __future__ import annotations

import os
import re
import stat
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from lookalike.catalog import Catalog, open_catalog
from lookalike.catalog import organise as records
from lookalike.catalog.organise import Written
from lookalike.journal import ApplyReport, Journal, Plan, apply_plan, load_plan, write_plan
from lookalike.journal.fsops import fingerprint
from lookalike.media import walk_inputs
from lookalike.organise.sort import rank_width

_TMP = ".lookalike-renaming"
_RANK_NOTE = "sort --rename: adds the rank prefix {!r}"
_RANK_NOTE_RE = re.compile(r"^sort --rename: adds the rank prefix '(\d+_)'$")
_TMP_NOTE = "sort --rename: temporary name (the new name is still held by another photo of the plan)"


def _is_rank_prefix(prefix: str) -> bool:
    return len(prefix) >= 2 and prefix.endswith("_") and prefix[:-1].isdigit() and prefix[:-1].isascii()


def _key(path: str, folders: dict[str, str] | None = None) -> str:
    """The path a record is kept under: its folder resolved (a folder reached through a symlink is the same
    folder), its own name not (a symlinked photo is itself the file renamed)."""
    head, name = os.path.split(os.path.abspath(path))
    if folders is None:
        return os.path.join(os.path.realpath(head), name)
    if head not in folders:
        folders[head] = os.path.realpath(head)
    return os.path.join(folders[head], name)


def _written(rows: Sequence[Written]) -> list[Written]:
    folders: dict[str, str] = {}
    return [Written(_key(w.path, folders), w.prefix, w.ino, w.size, w.sha256) for w in rows]


def recognise(paths: Sequence[str], catalog: Catalog | str | Path | None = None) -> dict[str, Written]:
    """path -> the record of the rank prefix lookalike wrote into that file's name, for the paths whose file
    is provably the one lookalike renamed there (see the module docstring). Other paths are left out."""
    cat = open_catalog(catalog)
    folders: dict[str, str] = {}
    keys = {os.path.abspath(p): _key(p, folders) for p in paths}
    found = records.written_at(cat, list(keys.values()))
    out: dict[str, Written] = {}
    for path, key in keys.items():
        rows = found.get(key)
        if not rows:
            continue
        try:
            st = os.lstat(path)
        except OSError:
            continue
        name = os.path.basename(path)
        rows = [
            w for w in rows
            if w.ino == st.st_ino and w.size == st.st_size and _is_rank_prefix(w.prefix)
            and name.startswith(w.prefix) and len(name) > len(w.prefix)
        ]
        if not rows:
            continue
        if not (stat.S_ISREG(st.st_mode) or stat.S_ISLNK(st.st_mode)):
            continue  # a FIFO or device swapped in: never lookalike's
        try:
            fp = fingerprint(path)
        except OSError:
            continue
        match = next((w for w in rows if w.sha256 == fp), None)
        if match is None:
            continue
        try:
            other = os.lstat(os.path.join(os.path.dirname(path), name[len(match.prefix):]))
            if (other.st_dev, other.st_ino) == (st.st_dev, st.st_ino):
                continue  # the unprefixed name is this very file (a hard link): the prefixed one may be the user's
        except OSError:
            pass
        out[path] = match
    return out


def prefix_lengths(paths: Sequence[str], catalog: Catalog) -> dict[str, int]:
    """path -> length of the recognised lookalike rank prefix (digits, without the '_')."""
    return {p: len(w.prefix) - 1 for p, w in recognise(paths, catalog).items()}


def original_name(path: str, prefix_len: int | None) -> str:
    name = os.path.basename(path)
    return name[prefix_len + 1 :] if prefix_len is not None else name


def plan_rename(order: Sequence[str], catalog: Catalog | str | Path | None = None) -> Plan:
    """A journal plan giving each photo of ``order`` the prefix of its rank (``0001_``; width fits the count).

    A prefix lookalike added earlier (and only such a prefix: :func:`recognise`) is replaced, never stacked.
    When a new name is still held by another photo of the plan, every rename goes through a temporary name
    first so no name is ever taken twice. Each final rename carries a note naming the prefix it adds, from
    which :func:`record_planned` / :func:`record_applied` remember it. Nothing is recorded here."""
    cat = open_catalog(catalog)
    order = list(dict.fromkeys(os.path.abspath(p) for p in order))
    width = rank_width(len(order))
    known = recognise(order, cat)
    moves: list[tuple[str, str, str, str | None]] = []  # (path, new name, prefix, sha256 when known)
    for rank, path in enumerate(order, 1):
        if not os.path.lexists(path):
            continue
        prefix = f"{rank:0{width}d}_"
        w = known.get(path)
        name = os.path.basename(path)
        base = name[len(w.prefix):] if w else name
        if prefix + base != name:
            moves.append((path, prefix + base, prefix, w.sha256 if w else None))
    plan = Plan(description=f"sort --rename ({len(order)} photos)")
    sources = {src for src, *_ in moves}
    clash = any(os.path.join(os.path.dirname(src), new) in sources for src, new, *_ in moves)
    if not clash:
        for src, new, prefix, sha in moves:
            plan.rename(src, new, sha256=sha).note = _RANK_NOTE.format(prefix)
        return plan
    for i, (src, new, _prefix, sha) in enumerate(moves):
        plan.rename(src, f"{_TMP}-{i}-{new}", sha256=sha).note = _TMP_NOTE
    for i, (src, new, prefix, _sha) in enumerate(moves):
        op = plan.operations[i]
        tmp = os.path.join(os.path.dirname(src), f"{_TMP}-{i}-{new}")
        plan.rename(tmp, new, sha256=op.sha256).note = _RANK_NOTE.format(prefix)
    return plan


def plan_strip(
    paths: Sequence[str | Path], catalog: Catalog | str | Path | None = None, recursive: bool = True
) -> Plan:
    """A journal plan removing, from the photos under ``paths``, exactly the rank prefixes lookalike wrote."""
    cat = open_catalog(catalog)
    files = sorted(walk_inputs([str(p) for p in paths], recursive=recursive))  # misspelt or empty: UsageError
    known = recognise(files, cat)
    plan = Plan(description=f"sort --strip ({len(known)} photos)")
    for path in files:
        w = known.get(path)
        if w is not None:
            op = plan.rename(path, os.path.basename(path)[len(w.prefix):], sha256=w.sha256)
            op.note = f"sort --strip: removes the rank prefix {w.prefix!r} lookalike added"
    return plan


def _rank_prefix(note: str | None) -> str | None:
    m = _RANK_NOTE_RE.match(note or "")
    return m.group(1) if m else None


def record_planned(plan: Plan, catalog: Catalog | str | Path | None = None) -> int:
    """Remember the prefixed names of a rename plan saved for ``lookalike apply`` instead of run now.

    Each row names the file as it is now (inode, size, sha256): it vouches for the name once the plan has
    put that very file there, and for nothing else (a plan never applied, or edited to rename another file,
    leaves it matching nothing). Returns the number of rows written."""
    cat = open_catalog(catalog)
    first: dict[str, str] = {}  # temporary path -> the photo's path before the plan
    rows = []
    for op in plan.operations:
        if op.op != "rename" or not op.src or not op.dst:
            continue
        src = first.pop(op.src, op.src)
        if op.note == _TMP_NOTE:
            first[op.dst] = src
            continue
        prefix = _rank_prefix(op.note)
        if prefix is None or not os.path.basename(op.dst).startswith(prefix) or not op.sha256:
            continue
        try:
            st = os.lstat(src)
        except OSError:
            continue
        rows.append(Written(op.dst, prefix, st.st_ino, st.st_size, op.sha256))
    records.record_written(cat, _written(rows))
    return len(rows)


def record_applied(report: ApplyReport, catalog: Catalog | str | Path | None = None,
                   plan: Plan | None = None) -> int:
    """Remember the prefixed names a rename plan produced (call it after ``apply_plan(plan_rename(...))``).

    Only the final renames of a :func:`plan_rename` plan are recorded (``plan`` defaults to the one kept in
    the run's journal); a strip, or any other plan, records nothing. Each row names the file found at the
    name the journal actually used. Returns the number of rows written."""
    if report.dry_run or report.journal is None:
        return 0
    if plan is None:
        try:
            plan = load_plan(Journal(Path(report.journal)).plan_file)
        except Exception:  # no plan kept: nothing can be vouched for
            return 0
    cat = open_catalog(catalog)
    rows = []
    for rec in report.operations:
        seq = rec.get("seq")
        if rec.get("op") != "rename" or not isinstance(seq, int) or not 0 <= seq < len(plan.operations):
            continue
        prefix = _rank_prefix(plan.operations[seq].note)
        dst = rec.get("dst")
        if prefix is None or not dst or not os.path.basename(dst).startswith(prefix):
            continue
        sha = (rec.get("after") or {}).get(dst) or plan.operations[seq].sha256
        try:
            st = os.lstat(dst)
        except OSError:
            continue
        if sha:
            rows.append(Written(dst, prefix, st.st_ino, st.st_size, sha))
    records.record_written(cat, _written(rows))
    return len(rows)


@dataclass
class RenameRun:
    """What :func:`rename_photos` / :func:`strip_prefixes` did.

    ``report`` is the journal's (None when the plan was only written to ``plan_file``, or was empty);
    ``order`` maps the photos given to their names afterwards (rename only)."""

    plan: Plan
    report: ApplyReport | None = None
    plan_file: str | None = None
    order: list[str] = field(default_factory=list)

    @property
    def failed(self) -> list[dict]:
        return self.report.failed if self.report else []


def _final_names(order: Sequence[str], report: ApplyReport) -> list[str]:
    final: dict[str, str] = {}  # path before the run -> path after (through temporary names)
    back: dict[str, str] = {}   # current path -> path before the run
    for op in report.operations:
        if op.get("op") != "rename":
            continue
        start = back.pop(op["src"], op["src"])
        final[start] = op["dst"]
        back[op["dst"]] = start
    return [final.get(p, p) for p in order]


def rename_photos(order: Sequence[str], catalog: Catalog | str | Path | None = None, *, dry_run: bool = False,
                  plan_file: str | os.PathLike | None = None) -> RenameRun:
    """``sort --rename``: give each photo of ``order`` its rank prefix through the journal, and remember the
    prefixes written (so only they are ever stripped or replaced). With ``plan_file`` the plan is written
    there for ``lookalike apply`` (and remembered now: it vouches only once applied); with ``dry_run``
    nothing is changed or remembered."""
    cat = open_catalog(catalog)
    order = [os.path.abspath(p) for p in order]
    plan = plan_rename(order, cat)
    run = RenameRun(plan=plan, order=list(order))
    if plan_file is not None:
        write_plan(plan, plan_file)
        record_planned(plan, cat)
        run.plan_file = str(plan_file)
        return run
    if not plan.operations:
        return run
    if not dry_run:
        record_planned(plan, cat)  # before acting: a run killed half-way and resumed is still vouched for
    run.report = apply_plan(plan, dry_run=dry_run)
    if not dry_run:
        record_applied(run.report, cat, plan)  # names the journal changed (a free name) are the ones found
        run.order = _final_names(order, run.report)
    return run


def strip_prefixes(paths: Sequence[str | Path], catalog: Catalog | str | Path | None = None, *,
                   recursive: bool = True, dry_run: bool = False,
                   plan_file: str | os.PathLike | None = None) -> RenameRun:
    """``sort --strip``: remove exactly the rank prefixes lookalike wrote, through the journal."""
    cat = open_catalog(catalog)
    plan = plan_strip(paths, cat, recursive=recursive)
    run = RenameRun(plan=plan)
    if plan_file is not None:
        write_plan(plan, plan_file)
        run.plan_file = str(plan_file)
        return run
    if plan.operations:
        run.report = apply_plan(plan, dry_run=dry_run)
    return run
