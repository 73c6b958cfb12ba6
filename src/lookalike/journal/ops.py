"""How each kind of operation is prepared, carried out and reversed.

Every operation is written to the journal as ``intended`` (with the fingerprint of every path it touches, the
free name it will use, the folders it will create and where it keeps a copy) before anything changes. ``act``
and ``undo`` then look at the files themselves, so both work from ANY state a crash can leave: not started,
half done (e.g. a file with both its old and new name, a kept copy made but the original not yet removed),
or done. They never replace or delete a file unless its fingerprint shows it is the one the journal made.

Step points (each calls :func:`step_point`): ``intended`` (journaled, nothing changed yet), ``checked`` (a removal's
keeper was checked a last time, nothing changed yet), ``kept`` (a copy of the original is in the journal folder),
``staged`` (the new file exists under a temporary name), ``acted``.

The keeper check (``check_keeper`` at prepare, ``recheck_keeper`` right before the file is removed or replaced,
also when a resumed run finishes an operation journaled by an earlier process) is the one place that makes sure
a clean-up never removes the last copy: the operation's keeper must still be a regular file (not a symlink),
outside lookalike's data folder, with the sha256 the plan names, and another file than the one removed. A symbolic
link removed as such (``Plan.unlink``: a link lookalike made) has as keeper the file it points to: the link must
still point exactly there, and that file must pass the same check; any other removal of a symlink pointing at its
keeper is refused (a link is not a duplicate of its target).
"""

from __future__ import annotations

import errno
import os
import stat
from dataclasses import dataclass, field
from typing import Any

from lookalike.journal.fsops import (
    DIR,
    SPECIAL,
    copy_durable,
    fingerprint,
    free_name,
    fsync_dir,
    hash_with_stat,
    is_link_to,
    kind_of,
    missing_dirs,
    move_noclobber,
    publish,
    remove_quietly,
    stat_signature,
)
from lookalike.journal.guard import Guard
from lookalike.journal.plan import Op


class Refused(Exception):
    """The operation was not started (its source is missing or changed, its target is unusable...)."""


class OpError(Exception):
    """The operation could not be carried out or completed."""


class UndoProblem(Exception):
    """The operation could not be reversed; the message says why and where the data is."""


@dataclass
class Ctx:
    """What an operation needs to know about its run."""

    journal_id: str
    journal_folder: str | None
    seq: int
    taken: set[str] = field(default_factory=set)
    notes: list[str] = field(default_factory=list)
    guard: Guard | None = None  # lookalike's own folders (found when first needed)
    gone: set[str] = field(default_factory=set)  # dry run: paths earlier operations of the plan remove
    hashes: dict[tuple[int, ...], str] = field(default_factory=dict)  # keeper sha256 by stat signature, per run

    def folders(self) -> Guard:
        if self.guard is None:
            root = os.path.dirname(self.journal_folder) if self.journal_folder else None
            self.guard = Guard.current(root)
        return self.guard

    def tmp_beside(self, path: str) -> str:
        return os.path.join(os.path.dirname(path), f".lookalike-{self.journal_id}-{self.seq}.tmp")

    def kept_rel(self, path: str) -> str:
        return f"kept/{self.seq:06d}-{os.path.basename(path)[-180:]}"

    def kept_abs(self, rec: dict[str, Any]) -> str:
        return os.path.join(self.journal_folder or "", rec["kept"])

    def checkpoint(self, point: str) -> None:
        step_point(self.seq, point)


def step_point(seq: int, point: str) -> None:
    """Called when operation ``seq`` reaches a step point (see the module doc). Does nothing: nothing in
    lookalike, and no environment variable, can make it do anything. The tests replace it in their own
    interpreter (tests/crash_points.py) to stop a run there, as a crash or ``kill -9`` would."""


# ----------------------------------------------------------------------------- shared steps
def _fingerprint_or_refuse(path: str) -> str | None:
    """:func:`fingerprint`, a file that cannot be read being a refusal."""
    try:
        return fingerprint(path)
    except OSError as exc:
        raise Refused(f"cannot read {path}: {exc.strerror or exc}") from exc


