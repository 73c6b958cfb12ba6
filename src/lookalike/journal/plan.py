"""Plans: ordered lists of file operations, saved as a human-editable JSON file.

A plan file looks like this (one operation per line, so a user can delete lines before applying it)::

    {"lookalike_plan": 1, "description": "dupes --action move", "operations": [
    {"op": "move", "src": "/photos/a (copy).jpg", "dst": "/dupes/group_0001/a (copy).jpg", "sha256": "9f2c..."},
    {"op": "trash", "path": "/photos/b.jpg", "sha256": "41d0..."}
    ]}

``sha256`` is the content of the source when the plan was made; ``apply`` refuses an operation whose
source has changed since. It may be left out (then nothing is compared). Relative paths are taken
relative to the plan file's folder (to the current folder for a plan given as JSON data). A trailing
comma left behind after deleting the last line is accepted.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from lookalike.errors import UsageError
from lookalike.journal.fsops import fingerprint

PLAN_VERSION = 1

#: Operation kinds and the fields each one uses.
OP_FIELDS: dict[str, tuple[str, ...]] = {
    "move": ("src", "dst"),
    "copy": ("src", "dst"),
    "rename": ("src", "dst"),
    "trash": ("path",),
    "delete": ("path",),
    "link": ("path", "target"),
    "mkdir": ("path",),
}
LINK_KINDS = ("symbolic", "hard")


@dataclass
class Op:
    """One file operation.

    - ``move``/``rename``/``copy``: ``src`` to ``dst`` (a full path; a free name is used if it is taken; a move
      or copy to an existing folder goes inside it).
    - ``trash``/``delete``: ``path`` (a copy is kept in the journal until ``lookalike journal purge``).
    - ``link``: make ``path`` a ``kind`` ("symbolic" or "hard") link to ``target``. With ``replace`` the
      existing file at ``path`` is replaced (and kept in the journal); without, a new link is made (a free
      name is used if ``path`` is taken). ``fallback="copy"`` copies ``target`` where links are impossible.
    - ``mkdir``: create the folder ``path`` (and missing parents).
    """

    op: str
    src: str | None = None
    dst: str | None = None
    path: str | None = None
    target: str | None = None
    kind: str | None = None
    replace: bool = False
    fallback: str | None = None
    sha256: str | None = None
    note: str | None = None  # free text for the person reviewing the plan (e.g. why); ignored by apply

    def validate(self) -> None:
        """Raise UsageError when the operation is malformed."""
        if self.op not in OP_FIELDS:
            raise UsageError(f"unknown operation {self.op!r} (known: {', '.join(OP_FIELDS)})")
        for name in OP_FIELDS[self.op]:
            if not getattr(self, name):
                raise UsageError(f"operation {self.op!r} needs a {name!r} field")
        if self.op == "link":
            if self.kind not in LINK_KINDS:
                raise UsageError(f"link kind must be one of {LINK_KINDS}, not {self.kind!r}")
            if self.fallback not in (None, "copy"):
                raise UsageError(f"link fallback must be 'copy' or absent, not {self.fallback!r}")

    @property
    def source(self) -> str | None:
        """The existing file this operation reads or changes (None for mkdir and new links)."""
        if self.op in ("move", "copy", "rename"):
            return self.src
        if self.op in ("trash", "delete") or (self.op == "link" and self.replace):
            return self.path
        return None

    def to_json(self) -> dict[str, Any]:
        d: dict[str, Any] = {"op": self.op}
        for name in ("src", "dst", "path", "target", "kind"):
            value = getattr(self, name)
            if value is not None:
                d[name] = value
        if self.replace:
            d["replace"] = True
        if self.fallback:
            d["fallback"] = self.fallback
        if self.sha256:
            d["sha256"] = self.sha256
        if self.note:
            d["note"] = self.note
        return d

    @classmethod
    def from_json(cls, d: dict[str, Any], base: Path | None = None) -> Op:
        if not isinstance(d, dict) or "op" not in d:
            raise UsageError(f"not an operation: {d!r}")
        unknown = set(d) - {"op", "src", "dst", "path", "target", "kind", "replace", "fallback", "sha256", "note"}
        if unknown:
            raise UsageError(f"unknown field(s) {sorted(unknown)} in operation {d!r}")
        op = cls(
            op=d["op"], src=d.get("src"), dst=d.get("dst"), path=d.get("path"), target=d.get("target"),
            kind=d.get("kind"), replace=bool(d.get("replace", False)), fallback=d.get("fallback"),
            sha256=d.get("sha256"), note=d.get("note"),
        )
        for name in ("src", "dst", "path", "target"):  # journals hold absolute paths (undo may run elsewhere)
            value = getattr(op, name)
            if value is not None:
                setattr(op, name, _absolute(value, base))
        op.validate()
        return op


def _absolute(p: str, base: Path | None = None) -> str:
    """Absolute path without resolving symlinks (a symlink is itself the file to act on)."""
    p = os.path.expanduser(str(p))
    if not os.path.isabs(p):
        p = os.path.join(str(base) if base is not None else os.getcwd(), p)
    return os.path.normpath(p)


@dataclass
class Plan:
    """An ordered list of operations. Builder methods record each source's sha256 now (pass ``sha256=`` when
    it is already known, e.g. from the catalog), so that ``apply_plan`` can refuse files changed since."""

    operations: list[Op] = field(default_factory=list)
    description: str = ""

    def __len__(self) -> int:
        return len(self.operations)

    def __iter__(self):
        return iter(self.operations)

    def add(self, op: Op, hash_source: bool = True) -> Op:
        """Append an operation (validated); fills in the source's sha256 unless given or ``hash_source`` is False."""
        op.validate()
        src = op.source
        if hash_source and op.sha256 is None and src is not None and os.path.lexists(src):
            op.sha256 = fingerprint(src)
        self.operations.append(op)
        return op

    def move(self, src: str | os.PathLike, dst: str | os.PathLike, sha256: str | None = None) -> Op:
        return self.add(Op("move", src=_absolute(src), dst=_absolute(dst), sha256=sha256))

    def copy(self, src: str | os.PathLike, dst: str | os.PathLike, sha256: str | None = None) -> Op:
        return self.add(Op("copy", src=_absolute(src), dst=_absolute(dst), sha256=sha256))

    def rename(self, src: str | os.PathLike, new_name: str, sha256: str | None = None) -> Op:
        """Rename ``src`` within its folder (``new_name`` is a bare name)."""
        if os.sep in new_name or (os.altsep and os.altsep in new_name):
            raise UsageError(f"rename takes a file name, not a path: {new_name!r}")
        src = _absolute(src)
        return self.add(Op("rename", src=src, dst=os.path.join(os.path.dirname(src), new_name), sha256=sha256))

    def trash(self, path: str | os.PathLike, sha256: str | None = None) -> Op:
        return self.add(Op("trash", path=_absolute(path), sha256=sha256))

    def delete(self, path: str | os.PathLike, sha256: str | None = None) -> Op:
        return self.add(Op("delete", path=_absolute(path), sha256=sha256))

    def link(self, path: str | os.PathLike, target: str | os.PathLike, kind: str = "symbolic", replace: bool = False,
             fallback: str | None = None, sha256: str | None = None) -> Op:
        """Make ``path`` a link to ``target`` (replacing the file at ``path`` when ``replace``)."""
        return self.add(Op("link", path=_absolute(path), target=_absolute(target), kind=kind, replace=replace,
                           fallback=fallback, sha256=sha256))

    def mkdir(self, path: str | os.PathLike) -> Op:
        return self.add(Op("mkdir", path=_absolute(path)))

    def to_json(self) -> dict[str, Any]:
        return {"lookalike_plan": PLAN_VERSION, "description": self.description,
                "operations": [op.to_json() for op in self.operations]}

    def dumps(self) -> str:
        """The plan as JSON text with one operation per line."""
        head = json.dumps({"lookalike_plan": PLAN_VERSION, "description": self.description}, ensure_ascii=False)
        lines = [json.dumps(op.to_json(), ensure_ascii=False) for op in self.operations]
        body = ",\n".join(lines)
        return head[:-1] + ', "operations": [\n' + body + ("\n" if lines else "") + "]}\n"

    @classmethod
    def from_json(cls, data: Any, base: Path | None = None) -> Plan:
        if isinstance(data, list):  # a bare list of operations is accepted too
            data = {"operations": data}
        if not isinstance(data, dict) or not isinstance(data.get("operations"), list):
            raise UsageError("a plan is a JSON object with an 'operations' list")
        version = data.get("lookalike_plan", PLAN_VERSION)
        if version != PLAN_VERSION:
            raise UsageError(f"plan version {version} is not supported (expected {PLAN_VERSION})")
        ops = [Op.from_json(d, base) for d in data["operations"]]
        return cls(operations=ops, description=str(data.get("description", "")))


