"""File types in plain words, and the one way lookalike opens a file for reading: regular files only.

A FIFO blocks ``open()`` forever, a character device such as ``/dev/zero`` never ends, a socket cannot be
read; a name can also be swapped for one of these between a check and an ``open()``. This module needs
only the standard library, so both the decoders (``media.files``) and the journal (``journal.fsops``)
build on it.
"""

from __future__ import annotations

import errno
import os
import stat


def kind_of(mode: int) -> str:
    """A plain-words name for a file type (from ``st_mode``)."""
    for test, name in ((stat.S_ISREG, "regular file"), (stat.S_ISDIR, "folder"), (stat.S_ISLNK, "symbolic link"),
                       (stat.S_ISFIFO, "FIFO (named pipe)"), (stat.S_ISCHR, "character device"),
                       (stat.S_ISBLK, "block device"), (stat.S_ISSOCK, "socket")):
        if test(mode):
            return name
    return "special file"


def open_regular_fd(path: str | os.PathLike, follow_symlinks: bool = True) -> int:
    """A read-only descriptor on the regular file at ``path``.

    Opened non-blocking (a FIFO swapped in after a check cannot hang the open) and checked with ``fstat`` on
    the open descriptor, so no race between check and use is left. Anything but a regular file raises
    OSError(EINVAL, "not a regular file: it is a ..."); ``follow_symlinks=False`` also refuses a final
    symlink (ELOOP)."""
    flags = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_NOCTTY", 0) | getattr(os, "O_BINARY", 0)
    if not follow_symlinks:
        flags |= getattr(os, "O_NOFOLLOW", 0)
    try:
        fd = os.open(path, flags)
    except OSError as exc:
        try:  # e.g. a socket (ENXIO): name what it is rather than the errno
            mode = os.stat(path, follow_symlinks=follow_symlinks).st_mode
        except OSError:
            raise exc from None
        if stat.S_ISREG(mode) or (stat.S_ISLNK(mode) and exc.errno == errno.ELOOP):
            raise
        raise OSError(errno.EINVAL, f"not a regular file: it is a {kind_of(mode)}", os.fspath(path)) from exc
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise OSError(errno.EINVAL, f"not a regular file: it is a {kind_of(st.st_mode)}", os.fspath(path))
        if hasattr(os, "set_blocking"):
            os.set_blocking(fd, True)
        return fd
    except BaseException:
        os.close(fd)
        raise