def _source(path: str, expected: str | None) -> str:
    fp = _fingerprint_or_refuse(path)
    if fp is None:
        raise Refused(f"{path} does not exist")
    if fp == DIR:
        raise Refused(f"{path} is a folder; only files are handled")
    if fp.startswith(SPECIAL):
        raise Refused(f"{path} is a {fp[len(SPECIAL):]}; only regular files and links are handled")
    if expected and fp != expected:
        raise Refused(f"{path} changed since the plan was made (sha256 {fp[:12]}..., plan says {expected[:12]}...)")
    return fp


def _no_keeper(path: str, ctx: Ctx) -> bool:
    """Whether ``path`` may be removed without naming a keeper: only lookalike's own files (a face model...)."""
    return ctx.folders().data_folder_of(path) is not None


def check_keeper(op: Op, path: str, ctx: Ctx) -> dict[str, Any]:
    """The pre-action check of an operation that removes or replaces ``path``; the journal record's keeper
    fields (none for lookalike's own files). Raises Refused with the reason."""
    keep, want = op.keep, op.keep_sha256
    if op.op == "link":
        if keep and os.path.normpath(keep) != os.path.normpath(op.target or ""):
            raise Refused(f"{path}: the keeper of a replacing link is its target {op.target}, not {keep}")
        keep = op.target if want else None
    if not keep or not want:
        if not keep and not want and _no_keeper(path, ctx):
            return {}
        if keep:
            raise Refused(f"{path}: the plan gives no keep_sha256 for its keeper {keep} (did the keeper exist when "
                          "the plan was made?)")
        raise Refused(f"{path}: the plan does not name its keeper (keep and keep_sha256: the file that still holds "
                      "this photo afterwards); an operation that removes or replaces a file must name one")
    where = ctx.folders().data_folder_of(keep, follow=True) or ctx.folders().journal_folder_of(keep, follow=True)
    if where:
        raise Refused(f"{path}: its keeper {keep} lies inside lookalike's own data folder ({where}), which is "
                      "never a keeper of your photos")
    if keep in ctx.gone:
        raise Refused(f"{path}: its keeper {keep} is removed or replaced earlier in this plan")
    return _verify_keeper(path, keep, want, None, ctx, Refused, link=_removes_link(op.op, op.kind))


def _removes_link(op: str | None, kind: str | None) -> bool:
    """Whether the operation removes a symbolic link as such (``delete`` with ``kind="symbolic"``, what
    ``Plan.unlink`` builds): then its keeper is the file the link points to, not a duplicate of it."""
    return op == "delete" and kind == "symbolic"


def link_target(path: str) -> str:
    """Where the symbolic link at ``path`` points (a relative target taken from the link's folder), normalised."""
    target = os.readlink(path)
    return os.path.normpath(os.path.join(os.path.dirname(path), target))


