"""``lookalike similar``: the pictures most like a query picture.

:func:`find_similar` indexes the folders (only new or changed files are read) and returns a
:class:`SimilarResult`; :func:`rank` is the one ranking loop (the service's matrix cache calls it too, with
its own searcher and filter); :func:`embed` gives one picture's feature without any catalog.

Scopes of more than :data:`INDEX_LIMIT` embedded pictures are searched through the catalog's persisted
index (:func:`lookalike.search.catalog_index`, one file beside the catalog, synced with it before use):
:class:`IndexedScope` maps its hits back to the scope's paths and falls back to exact search when too few
survive the scope's filters. Smaller scopes, and hashes at every size, are searched exactly.
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
import os
import stat
import tempfile
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image

from lookalike.catalog import Catalog, open_catalog
from lookalike.catalog.generation import generation
from lookalike.errors import DecodeError, UsageError
from lookalike.features import DEFAULT_MODEL, Extractor, load_extractor
from lookalike.index import Progress, features_of, index_paths
from lookalike.media import check_inputs, decode
from lookalike.options import check_k
from lookalike.search import (
    EXACT_LIMIT,
    Searcher,
    VectorIndex,
    catalog_index,
    hash_id,
    index_path,
    make_searcher,
    open_index,
)
from lookalike.search.index import index_lock

log = logging.getLogger(__name__)

#: A picture given to the library: a path, its bytes, or a PIL image.
ImageSource = str | Path | bytes | Image.Image

#: The query's name in a result when it is not a file (bytes, a PIL image).
UPLOAD_NAME = "<upload>"

#: embedding scopes of more pictures than this are searched through the catalog's persisted index (one query
#: against 100k vectors: exact and index measured in docs/BENCHMARKS.md "Scale (issue 11)")
INDEX_LIMIT = EXACT_LIMIT
#: candidates a filtered query may ask the index for before it falls back to exact search
INDEX_MAX_ASK = 8192


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
    name, exclude = UPLOAD_NAME, None
    if isinstance(query, str | Path):
        name = exclude = os.path.abspath(os.path.expanduser(str(query)))
    ext = load_extractor(model)
    report = index_paths(roots, cat, [model], recursive=recursive, progress=progress)
    if ext.kind != "hash" and len(report.paths) > INDEX_LIMIT:
        scope = IndexedScope.of_catalog(cat, model, report.paths)
        if scope is not None:
            found = scope.rank(query_vec, k, model, name, exclude=exclude)
            if found is not None:
                return found
    paths, matrix = features_of(cat, report.paths, model,
                                lambda: index_paths(roots, cat, [model], recursive=recursive).paths)
    return rank(make_searcher(ext.kind, matrix), paths, query_vec, k, model, name, exclude=exclude)


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


def catalog_hashes(catalog: Catalog) -> list[str]:
    """The content hashes of every good file the catalog knows: what its persisted index should hold (one
    set for every scope, so the CLI's folders and the service's roots never undo each other's syncs)."""
    rows = catalog.files_under(os.sep)
    return sorted({r.content_hash for r in rows if r.status != "error" and r.content_hash})


def synced_index(catalog: Catalog, model: str) -> VectorIndex | None:
    """The catalog's persisted index of ``model``'s embeddings, brought in line with the catalog (new and
    changed files added, removed ones dropped; a missing or damaged file is rebuilt from the catalog).
    None when it cannot be kept (the folder is read-only, the lock cannot be taken): search exactly.

    A stamp beside the index (``<index>.synced``) records the catalog's generation it was synced at and the
    file it was saved as; while both still hold, the file is opened as it is (listing the whole catalog
    to compare would cost more than an exact search of a folder)."""
    ext = load_extractor(model)
    path = index_path(catalog.path, ext.id, ext.version)
    stamp = path.with_name(path.name + ".synced")

    def as_stamped() -> VectorIndex | None:
        gen = list(generation(catalog, ext.id, ext.version))
        if _read_stamp(stamp) == {"generation": gen, "file": _file_key(path)}:
            index = open_index(path, ext.kind, int(ext.dim))
            if not index.reset_reason:
                return index
        return None

    index = as_stamped()
    if index is not None:
        return index
    try:
        with index_lock(path):  # the listing, the sync and the stamp as one step (another writer waits)
            index = as_stamped()  # another process may have synced it while this one waited
            if index is not None:
                return index
            gen = list(generation(catalog, ext.id, ext.version))  # before the listing: never newer than it
            index, rep = catalog_index(catalog, ext.id, ext.version, ext.kind, int(ext.dim), catalog_hashes(catalog),
                                       lock=False)
            _write_stamp(stamp, {"generation": gen, "file": _file_key(path)})
    except OSError as exc:
        log.warning("the %s index beside %s cannot be kept (%s); searching exactly", model, catalog.path, exc)
        return None
    if index.reset_reason:
        log.info("%s (rebuilt from the catalog: %d pictures)", index.reset_reason, rep.total)
    return index


def _file_key(path: Path) -> list[int] | None:
    """What tells one saved index file from another: (size, mtime, inode); None when there is none."""
    try:
        st = os.stat(path)
    except OSError:
        return None
    return [st.st_size, st.st_mtime_ns, st.st_ino] if stat.S_ISREG(st.st_mode) else None


def _read_stamp(stamp: Path) -> dict | None:
    try:
        with open(stamp, "rb", opener=lambda p, f: os.open(p, f | getattr(os, "O_NOFOLLOW", 0))) as fh:
            data = json.loads(fh.read(4096))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def _write_stamp(stamp: Path, data: dict) -> None:
    """Replace the stamp atomically (a temporary file in its folder, then a rename)."""
    fd, tmp = tempfile.mkstemp(prefix=f".{stamp.name}.", suffix=".tmp", dir=stamp.parent)
    try:
        with os.fdopen(fd, "w") as fh:
            json.dump(data, fh)
        os.replace(tmp, stamp)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


class IndexedScope:
    """A set of pictures searched through the catalog's persisted index (which may hold more: it covers the
    whole catalog). ``paths`` are the scope's files; ``hashes`` their content hashes, in the same order."""

    def __init__(self, index: VectorIndex, paths: Sequence[str], hashes: Sequence[str]) -> None:
        self.index = index
        held = index.ids()
        by_id: dict[int, list[str]] = {}
        for p, h in sorted(zip(paths, hashes, strict=True)):  # several paths may share one content
            i = hash_id(h)
            by_id.setdefault(i, []).append(p)
        known = np.isin(np.fromiter(by_id, dtype=np.int64, count=len(by_id)), held)
        self.paths_by_id = {i: ps for (i, ps), ok in zip(by_id.items(), known, strict=True) if ok}
        self.size = sum(len(ps) for ps in self.paths_by_id.values())

    @classmethod
    def of_catalog(cls, catalog: Catalog, model: str, paths: Sequence[str]) -> IndexedScope | None:
        """The scope of ``paths`` (files the catalog knows) over the synced index; None without an index."""
        index = synced_index(catalog, model)
        if index is None:
            return None
        rows = catalog.lookup_files(paths)
        good = [(p, r.content_hash) for p, r in rows.items() if r.content_hash and r.status != "error"]
        return cls(index, [p for p, _ in good], [h for _, h in good])

    def rank(self, query_vec: np.ndarray, k: int, model: str, query: str, exclude: str | None = None,
             allowed: Callable[[str], bool] | None = None) -> SimilarResult | None:
        """The k best pictures of the scope, as :func:`rank` gives them (scores rounded the same way, the
        query itself and pictures ``allowed`` refuses left out); None when the index cannot say for sure
        (too few hits survive the filters within :data:`INDEX_MAX_ASK` candidates): search exactly then."""
        total = len(self.index)
        if total == 0 or self.size == 0:
            return SimilarResult(query, model, [])
        # the scope is a part of the index: ask for enough candidates that k+1 of them are likely in it
        ask = min(total, INDEX_MAX_ASK, max(k + 1, math.ceil(2 * (k + 1) * total / self.size)))
        while True:
            hits, complete = self._hits(query_vec, ask, exclude, allowed)
            if len(hits) >= k or complete:
                return SimilarResult(query, model, hits[:k])
            if ask >= min(total, INDEX_MAX_ASK):
                return None
            ask = min(total, INDEX_MAX_ASK, ask * 4)

    def _hits(self, query_vec: np.ndarray, ask: int, exclude: str | None,
              allowed: Callable[[str], bool] | None) -> tuple[list[Hit], bool]:
        """(hits among the ``ask`` best candidates, whether every picture of the scope was seen)."""
        res = self.index.query(np.asarray(query_vec)[None, :], ask)
        hits: list[Hit] = []
        seen = 0
        for i, s in zip(res.indices[0].tolist(), res.scores[0].tolist(), strict=True):
            if i < 0:
                break
            paths = self.paths_by_id.get(i)
            if not paths:
                continue
            seen += len(paths)
            if not math.isfinite(s):
                continue
            for p in paths:
                if p != exclude and (allowed is None or allowed(p)):
                    hits.append(Hit(p, float(round(float(s), 6))))
        return hits, seen >= self.size


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
