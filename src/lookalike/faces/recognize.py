"""Recognition with an honest ``unknown``: every face of a picture gets its k closest prototypes and a
decision, the nearest prototype's label only when it lies within the model's calibrated threshold.

The threshold is calibrated at training time from the training faces themselves (leave-one-out): for each
face, the distance to the nearest *other* face of the same person (what a known person's new photo looks
like) and to the nearest face of anybody else (what a stranger looks like to the model). The threshold
minimises FRR + 2 x FAR (calling a stranger by a name is the worse mistake) and sits a third of the way
into the gap above the last same-person distance it accepts, but never above the distance within which 99%
of the training faces find another photo of their own person: the training set's other people are few
(their distances are correlated per person), so where they all lie far away the first rule would stretch
the threshold to the most atypical training photo, and an unseen person who looks like a known one would
be named.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from lookalike.catalog import Catalog
from lookalike.errors import DecodeError, UsageError
from lookalike.faces.embed import FaceEmbedder, load_face_embedder
from lookalike.faces.scan import PhotoFaces, check_workers, scan_image, scan_paths
from lookalike.faces.store import FaceModel, resolve_model
from lookalike.media import WalkProblem, walk_inputs
from lookalike.options import check_k, check_tolerance

UNKNOWN = "unknown"
#: Calibration needs at least this many same-person and different-person samples; else the default is used.
MIN_CALIBRATION_SAMPLES = 4
#: Naming a stranger is worse than saying "unknown": false accepts weigh this much more than false rejects.
STRANGER_WEIGHT = 2.0
#: Where the threshold sits in the gap above the last accepted same-person distance (strangers seen at
#: training are fewer than the people a model will meet, so the gap is not split in the middle).
GAP_FRACTION = 1.0 / 3.0
#: The threshold is at most this quantile of the leave-one-out same-person distances (see the module docstring).
KNOWN_ACCEPT_QUANTILE = 0.99
#: The calibrated threshold is kept within this factor of the embedder's default tolerance (guards tiny sets).
CALIBRATION_RANGE = (0.6, 1.4)


def calibrate(embeddings: np.ndarray, labels: Sequence[str], default: float) -> tuple[float, dict[str, Any]]:
    """(threshold, statistics) from training faces: see the module docstring."""
    labels_arr = np.asarray(labels)
    n = len(labels_arr)
    stats: dict[str, Any] = {"faces": n, "people": len(set(labels)), "default": default}
    if n < 2:
        return default, {**stats, "method": "default (too few faces)"}
    d = FaceEmbedder.distances(embeddings, embeddings)
    np.fill_diagonal(d, np.inf)
    same = labels_arr[:, None] == labels_arr[None, :]
    genuine = np.where(same, d, np.inf).min(1)
    impostor = np.where(~same, d, np.inf).min(1)
    genuine, impostor = genuine[np.isfinite(genuine)], impostor[np.isfinite(impostor)]
    stats.update(genuine_samples=len(genuine), impostor_samples=len(impostor))
    if len(genuine) < MIN_CALIBRATION_SAMPLES or len(impostor) < MIN_CALIBRATION_SAMPLES:
        return default, {**stats, "method": "default (need several photos of at least two people)"}
    cands = np.unique(np.concatenate([genuine, impostor]))
    frr = 1.0 - np.searchsorted(np.sort(genuine), cands, side="right") / len(genuine)
    far = np.searchsorted(np.sort(impostor), cands, side="right") / len(impostor)
    err = frr + STRANGER_WEIGHT * far
    a = int(np.argmin(err))
    t = float(cands[a] + GAP_FRACTION * (cands[a + 1] - cands[a])) if a + 1 < len(cands) else float(cands[a])
    known_cap = float(np.quantile(genuine, KNOWN_ACCEPT_QUANTILE))
    capped = t > known_cap
    t = min(t, known_cap)
    lo, hi = default * CALIBRATION_RANGE[0], default * CALIBRATION_RANGE[1]
    clamped = min(max(t, lo), hi)
    stats.update(
        method="leave-one-out nearest distances, min(FRR + 2 FAR)"
        + (f", at most the same-person {KNOWN_ACCEPT_QUANTILE:.0%} quantile" if capped else "")
        + (f" (clamped from {t:.4f})" if clamped != t else ""),
        known_rejected=round(float((genuine > clamped).mean()), 4),
        strangers_accepted=round(float((impostor <= clamped).mean()), 4),
        genuine_median=round(float(np.median(genuine)), 4),
        genuine_p95=round(float(np.quantile(genuine, 0.95)), 4),
        impostor_median=round(float(np.median(impostor)), 4),
        impostor_p05=round(float(np.quantile(impostor, 0.05)), 4),
    )
    return round(clamped, 4), stats


@dataclass
class Candidate:
    label: str
    distance: float
    crop: str

    def to_json(self) -> dict[str, Any]:
        return {"label": self.label, "distance": round(self.distance, 4), "crop": self.crop}


@dataclass
class FaceMatch:
    box: tuple[int, int, int, int]
    label: str
    distance: float
    candidates: list[Candidate]
    detector: str = ""

    def to_json(self) -> dict[str, Any]:
        return {"box": list(self.box), "label": self.label, "distance": round(self.distance, 4),
                "candidates": [c.to_json() for c in self.candidates]}


@dataclass
class RecognizeResult:
    """Every face of one picture. ``to_json()`` is exactly the issue's JSON."""

    path: str | None
    faces: list[FaceMatch] = field(default_factory=list)
    model: str = ""
    threshold: float = 0.0
    direct: bool = False

    @property
    def no_face(self) -> bool:
        return not self.faces

    def to_json(self) -> dict[str, Any]:
        return {"faces": [f.to_json() for f in self.faces]}


