"""Which file names carry a rank prefix that ``lookalike sort --rename`` added (so it can strip or replace it).

A row is trusted only while the file still has the size and mtime it had when it was renamed.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from lookalike.catalog.store import Catalog

_SCHEMA = (
    "CREATE TABLE IF NOT EXISTS sort_prefixes (path TEXT PRIMARY KEY, prefix_len INTEGER NOT NULL, "
    "size INTEGER NOT NULL, mtime_ns INTEGER NOT NULL)"
)
_CHUNK = 500


def _ensure(catalog: Catalog) -> None:
    with catalog.transaction() as db:
        db.execute(_SCHEMA)


def record_prefixes(catalog: Catalog, rows: Iterable[tuple[str, int, int, int]]) -> None:
    """Remember (path, prefix length without the '_', size, mtime_ns) for renamed files."""
    _ensure(catalog)
    with catalog.transaction() as db:
        db.executemany("INSERT OR REPLACE INTO sort_prefixes VALUES (?, ?, ?, ?)", list(rows))


def forget_prefixes(catalog: Catalog, paths: Iterable[str]) -> None:
    _ensure(catalog)
    with catalog.transaction() as db:
        db.executemany("DELETE FROM sort_prefixes WHERE path = ?", [(p,) for p in paths])


def prefixes(catalog: Catalog, paths: Sequence[str]) -> dict[str, tuple[int, int, int]]:
    """path -> (prefix_len, size, mtime_ns) for the paths that have a record."""
    _ensure(catalog)
    db = catalog.connection()
    out: dict[str, tuple[int, int, int]] = {}
    for i in range(0, len(paths), _CHUNK):
        chunk = list(paths[i : i + _CHUNK])
        q = f"SELECT path, prefix_len, size, mtime_ns FROM sort_prefixes WHERE path IN ({','.join('?' * len(chunk))})"
        for p, n, s, m in db.execute(q, chunk):
            out[p] = (n, s, m)
    return out
