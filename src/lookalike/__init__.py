"""lookalike: an offline toolkit for photo collections.

One function per command, each returning a result object with ``to_json()`` (what ``--json`` prints and the
HTTP service returns)::

    from lookalike import Collection, find_similar, index_paths
    report = index_paths(["~/Pictures"])                       # IndexReport
    hits = find_similar("query.jpg", ["~/Pictures"], k=5)       # SimilarResult
    hits = Collection("~/Pictures").similar("query.jpg", k=5)  # the same, as an object

Names are imported on first use, so ``import lookalike`` stays cheap. ``tests/test_public_api.py`` pins
``__all__`` and every signature: a change there is a change of the public API.
"""

from lookalike.errors import CatalogError, DecodeError, LookalikeError, ModelError, UsageError

__version__ = "0.1.0"

#: Public name -> the module that defines it (imported lazily by ``__getattr__``).
_LAZY = {
    "Collection": "lookalike.collection",
    "index_paths": "lookalike.index",
    "IndexReport": "lookalike.index",
    "find_similar": "lookalike.similar",
    "SimilarResult": "lookalike.similar",
    "embed": "lookalike.similar",
    "export_features": "lookalike.export",
    "FeatureExport": "lookalike.export",
    "find_duplicates": "lookalike.dupes",
    "DupesReport": "lookalike.dupes",
    "plan_for": "lookalike.dupes",
    "sort_folder": "lookalike.organise",
    "cluster_folder": "lookalike.organise",
    "unique_frames": "lookalike.video",
    "apply_plan": "lookalike.journal",
    "undo": "lookalike.journal",
}

__all__ = [
    "CatalogError",
    "Collection",
    "DecodeError",
    "DupesReport",
    "FeatureExport",
    "IndexReport",
    "LookalikeError",
    "ModelError",
    "SimilarResult",
    "UsageError",
    "__version__",
    "apply_plan",
    "cluster_folder",
    "embed",
    "export_features",
    "find_duplicates",
    "find_similar",
    "index_paths",
    "plan_for",
    "sort_folder",
    "undo",
    "unique_frames",
]


def __getattr__(name: str):  # lazy, so that `import lookalike` stays cheap
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'lookalike' has no attribute {name!r}")
    import importlib

    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
