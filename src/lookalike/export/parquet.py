"""The catalog's features as Parquet, for users who keep features in a data lake
(``lookalike export features --parquet FILE``, ``lookalike import features FILE``).

One row per file: ``path`` (text; bytes of a name that is not UTF-8 appear as ``\\xNN`` escapes, for people
only), ``content_hash`` (sha256, the catalog's key), ``model``, ``model_version`` and ``feature``: a
fixed-size list of ``dim`` float32 values for an embedding (the stored float16 values, exactly), or of
``ceil(dim / 64)`` uint64 words for a hash (the stored words). The schema's ``lookalike`` metadata (JSON)
names the format, the lookalike version, the model, its version, kind and dim.

Import keys features by content hash only (paths are facts of the machine that wrote the file) and checks
everything before it writes anything: the format, that the model is known here with the same version, kind
and dim, every row's hash, size and values (finite). A feature that differs from the one the catalog holds
for the same content and model version is a conflict: nothing is imported unless ``replace`` is given, and
then the report counts every value replaced. Features are written in transactions of :data:`BATCH_ROWS`: an
interrupted import keeps whole batches, and running it again completes it. Import never creates file rows;
a file indexed later whose bytes match an imported hash gets its feature without running the model.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import tempfile
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from lookalike.catalog.store import Catalog, FeatureRow, encode_feature, feature_nbytes, open_catalog
from lookalike.errors import LookalikeError, UsageError
from lookalike.features import registry
from lookalike.index import features_of, index_paths

FORMAT = "lookalike.features/1"
#: Rows per Parquet row group and per catalog transaction on import.
BATCH_ROWS = 4096
_HASH = re.compile(r"[0-9a-f]{64}")


def _arrow() -> tuple[Any, Any]:
    try:
        import pyarrow as pa
        import pyarrow.parquet as pq
    except ImportError as exc:
        raise UsageError("Parquet export and import need pyarrow: pip install 'lookalike[dask]'") from exc
    return pa, pq


@dataclass(frozen=True)
class _Model:
    id: str
    version: str
    kind: str  # "embedding" | "hash"
    dim: int

    @property
    def width(self) -> int:
        """Values per row of the ``feature`` column."""
        return (self.dim + 63) // 64 if self.kind == "hash" else self.dim

    def meta(self) -> dict:
        import lookalike

        return {"format": FORMAT, "lookalike": lookalike.__version__, "model": self.id, "version": self.version,
                "kind": self.kind, "dim": self.dim}


def _model(name: str) -> _Model:

    spec = registry.get_spec(name)
    if spec.kind in ("face-detector", "face-embedding"):
        raise UsageError(f"model {name!r} is a {spec.kind}: only picture features are exported")
    return _Model(spec.id, spec.version, "hash" if spec.kind == "hash" else "embedding", int(spec.dim))


def _schema(pa: Any, m: _Model) -> Any:
    value = pa.uint64() if m.kind == "hash" else pa.float32()
    return pa.schema(
        [("path", pa.string()), ("content_hash", pa.string()), ("model", pa.dictionary(pa.int32(), pa.string())),
         ("model_version", pa.dictionary(pa.int32(), pa.string())), ("feature", pa.list_(value, m.width))],
        metadata={"lookalike": json.dumps(m.meta())})


@dataclass
class ParquetExport:
    """What ``export features --parquet`` wrote."""

    path: str
    model: str
    version: str
    rows: int

    def to_json(self) -> dict:
        return {"path": self.path, "model": self.model, "version": self.version, "rows": self.rows}


@dataclass
class ParquetImport:
    """What ``import features`` did: ``rows`` read, ``written`` new features, ``same`` already stored with the
    same value, ``replaced`` stored with another value and overwritten (only with ``replace``)."""

    path: str
    model: str
    version: str
    rows: int = 0
    written: int = 0
    same: int = 0
    replaced: int = 0
    conflicts: list[str] = field(default_factory=list)  # content hashes whose stored value differs

    def to_json(self) -> dict:
        return {"path": self.path, "model": self.model, "version": self.version, "rows": self.rows,
                "written": self.written, "same": self.same, "replaced": self.replaced}


def _shown(path: str) -> str:
    return path.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")


def _catalog_rows(cat: Catalog, m: _Model) -> Iterator[tuple[str, str, bytes]]:
    """(path, content hash, stored feature) of every good file of the catalog that has the feature."""
    yield from cat.iter_stored_features(m.id, m.version)


def export_features_parquet(
    target: str | Path,
    model: str,
    catalog: Catalog | str | Path | None = None,
    folders: Iterable[str | Path] | None = None,
    recursive: bool = True,
    progress: Any = None,
) -> ParquetExport:
    """Write the ``model`` features to a Parquet file: of every good file under ``folders`` (indexed first), or,
    without folders, of every file the catalog holds with that feature (nothing is indexed)."""
    pa, pq = _arrow()
    cat = open_catalog(catalog)
    m = _model(model)
    nbytes = feature_nbytes(m.kind, m.dim)
    if folders is not None:

        roots = list(folders)
        report = index_paths(roots, cat, [m.id], recursive=recursive, progress=progress)
        paths, _ = features_of(cat, report.paths, m.id,
                               lambda: index_paths(roots, cat, [m.id], recursive=recursive).paths)
        rows_known = cat.lookup_files(paths)
        blobs = cat.features_for_hashes(sorted({rows_known[p].content_hash for p in paths}), m.id, m.version)
        source: Iterator[tuple[str, str, bytes]] = ((p, rows_known[p].content_hash, blobs[rows_known[p].content_hash])
                                                    for p in paths)
    else:
        source = _catalog_rows(cat, m)
    out = os.path.abspath(target)
    if os.path.islink(out) or (os.path.lexists(out) and not os.path.isfile(out)):
        raise UsageError(f"{out} exists and is not a regular file: not overwritten")
    schema = _schema(pa, m)
    dtype = np.dtype("<u8") if m.kind == "hash" else np.dtype("<f2")
    try:  # written beside the target, renamed over it once complete: an interrupted export leaves no half file
        fd, part = tempfile.mkstemp(prefix=".lookalike-export-", suffix=".parquet", dir=os.path.dirname(out))
        os.close(fd)
        writer = pq.ParquetWriter(part, schema, compression="zstd")
    except OSError as exc:
        raise UsageError(f"cannot write {out}: {exc.strerror or exc}") from exc
    try:
        with writer:
            _write_rows(pa, writer, schema, m, source, nbytes, dtype)
        n = _rows_of(part)
        mask = os.umask(0)
        os.umask(mask)
        os.chmod(part, 0o666 & ~mask)  # as an ordinary new file (mkstemp made it private)
        os.replace(part, out)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(part)
        raise
    return ParquetExport(out, m.id, m.version, n)


def _rows_of(path: str) -> int:
    """Rows of a Parquet file (from its footer)."""
    _, pq = _arrow()
    return pq.ParquetFile(path).metadata.num_rows


def _write_rows(pa: Any, writer: Any, schema: Any, m: _Model, source: Iterator[tuple[str, str, bytes]],
                nbytes: int, dtype: np.dtype) -> None:
    """Every good (path, hash, blob) of ``source`` as row groups of :data:`BATCH_ROWS`."""
    batch: list[tuple[str, str, bytes]] = []

    def flush() -> None:
        if not batch:
            return
        values = np.frombuffer(b"".join(b for _, _, b in batch), dtype=dtype)
        values = values.astype(np.uint64 if m.kind == "hash" else np.float32)
        feature = pa.FixedSizeListArray.from_arrays(pa.array(values), m.width)
        writer.write_table(pa.Table.from_arrays(
            [pa.array([_shown(p) for p, _, _ in batch], pa.string()), pa.array([h for _, h, _ in batch]),
             pa.DictionaryArray.from_arrays(np.zeros(len(batch), np.int32), pa.array([m.id])),
             pa.DictionaryArray.from_arrays(np.zeros(len(batch), np.int32), pa.array([m.version])), feature],
            schema=schema))
        batch.clear()

    for path, h, blob in source:
        if len(blob) != nbytes:  # damaged: never exported (the next indexing run computes it again)
            continue
        batch.append((path, h, blob))
        if len(batch) >= BATCH_ROWS:
            flush()
    flush()


def _open(source: str | Path) -> tuple[Any, _Model]:
    """The Parquet file and the model it holds features of, checked against this lookalike's model."""
    pa, pq = _arrow()
    path = os.path.abspath(source)
    try:
        pf = pq.ParquetFile(path)
    except (OSError, pa.ArrowException) as exc:
        raise UsageError(f"cannot read {path} as Parquet: {exc}") from exc
    raw = (pf.schema_arrow.metadata or {}).get(b"lookalike")
    try:
        meta = json.loads(raw) if raw else None
    except ValueError:
        meta = None
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        raise UsageError(f"{path} is not a lookalike features file (no {FORMAT!r} metadata)")
    try:
        mine = _model(str(meta.get("model")))
    except LookalikeError as exc:
        raise UsageError(f"{path} holds features of model {meta.get('model')!r}, which this lookalike cannot use: "
                         f"{exc}") from exc
    theirs = (str(meta.get("version")), meta.get("kind"), meta.get("dim"))
    if theirs != (mine.version, mine.kind, mine.dim):
        raise UsageError(
            f"{path} holds {mine.id} features of version {theirs[0]} ({theirs[1]}, dim {theirs[2]}), but this "
            f"lookalike computes {mine.id} version {mine.version} ({mine.kind}, dim {mine.dim}): not imported")
    want = _schema(pa, mine)
    got = pf.schema_arrow
    for name in ("content_hash", "feature"):
        if got.get_field_index(name) < 0 or not got.field(name).type.equals(want.field(name).type):
            found = got.field(name).type if got.get_field_index(name) >= 0 else "missing"
            raise UsageError(f"{path}: column {name!r} is {found}, expected {want.field(name).type}")
    return pf, mine


