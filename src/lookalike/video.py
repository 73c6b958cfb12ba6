"""Unique frames of videos: sample frames, drop near-duplicates of any frame already kept, write the rest.

For each video, every sampled frame is reduced to a 64-bit DCT hash (pHash of a 32x32 grey thumbnail)
and that thumbnail. A frame is a duplicate when some frame already kept *for that video* is within
``threshold`` bits of it (one vectorised XOR + popcount against all kept hashes) **and** their thumbnails
differ by at most ``pixel_threshold`` grey levels on average: the hash ignores brightness, so the pixel
check keeps fades and lighting changes, and it guards against hash collisions. Everything else (first
frame, scene changes, new content after slow drift) is kept and written as
``<video-stem>_<hh-mm-ss.mmm>.jpg``, never over an existing file (a taken name gets `` (1)``, `` (2)``...).
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from lookalike.errors import DecodeError, UsageError
from lookalike.features.hashes import pack_bits
from lookalike.journal.fsops import create_new_file
from lookalike.media import WalkProblem, check_found, check_inputs
from lookalike.media.video_reader import DEFAULT_SAMPLE_FPS, VideoReader, centre_crop_box, format_timestamp, iter_videos
from lookalike.search import hamming_distances

#: Default Hamming distance (bits of 64) under which two frames may be duplicates.
DEFAULT_THRESHOLD = 10
#: Default mean absolute difference (grey levels, 0-255) of 32x32 thumbnails under which they are.
DEFAULT_PIXEL_THRESHOLD = 12.0
#: JPEG quality of written frames.
JPEG_QUALITY = 92

Progress = Callable[[int, int], None]


@dataclass
class KeptFrame:
    """A frame written to the output folder."""

    path: str
    timestamp_s: float
    index: int

    def to_json(self) -> dict[str, Any]:
        return {
            "path": self.path,
            "timestamp": round(self.timestamp_s, 3),
            "time": format_timestamp(self.timestamp_s, ":"),
            "frame": self.index,
        }


@dataclass
class VideoResult:
    """What happened to one video: how far it was read, what was kept, and the error if any."""

    path: str
    width: int = 0
    height: int = 0
    fps: float = 0.0
    duration_s: float = 0.0
    frames_read: int = 0
    frames_sampled: int = 0
    kept: list[KeptFrame] = field(default_factory=list)
    error: str | None = None
    warning: str | None = None
    #: True when this path was given by name (not found by walking a folder).
    named: bool = False

    def to_json(self) -> dict[str, Any]:
        return {
            "path": self.path,
            "width": self.width,
            "height": self.height,
            "fps": round(self.fps, 3),
            "duration": round(self.duration_s, 3),
            "frames_read": self.frames_read,
            "frames_sampled": self.frames_sampled,
            "frames_kept": len(self.kept),
            "kept": [k.to_json() for k in self.kept],
            "error": self.error,
            "warning": self.warning,
        }


@dataclass
class VideoReport:
    """The outcome of :func:`unique_frames` over all sources."""

    out_dir: str
    videos: list[VideoResult] = field(default_factory=list)
    seconds: float = 0.0
    settings: dict[str, Any] = field(default_factory=dict)

    @property
    def errors(self) -> list[VideoResult]:
        return [v for v in self.videos if v.error]

    @property
    def failed_inputs(self) -> list[VideoResult]:
        """Videos named explicitly (not found in a folder) that could not be read: the run failed for them."""
        return [v for v in self.errors if v.named]

    @property
    def frames_kept(self) -> int:
        return sum(len(v.kept) for v in self.videos)

    def to_json(self) -> dict[str, Any]:
        return {
            "out_dir": self.out_dir,
            "settings": self.settings,
            "videos": [v.to_json() for v in self.videos],
            "frames_kept": self.frames_kept,
            "errors": [{"path": v.path, "error": v.error} for v in self.errors],
            "seconds": round(self.seconds, 3),
        }


class FrameDeduper:
    """Keeps the hashes and thumbnails of the frames kept so far and says whether a new frame is new."""

    def __init__(self, threshold: int = DEFAULT_THRESHOLD, pixel_threshold: float = DEFAULT_PIXEL_THRESHOLD) -> None:
        self.threshold, self.pixel_threshold = threshold, pixel_threshold
        self._hashes = np.zeros((64, 1), dtype=np.uint64)
        self._thumbs = np.zeros((64, 32 * 32), dtype=np.float32)
        self.count = 0

    @staticmethod
    def signature(rgb: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(1, 1) uint64 pHash and the flat 32x32 grey thumbnail (float32) of an RGB frame."""
        grey = cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY)
        thumb = cv2.resize(grey, (32, 32), interpolation=cv2.INTER_AREA).astype(np.float32)
        low = cv2.dct(thumb)[:8, :8]
        return pack_bits((low > np.median(low)).reshape(1, 64)), thumb.ravel()

    def is_duplicate(self, h: np.ndarray, thumb: np.ndarray) -> bool:
        """True if a kept frame is within ``threshold`` bits and ``pixel_threshold`` grey levels."""
        if not self.count:
            return False
        dist = hamming_distances(h, self._hashes[: self.count])[0]
        near = np.flatnonzero(dist <= self.threshold)
        if not len(near):
            return False
        diff = np.abs(self._thumbs[near] - thumb).mean(axis=1)
        return bool((diff <= self.pixel_threshold).any())

    def add(self, h: np.ndarray, thumb: np.ndarray) -> None:
        if self.count == len(self._hashes):
            self._hashes = np.concatenate([self._hashes, np.zeros_like(self._hashes)])
            self._thumbs = np.concatenate([self._thumbs, np.zeros_like(self._thumbs)])
        self._hashes[self.count] = h[0]
        self._thumbs[self.count] = thumb
        self.count += 1


