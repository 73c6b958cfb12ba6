"""What the duplicate finder returns: groups (keeper + members with tier and score) and errors."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from lookalike.options import DUPES_TIERS

TIERS = DUPES_TIERS  # exact < pixel < near < similar


@dataclass
class Member:
    path: str
    tier: str  # "exact" | "pixel" | "near" | "similar"
    score: float  # 1.0 for exact/pixel; aligned correlation for near; cosine for similar
    linked_to: str = ""  # the file it was matched against (the keeper, or a group mate)
    sha256: str = ""  # the catalog's content hash when the search ran ("" when unknown)
    facts: dict | None = None  # what the keeper choice saw of it (see file_facts_json)

    def to_json(self) -> dict:
        data = {"path": self.path, "tier": self.tier, "score": round(float(self.score), 4)}
        if self.facts is not None:
            data["facts"] = self.facts
        return data


def file_facts_json(f) -> dict:
    """A file's facts as the keeper choice compared them (a ``keeper.FileFacts``), for people:
    ``{"width", "height", "bytes", "format", "taken", "modified"}``; ``taken`` is the EXIF capture date
    (``YYYY-MM-DD HH:MM:SS``, null when the picture has none), ``modified`` the file's modification time
    (local time, ISO 8601 with offset)."""
    taken = f.exif_datetime
    if taken:
        taken = str(taken)[:19]
        taken = taken[:10].replace(":", "-") + taken[10:]
    try:
        modified = datetime.fromtimestamp(f.mtime_ns / 1e9).astimezone().isoformat(timespec="seconds")
    except (OverflowError, OSError, ValueError):
        modified = None
    return {"width": int(f.width or 0), "height": int(f.height or 0), "bytes": int(f.bytes or 0),
            "format": f.format or "", "taken": taken or None, "modified": modified}


@dataclass
class Alias:
    """Another name of one file of a group: a symbolic link to it, or a second hard link. It is the same
    file (it costs no space), so it is reported but is never a keeper nor acted on as a duplicate."""

    path: str
    to: str  # the group's file it names (the keeper or a member)
    kind: str  # "symlink" | "hardlink"

    def to_json(self) -> dict:
        return {"path": self.path, "to": self.to, "kind": self.kind}


@dataclass
class Group:
    keep: str
    reason: str
    members: list[Member] = field(default_factory=list)
    protected: list[str] = field(default_factory=list)  # members under --keep-in: never acted on
    keep_protected: bool = False  # the keeper itself lies under --keep-in
    keep_sha256: str = ""  # the keeper's content hash when the search ran ("" when unknown)
    links: list[Alias] = field(default_factory=list)  # other names of the group's files: never acted on
    keep_facts: dict | None = None  # the keeper's facts (see file_facts_json)

    def to_json(self) -> dict:
        data: dict = {"keep": self.keep}
        if self.keep_facts is not None:
            data["keep_facts"] = self.keep_facts
        data.update(reason=self.reason, members=[m.to_json() for m in self.members])
        if self.links:
            data["links"] = [a.to_json() for a in self.links]
        return data

    @property
    def paths(self) -> list[str]:
        return [self.keep, *(m.path for m in self.members)]


@dataclass
class DupesFailure:
    """A file the search could not read (or that vanished during it): a record in ``DupesReport.errors``, not
    an exception."""

    path: str
    error: str

    def to_json(self) -> dict:
        return {"path": self.path, "error": self.error}


@dataclass
class DupesReport:
    """Groups of duplicates, files that could not be read, and what each stage did (``stats``)."""

    tier: str
    groups: list[Group] = field(default_factory=list)
    errors: list[DupesFailure] = field(default_factory=list)
    stats: dict = field(default_factory=dict)

    def to_json(self) -> dict:
        return {"groups": [g.to_json() for g in self.groups], "errors": [e.to_json() for e in self.errors]}

    def csv_rows(self) -> list[list]:
        """One row per file: group number, role (keep/duplicate), path, tier, score, reason."""
        rows: list[list] = []
        for n, g in enumerate(self.groups, 1):
            rows.append([n, "keep", g.keep, "", "", g.reason])
            rows.extend([n, "duplicate", m.path, m.tier, round(m.score, 4), ""] for m in g.members)
            rows.extend([n, a.kind, a.path, "", "", f"same file as {a.to}"] for a in g.links)
        return rows

    CSV_HEADER = ("group", "role", "path", "tier", "score", "reason")

    @property
    def duplicate_count(self) -> int:
        return sum(len(g.members) for g in self.groups)
