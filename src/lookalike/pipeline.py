"""Indexing: walk folders, decide what is new/changed/unchanged, decode in a pool, batch features
into the extractors, write to the catalog. Every command that needs features calls :func:`index`.

The fast path: a file whose (path, size, mtime_ns, inode, ctime_ns) is in the catalog with its features is
not read at all (ctime cannot be set by any user tool, so a file rewritten with its size and mtime kept is
read again). A new path whose bytes hash to known content (a moved or renamed file) reuses the stored features
without decoding. Decoding and hashing run in worker threads (Pillow, hashlib and numpy release the
GIL) while the main thread runs the model on full batches, so the model is the limit, not the decoder.
"""

from __future__ import annotations

import hashlib
import os
import stat
import time
from collections import deque
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field

import numpy as np

from lookalike.catalog import Catalog, DamagedFeatureError, encode_feature, feature_nbytes
from lookalike.config import cpu_count
from lookalike.errors import DecodeError, ModelError
from lookalike.features import Extractor, load_extractor
from lookalike.media import check_inputs, decode, read_bytes, walk_inputs
from lookalike.media.files import kind_of

#: progress(done, total) -- called from the calling thread.
Progress = Callable[[int, int], None]


@dataclass
class FileError:
    path: str
    error: str

    def to_json(self) -> dict:
        return {"path": self.path, "error": self.error}


@dataclass
class IndexReport:
    """What an indexing run did. ``paths`` lists every good (indexed) file in walk order.

    ``failed``: files that could not be read or decoded (an input that does not exist is an error before
    the run, see :func:`index`); ``skipped``: paths
    the walk left out on purpose, with the reason (symlinks out of the searched folders, lookalike's own
    data folder, broken links)."""

    new: int = 0
    changed: int = 0
    unchanged: int = 0
    failed: list[FileError] = field(default_factory=list)
    skipped: list[FileError] = field(default_factory=list)
    truncated: list[str] = field(default_factory=list)
    paths: list[str] = field(default_factory=list)
    seconds: float = 0.0
    decoded: int = 0  # files actually decoded this run
    reused: int = 0  # new/changed files whose content was already known (moved, renamed, copied)

    def to_json(self) -> dict:
        return {
            "new": self.new,
            "changed": self.changed,
            "unchanged": self.unchanged,
            "failed": [f.to_json() for f in self.failed],
            "skipped": [f.to_json() for f in self.skipped],
            "seconds": round(self.seconds, 3),
        }


@dataclass
class _Job:
    path: str
    size: int
    mtime_ns: int
    status: str  # "new" | "changed" | "unchanged"
    inode: int | None = None
    ctime_ns: int | None = None
    content_hash: str | None = None
    need: list[Extractor] | None = None  # known when unchanged; computed after hashing otherwise


@dataclass
class _Done:
    job: _Job
    content_hash: str | None = None
    image_row: tuple | None = None
    prepared: dict[str, np.ndarray] = field(default_factory=dict)
    truncated: bool = False
    error: str | None = None
    moved: bool = False  # the file changed while it was read: its row must not pass the fast path next time
    read_ns: int = 0  # wall clock when the read ended


def _hash_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def file_sha256(path: str) -> str:
    """sha256 of a file's bytes (the catalog's content key)."""
    return _hash_bytes(read_bytes(path))


def _work(job: _Job, catalog: Catalog, extractors: Sequence[Extractor]) -> _Done:
    done = _Done(job)
    try:
        data = read_bytes(job.path)
        try:
            st = os.stat(job.path)
            done.moved = (st.st_size, st.st_mtime_ns, st.st_ino, st.st_ctime_ns) != (
                job.size, job.mtime_ns, job.inode, job.ctime_ns)
        except OSError:
            done.moved = True
        done.read_ns = time.time_ns()
        trusted = job.content_hash and not done.moved  # the catalog's hash still names these bytes
        h = job.content_hash if trusted else _hash_bytes(data)
        done.content_hash = h
        need = job.need if trusted else None
        if need is None:
            need = [e for e in extractors
                    if not catalog.hashes_with_feature([h], e.id, e.version, _nbytes(e))]
        if not need and catalog.has_image(h):
            return done  # known content under a new name: nothing to decode
        sides = [e.decode_min_side for e in need]
        min_side = None if (not sides or any(s is None for s in sides)) else max(sides)
        img = decode(data, min_side=min_side)
        done.truncated = img.truncated
        done.image_row = (h, img.width, img.height, img.format, img.mode, int(img.truncated), img.frames,
                          img.exif_datetime, img.exif_tags, len(data))
        for e in need:
            done.prepared[e.id] = e.prepare(img.image)
    except DecodeError as exc:
        done.error = str(exc)
    except Exception as exc:  # never let one file stop the run
        done.error = f"unexpected error: {type(exc).__name__}: {exc}"
    return done


