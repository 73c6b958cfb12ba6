"""Organise a folder: sort photos so lookalikes sit together, and cluster them into groups.

``sort_order`` / ``cluster`` only read; ``plan_rename`` / ``plan_strip`` / ``write_links`` change files, always
through a journal plan (``lookalike undo`` reverses them). The journal-based parts are imported lazily so
that sorting and clustering work on their own.
"""

from lookalike.organise.cluster import ClusterResult, cluster, cluster_vectors
from lookalike.organise.sort import SortResult, order_vectors, sort_order

__all__ = [
    "ClusterResult", "SortResult", "cluster", "cluster_vectors", "order_vectors", "plan_rename", "plan_strip",
    "record_applied", "rename_photos", "sort_order", "strip_prefixes", "write_links",
]


def __getattr__(name: str):
    if name in ("plan_rename", "plan_strip", "record_applied", "rename_photos", "strip_prefixes"):
        from lookalike.organise import rename

        return getattr(rename, name)
    if name == "write_links":
        from lookalike.organise.links import write_links

        return write_links
    raise AttributeError(name)
