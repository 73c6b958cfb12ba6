"""``lookalike similar``: the pictures most like a query picture.

:func:`find_similar` indexes the folders (only new or changed files are read) and returns a
:class:`SimilarResult`; :func:`rank` is the one ranking loop (the service's matrix cache calls it too, with
its own searcher and filter); :func:`embed` gives one picture's feature without any catalog.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image

from lookalike.catalog import Catalog, open_catalog
from lookalike.errors import DecodeError, UsageError
from lookalike.features import DEFAULT_MODEL, Extractor, load_extractor
from lookalike.index import Progress, features_of, index_paths, indexed_features
from lookalike.media import check_inputs, decode
from lookalike.options import check_k
from lookalike.search import Searcher, make_searcher

#: A picture given to the library: a path, its bytes, or a PIL image.
ImageSource = str | Path | bytes | Image.Image

#: The query's name in a result when it is not a file (bytes, a PIL image).
UPLOAD_NAME = "<upload>"


@dataclass
class Hit:
    path: str
    score: float


@dataclass
class SimilarResult:
    """The best matches of one query, best first (``lookalike similar --json``, ``POST /v1/similar``)."""

    query: str
    model: str
    results: list[Hit] = field(default_factory=list)

    def to_json(self) -> dict:
        return {
            "query": self.query,
            "model": self.model,
            "results": [{"path": h.path, "score": h.score} for h in self.results],
        }


def find_similar(
    query: ImageSource,
    folders: Iterable[str | Path],
    k: int = 5,
    model: str = DEFAULT_MODEL,
    catalog: Catalog | str | Path | None = None,
    recursive: bool = True,
    progress: Progress | None = None,
) -> SimilarResult:
    """The k pictures under ``folders`` most like ``query``, best first, indexing them as needed.

    Scores: cosine similarity for embeddings (higher is closer), Hamming distance in bits for hashes (lower
    is closer). The query file itself is left out when it lies in the folders. A misspelt folder or a bad
    ``k`` is a UsageError before anything is read."""
    roots = check_inputs(str(p) for p in folders)
    k = check_k(k)
    cat = open_catalog(catalog)
    query_vec = query_feature(query, cat, model)
    paths, matrix = indexed_features(roots, cat, model, recursive=recursive, progress=progress)
    name, exclude = UPLOAD_NAME, None
    if isinstance(query, str | Path):
        name = exclude = os.path.abspath(os.path.expanduser(str(query)))
    searcher = make_searcher(load_extractor(model).kind, matrix)
    return rank(searcher, paths, query_vec, k, model, name, exclude=exclude)


def rank(
    searcher: Searcher | None,
    paths: Sequence[str],
    query_vec: np.ndarray,
    k: int,
    model: str,
    query: str,
    exclude: str | None = None,
    allowed: Callable[[str], bool] | None = None,
) -> SimilarResult:
    """The k best rows of ``searcher`` (row i is ``paths[i]``) for one feature vector, as a SimilarResult.

    ``exclude``: a path left out (the query itself); ``allowed``: a filter a hit must pass (the service's
    roots). One row more than ``k`` is asked for, so that the query itself can be dropped."""
    hits: list[Hit] = []
    if searcher is not None:
        res = searcher.query(np.asarray(query_vec)[None, :], k + 1)
        for i, s in zip(res.indices[0], res.scores[0], strict=True):
            if i < 0 or paths[i] == exclude or (allowed is not None and not allowed(paths[i])):
                continue
            hits.append(Hit(paths[i], float(round(float(s), 6))))
    return SimilarResult(query, model, hits[:k])


def query_feature(image: ImageSource, catalog: Catalog | str | Path | None, model: str = DEFAULT_MODEL) -> np.ndarray:
    """Feature of one picture: from the catalog when it is a file (indexed first if new or changed), else
    computed from the bytes or the PIL image."""
    if isinstance(image, str | Path):
        cat = open_catalog(catalog)
        path = os.path.abspath(os.path.expanduser(str(image)))
        if not os.path.exists(path):
            raise UsageError(f"no such image file: {path}")
        if os.path.isdir(path):
            raise UsageError(f"{path} is a folder, not an image file")
        # a FIFO or device: the walk reports "not a regular file" and it is never opened
        report = index_paths([path], cat, [model])
        if report.failed:
            raise DecodeError(f"{path}: {report.failed[0].error}")
        _, mat = features_of(cat, [path], model, lambda: index_paths([path], cat, [model]).paths)
        if len(mat):
            return mat[0]
    return embed(image, model)


def embed(image: ImageSource, model: str = DEFAULT_MODEL) -> np.ndarray:
    """Feature of one picture (a path, its bytes, or a PIL image), without touching any catalog."""
    ext = load_extractor(model)
    return ext.extract([_as_rgb(image, ext)])[0]


def _as_rgb(image: ImageSource, ext: Extractor) -> Image.Image:
    if isinstance(image, Image.Image):
        return image.convert("RGB")
    if isinstance(image, bytes | bytearray):
        return decode(bytes(image), min_side=ext.decode_min_side).image
    return decode(str(image), min_side=ext.decode_min_side).image
