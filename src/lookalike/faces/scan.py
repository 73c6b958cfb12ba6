"""Find and embed every face of many pictures, with the catalog as a cache and a process pool for speed.

dlib's detector and ResNet hold the GIL-free C++ code but run one thread each, so throughput comes from
processes: misses are spread over ``workers`` processes (spawned, each loading the models once), hits
come from the catalog (keyed by content hash, embedder and detector chain) without decoding anything.
"""

from __future__ import annotations

import hashlib
import os
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
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
from lookalike.media import decode

Progress = Callable[[int, int], None]
DIRECT = "direct"


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


def _work(source: str | bytes, embedder: str, version: str, detector: str | None, direct: bool, chips: bool,
          boxes: list | None) -> tuple[int, int, list[FoundFace], str | None]:
    try:
        emb = load_face_embedder(embedder)
        if emb.version != version:
            return 0, 0, [], f"embedder {embedder} changed version during the run"
        img = decode(source)
        arr = np.asarray(img.image)
        return img.width, img.height, analyse_picture(arr, emb, detector, direct, chips, boxes), None
    except DecodeError as exc:
        return 0, 0, [], str(exc)
    except Exception as exc:  # one bad picture never stops a run
        return 0, 0, [], f"unexpected error: {type(exc).__name__}: {exc}"


def _pool_init() -> None:
    # One BLAS/OpenMP thread per process: the pool provides the parallelism.
    for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ.setdefault(var, "1")


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
    return aligned face chips (recomputed from stored boxes when cached). Errors are reported per picture.
    """
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
    for p, h in hashes.items():
        scan = stored.get(h)
        if scan is not None and not scan.faces and direct:
            scan = stored_direct.get(h)
        if scan is None:
            todo.append((p, None))
            continue
        r = results[p]
        r.width, r.height, r.cached = scan.width, scan.height, True
        r.faces = [FoundFace(f.box, f.score, f.found_by, f.embedding) for f in scan.faces]
        if chips and r.faces:
            todo.append((p, [(f.box, f.score, f.detector) for f in r.faces]))

    total, done = len(paths), len(paths) - len(todo)
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
        elif boxes is not None:  # chips for cached faces
            for f, g in zip(r.faces, faces, strict=True):
                f.chip = g.chip
        else:
            r.width, r.height, r.faces = w, h, faces
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
        if n_workers <= 1 or len(fresh_todo) < 4:
            for p, boxes in fresh_todo:
                finish(p, boxes, _work(p, emb.id, emb.version, detector, direct, chips, boxes))
        else:
            _run_pool(fresh_todo, n_workers, emb, detector, direct, chips, finish)
    finally:
        flush()
    return [results[p] for p in paths]


def _run_pool(todo, n_workers, emb, detector, direct, chips, finish) -> None:
    ex = ProcessPoolExecutor(n_workers, mp_context=get_context("spawn"), initializer=_pool_init)
    try:
        it = iter(todo)
        running: dict[Future, tuple[str, list | None]] = {}
        while True:
            while len(running) < 4 * n_workers:
                item = next(it, None)
                if item is None:
                    break
                p, boxes = item
                running[ex.submit(_work, p, emb.id, emb.version, detector, direct, chips, boxes)] = item
            if not running:
                break
            finished, _ = wait(running, return_when=FIRST_COMPLETED)
            for fut in finished:
                p, boxes = running.pop(fut)
                finish(p, boxes, fut.result())
    except BaseException:
        ex.shutdown(wait=False, cancel_futures=True)
        raise
    ex.shutdown(wait=True)


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
        arr = np.asarray(decode(data).image)
    faces = analyse_picture(arr, emb, detector, direct, chips)
    return PhotoFaces(None, h, arr.shape[1], arr.shape[0], faces)
