"""Find image files under folders: by extension, and by sniffing files whose extension says nothing.

The walk never follows a symlinked folder twice (no loops), skips hidden and cache folders, and
reports folders it cannot enter instead of stopping.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

from lookalike.media.decode import sniff

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


@dataclass(frozen=True)
class WalkError:
    path: str
    error: str


def looks_like_image(path: str) -> bool:
    """True if the path's extension is an image's, or (no/unknown extension) its first bytes are."""
    ext = os.path.splitext(path)[1].lower()
    if ext in IMAGE_EXTENSIONS:
        return True
    if ext in NOT_IMAGE_EXTENSIONS:
        return False
    try:
        with open(path, "rb") as fh:
            head = fh.read(16)
    except OSError:
        return False
    return sniff(head) is not None


def iter_images(
    paths: Iterable[str | Path], recursive: bool = True, errors: list[WalkError] | None = None
) -> Iterator[str]:
    """Yield the absolute paths of image files under ``paths`` (files are yielded as given).

    Unreadable folders are appended to ``errors`` (when given) and skipped. Order is deterministic:
    sorted by name within each folder.
    """
    seen_dirs: set[tuple[int, int]] = set()
    for raw in paths:
        path = os.path.abspath(os.path.expanduser(str(raw)))
        if os.path.isfile(path):
            yield path
            continue
        if not os.path.exists(path):
            if errors is not None:
                errors.append(WalkError(path, "no such file or folder"))
            continue
        yield from _walk_dir(path, recursive, seen_dirs, errors, top=True)


def _walk_dir(
    folder: str, recursive: bool, seen: set[tuple[int, int]], errors: list[WalkError] | None, top: bool
) -> Iterator[str]:
    try:
        st = os.stat(folder)
    except OSError as exc:
        if errors is not None:
            errors.append(WalkError(folder, f"cannot open folder: {exc.strerror}"))
        return
    key = (st.st_dev, st.st_ino)
    if key in seen:  # symlink loop or a folder reached twice
        return
    seen.add(key)
    try:
        with os.scandir(folder) as it:
            entries = sorted(it, key=lambda e: e.name)
    except OSError as exc:
        if errors is not None:
            errors.append(WalkError(folder, f"cannot list folder: {exc.strerror or exc}"))
        return
    subdirs = []
    for entry in entries:
        name = entry.name
        try:
            is_dir = entry.is_dir()  # follows symlinks; loops are caught by `seen`
            is_file = not is_dir and entry.is_file()
        except OSError:
            continue
        if is_dir:
            if recursive and not name.startswith(".") and name not in SKIPPED_DIRS:
                subdirs.append(entry.path)
        elif is_file and not name.startswith("."):
            if looks_like_image(entry.path):
                yield entry.path
    for sub in subdirs:
        yield from _walk_dir(sub, recursive, seen, errors, top=False)
