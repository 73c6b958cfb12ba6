"""Face detection: dlib's HOG detector (default, retried upsampled for small faces), YuNet through OpenCV's
``FaceDetectorYN`` when its model file is installed, and ``direct`` (the whole picture is the face).

Boxes are ``(left, top, right, bottom)`` in pixels of the upright, full-size picture (EXIF orientation
applied by :func:`lookalike.media.decode`), clipped to the picture.
"""

from __future__ import annotations

import os
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from lookalike.errors import DecodeError, ModelError, UsageError
from lookalike.media import decode
from lookalike.options import check_int

#: HOG runs on a copy whose long side is at most this (big photos cost time, not faces).
HOG_MAX_SIDE = 1280
#: dlib's frontal HOG window: at scale 1 it finds faces of about this many pixels and larger.
HOG_WINDOW = 80
#: An optional first HOG pass (``HogDetector(first_pass_face=160)``) runs on a copy reduced so that its
#: window matches faces of that many pixels of the picture (a quarter of the pixels at 160), and the
#: full-size passes only when it finds nothing. It is off by default: on the shared per-person photos it
#: halves HOG's cost (0.47x) and always finds the subject, but a face smaller than that beside a larger one
#: is lost (4 of 390 faces there, 73-125 px, and one face of a two-portrait picture): a group photo must
#: keep all its faces. Large pictures are reduced anyway (HOG_MAX_SIDE, and faces.scan decodes big JPEGs
#: at reduced size).
HOG_FIRST_PASS_FACE = 160
#: YuNet finds faces of about 10-300 px: it runs on a copy scaled to this long side.
YUNET_SIDE = 640
YUNET_SCORE = 0.8
#: Detector names a caller may ask for.
DETECTORS = ("auto", "hog", "yunet")

Box = tuple[int, int, int, int]


@dataclass(frozen=True)
class DetectedFace:
    """One face: box (left, top, right, bottom), detector score, and which detector found it."""

    box: Box
    score: float
    detector: str  # "hog", "hog-up1", "yunet" or "direct"

    @property
    def area(self) -> int:
        return max(0, self.box[2] - self.box[0]) * max(0, self.box[3] - self.box[1])

    def to_json(self) -> dict[str, Any]:
        return {"box": list(self.box), "score": round(float(self.score), 4), "detector": self.detector}


def _as_array(image: Image.Image | np.ndarray) -> np.ndarray:
    if isinstance(image, Image.Image):
        return np.asarray(image.convert("RGB"))
    arr = np.asarray(image)
    if arr.ndim != 3 or arr.shape[2] != 3 or arr.dtype != np.uint8:
        raise UsageError("expected an RGB uint8 picture (H, W, 3)")
    return arr


def _clip(box: tuple[float, float, float, float], w: int, h: int) -> Box:
    left, top, right, bottom = box
    return (max(0, int(round(left))), max(0, int(round(top))), min(w, int(round(right))), min(h, int(round(bottom))))


def _resized(arr: np.ndarray, scale: float) -> np.ndarray:
    if scale >= 1.0:
        return arr
    h, w = arr.shape[:2]
    return np.asarray(Image.fromarray(arr).resize((max(1, round(w * scale)), max(1, round(h * scale))),
                                                  Image.BILINEAR))


class HogDetector:
    """dlib's frontal HOG + linear SVM detector: the picture at up to ``HOG_MAX_SIDE`` as is, then
    upsampled once if nothing was found; with ``first_pass_face``, first a pass on a reduced copy (faces of
    at least that many px; see HOG_FIRST_PASS_FACE). Boxes are in pixels of the given picture."""

    name = "hog"

    def __init__(self, max_upsample: int = 1, first_pass_face: int | None = None) -> None:
        import dlib  # noqa: F401  (missing dlib fails here, not at the first picture)

        if first_pass_face is not None:
            first_pass_face = check_int("first_pass_face", first_pass_face, HOG_WINDOW, 4096)
        self._det: Any = None  # loaded at the first picture (0.5 s): a process that only names the chain
        self._lock = threading.Lock()  # dlib objects are not documented as thread-safe
        self.max_upsample = max_upsample
        self.first_pass_face = first_pass_face

    def load(self) -> Any:
        """dlib's detector, loaded once (about 0.5 s)."""
        with self._lock:
            if self._det is None:
                import dlib

                self._det = dlib.get_frontal_face_detector()
            return self._det

    def passes(self, height: int, width: int) -> list[tuple[float, int]]:
        """(scale, upsampling) of each pass tried on a picture of this size, in order."""
        full = min(1.0, HOG_MAX_SIDE / max(height, width, 1))
        out = [(full, up) for up in range(self.max_upsample + 1)]
        if self.first_pass_face is not None:
            fast = HOG_WINDOW / self.first_pass_face  # big pictures: the full pass is already this coarse
            if fast < full:
                out.insert(0, (fast, 0))
        return out

    def __call__(self, arr: np.ndarray) -> list[DetectedFace]:
        h, w = arr.shape[:2]
        copies: dict[float, np.ndarray] = {}
        det = self.load()
        for scale, up in self.passes(h, w):
            work = copies.setdefault(scale, _resized(arr, scale))
            # the copy's real scale (rounded sizes): boxes go back to the picture's pixels exactly
            sx, sy = work.shape[1] / w, work.shape[0] / h
            with self._lock:
                rects, scores, _ = det.run(work, up, 0.0)
            if rects:
                tag = "hog" if up == 0 else f"hog-up{up}"
                return [
                    DetectedFace(_clip((r.left() / sx, r.top() / sy, (r.right() + 1) / sx,
                                        (r.bottom() + 1) / sy), w, h), float(s), tag)
                    for r, s in zip(rects, scores, strict=True)
                ]
        return []


