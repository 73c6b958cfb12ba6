"""Which file of a group to keep: an ordered, configurable list of criteria applied one after the other
(each keeps only the files best on it, until one is left), after the ``--keep-in`` folders.

A symbolic link is never a keeper (it holds no picture of its own: keeping it and removing its target
would leave a dangling name), whatever the caller passes: :func:`choose_keeper` checks with ``lstat``.
Folders are compared after resolving symlinks on both sides (:func:`under`), so a ``--keep-in`` folder
named through a symlink protects the same files as its real path."""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime

import numpy as np

from lookalike.errors import DecodeError, UsageError

DEFAULT_POLICY = ("resolution", "size", "format", "exif", "sharpness", "linked", "oldest", "shortest")
LOSSLESS = {"PNG", "TIFF", "BMP", "PPM", "PGM", "PBM", "TGA", "QOI"}


@dataclass
class FileFacts:
    path: str
    width: int = 0
    height: int = 0
    bytes: int = 0
    format: str = ""
    exif_tags: int = 0
    exif_datetime: str | None = None
    mtime_ns: int = 0
    truncated: bool = False  # decoded only in part: never preferred over a complete copy
    protected: bool = False  # one of its names (a symlink or hard link too) lies under --keep-in
    links: int = 0  # symbolic links in the searched folders that point to this file


def parse_policy(policy: str | Sequence[str] | None) -> tuple[str, ...]:
    """"resolution,size,..." or a list -> validated tuple of criteria names."""
    if policy is None:
        return DEFAULT_POLICY
    items = [p.strip().lower() for p in (policy.split(",") if isinstance(policy, str) else policy) if p.strip()]
    unknown = [p for p in items if p not in CRITERIA]
    if unknown or not items:
        raise UsageError(f"unknown keep criteria {unknown or policy!r}; choose from {', '.join(CRITERIA)}")
    return tuple(items)


def sharpness(path: str) -> float:
    """Variance of the Laplacian of a 512-px grey copy (higher: sharper)."""
    import cv2

    from lookalike.media import decode

    try:
        g = np.asarray(decode(path, min_side=512).image.convert("L"))
    except (DecodeError, OSError):
        return 0.0
    s = 512 / max(g.shape)
    g = cv2.resize(g, (max(8, round(g.shape[1] * s)), max(8, round(g.shape[0] * s))), interpolation=cv2.INTER_AREA)
    return float(cv2.Laplacian(g, cv2.CV_64F).var())


def _oldest_key(f: FileFacts) -> float:
    """Minus the time the picture was taken (EXIF date) or, failing that, last modified."""
    if f.exif_datetime:
        try:
            return -datetime.strptime(f.exif_datetime[:19], "%Y:%m:%d %H:%M:%S").timestamp()
        except ValueError:
            pass
    return -f.mtime_ns / 1e9


def _kind(f: FileFacts) -> str:
    return f"{f.format or '?'}, {'lossless' if f.format.upper() in LOSSLESS else 'lossy'}"


#: name -> (value to maximise, how to describe it)
CRITERIA: dict[str, tuple[Callable[[FileFacts], float], Callable[[FileFacts], str]]] = {
    "resolution": (lambda f: f.width * f.height, lambda f: f"highest resolution ({f.width}x{f.height})"),
    "size": (lambda f: f.bytes, lambda f: f"largest file ({f.bytes:,} bytes)"),
    "format": (lambda f: 1.0 if f.format.upper() in LOSSLESS else 0.0, lambda f: f"better format ({_kind(f)})"),
    "exif": (lambda f: f.exif_tags, lambda f: f"richest EXIF ({f.exif_tags} tags)"),
    "sharpness": (lambda f: sharpness(f.path), lambda f: "sharpest"),
    "linked": (lambda f: f.links, lambda f: f"other names link to it ({f.links} symbolic link"
               f"{'s' if f.links != 1 else ''}: kept so they keep working)"),
    "oldest": (_oldest_key, lambda f: f"oldest ({f.exif_datetime or 'by modification time'})"),
    "shortest": (lambda f: -len(f.path), lambda f: "shortest path"),
}


def resolve_folder(folder: str | os.PathLike) -> str:
    """A folder (or file) given by the user, absolute with every symlink resolved."""
    return os.path.realpath(os.path.abspath(os.path.expanduser(os.fspath(folder))))


def location(path: str | os.PathLike) -> str:
    """Where a file's name lives: its folder with every symlink resolved, its own name kept as it is (a
    symlinked file stays itself, it is not replaced by its target)."""
    head, tail = os.path.split(os.path.abspath(os.fspath(path)))
    return os.path.join(os.path.realpath(head), tail)


def under(path: str, folders: Sequence[str]) -> bool:
    """True when ``path`` lies in (or is) one of ``folders``; both sides are compared resolved, so a
    folder given through a symlink and its real path mean the same files."""
    if not folders:
        return False
    loc = location(path)
    for d in folders:
        real = resolve_folder(d)
        if loc == real or loc.startswith(os.path.join(real, "")):
            return True
    return False


def under_any(folders: Sequence[str]) -> Callable[[str], bool]:
    """``under(path, folders)`` for many paths: the folders are resolved once and each parent folder's
    resolution is remembered for the life of the returned function (one search), never longer."""
    real = [resolve_folder(d) for d in folders]
    prefixes = [os.path.join(d, "") for d in real]
    heads: dict[str, str] = {}

    def test(path: str) -> bool:
        if not real:
            return False
        head, tail = os.path.split(os.path.abspath(path))
        rh = heads.get(head)
        if rh is None:
            rh = heads[head] = os.path.realpath(head)
        loc = os.path.join(rh, tail)
        return any(loc == d or loc.startswith(pre) for d, pre in zip(real, prefixes, strict=True))

    return test


def choose_keeper(files: Sequence[FileFacts], policy: Sequence[str], keep_in: Sequence[str] = ()) -> tuple[str, str]:
    """(path to keep, human-readable reason).

    Symbolic links are never chosen; a file whose ``protected`` flag is set, or which lies under a
    ``keep_in`` folder, wins first. Raises UsageError when every candidate is a symbolic link."""
    cands = [f for f in files if not os.path.islink(f.path)]
    if not cands:
        raise UsageError("no keeper: every file of the group is a symbolic link")
    reasons: list[str] = []
    protected = [f for f in cands if f.protected or under(f.path, keep_in)]
    if protected:
        reasons.append("in a --keep-in folder")
        cands = protected
    complete = [f for f in cands if not f.truncated]
    if complete and len(complete) < len(cands):
        reasons.append("complete file (a copy is truncated)")
        cands = complete
    for name in policy:
        if len(cands) == 1:
            break
        value, describe = CRITERIA[name]
        vals = [value(f) for f in cands]
        best = max(vals)
        top = [f for f, v in zip(cands, vals, strict=True) if v == best]
        if len(top) < len(cands):
            reasons.append(describe(top[0]))
        cands = top
    cands.sort(key=lambda f: f.path)
    if len(cands) > 1:
        reasons.append("first by name (all else equal)")
    if not reasons:
        reasons.append("only candidate")
    return cands[0].path, "; ".join(reasons)
