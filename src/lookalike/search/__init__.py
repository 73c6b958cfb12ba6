"""One nearest-neighbour layer (issue 11): exact and approximate searchers, graphs, a persisted index.

* :func:`make_searcher` (``query(vectors, k)``, ``knn_graph(k)``): exact below ``EXACT_LIMIT`` rows
  (the reference), the inverted file above it (all-pairs graphs of ``dupes``, ``sort``, ``cluster``);
* :func:`knn_graph` / :class:`KnnGraph`: the all-pairs graph on a 0..1 distance scale (organise);
* :func:`open_index` / :class:`VectorIndex` / :func:`sync_index`: the faiss index beside the catalog that
  serves single catalog-wide queries and is updated by id as files are added, changed and removed;
* :mod:`lookalike.search.distributed`: the all-pairs graph on a Dask cluster, split by cell (``cluster=`` of
  :func:`make_searcher` and :func:`knn_graph`; imported only then).

Submodules import lazily where they are heavy (faiss loads only with an index).
"""

from __future__ import annotations

from lookalike.search.base import Progress, Searcher, SearchResult
from lookalike.search.exact import ExactCosineSearcher, HammingSearcher, hamming_distances
from lookalike.search.graph import KnnGraph, exact_knn, ivf_knn, knn_graph
from lookalike.search.index import (
    FLAT_LIMIT,
    SyncReport,
    VectorIndex,
    catalog_index,
    hash_id,
    hash_ids,
    index_path,
    open_index,
    sync_index,
)
from lookalike.search.ivf import InvertedFileSearcher
from lookalike.search.select import EXACT_LIMIT, make_searcher

__all__ = [
    "EXACT_LIMIT",
    "FLAT_LIMIT",
    "ExactCosineSearcher",
    "HammingSearcher",
    "InvertedFileSearcher",
    "KnnGraph",
    "Progress",
    "SearchResult",
    "Searcher",
    "SyncReport",
    "VectorIndex",
    "catalog_index",
    "exact_knn",
    "hamming_distances",
    "hash_id",
    "hash_ids",
    "index_path",
    "ivf_knn",
    "knn_graph",
    "make_searcher",
    "open_index",
    "sync_index",
]
