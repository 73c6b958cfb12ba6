"""Indexing: walk folders, decide what is new/changed/unchanged, decode in a pool, batch features
into the extractors, write to the catalog. Every command that needs features calls :func:`index_paths`.

The fast path (:mod:`lookalike.index.fastpath`): a file whose (path, size, mtime_ns, inode, ctime_ns) is in
the catalog with its features is not read at all. A new path whose bytes hash to known content (a moved or
renamed file) reuses the stored features without decoding. Decoding and hashing run in worker threads
(Pillow, hashlib and numpy release the GIL) while the main thread runs the model on full batches, so the
model is the limit, not the decoder; a run of hash models only, where decoding is all the work, reads,
hashes and decodes in worker processes instead (:mod:`lookalike.index.pool`), with the same rows.

The run, step by step: :func:`_plan` (stat every walked file, sort it into new / changed / unchanged),
:func:`_ask_missing_features` (which unchanged files still lack a model's feature, asked in bulk),
:func:`_run_in_pool` (read, hash and decode in threads, in walk order; or
:func:`lookalike.index.pool.run_in_processes`), :meth:`_Batches.take` (one finished
file into the report and the write batches), then :func:`_settle_racy` (files changed within a clock tick of
their read lose their fast path).
"""

from __future__ import annotations

import dataclasses
import os
import stat
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from lookalike.catalog import (
    Catalog,
    DamagedFeatureError,
    FeatureRow,
    FileRow,
    ImageRow,
    encode_feature,
    feature_nbytes,
    open_catalog,
)
from lookalike.config import cpu_count
from lookalike.errors import DecodeError, ModelError
from lookalike.features import DEFAULT_MODEL, Extractor, load_extractor
from lookalike.index.fastpath import sha256_of, unchanged_hash
from lookalike.index.pool import run_in_processes, use_processes
from lookalike.index.report import IndexFailure, IndexReport, Progress
from lookalike.media import check_inputs, decode, read_bytes, walk_inputs
from lookalike.media.files import kind_of

#: Rows kept before one catalog transaction writes them.
WRITE_BATCH = 256


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
    image: ImageRow | None = None  # set when the file was decoded
    prepared: dict[str, np.ndarray] = field(default_factory=dict)
    truncated: bool = False
    error: str | None = None
    moved: bool = False  # the file changed while it was read: its row must not pass the fast path next time
    read_ns: int = 0  # wall clock when the read ended


def index_paths(
    paths: Iterable[str | Path],
    catalog: Catalog | str | Path | None = None,
    models: Sequence[str] = (DEFAULT_MODEL,),
    recursive: bool = True,
    progress: Progress | None = None,
    cluster: str | int | None = None,
) -> IndexReport:
    """Bring the catalog up to date for every image under ``paths`` and the given models.

    ``catalog``: a Catalog, a database path, or None (the default catalog). A path that does not exist, or
    a folder that holds no picture, is a UsageError raised before anything is decoded
    (``media.walk.walk_inputs``: the one check of every command's inputs). ``cluster``: a Dask scheduler
    address or a number of local Dask worker processes: the files that need work are read, decoded and
    embedded there (:func:`lookalike.index.distributed.index_on_cluster`, the ``lookalike[dask]`` extra)."""
    if cluster is not None:
        from lookalike.index.distributed import index_on_cluster

        return index_on_cluster(paths, catalog, models, recursive=recursive, progress=progress, cluster=cluster)
    t0 = time.perf_counter()
    cat = open_catalog(catalog)
    report = IndexReport()
    extractors, known, jobs = _plan_run(paths, cat, models, recursive, report)

    total = len(jobs)
    finished = 0
    for j in jobs:
        if j.need == []:  # unchanged, every feature present: nothing to read
            report.count(j.status)
            finished += 1
    if progress:
        progress(finished, total)

    batches = _Batches(cat, extractors, known)
    to_run = [j for j in jobs if j.need is None or j.need]
    run = run_in_processes if use_processes(len(to_run), extractors) else _run_in_pool
    for done, more in run(to_run, cat, extractors):
        batches.take(done, report)
        finished += 1
        batches.flush()
        if progress and (finished % 16 == 0 or not more):
            progress(finished, total)
    batches.flush(force=True)
    _settle_racy(cat, batches.racy)
    failed = {f.path for f in report.failed}
    report.paths = [j.path for j in jobs if j.path not in failed]
    report.seconds = time.perf_counter() - t0
    return report


def _plan_run(
    paths: Iterable[str | Path], cat: Catalog, models: Sequence[str], recursive: bool, report: IndexReport
) -> tuple[list[Extractor], dict[str, FileRow], list[_Job]]:
    """(extractors, the catalog's rows of the walked files, one job per file): inputs checked, the walk's
    problems in ``report``, every job planned (:func:`_plan`) and told which features it lacks. The one
    planning step of a plain run and of a run on a cluster (:mod:`lookalike.index.distributed`)."""
    roots = check_inputs(str(p) for p in paths)
    extractors = [load_extractor(m) for m in dict.fromkeys(models)]
    walk_problems: list = []
    files = walk_inputs(roots, recursive=recursive, errors=walk_problems)
    for w in walk_problems:
        (report.skipped if w.skipped else report.failed).append(IndexFailure(w.path, w.error))
    known = cat.lookup_files(files)
    jobs = _plan(files, known, report)
    _ask_missing_features(cat, extractors, jobs)
    return extractors, known, jobs


