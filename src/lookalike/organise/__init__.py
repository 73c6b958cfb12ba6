"""Organise a folder: sort photos so lookalikes sit together, and cluster them into groups."""

from lookalike.organise.sort import SortResult, sort_order

__all__ = ["SortResult", "sort_order"]
