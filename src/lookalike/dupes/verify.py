"""Geometric + photometric verification of a candidate pair (the precision stage).

Two pictures are near-duplicates when one is an edited copy of the other: the same pixels up to a
similarity transform (scale, rotation, translation, optionally a mirror), a crop, a colour change and
small local edits. So: match ORB keypoints, fit a similarity transform with RANSAC (trying the mirror
image when the direct fit fails), warp one picture onto the other and measure the normalised
cross-correlation of the grey levels over the overlap. Another photo of the same object (other
viewpoint, other light) can give keypoint matches but not a high correlation after alignment.

A flat object shot again from a slightly different angle can pass that test (the similarity aligns it
to within a pixel, its local correlations look like those of a heavily recompressed copy), so a pair
that passes is checked once more, geometrically: points are tracked sub-pixel from one picture into
the other (after the similarity warp) and an affine map and a homography are fitted to the shifts.
An edit leaves only tracking noise after the affine map (every edit above is a similarity, or an affine
map where a resize rounded the sides); a retake leaves a residual that is mostly perspective, which the
homography removes (see :func:`warp_residual` and docs/BENCHMARKS.md).
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import cv2
import numpy as np

from lookalike.errors import DecodeError
from lookalike.media import decode

WORK_SIDE = 480  # longer side of the working copy (small pictures are enlarged to it)
NCC_SIDE = 192  # side of the images on which the aligned correlation is measured
CELL = 12  # cell side (pixels at NCC_SIDE) of the local correlations
FLAT_VAR = 4.0  # grey-level variance under which a cell counts as flat
#: a cell flat in one picture and with this much variance in the other (4x FLAT_VAR: a grey-level deviation
#: of 4 against at most 2) shows detail that the other lacks: among the detail cells it counts as no match
DETAIL_VAR = 16.0
MIN_INLIERS = 10
MIN_OVERLAP = 0.45  # overlap area / smaller picture area, in the first picture's frame
GEOM_SIDE = 384  # side of the images on which points are tracked to tell an edit from a retake
TRACKS = 300  # at most this many tracked points
MIN_TRACKS = 20  # fewer than this (a flat picture): the geometric test cannot judge and says nothing
RESIDUAL_FLOOR = 0.1  # working pixels: an affine residual under this is tracking noise, nothing to explain
MAX_PERSPECTIVE_SHARE = 0.3  # an edited copy: a homography explains at most this share of the residual
ALIGNED_ASPECT = 0.02  # aligned test: the two oriented working copies' scales (x vs y) differ at most this
#: bytes of working copies and key points the verifier keeps (least recently used ones go first): a
#: 640x480 picture costs about 200 KiB (working copy, its shrunk copy, key points), 310 KiB once a
#: retake test has used it (local contrast, tracked points), twice that with its mirror image, so
#: 512 MiB hold about 1,700 of them, per verifying process (candidates come ranked, and each wave is
#: verified in picture order; a picture evicted and needed again is decoded again)
CACHE_BYTES = 512 * 1024 * 1024

#: Version of the verifier's decision: the key of its cached verdicts (catalog/verdicts.py). Bump it
#: whenever a change here (a constant above, the decoding, the matching, the tests) can change a verdict.
VERIFIER_VERSION = "3"
#: Bounds of a verdict's threshold range when nothing limits it (correlations lie in [-1, 1]).
ANY_LOW, ANY_HIGH = -1.0, 1e300


@dataclass
class Local:
    grey: np.ndarray  # uint8 working copy
    small: np.ndarray  # the working copy shrunk to NCC_SIDE (the aligned correlation's scale)
    points: np.ndarray | None = None  # (n, 2) float32 keypoint positions (None: not computed yet)
    desc: np.ndarray | None = None  # (n, 32) uint8 ORB descriptors
    #: the working copy shrunk to GEOM_SIDE (the retake test's scale): its local contrast and the points
    #: the retake test tracks from it when nothing is warped (kept once a retake test needed them)
    contrast: np.ndarray | None = None
    tracks: np.ndarray | None = None
    key: tuple[int, bool] | None = None  # its key in the verifier's cache (None: a temporary copy)

    @property
    def nbytes(self) -> int:
        """Memory held by this entry's arrays."""
        arrays = (self.grey, self.small, self.points, self.desc, self.contrast, self.tracks)
        return int(sum(x.nbytes for x in arrays if x is not None))

    @property
    def has_features(self) -> bool:
        """Whether the ORB key points were computed."""
        return self.points is not None


