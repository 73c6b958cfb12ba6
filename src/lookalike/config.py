"""Where lookalike keeps its state: the catalog, model files, journals.

Everything lives under one home folder: ``$LOOKALIKE_HOME`` if set, else the user's cache folder
(``platformdirs.user_cache_dir("lookalike")``). Model files may be kept elsewhere with
``$LOOKALIKE_MODEL_DIR``.
"""

from __future__ import annotations

import os
import sys
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


def data_dirs() -> list[Path]:
    """lookalike's own folders, resolved (symlinks followed): the home folder (catalog, journals and their
    kept copies, thumbnails, face models), the model folder and ``$LOOKALIKE_FACES_DIR`` when set.

    They are never walked for pictures, even when they lie inside a searched folder, so lookalike never
    takes its own files (a journal's kept copies...) for a user's photos."""
    dirs = [home_dir(), model_dir()]
    faces = os.environ.get("LOOKALIKE_FACES_DIR")
    if faces:
        dirs.append(Path(faces).expanduser())
    out: list[Path] = []
    for d in dirs:
        real = Path(os.path.realpath(os.path.abspath(d)))
        if real not in out:
            out.append(real)
    return out


def is_inside(path: str | os.PathLike, folder: str | os.PathLike) -> bool:
    """True when ``path`` is ``folder`` or lies below it (plain string test: resolve both first)."""
    p, f = os.fsdecode(path), os.fsdecode(folder)
    if p == f:
        return True
    f = f if f.endswith(os.sep) else f + os.sep
    return p.startswith(f)


def in_data_dir(path: str | os.PathLike) -> Path | None:
    """The data folder (of :func:`data_dirs`) that ``path`` lies in once resolved, or None."""
    real = os.path.realpath(os.path.abspath(os.fsdecode(path)))
    for d in data_dirs():
        if is_inside(real, d):
            return d
    return None


def cpu_count() -> int:
    """Usable CPU cores (respects affinity)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # pragma: no cover - not Linux
        return max(1, os.cpu_count() or 1)


def spawn_is_safe() -> bool:
    """Whether worker processes can be spawned without running the caller's main script again.

    A spawned process imports the main module (as ``__mp_main__``) unless it is a package's ``__main__``
    (``python -m lookalike``, ``python -m pytest``) or there is none (an interactive session). A script's
    top level would run again in each worker: harmless behind ``if __name__ == "__main__":``, but a script
    without that guard that acts on the duplicates it finds must never run twice. So by default a
    script's work stays in its own process unless it says it is guarded (the duplicate finder's ``workers=N``,
    the indexer's :data:`lookalike.index.pool.USE_PROCESSES`)."""
    main = sys.modules.get("__main__")
    name = getattr(getattr(main, "__spec__", None), "name", None)
    if name is not None:
        return name == "__main__" or name.endswith(".__main__")
    return getattr(main, "__file__", None) is None
