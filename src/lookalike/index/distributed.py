"""Indexing past one machine, on a Dask cluster (``lookalike index --scheduler ADDR`` / ``--dask-workers N``).

The driver (the process that runs ``lookalike index``) walks, stats and plans exactly as a plain run does
(:func:`lookalike.index.pipeline._plan_run`): unchanged files pass the catalog's fast path and are never sent.
The files that need work are cut into shards; each shard runs on a Dask worker, which reads every file where
it lies (the same path on a shared or mounted file system), hashes, decodes and embeds it with the same code
as a plain run (:func:`~lookalike.index.pipeline._run_in_pool` and
:class:`~lookalike.index.pipeline._Batches`, extractors loaded once per worker process; known contents of the
same sizes travel with the shard, so a moved or copied file is not decoded again) and returns its rows as
Arrow IPC record batches keyed by content hash (file facts, picture facts, features). The driver is the one
writer: it checks each shard's rows (the shard's files only; model, version, feature size) and merges them
into the catalog with one :meth:`Catalog.write` transaction per shard, so SQLite never has two writers and an
interrupted run leaves whole shards only (the next run does the rest). A file a worker cannot read is a
per-file failure, as in a plain run; a worker lost with its shard makes that shard's files failures (nothing
is written for them, so the next run tries them again). Every worker is asked its lookalike version and model
versions first; a worker that differs is refused before any work is sent, and each shard checks again on
arrival.

Dask and pyarrow are an optional extra: ``pip install 'lookalike[dask]'``.
"""

from __future__ import annotations

import dataclasses
import os
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from lookalike.catalog import Catalog, FeatureRow, FileRow, ImageRow, open_catalog
from lookalike.dask_cluster import ClusterError, check_workers, connected, fingerprint, require_dask
from lookalike.errors import LookalikeError
from lookalike.features import DEFAULT_MODEL, Extractor, load_extractor
from lookalike.index.pool import known_by_size
from lookalike.index.report import IndexFailure, IndexReport, Progress
from lookalike.options import check_cluster

#: Most files in one shard (fewer when the run is small, so every worker gets several shards).
SHARD_FILES = 64
_COUNTS = ("new", "changed", "unchanged", "decoded", "reused")  # the report's counters a shard adds to
_FILES_SEEN = 0  # files this worker process has read for a shard (see :func:`worker_stats`)


@dataclass
class DaskIndexReport(IndexReport):
    """An :class:`IndexReport` of a run on a Dask cluster, plus what went to the workers."""

    scheduler: str = ""
    workers: int = 0
    shards: int = 0
    sent: int = 0  # files sent to workers (unchanged files never are)
    lost: int = 0  # shards whose worker failed (their files are in ``failed``)

    def to_json(self) -> dict:
        data = super().to_json()
        data["dask"] = {"scheduler": self.scheduler, "workers": self.workers, "shards": self.shards,
                        "sent": self.sent, "lost_shards": self.lost}
        return data


# -- the worker's side -----------------------------------------------------------------------------------------


class _WorkerSide:
    """What a shard sees in place of the catalog (a worker never opens it): the known contents the driver
    sent along (content hash -> models that have its feature), and rows kept to be sent back, not written."""

    def __init__(self, known: dict[str, list[str]]) -> None:
        self.known = known
        self.files: list[FileRow] = []
        self.images: list[ImageRow] = []
        self.features: list[FeatureRow] = []

    def hashes_with_feature(self, hashes: Iterable[str], model: str, version: str,
                            nbytes: int | None = None) -> set[str]:
        return {h for h in hashes if model in self.known.get(h, ())}

    def has_image(self, content_hash: str) -> bool:
        return content_hash in self.known

    def write(self, files: Sequence[FileRow] = (), images: Sequence[ImageRow] = (),
              features: Sequence[FeatureRow] = ()) -> None:
        self.files += files
        self.images += images
        self.features += features


@dataclass
class ShardJob:
    """One file of a shard, as the driver planned it (plain data: it travels to a worker)."""

    path: str
    size: int
    mtime_ns: int
    status: str
    inode: int | None
    ctime_ns: int | None
    content_hash: str | None  # known when unchanged
    need: list[str] | None  # model ids still missing (unchanged files); None: every model, after hashing
    known_status: str | None = None


