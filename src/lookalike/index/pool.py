"""Indexing in worker processes: each worker reads, hashes (sha256), decodes and prepares files; the one
parent process runs the models' batches and writes the catalog (SQLite has one writer).

Threads suffice while a model holds the cores (effnet: onnxruntime releases the GIL for most of a
picture's cost), but a hash-only run is all decoding, and the Python between decodes (opening the file,
EXIF, resizing, catalog rows) holds the GIL. So a run whose models are all hashes, on more than one core
and with enough files to read, goes to a process pool (:func:`use_processes`); a run with an embedding
model stays in threads unless :data:`USE_PROCESSES` says otherwise (then each worker gets the extractor
without its inference session and only prepares pictures: it measured no better, docs/BENCHMARKS.md). The
pool is spawned (no fork of a process holding model
or SQLite threads) once per process and reused by every later run; workers never open the catalog: the
parent sends, with each task, the known contents of the same sizes (content hash -> models that have
its feature), so a moved or copied file is still not decoded. Tasks are a few files each, a few tasks
queued per worker; results come back in walk order, as from the thread pool
(:func:`lookalike.index.pipeline._run_in_pool`), into the same :class:`~lookalike.index.pipeline._Batches`,
so the catalog's rows and the :class:`~lookalike.index.IndexReport` are the same.

A worker that dies (a decoder's crash, the out-of-memory killer) breaks the pool: the files of every task in
flight are then read again one at a time in a fresh pool, and a file that stops its worker twice is recorded
as failed, with that reason; every other file keeps its rows.
"""

from __future__ import annotations

import atexit
import copy
import dataclasses
import os
import signal
import sys
import threading
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from multiprocessing import get_context

from lookalike.catalog import Catalog
from lookalike.config import cpu_count, spawn_is_safe
from lookalike.features import Extractor
from lookalike.media import io_stats

#: Whether runs use worker processes: None decides per run (:func:`use_processes`); True always, whatever the
#: models (a script guarded by ``if __name__ == "__main__":`` may set it: spawned workers import the main
#: script again); False never (threads, as before).
USE_PROCESSES: bool | None = None
#: Fewest files to read before a run starts worker processes (spawning costs ~0.2 s of CPU per worker, once).
POOL_MIN_FILES = 64
#: Files per task (fewer round trips than one per file; small enough that workers share the tail).
TASK_FILES = 4
#: Tasks queued per worker, so that no worker waits for its next task while the parent writes.
QUEUED_PER_WORKER = 4
#: Called in each worker when it starts (tests use it to make a worker crash on a given file). Part of the
#: pool's key: a pool started with another one is not reused.
WORKER_SETUP: Callable[[], None] | None = None
#: Why a file is left out when reading it stopped its worker process twice.
CRASHED = "the worker process reading this file stopped unexpectedly (crashed), twice: file left out"


def use_processes(n_files: int, extractors: Sequence[Extractor]) -> bool:
    """Whether a run reading ``n_files`` files for these models goes to worker processes: only when every
    model is a hash (weight-less, cheap to load in each worker), and by default only with more than one core,
    at least :data:`POOL_MIN_FILES` files and a main module that spawned workers do not run again
    (:func:`lookalike.config.spawn_is_safe`)."""
    if USE_PROCESSES is False or not n_files:
        return False
    if USE_PROCESSES:
        return True
    if not all(e.kind == "hash" for e in extractors):
        return False
    return cpu_count() > 1 and n_files >= POOL_MIN_FILES and spawn_is_safe()


# -- the workers' side ------------------------------------------------------------------------------------------


class _KnownContent:
    """What a worker sees in place of the catalog: the known contents the parent sent (content hash -> ids
    of the models that have its feature)."""

    def __init__(self, known: dict[str, list[str]]) -> None:
        self.known = known

    def hashes_with_feature(self, hashes: Sequence[str], model: str, version: str,
                            nbytes: int | None = None) -> set[str]:
        return {h for h in hashes if model in self.known.get(h, ())}

    def has_image(self, content_hash: str) -> bool:
        return content_hash in self.known


def _worker_init(setup: Callable[[], None] | None) -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C reaches the whole process group: the parent stops us
    if setup is not None:
        setup()


def _ready() -> int:
    return os.getpid()


def _for_workers(ext: Extractor) -> Extractor:
    """The extractor as a worker needs it (``decode_min_side`` and ``prepare``; it never infers): a copy
    without its inference session, so that it pickles and no worker loads a model."""
    if "session" not in vars(ext):
        return ext
    light = copy.copy(ext)
    del light.session
    return light


def prepare_files(tasks: Sequence[tuple], extractors: Sequence[Extractor], known: dict[str, list[str]]
                  ) -> list[tuple]:
    """Run in a worker: read, hash, decode and prepare each file of a task (tuples of
    :class:`~lookalike.index.pipeline._Job` fields, ``need`` as model ids); (finished job without its job, files
    read, bytes read) for each, in order. Never raises for one file (see ``_read_and_prepare``)."""
    from lookalike.index.pipeline import _Job, _read_and_prepare

    by_id = {e.id: e for e in extractors}
    side = _KnownContent(known)
    out = []
    for fields in tasks:
        job = _Job(*fields[:-1], need=None if fields[-1] is None else [by_id[m] for m in fields[-1]])
        io_stats.reset()
        done = _read_and_prepare(job, side, extractors)  # type: ignore[arg-type]  # duck-typed catalog
        out.append((dataclasses.replace(done, job=None), io_stats.files_read, io_stats.bytes_read))
    return out


# -- the pool ---------------------------------------------------------------------------------------------------