def _verify_keeper(path: str, keep: str, want: str, known: list[int] | None, ctx: Ctx,
                   error: type[Exception], link: bool = False) -> dict[str, Any]:
    """Check the keeper on disk; ``known``: its stat signature when last hashed (unchanged = same content).
    ``link``: ``path`` is a symbolic link being removed, which must point at ``keep`` itself."""
    if link:
        if not os.path.islink(path):
            raise error(f"{path} is not a symbolic link (the plan removes it as a link to {keep})")
        if link_target(path) != os.path.normpath(keep):
            raise error(f"{path} points at {os.readlink(path)}, not at its keeper {keep}; not removed")
    try:
        st = os.lstat(keep)
    except FileNotFoundError:
        raise error(f"{path}: its keeper {keep} no longer exists") from None
    except OSError as exc:
        raise error(f"{path}: cannot read its keeper {keep}: {exc.strerror or exc}") from exc
    if stat.S_ISLNK(st.st_mode):
        raise error(f"{path}: its keeper {keep} is a symbolic link, not a file holding the photo")
    if not stat.S_ISREG(st.st_mode):
        raise error(f"{path}: its keeper {keep} is a {kind_of(st.st_mode)}, not a regular file")
    try:
        pst = os.lstat(path)
    except OSError:
        pst = None
    if pst is not None and (pst.st_dev, pst.st_ino) == (st.st_dev, st.st_ino):
        raise error(f"{path} and its keeper {keep} are one file (hard links to the same data): removing one name "
                    "frees nothing and is not a duplicate clean-up")
    if not link and pst is not None and stat.S_ISLNK(pst.st_mode) \
            and os.path.realpath(path) == os.path.realpath(keep):
        raise error(f"{path} is a symbolic link to its keeper {keep}, not a duplicate of it")
    sig = stat_signature(st)
    if known is not None and sig == known:
        return {"keep": keep, "keep_sha256": want, "keep_stat": sig}
    h = ctx.hashes.get(tuple(sig))
    if h is None:
        try:
            h, fst = hash_with_stat(keep)
        except OSError as exc:
            raise error(f"{path}: cannot read its keeper {keep}: {exc.strerror or exc}") from exc
        if stat_signature(fst) != sig:
            raise error(f"{path}: its keeper {keep} changed while it was being checked")
        ctx.hashes[tuple(sig)] = h
    if h != want:
        raise error(f"{path}: its keeper {keep} changed since the plan was made (sha256 {h[:12]}..., plan says "
                    f"{want[:12]}...); not removed")
    return {"keep": keep, "keep_sha256": want, "keep_stat": sig}


def recheck_keeper(rec: dict[str, Any], ctx: Ctx) -> None:
    """The keeper check again, right before the file at ``rec["path"]`` is removed or replaced (OpError): also
    covers a resumed run finishing an operation an earlier process journaled."""
    path, keep = rec["path"], rec.get("keep")
    if not keep:
        if _no_keeper(path, ctx):
            return
        raise OpError(f"{path}: the journal names no keeper for it (journaled by an older lookalike?); not removed")
    where = ctx.folders().data_folder_of(keep, follow=True) or ctx.folders().journal_folder_of(keep, follow=True)
    if where:
        raise OpError(f"{path}: its keeper {keep} lies inside lookalike's own data folder ({where})")
    _verify_keeper(path, keep, rec.get("keep_sha256") or "", rec.get("keep_stat"), ctx, OpError,
                   link=_removes_link(rec.get("op"), rec.get("kind")))
    ctx.checkpoint("checked")


def _new_name(path: str, ctx: Ctx) -> tuple[str, list[str]]:
    """A free name for a new file at ``path`` and the folders to create for it."""
    dst = free_name(path, ctx.taken, ctx.gone)  # a dry run: what earlier operations remove is free
    dirs = missing_dirs(os.path.dirname(dst))
    first_existing = os.path.dirname(dirs[0]) if dirs else os.path.dirname(dst)
    if not os.path.isdir(first_existing):
        raise Refused(f"{first_existing} is not a folder")
    ctx.taken.add(dst)
    return dst, dirs


def _into_folder(op: Op) -> str:
    """A move or copy whose destination is an existing folder puts the file inside it, under its own name."""
    dst = op.dst or ""
    if op.op in ("move", "copy") and os.path.isdir(dst) and not os.path.islink(dst):
        return os.path.join(dst, os.path.basename(op.src or ""))
    return dst


def _make_dirs(rec: dict[str, Any]) -> None:
    for d in rec.get("mkdirs", []):
        os.makedirs(d, exist_ok=True)


def _remove_dirs(rec: dict[str, Any], ctx: Ctx) -> None:
    """Remove the folders this operation created, deepest first, when they are empty."""
    for d in reversed(rec.get("mkdirs", [])):
        try:
            os.rmdir(d)
        except FileNotFoundError:
            pass
        except OSError:
            if os.path.isdir(d):
                ctx.notes.append(f"{d} was created by the run but is not empty; left in place")


