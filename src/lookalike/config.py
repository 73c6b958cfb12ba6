"""Where lookalike keeps its state: the catalog, model files, journals.

Everything lives under one home folder: ``$LOOKALIKE_HOME`` if set, else the user's cache folder
(``platformdirs.user_cache_dir("lookalike")``). Model files may be kept elsewhere with
``$LOOKALIKE_MODEL_DIR``.
"""

from __future__ import annotations

import ast
import functools
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
    top level would run again in each worker: harmless when it only imports and defines and runs the rest
    behind ``if __name__ == "__main__":`` (the ``lookalike`` command's own script, as pip writes it), but a
    script without that guard that acts on the duplicates it finds must never run twice. So any other
    script's work stays in its own process unless it says it is guarded (the duplicate finder's
    ``workers=N``, the indexer's :data:`lookalike.index.pool.USE_PROCESSES`)."""
    main = sys.modules.get("__main__")
    name = getattr(getattr(main, "__spec__", None), "name", None)
    if name is not None:
        return name == "__main__" or name.endswith(".__main__")
    path = getattr(main, "__file__", None)
    if path is None:
        return True
    try:
        return _only_defines(os.fsdecode(path), os.stat(path).st_mtime_ns)
    except OSError:
        return False


@functools.lru_cache(maxsize=8)
def _only_defines(path: str, mtime_ns: int) -> bool:
    """Whether a script's top level only imports and defines (a docstring, imports, functions, classes) and
    runs everything else under ``if __name__ == "__main__":`` (``mtime_ns``: the cache's key)."""
    try:
        with open(path, "rb") as fh:
            tree = ast.parse(fh.read(1 << 20))
    except (OSError, SyntaxError, ValueError):
        return False
    for node in tree.body:
        if isinstance(node, ast.Import | ast.ImportFrom | ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            continue
        if isinstance(node, ast.Expr) and isinstance(node.value, ast.Constant):
            continue
        if isinstance(node, ast.If) and not node.orelse and _is_main_guard(node.test):
            continue
        return False
    return True


def _is_main_guard(test: ast.expr) -> bool:
    if not (isinstance(test, ast.Compare) and len(test.ops) == 1 and isinstance(test.ops[0], ast.Eq)):
        return False
    sides = [test.left, test.comparators[0]]
    return (any(isinstance(x, ast.Name) and x.id == "__name__" for x in sides)
            and any(isinstance(x, ast.Constant) and x.value == "__main__" for x in sides))
