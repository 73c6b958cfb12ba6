"""Choosing a searcher by size: exact below :data:`EXACT_LIMIT` rows, approximate above it.

The limit is measured (bench/scale.py, docs/BENCHMARKS.md "Scale (issue 11)"): on 1280-d float16
rows the exact all-pairs graph and the inverted file cost the same at about this size; below it exact
search is cheaper and has no recall to lose.
"""

from __future__ import annotations

import numpy as np

from lookalike.search.base import Searcher
from lookalike.search.exact import ExactCosineSearcher, HammingSearcher

#: rows up to which exact cosine search is used (measured, see the module docstring)
EXACT_LIMIT = 20000


def make_searcher(kind: str, data: np.ndarray, exact: bool | None = None,
                  exact_limit: int = EXACT_LIMIT) -> Searcher:
    """The searcher for a feature kind and size.

    ``"hash"``: exact Hamming at every size (see lookalike.search.exact for why). Embeddings: exact when
    ``exact`` is True or the rows are at most ``exact_limit``; the inverted file when ``exact`` is False
    or the rows are more (its cells are learnt only when a search needs them)."""
    if kind == "hash":
        return HammingSearcher(data)
    if exact is None:
        exact = len(data) <= exact_limit
    if exact:
        return ExactCosineSearcher(data)
    from lookalike.search.ivf import InvertedFileSearcher

    return InvertedFileSearcher(data)
