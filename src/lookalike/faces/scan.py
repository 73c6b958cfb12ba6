"""Find and embed every face of many pictures, with the catalog as a cache and a process pool for speed.

dlib's detector and ResNet run one thread each and hold the GIL, so throughput comes from processes: misses
are spread over ``workers`` processes. The pool is started once per process (spawned workers load the
models in their initializer, with one BLAS/OpenMP/OpenCV thread each so they do not fight over the cores)
and reused by every later scan; pictures go out one per task, largest file first, a few tasks queued per
worker, so no core idles while a long tail runs. Byte-identical pictures are computed once. Hits come from
the catalog (keyed by content hash, embedder and detector chain) without decoding anything.
"""

from __future__ import annotations

import atexit
import contextlib
import hashlib
import os
import sys
import threading
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field
from multiprocessing import get_context
from pathlib import Path

import numpy as np
from PIL import Image

from lookalike.catalog import Catalog, open_catalog
from lookalike.catalog import faces as face_table
from lookalike.config import cpu_count
from lookalike.errors import DecodeError
from lookalike.faces.detect import DetectedFace, get_detector, whole_image
from lookalike.faces.embed import FaceEmbedder, load_face_embedder
from lookalike.index import content_hashes
from lookalike.media import DecodedImage, decode
from lookalike.options import check_int

