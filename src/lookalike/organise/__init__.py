"""Organise a folder: sort photos so lookalikes sit together, and cluster them into groups.

The commands: ``sort_folder`` (``lookalike sort``, with ``--rename`` / ``--strip``) -> ``SortReport``, and
``cluster_folder`` (``lookalike cluster``, with ``--links`` / ``--copy`` / sheets / dendrogram) ->
``ClusterResult``. ``sort_order`` / ``cluster`` only read; ``plan_rename`` / ``plan_strip`` / ``write_links``
change files, always through a journal plan (``lookalike undo`` reverses them). The journal-based parts are
imported lazily so that sorting and clustering work on their own.
"""

from lookalike.organise.cluster import ClusterResult, cluster, cluster_folder, cluster_vectors
from lookalike.organise.sort import SortReport, SortResult, order_vectors, sort_folder, sort_order

__all__ = [
    "ClusterResult", "SortReport", "SortResult", "cluster", "cluster_folder", "cluster_vectors", "order_vectors",
    "plan_rename", "plan_strip", "record_applied", "rename_photos", "sort_folder", "sort_order", "strip_prefixes",
    "write_links",
]


def __getattr__(name: str):
    if name in ("plan_rename", "plan_strip", "record_applied", "rename_photos", "strip_prefixes"):
        from lookalike.organise import rename

        return getattr(rename, name)
    if name == "write_links":
        from lookalike.organise.links import write_links

        return write_links
    raise AttributeError(name)
