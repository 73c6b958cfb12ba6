"""The catalog: SQLite store of files, picture facts and features. The only module that writes SQL."""

from lookalike.catalog.store import (
    Catalog,
    DamagedFeatureError,
    FeatureRow,
    FileRow,
    ImageRow,
    catalog_error,
    decode_features,
    encode_feature,
    feature_nbytes,
    from_db_path,
    open_catalog,
    to_db_path,
)
from lookalike.catalog.verdicts import StoredVerdict, VerdictKey, VerdictStore

__all__ = [
    "Catalog",
    "DamagedFeatureError",
    "FeatureRow",
    "FileRow",
    "ImageRow",
    "StoredVerdict",
    "VerdictKey",
    "VerdictStore",
    "catalog_error",
    "decode_features",
    "encode_feature",
    "feature_nbytes",
    "from_db_path",
    "open_catalog",
    "to_db_path",
]
