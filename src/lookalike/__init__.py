"""lookalike: an offline toolkit for photo collections.

The most used names of the library are re-exported here::

    from lookalike import Collection
    hits = Collection("~/Pictures").similar("query.jpg", k=5)
"""

from lookalike.errors import CatalogError, DecodeError, LookalikeError, ModelError

__version__ = "0.1.0"

__all__ = ["Collection", "CatalogError", "DecodeError", "LookalikeError", "ModelError", "__version__"]


def __getattr__(name: str):  # lazy, so that `import lookalike` stays cheap
    if name == "Collection":
        from lookalike.collection import Collection

        return Collection
    raise AttributeError(name)
