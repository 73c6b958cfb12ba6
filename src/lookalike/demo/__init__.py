"""The small demo folder bundled with lookalike: drawn scenes, edited copies of some, one exact copy.

`lookalike dupes` with no folder reviews it (report only), so a new user sees what the tool finds before
pointing it at their own photos. scripts/make_demo.py regenerates the pictures."""

from __future__ import annotations

from pathlib import Path


def demo_folder() -> Path:
    """The bundled demo folder (read-only: lookalike never changes it)."""
    return Path(__file__).resolve().parent / "photos"