class Matcher:
    """Nearest-prototype search over one loaded face model."""

    def __init__(self, model: FaceModel, tolerance: float | None = None) -> None:
        if not model.prototypes:
            raise UsageError(f"face model {model.name!r} has no prototypes; train it first")
        self.model = model
        self.embedder = load_face_embedder(model.embedder)
        if model.embedder_version and self.embedder.version != model.embedder_version:
            raise UsageError(f"face model {model.name!r} was trained with {model.embedder} "
                             f"{model.embedder_version}, but {self.embedder.version} is installed; retrain it")
        tolerance = check_tolerance(tolerance)
        self.threshold = float(tolerance if tolerance is not None else (
            model.threshold if model.threshold is not None else self.embedder.default_tolerance))
        self.base = model.matrix()
        self.labels = [p.label for p in model.prototypes]
        self.crops = [str(model.crop_path(p)) for p in model.prototypes]

    def match(self, vectors: np.ndarray, k: int = 5) -> list[tuple[str, float, list[Candidate]]]:
        """For each vector: (decision, nearest distance, k closest prototypes)."""
        d = self.embedder.distances(vectors, self.base)
        out = []
        k = max(1, min(k, len(self.labels)))
        for row in d:
            order = np.argsort(row, kind="stable")[:k]
            cands = [Candidate(self.labels[j], float(row[j]), self.crops[j]) for j in order]
            best = cands[0]
            out.append((best.label if best.distance <= self.threshold else UNKNOWN, best.distance, cands))
        return out

    def rank_labels(self, vector: np.ndarray) -> list[tuple[str, float]]:
        """Every label with its nearest prototype distance, closest first."""
        d = self.embedder.distances(vector[None, :], self.base)[0]
        best: dict[str, float] = {}
        for lab, dist in zip(self.labels, d, strict=True):
            if dist < best.get(lab, np.inf):
                best[lab] = float(dist)
        return sorted(best.items(), key=lambda kv: kv[1])

    def result(self, photo: PhotoFaces, k: int) -> RecognizeResult:
        res = RecognizeResult(photo.path, model=self.model.name, threshold=self.threshold, direct=photo.direct)
        if photo.faces:
            vecs = np.stack([f.embedding for f in photo.faces])
            for f, (label, dist, cands) in zip(photo.faces, self.match(vecs, k), strict=True):
                res.faces.append(FaceMatch(f.box, label, dist, cands, f.detector))
        return res


def recognize(
    image: str | Path | bytes | Image.Image,
    k: int = 5,
    model: str | None = None,
    tolerance: float | None = None,
    direct: bool = False,
    catalog: Catalog | str | Path | None = None,
    detector: str | None = None,
) -> RecognizeResult:
    """Every face of one picture with its decision and k closest prototypes (no face: an empty list)."""
    k, tolerance = check_k(k), check_tolerance(tolerance)  # before anything is loaded or read
    matcher = Matcher(FaceModel.load(resolve_model(model)), tolerance)
    photo = scan_image(image, catalog, matcher.model.embedder, detector or matcher.model.detector, direct)
    if photo.error:
        raise DecodeError(f"{photo.path}: {photo.error}")
    return matcher.result(photo, k)


@dataclass
class WhoReport:
    """Faces of every photo of a folder: one row per face; photos without a face and failures listed."""

    rows: list[tuple[str, int, int, int, int, str, float]] = field(default_factory=list)
    no_face: list[str] = field(default_factory=list)
    failed: list[tuple[str, str]] = field(default_factory=list)
    photos: int = 0
    model: str = ""
    threshold: float = 0.0

    HEADER = ("path", "left", "top", "right", "bottom", "label", "distance")

    def to_json(self) -> dict[str, Any]:
        return {
            "model": self.model,
            "threshold": self.threshold,
            "faces": [dict(zip(self.HEADER, r, strict=True)) for r in self.rows],
            "no_face": self.no_face,
            "failed": [{"path": p, "error": e} for p, e in self.failed],
        }


def who(
    folder: str | Path | Sequence[str | Path],
    model: str | None = None,
    tolerance: float | None = None,
    direct: bool = False,
    recursive: bool = True,
    catalog: Catalog | str | Path | None = None,
    detector: str | None = None,
    workers: int | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> WhoReport:
    """Recognise every face of every photo under a folder (or list of paths)."""
    tolerance = check_tolerance(tolerance)  # before anything is loaded or read
    workers = check_workers(workers)
    walk_errors: list[WalkProblem] = []  # a FIFO or device named like a picture: one error each
    # a misspelt path or a folder without pictures: UsageError, whatever the face models
    paths = walk_inputs([folder] if isinstance(folder, str | Path) else list(folder), recursive=recursive,
                        errors=walk_errors)
    matcher = Matcher(FaceModel.load(resolve_model(model)), tolerance)
    photos = scan_paths(paths, catalog, matcher.model.embedder, detector or matcher.model.detector, direct,
                        workers=workers, progress=progress)
    rep = WhoReport(photos=len(photos), model=matcher.model.name, threshold=matcher.threshold)
    rep.failed.extend((e.path, e.error) for e in walk_errors if not e.skipped)
    for ph in photos:
        if ph.error:
            rep.failed.append((ph.path or "", ph.error))
            continue
        res = matcher.result(ph, 1)
        if not res.faces:
            rep.no_face.append(ph.path or "")
        for f in res.faces:
            rep.rows.append((ph.path or "", *f.box, f.label, round(f.distance, 4)))
    return rep
