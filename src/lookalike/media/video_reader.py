"""Read frames from video files with OpenCV's FFmpeg backend, sampling without converting skipped frames.

``VideoReader(path)`` opens a clip (or raises :class:`~lookalike.errors.DecodeError`), exposes its
:class:`VideoInfo`, and ``frames(every=..., fps=..., crop=...)`` yields :class:`VideoFrame` objects
(index, timestamp in seconds, upright RGB ``uint8`` array). Skipped frames are only ``grab()``-ed
(demuxed and decoded by FFmpeg, never colour-converted or copied); long gaps are crossed with a seek.
"""

from __future__ import annotations

import math
import os
import stat
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

# FFmpeg's own log lines (e.g. "moov atom not found") would otherwise go straight to stderr for every
# bad file; our errors say the same in one line. Must be set before cv2 loads its FFmpeg backend.
os.environ.setdefault("OPENCV_FFMPEG_LOGLEVEL", "-8")

import cv2  # noqa: E402
import numpy as np  # noqa: E402

from lookalike.errors import DecodeError, UsageError  # noqa: E402
from lookalike.media.decode import sniff  # noqa: E402
from lookalike.media.files import open_regular  # noqa: E402
from lookalike.media.walk import WalkProblem, iter_files  # noqa: E402

#: Extensions (lower case, with the dot) of files taken as videos when a folder is walked.
VIDEO_EXTENSIONS = frozenset(
    {".mp4", ".m4v", ".mov", ".qt", ".avi", ".mkv", ".webm", ".mpg", ".mpeg", ".m2v", ".ts", ".mts", ".m2ts",
     ".wmv", ".asf", ".flv", ".3gp", ".3g2", ".ogv", ".vob", ".mxf", ".dv"}
)

#: Default sampling rate (frames per second) when neither ``every`` nor ``fps`` is given.
DEFAULT_SAMPLE_FPS = 2.0

#: Gaps longer than this many frames, and than this many seconds, are crossed with a seek instead of
#: grab() calls (OpenCV's exact seek decodes forward from a key frame, so short seeks cost more than grabs).
SEEK_MIN_GAP = 250
SEEK_MIN_SECONDS = 10.0


@dataclass(frozen=True)
class VideoInfo:
    """What the container says about a clip (frame count and duration are estimates for some formats)."""

    path: str
    width: int
    height: int
    fps: float
    frame_count: int
    duration_s: float


@dataclass
class VideoFrame:
    """One decoded frame: its index in the clip, its time from the first frame, and RGB pixels (h, w, 3)."""

    index: int
    timestamp_s: float
    image: np.ndarray


def centre_crop_box(width: int, height: int, area: float) -> tuple[int, int, int, int]:
    """(x, y, w, h) of the centred rectangle keeping ``area`` (0-1] of the frame's area, same aspect ratio."""
    if not 0.0 < area <= 1.0:
        raise UsageError(f"crop must be a fraction of the area in (0, 1], not {area}")
    side = math.sqrt(area)
    w = max(1, min(width, round(width * side)))
    h = max(1, min(height, round(height * side)))
    return (width - w) // 2, (height - h) // 2, w, h


def format_timestamp(seconds: float, sep: str = "-") -> str:
    """``hh-mm-ss.mmm`` (or with ``sep=":"``, ``hh:mm:ss.mmm``), rounded to the millisecond."""
    ms = max(0, int(round(seconds * 1000)))
    h, rest = divmod(ms, 3_600_000)
    m, rest = divmod(rest, 60_000)
    s, ms = divmod(rest, 1000)
    return f"{h:02d}{sep}{m:02d}{sep}{s:02d}.{ms:03d}"


def _open_quietly(path: str) -> cv2.VideoCapture:
    """Open with the FFmpeg backend without OpenCV's warning lines for files it cannot open."""
    log = getattr(getattr(cv2, "utils", None), "logging", None)
    old = log.getLogLevel() if log is not None else None
    if log is not None:
        log.setLogLevel(log.LOG_LEVEL_ERROR)
    try:
        return cv2.VideoCapture(path, cv2.CAP_FFMPEG)
    finally:
        if log is not None and old is not None:
            log.setLogLevel(old)