def write_plan(plan: Plan, file: str | os.PathLike) -> Path:
    """Write ``plan`` to ``file`` (one operation per line) and return its path."""
    path = Path(file)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(plan.dumps(), encoding="utf-8")
    os.replace(tmp, path)
    return path


def load_plan(file: str | os.PathLike) -> Plan:
    """Read a plan file (possibly edited by hand); relative paths are taken from the file's folder."""
    path = Path(file)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise UsageError(f"cannot read plan {path}: {exc.strerror or exc}") from exc
    try:
        data = json.loads(text)
    except json.JSONDecodeError:
        try:
            data = json.loads(_drop_trailing_commas(text))
        except json.JSONDecodeError as exc:
            raise UsageError(f"{path} is not valid JSON: {exc}") from exc
    return Plan.from_json(data, base=path.resolve().parent)


def _drop_trailing_commas(text: str) -> str:
    """Remove commas directly before a closing ] or } (outside strings): what deleting the last line leaves."""
    out: list[str] = []
    in_string = escaped = False
    pending_comma: list[str] | None = None  # a comma and the whitespace after it, not yet emitted
    for ch in text:
        if in_string:
            out.append(ch)
            if escaped:
                escaped = False
            elif ch == "\\":
                escaped = True
            elif ch == '"':
                in_string = False
            continue
        if pending_comma is not None:
            if ch.isspace():
                pending_comma.append(ch)
                continue
            if ch in "]}":
                out.extend(pending_comma[1:])
            else:
                out.extend(pending_comma)
            pending_comma = None
        if ch == ",":
            pending_comma = [ch]
            continue
        if ch == '"':
            in_string = True
        out.append(ch)
    if pending_comma is not None:
        out.extend(pending_comma)
    return "".join(out)
