"""Training: one sub-folder per person -> prototypes (embedding + aligned PNG crop), incrementally, then
recalibration of the model's unknown threshold."""

from __future__ import annotations

import os
import re
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from PIL import Image

from lookalike.catalog import Catalog, open_catalog
from lookalike.errors import UsageError
from lookalike.faces.embed import load_face_embedder
from lookalike.faces.recognize import calibrate
from lookalike.faces.scan import FoundFace, check_workers, scan_paths
from lookalike.faces.store import FaceModel, Prototype, check_name, faces_root, list_face_models
from lookalike.index import content_hashes
from lookalike.media import WalkProblem, check_inputs, iter_images
from lookalike.media.walk import SKIPPED_DIRS

Box = tuple[int, int, int, int]


@dataclass
class TrainReport:
    model: str
    people_added: list[str] = field(default_factory=list)
    photos_added: int = 0
    unchanged: int = 0
    no_face: list[str] = field(default_factory=list)
    several_faces: list[tuple[str, int]] = field(default_factory=list)  # (photo, faces found): largest used
    failed: list[tuple[str, str]] = field(default_factory=list)
    duplicates: list[str] = field(default_factory=list)  # same bytes as another photo of the same person
    #: Folders inside a person's folder: not used (their photos are not labelled with the parent's name).
    nested_skipped: list[str] = field(default_factory=list)
    prototypes: int = 0
    people: int = 0
    threshold: float | None = None
    calibration: dict[str, Any] = field(default_factory=dict)
    seconds: float = 0.0

    def to_json(self) -> dict[str, Any]:
        return {
            "model": self.model, "people_added": self.people_added, "photos_added": self.photos_added,
            "unchanged": self.unchanged, "no_face": self.no_face,
            "several_faces": [{"path": p, "faces": n} for p, n in self.several_faces],
            "failed": [{"path": p, "error": e} for p, e in self.failed], "duplicates": self.duplicates,
            "nested_skipped": self.nested_skipped,
            "prototypes": self.prototypes, "people": self.people, "threshold": self.threshold,
            "calibration": self.calibration, "seconds": round(self.seconds, 3),
        }


def _open_or_create(name: str, embedder: str | None, detector: str | None) -> FaceModel:
    check_name(name)
    if name in list_face_models():
        model = FaceModel.load(name)
        if embedder and embedder != model.embedder:
            raise UsageError(f"face model {name!r} uses {model.embedder}; cannot add {embedder} embeddings to it")
        return model
    emb = load_face_embedder(embedder)
    return FaceModel.create(name, emb.id, emb.version, detector or "auto")


def _safe(text: str) -> str:
    return re.sub(r"[^\w.-]+", "_", text).strip("._") or "face"