_lock = threading.Lock()
_current: tuple[tuple, ProcessPoolExecutor] | None = None


def _pool_key() -> tuple:
    """What a worker inherited at its start: a pool is reused only while these are unchanged. Not the
    environment: workers are sent their extractors (:func:`_for_workers`) and read no configuration."""
    return cpu_count(), tuple(sys.path), WORKER_SETUP


def worker_pool() -> ProcessPoolExecutor:
    """The process's index worker pool (one worker per core, all spawned at once), started on first use."""
    global _current
    key = _pool_key()
    with _lock:
        if _current is None or _current[0] != key:
            old = _current
            n = key[0]
            ex = ProcessPoolExecutor(n, mp_context=get_context("spawn"), initializer=_worker_init,
                                     initargs=(WORKER_SETUP,))
            for _ in range(n):  # one task per worker: each process starts now, not on the first files
                ex.submit(_ready)
            _current = (key, ex)
            if old is not None:  # tasks already queued on it still finish
                old[1].shutdown(wait=False)
        return _current[1]


def worker_pids() -> list[int]:
    """Process ids of the current pool's workers (benchmarks add up their CPU time); empty without a pool."""
    with _lock:
        if _current is None:
            return []
        return list(getattr(_current[1], "_processes", None) or {})


def _drop(ex: ProcessPoolExecutor) -> None:
    """Forget a broken pool (the next :func:`worker_pool` starts a new one)."""
    global _current
    with _lock:
        if _current is not None and _current[1] is ex:
            _current = None
    ex.shutdown(wait=False, cancel_futures=True)


def shutdown_pool() -> None:
    """Stop the index worker pool now (a later run starts a new one). Called at exit."""
    global _current
    with _lock:
        pool, _current = _current, None
    if pool is not None:
        pool[1].shutdown(wait=True, cancel_futures=True)


atexit.register(shutdown_pool)


# -- the parent's side ------------------------------------------------------------------------------------------


def known_by_size(catalog: Catalog, jobs: Sequence, extractors: Sequence[Extractor]
                   ) -> dict[int, dict[str, list[str]]]:
    """size -> {content hash -> ids of the models that have its feature}, for the known pictures of the sizes
    of the files whose content is not known yet (one scan of the catalog's pictures, not two queries a file):
    lets a worker (a pool process or a Dask worker) tell a moved or copied file without asking the catalog."""
    from lookalike.index.pipeline import _nbytes

    by_size = catalog.hashes_of_size({j.size for j in jobs if j.need is None})
    hashes = [h for hs in by_size.values() for h in hs]
    models: dict[str, list[str]] = {h: [] for h in hashes}
    for e in extractors:
        for h in catalog.hashes_with_feature(hashes, e.id, e.version, _nbytes(e)):
            models[h].append(e.id)
    return {n: {h: models[h] for h in hs} for n, hs in by_size.items()}


def run_in_processes(jobs: Sequence, catalog: Catalog, extractors: Sequence[Extractor]) -> Iterator[tuple]:
    """(finished job, whether more follow), in submission order, like ``pipeline._run_in_pool``: the jobs are
    read, hashed, decoded and prepared in the worker pool, a bounded window ahead of the caller."""
    from lookalike.index.pipeline import _Done

    portable = [_for_workers(e) for e in extractors]
    by_size = known_by_size(catalog, jobs, extractors)

    def task(chunk: Sequence) -> tuple[list[tuple], dict[str, list[str]]]:
        fields = [(j.path, j.size, j.mtime_ns, j.status, j.inode, j.ctime_ns, j.content_hash,
                   None if j.need is None else [e.id for e in j.need]) for j in chunk]
        known: dict[str, list[str]] = {}
        for n in {j.size for j in chunk if j.need is None}:
            known.update(by_size.get(n, {}))
        return fields, known

    def submit(chunk: Sequence) -> tuple[Future, ProcessPoolExecutor]:
        fields, known = task(chunk)
        for _ in range(3):
            ex = worker_pool()
            try:
                return ex.submit(prepare_files, fields, portable, known), ex
            except (BrokenProcessPool, RuntimeError):  # broken, or replaced and shut down by another run
                _drop(ex)
        raise BrokenProcessPool("cannot start the index worker processes")

    def finished(job, result: tuple) -> _Done:
        done, files_read, bytes_read = result
        done.job = job
        if files_read:
            io_stats.add(bytes_read)  # the parent's count of file reads includes its workers'
        return done

    def alone(job) -> _Done:
        """A file that was in flight when a worker died, read again by itself."""
        for _ in range(2):
            fut, ex = submit([job])
            try:
                return finished(job, fut.result()[0])
            except BrokenProcessPool:
                _drop(ex)
        return _Done(job, error=CRASHED)

    n_workers = cpu_count()
    window = QUEUED_PER_WORKER * n_workers
    chunks = iter([list(jobs[i : i + TASK_FILES]) for i in range(0, len(jobs), TASK_FILES)])
    running: deque[tuple[Future, ProcessPoolExecutor, list]] = deque()
    left = len(jobs)
    try:
        while True:
            while len(running) < window:
                chunk = next(chunks, None)
                if chunk is None:
                    break
                running.append((*submit(chunk), chunk))
            if not running:
                break
            fut, ex, chunk = running.popleft()
            try:
                results = fut.result()
            except BrokenProcessPool:  # a worker died: the tasks still in flight are lost; read them again
                _drop(ex)
                for job in chunk:
                    left -= 1
                    yield alone(job), left > 0
                continue
            for job, result in zip(chunk, results, strict=True):
                left -= 1
                yield finished(job, result), left > 0
    finally:
        for fut, _, _ in running:
            fut.cancel()