@dataclass
class ShardResult:
    """What a worker sends back: Arrow IPC streams of the rows, and the shard's part of the report."""

    files: bytes
    images: bytes
    features: bytes
    counts: dict[str, int]
    failed: list[tuple[str, str]]
    truncated: list[str]
    racy: list[str]
    worker: str = ""
    seconds: float = 0.0


class VersionMismatch(ClusterError):
    """A shard arrived at a worker running another lookalike."""


def index_shard(jobs: Sequence[ShardJob], models: Sequence[str], wanted: dict,
                known_content: dict[str, list[str]] | None = None) -> ShardResult:
    """Run on a worker: read, hash, decode and embed the shard's files; return the rows (never writes).

    ``known_content``: contents the catalog already holds that a new file of the shard may turn out to be (same
    size), with the models that have their feature: such a file (moved, renamed, copied) is not decoded."""
    from lookalike.index.pipeline import _Batches, _Job, _run_in_pool

    global _FILES_SEEN
    t0 = time.perf_counter()
    if fingerprint(models) != wanted:
        raise VersionMismatch(f"this worker runs {fingerprint(models)}, the driver {wanted}")
    extractors = [load_extractor(m) for m in models]  # cached: loaded once per worker process
    by_id = {e.id: e for e in extractors}
    side = _WorkerSide(known_content or {})
    known = {j.path: FileRow(j.path, j.size, j.mtime_ns, j.content_hash, j.known_status or "ok", None,
                             j.inode, j.ctime_ns) for j in jobs if j.status == "unchanged"}
    plan = [_Job(j.path, j.size, j.mtime_ns, j.status, j.inode, j.ctime_ns, j.content_hash,
                 None if j.need is None else [by_id[m] for m in j.need]) for j in jobs]
    report = IndexReport()
    batches = _Batches(side, extractors, known)  # type: ignore[arg-type]  # duck-typed catalog
    for done, _more in _run_in_pool(plan, side, extractors):  # type: ignore[arg-type]
        batches.take(done, report)
        batches.flush()
    batches.flush(force=True)
    _FILES_SEEN += len(jobs)
    try:
        from distributed import get_worker

        worker = get_worker().address
    except (ImportError, ValueError):
        worker = ""
    return ShardResult(
        files=_to_ipc(_file_table(side.files)), images=_to_ipc(_image_table(side.images)),
        features=_to_ipc(_feature_table(side.features)),
        counts={key: getattr(report, key) for key in _COUNTS},
        failed=[(f.path, f.error) for f in report.failed], truncated=list(report.truncated),
        racy=[r.path for r in batches.racy], worker=worker, seconds=time.perf_counter() - t0)


def worker_stats() -> dict:
    """Run on a worker (``client.run(worker_stats)``): how many files this process has read for shards."""
    return {"files_seen": _FILES_SEEN, "pid": os.getpid()}


# -- Arrow record batches --------------------------------------------------------------------------------------


def _to_ipc(table: Any) -> bytes:
    import pyarrow as pa

    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, table.schema) as writer:
        writer.write_table(table)
    return sink.getvalue().to_pybytes()


def _from_ipc(data: bytes) -> Any:
    import pyarrow as pa

    return pa.ipc.open_stream(pa.py_buffer(data)).read_all()


def _file_table(rows: Sequence[FileRow]) -> Any:
    import pyarrow as pa

    return pa.table({
        "path": pa.array([os.fsencode(r.path) for r in rows], pa.binary()),  # lossless for any file name
        "size": pa.array([r.size for r in rows], pa.int64()),
        "mtime_ns": pa.array([r.mtime_ns for r in rows], pa.int64()),
        "content_hash": pa.array([r.content_hash for r in rows], pa.string()),
        "status": pa.array([r.status for r in rows], pa.string()),
        "error": pa.array([r.error for r in rows], pa.large_string()),
        "inode": pa.array([r.inode for r in rows], pa.uint64()),
        "ctime_ns": pa.array([r.ctime_ns for r in rows], pa.int64()),
    })


def _image_table(rows: Sequence[ImageRow]) -> Any:
    import pyarrow as pa

    names = [f.name for f in dataclasses.fields(ImageRow)]
    return pa.table({n: [getattr(r, n) for r in rows] for n in names},
                    schema=pa.schema([("content_hash", pa.string()), ("width", pa.int64()), ("height", pa.int64()),
                                      ("format", pa.string()), ("mode", pa.string()), ("truncated", pa.bool_()),
                                      ("frames", pa.int64()), ("exif_datetime", pa.string()),
                                      ("exif_tags", pa.int64()), ("bytes", pa.int64())]))


