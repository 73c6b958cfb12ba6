"""A persisted nearest-neighbour index for single queries against a whole catalog (faiss-cpu).

``open_index(path, kind, dim)`` opens (or starts) the index kept in one file beside the catalog;
``add(ids, vectors)`` / ``remove(ids)`` update it in place, ``query(vectors, k)`` answers with ids, and
``save()`` writes it atomically. Ids are int64; :func:`hash_id` makes one from a content hash, so
``sync_index(index, hashes, load)`` can bring the index in line with the catalog after indexing (add what
is new, drop what is gone, rebuild when the size calls for another layout).

Layouts, chosen by size (measured, docs/BENCHMARKS.md "Scale (issue 11)"):

* embeddings up to :data:`FLAT_LIMIT` vectors: exact search over float16 codes (faiss ``IndexScalarQuantizer``
  fp16 under an id map): the catalog's own precision, no training;
* above it: an inverted file over float16 codes (faiss ``IndexIVFScalarQuantizer``, about 2 sqrt(N) lists,
  ``nprobe`` :data:`NPROBE`): 2.5 KB per 1280-d vector, about a millisecond a query. 8-bit codes would
  halve that but lose recall to the quantisation (100k clustered vectors: recall@10 0.989 at any nprobe,
  float16 1.000 from nprobe 16);
* hashes (uint64 words): exact Hamming (faiss ``IndexBinaryFlat`` under an id map) at every size: a
  million 64-bit codes are 8 MB and one scan takes milliseconds.

The file is derived data: one that is missing, unreadable or of another kind or dimension opens as an
empty index (``reset_reason`` says why) and ``sync_index`` fills it again from the catalog.
"""

from __future__ import annotations

import contextlib
import json
import os
import struct
import tempfile
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from lookalike.search.base import SearchResult, unit_block

FORMAT = 1
MAGIC = b"LKINDEX\x01"
#: embeddings up to this many vectors: exact fp16 index (measured: about 0.25 us a vector on one
#: thread, so a query stays under 5 ms; the inverted file answers in under 1 ms from 10k up)
FLAT_LIMIT = 20_000
#: query batches up to this size run on one thread: on a busy machine OpenMP's thread start-up costs
#: more than it saves (10k vectors, load 9: 2.5 ms a query on one thread, 14 ms on two)
SINGLE_THREAD_QUERIES = 64
#: inverted lists probed per query (measured at 100k: recall@10 1.000 from 16 on; 32 leaves a margin
#: for larger collections, whose lists are smaller parts of the whole)
NPROBE = 32
#: an inverted file trained on n vectors is rebuilt once it holds more than this many times n
REBUILD_GROWTH = 4.0
SAMPLE_PER_LIST = 40


def _faiss():
    import faiss  # loads in ~0.2 s and starts OpenMP: only when an index is used

    return faiss


def hash_id(content_hash: str) -> int:
    """A non-negative int64 id from a hex content hash (its first 63 bits)."""
    return int(content_hash[:16], 16) >> 1


def hash_ids(hashes: Iterable[str]) -> np.ndarray:
    """:func:`hash_id` of each content hash, as an int64 array."""
    return np.fromiter((hash_id(h) for h in hashes), dtype=np.int64)


def index_path(catalog_path: str | Path, model: str, version: str) -> Path:
    """Where the index of one model's features lives: beside the catalog file."""
    p = Path(catalog_path)
    safe = "".join(c if c.isalnum() or c in "-_." else "_" for c in f"{model}-{version}")
    return p.with_name(f"{p.name}.{safe}.index")


def lists_for(n: int) -> int:
    """Inverted lists for n vectors: about 2 sqrt(n)."""
    return int(max(16, min(65536, round(2 * np.sqrt(max(n, 1))))))


@dataclass
class SyncReport:
    """What :func:`sync_index` did."""

    added: int
    removed: int
    rebuilt: bool
    total: int


