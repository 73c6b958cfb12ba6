"""Rank prefixes: ``sort --rename`` (``0001_IMG_4711.jpg``) and ``sort --strip``, through the journal.

The catalog remembers which names carry a prefix lookalike added (``catalog/organise.py``), so a second
``--rename`` replaces the prefix instead of stacking a new one, and ``--strip`` removes only lookalike's
prefixes (a user's ``2019_holiday.jpg`` is left alone). A record is trusted only while the file keeps the
size and mtime it had when renamed.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

from lookalike.api import open_catalog
from lookalike.catalog import Catalog
from lookalike.catalog import organise as records
from lookalike.journal import ApplyReport, Plan
from lookalike.media import iter_images
from lookalike.organise.sort import rank_width

_TMP = ".lookalike-renaming"


def _stat(path: str) -> tuple[int, int] | None:
    try:
        st = os.stat(path)
    except OSError:
        return None
    return st.st_size, st.st_mtime_ns


def prefix_lengths(paths: Sequence[str], catalog: Catalog) -> dict[str, int]:
    """path -> length of the lookalike rank prefix its name carries (digits, without the '_')."""
    found = records.prefixes(catalog, list(paths))
    out = {}
    for p, (n, size, mtime) in found.items():
        name = os.path.basename(p)
        if _stat(p) == (size, mtime) and len(name) > n + 1 and name[:n].isdigit() and name[n] == "_":
            out[p] = n
    return out


def original_name(path: str, prefix_len: int | None) -> str:
    name = os.path.basename(path)
    return name[prefix_len + 1 :] if prefix_len is not None else name


def plan_rename(order: Sequence[str], catalog: Catalog | str | Path | None = None) -> Plan:
    """A journal plan giving each photo of ``order`` the prefix of its rank (``0001_``; width fits the count).

    A prefix lookalike added earlier is replaced, never stacked. When a new name is still held by another
    photo of the plan, every rename goes through a temporary name first so no name is ever taken twice."""
    cat = open_catalog(catalog)
    order = [os.path.abspath(p) for p in order]
    width = rank_width(len(order))
    known = prefix_lengths(order, cat)
    moves: list[tuple[str, str]] = []
    for rank, path in enumerate(order, 1):
        new = f"{rank:0{width}d}_{original_name(path, known.get(path))}"
        if new != os.path.basename(path):
            moves.append((path, new))
    plan = Plan(description=f"sort --rename ({len(order)} photos)")
    sources = {src for src, _ in moves}
    clash = any(os.path.join(os.path.dirname(src), new) in sources for src, new in moves)
    if not clash:
        for src, new in moves:
            plan.rename(src, new)
        return plan
    for i, (src, new) in enumerate(moves):
        plan.rename(src, f"{_TMP}-{i}-{new}")
    for i, (src, new) in enumerate(moves):
        op = plan.operations[i]
        plan.rename(os.path.join(os.path.dirname(src), f"{_TMP}-{i}-{new}"), new, sha256=op.sha256)
    return plan


def plan_strip(
    paths: Sequence[str | Path], catalog: Catalog | str | Path | None = None, recursive: bool = True
) -> Plan:
    """A journal plan removing the rank prefixes lookalike added to the photos under ``paths``."""
    cat = open_catalog(catalog)
    files = sorted(set(iter_images([str(p) for p in paths], recursive=recursive)))
    known = prefix_lengths(files, cat)
    plan = Plan(description=f"sort --strip ({len(known)} photos)")
    for path in files:
        if path in known:
            plan.rename(path, original_name(path, known[path]))
    return plan


def record_applied(report: ApplyReport, catalog: Catalog | str | Path | None = None) -> None:
    """Remember the prefixed names a rename plan produced (call it after ``apply_plan``).

    Old rows are kept: they stay valid only for a file with the same name, size and mtime, which is exactly
    what ``lookalike undo`` brings back."""
    cat = open_catalog(catalog)
    rows = []
    for op in report.operations:
        if op.get("op") != "rename" or not op.get("dst"):
            continue
        dst = op["dst"]
        name = os.path.basename(dst)
        head, sep, _ = name.partition("_")
        st = _stat(dst)
        if sep and head.isdigit() and not name.startswith(_TMP) and st:
            rows.append((dst, len(head), st[0], st[1]))
    records.record_prefixes(cat, rows)


def record_planned(plan: Plan, catalog: Catalog | str | Path | None = None) -> None:
    """Remember the prefixed names of a rename plan that is saved for ``lookalike apply`` instead of run now.

    Renames keep size and mtime, so the rows are written with the source's: they become valid once the plan
    is applied and stay harmless if it never is."""
    cat = open_catalog(catalog)
    first: dict[str, str] = {}  # temporary path -> the photo's path before the plan
    rows = []
    for op in plan.operations:
        if op.op != "rename" or not op.src or not op.dst:
            continue
        src = first.pop(op.src, op.src)
        name = os.path.basename(op.dst)
        if name.startswith(_TMP):
            first[op.dst] = src
            continue
        head, sep, _ = name.partition("_")
        st = _stat(src)
        if sep and head.isdigit() and st:
            rows.append((op.dst, len(head), st[0], st[1]))
    records.record_prefixes(cat, rows)