def _feature_table(rows: Sequence[FeatureRow]) -> Any:
    import pyarrow as pa

    return pa.table({
        "content_hash": pa.array([r.content_hash for r in rows], pa.string()),
        "model": pa.array([r.model for r in rows], pa.string()),
        "version": pa.array([r.version for r in rows], pa.string()),
        "data": pa.array([r.data for r in rows], pa.binary()),
    })


def _rows(result: ShardResult) -> tuple[list[FileRow], list[ImageRow], list[FeatureRow]]:
    files = [FileRow(os.fsdecode(d["path"]), d["size"], d["mtime_ns"], d["content_hash"], d["status"], d["error"],
                     d["inode"], d["ctime_ns"]) for d in _from_ipc(result.files).to_pylist()]
    images = [ImageRow(**d) for d in _from_ipc(result.images).to_pylist()]
    features = [FeatureRow(**d) for d in _from_ipc(result.features).to_pylist()]
    return files, images, features


def _check_rows(shard: Sequence[ShardJob], files: Sequence[FileRow], images: Sequence[ImageRow],
                features: Sequence[FeatureRow], extractors: Sequence[Extractor], worker: str) -> None:
    """A worker's rows must be about the shard's files only (one row each), its pictures and features about
    those files' contents, and its features of a requested model, of the driver's version and size."""
    from lookalike.index.pipeline import _nbytes

    paths = {j.path for j in shard}
    if len({f.path for f in files}) != len(files) or any(f.path not in paths for f in files):
        raise ClusterError(f"worker {worker} sent file rows that are not its shard's files")
    hashes = {f.content_hash for f in files}
    if any(i.content_hash not in hashes for i in images) or any(f.content_hash not in hashes for f in features):
        raise ClusterError(f"worker {worker} sent picture facts or features of contents its shard does not hold")

    by_id = {e.id: e for e in extractors}
    for f in features:
        e = by_id.get(f.model)
        if e is None or f.version != e.version:
            raise ClusterError(f"worker {worker} sent {f.model} version {f.version} features; this run computes "
                               + ", ".join(f"{x.id} {x.version}" for x in extractors))
        n = _nbytes(e)
        if n is not None and len(f.data) != n:
            raise ClusterError(f"worker {worker} sent a {f.model} feature of {len(f.data)} bytes instead of {n}")


# -- the driver ------------------------------------------------------------------------------------------------