def _restore(kept: str, path: str, h: str, ctx: Ctx) -> None:
    """Put the kept copy back at ``path`` (nothing is there)."""
    if fingerprint(kept) != h:
        raise UndoProblem(f"the copy kept in the journal ({kept}) is missing or damaged; cannot restore {path}")
    os.makedirs(os.path.dirname(path), exist_ok=True)
    move_noclobber(kept, path, ctx.tmp_beside(path))


def _same_device(path: str, target: str) -> bool:
    """Whether a new file at ``path`` would be on ``target``'s file system (judged by the nearest existing folder)."""
    folder = os.path.dirname(path)
    while folder and not os.path.isdir(folder) and os.path.dirname(folder) != folder:
        folder = os.path.dirname(folder)
    try:
        return os.stat(folder).st_dev == os.stat(target).st_dev
    except OSError:
        return True  # let the operation itself report the problem


def _describe(path: str, fp: str | None, expected: str | None) -> str:
    if fp is None:
        return f"{path} is missing"
    if fp == expected:
        return f"{path} is as expected"
    return f"{path} holds other content"


# ----------------------------------------------------------------------------- kinds
class Move:
    """move and rename: the file gets a new name (a hard link then an unlink, or a copy across file systems)."""

    def prepare(self, op: Op, ctx: Ctx) -> dict[str, Any]:
        src = op.src or ""
        h = _source(src, op.sha256)
        if os.path.normcase(src) == os.path.normcase(op.dst or ""):
            raise Refused(f"{src}: source and destination are the same")
        dst, dirs = _new_name(_into_folder(op), ctx)
        return {"src": src, "dst": dst, "sha256": h, "mkdirs": dirs, "tmp": ctx.tmp_beside(dst),
                "before": {src: h, dst: None}, "after": {src: None, dst: h}}

    def act(self, rec: dict[str, Any], ctx: Ctx) -> None:
        src, dst, h = rec["src"], rec["dst"], rec["sha256"]
        s, d = fingerprint(src), fingerprint(dst)
        if s is None and d == h:
            return
        if s == h and d == h:  # both names exist: the new one is complete, drop the old one
            os.unlink(src)
            return
        if s == h and d is None:
            _make_dirs(rec)
            remove_quietly(rec["tmp"])
            move_noclobber(src, dst, rec["tmp"], on_staged=lambda: ctx.checkpoint("staged"))
            return
        raise OpError(f"cannot complete the move: {_describe(src, s, h)}, {_describe(dst, d, h)}")

    def undo(self, rec: dict[str, Any], ctx: Ctx) -> None:
        src, dst, h = rec["src"], rec["dst"], rec["sha256"]
        remove_quietly(rec["tmp"])
        s, d = fingerprint(src), fingerprint(dst)
        if s == h and d == h:
            os.unlink(dst)  # made by the run (half-done move)
        elif s is None and d == h:
            os.makedirs(os.path.dirname(src), exist_ok=True)
            move_noclobber(dst, src, ctx.tmp_beside(src))
        elif s is None and d is None:
            raise UndoProblem(f"{dst} is gone (moved or deleted after the run): cannot restore {src}")
        elif s != h and s is not None:
            raise UndoProblem(f"a different file now exists at {src}; {dst} left in place")
        elif s is None:
            raise UndoProblem(f"{dst} was changed after the run; left in place (not moved back to {src})")
        _remove_dirs(rec, ctx)


