"""``lookalike index``: bring the catalog up to date for folders of pictures.

:func:`index_paths` is the one indexing path (every command that needs features calls it) and returns an
:class:`IndexReport`; :func:`features_of` reads the features back (:func:`indexed_features`: index, then
read); :func:`file_sha256` is the catalog's content key, :func:`content_hashes` the fast path for readers
that need only the hashes (face scans). :func:`index_on_cluster` (``index_paths(..., cluster=...)``) runs the
reading, decoding and embedding on a Dask cluster and returns a :class:`DaskIndexReport`.
"""

from lookalike.index.distributed import ClusterError, DaskIndexReport, index_on_cluster
from lookalike.index.fastpath import content_hashes, file_sha256
from lookalike.index.pipeline import features_of, index_paths, indexed_features
from lookalike.index.report import IndexFailure, IndexReport, Progress

__all__ = [
    "ClusterError",
    "DaskIndexReport",
    "IndexFailure",
    "IndexReport",
    "Progress",
    "content_hashes",
    "features_of",
    "file_sha256",
    "index_on_cluster",
    "index_paths",
    "indexed_features",
]
