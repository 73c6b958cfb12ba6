"""Embeddings from any ONNX image model described by a :class:`ModelSpec`."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

from lookalike.config import cpu_count
from lookalike.errors import ModelError
from lookalike.features.base import Extractor, ModelSpec, l2_normalise


class OnnxEmbedder(Extractor):
    """Runs an ONNX model: RGB picture resized to ``input_size`` square (no crop), scaled, normalised
    with the spec's mean/std, NCHW, cast to the spec's dtype; output rows are L2-normalised."""

    batch_size = 16

    def __init__(self, spec: ModelSpec, weights: Path, threads: int | None = None) -> None:
        import onnxruntime as ort

        self.spec = spec
        self.decode_min_side = spec.input_size
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = threads or cpu_count()
        opts.inter_op_num_threads = 1
        opts.log_severity_level = 3
        # Decoder threads share the cores with the model: idle model threads must sleep, not spin.
        opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
        available = ort.get_available_providers()
        providers = [p for p in ("CUDAExecutionProvider", "CPUExecutionProvider") if p in available]
        try:
            self.session = ort.InferenceSession(str(weights), opts, providers=providers)
        except Exception as exc:
            raise ModelError(f"cannot load model {spec.id!r} from {weights}: {exc}") from exc
        inputs, outputs = self.session.get_inputs(), self.session.get_outputs()
        self.input_name = spec.input_name or inputs[0].name
        self.output_name = spec.output_name or outputs[0].name
        self._dtype = np.float16 if spec.input_dtype == "float16" else np.float32
        size = spec.input_size or 224
        self._size = (size, size)
        # every uint8 level of each channel, scaled and normalised as (level * scale - mean) / std in float32,
        # then cast: one table lookup a pixel, the same values as computing it (8-10x faster)
        mean = np.asarray(spec.mean, dtype=np.float32).reshape(3, 1)
        std = np.asarray(spec.std, dtype=np.float32).reshape(3, 1)
        levels = np.arange(256, dtype=np.float32).reshape(1, 256)
        self._levels = ((levels * np.float32(spec.scale) - mean) / std).astype(self._dtype)

    def prepare(self, image: Image.Image) -> np.ndarray:
        if image.size != self._size:
            image = image.resize(self._size, Image.Resampling.BILINEAR)
        return np.asarray(image, dtype=np.uint8)

    def infer(self, batch: np.ndarray) -> np.ndarray:
        x = np.empty((len(batch), 3, *batch.shape[1:3]), self._dtype)  # NHWC uint8 -> NCHW, normalised
        for c in range(3):
            np.take(self._levels[c], batch[..., c], out=x[:, c])
        (out,) = self.session.run([self.output_name], {self.input_name: x})
        out = np.asarray(out, dtype=np.float32).reshape(len(batch), -1)
        return l2_normalise(out)
