"""Perceptual hashes (64-bit): average, difference, DCT (pHash) and Haar-wavelet hashes.

No weights needed. Each hash is packed into one uint64, so Hamming distance over a million of them is
one vectorised XOR plus a popcount.
"""

from __future__ import annotations

import hashlib

import numpy as np
from PIL import Image

from lookalike.features.base import Extractor, ModelSpec

_BIT_WEIGHTS = (np.uint64(1) << np.arange(63, -1, -1, dtype=np.uint64)).astype(np.uint64)


def pack_bits(bits: np.ndarray) -> np.ndarray:
    """(n, 64) booleans -> (n, 1) uint64, first bit most significant."""
    b = np.asarray(bits, dtype=bool).reshape(len(bits), 64).astype(np.uint64)
    return (b * _BIT_WEIGHTS).sum(axis=1, dtype=np.uint64).reshape(-1, 1)


def hash_to_hex(words: np.ndarray) -> str:
    return "".join(f"{int(w):016x}" for w in np.asarray(words).ravel())


def _grey(image: Image.Image, size: tuple[int, int]) -> np.ndarray:
    return np.asarray(image.convert("L").resize(size, Image.Resampling.LANCZOS), dtype=np.float32)


def _dct_matrix(n: int) -> np.ndarray:
    k = np.arange(n)[:, None]
    i = np.arange(n)[None, :]
    m = np.cos(np.pi * (2 * i + 1) * k / (2 * n)) * np.sqrt(2.0 / n)
    m[0] /= np.sqrt(2.0)
    return m.astype(np.float32)


_DCT32 = _dct_matrix(32)


class _HashExtractor(Extractor):
    decode_min_side = 64
    batch_size = 256

    def infer(self, batch: np.ndarray) -> np.ndarray:
        return pack_bits(batch.reshape(len(batch), 64))


class AverageHash(_HashExtractor):
    spec = ModelSpec("ahash", "1", "hash", 64, "average hash: 8x8 grey thumbnail above its mean")

    def prepare(self, image: Image.Image) -> np.ndarray:
        g = _grey(image, (8, 8))
        return (g > g.mean()).ravel()


class DifferenceHash(_HashExtractor):
    spec = ModelSpec("dhash", "1", "hash", 64, "difference hash: horizontal gradients of a 9x8 thumbnail")

    def prepare(self, image: Image.Image) -> np.ndarray:
        g = _grey(image, (9, 8))
        return (g[:, 1:] > g[:, :-1]).ravel()


class PerceptualHash(_HashExtractor):
    spec = ModelSpec("phash", "1", "hash", 64, "pHash: low 8x8 DCT frequencies of a 32x32 thumbnail")

    def prepare(self, image: Image.Image) -> np.ndarray:
        g = _grey(image, (32, 32))
        low = (_DCT32 @ g @ _DCT32.T)[:8, :8]
        return (low > np.median(low)).ravel()


def _haar_ll(a: np.ndarray, levels: int) -> np.ndarray:
    for _ in range(levels):
        a = (a[0::2, 0::2] + a[1::2, 0::2] + a[0::2, 1::2] + a[1::2, 1::2]) / 2.0
    return a


class WaveletHash(_HashExtractor):
    spec = ModelSpec("whash", "1", "hash", 64, "wHash: Haar wavelet approximation band (8x8) of a 64x64 thumbnail")

    def prepare(self, image: Image.Image) -> np.ndarray:
        g = _grey(image, (64, 64)) / 255.0
        ll = _haar_ll(g, 3)
        return (ll > np.median(ll)).ravel()


HASH_EXTRACTORS: dict[str, type[_HashExtractor]] = {
    cls.spec.id: cls for cls in (PerceptualHash, DifferenceHash, AverageHash, WaveletHash)
}


class PixelHash(Extractor):
    """sha256 of the fully decoded, upright RGB pixels (and the size): equal for files whose bytes
    differ but whose pictures are the same (metadata edited, lossless re-save). 256 bits, 4 words."""

    spec = ModelSpec("pixelsha", "1", "hash", 256, "sha256 of the full-size decoded RGB pixels")
    decode_min_side = None  # must see every pixel
    batch_size = 256

    def prepare(self, image: Image.Image) -> np.ndarray:
        rgb = image if image.mode == "RGB" else image.convert("RGB")
        h = hashlib.sha256(f"{rgb.width}x{rgb.height}:".encode())
        h.update(rgb.tobytes())
        return np.frombuffer(h.digest(), dtype=">u8").astype(np.uint64)

    def infer(self, batch: np.ndarray) -> np.ndarray:
        return np.asarray(batch, dtype=np.uint64).reshape(len(batch), 4)


def dihedral_variants(a: np.ndarray) -> list[np.ndarray]:
    """The 8 flips/rotations of a square array, identity first."""
    out = []
    for k in range(4):
        r = np.rot90(a, k)
        out.extend((r, r[:, ::-1]))
    return out


class DihedralPHash(Extractor):
    """pHash of each of the 8 flips/rotations of the picture (8 words, identity first).

    Comparing word 0 of one picture with all 8 words of another gives a distance that does not
    change when either was rotated by 90 degrees or mirrored."""

    spec = ModelSpec("dihash", "1", "hash", 512, "pHash of the 8 flips/rotations (rotation/flip invariant matching)")
    decode_min_side = 64
    batch_size = 256

    def prepare(self, image: Image.Image) -> np.ndarray:
        g = np.asarray(image.convert("L").resize((32, 32), Image.Resampling.LANCZOS), dtype=np.float32)
        bits = []
        for v in dihedral_variants(g):
            low = (_DCT32 @ v @ _DCT32.T)[:8, :8]
            bits.append((low > np.median(low)).ravel())
        return np.stack(bits)

    def infer(self, batch: np.ndarray) -> np.ndarray:
        n = len(batch)
        return pack_bits(np.asarray(batch).reshape(n * 8, 64)).reshape(n, 8)


HASH_EXTRACTORS.update({cls.spec.id: cls for cls in (PixelHash, DihedralPHash)})
