"""A Collection: folders of photos seen through a catalog, the object-style face of the library.

    >>> from lookalike import Collection
    >>> col = Collection("~/Pictures")                # nothing is read yet
    >>> col.index()                                    # incremental; returns an IndexReport
    >>> col.similar("query.jpg", k=5).to_json()        # indexes on the fly when needed

Each method is one call of a command's function (:func:`~lookalike.index.index_paths`,
:func:`~lookalike.similar.find_similar`, :func:`~lookalike.export.export_features`) on these folders.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from lookalike.catalog import Catalog, open_catalog
from lookalike.errors import UsageError
from lookalike.export import FeatureExport, export_features
from lookalike.features import DEFAULT_MODEL
from lookalike.index import IndexReport, Progress, index_paths, indexed_features
from lookalike.media import check_inputs
from lookalike.similar import ImageSource, SimilarResult, find_similar, query_feature


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

    def index(self, models: Sequence[str] = (DEFAULT_MODEL,), progress: Progress | None = None) -> IndexReport:
        """Bring the catalog up to date for these folders (reads only new or changed files)."""
        return index_paths(self.paths, self.catalog, models, recursive=self.recursive, progress=progress)

    def features(self, model: str = DEFAULT_MODEL, progress: Progress | None = None,
                 cluster: str | int | None = None) -> tuple[list[str], np.ndarray]:
        """(paths, matrix) of every good picture in the collection, indexing first as needed (on the Dask
        ``cluster`` when one is given: a scheduler address or a number of local workers).

        Embeddings come as float16 rows (L2-normalised); hashes as uint64 words."""
        return indexed_features(self.paths, self.catalog, model, recursive=self.recursive, progress=progress,
                                cluster=cluster)

    def feature_of(self, image: ImageSource, model: str = DEFAULT_MODEL) -> np.ndarray:
        """Feature of one picture: from the catalog when the file is known, else computed (and cached)."""
        return query_feature(image, self.catalog, model)

    def similar(
        self,
        image: ImageSource,
        k: int = 5,
        model: str = DEFAULT_MODEL,
        progress: Progress | None = None,
    ) -> SimilarResult:
        """The k pictures of the collection most like ``image``, best first (see :func:`find_similar`)."""
        return find_similar(image, self.paths, k, model, self.catalog, recursive=self.recursive, progress=progress)

    def export(self, model: str = DEFAULT_MODEL, progress: Progress | None = None) -> FeatureExport:
        """Every picture's ``model`` feature, for other tools (see :func:`export_features`)."""
        return export_features(self.paths, model, self.catalog, recursive=self.recursive, progress=progress)
