"""Where lookalike keeps its state: the catalog, model files, journals.

Everything lives under one home folder: ``$LOOKALIKE_HOME`` if set, else the user's cache folder
(``platformdirs.user_cache_dir("lookalike")``). Model files may be kept elsewhere with
``$LOOKALIKE_MODEL_DIR``.
"""

from __future__ import annotations

import os
from pathlib import Path

import platformdirs


def home_dir() -> Path:
    """The folder holding lookalike's catalog, models and journals."""
    env = os.environ.get("LOOKALIKE_HOME")
    path = Path(env).expanduser() if env else Path(platformdirs.user_cache_dir("lookalike"))
    path.mkdir(parents=True, exist_ok=True)
    return path


def default_catalog_path() -> Path:
    """The catalog database used when no ``--catalog`` is given."""
    return home_dir() / "catalog.sqlite"


def model_dir() -> Path:
    """Where model weights are cached (``$LOOKALIKE_MODEL_DIR`` overrides)."""
    env = os.environ.get("LOOKALIKE_MODEL_DIR")
    path = Path(env).expanduser() if env else home_dir() / "models"
    path.mkdir(parents=True, exist_ok=True)
    return path


def journal_dir() -> Path:
    """Where journals of file-changing commands are written."""
    path = home_dir() / "journals"
    path.mkdir(parents=True, exist_ok=True)
    return path


def cpu_count() -> int:
    """Usable CPU cores (respects affinity)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # pragma: no cover - not Linux
        return max(1, os.cpu_count() or 1)
