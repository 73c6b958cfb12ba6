"""Which file of a group to keep: an ordered, configurable list of criteria applied one after the other
(each keeps only the files best on it, until one is left), after the ``--keep-in`` folders."""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime

import numpy as np

from lookalike.errors import DecodeError, UsageError

DEFAULT_POLICY = ("resolution", "size", "format", "exif", "sharpness", "oldest", "shortest")
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
    "oldest": (_oldest_key, lambda f: f"oldest ({f.exif_datetime or 'by modification time'})"),
    "shortest": (lambda f: -len(f.path), lambda f: "shortest path"),
}


def under(path: str, folders: Sequence[str]) -> bool:
    return any(path == d or path.startswith(os.path.join(d, "")) for d in folders)


def choose_keeper(files: Sequence[FileFacts], policy: Sequence[str], keep_in: Sequence[str] = ()) -> tuple[str, str]:
    """(path to keep, human-readable reason)."""
    cands = list(files)
    reasons: list[str] = []
    protected = [f for f in cands if under(f.path, keep_in)]
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
