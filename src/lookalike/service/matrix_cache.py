"""Feature matrices kept in memory between requests, and ranking of one query against them.

The whole-catalog matrix (restricted to the served roots) is rebuilt only when the catalog's
generation changes (checked at most once a second); a folder's matrix comes from
``Collection.features`` (which indexes new files) and is reused for a few seconds.

Past :data:`lookalike.similar.INDEX_LIMIT` embedded pictures the catalog scope holds no matrix: it is
searched through the catalog's persisted index (synced when the generation changes, under the index's
file lock, so several workers and the CLI share one file), asking for more candidates than ``k`` so that
the roots' filter leaves enough; when too few survive, the scope's exact matrix is loaded once and used.

Both hold only files whose real location (symlinks resolved) lies under a root: the catalog may
know a path inside a root that is a symlink to a file elsewhere (indexed by an older version, by the
CLI, or through a link), and a search must not name it. Hits are checked again when they are
returned, in case a link was changed since the matrix was built."""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from lookalike import similar
from lookalike.catalog import Catalog
from lookalike.catalog.generation import generation
from lookalike.collection import Collection
from lookalike.features import load_extractor
from lookalike.search import Searcher, make_searcher
from lookalike.service.metrics import Metrics
from lookalike.service.security import inside_roots, paths_inside

FOLDER_TTL_S = 5.0
#: Embedding matrices up to this many values are kept as float32 (no conversion per query).
FLOAT32_MAX_VALUES = 256_000_000
GENERATION_CHECK_S = 1.0


@dataclass
class _Entry:
    paths: list[str]
    searcher: Searcher | None
    stamp: object
    checked: float
    roots: tuple[str, ...] = ()
    #: the persisted index serving this scope (then ``searcher`` is built only when the index falls short)
    indexed: similar.IndexedScope | None = None
    exact: Callable[[], tuple[list[str], Searcher | None]] | None = None
    fallbacks: int = 0  # queries the index could not answer (too few hits inside the roots)
    _exact_lock: threading.Lock = field(default_factory=threading.Lock)

    def allowed(self, path: str) -> bool:
        return inside_roots(path, list(self.roots))

    def exact_search(self) -> tuple[list[str], Searcher | None]:
        """(paths, searcher) for exact search, built once when first needed."""
        with self._exact_lock:
            if self.searcher is None and self.exact is not None:
                self.paths, self.searcher = self.exact()
                self.exact = None
            return self.paths, self.searcher


class MatrixCache:
    """(paths, searcher) per (scope, model), refreshed when the catalog changes."""

    def __init__(self, catalog: Catalog, roots: list[str], metrics: Metrics) -> None:
        self.catalog, self.roots, self.metrics = catalog, roots, metrics
        self._lock = threading.Lock()
        self._entries: dict[tuple, _Entry] = {}
        self._build_locks: dict[tuple, threading.Lock] = {}

    def _lock_for(self, key: tuple) -> threading.Lock:
        with self._lock:
            return self._build_locks.setdefault(key, threading.Lock())

    def catalog_scope(self, model: str) -> _Entry:
        """Every good catalog file under the roots (the whole catalog when no root is set)."""
        ext = load_extractor(model)
        key = ("catalog", model)
        now = time.monotonic()
        with self._lock:
            e = self._entries.get(key)
        if e is not None and now - e.checked < GENERATION_CHECK_S:
            self.metrics.inc("lookalike_cache_hits_total", cache="catalog_matrix")
            return e
        with self._lock_for(key):
            stamp = generation(self.catalog, ext.id, ext.version)
            with self._lock:
                e = self._entries.get(key)
            if e is not None and e.stamp == stamp:
                e.checked = time.monotonic()
                self.metrics.inc("lookalike_cache_hits_total", cache="catalog_matrix")
                return e
            self.metrics.inc("lookalike_cache_misses_total", cache="catalog_matrix")
            rows = []
            for root in self.roots or [os.sep]:
                rows.extend(self.catalog.files_under(root))
            paths = sorted({r.path for r in rows if r.status != "error" and r.content_hash})
            paths = paths_inside(paths, self.roots)

            def exact(paths: list[str] = paths) -> tuple[list[str], Searcher | None]:
                kept, matrix = self.catalog.feature_matrix(paths, ext.id, ext.version, ext.kind)
                return kept, _searcher(ext.kind, matrix) if kept else None

            scope = None
            if ext.kind != "hash" and len(paths) > similar.INDEX_LIMIT:
                index = similar.synced_index(self.catalog, model)
                if index is not None:
                    hash_of = {r.path: r.content_hash for r in rows}
                    scope = similar.IndexedScope(index, paths, [hash_of[p] for p in paths])
            if scope is not None:
                e = _Entry(paths, None, stamp, time.monotonic(), tuple(self.roots), indexed=scope, exact=exact)
            else:
                kept, searcher = exact()
                e = _Entry(kept, searcher, stamp, time.monotonic(), tuple(self.roots))
            with self._lock:
                self._entries[key] = e
            return e

    def folder_scope(self, folder: str, model: str) -> _Entry:
        """Every picture under a folder, indexed on the fly (reused for a few seconds)."""
        ext = load_extractor(model)
        key = ("folder", folder, model)
        with self._lock:
            e = self._entries.get(key)
        if e is not None and time.monotonic() - e.checked < FOLDER_TTL_S:
            self.metrics.inc("lookalike_cache_hits_total", cache="folder_matrix")
            return e
        with self._lock_for(key):
            with self._lock:
                e = self._entries.get(key)
            if e is not None and time.monotonic() - e.checked < FOLDER_TTL_S:
                return e
            self.metrics.inc("lookalike_cache_misses_total", cache="folder_matrix")
            paths, matrix = Collection(folder, catalog=self.catalog).features(model)
            inside = set(paths_inside(paths, self.roots))
            keep = [i for i, p in enumerate(paths) if p in inside]
            if len(keep) != len(paths):
                paths, matrix = [paths[i] for i in keep], matrix[keep]
            e = _Entry(paths, _searcher(ext.kind, matrix) if paths else None, None, time.monotonic(),
                       tuple(self.roots))
            with self._lock:
                self._entries[key] = e
            return e


def _searcher(kind: str, matrix: np.ndarray) -> Searcher:
    """A searcher over a matrix kept in memory: float16 embeddings are widened once, not per query."""
    if kind != "hash" and matrix.dtype != np.float32 and matrix.size <= FLOAT32_MAX_VALUES:
        matrix = matrix.astype(np.float32)
    return make_searcher(kind, matrix)


def rank(entry: _Entry, query_vec: np.ndarray, k: int, model: str, query: str,
         exclude: str | None = None) -> similar.SimilarResult:
    """The k best matches of one feature vector, as ``lookalike similar --json`` prints them (through the
    persisted index when the entry has one and it finds enough; else exactly)."""
    if entry.indexed is not None:
        found = entry.indexed.rank(query_vec, k, model, query, exclude=exclude, allowed=entry.allowed)
        if found is not None:
            return found
        entry.fallbacks += 1
    paths, searcher = entry.exact_search()
    return similar.rank(searcher, paths, query_vec, k, model, query, exclude=exclude, allowed=entry.allowed)