def _plan(files: Sequence[str], known: dict[str, FileRow], report: IndexReport) -> list[_Job]:
    """One job per walked file that is still a regular file, marked new, changed or unchanged (fast path)."""
    jobs: list[_Job] = []
    for path in files:
        try:
            st = os.stat(path)
        except FileNotFoundError:
            report.failed.append(IndexFailure(path, "file vanished during the scan"))
            continue
        except OSError as exc:
            report.failed.append(IndexFailure(path, f"cannot stat: {exc.strerror or exc}"))
            continue
        if not stat.S_ISREG(st.st_mode):  # swapped for a FIFO or device since the walk
            report.failed.append(IndexFailure(path, f"not a regular file: it is a {kind_of(st.st_mode)}"))
            continue
        row = known.get(path)
        facts = {"size": st.st_size, "mtime_ns": st.st_mtime_ns, "inode": st.st_ino, "ctime_ns": st.st_ctime_ns}
        h = unchanged_hash(row, st)
        if h is not None:
            jobs.append(_Job(path, status="unchanged", content_hash=h, need=[], **facts))
        else:
            jobs.append(_Job(path, status="changed" if row else "new", **facts))
    return jobs


def _ask_missing_features(catalog: Catalog, extractors: Sequence[Extractor], jobs: Sequence[_Job]) -> None:
    """Unchanged files: which models still lack a feature? Asked in bulk, no file is opened."""
    by_hash: dict[str, list[_Job]] = {}
    for j in jobs:
        if j.status == "unchanged" and j.content_hash:
            by_hash.setdefault(j.content_hash, []).append(j)
    for e in extractors:
        have = catalog.hashes_with_feature(by_hash.keys(), e.id, e.version, _nbytes(e))
        for h, js in by_hash.items():
            if h not in have:
                for j in js:
                    j.need.append(e)


def _run_in_pool(
    jobs: Sequence[_Job], catalog: Catalog, extractors: Sequence[Extractor]
) -> Iterator[tuple[_Done, bool]]:
    """(finished job, whether more are running), in submission order (deterministic output): reading,
    hashing and decoding run in threads, a bounded window ahead of the caller."""
    n_workers = cpu_count() + 1
    window = max(64, 4 * max(e.batch_size for e in extractors) if extractors else 64)
    with ThreadPoolExecutor(max_workers=n_workers, thread_name_prefix="lookalike-decode") as pool:
        it = iter(jobs)
        running: deque[Future] = deque()
        while True:
            while len(running) < window:
                job = next(it, None)
                if job is None:
                    break
                running.append(pool.submit(_read_and_prepare, job, catalog, extractors))
            if not running:
                break
            done: _Done = running.popleft().result()
            yield done, bool(running)


def _read_and_prepare(job: _Job, catalog: Catalog, extractors: Sequence[Extractor]) -> _Done:
    """Read one file, hash it and, unless its content already has every feature, decode and prepare it."""
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
        h = job.content_hash if trusted else sha256_of(data)
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
        done.image = ImageRow(h, img.width, img.height, img.format, img.mode, bool(img.truncated), img.frames,
                              img.exif_datetime, img.exif_tags, len(data))
        for e in need:
            done.prepared[e.id] = e.prepare(img.image)
    except DecodeError as exc:
        done.error = str(exc)
    except Exception as exc:  # never let one file stop the run
        done.error = f"unexpected error: {type(exc).__name__}: {exc}"
    return done


