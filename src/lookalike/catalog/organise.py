"""The rank prefixes ``lookalike sort --rename`` wrote, so ``--strip`` and a later ``--rename`` remove exactly those.

One row per name lookalike gave a file: the full path it wrote, the exact prefix text it put in front
(``"0005_"``), and the identity of the file it renamed: inode (a rename keeps it), size and content
fingerprint (sha256). A row vouches only for that very file at that very path; deciding whether the file
now there is it is :func:`lookalike.organise.rename.recognise`'s job. Paths are stored as bytes
(``os.fsencode``), so names that are not UTF-8 round-trip.

The older table ``sort_prefixes`` (path, prefix length, size, mtime) could not tell a user's
``2019_holiday.jpg`` from lookalike's ``2019_`` prefix once a strip had run: it is dropped, and its rows are
not trusted (a prefix written before the upgrade is left in place, never guessed).
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from lookalike.catalog.store import Catalog

_SCHEMA = (
    "CREATE TABLE IF NOT EXISTS sort_renames (path BLOB NOT NULL, ino INTEGER NOT NULL, size INTEGER NOT NULL, "
    "sha256 TEXT NOT NULL, prefix BLOB NOT NULL, PRIMARY KEY (path, ino))"
)
_CHUNK = 500


@dataclass(frozen=True)
class Written:
    """lookalike renamed the file (inode ``ino``, ``size`` bytes, fingerprint ``sha256``) to ``path``, whose
    name starts with the ``prefix`` it added."""

    path: str
    prefix: str
    ino: int
    size: int
    sha256: str


def _ensure(catalog: Catalog) -> None:
    with catalog.transaction() as db:
        db.execute("DROP TABLE IF EXISTS sort_prefixes")
        db.execute(_SCHEMA)


def record_written(catalog: Catalog, rows: Iterable[Written]) -> None:
    """Remember names lookalike wrote (a row for the same path and inode is replaced)."""
    data = [(os.fsencode(r.path), r.ino, r.size, r.sha256, os.fsencode(r.prefix)) for r in rows]
    _ensure(catalog)
    with catalog.transaction() as db:
        db.executemany("INSERT OR REPLACE INTO sort_renames VALUES (?, ?, ?, ?, ?)", data)


def written_at(catalog: Catalog, paths: Sequence[str]) -> dict[str, list[Written]]:
    """path -> the rows recorded for that exact path (several when different files were renamed to it)."""
    _ensure(catalog)
    db = catalog.connection()
    out: dict[str, list[Written]] = {}
    keys = sorted({os.fsencode(p) for p in paths})
    for i in range(0, len(keys), _CHUNK):
        chunk = keys[i : i + _CHUNK]
        q = f"SELECT path, ino, size, sha256, prefix FROM sort_renames WHERE path IN ({','.join('?' * len(chunk))})"
        for p, ino, size, sha, prefix in db.execute(q, chunk):
            path = os.fsdecode(p)
            out.setdefault(path, []).append(Written(path, os.fsdecode(prefix), ino, size, sha))
    return out


def forget_written(catalog: Catalog, paths: Iterable[str]) -> None:
    """Drop every row recorded for these paths."""
    _ensure(catalog)
    with catalog.transaction() as db:
        db.executemany("DELETE FROM sort_renames WHERE path = ?", [(os.fsencode(p),) for p in paths])