def index(
    catalog: Catalog,
    paths: Iterable[str],
    models: Sequence[str] = ("effnet",),
    recursive: bool = True,
    progress: Progress | None = None,
    workers: int | None = None,
) -> IndexReport:
    """Bring the catalog up to date for every image under ``paths`` and the given models.

    A path that does not exist, or a folder that holds no picture, is a UsageError raised before anything is
    decoded (``media.walk.walk_inputs``: the one check of every command's inputs)."""
    t0 = time.perf_counter()
    report = IndexReport()
    paths = check_inputs(paths)
    extractors = [load_extractor(m) for m in dict.fromkeys(models)]
    by_id = {e.id: e for e in extractors}

    walk_errors: list = []
    files = walk_inputs(paths, recursive=recursive, errors=walk_errors)
    for e in walk_errors:
        (report.skipped if e.skipped else report.failed).append(FileError(e.path, e.error))
    known = catalog.lookup_files(files)

    jobs: list[_Job] = []
    unchanged_by_hash: dict[str, list[_Job]] = {}
    for path in files:
        try:
            st = os.stat(path)
        except FileNotFoundError:
            report.failed.append(FileError(path, "file vanished during the scan"))
            continue
        except OSError as exc:
            report.failed.append(FileError(path, f"cannot stat: {exc.strerror or exc}"))
            continue
        if not stat.S_ISREG(st.st_mode):  # swapped for a FIFO or device since the walk
            report.failed.append(FileError(path, f"not a regular file: it is a {kind_of(st.st_mode)}"))
            continue
        row = known.get(path)
        facts = {"size": st.st_size, "mtime_ns": st.st_mtime_ns, "inode": st.st_ino, "ctime_ns": st.st_ctime_ns}
        if row and row.status != "error" and row.content_hash and row.same_file(st):
            job = _Job(path, status="unchanged", content_hash=row.content_hash, need=[], **facts)
            unchanged_by_hash.setdefault(row.content_hash, []).append(job)
        else:
            job = _Job(path, status="changed" if row else "new", **facts)
        jobs.append(job)

    # Unchanged files: which models still lack a feature? Asked in bulk, no file is opened.
    for e in extractors:
        have = catalog.hashes_with_feature(unchanged_by_hash.keys(), e.id, e.version, _nbytes(e))
        for h, js in unchanged_by_hash.items():
            if h not in have:
                for j in js:
                    j.need.append(e)

    total = len(jobs)
    finished = 0
    to_run = [j for j in jobs if j.need is None or j.need]
    for j in jobs:
        if j.need == []:
            _account(report, j)
            finished += 1
    if progress:
        progress(finished, total)

    pending_files: list[tuple] = []
    pending_images: list[tuple] = []
    pending_feats: list[tuple] = []
    batches: dict[str, list[tuple[str, np.ndarray]]] = {e.id: [] for e in extractors}
    computed: set[tuple[str, str]] = set()
    racy: list[tuple] = []  # rows of files changed within a clock tick of their read

    def run_batch(model_id: str) -> None:
        items = batches[model_id]
        if not items:
            return
        ext = by_id[model_id]
        feats = ext.infer(np.stack([a for _, a in items]))
        expected = _nbytes(ext)
        for (h, _), vec in zip(items, feats, strict=True):
            blob = encode_feature(vec, ext.kind)
            if expected is not None and len(blob) != expected:  # else every run would compute it again
                raise ModelError(f"model {ext.id} gives features of {len(blob)} bytes, but its spec (dim "
                                 f"{ext.dim}) says {expected}: fix the model's spec.json")
            pending_feats.append((h, ext.id, ext.version, blob))
        items.clear()

    def flush(force: bool = False) -> None:
        if force:
            for mid in batches:
                run_batch(mid)
        if force or len(pending_files) >= 256:
            catalog.write(pending_files, pending_images, pending_feats)
            pending_files.clear()
            pending_images.clear()
            pending_feats.clear()

    n_workers = workers or cpu_count() + 1
    window = max(64, 4 * max(e.batch_size for e in extractors) if extractors else 64)
    with ThreadPoolExecutor(max_workers=n_workers, thread_name_prefix="lookalike-decode") as pool:
        it = iter(to_run)
        running: deque[Future] = deque()
        while True:
            while len(running) < window:
                job = next(it, None)
                if job is None:
                    break
                running.append(pool.submit(_work, job, catalog, extractors))
            if not running:
                break
            d: _Done = running.popleft().result()  # in submission order: deterministic output
            job = d.job
            if d.error:
                report.failed.append(FileError(job.path, d.error))
                pending_files.append((job.path, job.size, job.mtime_ns, d.content_hash, "error", d.error,
                                      job.inode, None))
            else:
                _account(report, job)
                if d.image_row:
                    report.decoded += 1
                    pending_images.append(d.image_row)
                elif job.status != "unchanged":
                    report.reused += 1
                if d.truncated:
                    report.truncated.append(job.path)
                status = "truncated" if d.truncated else "ok"
                if not d.image_row and job.status == "unchanged":
                    status = known[job.path].status
                row = (job.path, job.size, job.mtime_ns, d.content_hash, status, None,
                       job.inode, None if d.moved else job.ctime_ns)
                pending_files.append(row)
                if job.status != "unchanged" and not d.moved and _racy(job.ctime_ns, d.read_ns):
                    racy.append(row)
                for mid, arr in d.prepared.items():
                    if (d.content_hash, mid) in computed:
                        continue
                    computed.add((d.content_hash, mid))
                    batches[mid].append((d.content_hash, arr))
                    if len(batches[mid]) >= by_id[mid].batch_size:
                        run_batch(mid)
            finished += 1
            flush()
            if progress and (finished % 16 == 0 or not running):
                progress(finished, total)
    flush(force=True)
    _settle_racy(catalog, racy)
    good = {j.path for j in jobs} - {f.path for f in report.failed}
    report.paths = [j.path for j in jobs if j.path in good]
    report.seconds = time.perf_counter() - t0
    return report