class Copy:
    """copy: written under a temporary name beside the destination, fsynced, then given its name."""

    def prepare(self, op: Op, ctx: Ctx) -> dict[str, Any]:
        src = op.src or ""
        h = _source(src, op.sha256)
        dst, dirs = _new_name(_into_folder(op), ctx)
        return {"src": src, "dst": dst, "sha256": h, "mkdirs": dirs, "tmp": ctx.tmp_beside(dst),
                "before": {src: h, dst: None}, "after": {src: h, dst: h}}

    def act(self, rec: dict[str, Any], ctx: Ctx) -> None:
        src, dst, h = rec["src"], rec["dst"], rec["sha256"]
        d = fingerprint(dst)
        if d == h:
            return
        if d is not None:
            raise OpError(f"{dst} is now taken by another file")
        if fingerprint(src) != h:
            raise OpError(f"{src} changed or vanished before it could be copied")
        _make_dirs(rec)
        copy_durable(src, rec["tmp"])
        ctx.checkpoint("staged")
        publish(rec["tmp"], dst)

    def undo(self, rec: dict[str, Any], ctx: Ctx) -> None:
        dst, h = rec["dst"], rec["sha256"]
        remove_quietly(rec["tmp"])
        d = fingerprint(dst)
        if d == h:
            os.unlink(dst)
        elif d is not None:
            raise UndoProblem(f"{dst} was changed after the run; left in place")
        _remove_dirs(rec, ctx)


class Delete:
    """delete: the file is moved into the journal folder (copied there first across file systems)."""

    trash = False

    def prepare(self, op: Op, ctx: Ctx) -> dict[str, Any]:
        path = op.path or ""
        h = _source(path, op.sha256)
        keeper = check_keeper(op, path, ctx)
        kind = {"kind": op.kind} if op.kind else {}  # "symbolic": a link removed as such (Plan.unlink)
        return {"path": path, "sha256": h, **kind, **keeper, "kept": ctx.kept_rel(path), "tmp": ctx.tmp_beside(path),
                "before": {path: h}, "after": {path: None}}

    def act(self, rec: dict[str, Any], ctx: Ctx) -> None:
        todo = _removal_to_do(rec, ctx)
        if todo is None:
            return
        path, h, kept, k = todo
        recheck_keeper(rec, ctx)
        if k is None:  # one atomic rename into the journal folder; a durable copy across file systems
            try:
                os.rename(path, kept)
            except OSError as exc:
                if exc.errno != errno.EXDEV:
                    raise
                _copy_to_kept(path, kept)
                fsync_dir(os.path.dirname(kept))
        elif k != h:
            raise OpError(f"{kept} already holds other content")
        ctx.checkpoint("kept")
        remove_quietly(path)

    def undo(self, rec: dict[str, Any], ctx: Ctx) -> None:
        path, h = rec["path"], rec["sha256"]
        kept = ctx.kept_abs(rec)
        remove_quietly(kept + ".tmp")
        remove_quietly(rec["tmp"])
        p = fingerprint(path)
        if p == h:
            return
        if p is not None:
            raise UndoProblem(f"a different file now exists at {path}; the original is kept at {kept}")
        _restore(kept, path, h, ctx)


def _removal_to_do(rec: dict[str, Any], ctx: Ctx) -> tuple[str, str, str, str | None] | None:
    """Where a delete or trash stands: None when it is complete (the file gone, its copy kept in the journal
    folder), else (path, sha256, kept path, what is at the kept path now); OpError when the file changed."""
    path, h = rec["path"], rec["sha256"]
    kept = ctx.kept_abs(rec)
    p, k = fingerprint(path), fingerprint(kept)
    if p is None and k == h:
        return None
    if p != h:
        raise OpError(f"cannot complete: {_describe(path, p, h)}")
    return path, h, kept, k


def _copy_to_kept(path: str, kept: str) -> None:
    """A durable copy of ``path`` at ``kept`` (written beside it as ``kept.tmp``, then renamed over it)."""
    copy_durable(path, kept + ".tmp")
    os.replace(kept + ".tmp", kept)


def _keep_link(path: str, kept: str) -> None:
    """Keep the file at ``path`` in the journal folder: a hard link (instant, no extra space) where possible,
    else a durable copy."""
    remove_quietly(kept)
    try:
        os.link(path, kept, follow_symlinks=False)
    except (OSError, NotImplementedError):
        _copy_to_kept(path, kept)


