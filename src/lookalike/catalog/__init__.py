"""The catalog: SQLite store of files, picture facts and features. The only module that writes SQL."""

from lookalike.catalog.store import (
    Catalog,
    FileRow,
    ImageRow,
    decode_features,
    encode_feature,
)

__all__ = ["Catalog", "FileRow", "ImageRow", "decode_features", "encode_feature"]
