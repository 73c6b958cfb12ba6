"""find_duplicates: index, exact and pixel classes, candidates, verification, grouping, keepers."""

from __future__ import annotations

import os
import stat as stat_mod
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from lookalike.catalog import Catalog, open_catalog
from lookalike.dupes.candidates import dihedral_distance, dihedral_pairs, dihedral_pairs_indexed, embedding_pairs
from lookalike.dupes.grouping import components, split_component
from lookalike.dupes.keeper import FileFacts, choose_keeper, parse_policy, resolve_folder, under_any
from lookalike.dupes.report import Alias, DupesFailure, DupesReport, Group, Member, file_facts_json
from lookalike.dupes.verify import Verifier
from lookalike.features import load_extractor
from lookalike.features.hashes import hash_to_hex
from lookalike.index import Progress, index_paths
from lookalike.media import check_inputs
from lookalike.options import check_dupes_options

#: The tier searched when none is given (edited copies; the CLI and the HTTP service use it too).
DEFAULT_TIER = "near"
#: Defaults, measured on bench/dupes_quality.py (see docs/BENCHMARKS.md).
NEAR_MIN_NCC = 0.87  # lower quartile of local aligned correlations for an edited copy
SIMILAR_MIN_COS = 0.80  # CNN cosine for "same scene" (similar tier)
CNN_MIN_COS = 0.50  # generous: candidates only, every one is verified
CNN_K = 12
HASH_MAX_BITS = 10
HASH_K = 10
HASH_SCAN_MAX = 20_000  # above this many pictures, hashes go through the multi-index (exact up to 3 bits)
ON_DEMAND_LIMIT = 64  # components up to this size get keeper links verified on demand

MODELS_FOR_TIER = {
    "exact": ("dihash",),  # any cheap model: the indexer records sha256 and picture facts
    "pixel": ("pixelsha",),
    "near": ("pixelsha", "dihash", "effnet"),
    "similar": ("pixelsha", "dihash", "effnet"),
}