def write_new_file(folder: Path, stem: str, suffix: str, data: bytes) -> Path:
    """Write ``data`` to ``folder/stem+suffix``, or the first free ``stem (1)+suffix``, ...: the journal's
    :func:`~lookalike.journal.fsops.create_new_file` (never over an existing file, even one created between the
    choice and the write, a dangling link included)."""
    return Path(create_new_file(folder / f"{stem}{suffix}", data))


def _encode_jpeg(rgb: np.ndarray, quality: int) -> bytes:
    ok, buf = cv2.imencode(".jpg", cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, quality])
    if not ok:
        raise DecodeError("could not encode a frame as JPEG")
    return buf.tobytes()


def unique_frames(
    sources: Iterable[str | Path] | str | Path,
    out_dir: str | Path,
    every: int | None = None,
    fps: float | None = None,
    crop: float | None = None,
    threshold: int | None = None,
    progress: Progress | None = None,
    *,
    pixel_threshold: float = DEFAULT_PIXEL_THRESHOLD,
    recursive: bool = True,
    quality: int = JPEG_QUALITY,
) -> VideoReport:
    """Write the unique frames of each video in ``sources`` (files, or folders searched for videos) to ``out_dir``.

    ``every``: sample every Nth frame; ``fps``: sample that many frames per second (default 2; not both).
    ``crop``: keep that fraction of the area, centred (hashing and output). ``threshold``: Hamming distance
    in bits (0-64) under which frames may be duplicates (default 10; 0 keeps only exact-hash repeats out).
    A video that cannot be read (a FIFO, a device, a damaged clip...) gets an ``error`` in the report and the
    run goes on; only regular files are ever opened (:class:`~lookalike.media.video_reader.VideoReader`).
    ``progress(done, total)`` counts frames read; an exception it raises stops the run.
    """
    t0 = time.perf_counter()
    if every is not None and fps is not None:
        raise UsageError("give either --every or --fps, not both")
    if every is not None and every < 1:
        raise UsageError(f"--every must be 1 or more, not {every}")
    if fps is not None and not fps > 0:
        raise UsageError(f"--fps must be a positive number, not {fps}")
    if crop is not None:
        centre_crop_box(100, 100, crop)  # validates the fraction
    threshold = DEFAULT_THRESHOLD if threshold is None else int(threshold)
    if not 0 <= threshold <= 64:
        raise UsageError(f"--threshold is a Hamming distance in bits, 0 to 64, not {threshold}")
    if isinstance(sources, (str, Path)):
        sources = [sources]
    sources = check_inputs(sources)  # a misspelt path: UsageError before the output folder is made
    found = list(iter_videos(list(sources), recursive=recursive))
    check_found(sources, [p for p, e in found if e is None], [WalkProblem(p, e) for p, e in found if e is not None],
                recursive, what="videos")  # a folder without videos: UsageError, as for pictures
    out = Path(out_dir).expanduser().absolute()
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise UsageError(f"cannot create the output folder {out}: {exc.strerror or exc}") from exc
    if not os.access(out, os.W_OK | os.X_OK):
        raise UsageError(f"the output folder {out} is not writable")

    report = VideoReport(
        str(out),
        settings={"every": every, "fps": (fps or DEFAULT_SAMPLE_FPS) if every is None else None, "crop": crop,
                  "threshold": threshold, "pixel_threshold": pixel_threshold},
    )
    # Probe every source first: errors come early and the progress total is known.
    plan: list[tuple[VideoResult, int]] = []
    named = {os.path.abspath(os.fspath(s)) for s in sources if not os.path.isdir(s)}
    for path, error in found:
        res = VideoResult(path, error=error, named=path in named)
        estimate = 0
        if error is None:
            try:
                with VideoReader(path) as reader:
                    info = reader.info
            except DecodeError as exc:
                res.error = str(exc)
            else:
                res.width, res.height, res.fps, res.duration_s = info.width, info.height, info.fps, info.duration_s
                estimate = info.frame_count
        report.videos.append(res)
        plan.append((res, estimate))

    total = sum(est for _, est in plan)
    done = 0
    for res, estimate in plan:
        if res.error is None:
            seen = _one_video(res, out, every, fps, crop, threshold, pixel_threshold, quality,
                              progress, done, total)
            total += seen - estimate
            done += seen
        if progress is not None:
            progress(done, total)
    report.seconds = time.perf_counter() - t0
    return report


