"""What an indexing run reports: :class:`IndexReport`, with one :class:`IndexFailure` per file it could not
index or left out on purpose."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

#: progress(done, total) -- called from the calling thread.
Progress = Callable[[int, int], None]


@dataclass
class IndexFailure:
    """A file the run could not index (or, in ``IndexReport.skipped``, left out on purpose), and why."""

    path: str
    error: str

    def to_json(self) -> dict:
        return {"path": self.path, "error": self.error}


@dataclass
class IndexReport:
    """What an indexing run did. ``paths`` lists every good (indexed) file in walk order.

    ``failed``: files that could not be read or decoded (an input that does not exist is an error before
    the run, see :func:`lookalike.index.index_paths`); ``skipped``: paths the walk left out on purpose, with
    the reason (symlinks out of the searched folders, lookalike's own data folder, broken links)."""

    new: int = 0
    changed: int = 0
    unchanged: int = 0
    failed: list[IndexFailure] = field(default_factory=list)
    skipped: list[IndexFailure] = field(default_factory=list)
    truncated: list[str] = field(default_factory=list)
    paths: list[str] = field(default_factory=list)
    seconds: float = 0.0
    decoded: int = 0  # files actually decoded this run
    reused: int = 0  # new/changed files whose content was already known (moved, renamed, copied)

    def count(self, status: str) -> None:
        """One more file of this status: "new", "changed" or "unchanged"."""
        if status == "new":
            self.new += 1
        elif status == "changed":
            self.changed += 1
        else:
            self.unchanged += 1

    def to_json(self) -> dict:
        return {
            "new": self.new,
            "changed": self.changed,
            "unchanged": self.unchanged,
            "failed": [f.to_json() for f in self.failed],
            "skipped": [f.to_json() for f in self.skipped],
            "seconds": round(self.seconds, 3),
        }