@dataclass
class Verdict:
    ok: bool
    ncc: float = 0.0
    inliers: int = 0  # ORB inliers of the fitted similarity (0: the aligned test, no key points)
    overlap: float = 0.0
    mirror: bool = False
    residual: Residual | None = None  # the geometric test (only for pairs whose correlation passed)
    #: The decision and score hold for every threshold t with lo < t <= hi (see :meth:`Verifier.verify`).
    lo: float = ANY_LOW
    hi: float = ANY_HIGH
    aligned: bool = False  # decided by the aligned test (the hash's orientation, the sizes), without ORB

    @property
    def score(self) -> float:
        return self.ncc


class Verifier:
    """Caches pictures' working copies and keypoints, at most ``cache_bytes`` of them (least recently
    used first out). The cache is locked, but the ORB detector it holds is one object: one verifier per
    thread.

    Key points are computed only for pictures that reach ORB: a pair that the dihedral hash says is aligned
    (``variant``) is first tested in that orientation with the similarity its sizes imply (see
    :meth:`verify`), and most re-encoded, resized or recoloured copies are settled there."""

    def __init__(self, paths: list[str], nfeatures: int = 500, min_ncc: float = 0.87,
                 cache_bytes: int = CACHE_BYTES) -> None:
        self.paths = paths
        self.min_ncc = min_ncc
        self.cache_bytes = max(0, int(cache_bytes))
        self._orb = cv2.ORB_create(nfeatures=nfeatures, fastThreshold=10)
        self._matcher = cv2.BFMatcher(cv2.NORM_HAMMING)
        self._cache: OrderedDict[tuple[int, bool], tuple[Local | None, int]] = OrderedDict()
        self._cached_bytes = 0
        self._lock = threading.Lock()
        self.pairs_checked = 0
        self.pairs_orb = 0  # pairs that reached ORB matching
        self.accepted_aligned = 0  # pairs accepted by the aligned test (no key points, no matching)
        self.decoded = 0  # pictures decoded (a picture evicted and needed again counts again)

    @property
    def cached_bytes(self) -> int:
        """Bytes held by the cache now (never above ``cache_bytes``)."""
        return self._cached_bytes

    def _get(self, key: tuple[int, bool]) -> tuple[bool, Local | None]:
        with self._lock:
            if key not in self._cache:
                return False, None
            self._cache.move_to_end(key)
            return True, self._cache[key][0]

    def _put(self, key: tuple[int, bool], loc: Local | None) -> None:
        """Store (or store again, at its current size: key points added) one entry."""
        size = 0 if loc is None else loc.nbytes
        with self._lock:
            if key in self._cache:
                self._cached_bytes -= self._cache.pop(key)[1]
            if size > self.cache_bytes:
                return  # larger than the whole budget: used once, never kept
            while self._cache and self._cached_bytes + size > self.cache_bytes:
                _, (_, gone) = self._cache.popitem(last=False)
                self._cached_bytes -= gone
            self._cache[key] = (loc, size)
            self._cached_bytes += size

    def local(self, i: int, mirror: bool = False, features: bool = True) -> Local | None:
        """Picture i's working copy (mirrored or not); ``features``: with its ORB key points."""
        key = (i, mirror)
        hit, loc = self._get(key)
        if not hit:
            loc = self._load(i, mirror)
            if loc is not None:
                loc.key = key
        elif loc is None or not features or loc.has_features:
            return loc
        if loc is not None and features and not loc.has_features:
            kps, loc.desc = self._orb.detectAndCompute(loc.grey, None)
            loc.points = np.array([k.pt for k in kps], dtype=np.float32).reshape(-1, 2)
        self._put(key, loc)
        return loc

    def _load(self, i: int, mirror: bool) -> Local | None:
        if mirror:
            base = self.local(i, features=False)
            return None if base is None else _working(np.ascontiguousarray(base.grey[:, ::-1]))
        self.decoded += 1
        try:
            img = decode(self.paths[i], min_side=WORK_SIDE).image.convert("L")
        except (DecodeError, OSError):
            return None
        g = np.asarray(img)
        s = WORK_SIDE / max(g.shape)
        interp = cv2.INTER_AREA if s < 1 else cv2.INTER_CUBIC
        if min(g.shape) * s >= 8:  # the same scale on both axes: an edit stays a similarity
            g = cv2.resize(g, None, fx=s, fy=s, interpolation=interp)
        else:  # a sliver of a picture
            g = cv2.resize(g, (max(8, round(g.shape[1] * s)), max(8, round(g.shape[0] * s))),
                           interpolation=interp)
        return _working(g)

    def forget(self, i: int) -> None:
        """Drop picture i (both orientations) from the cache."""
        with self._lock:
            for key in ((i, False), (i, True)):
                gone = self._cache.pop(key, None)
                self._cached_bytes -= 0 if gone is None else gone[1]

    def verify(self, i: int, j: int, orientations: tuple[bool, ...] = (False, True),
               variant: int | None = None) -> Verdict:
        """Is picture j an edited copy of picture i (or the reverse)? ``orientations``: try j as it is
        (False) and/or mirrored (True), in that order, stopping at the first success.

        ``variant`` (0-7, a dihedral hash orientation: ``rot90(j, variant // 2)``, then mirrored when odd,
        looks like i): first the aligned test, without key points: j in that orientation, mapped onto i by
        the scale of their sizes (same aspect within :data:`ALIGNED_ASPECT`), then the same correlation and
        retake tests as after ORB. Only when it fails do key points and ORB matching run, as without it.

        The verdict also says for which thresholds t its decision and score hold (``lo < t <= hi``), so a
        cached verdict can serve another threshold: a test that failed only because its correlation
        was under the threshold might pass a lower one (its geometric test never ran), so ``lo`` is the
        highest such correlation; an accepted pair stays accepted, with the same score, up to its own
        correlation (``hi``), while above it a later test, never run, might pass."""
        self.pairs_checked += 1
        lo = ANY_LOW
        best = Verdict(False)
        if variant is not None:
            a, b = self.local(i, features=False), self.local(j, features=False)
            if a is None or b is None:
                return best
            v = self._check_aligned(a, b, variant)
            if v is not None:
                if v.ok:
                    self.accepted_aligned += 1
                    v.lo, v.hi = lo, v.ncc
                    return v
                if v.ncc < self.min_ncc and v.overlap >= MIN_OVERLAP:  # failed on the correlation alone
                    lo = max(lo, v.ncc)
                best = v
        self.pairs_orb += 1
        a = self.local(i)
        if a is None or a.desc is None:
            best.lo, best.hi = lo, ANY_HIGH
            return best
        for mirror in orientations:
            b = self.local(j, mirror)
            if b is None or b.desc is None:
                break
            v = self._check(a, b, mirror)
            if v.ok:
                v.lo, v.hi = lo, v.ncc
                return v
            if v.ncc < self.min_ncc and v.overlap >= MIN_OVERLAP:  # failed on the correlation alone
                lo = max(lo, v.ncc)
            if v.ncc > best.ncc:
                best = v
        best.lo, best.hi = lo, ANY_HIGH
        return best

    def _check_aligned(self, a: Local, b: Local, variant: int) -> Verdict | None:
        """The aligned test (see :meth:`verify`); None when the oriented sizes do not fit one scale."""
        turns, flip = divmod(int(variant), 2)

        def orient(x: np.ndarray) -> np.ndarray:
            x = np.rot90(x, turns)
            return np.ascontiguousarray(x[:, ::-1] if flip else x)

        if variant:
            b = Local(orient(b.grey), orient(b.small))
        (h, w), (hb, wb) = a.grey.shape, b.grey.shape
        sx, sy = w / wb, h / hb
        if abs(sx / sy - 1.0) > ALIGNED_ASPECT:
            return None
        m = np.array([[sx, 0.0, 0.5 * sx - 0.5], [0.0, sy, 0.5 * sy - 0.5]])
        v = self._judge(a, b, m, bool(flip), 0)
        v.aligned = True
        return v

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
        return self._judge(a, b, m, mirror, n_in)

    def _judge(self, a: Local, b: Local, m: np.ndarray, mirror: bool, n_in: int) -> Verdict:
        """The correlation and retake tests of b mapped onto a by ``m`` (b -> a, working pixels)."""
        if abs(np.linalg.det(m[:, :2])) < 1.0:  # b is the closer view: compare at its resolution
            ref, mov, mm = b, a, cv2.invertAffineTransform(m)
        else:
            ref, mov, mm = a, b, m
        ncc, overlap = _correlate(ref.grey.shape, ref.small, mov.grey, mov.small, mm)
        ok = ncc >= self.min_ncc and overlap >= MIN_OVERLAP
        residual = None
        if ok:  # the correlation says "copy": check that the geometry is that of an edit, not a retake
            if _is_identity(mm) and ref.grey.shape == mov.grey.shape:  # nothing to warp: cached inputs
                tracks, ref_contrast = self._geometry(ref)
                residual = _track_residual(ref.grey.shape, tracks, ref_contrast, self._geometry(mov)[1])
            else:
                residual = _residual(ref.grey.shape, _shrink(ref.grey, GEOM_SIDE, 16), mov.grey, mm)
            ok = not residual.retake
        return Verdict(ok, ncc, n_in, overlap, mirror, residual)

    def _geometry(self, loc: Local) -> tuple[np.ndarray, np.ndarray]:
        """(tracked points, local contrast) of ``loc`` shrunk to GEOM_SIDE: the retake test's inputs when
        nothing is warped, computed once and kept with the picture."""
        if loc.contrast is None or loc.tracks is None:
            geom = _shrink(loc.grey, GEOM_SIDE, 16)
            inside = cv2.erode(np.ones(geom.shape, np.uint8), _ERODE)
            p0 = cv2.goodFeaturesToTrack(geom, TRACKS, 0.01, 8, mask=inside)
            loc.tracks = np.zeros((0, 1, 2), np.float32) if p0 is None else p0
            loc.contrast = _local_contrast(geom)
            if loc.key is not None:
                self._put(loc.key, loc)  # counted at its new size
        return loc.tracks, loc.contrast