def find_duplicates(
    paths: Sequence[str | Path],
    tier: str = DEFAULT_TIER,
    threshold: float | None = None,
    keep: str | Sequence[str] | None = None,
    keep_in: Sequence[str | Path] = (),
    catalog: Catalog | str | Path | None = None,
    progress: Progress | None = None,
    recursive: bool = True,
) -> DupesReport:
    """Groups of duplicate pictures under ``paths`` (all against all), one keeper per group.

    ``tier``: exact (same bytes) < pixel (same decoded pixels) < near (edited copies, default) <
    similar (same scene, looser); each includes the previous ones. ``threshold``: minimum aligned
    correlation (near, default 0.87) or CNN cosine (similar, default 0.80); unused by exact/pixel.
    ``keep``: keeper criteria in order (see keeper.CRITERIA). ``keep_in``: folders whose files are
    never acted on and win the keeper choice; they are scanned too.

    File identity: a file is its (st_dev, st_ino). Its names found by the scan are one file: a symbolic
    link (or chain of links) and its target, or two hard links, are never a keeper and duplicate of each
    other. The group holds the file once, under a regular (non-symlink) name; its other names are listed
    in ``Group.links``, never acted on. A symlink whose target was not scanned is left out. Options are
    validated (options.check_dupes_options) before anything is read."""
    check_dupes_options(tier, threshold, keep=keep)
    policy = parse_policy(keep)
    keep_args = check_inputs(str(d) for d in keep_in)  # a misspelt path: UsageError, nothing read
    roots = check_inputs(str(p) for p in paths)
    keep_dirs = [resolve_folder(d) for d in keep_args]  # compared resolved: see keeper.under
    cat = open_catalog(catalog)
    report = DupesReport(tier)
    stats = report.stats
    t0 = time.perf_counter()

    idx = index_paths(list(dict.fromkeys(roots + keep_args)), cat, MODELS_FOR_TIER[tier], recursive=recursive,
                      progress=progress)
    report.errors = [DupesFailure(f.path, f.error) for f in idx.failed]
    stats.update(files=len(idx.paths), errors=len(idx.failed), index_s=round(time.perf_counter() - t0, 2))
    files, aliases, protected, links = _identities(idx.paths, keep_dirs, report, stats)
    if not files:
        return report
    facts, content = _facts(cat, files)
    for p in files:
        facts[p].protected, facts[p].links = protected[p], links[p]

    # 1. exact / pixel classes: the nodes of the near-duplicate graph
    node_key = dict(content)
    if tier != "exact":
        ext = load_extractor("pixelsha")
        have, mat = cat.feature_matrix(files, ext.id, ext.version, ext.kind)
        node_key.update({p: "px:" + hash_to_hex(row) for p, row in zip(have, mat, strict=True)})
    classes: dict[str, list[str]] = {}
    for p in files:
        classes.setdefault(node_key[p], []).append(p)
    nodes = list(classes.values())
    stats["classes"] = len(nodes)

    edges: dict[tuple[int, int], tuple[str, float]] = {}
    verifier: Verifier | None = None
    if tier in ("near", "similar") and len(nodes) > 1:
        t1 = time.perf_counter()
        reps = [min(n) for n in nodes]
        verifier = Verifier(reps, min_ncc=threshold if (threshold is not None and tier == "near") else NEAR_MIN_NCC)
        sim_min = threshold if (threshold is not None and tier == "similar") else SIMILAR_MIN_COS
        edges = _near_edges(cat, reps, tier, verifier, sim_min, stats, progress)
        stats["verify_s"] = round(time.perf_counter() - t1, 2)

    # 2. groups
    t2 = time.perf_counter()
    report.groups = _groups(nodes, edges, facts, content, policy, verifier, stats)
    for g in report.groups:
        g.links = [a for p in g.paths for a in aliases.get(p, [])]
    stats["group_s"] = round(time.perf_counter() - t2, 2)
    stats["seconds"] = round(time.perf_counter() - t0, 2)
    return report


def _identities(paths: list[str], keep_dirs: list[str], report: DupesReport, stats: dict
                ) -> tuple[list[str], dict[str, list[Alias]], dict[str, bool], dict[str, int]]:
    """One name per file (st_dev, st_ino) among the indexed ``paths``, in walk order.

    Returns (names to group, other names per kept name, protected per kept name, symlinks per kept
    name). The name kept for a file is a regular one (never a symlink): one under --keep-in first, then
    the shortest. A file is protected when any of its names (symlinks included) lies under --keep-in:
    removing it would break that name. Files reached only through symlinks (their target was not
    scanned) are left out: their real name is not among the files searched."""
    names: dict[tuple[int, int], list[tuple[str, bool]]] = {}
    for p in paths:
        try:
            is_link = stat_mod.S_ISLNK(os.lstat(p).st_mode)
            st = os.stat(p)
        except OSError as exc:
            report.errors.append(DupesFailure(p, f"vanished during the search: {exc.strerror or exc}"))
            continue
        if not stat_mod.S_ISREG(st.st_mode):
            report.errors.append(DupesFailure(p, "not a regular file"))
            continue
        names.setdefault((st.st_dev, st.st_ino), []).append((p, is_link))
    inside = under_any(keep_dirs)
    keep_name: dict[tuple[int, int], str] = {}
    aliases: dict[str, list[Alias]] = {}
    protected: dict[str, bool] = {}
    links: dict[str, int] = {}
    outside = 0
    for key, found in names.items():
        real = [p for p, is_link in found if not is_link]
        if not real:
            outside += len(found)
            continue
        name = min(real, key=lambda p: (not inside(p), len(p), p))
        keep_name[key] = name
        aliases[name] = ([Alias(p, name, "symlink") for p, is_link in found if is_link]
                         + [Alias(p, name, "hardlink") for p in real if p != name])
        protected[name] = any(inside(p) for p, _ in found)
        links[name] = sum(1 for _, is_link in found if is_link)
    kept = set(keep_name.values())
    files = [p for p in dict.fromkeys(paths) if p in kept]
    stats.update(distinct_files=len(files), other_names=sum(len(a) for a in aliases.values()),
                 symlinks_to_unscanned=outside)
    return files, aliases, protected, links


