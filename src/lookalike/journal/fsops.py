"""Low-level file helpers for the journal: fingerprints, free names, durable copies, moves that never overwrite."""

from __future__ import annotations

import errno
import hashlib
import json
import os
import shutil
import stat
from collections.abc import Callable, Iterator
from typing import Any

from lookalike.filetypes import kind_of, open_regular_fd

#: Fingerprint of a folder (folders are only created and removed, never hashed).
DIR = "dir"
#: Fingerprint prefix of a FIFO, device or socket (never opened: a FIFO would block, a device never ends).
SPECIAL = "special:"


def sha256_file(path: str) -> str:
    """sha256 of the regular file at ``path`` (OSError for anything else: never blocks on a FIFO)."""
    with os.fdopen(open_regular_fd(path, follow_symlinks=False), "rb") as f:
        return hashlib.file_digest(f, "sha256").hexdigest()


def hash_with_stat(path: str) -> tuple[str, os.stat_result]:
    """sha256 and fstat of the regular file at ``path``, from one open descriptor (so both describe one file)."""
    with os.fdopen(open_regular_fd(path, follow_symlinks=False), "rb") as f:
        st = os.fstat(f.fileno())
        return hashlib.file_digest(f, "sha256").hexdigest(), st


def stat_signature(st: os.stat_result) -> list[int]:
    """What identifies one unchanged file: device, inode, size, mtime and ctime (ctime no user tool can set)."""
    return [st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns]


def fingerprint(path: str) -> str | None:
    """What is at ``path``: the sha256 hex digest of a file, ``symlink:<target>`` for a symbolic link, ``dir`` for
    a folder, ``special:<kind>`` for a FIFO, device or socket (never opened), None when nothing is there."""
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        return None
    if stat.S_ISLNK(st.st_mode):
        return "symlink:" + os.readlink(path)
    if stat.S_ISDIR(st.st_mode):
        return DIR
    if not stat.S_ISREG(st.st_mode):
        return SPECIAL + kind_of(st.st_mode)
    return sha256_file(path)


def json_text(obj: Any) -> str:
    """``obj`` as one line of JSON, readable UTF-8 where possible; a name that is not UTF-8 (a surrogate-escaped
    str, as ``os.fsdecode`` gives) is written with ``\\udcXX`` escapes, which ``json.loads`` reads back to the
    same path."""
    text = json.dumps(obj, ensure_ascii=False)
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        text = json.dumps(obj, ensure_ascii=True)
    return text


def numbered_names(path: str) -> Iterator[str]:
    """THE rule for a free name, used by every writer: ``path`` itself, then ``stem (1).ext``, ``stem (2).ext``,
    ... (a dotfile like ``.profile`` counts as all stem). Endless: the caller stops at the first free one."""
    yield path
    head, name = os.path.split(path)
    stem, ext = os.path.splitext(name)
    if stem.startswith(".") and not ext:  # dotfiles like ".profile"
        stem, ext = name, ""
    n = 1
    while True:
        yield os.path.join(head, f"{stem} ({n}){ext}")
        n += 1


def free_name(path: str, taken: set[str] | frozenset[str] = frozenset(),
              freed: set[str] | frozenset[str] = frozenset(), on_disk: bool = True) -> str:
    """The first of :func:`numbered_names` that nothing is at and that is not in ``taken``. ``freed``: names
    that count as free although a file is there (a dry run: earlier operations of the plan remove it).
    ``on_disk=False``: only ``taken`` counts (names planned inside a folder that is not written yet)."""
    for candidate in numbered_names(path):
        if candidate in taken:
            continue
        if not on_disk or candidate in freed or not os.path.lexists(candidate):
            return candidate
    raise AssertionError("unreachable")  # numbered_names never ends


def create_new_file(path: str | os.PathLike, data: bytes) -> str:
    """Write ``data`` to a new file at ``path``, or at the next free name of :func:`numbered_names`: created
    exclusively (O_EXCL), so nothing already there, or made meanwhile by another process, is ever overwritten.
    Returns the path written. (For files that are not journaled, e.g. frames extracted from a video.)"""
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0)
    for candidate in numbered_names(os.fspath(path)):
        try:
            fd = os.open(candidate, flags, 0o644)
        except FileExistsError:
            continue
        try:
            with os.fdopen(fd, "wb") as fh:
                fh.write(data)
        except BaseException:
            remove_quietly(candidate)
            raise
        return candidate
    raise AssertionError("unreachable")  # numbered_names never ends


def missing_dirs(folder: str) -> list[str]:
    """The ancestors of ``folder`` (itself included) that do not exist yet, outermost first."""
    missing: list[str] = []
    current = os.path.abspath(folder)
    while not os.path.lexists(current):
        missing.append(current)
        parent = os.path.dirname(current)
        if parent == current:
            break
        current = parent
    return missing[::-1]


def fsync_file(path: str) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def fsync_dir(path: str) -> None:
    """Make a folder's entries durable (a no-op where folders cannot be opened, e.g. Windows)."""
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def remove_quietly(path: str) -> None:
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass


def copy_durable(src: str, dst: str) -> None:
    """Copy ``src`` to the new name ``dst`` with its times and mode, then fsync. Symlinks are copied as links."""
    remove_quietly(dst)
    if os.path.islink(src):
        os.symlink(os.readlink(src), dst)
        return
    shutil.copy2(src, dst)
    fsync_file(dst)


def publish(tmp: str, dst: str) -> None:
    """Give the finished file ``tmp`` the name ``dst`` without ever replacing something already at ``dst``."""
    try:
        os.link(tmp, dst, follow_symlinks=False)
    except FileExistsError:
        raise
    except (OSError, NotImplementedError):  # no hard links here (FAT, some network shares): check, then rename
        if os.path.lexists(dst):
            raise FileExistsError(errno.EEXIST, "destination exists", dst) from None
        os.rename(tmp, dst)
        return
    os.unlink(tmp)


def move_noclobber(src: str, dst: str, tmp: str, on_staged: Callable[[], None] | None = None) -> None:
    """Move ``src`` to ``dst``, never replacing anything at ``dst``. On one file system the file gets its new name
    by a hard link then an unlink (both names exist in between); across file systems it is copied to ``tmp``
    beside ``dst``, fsynced, published and only then is ``src`` removed. ``on_staged`` runs while both exist."""
    try:
        os.link(src, dst, follow_symlinks=False)
        if on_staged:
            on_staged()
        os.unlink(src)
        return
    except FileExistsError:
        raise
    except (OSError, NotImplementedError) as exc:
        if getattr(exc, "errno", None) != errno.EXDEV:
            if os.path.lexists(dst):
                raise FileExistsError(errno.EEXIST, "destination exists", dst) from None
            try:
                os.rename(src, dst)
                return
            except OSError as exc2:
                if exc2.errno != errno.EXDEV:
                    raise
    copy_durable(src, tmp)
    publish(tmp, dst)
    fsync_dir(os.path.dirname(dst))
    if on_staged:
        on_staged()
    os.unlink(src)


def is_link_to(path: str, target: str, kind: str) -> bool:
    """Whether ``path`` already is a ``kind`` link to ``target``."""
    try:
        if kind == "symbolic":
            return os.path.islink(path) and os.readlink(path) == target
        p, t = os.lstat(path), os.lstat(target)  # neither name may be a symlink: a link to it is not a hard link
        return stat.S_ISREG(p.st_mode) and stat.S_ISREG(t.st_mode) and (p.st_dev, p.st_ino) == (t.st_dev, t.st_ino)
    except OSError:
        return False
