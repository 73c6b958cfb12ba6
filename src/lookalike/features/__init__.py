"""Feature extractors behind one interface, and the model registry that provides them."""

from lookalike.features.base import Extractor, FeatureKind, ModelSpec, l2_normalise
from lookalike.features.registry import DEFAULT_MODEL, get_spec, list_models, load_extractor

__all__ = [
    "DEFAULT_MODEL",
    "Extractor",
    "FeatureKind",
    "ModelSpec",
    "get_spec",
    "l2_normalise",
    "list_models",
    "load_extractor",
]