class _Batches:
    """Rows waiting for the catalog, and prepared pictures waiting for a full model batch."""

    def __init__(self, catalog: Catalog, extractors: Sequence[Extractor], known: dict[str, FileRow]) -> None:
        self.catalog, self.known = catalog, known
        self.by_id = {e.id: e for e in extractors}
        self.files: list[FileRow] = []
        self.images: list[ImageRow] = []
        self.features: list[FeatureRow] = []
        self.waiting: dict[str, list[tuple[str, np.ndarray]]] = {e.id: [] for e in extractors}
        self.computed: set[tuple[str, str]] = set()
        self.racy: list[FileRow] = []  # rows of files changed within a clock tick of their read

    def take(self, d: _Done, report: IndexReport) -> None:
        """Account one finished file in the report and queue its rows and its prepared picture."""
        job = d.job
        if d.error:
            report.failed.append(IndexFailure(job.path, d.error))
            self.files.append(FileRow(job.path, job.size, job.mtime_ns, d.content_hash, "error", d.error,
                                      job.inode, None))
            return
        report.count(job.status)
        if d.image:
            report.decoded += 1
            self.images.append(d.image)
        elif job.status != "unchanged":
            report.reused += 1
        if d.truncated:
            report.truncated.append(job.path)
        status = "truncated" if d.truncated else "ok"
        if not d.image and job.status == "unchanged":
            status = self.known[job.path].status
        row = FileRow(job.path, job.size, job.mtime_ns, d.content_hash, status, None, job.inode,
                      None if d.moved else job.ctime_ns)
        self.files.append(row)
        if job.status != "unchanged" and not d.moved and _racy(job.ctime_ns, d.read_ns):
            self.racy.append(row)
        for mid, arr in d.prepared.items():
            if (d.content_hash, mid) in self.computed:
                continue
            self.computed.add((d.content_hash, mid))
            self.waiting[mid].append((d.content_hash, arr))
            if len(self.waiting[mid]) >= self.by_id[mid].batch_size:
                self.run_model(mid)

    def run_model(self, model_id: str) -> None:
        """Features of every picture waiting for this model, in one batch."""
        items = self.waiting[model_id]
        if not items:
            return
        ext = self.by_id[model_id]
        feats = ext.infer(np.stack([a for _, a in items]))
        expected = _nbytes(ext)
        for (h, _), vec in zip(items, feats, strict=True):
            blob = encode_feature(vec, ext.kind)
            if expected is not None and len(blob) != expected:  # else every run would compute it again
                raise ModelError(f"model {ext.id} gives features of {len(blob)} bytes, but its spec (dim "
                                 f"{ext.dim}) says {expected}: fix the model's spec.json")
            self.features.append(FeatureRow(h, ext.id, ext.version, blob))
        items.clear()

    def flush(self, force: bool = False) -> None:
        """Write the rows once there are enough of them (``force``: run every model and write all)."""
        if force:
            for mid in self.waiting:
                self.run_model(mid)
        if force or len(self.files) >= WRITE_BATCH:
            self.catalog.write(self.files, self.images, self.features)
            self.files, self.images, self.features = [], [], []


def _racy_window(ctime_ns: int) -> int:
    """How long after a change its ctime may stay the same: a clock tick (a few ms) on file systems with
    nanosecond times; 2 s where times are whole seconds (FAT, some network file systems)."""
    return 2_000_000_000 if ctime_ns % 1_000_000_000 == 0 else 20_000_000


def _racy(ctime_ns: int | None, read_ns: int) -> bool:
    """True when the file was changed so shortly before it was read that a further change in the same clock
    tick would leave size, mtime (if restored) and ctime as they are (git's "racily clean" entries)."""
    return ctime_ns is not None and ctime_ns > read_ns - _racy_window(ctime_ns)


def _settle_racy(catalog: Catalog, rows: list[FileRow]) -> None:
    """Re-check racy rows once their clock tick has passed: a file whose bytes or stat changed since it was
    hashed keeps no ctime, so the next run reads it again instead of trusting the fast path."""
    if not rows:
        return
    deadline = max(r.ctime_ns + _racy_window(r.ctime_ns) for r in rows)
    wait = min(deadline - time.time_ns(), 2_100_000_000)  # capped: a clock skew must not stall a run
    if wait > 0:
        time.sleep(wait / 1e9)
    fixes = []
    for row in rows:
        try:
            st = os.stat(row.path)
            same = (st.st_size, st.st_mtime_ns, st.st_ino, st.st_ctime_ns) == (
                row.size, row.mtime_ns, row.inode, row.ctime_ns)
            same = (same and sha256_of(read_bytes(row.path)) == row.content_hash
                    and not _racy(row.ctime_ns, time.time_ns()))
        except (OSError, DecodeError):
            same = False
        if not same:
            fixes.append(dataclasses.replace(row, ctime_ns=None))
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
    called once (it re-runs :func:`index_paths`, which computes the feature again and returns the paths) and
    the read is retried; without it, or when the damage persists, DamagedFeatureError is raised."""
    ext = load_extractor(model)
    try:
        return catalog.feature_matrix(paths, ext.id, ext.version, ext.kind, _nbytes(ext))
    except DamagedFeatureError:
        if reindex is None:
            raise
    return catalog.feature_matrix(reindex(), ext.id, ext.version, ext.kind, _nbytes(ext))


def indexed_features(
    paths: Iterable[str | Path],
    catalog: Catalog | str | Path | None = None,
    model: str = DEFAULT_MODEL,
    recursive: bool = True,
    progress: Progress | None = None,
    cluster: str | int | None = None,
) -> tuple[list[str], np.ndarray]:
    """(paths, matrix) of every good picture under ``paths``, indexing first as needed (on the Dask
    ``cluster`` when one is given, see :func:`index_paths`).

    Embeddings come as float16 rows (L2-normalised); hashes as uint64 words. A damaged stored feature is
    removed by the catalog, then computed again by one more indexing run."""
    cat = open_catalog(catalog)
    roots = list(paths)
    report = index_paths(roots, cat, [model], recursive=recursive, progress=progress, cluster=cluster)
    return features_of(cat, report.paths, model,
                       lambda: index_paths(roots, cat, [model], recursive=recursive).paths)
