"""People: the faces of a folder grouped by person, reviewed the way a person reviews them: name a group
(its faces become training examples of a face model, as ``lookalike faces name`` does), merge two groups
that are one person, and move a wrong face out of a group (and out of the model, when the group was named).

A :class:`People` grouping is plain data (``to_json`` / ``from_json``), so a front end may hold it between
calls; every rule lives here: two faces of one photo are never one person (as in :func:`cluster_faces`),
labels follow ``name_cluster``'s rule, and a named group's faces are found again in the model, so grouping
the same folder again shows the names already given.
"""

from __future__ import annotations

import os
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from lookalike.catalog import Catalog
from lookalike.errors import UsageError
from lookalike.faces.cluster import FaceClusterReport, cluster_faces
from lookalike.faces.embed import load_face_embedder
from lookalike.faces.recognize import calibrate
from lookalike.faces.store import FaceModel, active_face_model, list_face_models
from lookalike.faces.train import TrainReport, add_examples

Box = tuple[int, int, int, int]
#: Two boxes of one photo are the same face when they overlap this much (intersection over union).
SAME_FACE = 0.5


@dataclass(frozen=True)
class Face:
    """One face: the photo it is in and its box (left, top, right, bottom) in that photo's pixels."""

    path: str
    box: Box

    def to_json(self) -> dict[str, Any]:
        return {"path": self.path, "box": list(self.box)}

    @classmethod
    def from_json(cls, raw: Any) -> Face:
        if not isinstance(raw, dict) or not isinstance(raw.get("path"), str):
            raise UsageError("a face is {'path': PHOTO, 'box': [left, top, right, bottom]}")
        box = raw.get("box")
        if not isinstance(box, list | tuple) or len(box) != 4 or not all(
                isinstance(v, int) and not isinstance(v, bool) and 0 <= v < 1 << 20 for v in box):
            raise UsageError(f"bad face box {box!r}: give four whole numbers of pixels")
        if not (box[0] < box[2] and box[1] < box[3]):
            raise UsageError(f"bad face box {box!r}: left < right and top < bottom")
        return cls(raw["path"], (box[0], box[1], box[2], box[3]))


@dataclass
class Person:
    """One group of faces (one person), named or not."""

    id: str
    faces: list[Face]
    label: str | None = None

    def to_json(self) -> dict[str, Any]:
        return {"id": self.id, "label": self.label, "size": len(self.faces), "faces": [f.to_json() for f in self.faces]}


@dataclass
class People:
    """The faces of a folder grouped by person (largest group first), the faces left alone, and the photos
    without a face or that could not be read."""

    groups: list[Person] = field(default_factory=list)
    alone: list[Face] = field(default_factory=list)
    no_face: list[str] = field(default_factory=list)
    failed: list[tuple[str, str]] = field(default_factory=list)
    model: str | None = None  # the face model whose names the groups show
    threshold: float = 0.0
    embedder: str = ""

    def group(self, group_id: str) -> Person:
        for g in self.groups:
            if g.id == group_id:
                return g
        raise UsageError(f"no group {group_id!r} (groups: {', '.join(g.id for g in self.groups) or 'none'})")

    def to_json(self) -> dict[str, Any]:
        return {"model": self.model, "threshold": self.threshold, "embedder": self.embedder,
                "groups": [g.to_json() for g in self.groups], "alone": [f.to_json() for f in self.alone],
                "no_face": list(self.no_face), "failed": [{"path": p, "error": e} for p, e in self.failed]}

    @classmethod
    def from_json(cls, raw: Any) -> People:
        """A grouping as ``to_json`` wrote it (checked: ids unique, faces well formed)."""
        if not isinstance(raw, dict) or not isinstance(raw.get("groups"), list):
            raise UsageError("a grouping is {'groups': [{'id', 'label', 'faces'}], 'alone': [...]}")
        groups, seen = [], set()
        for g in raw["groups"]:
            if not isinstance(g, dict) or not isinstance(g.get("id"), str) or not g["id"] or g["id"] in seen:
                raise UsageError("each group needs a unique 'id'")
            seen.add(g["id"])
            label = g.get("label")
            groups.append(Person(g["id"], [Face.from_json(f) for f in g.get("faces") or []],
                                 check_label(label) if label else None))
        return cls(groups, [Face.from_json(f) for f in raw.get("alone") or []],
                   [p for p in raw.get("no_face") or [] if isinstance(p, str)], [],
                   raw.get("model") if isinstance(raw.get("model"), str) else None,
                   float(raw.get("threshold") or 0.0), str(raw.get("embedder") or ""))

    @classmethod
    def from_report(cls, report: FaceClusterReport) -> People:
        return cls([Person(c.id, [Face(p, tuple(b)) for p, b in c.faces]) for c in report.clusters],
                   [Face(p, tuple(b)) for p, b in report.unclustered], list(report.no_face), list(report.failed),
                   None, report.threshold, report.embedder)