def _blobs(pf: Any, m: _Model, path: str) -> Iterator[list[tuple[str, bytes]]]:
    """Batches of (content hash, blob as the catalog stores it), every row checked."""
    row = 0
    for batch in pf.iter_batches(batch_size=BATCH_ROWS, columns=["content_hash", "feature"]):
        hashes = batch.column(0).to_pylist()
        col = batch.column(1)
        if col.null_count:
            raise UsageError(f"{path}: a row near row {row} has no feature")
        values = col.flatten().to_numpy(zero_copy_only=False).reshape(len(hashes), m.width)
        if m.kind != "hash" and not np.isfinite(values).all():
            bad = int(np.flatnonzero(~np.isfinite(values).all(axis=1))[0])
            raise UsageError(f"{path}: row {row + bad} has a value that is not a finite number")
        out = []
        for i, h in enumerate(hashes):
            if not isinstance(h, str) or not _HASH.fullmatch(h):
                raise UsageError(f"{path}: row {row + i} has no sha256 content hash ({h!r})")
            out.append((h, encode_feature(values[i], m.kind)))
        row += len(hashes)
        yield out


def import_features_parquet(
    source: str | Path, catalog: Catalog | str | Path | None = None, replace: bool = False
) -> ParquetImport:
    """Store the features of a Parquet file (as :func:`export_features_parquet` writes) in the catalog.

    Everything is checked before anything is written (model, version, kind, dim, every row). A feature that
    differs from the stored one for the same content is a conflict: UsageError, nothing written, unless
    ``replace`` (then the report counts each one replaced)."""
    cat = open_catalog(catalog)
    path = os.path.abspath(source)
    pf, m = _open(path)
    report = ParquetImport(path, m.id, m.version)
    seen: dict[str, bytes] = {}  # hash -> digest of its value in this file
    new_hashes: set[str] = set()
    for batch in _blobs(pf, m, path):  # pass 1: check, compare with the catalog; nothing written
        report.rows += len(batch)
        stored = cat.features_for_hashes(sorted({h for h, _ in batch}), m.id, m.version)
        for h, blob in batch:
            digest = hashlib.blake2b(blob, digest_size=16).digest()
            if seen.setdefault(h, digest) != digest:
                raise UsageError(f"{path}: content {h} has two different {m.id} features in the file: not imported")
            if h in stored:
                if stored[h] == blob:
                    report.same += 1
                elif h not in report.conflicts:
                    report.conflicts.append(h)
            else:
                new_hashes.add(h)
    if report.conflicts and not replace:
        raise UsageError(
            f"{path}: {len(report.conflicts)} {m.id} feature(s) differ from the ones the catalog holds for the same "
            f"content (first: {report.conflicts[0]}): nothing imported; --replace overwrites them")
    todo = new_hashes | set(report.conflicts)
    for batch in _blobs(pf, m, path):  # pass 2: write what is new (and, with replace, what differs)
        mine = [(h, blob) for h, blob in batch if h in todo]
        # stored meanwhile by another lookalike (an index run): kept, never replaced unasked
        since = cat.features_for_hashes(sorted({h for h, _ in mine if h in new_hashes}), m.id, m.version)
        rows = []
        for h, blob in mine:
            if h not in todo:
                continue
            todo.discard(h)
            if h in since:
                new_hashes.discard(h)
                report.same += since[h] == blob
                continue
            rows.append(FeatureRow(h, m.id, m.version, blob))
        cat.write(features=rows)
    report.replaced = len(report.conflicts)
    report.written = len(new_hashes)
    return report


__all__ = ["FORMAT", "ParquetExport", "ParquetImport", "export_features_parquet", "import_features_parquet"]
