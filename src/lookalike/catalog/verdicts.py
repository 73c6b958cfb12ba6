"""Cached verification verdicts of the duplicate finder: one table of the catalog, ``verdicts``.

A verdict says whether one picture is an edited copy of another (``dupes/verify.py``). It is keyed by
content, never by path: the two content hashes (sha256 of the bytes, in sorted order), the verification
tier, the verifier's version (``dupes.verify.VERIFIER_VERSION``, bumped whenever its decision changes) and
the orientations tried (a mirror or not). A moved or renamed file therefore keeps its verdicts; a new
verifier version reads none of the old ones.

Each row stores the decision, its score (the aligned correlation) and the range of thresholds over which
that decision and score hold (``lo < threshold <= hi``): a run with another ``--threshold`` reuses a
verdict inside its range and verifies the pair again outside it (see :class:`StoredVerdict`).

The table is created on first use (``CREATE TABLE IF NOT EXISTS``), so it needs no change of the
catalog's schema version. Writes are batched (:data:`WRITE_BATCH` rows per ``BEGIN IMMEDIATE``
transaction); readers in other processes see either all of a batch or none of it (WAL).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass

from lookalike.catalog.schema import hash_text
from lookalike.catalog.store import Catalog

#: Rows per write transaction.
WRITE_BATCH = 500
_CHUNK = 400  # content hashes per IN (...) query

_TABLE = """
CREATE TABLE IF NOT EXISTS verdicts (
    hash_a TEXT NOT NULL,
    hash_b TEXT NOT NULL,
    tier TEXT NOT NULL,
    version TEXT NOT NULL,
    orientations TEXT NOT NULL,
    ok INTEGER NOT NULL,
    score REAL NOT NULL,
    lo REAL NOT NULL,
    hi REAL NOT NULL,
    PRIMARY KEY (hash_a, hash_b, tier, version, orientations)
) WITHOUT ROWID
"""


@dataclass(frozen=True)
class VerdictKey:
    """What a verdict is about: two contents (``hash_a`` < ``hash_b``), the tier, the verifier's version
    and the orientations tried ("u" upright, "m" mirrored, in the order tried)."""

    hash_a: str
    hash_b: str
    tier: str
    version: str
    orientations: str

    @staticmethod
    def of(h1: str, h2: str, tier: str, version: str, orientations: str) -> VerdictKey:
        """The key of a pair in either order."""
        a, b = (h1, h2) if h1 <= h2 else (h2, h1)
        return VerdictKey(a, b, tier, version, orientations)


@dataclass(frozen=True)
class StoredVerdict:
    """A verdict as stored: ``ok`` and ``score`` hold for every threshold t with ``lo < t <= hi``.

    Outside that range the stored verdict says nothing (an orientation whose correlation was under the
    threshold never had its geometric test run, or one never tried may pass): verify again."""

    key: VerdictKey
    ok: bool
    score: float
    lo: float
    hi: float

    def holds_at(self, threshold: float) -> bool:
        """Whether the stored decision and score are those a verification at ``threshold`` would give."""
        return self.lo < threshold <= self.hi


class VerdictStore:
    """Reads and batched writes of the ``verdicts`` table of one catalog."""

    def __init__(self, catalog: Catalog) -> None:
        self.catalog = catalog
        self._pending: list[StoredVerdict] = []
        with catalog.transaction() as db:
            db.execute(_TABLE)

    def lookup(self, keys: Iterable[VerdictKey]) -> dict[VerdictKey, StoredVerdict]:
        """The stored verdicts among ``keys`` (read in chunks of first hashes, filtered here)."""
        wanted = set(keys)
        by_first: dict[tuple[str, str], set[str]] = {}
        for k in wanted:
            by_first.setdefault((k.tier, k.version), set()).add(k.hash_a)
        out: dict[VerdictKey, StoredVerdict] = {}
        for (tier, version), firsts in by_first.items():
            out.update((v.key, v) for v in self._rows(tier, version, firsts) if v.key in wanted)
        return out

    def among(self, hashes: Iterable[str], tier: str, version: str) -> dict[VerdictKey, StoredVerdict]:
        """Every stored verdict of this tier and version between two of ``hashes`` (one read for a run)."""
        names = set(hashes)
        return {v.key: v for v in self._rows(tier, version, names) if v.key.hash_b in names}

    def _rows(self, tier: str, version: str, firsts: Iterable[str]) -> Iterator[StoredVerdict]:
        """The stored verdicts of this tier and version whose first hash is one of ``firsts``."""
        db = self.catalog.connection()
        first = sorted(firsts)
        for i in range(0, len(first), _CHUNK):
            chunk = first[i : i + _CHUNK]
            q = ("SELECT hash_a, hash_b, orientations, ok, score, lo, hi FROM verdicts WHERE tier=? AND "
                 f"version=? AND hash_a IN ({','.join('?' * len(chunk))})")
            for a, b, orient, ok, score, lo, hi in db.execute(q, (tier, version, *chunk)):
                yield StoredVerdict(VerdictKey(a, b, tier, version, orient), bool(ok), float(score), float(lo),
                                    float(hi))

    def add(self, verdicts: Sequence[StoredVerdict]) -> None:
        """Queue verdicts; every :data:`WRITE_BATCH` of them is written in one transaction."""
        self._pending.extend(verdicts)
        if len(self._pending) >= WRITE_BATCH:
            self.flush()

    def flush(self) -> None:
        """Write every queued verdict (a row replaces the one of the same key)."""
        while self._pending:
            batch, self._pending = self._pending[:WRITE_BATCH], self._pending[WRITE_BATCH:]
            with self.catalog.transaction() as db:
                db.executemany(
                    "INSERT OR REPLACE INTO verdicts VALUES (?,?,?,?,?,?,?,?,?)",
                    [(v.key.hash_a, v.key.hash_b, v.key.tier, v.key.version, v.key.orientations, int(v.ok),
                      float(v.score), float(v.lo), float(v.hi)) for v in batch])

    def prune(self, keep_version: str | None = None) -> int:
        """Drop the verdicts no run reads again: those of another verifier version than ``keep_version``
        (None: keep every version) and those about a content the catalog no longer holds. Returns rows dropped."""
        self.flush()
        db = self.catalog.connection()
        held = {hash_text(h) for (h,) in db.execute("SELECT sha256 FROM contents")}
        pairs = db.execute("SELECT DISTINCT hash_a, hash_b FROM verdicts").fetchall()
        gone = [(a, b) for a, b in pairs if a not in held or b not in held]
        with self.catalog.transaction() as tx:
            n = tx.execute("DELETE FROM verdicts WHERE version != ?", (keep_version,)).rowcount if keep_version else 0
            before = tx.total_changes
            tx.executemany("DELETE FROM verdicts WHERE hash_a = ? AND hash_b = ?", gone)
            n += tx.total_changes - before
        return n

    def count(self) -> int:
        """Rows in the table (every tier and version)."""
        return int(self.catalog.connection().execute("SELECT COUNT(*) FROM verdicts").fetchone()[0])
