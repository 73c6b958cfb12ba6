"""The indexer's fast path, shared by every reader of content hashes (the index, face scans).

A file whose (path, size, mtime_ns, inode, ctime_ns) is in the catalog with a content hash is not read at
all: ctime cannot be set by any user tool, so a file rewritten with its size and mtime kept is read again.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Sequence

from lookalike.catalog import Catalog, FileRow
from lookalike.errors import DecodeError
from lookalike.media import read_bytes
from lookalike.media.files import require_regular


def sha256_of(data: bytes) -> str:
    """The catalog's content key of some bytes."""
    return hashlib.sha256(data).hexdigest()


def file_sha256(path: str) -> str:
    """sha256 of a file's bytes (the catalog's content key)."""
    return sha256_of(read_bytes(path))


def unchanged_hash(row: FileRow | None, st: os.stat_result) -> str | None:
    """The content hash the catalog holds for a file when ``st`` shows it unchanged since, else None."""
    if row and row.status != "error" and row.content_hash and row.same_file(st):
        return row.content_hash
    return None


def content_hashes(catalog: Catalog, paths: Sequence[str]) -> tuple[dict[str, str], dict[str, str]]:
    """(path -> sha256, path -> error). Unchanged files known to the catalog are not read; a file the catalog
    does not know yet gets a row (hash only, the indexer fills in the rest), so later calls skip reading it.
    A FIFO or device is refused before any read."""
    known = catalog.lookup_files(list(paths))
    hashes: dict[str, str] = {}
    errors: dict[str, str] = {}
    new_rows: list[FileRow] = []
    for p in paths:
        if not os.path.exists(p):
            errors[p] = "no such file"
            continue
        try:
            st = require_regular(p)
        except DecodeError as exc:
            errors[p] = str(exc)
            continue
        row = known.get(p)
        h = unchanged_hash(row, st)
        if h is None:
            try:
                h = file_sha256(p)
            except DecodeError as exc:
                errors[p] = str(exc)
                continue
            if not row:
                new_rows.append(FileRow(p, st.st_size, st.st_mtime_ns, h, "ok", None, st.st_ino, st.st_ctime_ns))
        hashes[p] = h
    catalog.write(files=new_rows)
    return hashes, errors
