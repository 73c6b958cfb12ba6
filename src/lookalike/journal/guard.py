"""Where lookalike's own files live, for the journal's pre-action checks.

lookalike's data folder (``config.home_dir()``: catalog, models, face models, journals with their kept copies)
is never a keeper of a user's photo, and the journals' folders are never acted on at all: a kept copy that a
clean-up deleted would make an earlier run impossible to undo. Every comparison is made on resolved paths, so
a symlinked folder (or ``LOOKALIKE_HOME`` given through one) cannot hide them.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from lookalike import config


def real_name(path: str) -> str:
    """``path`` with its folders resolved but not its last component (a symlink is itself the file acted on)."""
    head, name = os.path.split(os.path.abspath(path))
    return os.path.join(os.path.realpath(head), name) if name else os.path.realpath(head)


def _inside(path: str, folder: str) -> bool:
    return path == folder or path.startswith(folder.rstrip(os.sep) + os.sep)


def _resolved(folders: list[str | os.PathLike | None]) -> tuple[str, ...]:
    out: list[str] = []
    for f in folders:
        if f:
            r = os.path.realpath(os.path.expanduser(os.fspath(f)))
            if r not in out:
                out.append(r)
    return tuple(out)


@dataclass
class Guard:
    """lookalike's own folders, resolved: ``data`` (the home folder, and the model and face-model folders when
    they are set elsewhere) and ``journals`` (the journals' root, and the one a run was given). Folders are
    resolved once per Guard (one run)."""

    data: tuple[str, ...]
    journals: tuple[str, ...]
    _real_dirs: dict[str, str] = field(default_factory=dict, repr=False, compare=False)

    def _real(self, path: str, follow: bool) -> str:
        if follow and os.path.islink(path):
            return os.path.realpath(path)
        head, name = os.path.split(os.path.abspath(path))
        if not name:
            return os.path.realpath(head)
        real = self._real_dirs.get(head)
        if real is None:
            real = self._real_dirs[head] = os.path.realpath(head)
        return os.path.join(real, name)

    @classmethod
    def current(cls, journal_root: str | os.PathLike | None = None) -> Guard:
        home = config.home_dir()
        data = _resolved([home, os.environ.get("LOOKALIKE_MODEL_DIR"), os.environ.get("LOOKALIKE_FACES_DIR")])
        journals = _resolved([Path(home) / "journals", journal_root])
        return cls(data + tuple(j for j in journals if j not in data and not any(_inside(j, d) for d in data)),
                   journals)

    def data_folder_of(self, path: str, follow: bool = False) -> str | None:
        """The data folder ``path`` lies in (``follow``: also resolve its last component), or None."""
        p = self._real(path, follow)
        return next((d for d in self.data if _inside(p, d)), None)

    def journal_folder_of(self, path: str, follow: bool = False) -> str | None:
        """The journals' folder ``path`` lies in, or None."""
        p = self._real(path, follow)
        return next((j for j in self.journals if _inside(p, j)), None)


def inside_data_folder(path: str | os.PathLike) -> str | None:
    """The lookalike data folder (resolved) that ``path`` lies in, resolving every component, or None.
    Files there are lookalike's own: never a keeper, never a duplicate to clean up."""
    return Guard.current().data_folder_of(os.fspath(path), follow=True)