def _racy_window(ctime_ns: int) -> int:
    """How long after a change its ctime may stay the same: a clock tick (a few ms) on file systems with
    nanosecond times; 2 s where times are whole seconds (FAT, some network file systems)."""
    return 2_000_000_000 if ctime_ns % 1_000_000_000 == 0 else 20_000_000


def _racy(ctime_ns: int | None, read_ns: int) -> bool:
    """True when the file was changed so shortly before it was read that a further change in the same clock
    tick would leave size, mtime (if restored) and ctime as they are (git's "racily clean" entries)."""
    return ctime_ns is not None and ctime_ns > read_ns - _racy_window(ctime_ns)


def _settle_racy(catalog: Catalog, rows: list[tuple]) -> None:
    """Re-check racy rows once their clock tick has passed: a file whose bytes or stat changed since it was
    hashed keeps no ctime, so the next run reads it again instead of trusting the fast path."""
    if not rows:
        return
    deadline = max(r[7] + _racy_window(r[7]) for r in rows)
    wait = min(deadline - time.time_ns(), 2_100_000_000)  # capped: a clock skew must not stall a run
    if wait > 0:
        time.sleep(wait / 1e9)
    fixes = []
    for row in rows:
        path, size, mtime_ns, content_hash, _status, _error, inode, ctime_ns = row
        try:
            st = os.stat(path)
            same = (st.st_size, st.st_mtime_ns, st.st_ino, st.st_ctime_ns) == (size, mtime_ns, inode, ctime_ns)
            same = same and _hash_bytes(read_bytes(path)) == content_hash and not _racy(ctime_ns, time.time_ns())
        except (OSError, DecodeError):
            same = False
        if not same:
            fixes.append((*row[:7], None))
    catalog.write(fixes)


def _nbytes(e: Extractor) -> int | None:
    """Size of one stored feature of this extractor (a blob of another size is damaged: computed again)."""
    dim = getattr(e, "dim", None)
    return feature_nbytes(e.kind, int(dim)) if dim else None


def features_of(
    catalog: Catalog, paths: Sequence[str], model: str, reindex: Callable[[], Sequence[str]] | None = None
) -> tuple[list[str], np.ndarray]:
    """(paths having the feature, their features): :meth:`Catalog.feature_matrix` with the model's size check.

    A damaged stored feature (wrong size, NaN) is removed by the catalog; when ``reindex`` is given it is
    called once (it re-runs :func:`index`, which computes the feature again and returns the paths) and the
    read is retried; without it, or when the damage persists, DamagedFeatureError is raised."""
    ext = load_extractor(model)
    try:
        return catalog.feature_matrix(paths, ext.id, ext.version, ext.kind, _nbytes(ext))
    except DamagedFeatureError:
        if reindex is None:
            raise
    return catalog.feature_matrix(reindex(), ext.id, ext.version, ext.kind, _nbytes(ext))


def _account(report: IndexReport, job: _Job) -> None:
    if job.status == "new":
        report.new += 1
    elif job.status == "changed":
        report.changed += 1
    else:
        report.unchanged += 1