def _overlap(a: Box, b: Box) -> float:
    iw = max(0, min(a[2], b[2]) - max(a[0], b[0]))
    ih = max(0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = iw * ih
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0


def add_examples(
    name: str,
    examples: Sequence[tuple[str, str, Box | None]],
    embedder: str | None = None,
    detector: str | None = None,
    catalog: Catalog | str | Path | None = None,
    workers: int | None = None,
    progress: Callable[[int, int], None] | None = None,
    direct: bool = False,
) -> TrainReport:
    """Add (label, photo path, face box or None = largest face) examples to a model, then recalibrate."""
    t0 = time.perf_counter()
    workers = check_workers(workers)  # before a model is created or a photo read
    model = _open_or_create(name, embedder, detector)
    report = TrainReport(model=name)
    cat = open_catalog(catalog)
    old_labels = set(model.labels) | {v["label"] for v in model.sources.values()}
    paths = [os.path.abspath(p) for _, p, _ in examples]
    hashes, errors = content_hashes(cat, list(dict.fromkeys(paths)))
    report.failed.extend(errors.items())

    todo: list[tuple[str, str, Box | None, str]] = []
    seen: set[str] = set()
    for (label, _, box), path in zip(examples, paths, strict=True):
        h = hashes.get(path)
        if h is None:
            continue
        key = f"{label}/{h}" if box is None else f"{label}/{h}/{','.join(map(str, box))}"
        if key in model.sources:
            report.unchanged += 1
        elif key in seen:
            report.duplicates.append(path)
        else:
            seen.add(key)
            todo.append((label, path, box, key))

    photos = scan_paths(sorted({p for _, p, _, _ in todo}), cat, model.embedder, detector or model.detector,
                        direct=direct, chips=True, workers=workers, progress=progress)
    by_path = {ph.path: ph for ph in photos}
    for label, path, box, key in todo:
        ph = by_path[path]
        entry: dict[str, Any] = {"label": label, "path": path}
        face: FoundFace | None = None
        if ph.error:
            report.failed.append((path, ph.error))
            continue  # not recorded: a later run retries it
        if not ph.faces:
            entry["status"] = "no-face"
            report.no_face.append(path)
        elif box is not None:
            face = max(ph.faces, key=lambda f: _overlap(f.box, box))
            if _overlap(face.box, box) < 0.3:
                face = None
                entry["status"] = "no-face"
                report.no_face.append(path)
        else:
            face = ph.largest()
            if len(ph.faces) > 1:
                report.several_faces.append((path, len(ph.faces)))
        if face is not None and face.chip is not None:
            stem = f"{_safe(Path(path).stem)}-{hashes[path][:10]}-{len(model.prototypes)}"
            crop_rel = Path("crops") / _safe(label) / f"{stem}.png"
            (model.folder / crop_rel).parent.mkdir(parents=True, exist_ok=True)
            Image.fromarray(face.chip).save(model.folder / crop_rel)
            model.prototypes.append(Prototype(label, crop_rel.as_posix(), path, hashes[path], list(face.box),
                                              face.embedding))
            entry.update(status="ok", crop=crop_rel.as_posix(), faces=len(ph.faces))
            report.photos_added += 1
        model.sources[key] = entry

    emb = load_face_embedder(model.embedder)
    if model.prototypes:
        threshold, stats = calibrate(model.matrix(), [p.label for p in model.prototypes], emb.default_tolerance)
        model.meta["threshold"], model.meta["calibration"] = threshold, stats
    model.save()
    report.people_added = sorted(set(model.labels) - old_labels)
    report.prototypes, report.people = len(model.prototypes), len(model.labels)
    report.threshold, report.calibration = model.threshold, model.meta.get("calibration", {})
    report.seconds = time.perf_counter() - t0
    return report


def train(
    dataset: str | Path,
    model: str,
    progress: Callable[[int, int], None] | None = None,
    embedder: str | None = None,
    detector: str | None = None,
    catalog: Catalog | str | Path | None = None,
    workers: int | None = None,
) -> TrainReport:
    """Train (or extend) a face model from DATASET: one sub-folder per person, the folder name is the label.

    Incremental: photos already seen by the model are skipped. Photos without a face are reported; photos
    with several faces contribute their largest face and are reported. Only the photos directly inside a
    person's folder are used: a folder inside it (``alice/holiday/``) is left out and listed in
    ``nested_skipped`` (give it its own person folder to use it). A file that is not a regular picture (a
    FIFO, a device) is listed in ``failed`` and the run goes on.
    """
    check_workers(workers)  # before the folder is walked
    root = Path(check_inputs([dataset])[0])  # a misspelt path: UsageError "no such file or folder"
    if not root.is_dir():
        raise UsageError(f"{root} is a file: give a folder holding one sub-folder of photos per person")
    people = sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
    if not people:
        raise UsageError(f"{root} has no sub-folders: put each person's photos in a folder named after them")
    if root.resolve() == faces_root().resolve():
        raise UsageError("cannot train from the face models folder itself")
    examples: list[tuple[str, str, Box | None]] = []
    nested: list[str] = []
    walk_errors: list[WalkProblem] = []  # a FIFO or device named like a picture: one error each
    for person in people:
        examples.extend((person.name, path, None)
                        for path in iter_images([person], recursive=False, errors=walk_errors))
        nested.extend(_nested_photo_folders(person))
    if not examples:
        why = f" ({len(nested)} only in folders inside them, which are not used)" if nested else ""
        raise UsageError(f"no pictures in the person folders of {root}{why}: put each person's photos directly "
                         "in a folder named after them")
    report = add_examples(model, examples, embedder, detector, catalog, workers, progress)
    report.failed.extend((e.path, e.error) for e in walk_errors if not e.skipped)
    report.nested_skipped = nested
    return report


def _nested_photo_folders(person: Path) -> list[str]:
    """Folders inside a person's folder that hold photos (at any depth). Their photos are not that person's
    for sure (``alice/holiday/`` may show anyone), so training leaves them out and names them instead of
    labelling them with the parent's name."""
    try:
        subs = sorted(e for e in person.iterdir() if e.is_dir() and not e.name.startswith(".")
                      and e.name not in SKIPPED_DIRS)
    except OSError:
        return []
    return [str(sub) for sub in subs if next(iter(iter_images([sub], recursive=True)), None) is not None]