def _one_video(
    res: VideoResult,
    out: Path,
    every: int | None,
    fps: float | None,
    crop: float | None,
    threshold: int,
    pixel_threshold: float,
    quality: int,
    progress: Progress | None,
    done: int,
    total: int,
) -> int:
    """Process one video into ``res``; returns how many frames were read. Only the video's errors are caught."""
    stem = Path(res.path).stem
    dedup = FrameDeduper(threshold, pixel_threshold)
    reader: VideoReader | None = None
    try:
        reader = VideoReader(res.path)
        count = reader.info.frame_count
        for frame in reader.frames(every=every, fps=fps, crop=crop):
            res.frames_sampled += 1
            h, thumb = dedup.signature(frame.image)
            if not dedup.is_duplicate(h, thumb):
                dedup.add(h, thumb)
                path = write_new_file(out, f"{stem}_{format_timestamp(frame.timestamp_s)}", ".jpg",
                                      _encode_jpeg(frame.image, quality))
                res.kept.append(KeptFrame(str(path), frame.timestamp_s, frame.index))
            res.frames_read = reader.frames_seen
            if progress is not None:
                progress(done + res.frames_read, max(total, done + res.frames_read))
        res.frames_read = reader.frames_seen
        if res.frames_sampled == 0:
            res.error = "no frame could be decoded"
        elif count > 0 and reader.frames_seen < count - max(2, count // 100):
            res.warning = (f"stopped after {reader.frames_seen} of the {count} frames the file announces "
                           "(truncated or damaged?)")
    except DecodeError as exc:
        res.error = str(exc)
    except OSError as exc:
        res.error = f"cannot write a frame: {exc.strerror or exc}"
    finally:
        if reader is not None:
            res.frames_read = reader.frames_seen
            reader.close()
    return res.frames_read
