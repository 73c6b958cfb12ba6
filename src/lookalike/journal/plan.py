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

Every operation that removes or replaces a file (``delete``, ``trash``, ``link`` with ``replace``) names its
keeper: ``keep`` (the file that holds the content from now on; for a link, its ``target``) and
``keep_sha256`` (the keeper's content when the plan was made). ``apply`` (and ``--resume``) refuses such an
operation unless the keeper is still there, a regular file (not a symlink), outside lookalike's own data
folder, with that sha256, and not the same file (inode) as the one removed. Only lookalike's own files (inside
its data folder, e.g. a face model being removed) need no keeper. Names that are not UTF-8 are written with
``\\udcXX`` escapes and read back unchanged.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from lookalike.errors import UsageError
from lookalike.journal.fsops import fingerprint, json_text

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
    - ``trash``/``delete``: ``path`` (a copy is kept in the journal until ``lookalike journal purge``). A
      ``delete`` with ``kind="symbolic"`` removes a symbolic link as such; its keeper is its target.
    - ``link``: make ``path`` a ``kind`` ("symbolic" or "hard") link to ``target``. With ``replace`` the
      existing file at ``path`` is replaced (and kept in the journal); without, a new link is made (a free
      name is used if ``path`` is taken). ``fallback="copy"`` copies ``target`` where links are impossible.
    - ``mkdir``: create the folder ``path`` (and missing parents).

    ``keep``/``keep_sha256``: the keeper of a trash, delete or replacing link (for a link, ``keep`` is its
    ``target``), checked before the operation runs (see the module's docstring).
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
    keep: str | None = None  # the keeper of a trash/delete/replacing link (absolute path)
    keep_sha256: str | None = None  # the keeper's content when the plan was made

    def validate(self) -> None:
        """Raise UsageError when the operation is malformed."""
        if self.op not in OP_FIELDS:
            raise UsageError(f"unknown operation {self.op!r} (known: {', '.join(OP_FIELDS)})")
        for name in OP_FIELDS[self.op]:
            if not getattr(self, name):
                raise UsageError(f"operation {self.op!r} needs a {name!r} field")
        for name in ("src", "dst", "path", "target", "kind", "fallback", "sha256", "note", "keep", "keep_sha256"):
            value = getattr(self, name)
            if value is not None and not isinstance(value, str):
                raise UsageError(f"the {name!r} field of operation {self.op!r} must be a string, not {value!r}")
        if self.op != "link" and self.kind is not None and not (self.op == "delete" and self.kind == "symbolic"):
            raise UsageError(f"operation {self.op!r} takes no 'kind' (only a link, or a delete of a symbolic link: "
                             f"kind 'symbolic'), not {self.kind!r}")
        if self.op == "link":
            if self.kind not in LINK_KINDS:
                raise UsageError(f"link kind must be one of {LINK_KINDS}, not {self.kind!r}")
            if self.fallback not in (None, "copy"):
                raise UsageError(f"link fallback must be 'copy' or absent, not {self.fallback!r}")

    @property
    def removes(self) -> bool:
        """Whether this operation removes or replaces a file (and so must name its keeper)."""
        return self.op in ("trash", "delete") or (self.op == "link" and self.replace)

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
        if self.keep:
            d["keep"] = self.keep
        if self.keep_sha256:
            d["keep_sha256"] = self.keep_sha256
        if self.note:
            d["note"] = self.note
        return d

    @classmethod
    def from_json(cls, d: dict[str, Any], base: Path | None = None) -> Op:
        if not isinstance(d, dict) or "op" not in d:
            raise UsageError(f"not an operation: {d!r}")
        unknown = set(d) - {"op", "src", "dst", "path", "target", "kind", "replace", "fallback", "sha256", "note",
                            "keep", "keep_sha256"}
        if unknown:
            raise UsageError(f"unknown field(s) {sorted(unknown)} in operation {d!r}")
        if not isinstance(d.get("replace", False), bool):
            raise UsageError(f"the 'replace' field must be true or false in operation {d!r}")
        op = cls(
            op=d["op"], src=d.get("src"), dst=d.get("dst"), path=d.get("path"), target=d.get("target"),
            kind=d.get("kind"), replace=bool(d.get("replace", False)), fallback=d.get("fallback"),
            sha256=d.get("sha256"), note=d.get("note"), keep=d.get("keep"), keep_sha256=d.get("keep_sha256"),
        )
        if not isinstance(op.op, str):
            raise UsageError(f"not an operation: {d!r}")
        for name in ("src", "dst", "path", "target", "keep"):
            if getattr(op, name) is not None and not isinstance(getattr(op, name), str):
                raise UsageError(f"the {name!r} field must be a string in operation {d!r}")
        for name in ("src", "dst", "path", "target", "keep"):  # journals hold absolute paths (undo may run elsewhere)
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
    it is already known, e.g. from the catalog), so that ``apply_plan`` can refuse files changed since; the
    keeper's sha256 likewise (``keep_sha256=``).

    ``skipped``: files the plan's builder left out on purpose, each ``{"path", "reason"}`` (shown to the user,
    written to the plan file; apply ignores them)."""

    operations: list[Op] = field(default_factory=list)
    description: str = ""
    skipped: list[dict[str, str]] = field(default_factory=list)
    _keeper_hashes: dict[str, tuple[tuple[int, ...], str | None]] = field(default_factory=dict, repr=False,
                                                                            compare=False)

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
        if op.op == "link" and op.replace and op.keep is None:
            op.keep = op.target
        if hash_source and op.keep and op.keep_sha256 is None and os.path.lexists(op.keep):
            op.keep_sha256 = self._keeper_hash(op.keep)
        self.operations.append(op)
        return op

    def _keeper_hash(self, keep: str) -> str | None:
        """The keeper's fingerprint, hashed once per plan while its stat (inode, size, times) is unchanged."""
        st = os.lstat(keep)
        sig = (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns)
        cached = self._keeper_hashes.get(keep)
        if cached is None or cached[0] != sig:
            cached = (sig, fingerprint(keep))
            self._keeper_hashes[keep] = cached
        return cached[1]

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

    def trash(self, path: str | os.PathLike, sha256: str | None = None, keep: str | os.PathLike | None = None,
              keep_sha256: str | None = None) -> Op:
        """Send ``path`` to the OS trash; ``keep`` is the file that keeps its content (hashed now unless
        ``keep_sha256`` is given). Only lookalike's own files may go without a keeper."""
        return self.add(Op("trash", path=_absolute(path), sha256=sha256, keep=_absolute(keep) if keep else None,
                           keep_sha256=keep_sha256))

    def delete(self, path: str | os.PathLike, sha256: str | None = None, keep: str | os.PathLike | None = None,
               keep_sha256: str | None = None) -> Op:
        """Delete ``path`` (kept in the journal until purged); ``keep`` as for :meth:`trash`."""
        return self.add(Op("delete", path=_absolute(path), sha256=sha256, keep=_absolute(keep) if keep else None,
                           keep_sha256=keep_sha256))

    def link(self, path: str | os.PathLike, target: str | os.PathLike, kind: str = "symbolic", replace: bool = False,
             fallback: str | None = None, sha256: str | None = None, keep_sha256: str | None = None) -> Op:
        """Make ``path`` a link to ``target`` (replacing the file at ``path`` when ``replace``: then ``target``
        is its keeper, hashed now unless ``keep_sha256`` is given)."""
        target = _absolute(target)
        return self.add(Op("link", path=_absolute(path), target=target, kind=kind, replace=replace,
                           fallback=fallback, sha256=sha256, keep=target if replace else None,
                           keep_sha256=keep_sha256 if replace else None))

    def unlink(self, path: str | os.PathLike, keep: str | os.PathLike | None = None,
               keep_sha256: str | None = None) -> Op:
        """Remove the symbolic link at ``path`` (e.g. one an earlier run made; it is kept in the journal and undo
        puts it back). Its keeper is the file it points to (``keep``, default its own target): apply checks that
        the link still points exactly there and that this file passes the keeper check."""
        path = _absolute(path)
        if keep is None:
            keep = os.path.normpath(os.path.join(os.path.dirname(path), os.readlink(path)))
        return self.add(Op("delete", path=path, kind="symbolic", keep=_absolute(keep), keep_sha256=keep_sha256))

    def mkdir(self, path: str | os.PathLike) -> Op:
        return self.add(Op("mkdir", path=_absolute(path)))

    def to_json(self) -> dict[str, Any]:
        d: dict[str, Any] = {"lookalike_plan": PLAN_VERSION, "description": self.description}
        if self.skipped:
            d["skipped"] = self.skipped
        d["operations"] = [op.to_json() for op in self.operations]
        return d

    def dumps(self) -> str:
        """The plan as JSON text with one operation per line (names that are not UTF-8 as ``\\udcXX`` escapes)."""
        head_d: dict[str, Any] = {"lookalike_plan": PLAN_VERSION, "description": self.description}
        if self.skipped:
            head_d["skipped"] = self.skipped
        head = json_text(head_d)
        lines = [json_text(op.to_json()) for op in self.operations]
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
        skipped = data.get("skipped") or []
        if not isinstance(skipped, list) or not all(isinstance(s, dict) for s in skipped):
            raise UsageError("a plan's 'skipped' field is a list of {\"path\", \"reason\"} objects")
        return cls(operations=ops, description=str(data.get("description", "")), skipped=skipped)


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
    except UnicodeDecodeError:
        raise UsageError(f"{path} is not a plan: it is not UTF-8 text (damaged?)") from None
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