def _working(grey: np.ndarray) -> Local:
    """A picture's cache entry: the working copy and its shrunk copy for the correlation (no key points)."""
    return Local(grey, _shrink(grey, NCC_SIDE, CELL))


def _shrink(grey: np.ndarray, side: int, least: int) -> np.ndarray:
    """``grey`` with its longer side brought to ``side`` (area interpolation), no side under ``least``."""
    s = side / max(grey.shape)
    size = (max(least, round(grey.shape[1] * s)), max(least, round(grey.shape[0] * s)))
    return cv2.resize(grey, size, interpolation=cv2.INTER_AREA)


@dataclass
class Residual:
    """How far the best affine and the best homography leave the tracked points of an aligned pair
    (median distances, in working pixels of the closer view)."""

    tracks: int
    affine: float
    homography: float

    @property
    def perspective_share(self) -> float:
        """Share of the affine residual that a perspective (homography) model explains."""
        return 0.0 if self.affine <= 0 else max(0.0, (self.affine - self.homography) / self.affine)

    @property
    def retake(self) -> bool:
        """A different shot of the same flat scene rather than an edited copy: the residual left by
        the best affine map is above the tracking noise, and most of it is perspective."""
        return (self.tracks >= MIN_TRACKS and self.affine > RESIDUAL_FLOOR
                and self.perspective_share > MAX_PERSPECTIVE_SHARE)


