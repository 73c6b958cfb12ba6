"""docs/ARCHITECTURE.md's map names every module of src/lookalike/ and nothing that is not there.

The map is the first code block of the document, starting with ``src/lookalike/``. Each entry starts at an
indentation of two spaces: a top-level module (``similar.py``) or a package (``dupes/``). A package's entry
(its first line and the lines indented under it) names each of its modules as ``name.py`` (a sub-package's as
``routes/name.py``). A newcomer finds each command's code from its name through this map, so it must stay
true to the folders one to one."""

from __future__ import annotations

import re

from conftest import ROOT, SRC

PACKAGE = SRC / "lookalike"
ARCHITECTURE = ROOT / "docs" / "ARCHITECTURE.md"
ENTRY = re.compile(r"^  (\S+)")
MODULE = re.compile(r"(?<![\w./])((?:\w+/)*\w+\.py)\b")


def _map_entries() -> dict[str, str]:
    """{entry name: the text of its lines}, from the map block."""
    text = ARCHITECTURE.read_text(encoding="utf-8")
    block = re.search(r"```\nsrc/lookalike/\n(.*?)```", text, re.S)
    assert block, "docs/ARCHITECTURE.md has no map block starting with src/lookalike/"
    entries: dict[str, str] = {}
    current = None
    for line in block.group(1).splitlines():
        m = ENTRY.match(line)
        if m:
            current = m.group(1)
            assert current not in entries, f"{current} appears twice in the map"
            entries[current] = line[len(current) + 2:]
        elif current and line.strip():
            entries[current] += "\n" + line
    return entries


def _modules_on_disk() -> set[str]:
    return {p.relative_to(PACKAGE).as_posix() for p in PACKAGE.rglob("*.py") if "__pycache__" not in p.parts}


def _modules_in_map(entries: dict[str, str]) -> set[str]:
    named = set()
    for name, text in entries.items():
        if name.endswith("/"):
            named |= {name + m for m in MODULE.findall(text)}
        else:
            named.add(name)
    return named


def test_every_module_is_in_the_map():
    missing = sorted(_modules_on_disk() - _modules_in_map(_map_entries()))
    assert not missing, f"modules missing from docs/ARCHITECTURE.md's map: {missing}"


def test_the_map_names_nothing_that_does_not_exist():
    entries = _map_entries()
    gone = sorted(_modules_in_map(entries) - _modules_on_disk())
    assert not gone, f"docs/ARCHITECTURE.md's map names modules that do not exist: {gone}"
    packages = {p.relative_to(PACKAGE).as_posix() + "/" for p in PACKAGE.iterdir()
                if p.is_dir() and (p / "__init__.py").exists()}
    assert {n for n in entries if n.endswith("/")} == packages
