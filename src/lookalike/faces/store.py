"""Face models on disk: several named models, one active.

Layout under ``$LOOKALIKE_HOME/faces`` (``$LOOKALIKE_FACES_DIR`` overrides)::

    active                      name of the active model
    NAME/model.json             embedder, detector, calibrated threshold and its statistics
    NAME/sources.json           every training photo seen (label + content hash -> outcome), for incremental runs
    NAME/prototypes.json        one entry per prototype: label, crop, source photo, box, embedding
    NAME/crops/LABEL/*.png      the aligned face crop each prototype came from

Deleting a crop file removes its prototype the next time the model is loaded (the photo it came from
stays "seen", so retraining does not bring it back). Removing a model deletes its files through the
journal, so ``lookalike undo`` restores it.
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from lookalike.config import home_dir
from lookalike.errors import UsageError

_NAME_OK = set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_.")


def faces_root() -> Path:
    """The folder that holds every face model."""
    env = os.environ.get("LOOKALIKE_FACES_DIR")
    path = Path(env).expanduser() if env else home_dir() / "faces"
    path.mkdir(parents=True, exist_ok=True)
    return path


def check_name(name: str) -> str:
    if not name or name.startswith(".") or not set(name) <= _NAME_OK:
        raise UsageError(f"bad face model name {name!r}: use letters, digits, '-', '_' and '.'")
    return name


def _write_json(path: Path, data: Any) -> None:
    tmp = path.with_suffix(path.suffix + f".tmp{os.getpid()}")
    tmp.write_text(json.dumps(data, indent=1, ensure_ascii=False))
    os.replace(tmp, path)


@dataclass
class Prototype:
    label: str
    crop: str  # relative to the model folder
    source: str  # path of the training photo
    content_hash: str
    box: list[int]
    embedding: np.ndarray

    def to_json(self) -> dict[str, Any]:
        return {"label": self.label, "crop": self.crop, "source": self.source, "content_hash": self.content_hash,
                "box": list(self.box), "embedding": [round(float(x), 7) for x in self.embedding]}


@dataclass
class FaceModel:
    """A trained face model: its prototypes, its settings and its calibrated unknown threshold."""

    name: str
    folder: Path
    meta: dict[str, Any] = field(default_factory=dict)
    sources: dict[str, dict[str, Any]] = field(default_factory=dict)
    prototypes: list[Prototype] = field(default_factory=list)
    dropped: list[str] = field(default_factory=list)  # crops found missing at load

    @property
    def embedder(self) -> str:
        return self.meta.get("embedder", "dlib-face")

    @property
    def embedder_version(self) -> str | None:
        return self.meta.get("embedder_version")

    @property
    def detector(self) -> str:
        return self.meta.get("detector", "auto")

    @property
    def threshold(self) -> float | None:
        t = self.meta.get("threshold")
        return float(t) if t is not None else None

    @property
    def labels(self) -> list[str]:
        return sorted({p.label for p in self.prototypes})

    def crop_path(self, proto: Prototype) -> Path:
        return self.folder / proto.crop

    def matrix(self) -> np.ndarray:
        if not self.prototypes:
            return np.zeros((0, 0), dtype=np.float32)
        return np.stack([p.embedding for p in self.prototypes]).astype(np.float32)

    # -- persistence ------------------------------------------------------------------------------------------
    @classmethod
    def create(cls, name: str, embedder: str, embedder_version: str, detector: str) -> FaceModel:
        """A new, empty model on disk. The active model stays the active one: the model that was active (chosen
        with `use`, or the only one there was) is written down as active before the new one appears, so
        training a second model never leaves the first one unchosen; the very first model becomes active."""
        folder = faces_root() / check_name(name)
        if (folder / "model.json").exists():
            raise UsageError(f"face model {name!r} already exists")
        active = active_face_model()
        if active is None and not list_face_models():
            active = name
        if active is not None:
            _write_json_text(faces_root() / "active", active + "\n")
        folder.mkdir(parents=True, exist_ok=True)
        now = time.strftime("%Y-%m-%dT%H:%M:%S")
        model = cls(name, folder, {"name": name, "embedder": embedder, "embedder_version": embedder_version,
                                   "detector": detector, "threshold": None, "calibration": {},
                                   "created": now, "updated": now})
        model.save()
        return model

    @classmethod
    def load(cls, name: str) -> FaceModel:
        """Load a model; prototypes whose crop file was deleted are dropped (and the model saved so)."""
        folder = faces_root() / check_name(name)
        meta_file = folder / "model.json"
        if not meta_file.is_file():
            known = ", ".join(list_face_models()) or "none yet; train one with `lookalike faces train`"
            raise UsageError(f"no face model {name!r} (known: {known})")
        try:
            meta = json.loads(meta_file.read_text())
            sources = json.loads((folder / "sources.json").read_text()) if (folder / "sources.json").exists() else {}
            raw = json.loads((folder / "prototypes.json").read_text()) if (
                folder / "prototypes.json").exists() else []
        except (OSError, ValueError) as exc:
            raise UsageError(f"face model {name!r} is damaged: {exc}") from exc
        model = cls(name, folder, meta, sources)
        for p in raw:
            if (folder / p["crop"]).is_file():
                model.prototypes.append(Prototype(p["label"], p["crop"], p["source"], p["content_hash"], p["box"],
                                                  np.asarray(p["embedding"], dtype=np.float32)))
            else:
                model.dropped.append(p["crop"])
        if model.dropped:
            model.save()
        return model

    def save(self) -> None:
        self.meta["updated"] = time.strftime("%Y-%m-%dT%H:%M:%S")
        self.meta["prototypes"] = len(self.prototypes)
        self.meta["people"] = len(self.labels)
        _write_json(self.folder / "prototypes.json", [p.to_json() for p in self.prototypes])
        _write_json(self.folder / "sources.json", self.sources)
        _write_json(self.folder / "model.json", self.meta)

    def info(self) -> dict[str, Any]:
        counts: dict[str, int] = {}
        for p in self.prototypes:
            counts[p.label] = counts.get(p.label, 0) + 1
        no_face = sorted(v["path"] for v in self.sources.values() if v.get("status") == "no-face")
        return {
            "name": self.name,
            "folder": str(self.folder),
            "active": active_face_model() == self.name,
            "embedder": self.embedder,
            "embedder_version": self.embedder_version,
            "detector": self.detector,
            "threshold": self.threshold,
            "calibration": self.meta.get("calibration", {}),
            "people": len(counts),
            "prototypes": len(self.prototypes),
            "per_person": dict(sorted(counts.items())),
            "photos_seen": len(self.sources),
            "photos_without_face": no_face,
            "created": self.meta.get("created"),
            "updated": self.meta.get("updated"),
        }


def list_face_models() -> list[str]:
    """Names of the face models on disk."""
    root = faces_root()
    return sorted(p.parent.name for p in root.glob("*/model.json") if not p.parent.name.startswith("."))


def active_face_model() -> str | None:
    """Name of the active model: the one `use` chose (or that was active when another model was created), else
    the only one there is, else None."""
    f = faces_root() / "active"
    names = list_face_models()
    if f.is_file():
        name = f.read_text().strip()
        if name in names:
            return name
    return names[0] if len(names) == 1 else None


def use_face_model(name: str) -> None:
    """Make a model the active one."""
    if check_name(name) not in list_face_models():
        raise UsageError(f"no face model {name!r} (known: {', '.join(list_face_models()) or 'none'})")
    _write_json_text(faces_root() / "active", name + "\n")


def _write_json_text(path: Path, text: str) -> None:
    tmp = path.with_suffix(f".tmp{os.getpid()}")
    tmp.write_text(text)
    os.replace(tmp, path)


def face_model_info(name: str | None = None) -> dict[str, Any]:
    """Facts about a model (default: the active one)."""
    return FaceModel.load(resolve_model(name)).info()


def resolve_model(name: str | None) -> str:
    """The model to use: the one named, else the active one."""
    if name:
        return check_name(name)
    active = active_face_model()
    if active is None:
        names = list_face_models()
        if not names:
            raise UsageError("no face model yet: train one with `lookalike faces train DATASET --model NAME`")
        raise UsageError(f"several face models ({', '.join(names)}): pick one with `lookalike faces models use NAME`")
    return active


def remove_face_model(name: str):
    """Delete a model's files through the journal (``lookalike undo`` brings them back); the active marker is
    cleared. Returns the journal's ApplyReport."""
    from lookalike.journal import Plan, apply_plan

    folder = faces_root() / check_name(name)
    if not (folder / "model.json").is_file():
        raise UsageError(f"no face model {name!r}")
    plan = Plan(description=f"faces models rm {name}")
    files = sorted(p for p in folder.rglob("*") if p.is_file() or p.is_symlink())
    for p in files:
        if p.name != "model.json":
            plan.delete(p)
    plan.delete(folder / "model.json")  # last: the model stays listed until everything else is gone
    report = apply_plan(plan)
    marker = faces_root() / "active"
    if not (folder / "model.json").exists() and marker.is_file() and marker.read_text().strip() == name:
        marker.unlink()
    return report
