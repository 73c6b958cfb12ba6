"""Choosing a searcher by size: exact below :data:`EXACT_LIMIT` rows, approximate above it.

The limit is measured (``bench/scale.py --threshold``, docs/BENCHMARKS.md "Scale (issue 11)"): the
all-pairs k-NN graph of 1280-d float16 rows on 2 shared cores (load 6-9) took, exact / inverted file,
10k 3.8 s / 3.6 s, 20k 34 s / 16 s, 40k 113 s / 16 s (exact grows as N^2, the inverted file about
N^1.5). They cost the same at about 10k; below it exact search is as cheap and has no recall to lose.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from lookalike.search.base import Searcher
from lookalike.search.exact import ExactCosineSearcher, HammingSearcher

#: rows up to which exact cosine search is used (measured, see the module docstring)
EXACT_LIMIT = 10_000


def make_searcher(kind: str, data: np.ndarray, exact: bool | None = None,
                  exact_limit: int = EXACT_LIMIT, cluster: str | int | Any | None = None) -> Searcher:
    """The searcher for a feature kind and size.

    ``"hash"``: exact Hamming at every size (see lookalike.search.exact for why). Embeddings: exact when
    ``exact`` is True or the rows are at most ``exact_limit``; the inverted file when ``exact`` is False
    or the rows are more (its cells are learnt only when a search needs them). ``cluster`` (a Dask scheduler
    address or a number of local workers): the all-pairs graph of an embedding searcher is computed there
    (:mod:`lookalike.search.distributed`: the same graph, split by cell or by rows)."""
    if kind == "hash":
        return HammingSearcher(data)
    if exact is None:
        exact = len(data) <= exact_limit
    if cluster is not None:
        from lookalike.search.distributed import DaskGraphSearcher

        return DaskGraphSearcher(data, cluster, exact=exact)
    if exact:
        return ExactCosineSearcher(data)
    from lookalike.search.ivf import InvertedFileSearcher

    return InvertedFileSearcher(data)
