"""Feature matrices kept in memory between requests, and ranking of one query against them.

The whole-catalog matrix (restricted to the served roots) is rebuilt only when the catalog's
generation changes (checked at most once a second); a folder's matrix comes from
``Collection.features`` (which indexes new files) and is reused for a few seconds.

Both hold only files whose real location (symlinks resolved) lies under a root: the catalog may
know a path inside a root that is a symlink to a file elsewhere (indexed by an older version, by the
CLI, or through a link), and a search must not name it. Hits are checked again when they are
returned, in case a link was changed since the matrix was built."""

from __future__ import annotations

import os
import threading
import time
from dataclasses import dataclass

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

    def allowed(self, path: str) -> bool:
        return inside_roots(path, list(self.roots))


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
            kept, matrix = self.catalog.feature_matrix(paths, ext.id, ext.version, ext.kind)
            e = _Entry(kept, _searcher(ext.kind, matrix) if kept else None, stamp, time.monotonic(),
                       tuple(self.roots))
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
    """The k best matches of one feature vector, as ``lookalike similar --json`` prints them."""
    return similar.rank(entry.searcher, entry.paths, query_vec, k, model, query, exclude=exclude,
                        allowed=entry.allowed)
