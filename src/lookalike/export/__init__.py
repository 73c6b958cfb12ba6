"""``lookalike export features``: every picture's stored feature, for other tools.

:func:`export_features` indexes the folders and returns a :class:`FeatureExport` (a header and one row per
picture); :func:`feature_values` is the one conversion of a stored feature to plain numbers (hashes as their
bits, most significant first), used by the export and by ``POST /v1/embed``.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from lookalike.catalog import Catalog
from lookalike.features import DEFAULT_MODEL, load_extractor, registry
from lookalike.index import Progress, indexed_features
from lookalike.media import check_inputs


def feature_values(vec: np.ndarray, kind: str) -> list:
    """A feature as plain numbers: a hash (uint64 words) as its bits (0/1, bit0 the most significant), an
    embedding as floats."""
    if kind == "hash":
        return np.unpackbits(np.asarray(vec, dtype=">u8").view(np.uint8)).tolist()
    return [float(x) for x in np.asarray(vec, dtype=np.float32)]


def feature_header(model: str, width: int | None = None) -> list[str]:
    """The header row: ``path``, then one name per value (``v0, v1...`` for an embedding, ``bit0...`` for a
    hash); ``width`` values, by default the model's size."""
    spec = registry.get_spec(model)
    n = spec.dim if width is None else width
    return ["path", *(f"{'bit' if spec.kind == 'hash' else 'v'}{i}" for i in range(n))]


@dataclass
class FeatureExport:
    """The features of a set of pictures: :attr:`header`, then :meth:`rows` (path, values) in walk order.

    The matrix is kept as stored; rows are converted one at a time, so a large export streams."""

    model: str
    kind: str
    paths: list[str]
    matrix: np.ndarray

    @property
    def header(self) -> list[str]:
        if not self.paths:
            return feature_header(self.model)
        width = self.matrix.shape[1] * 64 if self.kind == "hash" else self.matrix.shape[1]
        return feature_header(self.model, width)

    def rows(self) -> Iterator[tuple[str, list]]:
        """(path, values) per picture."""
        for p, row in zip(self.paths, self.matrix, strict=True):
            yield p, feature_values(row, self.kind)

    def __len__(self) -> int:
        return len(self.paths)

    def to_json(self) -> dict:
        return {"model": self.model, "header": self.header, "rows": [[p, *v] for p, v in self.rows()]}


def export_features(
    folders: Iterable[str | Path],
    model: str = DEFAULT_MODEL,
    catalog: Catalog | str | Path | None = None,
    recursive: bool = True,
    progress: Progress | None = None,
) -> FeatureExport:
    """Every good picture under ``folders`` with its ``model`` feature, indexing first as needed."""
    roots = check_inputs(str(p) for p in folders)
    paths, matrix = indexed_features(roots, catalog, model, recursive=recursive, progress=progress)
    return FeatureExport(model, load_extractor(model).kind, paths, matrix)