def check_label(label: Any) -> str:
    """A person's name as a face model label: not empty, not ``unknown``, no ``/`` (as ``faces name``)."""
    if not isinstance(label, str) or not label.strip() or label.strip() == "unknown" or "/" in label \
            or "\\" in label or len(label) > 200 or any(ord(c) < 32 for c in label):
        raise UsageError(f"bad name {label!r}: give a person's name (not 'unknown', no '/')")
    return label.strip()


def overlap(a: Sequence[int], b: Sequence[int]) -> float:
    """Intersection over union of two boxes."""
    iw = max(0, min(a[2], b[2]) - max(a[0], b[0]))
    ih = max(0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = iw * ih
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0


def _real(path: str) -> str:
    return os.path.realpath(path)


def group_people(
    folder: str | Path | Sequence[str | Path],
    model: str | None = None,
    threshold: float | None = None,
    min_size: int = 2,
    detector: str | None = None,
    catalog: Catalog | str | Path | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> People:
    """Group the faces of a folder into people (:func:`cluster_faces`) and name each group after the
    label of the named (or active) face model that already holds its faces, so names given before show.
    A named model that does not exist yet (the one the names will go to) is no error: no names yet."""
    name = model or active_face_model()
    known = name is not None and name in list_face_models()
    report = cluster_faces(folder, threshold=threshold, min_size=min_size, model=name if known else None,
                           detector=detector, catalog=catalog, progress=progress)
    people = People.from_report(report)
    if known:
        people.model = name
        label_groups(people, FaceModel.load(name))
    return people


def label_groups(people: People, model: FaceModel) -> People:
    """Name each group after the label most of its faces have as prototypes of ``model`` (a face is a
    prototype when the same photo's prototype box overlaps it by :data:`SAME_FACE`)."""
    by_photo: dict[str, list[tuple[Sequence[int], str]]] = {}
    for p in model.prototypes:
        by_photo.setdefault(_real(p.source), []).append((p.box, p.label))
    for g in people.groups:
        votes: Counter[str] = Counter()
        for f in g.faces:
            for box, label in by_photo.get(_real(f.path), []):
                if overlap(box, f.box) >= SAME_FACE:
                    votes[label] += 1
        if votes:
            g.label = sorted(votes.items(), key=lambda kv: (-kv[1], kv[0]))[0][0]
    return people


def _photos(faces: Sequence[Face]) -> set[str]:
    return {_real(f.path) for f in faces}


def merge_people(people: People, into: str, other: str) -> People:
    """``other``'s faces join ``into`` (which keeps its name, or takes ``other``'s when it has none). Refused
    when both hold a face of one photo: two faces of one photo are never one person."""
    if into == other:
        raise UsageError("pick two different groups to merge")
    a, b = people.group(into), people.group(other)
    both = _photos(a.faces) & _photos(b.faces)
    if both:
        raise UsageError(f"{into} and {other} both hold a face of {sorted(both)[0]}: two faces of one photo are "
                         "never one person")
    merged = Person(a.id, [*a.faces, *b.faces], a.label or b.label)
    groups = [merged if g.id == into else g for g in people.groups if g.id != other]
    groups.sort(key=lambda g: -len(g.faces))  # stable: equal sizes keep their order
    return replace(people, groups=groups)


def move_face(people: People, face: Face, to: str | None = None, model: str | None = None) -> People:
    """Move a face out of its group: to the group ``to``, or (None) to the faces left alone; a face left
    alone may join a group (``to``). A group left empty goes. With ``model``, a named group's face is also
    taken out of that model (:func:`forget_faces`), so recognition stops taking it for that person."""
    source = next((g for g in people.groups if any(_same(f, face) for f in g.faces)), None)
    if source is None:
        lone = next((f for f in people.alone if _same(f, face)), None)
        if lone is None:
            raise UsageError(f"no group holds the face {list(face.box)} of {face.path}")
        if to is None:
            raise UsageError("that face is on its own already: give the group it belongs to")
        target = people.group(to)
        if _real(lone.path) in _photos(target.faces):
            raise UsageError(f"{to} holds another face of {lone.path}: two faces of one photo are never one person")
        groups = [Person(g.id, [*g.faces, lone], g.label) if g is target else g for g in people.groups]
        groups.sort(key=lambda g: -len(g.faces))
        return replace(people, groups=groups, alone=[f for f in people.alone if f is not lone])
    moved = next(f for f in source.faces if _same(f, face))
    target = None
    if to is not None:
        target = people.group(to)
        if target is source:
            raise UsageError(f"the face is in {to} already")
        if _real(moved.path) in _photos(target.faces):
            raise UsageError(f"{to} holds another face of {moved.path}: two faces of one photo are never one person")
    if model and source.label:
        forget_faces(model, source.label, [moved])
    groups = []
    for g in people.groups:
        if g is source:
            g = Person(g.id, [f for f in g.faces if f is not moved], g.label)
        elif g is target:
            g = Person(g.id, [*g.faces, moved], g.label)
        if g.faces:
            groups.append(g)
    alone = people.alone if target is not None else [*people.alone, moved]
    groups.sort(key=lambda g: -len(g.faces))
    return replace(people, groups=groups, alone=alone)


def _same(a: Face, b: Face) -> bool:
    return _real(a.path) == _real(b.path) and overlap(a.box, b.box) >= SAME_FACE


def name_person(
    people: People,
    group_id: str,
    label: str,
    model: str,
    catalog: Catalog | str | Path | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> tuple[People, TrainReport]:
    """Name a group: its faces become examples of ``label`` in face model ``model`` (created when new), as
    ``lookalike faces name`` does with a reviewed folder. Faces of the group the model holds under another
    label (a group renamed, or merged from two named ones) are taken out of that label first, so one face
    is never two people."""
    label = check_label(label)
    group = people.group(group_id)
    if not group.faces:
        raise UsageError(f"{group_id} has no faces")
    if model in list_face_models():
        fm = FaceModel.load(model)
        others = {p.label for p in fm.prototypes if p.label != label
                  and any(_real(p.source) == _real(f.path) and overlap(p.box, f.box) >= SAME_FACE for f in group.faces)}
        for old in sorted(others):
            forget_faces(model, old, group.faces)
    report = add_examples(model, [(label, f.path, f.box) for f in group.faces], catalog=catalog, progress=progress)
    groups = [Person(g.id, g.faces, label) if g is group else g for g in people.groups]
    return replace(people, groups=groups, model=model), report


def forget_faces(model: str, label: str, faces: Sequence[Face]) -> int:
    """Take faces out of ``label`` in a face model: their prototypes (and crops) go, their photos count as
    not seen for that label (so naming them again adds them back), and the unknown threshold is
    recalibrated. Returns how many prototypes went."""
    fm = FaceModel.load(model)
    gone = [p for p in fm.prototypes if p.label == label
            and any(_real(p.source) == _real(f.path) and overlap(p.box, f.box) >= SAME_FACE for f in faces)]
    if not gone:
        return 0
    photos = {_real(p.source) for p in gone}
    gone_ids = {id(p) for p in gone}
    fm.prototypes = [p for p in fm.prototypes if id(p) not in gone_ids]
    fm.sources = {k: v for k, v in fm.sources.items()
                  if not (v.get("label") == label and _real(str(v.get("path", ""))) in photos)}
    for p in gone:
        crop = fm.crop_path(p)
        if crop.is_file() and crop.resolve().is_relative_to(fm.folder.resolve()):
            crop.unlink()
    default = load_face_embedder(fm.embedder).default_tolerance
    if fm.prototypes:
        fm.meta["threshold"], fm.meta["calibration"] = calibrate(fm.matrix(), [p.label for p in fm.prototypes],
                                                                 default)
    else:
        fm.meta["threshold"], fm.meta["calibration"] = None, {}
    fm.save()
    return len(gone)


__all__ = ["SAME_FACE", "Face", "People", "Person", "check_label", "forget_faces", "group_people", "label_groups",
           "merge_people", "move_face", "name_person", "overlap"]