def _drop_staged_copy(path: str, kept: str) -> None:
    """Remove the hard link ``stage`` made in the journal folder for an operation refused after all (the file
    itself is still in place, so that link is not the only copy)."""
    try:
        if os.path.samefile(path, kept) and not os.path.islink(path):
            os.unlink(kept)
    except OSError:
        pass


def _recheck_keeper_staged(rec: dict[str, Any], ctx: Ctx, path: str, kept: str) -> None:
    """:func:`recheck_keeper` for an operation ``stage`` prepared: refused, it drops the staged copy first."""
    try:
        recheck_keeper(rec, ctx)
    except OpError:
        _drop_staged_copy(path, kept)
        raise


class Trash(Delete):
    """trash: the file is kept in the journal folder (a hard link, else a copy), then sent to the OS trash
    through send2trash. Undo restores from the journal's copy (restoring from the OS trash is not portable);
    the trashed copy stays in the OS trash."""

    def stage(self, rec: dict[str, Any], ctx: Ctx) -> None:
        """Run right after journaling, before the group's fsync (which then also covers the kept file)."""
        _keep_link(rec["path"], ctx.kept_abs(rec))

    def act(self, rec: dict[str, Any], ctx: Ctx) -> None:
        from send2trash import send2trash

        todo = _removal_to_do(rec, ctx)
        if todo is None:
            return
        path, h, kept, k = todo
        _recheck_keeper_staged(rec, ctx, path, kept)
        if k != h:
            _keep_link(path, kept)
            fsync_dir(os.path.dirname(kept))
        ctx.checkpoint("kept")
        send2trash(path)


