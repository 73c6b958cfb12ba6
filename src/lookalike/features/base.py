"""The one feature-extractor interface.

An :class:`Extractor` turns decoded pictures into fixed-size features in two steps, so that the slow,
parallel part (decoding, resizing) can run in a pool while the model runs in batches:

* ``prepare(image)`` runs in decode workers (threads): PIL RGB picture -> small numpy array;
* ``infer(batch)`` runs once per batch of prepared arrays -> one feature row per picture.

Kinds of features:

* ``"embedding"``: float vectors, L2-normalised; compared by cosine similarity (higher is closer).
* ``"hash"``: bit strings packed in uint64 words (``dim`` bits); compared by Hamming distance.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

import numpy as np
from PIL import Image

FeatureKind = Literal["embedding", "hash"]


@dataclass(frozen=True)
class ModelSpec:
    """What a model registry entry says about a model: enough to fetch, verify and run it."""

    id: str  # short name used on the command line ("effnet", "phash", ...)
    version: str  # bumps whenever the features it makes change; part of the catalog key
    kind: str  # "embedding" | "hash" | "face-detector" | "face-embedding" | ...
    dim: int  # embedding length, or number of bits of a hash
    description: str = ""
    source: str = "builtin"  # "builtin", "pip:<requirement>#<member path>", or "file"
    sha256: str | None = None  # of the weights file, when there is one
    filename: str | None = None  # name of the weights file in the model folder
    input_size: int | None = None  # square input side the model wants
    input_name: str | None = None
    output_name: str | None = None
    input_dtype: str = "float32"  # "float16" | "float32"
    mean: tuple[float, float, float] = (0.0, 0.0, 0.0)
    std: tuple[float, float, float] = (1.0, 1.0, 1.0)
    scale: float = 1.0 / 255.0  # applied to 0..255 pixels before mean/std
    license: str = ""
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def needs_weights(self) -> bool:
        return self.filename is not None

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["mean"], data["std"] = list(self.mean), list(self.std)
        return data

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> ModelSpec:
        data = dict(data)
        data["mean"] = tuple(data.get("mean", (0.0, 0.0, 0.0)))
        data["std"] = tuple(data.get("std", (1.0, 1.0, 1.0)))
        known = set(cls.__dataclass_fields__)
        return cls(**{k: v for k, v in data.items() if k in known})


class Extractor(ABC):
    """Turns pictures into features. Subclasses set ``spec`` and implement prepare/infer."""

    spec: ModelSpec

    @property
    def id(self) -> str:
        return self.spec.id

    @property
    def version(self) -> str:
        return self.spec.version

    @property
    def kind(self) -> FeatureKind:
        return "hash" if self.spec.kind == "hash" else "embedding"

    @property
    def dim(self) -> int:
        return self.spec.dim

    #: Smallest picture side the extractor needs; lets JPEGs decode at reduced size.
    decode_min_side: int | None = 256

    @abstractmethod
    def prepare(self, image: Image.Image) -> np.ndarray:
        """Per-picture work that is safe to run in worker threads (resize, colour conversion...)."""

    @abstractmethod
    def infer(self, batch: np.ndarray) -> np.ndarray:
        """Features for a batch of prepared arrays: float32 (n, dim) or uint64 (n, dim // 64)."""

    def extract(self, images: list[Image.Image]) -> np.ndarray:
        """Convenience: prepare and infer in one call."""
        if not images:
            return self.empty()
        return self.infer(np.stack([self.prepare(im) for im in images]))

    def empty(self) -> np.ndarray:
        if self.kind == "hash":
            return np.zeros((0, max(1, self.dim // 64)), dtype=np.uint64)
        return np.zeros((0, self.dim), dtype=np.float32)

    #: How many prepared pictures to hand to ``infer`` at once.
    batch_size: int = 16


def l2_normalise(vectors: np.ndarray) -> np.ndarray:
    """Rows scaled to unit length (zero rows stay zero)."""
    v = np.asarray(vectors, dtype=np.float32)
    norms = np.linalg.norm(v, axis=1, keepdims=True)
    norms[norms == 0] = 1.0
    return v / norms