def _local_contrast(x: np.ndarray, sigma: float = 6.0) -> np.ndarray:
    """Grey levels with the local mean removed and the local contrast evened out (uint8 for the tracker):
    a brightness or contrast edit, or a grey copy, then track like the original."""
    x = x.astype(np.float32)
    k = round(8 * sigma + 1) | 1  # the kernel OpenCV derives from sigma for float pictures, given: 40% faster
    d = x - cv2.GaussianBlur(x, (k, k), sigma)
    sd = np.sqrt(cv2.GaussianBlur(d * d, (k, k), sigma)) + 4.0
    return np.clip(128 + 48 * d / sd, 0, 255).astype(np.uint8)


_LK = dict(winSize=(21, 21), maxLevel=2, criteria=(cv2.TERM_CRITERIA_EPS | cv2.TERM_CRITERIA_COUNT, 30, 0.01))


def warp_residual(a: np.ndarray, b: np.ndarray, m: np.ndarray) -> Residual:
    """Track points of ``a`` into ``b`` warped by the similarity ``m`` (b -> a), sub-pixel (pyramidal
    Lucas-Kanade, forward and backward), then fit an affine map and a homography to the remaining shifts.

    Every edit of a picture (resize, crop, rotation, mirror, border, recompression, colour change, a
    watermark) maps its pixels by a similarity, or an affine map where a resize rounded the sides: the
    tracks then agree with the best affine map to within the tracking noise (a few hundredths of a
    pixel), and a homography explains nothing more. Another shot from a slightly different angle needs
    perspective: the affine map leaves a few tenths of a pixel, most of which a homography removes."""
    return _residual(a.shape, _shrink(a, GEOM_SIDE, 16), b, m)