class Link:
    """link: a symbolic or hard link at ``path`` to ``target``; with ``replace`` the file there is kept in the
    journal folder and replaced atomically; with ``fallback="copy"`` a copy is made where links are impossible."""

    def prepare(self, op: Op, ctx: Ctx) -> dict[str, Any]:
        target, kind = op.target or "", op.kind or "symbolic"
        if op.replace:  # the file to replace and its keeper (the target) are checked first
            path = op.path or ""
            h = _source(path, op.sha256)
            if is_link_to(path, target, kind):
                raise Refused(f"{path} already is a {kind} link to {target}")
            keeper = check_keeper(op, path, ctx)
        tfp = _fingerprint_or_refuse(target)
        if tfp is None:
            raise Refused(f"link target {target} does not exist")
        if tfp.startswith(SPECIAL):
            raise Refused(f"link target {target} is a {tfp[len(SPECIAL):]}; only regular files and links are handled")
        if kind == "hard" and tfp == DIR:
            raise Refused(f"cannot hard-link the folder {target}")
        if kind == "hard" and op.fallback != "copy" and not _same_device(op.path or "", target):
            raise Refused(f"cannot hard-link {op.path} to {target}: they are on different file systems")
        after = "symlink:" + target if kind == "symbolic" else tfp
        rec: dict[str, Any] = {"target": target, "kind": kind, "replace": op.replace, "fallback": op.fallback,
                               "target_sha256": tfp}
        if op.replace:
            rec.update(keeper)
            if rec.get("keep") and rec["keep_sha256"] != tfp:  # the target changed between the two reads
                raise Refused(f"{path}: its keeper {target} changed while it was being checked")
            rec.update(path=path, sha256=h, kept=ctx.kept_rel(path), mkdirs=[], before={path: h, target: tfp})
        else:
            path, dirs = _new_name(op.path or "", ctx)
            rec.update(path=path, sha256=None, mkdirs=dirs, before={path: None, target: tfp})
        rec.update(tmp=ctx.tmp_beside(path), after={path: after, target: tfp})
        return rec

    def stage(self, rec: dict[str, Any], ctx: Ctx) -> None:
        """Keep the file to be replaced right after journaling, before the group's fsync."""
        if rec["replace"]:
            _keep_link(rec["path"], ctx.kept_abs(rec))

    def _made(self, rec: dict[str, Any]) -> bool:
        path, target = rec["path"], rec["target"]
        if is_link_to(path, target, rec["kind"]):
            return True
        return bool(rec.get("fallback")) and not os.path.islink(path) and fingerprint(path) == rec["target_sha256"] \
            and fingerprint(path) != rec.get("sha256")

    def _stage_link(self, rec: dict[str, Any], ctx: Ctx) -> None:
        """Make the link (or the fallback copy) under the temporary name."""
        tmp, target = rec["tmp"], rec["target"]
        remove_quietly(tmp)
        try:
            if rec["kind"] == "symbolic":
                os.symlink(target, tmp)
            else:
                os.link(target, tmp)
        except OSError:
            if rec.get("fallback") != "copy":
                raise
            copy_durable(target, tmp)

    def act(self, rec: dict[str, Any], ctx: Ctx) -> None:
        path, h = rec["path"], rec["sha256"]
        if self._made(rec):
            return
        if not rec["replace"]:
            if os.path.lexists(path):
                raise OpError(f"{path} is now taken by another file")
            _make_dirs(rec)
            self._stage_link(rec, ctx)
            ctx.checkpoint("staged")
            publish(rec["tmp"], path)
            return
        p = fingerprint(path)
        if p != h:
            raise OpError(f"cannot complete: {_describe(path, p, h)}")
        kept = ctx.kept_abs(rec)
        _recheck_keeper_staged(rec, ctx, path, kept)
        if fingerprint(kept) != h:
            _keep_link(path, kept)
            fsync_dir(os.path.dirname(kept))
        ctx.checkpoint("kept")
        self._stage_link(rec, ctx)
        ctx.checkpoint("staged")
        os.replace(rec["tmp"], path)

    def undo(self, rec: dict[str, Any], ctx: Ctx) -> None:
        path, h = rec["path"], rec["sha256"]
        remove_quietly(rec["tmp"])
        if not rec["replace"]:
            if self._made(rec):
                os.unlink(path)
            elif os.path.lexists(path):
                raise UndoProblem(f"{path} is no longer the link the run made; left in place")
            _remove_dirs(rec, ctx)
            return
        kept = ctx.kept_abs(rec)
        remove_quietly(kept + ".tmp")
        # the link first: a hard link to an identical keeper has the original's sha256 but is not the original
        if self._made(rec):
            if fingerprint(kept) != h:
                raise UndoProblem(f"the copy kept in the journal ({kept}) is missing or damaged; "
                                  f"cannot restore {path}")
            tmp = rec["tmp"]
            try:
                os.link(kept, tmp)
            except OSError:
                copy_durable(kept, tmp)
            os.replace(tmp, path)  # replaces the link the run made
            remove_quietly(kept)
            return
        p = fingerprint(path)
        if p == h:
            return
        if p is None:
            _restore(kept, path, h, ctx)
            return
        raise UndoProblem(f"{path} was changed after the run; the original is kept at {kept}")


class Mkdir:
    """mkdir: the folder and any missing parents; undo removes those it created, when empty."""

    def prepare(self, op: Op, ctx: Ctx) -> dict[str, Any]:
        path = op.path or ""
        if os.path.lexists(path) and not os.path.isdir(path):
            raise Refused(f"{path} exists and is not a folder")
        dirs = missing_dirs(path)
        first_existing = os.path.dirname(dirs[0]) if dirs else path
        if not os.path.isdir(first_existing):
            raise Refused(f"{first_existing} is not a folder")
        return {"path": path, "mkdirs": dirs, "before": {path: fingerprint(path)}, "after": {path: DIR}}

    def act(self, rec: dict[str, Any], ctx: Ctx) -> None:
        os.makedirs(rec["path"], exist_ok=True)

    def undo(self, rec: dict[str, Any], ctx: Ctx) -> None:
        _remove_dirs(rec, ctx)


KINDS: dict[str, Any] = {"move": Move(), "rename": Move(), "copy": Copy(), "delete": Delete(), "trash": Trash(),
                         "link": Link(), "mkdir": Mkdir()}