def _facts(cat: Catalog, files: list[str]) -> tuple[dict[str, FileFacts], dict[str, str]]:
    rows = cat.lookup_files(files)
    content = {p: rows[p].content_hash or p for p in files}
    images = cat.images(set(content.values()))
    facts = {}
    for p in files:
        im = images.get(content[p])
        f = FileFacts(p, mtime_ns=rows[p].mtime_ns, bytes=rows[p].size)
        if im:
            f.width, f.height, f.format = im.width or 0, im.height or 0, im.format or ""
            f.exif_tags, f.exif_datetime = im.exif_tags or 0, im.exif_datetime
            f.truncated = bool(im.truncated) or rows[p].status == "truncated"
        facts[p] = f
    return facts, content


def _near_edges(cat: Catalog, reps: list[str], tier: str, verifier: Verifier, sim_min: float, stats: dict,
                progress: Progress | None) -> dict[tuple[int, int], tuple[str, float]]:
    eff, dih = load_extractor("effnet"), load_extractor("dihash")
    have_e, emb = cat.feature_matrix(reps, eff.id, eff.version, eff.kind)
    have_h, hsh = cat.feature_matrix(reps, dih.id, dih.version, dih.kind)
    if len(have_e) != len(reps) or len(have_h) != len(reps):
        raise RuntimeError("features missing after indexing")  # the indexer guarantees them
    emb = np.asarray(emb, dtype=np.float32)
    cand = embedding_pairs(emb, CNN_K, min(CNN_MIN_COS, sim_min))
    hash_pairs = (dihedral_pairs(hsh, HASH_K, HASH_MAX_BITS) if len(reps) <= HASH_SCAN_MAX
                  else dihedral_pairs_indexed(hsh, max_bits=3))
    for key, src in hash_pairs.items():
        cand[key] = src if key not in cand or cand[key] == src else "both"
    stats["candidates"] = {s: sum(1 for v in cand.values() if v == s) for s in ("cnn", "hash", "both")}
    accepted = {"cnn": 0, "hash": 0, "both": 0}
    edges: dict[tuple[int, int], tuple[str, float]] = {}
    joined = _UnionFind(len(reps))
    scored = []
    for (i, j), src in cand.items():
        bits, mirrored = dihedral_distance(hsh, i, j)
        scored.append((float(emb[i] @ emb[j]), bits, mirrored, i, j, src))
    scored.sort(key=lambda t: (-t[0], t[1], t[3], t[4]))  # most promising first
    total, skipped = len(scored), 0
    for done, (cos, bits, mirrored, i, j, src) in enumerate(scored, 1):
        if joined.same(i, j):
            # already linked through verified copies: the grouping step checks it against the
            # keeper on demand, so verifying it now would only cost time
            skipped += 1
        else:
            # CNN embeddings hardly change under a mirror; the hash says when a mirror fits best
            orient = (True, False) if mirrored and bits <= HASH_MAX_BITS else (False, True) if cos >= 0.8 else (False,)
            v = verifier.verify(i, j, orient)
            if v.ok:
                edges[(i, j)] = ("near", v.ncc)
                joined.union(i, j)
                accepted[src] += 1
            elif tier == "similar" and cos >= sim_min:
                edges[(i, j)] = ("similar", cos)
        if progress and (done % 64 == 0 or done == total):
            progress(done, total)
    stats["skipped_linked"] = skipped
    stats["pairs_verified"] = verifier.pairs_checked
    stats["verified_near"] = accepted
    return edges