_ERODE = np.ones((15, 15), np.uint8)  # tracked points stay this far inside the overlap


def _residual(a_full: tuple, a_s: np.ndarray, b: np.ndarray, m: np.ndarray) -> Residual:
    """:func:`warp_residual` given a's shrunk copy ``a_s`` (of a working copy of shape ``a_full``): b is
    warped at working size, then shrunk."""
    size = (a_s.shape[1], a_s.shape[0])
    h, w = a_full[:2]
    b_s = cv2.resize(cv2.warpAffine(b, m, (w, h), flags=cv2.INTER_LINEAR), size, interpolation=cv2.INTER_AREA)
    mask = cv2.warpAffine(np.full(b.shape, 255, np.uint8), m, (w, h), flags=cv2.INTER_NEAREST)
    inside = (cv2.resize(mask, size, interpolation=cv2.INTER_AREA) >= 250).astype(np.uint8)
    inside = cv2.erode(inside, _ERODE)  # away from the edges of the overlap
    p0 = cv2.goodFeaturesToTrack(a_s, TRACKS, 0.01, 8, mask=inside)
    return _track_residual(a_full, p0, _local_contrast(a_s), _local_contrast(b_s))


def _track_residual(a_full: tuple, p0: np.ndarray | None, na: np.ndarray, nb: np.ndarray) -> Residual:
    """Track the points ``p0`` from ``na`` into ``nb`` (local contrasts of the shrunk copies of a and of b
    in a's frame) and fit the affine map and the homography (see :func:`warp_residual`)."""
    if p0 is None or len(p0) < MIN_TRACKS:
        return Residual(0 if p0 is None else len(p0), 0.0, 0.0)
    p1, st, _ = cv2.calcOpticalFlowPyrLK(na, nb, p0, None, **_LK)
    back, st2, _ = cv2.calcOpticalFlowPyrLK(nb, na, p1, None, **_LK)
    sure = (st.ravel() == 1) & (st2.ravel() == 1) & (np.linalg.norm((back - p0).reshape(-1, 2), axis=1) < 0.5)
    src = p0.reshape(-1, 2)[sure].astype(np.float64)
    dst = p1.reshape(-1, 2)[sure].astype(np.float64)
    if len(src) < MIN_TRACKS:
        return Residual(len(src), 0.0, 0.0)
    aff, _ = cv2.estimateAffine2D(src, dst, method=cv2.LMEDS)
    hom, _ = cv2.findHomography(src, dst, cv2.LMEDS)
    if aff is None or hom is None:
        return Residual(len(src), 0.0, 0.0)
    r_aff = np.linalg.norm(src @ aff[:, :2].T + aff[:, 2] - dst, axis=1)
    q = np.c_[src, np.ones(len(src))] @ hom.T
    with np.errstate(divide="ignore", invalid="ignore"):
        r_hom = np.linalg.norm(q[:, :2] / q[:, 2:3] - dst, axis=1)
    r_hom = np.where(np.isfinite(r_hom), r_hom, np.inf)
    s = GEOM_SIDE / max(a_full)
    return Residual(len(src), float(np.median(r_aff)) / s, float(np.median(r_hom)) / s)