class YuNetDetector:
    """YuNet (OpenCV ``FaceDetectorYN``) from the registry entry ``yunet`` once its file is added."""

    name = "yunet"

    def __init__(self, path: str, score_threshold: float = YUNET_SCORE) -> None:
        import cv2

        try:
            self._det = cv2.FaceDetectorYN.create(path, "", (YUNET_SIDE, YUNET_SIDE), score_threshold, 0.3, 5000)
        except Exception as exc:  # cv2.error
            raise ModelError(f"cannot load YuNet from {path}: {exc}") from exc
        self._lock = threading.Lock()

    def __call__(self, arr: np.ndarray) -> list[DetectedFace]:
        h, w = arr.shape[:2]
        scale = YUNET_SIDE / max(h, w)
        work = np.asarray(Image.fromarray(arr).resize((max(1, round(w * scale)), max(1, round(h * scale)))))
        bgr = np.ascontiguousarray(work[:, :, ::-1])
        with self._lock:
            self._det.setInputSize((bgr.shape[1], bgr.shape[0]))
            _, rows = self._det.detect(bgr)
        faces = []
        for row in rows if rows is not None else []:
            x, y, bw, bh = (float(v) / scale for v in row[:4])
            faces.append(DetectedFace(_clip((x, y, x + bw, y + bh), w, h), float(row[-1]), "yunet"))
        return [f for f in faces if f.area > 0]


def yunet_path() -> str | None:
    """The installed YuNet model file, or None."""
    from lookalike.features import registry

    try:
        spec = registry.get_spec("yunet")
    except ModelError:
        return None
    path = registry.weights_file(spec)
    return str(path) if path and path.is_file() else None


class DetectorChain:
    """Detectors tried in order; the first that finds anything wins."""

    def __init__(self, detectors: list[Any]) -> None:
        if not detectors:
            raise ModelError("no face detector available")
        self.detectors = detectors
        self.key = ">".join(d.name for d in detectors)  # part of the catalog cache key

    def __call__(self, image: Image.Image | np.ndarray) -> list[DetectedFace]:
        arr = _as_array(image)
        for det in self.detectors:
            faces = det(arr)
            if faces:
                return sorted(faces, key=lambda f: (f.box[0], f.box[1]))
        return []


_chains: dict[tuple[str, str | None], DetectorChain] = {}
_chains_lock = threading.Lock()


def get_detector(name: str | None = None) -> DetectorChain:
    """A detector chain by name: ``auto`` (default: HOG, then YuNet if installed), ``hog`` or ``yunet``."""
    name = name or "auto"
    if name not in DETECTORS:
        raise UsageError(f"unknown face detector {name!r}; choose from {', '.join(DETECTORS)}")
    ypath = yunet_path()
    key = (name, ypath)
    with _chains_lock:
        if key in _chains:
            return _chains[key]
    if name == "yunet" and not ypath:
        raise ModelError("YuNet is not installed: lookalike models add yunet --file face_detection_yunet_2023mar.onnx")
    dets: list[Any] = []
    if name in ("auto", "hog"):
        dets.append(HogDetector())
    if ypath and name in ("auto", "yunet"):
        dets.append(YuNetDetector(ypath))
    chain = DetectorChain(dets)
    with _chains_lock:
        return _chains.setdefault(key, chain)


def whole_image(image: Image.Image | np.ndarray) -> DetectedFace:
    """The ``--direct`` fallback: the whole picture taken as one face."""
    arr = _as_array(image)
    return DetectedFace((0, 0, arr.shape[1], arr.shape[0]), 0.0, "direct")


def detect(image: str | Path | bytes | Image.Image | np.ndarray, detector: str | None = None) -> list[DetectedFace]:
    """Every face found in a picture (a path, its bytes, a PIL picture or an RGB array), left to right."""
    if isinstance(image, str | Path):
        if not os.path.exists(image):
            raise DecodeError(f"{image}: no such file")
        try:  # only a regular file is read (media.files.read_regular): a FIFO or /dev/zero is refused at once
            image = decode(image).image
        except DecodeError as exc:
            raise DecodeError(f"{image}: {exc}") from exc
    elif isinstance(image, bytes | bytearray):
        image = decode(bytes(image)).image
    return get_detector(detector)(image)
