"""The public Python API. The CLI and the HTTP service are thin layers over it.

    >>> from lookalike import Collection
    >>> col = Collection("~/Pictures")                # nothing is read yet
    >>> col.index()                                    # incremental; returns an IndexReport
    >>> col.similar("query.jpg", k=5).to_json()        # indexes on the fly when needed
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image

from lookalike.catalog import Catalog
from lookalike.errors import DecodeError, UsageError
from lookalike.features import DEFAULT_MODEL, Extractor, load_extractor
from lookalike.index import IndexReport, Progress, features_of, index_paths
from lookalike.media import check_inputs, decode
from lookalike.options import check_k
from lookalike.search import make_searcher

ImageInput = str | Path | bytes | Image.Image


@dataclass
class Hit:
    path: str
    score: float


@dataclass
class SimilarResult:
    query: str
    model: str
    results: list[Hit] = field(default_factory=list)

    def to_json(self) -> dict:
        return {
            "query": self.query,
            "model": self.model,
            "results": [{"path": h.path, "score": h.score} for h in self.results],
        }


def open_catalog(catalog: Catalog | str | Path | None) -> Catalog:
    """A Catalog from a handle, a path, or None (the default catalog)."""
    return catalog if isinstance(catalog, Catalog) else Catalog(catalog)


def embed(image: ImageInput, model: str = DEFAULT_MODEL) -> np.ndarray:
    """Feature of one picture (a path, its bytes, or a PIL image), without touching any catalog."""
    ext = load_extractor(model)
    return ext.extract([_as_rgb(image, ext)])[0]


def _as_rgb(image: ImageInput, ext: Extractor) -> Image.Image:
    if isinstance(image, Image.Image):
        return image.convert("RGB")
    if isinstance(image, bytes | bytearray):
        return decode(bytes(image), min_side=ext.decode_min_side).image
    return decode(str(image), min_side=ext.decode_min_side).image


class Collection:
    """One or more folders of photos, seen through a catalog.

    ``paths``: folders (or single files). ``catalog``: a Catalog, a database path, or None for the
    default one under the user's cache folder. Nothing is read until a method needs it.
    """

    def __init__(
        self,
        *paths: str | Path,
        catalog: Catalog | str | Path | None = None,
        recursive: bool = True,
    ) -> None:
        if not paths:
            raise UsageError("a Collection needs at least one folder")
        self.paths = check_inputs(str(p) for p in paths)  # a misspelt path: UsageError, nothing read
        self.catalog = open_catalog(catalog)
        self.recursive = recursive
        self._last: dict[tuple[str, ...], IndexReport] = {}

    def index(self, models: Sequence[str] = (DEFAULT_MODEL,), progress: Progress | None = None) -> IndexReport:
        """Bring the catalog up to date for these folders (reads only new or changed files)."""
        report = index_paths(self.paths, self.catalog, models, recursive=self.recursive, progress=progress)
        self._last[tuple(models)] = report
        return report

    def features(self, model: str = DEFAULT_MODEL, progress: Progress | None = None) -> tuple[list[str], np.ndarray]:
        """(paths, matrix) of every good picture in the collection, indexing first as needed.

        Embeddings come as float16 rows (L2-normalised); hashes as uint64 words."""
        report = self.index([model], progress=progress)
        # A damaged stored feature is removed by the catalog, then computed again by one more indexing run.
        return features_of(self.catalog, report.paths, model, lambda: self.index([model]).paths)

    def feature_of(self, image: ImageInput, model: str = DEFAULT_MODEL) -> np.ndarray:
        """Feature of one picture: from the catalog when the file is known, else computed (and cached)."""
        ext = load_extractor(model)
        if isinstance(image, str | Path):
            path = os.path.abspath(os.path.expanduser(str(image)))
            if not os.path.exists(path):
                raise UsageError(f"no such image file: {path}")
            if os.path.isdir(path):
                raise UsageError(f"{path} is a folder, not an image file")
            # a FIFO or device: the walk reports "not a regular file" and it is never opened
            report = index_paths([path], self.catalog, [model])
            if report.failed:
                raise DecodeError(f"{path}: {report.failed[0].error}")
            _, mat = features_of(self.catalog, [path], model, lambda: index_paths([path], self.catalog, [model]).paths)
            if len(mat):
                return mat[0]
        return ext.extract([_as_rgb(image, ext)])[0]

    def similar(
        self,
        image: ImageInput,
        k: int = 5,
        model: str = DEFAULT_MODEL,
        progress: Progress | None = None,
    ) -> SimilarResult:
        """The k pictures of the collection most like ``image``, best first.

        Scores: cosine similarity for embeddings (higher is closer), Hamming distance in bits for
        hashes (lower is closer). The query file itself is left out when it lies in the collection."""
        k = check_k(k)  # before anything is indexed
        ext = load_extractor(model)
        query_vec = self.feature_of(image, model)
        paths, matrix = self.features(model, progress=progress)
        query_name = "<upload>"
        exclude = None
        if isinstance(image, str | Path):
            query_name = os.path.abspath(os.path.expanduser(str(image)))
            exclude = query_name
        searcher = make_searcher(ext.kind, matrix)
        res = searcher.query(query_vec[None, :], k + 1)
        hits = []
        for i, s in zip(res.indices[0], res.scores[0], strict=True):
            if i < 0 or paths[i] == exclude:
                continue
            hits.append(Hit(paths[i], float(round(float(s), 6))))
        return SimilarResult(query_name, model, hits[:k])

    def iter_feature_rows(self, model: str = DEFAULT_MODEL) -> Iterator[tuple[str, list]]:
        """(path, values) per picture, for export. Hashes are given as their 64 bits (0/1)."""
        paths, matrix = self.features(model)
        ext = load_extractor(model)
        for p, row in zip(paths, matrix, strict=True):
            if ext.kind == "hash":
                bits = np.unpackbits(row.astype(">u8").view(np.uint8))
                yield p, bits.tolist()
            else:
                yield p, [float(x) for x in np.asarray(row, dtype=np.float32)]
