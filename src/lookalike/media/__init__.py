"""Decoding of image files (and, later, video frames). Knows nothing of catalogs or models."""

from lookalike.media.decode import DecodedImage, decode, io_stats, read_bytes, sniff
from lookalike.media.walk import (
    IMAGE_EXTENSIONS,
    WalkProblem,
    check_found,
    check_inputs,
    iter_images,
    looks_like_image,
    walk_inputs,
)

__all__ = [
    "DecodedImage",
    "IMAGE_EXTENSIONS",
    "WalkProblem",
    "check_found",
    "check_inputs",
    "decode",
    "io_stats",
    "iter_images",
    "looks_like_image",
    "read_bytes",
    "sniff",
    "walk_inputs",
]