Progress = Callable[[int, int], None]
DIRECT = "direct"
#: Most worker processes a scan may ask for (each holds the face models, about 100 MB).
MAX_WORKERS = 64
#: Large JPEGs are decoded at the smallest power-of-two reduction keeping both sides at least this long
#: (libjpeg's DCT scaling: a 12 MP photo decodes at 2000x1500 in about a third of the time). HOG scans at
#: most HOG_MAX_SIDE (1280) px anyway; a face it finds at scale 1 in a 12 MP photo is >= 250 px, still
#: >= 125 px in the reduced picture, more than the 100 px the 150-px aligned chip takes of it.
DECODE_MIN_SIDE = 1440
#: Below this many pictures to compute, a scan runs in this process (starting workers costs ~1 s each).
MIN_POOL_PICTURES = 4
#: Tasks queued per worker: enough that a worker never waits for the next picture, few enough that the
#: largest-first order holds.
QUEUED_PER_WORKER = 2
#: Thread settings every worker starts with (set before its libraries load).
_ONE_THREAD = {"OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}


@dataclass
class FoundFace:
    """A face of a picture with its embedding (and, when asked for, its aligned chip)."""

    box: tuple[int, int, int, int]
    score: float
    detector: str
    embedding: np.ndarray
    chip: np.ndarray | None = None

    @property
    def area(self) -> int:
        return max(0, self.box[2] - self.box[0]) * max(0, self.box[3] - self.box[1])


@dataclass
class PhotoFaces:
    """Every face found in one picture, or why none could be looked for."""

    path: str | None
    content_hash: str | None
    width: int = 0
    height: int = 0
    faces: list[FoundFace] = field(default_factory=list)
    error: str | None = None
    cached: bool = False

    @property
    def direct(self) -> bool:
        return any(f.detector == DIRECT for f in self.faces)

    def largest(self) -> FoundFace | None:
        return max(self.faces, key=lambda f: f.area) if self.faces else None


# -- per-picture work (runs in this process or in a pool worker) ----------------------------------------------
def analyse_picture(
    arr: np.ndarray,
    embedder: FaceEmbedder,
    detector: str | None,
    direct: bool,
    chips: bool,
    boxes: Sequence[tuple[tuple[int, int, int, int], float, str]] | None = None,
) -> list[FoundFace]:
    """Detect, align and embed every face of one RGB array (given ``boxes``: only align them, no embedding)."""
    if boxes is not None:  # cached faces: only their chips are wanted
        found = [DetectedFace(tuple(b), s, d) for b, s, d in boxes]
        return [FoundFace(f.box, f.score, f.detector, embedder.empty()[:0], embedder.align(arr, f)) for f in found]
    found = get_detector(detector)(arr)
    if not found and direct:
        found = [whole_image(arr)]
    aligned, vecs = embedder.embed_faces(arr, found)
    return [
        FoundFace(f.box, f.score, f.detector, vecs[i], aligned[i] if chips else None) for i, f in enumerate(found)
    ]


def _scale_box(box: Sequence[float], sx: float, sy: float, w: int, h: int) -> tuple[int, int, int, int]:
    left, top, right, bottom = box
    return (max(0, int(round(left * sx))), max(0, int(round(top * sy))),
            min(w, int(round(right * sx))), min(h, int(round(bottom * sy))))


def analyse_decoded(
    img: DecodedImage,
    embedder: FaceEmbedder,
    detector: str | None,
    direct: bool,
    chips: bool,
    boxes: Sequence[tuple[tuple[int, int, int, int], float, str]] | None = None,
) -> list[FoundFace]:
    """:func:`analyse_picture` on a picture decoded at reduced size (``decode(..., min_side=...)``): given
    boxes are scaled into it, found boxes scaled back to the full-size picture's pixels."""
    arr = np.asarray(img.image)
    sx, sy = img.width / arr.shape[1], img.height / arr.shape[0]
    if sx == 1.0 and sy == 1.0:
        return analyse_picture(arr, embedder, detector, direct, chips, boxes)
    h, w = arr.shape[:2]
    inner = None if boxes is None else [(_scale_box(b, 1 / sx, 1 / sy, w, h), s, d) for b, s, d in boxes]
    found = analyse_picture(arr, embedder, detector, direct, chips, inner)
    for f, original in zip(found, boxes or [None] * len(found), strict=True):
        f.box = tuple(original[0]) if original is not None else _scale_box(f.box, sx, sy, img.width, img.height)
    return found


def _work(source: str | bytes, embedder: str, version: str, detector: str | None, direct: bool, chips: bool,
          boxes: list | None, chain_key: str | None = None) -> tuple[int, int, list[FoundFace], str | None]:
    try:
        emb = load_face_embedder(embedder)
        if emb.version != version:
            return 0, 0, [], f"embedder {embedder} changed version during the run"
        if chain_key is not None and get_detector(detector).key != chain_key:
            return 0, 0, [], f"the face detectors changed during the run ({chain_key} was asked for)"
        img = decode(source, min_side=DECODE_MIN_SIDE)
        return img.width, img.height, analyse_decoded(img, emb, detector, direct, chips, boxes), None
    except DecodeError as exc:
        return 0, 0, [], str(exc)
    except Exception as exc:  # one bad picture never stops a run
        return 0, 0, [], f"unexpected error: {type(exc).__name__}: {exc}"


def _pool_init(embedder: str, detector: str | None) -> None:
    """Worker start: one thread per library, the models loaded before the first picture arrives."""
    for var, value in _ONE_THREAD.items():
        os.environ.setdefault(var, value)
    with contextlib.suppress(Exception):  # a model that cannot load fails per picture, with its message
        load_face_embedder(embedder)
        for det in get_detector(detector).detectors:
            if hasattr(det, "load"):
                det.load()
    if "cv2" in sys.modules:  # YuNet runs through OpenCV, whose own pool would take every core
        sys.modules["cv2"].setNumThreads(1)


def _ready() -> int:
    return os.getpid()


@contextlib.contextmanager
def _one_thread_env() -> Iterator[None]:
    """The environment spawned workers inherit: one BLAS/OpenMP thread (numpy loads before any initializer)."""
    saved = {k: os.environ.get(k) for k in _ONE_THREAD}
    os.environ.update(_ONE_THREAD)
    try:
        yield
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


_pool_lock = threading.Lock()
_pool: tuple[tuple, ProcessPoolExecutor] | None = None
_users: dict[ProcessPoolExecutor, int] = {}  # scans running on a pool (a replaced pool stops after its last)


def _pool_key(n_workers: int) -> tuple:
    """What a worker inherited at its start: a pool is reused only while these are unchanged (where the
    models, the faces and the home folder are)."""
    env = tuple(sorted((k, v) for k, v in os.environ.items() if k.startswith(("LOOKALIKE_", "XDG_")) or k == "HOME"))
    return n_workers, env, tuple(sys.path)


def _retire(ex: ProcessPoolExecutor) -> None:
    """Stop a pool that is no longer the current one once no scan uses it (call with _pool_lock held)."""
    if not _users.get(ex):
        _users.pop(ex, None)
        ex.shutdown(wait=False, cancel_futures=True)


def worker_pool(n_workers: int, embedder: str, detector: str | None, borrow: bool = False) -> ProcessPoolExecutor:
    """The process's face worker pool of ``n_workers`` (started once, its workers all spawned now).
    ``borrow``: count one more scan using it (``_borrowed_pool`` gives it back)."""
    global _pool
    key = _pool_key(n_workers)
    with _pool_lock:
        if _pool is None or _pool[0] != key:
            _pool = (key, _start_pool(n_workers, embedder, detector, _pool))
        ex = _pool[1]
        if borrow:
            _users[ex] = _users.get(ex, 0) + 1
        return ex


def _start_pool(n_workers: int, embedder: str, detector: str | None,
                current: tuple[tuple, ProcessPoolExecutor] | None) -> ProcessPoolExecutor:
    """A new pool (call with _pool_lock held); the current one stops once no scan uses it."""
    with _one_thread_env():
        ex = ProcessPoolExecutor(n_workers, mp_context=get_context("spawn"), initializer=_pool_init,
                                 initargs=(embedder, detector))
        # one submit per worker: each spawns its process now, while the environment says one thread
        for _ in range(n_workers):
            ex.submit(_ready)
    if current is not None:
        _retire(current[1])
    return ex


@contextlib.contextmanager
def _borrowed_pool(n_workers: int, embedder: str, detector: str | None) -> Iterator[ProcessPoolExecutor]:
    """The current pool, kept running while this scan uses it (another scan may replace it meanwhile)."""
    global _pool
    ex = worker_pool(n_workers, embedder, detector, borrow=True)
    broken = False
    try:
        yield ex
    except (BrokenProcessPool, KeyboardInterrupt):  # a worker died or the run was stopped: start afresh
        broken = True
        raise
    finally:
        with _pool_lock:
            _users[ex] -= 1
            if broken and _pool is not None and _pool[1] is ex:
                _pool = None
            if _pool is None or _pool[1] is not ex:
                _retire(ex)


def shutdown_pool() -> None:
    """Stop the face worker pool now (a scan still using it fails; a later scan starts a new one). Called at
    exit."""
    global _pool
    with _pool_lock:
        pool, _pool = _pool, None
        if pool is not None:
            _users.pop(pool[1], None)
    if pool is not None:
        pool[1].shutdown(wait=True, cancel_futures=True)


atexit.register(shutdown_pool)


def check_workers(workers: object) -> int | None:
    """``--workers``: None (one per core) or a whole number from 1 to ``MAX_WORKERS``."""
    return None if workers is None else check_int("--workers", workers, 1, MAX_WORKERS)


# -- the scanner --------------------------------------------------------------------------------------------------
def scan_paths(
    paths: Sequence[str | Path],
    catalog: Catalog | str | Path | None = None,
    embedder: str | None = None,
    detector: str | None = None,
    direct: bool = False,
    chips: bool = False,
    workers: int | None = None,
    progress: Progress | None = None,
) -> list[PhotoFaces]:
    """Faces of every picture in ``paths`` (files, in order), from the catalog or computed and stored.

    ``direct``: a picture where no detector finds a face is taken whole as one face. ``chips``: also
    return aligned face chips (recomputed from stored boxes when cached). ``workers``: processes for the
    pictures not in the catalog (default: one per core; 1: this process only). Errors are reported per
    picture.
    """
    workers = check_workers(workers)
    paths = [os.path.abspath(str(p)) for p in paths]
    cat = open_catalog(catalog)
    emb = load_face_embedder(embedder)
    chain = get_detector(detector)
    hashes, errors = content_hashes(cat, paths)
    results = {p: PhotoFaces(p, hashes.get(p), error=errors.get(p)) for p in paths}

    stored = face_table.load_scans(cat, list(set(hashes.values())), emb.id, emb.version, chain.key)
    empty = [h for h, s in stored.items() if not s.faces]
    stored_direct = face_table.load_scans(cat, empty, emb.id, emb.version, DIRECT) if direct and empty else {}

    todo: list[tuple[str, list | None]] = []  # (path, boxes to reuse or None)
    copies: dict[str, list[str]] = {}  # content hash -> the other paths with the same bytes (computed once)
    first_of: dict[str, str] = {}
    for p, h in hashes.items():
        scan = stored.get(h)
        if scan is not None and not scan.faces and direct:
            scan = stored_direct.get(h)
        if scan is None:
            if h in first_of:
                copies[h].append(p)
            else:
                first_of[h] = p
                copies[h] = []
                todo.append((p, None))
            continue
        r = results[p]
        r.width, r.height, r.cached = scan.width, scan.height, True
        r.faces = [FoundFace(f.box, f.score, f.found_by, f.embedding) for f in scan.faces]
        if chips and r.faces:
            todo.append((p, [(f.box, f.score, f.detector) for f in r.faces]))

    total, done = len(paths), len(paths) - len(todo) - sum(map(len, copies.values()))
    if progress:
        progress(done, total)
    fresh: dict[str, face_table.FaceScan] = {}
    fresh_direct: dict[str, face_table.FaceScan] = {}

    def finish(path: str, boxes: list | None, res: tuple[int, int, list[FoundFace], str | None]) -> None:
        nonlocal done
        w, h, faces, err = res
        r = results[path]
        if err:
            r.error = err
            for other in copies.get(hashes[path], ()) if boxes is None else ():
                results[other].error = err
                done += 1
        elif boxes is not None:  # chips for cached faces
            for f, g in zip(r.faces, faces, strict=True):
                f.chip = g.chip
        else:
            r.width, r.height, r.faces = w, h, faces
            for other in copies.get(hashes[path], ()):  # the same bytes under other names
                c = results[other]
                c.width, c.height = w, h
                c.faces = [FoundFace(f.box, f.score, f.detector, f.embedding.copy(),
                                     None if f.chip is None else f.chip.copy()) for f in faces]
                done += 1
            rows = [face_table.FaceRow(f.box, f.score, f.detector, f.embedding) for f in faces]
            if faces and faces[0].detector == DIRECT:
                fresh.setdefault(hashes[path], face_table.FaceScan(w, h, []))
                fresh_direct[hashes[path]] = face_table.FaceScan(w, h, rows)
            else:
                fresh[hashes[path]] = face_table.FaceScan(w, h, rows)
        done += 1
        if len(fresh) + len(fresh_direct) >= 64:
            flush()
        if progress:
            progress(done, total)

    def flush() -> None:
        face_table.store_scans(cat, emb.id, emb.version, chain.key, fresh)
        face_table.store_scans(cat, emb.id, emb.version, DIRECT, fresh_direct)
        fresh.clear()
        fresh_direct.clear()

    # Chips of cached faces need only a decode and an alignment (milliseconds): done here, no pool.
    fresh_todo = [t for t in todo if t[1] is None]
    n_workers = min(workers or cpu_count(), len(fresh_todo))
    try:
        for p, boxes in todo:
            if boxes is not None:
                finish(p, boxes, _work(p, emb.id, emb.version, detector, direct, chips, boxes))
        if n_workers <= 1 or len(fresh_todo) < MIN_POOL_PICTURES:
            for p, boxes in fresh_todo:
                finish(p, boxes, _work(p, emb.id, emb.version, detector, direct, chips, boxes))
        else:
            _run_pool(largest_first([p for p, _ in fresh_todo]), n_workers, emb, detector, direct, chips, finish)
    finally:
        flush()
    return [results[p] for p in paths]


def largest_first(paths: Sequence[str]) -> list[str]:
    """``paths`` by file size, largest first (ties in the given order): the costliest pictures start
    first, so the run does not end with one core busy on a big picture while the other idles."""
    def size(p: str) -> int:
        try:
            return os.stat(p).st_size
        except OSError:
            return 0

    return sorted(paths, key=size, reverse=True)


def _run_pool(todo: list[str], n_workers: int, emb: FaceEmbedder, detector: str | None, direct: bool,
              chips: bool, finish: Callable) -> None:
    chain_key = get_detector(detector).key  # a worker whose chain differs answers with an error, not faces
    with _borrowed_pool(n_workers, emb.id, detector) as ex:
        _feed(ex, todo, n_workers, emb, detector, direct, chips, chain_key, finish)


def _feed(ex: ProcessPoolExecutor, todo: list[str], n_workers: int, emb: FaceEmbedder, detector: str | None,
          direct: bool, chips: bool, chain_key: str, finish: Callable) -> None:
    """Keep QUEUED_PER_WORKER pictures per worker in flight until ``todo`` is done."""
    running: dict[Future, str] = {}
    try:
        it = iter(todo)
        while True:
            while len(running) < QUEUED_PER_WORKER * n_workers:
                p = next(it, None)
                if p is None:
                    break
                running[ex.submit(_work, p, emb.id, emb.version, detector, direct, chips, None, chain_key)] = p
            if not running:
                break
            finished, _ = wait(running, return_when=FIRST_COMPLETED)
            for fut in finished:
                finish(running.pop(fut), None, fut.result())
    except BaseException:
        for fut in running:
            fut.cancel()
        raise


_lock = threading.Lock()


def scan_image(
    image: str | Path | bytes | Image.Image,
    catalog: Catalog | str | Path | None = None,
    embedder: str | None = None,
    detector: str | None = None,
    direct: bool = False,
    chips: bool = False,
) -> PhotoFaces:
    """Faces of one picture: a path or bytes (cached in the catalog when one is given) or a PIL picture."""
    if isinstance(image, str | Path):
        return scan_paths([image], open_catalog(catalog), embedder, detector, direct,
                          chips, workers=1)[0]
    emb = load_face_embedder(embedder)
    if isinstance(image, Image.Image):
        arr, h = np.asarray(image.convert("RGB")), None
    else:
        data = bytes(image)
        h = hashlib.sha256(data).hexdigest()
        img = decode(data, min_side=DECODE_MIN_SIDE)
        return PhotoFaces(None, h, img.width, img.height, analyse_decoded(img, emb, detector, direct, chips))
    faces = analyse_picture(arr, emb, detector, direct, chips)
    return PhotoFaces(None, h, arr.shape[1], arr.shape[0], faces)
