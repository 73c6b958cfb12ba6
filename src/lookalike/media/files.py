"""Opening user files safely: only regular files are ever opened or read.

A FIFO blocks ``open()`` forever, a character device such as ``/dev/zero`` never ends, and a socket cannot
be read at all; a name can also be swapped for one of these between a ``stat()`` and an ``open()``. Every
entry point that reads a user's file (pictures, videos, faces) goes through :func:`open_regular` or
:func:`read_regular`, so each such file gets one clear error instead of a hang.
"""

from __future__ import annotations

import errno
import os
import stat
from pathlib import Path
from typing import BinaryIO

from lookalike.errors import DecodeError
from lookalike.filetypes import kind_of, open_regular_fd

__all__ = ["MAX_READ_BYTES", "kind_of", "open_regular", "read_regular", "require_regular"]

#: Largest file read whole into memory (pictures; 2 GiB). Larger ones are refused with a reason.
MAX_READ_BYTES = 2 << 30


def _os_error(exc: OSError) -> DecodeError:
    if isinstance(exc, FileNotFoundError):
        return DecodeError("file vanished before it could be read")
    if isinstance(exc, PermissionError):
        return DecodeError("permission denied")
    if isinstance(exc, IsADirectoryError):
        return DecodeError("is a folder, not a file")
    return DecodeError(f"cannot read file: {exc.strerror or exc}")


def require_regular(path: str | os.PathLike) -> os.stat_result:
    """``stat()`` of ``path`` (following symlinks); DecodeError unless it is a regular file."""
    try:
        st = os.stat(path)
    except OSError as exc:
        raise _os_error(exc) from exc
    if not stat.S_ISREG(st.st_mode):
        raise DecodeError(f"not a regular file: it is a {kind_of(st.st_mode)}")
    return st


def open_regular(path: str | os.PathLike) -> BinaryIO:
    """Open ``path`` for binary reading, refusing anything but a regular file (DecodeError); see
    :func:`lookalike.filetypes.open_regular_fd`."""
    try:
        fd = open_regular_fd(path)
    except OSError as exc:
        if exc.errno == errno.EINVAL and str(exc.strerror).startswith("not a regular file"):
            raise DecodeError(exc.strerror) from exc
        raise _os_error(exc) from exc
    return os.fdopen(fd, "rb")


def read_regular(path: str | Path, max_bytes: int = MAX_READ_BYTES) -> bytes:
    """The whole content of a regular file (DecodeError for anything else, or past ``max_bytes``)."""
    with open_regular(path) as fh:
        try:
            size = os.fstat(fh.fileno()).st_size
            if size > max_bytes:
                raise DecodeError(f"file too large to read ({size} bytes; the limit is {max_bytes})")
            # ask for the size stat gave (plus one byte, to see growth), not for max_bytes: a read of n bytes
            # allocates n bytes first, and fresh pages cost more than the copy (1.2 ms for a 12 MP JPEG)
            data = fh.read(min(size, max_bytes) + 1)
            if len(data) > size:  # it grew since the stat: read on, up to the limit
                data += fh.read(max_bytes + 1 - len(data))
        except OSError as exc:
            raise _os_error(exc) from exc
    if len(data) > max_bytes:
        raise DecodeError(f"file grew past the read limit of {max_bytes} bytes while being read")
    return data