_IDENTITY = np.array([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]])


def _is_identity(m: np.ndarray) -> bool:
    """Whether the map ``m`` (2x3) leaves every working pixel where it is."""
    return bool(np.abs(np.asarray(m, np.float64) - _IDENTITY).max() < 1e-9)


def _warp_small(b: np.ndarray, m: np.ndarray, a_shape: tuple, size: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
    """b warped into a's frame (at working size, then shrunk to ``size``) and the mask of where it lies.
    (Warping b's shrunk copy instead blurs it: a rotated copy then correlates 0.04-0.1 lower.)"""
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
    wherever something moved, which pulls the lower quartile down. Flat cells (sky in both) agree without
    showing detail, so the score is at most the median correlation of the cells with detail, where a cell
    with detail in one picture only counts as no match: two different, mostly plain pictures fail."""
    return _correlate(a.shape, _shrink(a, NCC_SIDE, CELL), b, None, m)


def _correlate(a_full: tuple, a_small: np.ndarray, b: np.ndarray, b_small: np.ndarray | None, m: np.ndarray
               ) -> tuple[float, float]:
    """:func:`aligned_ncc` given a's shrunk copy ``a_small`` (of a working copy of shape ``a_full``) and,
    when ``m`` is the identity, b's (``b_small``): b then needs no warp (until the phase correlation
    finds a shift)."""
    s = NCC_SIDE / max(a_full)
    size = (a_small.shape[1], a_small.shape[0])
    a_f = a_small.astype(np.float32)
    if b_small is not None and _is_identity(m) and b_small.shape == a_small.shape:
        b_w, inside = b_small.astype(np.float32), np.ones(a_small.shape, np.float32)
    else:
        b_w, inside = _warp_small(b, m, a_full, size)
    # keypoint positions are only good to a pixel or so: refine the shift by phase correlation
    (dx, dy), _ = cv2.phaseCorrelate(a_f * inside, b_w * inside)
    if 0.2 < abs(dx) + abs(dy) and max(abs(dx), abs(dy)) < 4:
        m = np.array(m, np.float64)
        m[:, 2] -= (dx / s, dy / s)
        b_w, inside = _warp_small(b, m, a_full, size)
    area_b = abs(float(np.linalg.det(m[:, :2]))) * b.size * s * s
    smaller = min(a_f.size, area_b)
    overlap = min(1.0, float(inside.sum()) / smaller)
    gh, gw = size[1] // CELL, size[0] // CELL

    def cells(x: np.ndarray) -> np.ndarray:
        return x[: gh * CELL, : gw * CELL].reshape(gh, CELL, gw, CELL).transpose(0, 2, 1, 3).reshape(gh * gw, -1)

    ca, cb = cells(a_f), cells(b_w)
    full = cells(inside).min(axis=1) > 0
    ca, cb = ca - ca.mean(axis=1, keepdims=True), cb - cb.mean(axis=1, keepdims=True)
    va, vb = (ca * ca).mean(axis=1), (cb * cb).mean(axis=1)
    textured = full & (va > FLAT_VAR) & (vb > FLAT_VAR)
    flat_both = full & (va <= FLAT_VAR) & (vb <= FLAT_VAR)  # e.g. sky in both: agrees, carries no detail
    # detail in one picture where the other is flat (a plain wall against a textured one) disagrees
    one_sided = full & (((va <= FLAT_VAR) & (vb > DETAIL_VAR)) | ((vb <= FLAT_VAR) & (va > DETAIL_VAR)))
    if textured.sum() < 4:
        return 0.0, overlap
    ncc = (ca[textured] * cb[textured]).mean(axis=1) / np.sqrt(va[textured] * vb[textured])
    votes = np.concatenate([ncc, np.full(int(flat_both.sum()) // 2, 1.0)])
    # flat cells agree but carry no detail: the detail itself must agree too, or two mostly plain pictures
    # (a few textured cells, many flat ones) would pass on their flat areas alone
    detail = np.concatenate([ncc, np.zeros(int(one_sided.sum()))])
    return float(min(np.percentile(votes, 25), np.median(detail))), overlap


_cv_threads_lock = threading.Lock()
_cv_threads_users = 0
_cv_threads_saved = 0


@contextmanager
def one_opencv_thread() -> Iterator[None]:
    """OpenCV on one thread inside (other processes hold the other cores); the setting is per process, so
    overlapping users (two requests of the service) share one override and the last one out restores it."""
    global _cv_threads_users, _cv_threads_saved
    with _cv_threads_lock:
        if _cv_threads_users == 0:
            _cv_threads_saved = cv2.getNumThreads()
            cv2.setNumThreads(1)
        _cv_threads_users += 1
    try:
        yield
    finally:
        with _cv_threads_lock:
            _cv_threads_users -= 1
            if _cv_threads_users == 0:
                cv2.setNumThreads(_cv_threads_saved)


# -- verification in worker processes ------------------------------------------------------------------
_worker: Verifier | None = None
_worker_index: dict[str, int] = {}


def start_worker(min_ncc: float) -> None:
    """Process-pool initializer: one Verifier per worker process (its cache of working copies lives as long
    as the process), OpenCV on one thread (the pool already uses every core)."""
    global _worker
    cv2.setNumThreads(1)
    _worker = Verifier([], min_ncc=min_ncc)
    _worker_index.clear()


def verify_chunk(pairs: list[tuple[str, str, tuple[bool, ...], int | None]]
                 ) -> list[tuple[bool, float, float, float, bool]]:
    """Verify (path_i, path_j, orientations, variant) pairs in a worker: (ok, score, lo, hi, aligned) for
    each, as :meth:`Verifier.verify` gives them in a single process."""
    assert _worker is not None, "start_worker() was not run in this process"
    out = []
    for pi, pj, orient, variant in pairs:
        idx = []
        for p in (pi, pj):
            if p not in _worker_index:
                _worker_index[p] = len(_worker.paths)
                _worker.paths.append(p)
            idx.append(_worker_index[p])
        v = _worker.verify(idx[0], idx[1], orient, variant)
        out.append((v.ok, float(v.ncc), float(v.lo), float(v.hi), v.ok and v.aligned))
    return out