def _groups(nodes: list[list[str]], edges: dict[tuple[int, int], tuple[str, float]], facts: dict[str, FileFacts],
            content: dict[str, str], policy: tuple[str, ...], verifier: Verifier | None,
            stats: dict) -> list[Group]:
    adj: dict[int, dict[int, tuple[str, float]]] = {}
    for (i, j), e in edges.items():
        adj.setdefault(i, {})[j] = e
        adj.setdefault(j, {})[i] = e
    on_demand = [0]

    def linked(a: int, b: int) -> bool:
        return b in adj.get(a, {})

    def check_keeper(k: int, x: int) -> bool:
        if linked(k, x):
            return True
        if verifier is None or (k, x) in checked:
            return False
        checked.add((k, x))
        on_demand[0] += 1
        v = verifier.verify(k, x)
        if v.ok:
            adj.setdefault(k, {})[x] = ("near", v.ncc)
            adj.setdefault(x, {})[k] = ("near", v.ncc)
        return v.ok

    checked: set[tuple[int, int]] = set()

    def pick(ns: list[int]) -> int:
        owner = {p: n for n in ns for p in nodes[n]}
        path, _ = choose_keeper([facts[p] for p in owner], policy)  # facts carry --keep-in (protected)
        return owner[path]

    plan: list[tuple[int, list[int]]] = []
    grouped: set[int] = set()
    for comp in components(len(nodes), edges):
        big = len(comp) > ON_DEMAND_LIMIT
        for keeper, members in split_component(comp, linked, pick, linked if big else check_keeper):
            plan.append((keeper, members))
            grouped.update([keeper, *members])
    plan.extend((n, []) for n in range(len(nodes)) if n not in grouped and len(nodes[n]) > 1)
    stats["verified_on_demand"] = on_demand[0]

    groups = []
    for keeper_node, member_nodes in plan:
        files = [p for n in (keeper_node, *member_nodes) for p in nodes[n]]
        keep, reason = choose_keeper([facts[p] for p in files], policy)
        g = Group(keep, reason, keep_sha256=_sha(content, keep), keep_facts=file_facts_json(facts[keep]))
        for p in nodes[keeper_node]:
            if p != keep:
                g.members.append(Member(p, "exact" if content[p] == content[keep] else "pixel", 1.0, keep,
                                        sha256=_sha(content, p), facts=file_facts_json(facts[p])))
        for n in member_nodes:
            link = adj[keeper_node].get(n)
            if link is None:  # joined by majority: report its strongest link into the group
                mates = [(adj[n][m], m) for m in (keeper_node, *member_nodes) if m in adj[n]]
                link = max(mates, key=lambda t: t[0][1])[0]
            for p in nodes[n]:
                g.members.append(Member(p, link[0], link[1], keep, sha256=_sha(content, p),
                                        facts=file_facts_json(facts[p])))
        g.members.sort(key=lambda m: (-m.score, m.path))
        g.protected = [m.path for m in g.members if facts[m.path].protected]
        g.keep_protected = facts[keep].protected
        groups.append(g)
    groups.sort(key=lambda g: g.keep)
    return groups


def _sha(content: dict[str, str], path: str) -> str:
    """The catalog's sha256 of a file ("" when the catalog has none: ``content`` then holds the path)."""
    h = content.get(path, "")
    return "" if h == path else h


class _UnionFind:
    def __init__(self, n: int) -> None:
        self.parent = list(range(n))

    def find(self, x: int) -> int:
        while self.parent[x] != x:
            self.parent[x] = self.parent[self.parent[x]]
            x = self.parent[x]
        return x

    def union(self, a: int, b: int) -> None:
        self.parent[self.find(a)] = self.find(b)

    def same(self, a: int, b: int) -> bool:
        return self.find(a) == self.find(b)
