"""Find image files under folders: by extension, and by sniffing files whose extension says nothing.

What the walk yields and what it leaves out (each left-out path that could be a picture is reported in
``errors``, as a :class:`WalkProblem` with ``skipped=True`` when it is left out on purpose):

* Only regular files (and symlinks to regular files) are yielded. A FIFO, socket or device named like a
  picture (``x.jpg``), or given as an input, is an error "not a regular file: it is a FIFO (named pipe)";
  one without a picture's extension is passed over (it is never opened, so it cannot hang the walk).
* A symlink (to a file or a folder) is followed only when its resolved target lies inside one of the
  resolved inputs: links out of the searched folders are skipped with a reason, never read. Symlinks
  inside them are yielded under their own name (they are pictures to index and search); a folder
  reached twice (a symlink loop, or a folder given twice) is walked once.
* lookalike's own data folders (:func:`lookalike.config.data_dirs`: the home with its journals and kept
  copies, the models) are never walked, even when they lie inside a searched folder or an input is in
  one. All comparisons are made on resolved paths, so inputs given through symlinks count as their targets.
* Hidden files and folders (a leading ".") and cache/OS folders (:data:`SKIPPED_DIRS`) are passed over;
  folders that cannot be listed are errors, and the walk goes on.

Paths are yielded under the inputs as given (made absolute, not resolved), sorted by name within each
folder, so output order is deterministic. Names that are not UTF-8 come as ``str`` with surrogate
escapes (``os.fsdecode``), like every path in lookalike.

The inputs a person named are checked here, once for every command (:func:`walk_inputs`, or
:func:`check_inputs` then :func:`check_found`): a path that does not exist and a folder in which the walk
finds nothing to work on are both a :class:`UsageError` (one line naming the path and why; exit status 1 in
the CLI, 400 in the service), never an empty result.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from lookalike.config import data_dirs, is_inside
from lookalike.errors import DecodeError, UsageError
from lookalike.media.decode import sniff
from lookalike.media.files import kind_of, open_regular

#: Extensions (lower case, with the dot) taken as images without sniffing.
IMAGE_EXTENSIONS = frozenset(
    {".jpg", ".jpeg", ".jpe", ".jfif", ".png", ".webp", ".bmp", ".dib", ".tif", ".tiff", ".gif",
     ".heic", ".heif", ".avif", ".ppm", ".pgm", ".pbm", ".pnm", ".tga", ".ico", ".jp2", ".j2k"}
)

#: Extensions of files that are certainly not images: never sniffed.
NOT_IMAGE_EXTENSIONS = frozenset(
    {".txt", ".md", ".json", ".csv", ".xml", ".html", ".htm", ".py", ".js", ".css", ".pdf", ".doc",
     ".docx", ".zip", ".gz", ".tar", ".mp4", ".mov", ".avi", ".mkv", ".mp3", ".wav", ".xmp", ".db",
     ".sqlite", ".ini", ".log", ".aae", ".thm", ".lnk", ".exe", ".dll", ".so"}
)

#: Folder names never entered (caches, VCS, OS litter); names starting with "." are skipped too.
SKIPPED_DIRS = frozenset(
    {"__pycache__", "node_modules", "@eaDir", "$RECYCLE.BIN", "System Volume Information", ".thumbnails",
     "Thumbs", "lost+found"}
)

#: Reasons given for paths left out on purpose (``WalkProblem.skipped``).
LINK_OUTSIDE = "symbolic link to outside the searched folders: not followed"
LINK_INTO_DATA = "symbolic link into lookalike's own data folder: not followed"
DATA_FOLDER = "lookalike's own data folder: not searched"
BROKEN_LINK = "broken symbolic link"


@dataclass(frozen=True)
class WalkProblem:
    """A path the walk could not read (``skipped=False``) or left out on purpose, with the reason."""

    path: str
    error: str
    skipped: bool = False


def _ext(name: str) -> str:
    return os.path.splitext(name)[1].lower()


def looks_like_image(path: str) -> bool:
    """True if the path's extension is an image's, or (no/unknown extension) its first bytes are.

    Sniffing opens only regular files (a FIFO or device is never read: it is not an image)."""
    ext = _ext(path)
    if ext in IMAGE_EXTENSIONS:
        return True
    if ext in NOT_IMAGE_EXTENSIONS:
        return False
    try:
        with open_regular(path) as fh:
            head = fh.read(16)
    except (OSError, DecodeError):
        return False
    return sniff(head) is not None


def iter_images(
    paths: Iterable[str | Path | bytes], recursive: bool = True, errors: list[WalkProblem] | None = None
) -> Iterator[str]:
    """Yield the absolute paths of image files under ``paths`` (files are yielded as given).

    Paths that cannot be read, and paths left out on purpose (links out of the inputs, lookalike's data
    folder), are appended to ``errors`` when given (see the module's docstring). Order is deterministic:
    inputs in order, sorted by name within each folder.
    """
    yield from iter_files(paths, IMAGE_EXTENSIONS, recursive, errors, sniff_unknown=True)


def iter_files(
    paths: Iterable[str | Path | bytes], extensions: frozenset[str], recursive: bool = True,
    errors: list[WalkProblem] | None = None, sniff_unknown: bool = False,
) -> Iterator[str]:
    """The walk shared by pictures and videos: files under ``paths`` whose extension is in ``extensions``
    (with ``sniff_unknown``, also files of no or unknown extension whose first bytes are a picture's), with
    every rule of the module's docstring. Files given as inputs are yielded whatever their extension."""
    roots = [os.path.abspath(os.path.expanduser(os.fsdecode(raw))) for raw in paths]
    yield from _Walk(roots, recursive, errors, extensions, sniff_unknown).run()


def check_inputs(paths: Iterable[str | Path | bytes]) -> list[str]:
    """The inputs made absolute, once each one exists: a misspelt path (or a broken symbolic link) is a
    :class:`UsageError` naming it, raised before anything is read."""
    roots = [os.path.abspath(os.path.expanduser(os.fsdecode(raw))) for raw in paths]
    for root in roots:
        if not os.path.exists(root):
            broken = " (a broken symbolic link)" if os.path.lexists(root) else ""
            raise UsageError(f"no such file or folder: {root}{broken}")
    return roots


def check_found(roots: Sequence[str], found: Iterable[str], errors: Sequence[WalkProblem] = (),
                recursive: bool = True, what: str = "pictures") -> None:
    """Raise :class:`UsageError` for the first folder among ``roots`` (absolute, as :func:`check_inputs` gives
    them) under which the walk found nothing (``found``: what it yielded; ``errors``: what it reported). The
    message says why when it can: the folder is empty, its sub-folders were not searched (--no-recursive),
    it lies in lookalike's data folder, or what was left out. Files given as inputs are not checked here
    (an unreadable file gets its own error from the command)."""
    folders = [r for r in roots if os.path.isdir(r)]
    if not folders:
        return
    found = list(found)
    left = [r for r in folders if not any(is_inside(f, r) for f in found)]
    if left:  # the same folder given twice (through a link): walked once, under the other name
        reals = {os.path.realpath(f) for f in found}
        left = [r for r in left if not any(is_inside(f, os.path.realpath(r)) for f in reals)]
    if not left:
        return
    root = left[0]
    mine = [e for e in errors if is_inside(e.path, root)]
    if any(e.path == root and e.skipped for e in mine):
        raise UsageError(f"no {what} in {root}: it lies in lookalike's own data folder, which is never searched")
    try:
        with os.scandir(root) as it:
            entries = list(it)
    except OSError as exc:
        raise UsageError(f"no {what} in {root}: cannot list it ({exc.strerror or exc})") from exc
    why = ""
    if not entries:
        why = ": the folder is empty"
    elif not recursive and any(e.is_dir() and not e.name.startswith(".") for e in entries):
        why = " (its sub-folders are not searched with --no-recursive)"
    if mine:
        first = mine[0]
        why += f" ({len(mine)} left out, e.g. {first.path}: {first.error})"
    raise UsageError(f"no {what} in {root}{why}")


def walk_inputs(
    paths: Iterable[str | Path | bytes], recursive: bool = True, errors: list[WalkProblem] | None = None,
    extensions: frozenset[str] = IMAGE_EXTENSIONS, sniff_unknown: bool = True, what: str = "pictures",
) -> list[str]:
    """The walk of the inputs a person named, checked: every input exists (:func:`check_inputs`, before
    anything is read), and every folder among them holds at least one picture (:func:`check_found`).
    Returns the files found, each once, in walk order; ``errors`` as for :func:`iter_images`."""
    roots = check_inputs(paths)
    errs: list[WalkProblem] = [] if errors is None else errors
    start = len(errs)
    files = list(dict.fromkeys(iter_files(roots, extensions, recursive, errs, sniff_unknown)))
    check_found(roots, files, errs[start:], recursive, what)
    return files


class _Walk:
    def __init__(self, roots: list[str], recursive: bool, errors: list[WalkProblem] | None,
                 extensions: frozenset[str], sniff_unknown: bool) -> None:
        self.roots = roots
        self.recursive = recursive
        self.errors = errors
        self.extensions = extensions
        self.sniff_unknown = sniff_unknown
        self.excluded = [os.fspath(d) for d in data_dirs()]
        self.allowed_dirs: list[str] = []
        self.allowed_files: set[str] = set()
        for r in roots:
            real = os.path.realpath(r)
            if os.path.isdir(real):
                self.allowed_dirs.append(real)
            else:
                self.allowed_files.add(real)
        self.seen: set[tuple[int, int]] = set()

    def _report(self, path: str, error: str, skipped: bool = False) -> None:
        if self.errors is not None:
            self.errors.append(WalkProblem(path, error, skipped))

    def _in_data(self, real: str) -> bool:
        return any(is_inside(real, d) for d in self.excluded)

    def _candidate(self, name: str) -> bool:
        """Could a file of this name be wanted (before opening it)?"""
        ext = _ext(name)
        return ext in self.extensions or (self.sniff_unknown and ext not in NOT_IMAGE_EXTENSIONS)

    def _wanted(self, path: str) -> bool:
        if _ext(path) in self.extensions:
            return True
        return self.sniff_unknown and looks_like_image(path)

    def _allowed(self, real: str) -> bool:
        return real in self.allowed_files or any(is_inside(real, d) for d in self.allowed_dirs)

    def run(self) -> Iterator[str]:
        for path in self.roots:
            try:
                st = os.stat(path)
            except OSError as exc:
                if os.path.lexists(path) and isinstance(exc, FileNotFoundError):
                    self._report(path, BROKEN_LINK, skipped=True)
                elif isinstance(exc, FileNotFoundError | NotADirectoryError):
                    self._report(path, "no such file or folder")
                else:
                    self._report(path, f"cannot open: {exc.strerror or exc}")
                continue
            real = os.path.realpath(path)
            if self._in_data(real):
                self._report(path, "lies in " + DATA_FOLDER, skipped=True)
                continue
            if stat.S_ISDIR(st.st_mode):
                yield from self._walk_dir(path, real)
            elif stat.S_ISREG(st.st_mode):
                yield path
            else:
                self._report(path, f"not a regular file: it is a {kind_of(st.st_mode)}")

    def _walk_dir(self, folder: str, real_folder: str) -> Iterator[str]:
        try:
            st = os.stat(folder)
        except OSError as exc:
            self._report(folder, f"cannot open folder: {exc.strerror or exc}")
            return
        key = (st.st_dev, st.st_ino)
        if key in self.seen:  # symlink loop or a folder reached twice
            return
        self.seen.add(key)
        try:
            with os.scandir(folder) as it:
                entries = sorted(it, key=lambda e: e.name)
        except OSError as exc:
            self._report(folder, f"cannot list folder: {exc.strerror or exc}")
            return
        subdirs: list[tuple[str, str]] = []
        for entry in entries:
            name = entry.name
            if name.startswith("."):
                continue
            try:
                is_link = entry.is_symlink()
                is_dir = entry.is_dir()  # follows symlinks; checked against the roots below
                is_file = not is_dir and entry.is_file()
            except OSError:
                continue
            if is_dir and (not self.recursive or name in SKIPPED_DIRS):
                continue
            if not is_dir and not self._candidate(name):
                continue
            if is_link:
                real = os.path.realpath(entry.path)
                if not (is_dir or is_file or os.path.exists(entry.path)):
                    if _ext(name) in self.extensions:
                        self._report(entry.path, BROKEN_LINK, skipped=True)
                    continue
                if self._in_data(real):
                    self._report(entry.path, LINK_INTO_DATA, skipped=True)
                    continue
                if not self._allowed(real):
                    self._report(entry.path, LINK_OUTSIDE, skipped=True)
                    continue
            else:
                real = os.path.join(real_folder, name)
            if is_dir:
                if self._in_data(real):
                    self._report(entry.path, DATA_FOLDER, skipped=True)
                else:
                    subdirs.append((entry.path, real))
            elif is_file:
                if self._wanted(entry.path):
                    yield entry.path
            elif _ext(name) in self.extensions:  # a FIFO, socket or device named like a picture or video
                try:
                    mode = os.stat(entry.path).st_mode
                except OSError as exc:
                    self._report(entry.path, f"cannot open: {exc.strerror or exc}")
                    continue
                self._report(entry.path, f"not a regular file: it is a {kind_of(mode)}")
        for sub, real_sub in subdirs:
            yield from self._walk_dir(sub, real_sub)
