"""Moved: indexing is :mod:`lookalike.index` (``index_paths``). Only ``Progress`` is left here, for
organise/knn.py (owned by another engineer during issue 14); delete this module once it imports
``lookalike.index.Progress``."""

from lookalike.index.report import Progress

__all__ = ["Progress"]
