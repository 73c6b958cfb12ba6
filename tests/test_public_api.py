"""The public Python API: the names ``lookalike`` exports and the signature of each callable, pinned as text.

A failure here means the public API changed: on purpose, update the pins below (and say so in the changelog);
by accident, put the name or the signature back."""

from __future__ import annotations

import inspect
import subprocess
import sys

import lookalike
from conftest import SRC

EXPORTED = [
    "CatalogError", "Collection", "DecodeError", "DupesReport", "FeatureExport", "IndexReport", "LookalikeError",
    "ModelError", "SimilarResult", "UsageError", "__version__", "apply_plan", "cluster_folder", "embed",
    "export_features", "find_duplicates", "find_similar", "index_paths", "plan_for", "sort_folder", "undo",
    "unique_frames",
]

SIGNATURES = {
    "Collection": (
        "(*paths: 'str | Path', catalog: 'Catalog | str | Path | None' = None, "
        "recursive: 'bool' = True) -> 'None'"
    ),
    "DupesReport": (
        "(tier: 'str', groups: 'list[Group]' = <factory>, errors: 'list[DupesFailure]' = <factory>, "
        "stats: 'dict' = <factory>) -> None"
    ),
    "FeatureExport": (
        "(model: 'str', kind: 'str', paths: 'list[str]', matrix: 'np.ndarray') -> None"
    ),
    "IndexReport": (
        "(new: 'int' = 0, changed: 'int' = 0, unchanged: 'int' = 0, "
        "failed: 'list[IndexFailure]' = <factory>, skipped: 'list[IndexFailure]' = <factory>, "
        "truncated: 'list[str]' = <factory>, paths: 'list[str]' = <factory>, seconds: 'float' = 0.0, "
        "decoded: 'int' = 0, reused: 'int' = 0) -> None"
    ),
    "SimilarResult": (
        "(query: 'str', model: 'str', results: 'list[Hit]' = <factory>) -> None"
    ),
    "apply_plan": (
        "(plan: 'Plan | str | os.PathLike', journal_dir: 'str | os.PathLike | None' = None, "
        "progress: 'Progress' = None, dry_run: 'bool' = False) -> 'ApplyReport'"
    ),
    "cluster_folder": (
        "(folders: 'Sequence[str | Path] | str | Path', sim: 'float' = 0.45, method: 'str' = 'ward', "
        "min_size: 'int' = 2, time_weight: 'float' = 0.0, model: 'str' = 'effnet', *, relative: 'bool' = False, "
        "out: 'str | Path | None' = None, mode: 'str | None' = None, sheet: 'bool' = False, plot: 'bool' = False, "
        "dry_run: 'bool' = False, recursive: 'bool' = True, catalog: 'Catalog | str | Path | None' = None, "
        "progress: 'Progress | None' = None, dask: 'str | int | None' = None) -> 'ClusterResult'"
    ),
    "embed": (
        "(image: 'ImageSource', model: 'str' = 'effnet') -> 'np.ndarray'"
    ),
    "export_features": (
        "(folders: 'Iterable[str | Path]', model: 'str' = 'effnet', "
        "catalog: 'Catalog | str | Path | None' = None, recursive: 'bool' = True, "
        "progress: 'Progress | None' = None) -> 'FeatureExport'"
    ),
    "find_duplicates": (
        "(paths: 'Sequence[str | Path]', tier: 'str' = 'near', threshold: 'float | None' = None, "
        "keep: 'str | Sequence[str] | None' = None, keep_in: 'Sequence[str | Path]' = (), "
        "catalog: 'Catalog | str | Path | None' = None, progress: 'Progress | None' = None, "
        "recursive: 'bool' = True, workers: 'int | None' = None, dask: 'str | int | None' = None) -> 'DupesReport'"
    ),
    "find_similar": (
        "(query: 'ImageSource', folders: 'Iterable[str | Path]', k: 'int' = 5, model: 'str' = 'effnet', "
        "catalog: 'Catalog | str | Path | None' = None, recursive: 'bool' = True, "
        "progress: 'Progress | None' = None) -> 'SimilarResult'"
    ),
    "index_paths": (
        "(paths: 'Iterable[str | Path]', catalog: 'Catalog | str | Path | None' = None, "
        "models: 'Sequence[str]' = ('effnet',), recursive: 'bool' = True, "
        "progress: 'Progress | None' = None, cluster: 'str | int | None' = None) -> 'IndexReport'"
    ),
    "plan_for": (
        "(report: 'DupesReport', action: 'str', dest: 'str | Path | None' = None, "
        "link_kind: 'str' = 'hard') -> 'Plan'"
    ),
    "sort_folder": (
        "(folders: 'Sequence[str | Path] | str | Path', model: 'str' = 'effnet', *, rename: 'bool' = False, "
        "strip: 'bool' = False, plan_file: 'str | os.PathLike | None' = None, dry_run: 'bool' = False, "
        "recursive: 'bool' = True, catalog: 'Catalog | str | Path | None' = None, "
        "progress: 'Progress | None' = None, k: 'int' = 10, dask: 'str | int | None' = None) -> 'SortReport'"
    ),
    "undo": (
        "(journal: 'str | os.PathLike | Journal | None' = None, "
        "journal_dir: 'str | os.PathLike | None' = None, progress: 'Progress' = None, *, "
        "journal_path: 'str | os.PathLike | None' = None) -> 'UndoReport'"
    ),
    "unique_frames": (
        "(sources: 'Iterable[str | Path] | str | Path', out_dir: 'str | Path', "
        "every: 'int | None' = None, fps: 'float | None' = None, crop: 'float | None' = None, "
        "threshold: 'int | None' = None, progress: 'Progress | None' = None, *, "
        "pixel_threshold: 'float' = 12.0, recursive: 'bool' = True, quality: 'int' = 92) -> 'VideoReport'"
    ),
}


def test_exported_names_are_pinned():
    assert sorted(lookalike.__all__) == sorted(EXPORTED)
    assert len(set(lookalike.__all__)) == len(lookalike.__all__)


def test_signatures_are_pinned():
    got = {}
    for name in lookalike.__all__:
        obj = getattr(lookalike, name)
        if callable(obj) and not (isinstance(obj, type) and issubclass(obj, BaseException)):
            got[name] = str(inspect.signature(obj))
    assert got == SIGNATURES


def test_import_is_cheap_and_names_resolve_lazily():
    """``import lookalike`` loads no numpy, PIL or model code; each exported name then resolves, and an unknown
    one is an AttributeError."""
    code = (
        "import sys, lookalike\n"
        "heavy = [m for m in ('numpy', 'PIL', 'lookalike.index', 'lookalike.similar') if m in sys.modules]\n"
        "assert not heavy, heavy\n"
        "missing = [n for n in lookalike.__all__ if getattr(lookalike, n, None) is None]\n"
        "assert not missing, missing\n"
        "assert not hasattr(lookalike, 'no_such_name')\n"
    )
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env={"PYTHONPATH": str(SRC)},
                         timeout=120)
    assert res.returncode == 0, res.stderr


def test_public_names_do_not_shadow_subpackages():
    """A public name equal to a subpackage's would be replaced by the module once that subpackage is imported."""
    import pkgutil

    modules = {m.name for m in pkgutil.iter_modules(lookalike.__path__)}
    assert not modules & set(lookalike.__all__)