def _fd_path(fd: int) -> str | None:
    """A path naming the open descriptor ``fd`` itself (Linux: ``/proc/self/fd/N``), or None."""
    path = f"/proc/self/fd/{fd}"
    return path if os.path.exists(path) else None


class VideoReader:
    """An open video clip. Use as a context manager, or call :meth:`close`.

    Only a regular file is ever handed to OpenCV: the path is opened first with
    :func:`~lookalike.media.files.open_regular` (a FIFO, a device such as ``/dev/zero`` or a socket is
    refused with a :class:`~lookalike.errors.DecodeError` instead of blocking FFmpeg forever), and OpenCV
    then reads that very open file (through ``/proc/self/fd`` where it exists), so the name cannot be
    swapped for a FIFO in between."""

    def __init__(self, path: str | Path) -> None:
        self.path = str(path)
        self._cap = None
        self._fh = None
        if not os.path.exists(self.path):
            raise DecodeError("no such file")
        if os.path.isdir(self.path):
            raise DecodeError("is a folder, not a video")
        fh = open_regular(self.path)
        try:
            try:
                head = fh.read(32)
            except OSError as exc:
                raise DecodeError(f"cannot read: {exc.strerror or exc}") from exc
            if not head:
                raise DecodeError("empty file (0 bytes)")
            kind = sniff(head)
            if kind is not None:
                raise DecodeError(f"is a still image ({kind}), not a video")
            cap = self._open_capture(fh)
        except BaseException:
            fh.close()
            raise
        self._fh = fh
        self._cap = cap
        fps = float(cap.get(cv2.CAP_PROP_FPS) or 0.0)
        if not math.isfinite(fps) or fps <= 0 or fps > 1000:
            fps = 0.0
        count = int(max(0.0, cap.get(cv2.CAP_PROP_FRAME_COUNT) or 0.0))
        self.info = VideoInfo(
            path=self.path,
            width=int(cap.get(cv2.CAP_PROP_FRAME_WIDTH)),
            height=int(cap.get(cv2.CAP_PROP_FRAME_HEIGHT)),
            fps=fps,
            frame_count=count,
            duration_s=count / fps if fps else 0.0,
        )
        #: Frames grab()-ed or skipped by a seek so far (how far the reader got through the clip).
        self.frames_seen = 0

    def __enter__(self) -> VideoReader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _open_capture(self, fh) -> cv2.VideoCapture:
        by_fd = _fd_path(fh.fileno())
        if by_fd is not None:
            cap = _open_quietly(by_fd)
            if cap.isOpened():
                return cap
            cap.release()
        # No /proc (or FFmpeg wants the name, e.g. to guess a format from its extension): the path itself,
        # once it is checked to still be the regular file opened above.
        try:
            now, held = os.stat(self.path), os.fstat(fh.fileno())
        except OSError as exc:
            raise DecodeError("file vanished before it could be read") from exc
        if (now.st_dev, now.st_ino) != (held.st_dev, held.st_ino) or not stat.S_ISREG(now.st_mode):
            raise DecodeError("the file was replaced while it was being opened")
        cap = _open_quietly(self.path)
        if not cap.isOpened():
            cap.release()
            raise DecodeError("not a readable video (FFmpeg could not open it)")
        return cap

    def close(self) -> None:
        if self._cap is not None:
            self._cap.release()
            self._cap = None
        if self._fh is not None:
            self._fh.close()
            self._fh = None

    def frames(
        self, every: int | None = None, fps: float | None = None, crop: float | None = None
    ) -> Iterator[VideoFrame]:
        """Yield sampled frames: every ``every``-th frame, or ``fps`` frames per second of video time.

        With neither, :data:`DEFAULT_SAMPLE_FPS`. ``crop`` keeps that fraction of the area, centred.
        Timestamps are the container's presentation times, counted from the first frame; where the
        container gives none, ``index / fps``.
        """
        if every is not None and fps is not None:
            raise UsageError("give either every or fps, not both")
        if every is not None and every < 1:
            raise UsageError(f"every must be a whole number >= 1, not {every}")
        if fps is not None and not (fps > 0 and math.isfinite(fps)):
            raise UsageError(f"fps must be a positive number, not {fps}")
        if every is None and fps is None:
            fps = DEFAULT_SAMPLE_FPS
        cap = self._cap
        if cap is None:
            raise DecodeError("reader is closed")
        native = self.info.fps
        period = 1.0 / fps if fps else 0.0
        # Half a frame of slack, so that 2 fps on a 24 fps clip takes frames 0, 12, 24, ...
        slack = 0.5 / native if native else 0.0
        seek_gap = max(SEEK_MIN_GAP, int(SEEK_MIN_SECONDS * native))
        box = None
        index = -1
        first_ms: float | None = None
        last_ts = -1.0
        next_t = 0.0  # fps mode: the next wanted time
        while True:
            # The next wanted frame index, where it can be known in advance (to cross long gaps by seeking).
            want = (index // every + 1) * every if every else (math.ceil((next_t - slack) * native) if native else None)
            if want is not None and index >= 0 and want - index - 1 > seek_gap:
                if self.info.frame_count and want >= self.info.frame_count:
                    self.frames_seen = self.info.frame_count
                    return
                if cap.set(cv2.CAP_PROP_POS_FRAMES, want) and cap.grab():
                    pos = cap.get(cv2.CAP_PROP_POS_FRAMES)
                    index = int(pos) - 1 if pos > index + 1 else want
                else:
                    return
            elif cap.grab():
                index += 1
            else:
                return
            self.frames_seen = index + 1
            ts = self._timestamp(index, native, first_ms, last_ts)
            if first_ms is None:
                first_ms = self._raw_ms()
            last_ts = ts
            if every:
                if index % every:
                    continue
            else:
                if ts + slack < next_t:
                    continue
                next_t += period
                if next_t <= ts:  # a gap in the stream: resume the grid after this frame
                    next_t = ts + period
            ok, bgr = cap.retrieve()
            if not ok or bgr is None:
                raise DecodeError(f"frame {index} could not be decoded")
            if bgr.ndim == 2:
                bgr = cv2.cvtColor(bgr, cv2.COLOR_GRAY2BGR)
            if crop is not None and crop < 1.0:
                if box is None:
                    box = centre_crop_box(bgr.shape[1], bgr.shape[0], crop)
                x, y, w, h = box
                bgr = bgr[y : y + h, x : x + w]
            yield VideoFrame(index, ts, cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB))

    def _raw_ms(self) -> float | None:
        ms = self._cap.get(cv2.CAP_PROP_POS_MSEC) if self._cap is not None else 0.0
        return ms if math.isfinite(ms) and ms >= 0 else None

    def _timestamp(self, index: int, native: float, first_ms: float | None, last_ts: float) -> float:
        ms = self._raw_ms()
        if ms is not None and first_ms is not None and (index == 0 or ms > 0):
            ts = (ms - first_ms) / 1000.0
            if ts > last_ts:
                return ts
        if index == 0:
            return 0.0
        # No usable presentation time: count frames (and never go backwards).
        guess = index / native if native else last_ts + 1.0 / 25.0
        return max(guess, last_ts + 1e-6)


def iter_videos(paths: list[str | Path], recursive: bool = True) -> Iterator[tuple[str, str | None]]:
    """Yield ``(absolute path, error or None)``: files as given; video files (by extension) under folders.

    The walk is the pictures' one (``media.walk.iter_files``), with its rules: files named explicitly are
    yielded whatever their extension (the reader says if they are not videos); links out of the inputs and
    lookalike's own folders are left out with a reason; FIFOs and devices named like videos are errors;
    hidden files and folders are skipped; folders reached twice are walked once."""
    errors: list[WalkProblem] = []
    for path in iter_files(paths, VIDEO_EXTENSIONS, recursive, errors):
        yield path, None
    for e in errors:
        yield e.path, e.error
