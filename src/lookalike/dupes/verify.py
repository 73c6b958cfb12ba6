"""Geometric + photometric verification of a candidate pair (the precision stage).

Two pictures are near-duplicates when one is an edited copy of the other: the same pixels up to a
similarity transform (scale, rotation, translation, optionally a mirror), a crop, a colour change and
small local edits. So: match ORB keypoints, fit a similarity transform with RANSAC (trying the mirror
image when the direct fit fails), warp one picture onto the other and measure the normalised
cross-correlation of the grey levels over the overlap. Another photo of the same object (other
viewpoint, other light) can give keypoint matches but not a high correlation after alignment.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass

import cv2
import numpy as np

from lookalike.errors import DecodeError
from lookalike.media import decode

WORK_SIDE = 480  # longer side of the working copy (small pictures are enlarged to it)
NCC_SIDE = 192  # side of the images on which the aligned correlation is measured
CELL = 12  # cell side (pixels at NCC_SIDE) of the local correlations
FLAT_VAR = 4.0  # grey-level variance under which a cell counts as flat
MIN_INLIERS = 10
MIN_OVERLAP = 0.45  # overlap area / smaller picture area, in the first picture's frame


@dataclass
class Local:
    grey: np.ndarray  # uint8 working copy
    points: np.ndarray  # (n, 2) float32 keypoint positions
    desc: np.ndarray | None  # (n, 32) uint8 ORB descriptors


@dataclass
class Verdict:
    ok: bool
    ncc: float = 0.0
    inliers: int = 0
    overlap: float = 0.0
    mirror: bool = False

    @property
    def score(self) -> float:
        return self.ncc


class Verifier:
    """Caches each picture's working copy and keypoints; thread-safe enough for one caller."""

    def __init__(self, paths: list[str], nfeatures: int = 500, min_ncc: float = 0.87) -> None:
        self.paths = paths
        self.min_ncc = min_ncc
        self._orb = cv2.ORB_create(nfeatures=nfeatures, fastThreshold=10)
        self._matcher = cv2.BFMatcher(cv2.NORM_HAMMING)
        self._cache: dict[tuple[int, bool], Local | None] = {}
        self._lock = threading.Lock()
        self.pairs_checked = 0

    def local(self, i: int, mirror: bool = False) -> Local | None:
        key = (i, mirror)
        if key in self._cache:
            return self._cache[key]
        if mirror:
            base = self.local(i)
            loc = None if base is None else self._features(np.ascontiguousarray(base.grey[:, ::-1]))
        else:
            try:
                img = decode(self.paths[i], min_side=WORK_SIDE).image.convert("L")
            except (DecodeError, OSError):
                loc = None
            else:
                g = np.asarray(img)
                s = WORK_SIDE / max(g.shape)
                g = cv2.resize(g, (max(8, round(g.shape[1] * s)), max(8, round(g.shape[0] * s))),
                               interpolation=cv2.INTER_AREA if s < 1 else cv2.INTER_CUBIC)
                loc = self._features(g)
        self._cache[key] = loc
        return loc

    def _features(self, grey: np.ndarray) -> Local:
        kps, desc = self._orb.detectAndCompute(grey, None)
        pts = np.array([k.pt for k in kps], dtype=np.float32).reshape(-1, 2)
        return Local(grey, pts, desc)

    def forget(self, i: int) -> None:
        self._cache.pop((i, False), None)
        self._cache.pop((i, True), None)

    def verify(self, i: int, j: int, orientations: tuple[bool, ...] = (False, True)) -> Verdict:
        """Is picture j an edited copy of picture i (or the reverse)? ``orientations``: try j as it is
        (False) and/or mirrored (True), in that order, stopping at the first success."""
        self.pairs_checked += 1
        a = self.local(i)
        if a is None or a.desc is None:
            return Verdict(False)
        best = Verdict(False)
        for mirror in orientations:
            b = self.local(j, mirror)
            if b is None or b.desc is None:
                return best
            v = self._check(a, b, mirror)
            if v.ncc > best.ncc or (not best.ok and v.ok):
                best = v
            if best.ok:
                break
        return best

    def _check(self, a: Local, b: Local, mirror: bool) -> Verdict:
        if len(a.points) < MIN_INLIERS or len(b.points) < MIN_INLIERS:
            return Verdict(False, mirror=mirror)
        knn = self._matcher.knnMatch(b.desc, a.desc, k=2)
        good = [m[0] for m in knn if len(m) == 2 and m[0].distance < 0.8 * m[1].distance]
        if len(good) < MIN_INLIERS:
            return Verdict(False, mirror=mirror)
        src = b.points[[m.queryIdx for m in good]]
        dst = a.points[[m.trainIdx for m in good]]
        m, inl = cv2.estimateAffinePartial2D(src, dst, method=cv2.RANSAC, ransacReprojThreshold=4.0,
                                             maxIters=500, confidence=0.995)
        if m is None or inl is None:
            return Verdict(False, mirror=mirror)
        n_in = int(inl.sum())
        scale = float(np.sqrt(abs(np.linalg.det(m[:, :2]))))
        if n_in < MIN_INLIERS or not 0.2 < scale < 5.0:
            return Verdict(False, inliers=n_in, mirror=mirror)
        if scale < 1.0:  # b is the closer view: compare at its resolution, where a retake shows its detail
            ncc, overlap = aligned_ncc(b.grey, a.grey, cv2.invertAffineTransform(m))
        else:
            ncc, overlap = aligned_ncc(a.grey, b.grey, m)
        ok = ncc >= self.min_ncc and overlap >= MIN_OVERLAP
        return Verdict(ok, ncc, n_in, overlap, mirror)