def _shards(jobs: Sequence[ShardJob], workers: int, shard_files: int) -> list[list[ShardJob]]:
    """Consecutive runs of jobs (walk order keeps a folder's files together): at most ``shard_files`` each,
    and about four shards per worker when the run is small."""
    if not jobs:
        return []
    size = max(1, min(shard_files, -(-len(jobs) // (4 * max(1, workers)))))
    return [list(jobs[i : i + size]) for i in range(0, len(jobs), size)]


def _content_for(shard: Sequence[ShardJob], by_size: dict[int, dict[str, list[str]]]) -> dict[str, list[str]]:
    """The known contents a shard's new files may be."""
    out: dict[str, list[str]] = {}
    for n in {j.size for j in shard if j.need is None}:
        out.update(by_size.get(n, {}))
    return out


def index_on_cluster(
    paths: Iterable[str | Path],
    catalog: Catalog | str | Path | None = None,
    models: Sequence[str] = (DEFAULT_MODEL,),
    recursive: bool = True,
    progress: Progress | None = None,
    cluster: str | int = 1,
    shard_files: int = SHARD_FILES,
) -> DaskIndexReport:
    """:func:`lookalike.index.index_paths` with the reading, decoding and embedding on a Dask cluster.

    ``cluster``: a scheduler address (``tcp://host:8786``) or a number of local worker processes (a
    LocalCluster started and stopped for this run). Same catalog as a plain run (features within float16
    rounding of the model's output on each worker's CPU)."""
    from lookalike.index.pipeline import _plan_run

    cluster = check_cluster(cluster)  # before anything is walked
    t0 = time.perf_counter()
    cat = open_catalog(catalog)
    report = DaskIndexReport()
    # the driver's extractors: their versions and sizes are the reference for every worker
    extractors, known, jobs = _plan_run(paths, cat, models, recursive, report)
    model_ids = [e.id for e in extractors]
    total, finished = len(jobs), 0
    to_send: list[ShardJob] = []
    for j in jobs:
        if j.need == []:  # unchanged, every feature present: never sent
            report.count(j.status)
            finished += 1
        else:
            to_send.append(ShardJob(j.path, j.size, j.mtime_ns, j.status, j.inode, j.ctime_ns, j.content_hash,
                                    None if j.need is None else [e.id for e in j.need],
                                    known[j.path].status if j.path in known else None))
    if progress:
        progress(finished, total)

    if to_send:
        finished = _run_shards(cat, to_send, extractors, model_ids, cluster, shard_files, report, progress,
                               finished, total)
    failed = {f.path for f in report.failed}
    report.paths = [j.path for j in jobs if j.path not in failed]
    report.seconds = time.perf_counter() - t0
    return report


def _run_shards(cat: Catalog, to_send: list[ShardJob], extractors: Sequence[Extractor], model_ids: list[str],
                cluster: str | int, shard_files: int, report: DaskIndexReport, progress: Progress | None,
                finished: int, total: int) -> int:
    """Send the shards, merge each one's rows as it completes (the driver is the one writer)."""
    distributed = require_dask()
    with connected(cluster) as (client, _local, address):
        report.scheduler = address
        return _merge_shards(distributed, client, cat, to_send, extractors, model_ids, shard_files, report,
                             progress, finished, total)


def _merge_shards(distributed: Any, client: Any, cat: Catalog, to_send: list[ShardJob],
                  extractors: Sequence[Extractor], model_ids: list[str], shard_files: int, report: DaskIndexReport,
                  progress: Progress | None, finished: int, total: int) -> int:
    from lookalike.index.pipeline import _settle_racy

    futures: list[Any] = []
    racy: list[FileRow] = []
    try:
        report.workers = check_workers(client, model_ids)
        shards = _shards(to_send, report.workers, shard_files)
        wanted = fingerprint(model_ids)
        by_size = known_by_size(cat, to_send, extractors)
        futures = [client.submit(index_shard, s, model_ids, wanted, _content_for(s, by_size), pure=False,
                                 key=f"lookalike-shard-{i}-{os.getpid()}-{time.time_ns()}")
                   for i, s in enumerate(shards)]
        shard_of = {f.key: s for f, s in zip(futures, shards, strict=True)}
        report.shards, report.sent = len(shards), len(to_send)
        # results are fetched in the client's background thread while this one merges the previous shard
        for fut, result in distributed.as_completed(futures, with_results=True, raise_errors=False):
            shard = shard_of[fut.key]
            if isinstance(result, VersionMismatch):
                raise ClusterError(f"refusing the Dask cluster: a worker joined with another lookalike ({result}); "
                                   "install the same lookalike version on every worker") from result
            if not isinstance(result, ShardResult):  # a lost worker, an unpicklable task...: this shard's files fail
                exc = result
                report.lost += 1
                why = f"the Dask worker failed on this file's shard: {type(exc).__name__}: {exc}"
                report.failed += [IndexFailure(j.path, why) for j in shard]
                finished += len(shard)
                if progress:
                    progress(finished, total)
                continue
            files, images, features = _rows(result)
            _check_rows(shard, files, images, features, extractors, result.worker)
            cat.write(files, images, features)  # one transaction: the shard is in the catalog whole, or not
            for key in _COUNTS:
                setattr(report, key, getattr(report, key) + int(result.counts.get(key, 0)))
            report.failed += [IndexFailure(p, e) for p, e in result.failed]
            report.truncated += result.truncated
            racy_paths = set(result.racy)
            racy += [r for r in files if r.path in racy_paths]
            finished += len(shard)
            if progress:
                progress(finished, total)
        _settle_racy(cat, racy)
    except BaseException:
        if futures:
            client.cancel(futures)
        if racy:  # no time to re-check them: they lose their fast path (read again next run)
            try:
                cat.write([dataclasses.replace(r, ctime_ns=None) for r in racy])
            except LookalikeError:
                pass  # the catalog itself failed: the error being raised says so
        raise
    return finished
