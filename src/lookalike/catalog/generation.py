"""A cheap "has the catalog changed?" signature, so long-lived readers (the HTTP service) can cache
feature matrices and reload them only when indexing wrote something."""

from __future__ import annotations

from lookalike.catalog.store import Catalog


def generation(catalog: Catalog, model: str, version: str) -> tuple[int, float, int]:
    """(file rows, latest write time, feature rows of this model): changes whenever indexing writes."""
    db = catalog.connection()
    files, latest = db.execute("SELECT COUNT(*), COALESCE(MAX(seen_at), 0) FROM files").fetchone()
    (feats,) = db.execute(
        "SELECT COUNT(*) FROM features WHERE model_id = (SELECT id FROM models WHERE model=? AND version=?)",
        (model, version),
    ).fetchone()
    return int(files), float(latest), int(feats)