class VectorIndex:
    """One kind of feature, by id: add / remove / query / save. Not thread-safe: one writer at a time."""

    def __init__(self, path: str | Path | None, kind: str, dim: int) -> None:
        if kind == "hash" and dim % 64:
            raise ValueError("hash indexes take uint64 words: dim must be a multiple of 64 bits")
        if dim <= 0:
            raise ValueError("dim must be positive")
        self.path = None if path is None else Path(path)
        self.kind, self.dim = kind, int(dim)
        self.reset_reason = ""
        self.trained_on = 0  # vectors the inverted file was trained on (0: flat)
        self._ids = np.zeros(0, dtype=np.int64)  # sorted
        self._index = self._new_flat()

    # -- layouts ------------------------------------------------------------------------------------
    def _new_flat(self):
        faiss = _faiss()
        if self.kind == "hash":
            return faiss.IndexBinaryIDMap2(faiss.IndexBinaryFlat(self.dim))
        sq = faiss.IndexScalarQuantizer(self.dim, faiss.ScalarQuantizer.QT_fp16, faiss.METRIC_INNER_PRODUCT)
        return faiss.IndexIDMap2(sq)

    def _new_ivf(self, sample: np.ndarray, n: int):
        faiss = _faiss()
        lists = min(lists_for(n), max(1, len(sample) // 8))
        quantiser = faiss.IndexFlatIP(self.dim)
        ivf = faiss.IndexIVFScalarQuantizer(quantiser, self.dim, lists, faiss.ScalarQuantizer.QT_fp16,
                                            faiss.METRIC_INNER_PRODUCT)
        ivf.cp.min_points_per_centroid = 1  # no warnings for small samples: the sample size is ours
        ivf.train(sample)
        ivf.nprobe = min(NPROBE, lists)
        ivf.__dict__["quantiser"] = quantiser  # keep the Python object alive with the index
        return ivf

    @property
    def layout(self) -> str:
        """"flat" (exact) or "ivf" (inverted file)."""
        return "ivf" if self.trained_on else "flat"

    def layout_for(self, n: int) -> str:
        """The layout an index of n vectors should have."""
        return "ivf" if self.kind != "hash" and n > FLAT_LIMIT else "flat"

    @property
    def wants_rebuild(self) -> bool:
        """True when the size calls for another layout (or a retrained inverted file)."""
        return self.rebuild_for(len(self))

    def rebuild_for(self, n: int) -> bool:
        """Whether an index of n vectors should be rebuilt: another layout is due (with some slack around
        FLAT_LIMIT, so sizes near it do not flip-flop; an empty index always takes the right one), or the
        inverted file has grown past REBUILD_GROWTH times what it was trained on."""
        if self.layout_for(n) != self.layout:
            return len(self) == 0 or n > FLAT_LIMIT * 1.25 or n < FLAT_LIMIT // 2
        return self.layout == "ivf" and n > REBUILD_GROWTH * self.trained_on

    # -- updates ------------------------------------------------------------------------------------
    def __len__(self) -> int:
        return len(self._ids)

    def ids(self) -> np.ndarray:
        """The ids held, sorted (a copy)."""
        return self._ids.copy()

    def _prepare(self, vectors: np.ndarray) -> np.ndarray:
        if self.kind == "hash":
            words = np.ascontiguousarray(vectors, dtype=np.uint64).reshape(-1, self.dim // 64)
            return words.view(np.uint8)
        v = np.atleast_2d(vectors)
        if v.shape[1] != self.dim:
            raise ValueError(f"vectors have {v.shape[1]} dimensions, the index {self.dim}")
        return np.ascontiguousarray(unit_block(v))

    def add(self, ids: Sequence[int] | np.ndarray, vectors: np.ndarray, batch: int = 16384) -> None:
        """Add (or replace) vectors by id: ``vectors`` float16/float32 rows, or uint64 words for hashes."""
        ids = np.asarray(ids, dtype=np.int64).ravel()
        if len(ids) != len(vectors):
            raise ValueError("one id per vector")
        if len(np.unique(ids)) != len(ids):
            raise ValueError("ids repeat")
        if (ids < 0).any():
            raise ValueError("ids must be non-negative")
        self.remove(ids)
        for s in range(0, len(ids), batch):
            self._index.add_with_ids(self._prepare(vectors[s : s + batch]), ids[s : s + batch])
        self._ids = np.union1d(self._ids, ids)

    def remove(self, ids: Sequence[int] | np.ndarray) -> int:
        """Drop vectors by id (ids not held are ignored); returns how many were dropped."""
        ids = np.intersect1d(np.asarray(ids, dtype=np.int64).ravel(), self._ids)
        if len(ids) == 0:
            return 0
        got = int(self._index.remove_ids(ids))
        self._ids = np.setdiff1d(self._ids, ids, assume_unique=True)
        return got

    def rebuild(self, ids: np.ndarray, load: Callable[[np.ndarray], np.ndarray], batch: int = 16384,
                seed: int = 0) -> None:
        """Start again with the layout for ``len(ids)`` vectors, streaming them from ``load(ids_part)``
        (memory: one batch and the training sample, never the whole set in float32)."""
        ids = np.unique(np.asarray(ids, dtype=np.int64))
        self._ids = np.zeros(0, dtype=np.int64)
        self.trained_on = 0
        if self.layout_for(len(ids)) == "ivf":
            rng = np.random.default_rng(seed)
            take = np.sort(rng.choice(len(ids), min(len(ids), SAMPLE_PER_LIST * lists_for(len(ids))),
                                      replace=False))
            sample = self._prepare(load(ids[take]))
            self._index = self._new_ivf(sample, len(ids))
            del sample
            self.trained_on = len(ids)
        else:
            self._index = self._new_flat()
        for s in range(0, len(ids), batch):
            part = ids[s : s + batch]
            self._index.add_with_ids(self._prepare(load(part)), part)
        self._ids = ids

    # -- search -------------------------------------------------------------------------------------
    def query(self, vectors: np.ndarray, k: int) -> SearchResult:
        """The k nearest held vectors of each query row: ids (-1 when fewer are held) and scores
        (cosine for embeddings, Hamming bits for hashes), best first."""
        q = self._prepare(vectors)
        if len(self) == 0 or k <= 0:
            return SearchResult(np.full((len(q), max(k, 0)), -1, np.int64),
                                np.full((len(q), max(k, 0)), np.nan, np.float32))
        if len(q) <= SINGLE_THREAD_QUERIES:
            faiss = _faiss()
            threads = faiss.omp_get_max_threads()
            faiss.omp_set_num_threads(1)  # OpenMP: this setting is the calling thread's own
            try:
                dist, ids = self._index.search(q, k)
            finally:
                faiss.omp_set_num_threads(threads)
        else:
            dist, ids = self._index.search(q, k)
        ids = np.asarray(ids, dtype=np.int64)
        scores = np.where(ids < 0, np.nan, dist).astype(np.float32)
        return SearchResult(ids, scores)

    # -- file ---------------------------------------------------------------------------------------
    def save(self, path: str | Path | None = None) -> Path:
        """Write the index to its file atomically (a temporary file in the same folder, then a rename).
        The faiss part is streamed to the file: no second copy of the index in memory."""
        faiss = _faiss()
        target = Path(path) if path is not None else self.path
        if target is None:
            raise ValueError("no path to save the index to")
        meta = json.dumps({"format": FORMAT, "kind": self.kind, "dim": self.dim, "trained_on": self.trained_on,
                           "count": len(self._ids)}).encode()
        fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
        try:
            with os.fdopen(fd, "wb") as fh:
                fh.write(MAGIC + struct.pack("<I", len(meta)) + meta)
                fh.write(self._ids.astype("<i8").tobytes())
                writer = faiss.PyCallbackIOWriter(fh.write)
                if self.kind == "hash":
                    faiss.write_index_binary(self._index, writer)
                else:
                    faiss.write_index(self._index, writer)
                del writer
                fh.flush()
                os.fsync(fh.fileno())
            os.replace(tmp, target)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            raise
        self.path = target
        return target

    def _load(self, path: Path) -> None:
        faiss = _faiss()
        with path.open("rb") as fh:
            head = fh.read(len(MAGIC) + 4)
            if len(head) != len(MAGIC) + 4 or head[: len(MAGIC)] != MAGIC:
                raise ValueError("not a lookalike index file")
            (size,) = struct.unpack("<I", head[len(MAGIC) :])
            if size > 1 << 20:
                raise ValueError("damaged header")
            meta = json.loads(fh.read(size).decode())
            if meta.get("format") != FORMAT or meta.get("kind") != self.kind or int(meta.get("dim", -1)) != self.dim:
                self.reset_reason = f"{path} holds another index ({meta}); starting empty"
                return
            count = int(meta["count"])
            ids = np.fromfile(fh, dtype="<i8", count=count).astype(np.int64)
            if len(ids) != count:
                raise ValueError("truncated")
            reader = faiss.PyCallbackIOReader(fh.read)
            index = faiss.read_index_binary(reader) if self.kind == "hash" else faiss.read_index(reader)
            del reader
        if int(index.ntotal) != len(ids) or int(index.d) != self.dim or (len(ids) and (np.diff(ids) <= 0).any()):
            self.reset_reason = f"{path}: ids and index disagree; starting empty"
            return
        self._index, self._ids, self.trained_on = index, ids, int(meta.get("trained_on", 0))


def open_index(path: str | Path, kind: str, dim: int) -> VectorIndex:
    """The index kept at ``path`` (``kind``: "hash" for uint64 words of ``dim`` bits, else embeddings of
    ``dim`` dimensions); an empty one when the file is missing, unreadable or holds another index."""
    index = VectorIndex(path, kind, dim)
    p = Path(path)
    if p.exists() and not p.is_file():  # a folder, a FIFO (reading it would block), a device
        index.reset_reason = f"{p} is not a regular file; starting empty"
    elif p.exists():
        try:
            index._load(p)
        except (OSError, ValueError, KeyError, RuntimeError) as exc:  # faiss raises RuntimeError
            index.reset_reason = f"{p} could not be read ({exc}); starting empty"
    return index


def sync_index(index: VectorIndex, hashes: Sequence[str], load: Callable[[Sequence[str]], np.ndarray],
               batch: int = 16384, save: bool = True) -> SyncReport:
    """Bring ``index`` in line with a catalog: it should hold exactly the content ``hashes`` given.

    ``load(hashes)`` returns their features in that order (float16 rows or uint64 words, as the catalog
    stores them); it is called in batches, so memory stays at one batch. New hashes are added, missing
    ones removed, and the whole index is rebuilt when its size calls for another layout. Saved when
    something changed (and ``save``). Two hashes with the same 63-bit prefix: the first one is kept."""
    want_ids, first = np.unique(hash_ids(hashes), return_index=True)
    by_id = dict(zip(want_ids.tolist(), (hashes[i] for i in first.tolist()), strict=True))

    def load_ids(ids: np.ndarray) -> np.ndarray:
        return load([by_id[i] for i in ids.tolist()])

    have = index.ids()
    gone = np.setdiff1d(have, want_ids, assume_unique=True)
    new = np.setdiff1d(want_ids, have, assume_unique=True)
    rebuild = index.rebuild_for(len(want_ids))
    if rebuild:
        index.rebuild(want_ids, load_ids, batch)
        report = SyncReport(len(new), len(gone), True, len(index))
    else:
        index.remove(gone)
        for s in range(0, len(new), batch):
            part = new[s : s + batch]
            index.add(part, load_ids(part))
        report = SyncReport(len(new), len(gone), False, len(index))
    if save and index.path is not None and (rebuild or len(new) or len(gone) or not index.path.exists()):
        index.save()
    return report


def catalog_index(catalog, model: str, version: str, kind: str, dim: int,
                  hashes: Sequence[str], lock: bool = True) -> tuple[VectorIndex, SyncReport]:
    """The persisted index of one model's features beside ``catalog`` (a lookalike Catalog), in line with
    the content ``hashes`` of the pictures a search should cover (those without a sound stored feature
    are left out). The entry point for catalog-wide ``similar`` and the service: open it once, then
    ``index.query(vectors, k)``; map ids back with ``{hash_id(h): h for h in hashes}``.

    ``dim``: dimensions of an embedding, or bits of a hash (uint64 words x 64). ``lock``: take
    :func:`index_lock` around the sync (False: the caller holds it already)."""
    from lookalike.catalog import decode_features, feature_nbytes

    wanted = sorted(catalog.hashes_with_feature(set(hashes), model, version, feature_nbytes(kind, dim)))

    def load(part: Sequence[str]) -> np.ndarray:
        blobs = catalog.features_for_hashes(list(part), model, version)
        rows = decode_features([blobs[h] for h in part], kind)
        bad = ~np.isfinite(rows).all(axis=1) if kind != "hash" else None
        if bad is not None and bad.any():  # a damaged (NaN/inf) row would upset the cells: zeros, never a hit
            rows = rows.copy()
            rows[bad] = 0
        return rows

    path = index_path(catalog.path, model, version)
    with index_lock(path) if lock else contextlib.nullcontext():  # read, sync, save: one writer at a time
        index = open_index(path, kind, dim)
        return index, sync_index(index, wanted, load)


@contextlib.contextmanager
def index_lock(path: str | Path) -> Iterator[None]:
    """An exclusive flock on ``<index file>.lock`` (beside it), held while an index is synced and saved, so
    two service workers, or the CLI and the service, never interleave their updates (the file itself is
    always replaced atomically, so readers without the lock see the old or the new index, never a mix).
    Without fcntl (Windows) only the atomic replace remains."""
    try:
        import fcntl
    except ImportError:  # pragma: no cover - Windows
        yield
        return
    lock = Path(path).with_name(Path(path).name + ".lock")
    fd = os.open(lock, os.O_RDWR | os.O_CREAT | getattr(os, "O_NOFOLLOW", 0), 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # closing the descriptor releases the lock