def _warp_small(b: np.ndarray, m: np.ndarray, a_shape: tuple, size: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
    """b warped into a's frame (at working size, then shrunk to ``size``) and the mask of where it lies."""
    h, w = a_shape[:2]
    b_warp = cv2.warpAffine(b, m, (w, h), flags=cv2.INTER_LINEAR)
    mask = cv2.warpAffine(np.full(b.shape, 255, np.uint8), m, (w, h), flags=cv2.INTER_NEAREST)
    b_small = cv2.resize(b_warp, size, interpolation=cv2.INTER_AREA).astype(np.float32)
    inside = (cv2.resize(mask, size, interpolation=cv2.INTER_AREA) >= 250).astype(np.float32)
    return b_small, inside


def aligned_ncc(a: np.ndarray, b: np.ndarray, m: np.ndarray) -> tuple[float, float]:
    """How well ``b`` warped by ``m`` (b -> a) reproduces ``a``: the lower quartile, over a grid of small
    cells inside the overlap, of the cells' normalised cross-correlation; and the overlap as a fraction
    of the smaller picture.

    Local correlations ignore brightness/contrast changes; a watermark, the black corners of a rotation
    or a border spoil only a few cells, while another shot of the same scene (a burst, a retake) fails
    wherever something moved, which pulls the lower quartile down."""
    s = NCC_SIDE / max(a.shape)
    size = (max(CELL, round(a.shape[1] * s)), max(CELL, round(a.shape[0] * s)))
    a_small = cv2.resize(a, size, interpolation=cv2.INTER_AREA).astype(np.float32)
    b_small, inside = _warp_small(b, m, a.shape, size)
    # keypoint positions are only good to a pixel or so: refine the shift by phase correlation
    (dx, dy), _ = cv2.phaseCorrelate(a_small * inside, b_small * inside)
    if 0.2 < abs(dx) + abs(dy) and max(abs(dx), abs(dy)) < 4:
        m = m.copy()
        m[:, 2] -= (dx / s, dy / s)
        b_small, inside = _warp_small(b, m, a.shape, size)
    area_b = abs(float(np.linalg.det(m[:, :2]))) * b.size * s * s
    smaller = min(a_small.size, area_b)
    overlap = min(1.0, float(inside.sum()) / smaller)
    inside = inside > 0 if smaller > 0 else 0.0
    gh, gw = size[1] // CELL, size[0] // CELL

    def cells(x: np.ndarray) -> np.ndarray:
        return x[: gh * CELL, : gw * CELL].reshape(gh, CELL, gw, CELL).transpose(0, 2, 1, 3).reshape(gh * gw, -1)

    ca, cb = cells(a_small), cells(b_small)
    full = cells(inside.astype(np.float32)).min(axis=1) > 0
    ca, cb = ca - ca.mean(axis=1, keepdims=True), cb - cb.mean(axis=1, keepdims=True)
    va, vb = (ca * ca).mean(axis=1), (cb * cb).mean(axis=1)
    textured = full & (va > FLAT_VAR) & (vb > FLAT_VAR)
    flat_both = full & (va <= FLAT_VAR) & (vb <= FLAT_VAR)  # e.g. sky in both: agrees, carries no detail
    if textured.sum() < 4:
        return 0.0, overlap
    ncc = (ca[textured] * cb[textured]).mean(axis=1) / np.sqrt(va[textured] * vb[textured])
    votes = np.concatenate([ncc, np.full(int(flat_both.sum()) // 2, 1.0)])
    return float(np.percentile(votes, 25)), overlap
