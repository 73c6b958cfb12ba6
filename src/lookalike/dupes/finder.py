"""find_duplicates: index, exact and pixel classes, candidates, verification, grouping, keepers."""

from __future__ import annotations

import math
import multiprocessing
import os
import stat as stat_mod
import time
from collections.abc import Callable, Sequence
from concurrent.futures import Executor, ProcessPoolExecutor, ThreadPoolExecutor
from pathlib import Path

import numpy as np

from lookalike.catalog import Catalog, FileRow, StoredVerdict, VerdictKey, VerdictStore, open_catalog
from lookalike.config import cpu_count, spawn_is_safe
from lookalike.dask_cluster import local_session
from lookalike.dupes.candidates import dihedral_match, dihedral_pairs, dihedral_pairs_indexed, embedding_pairs
from lookalike.dupes.grouping import components, split_component
from lookalike.dupes.keeper import FileFacts, choose_keeper, parse_policy, resolve_folder, under_any
from lookalike.dupes.report import Alias, DupesFailure, DupesReport, Group, Member, file_facts_json
from lookalike.dupes.verify import VERIFIER_VERSION, Verifier, one_opencv_thread, start_worker, verify_chunk
from lookalike.errors import DecodeError
from lookalike.features import load_extractor
from lookalike.features.hashes import hash_to_hex
from lookalike.index import Progress, file_sha256, index_paths
from lookalike.index.fastpath import sha256_of, unchanged_hash
from lookalike.media import check_inputs, walk_inputs
from lookalike.media.files import open_regular
from lookalike.options import check_cluster, check_dupes_options

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
PARTIAL_BLOCK = 4096  # exact tier: bytes read at each end of a file before any full hash
WAVE = 1024  # candidate pairs sent for verification at once (see _near_edges)
POOL_MIN_PAIRS = 8  # fewer pairs to verify than this: verified in this process, no pool started
VERDICT_TIER = "near"  # the near and similar tiers share one verification, hence one cache
#: A pair whose dihedral hashes are this close (best orientation) first gets the aligned test, no ORB
#: (dupes/verify.py, Verifier.verify); ORB runs only when that test fails.
ALIGNED_MAX_BITS = 12

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
    workers: int | None = None,
    dask: str | int | None = None,
) -> DupesReport:
    """Groups of duplicate pictures under ``paths`` (all against all), one keeper per group.

    ``tier``: exact (same bytes) < pixel (same decoded pixels) < near (edited copies, default) <
    similar (same scene, looser); each includes the previous ones. ``threshold``: minimum aligned
    correlation (near, default 0.87) or CNN cosine (similar, default 0.80); unused by exact/pixel.
    ``keep``: keeper criteria in order (see keeper.CRITERIA). ``keep_in``: folders whose files are
    never acted on and win the keeper choice; they are scanned too. ``workers``: processes verifying
    candidate pairs (None: every core, or this process only when called from a script, whose
    top level a spawned worker would run again: pass ``workers`` from a script guarded by
    ``if __name__ == "__main__":``); the groups do not depend on it. ``dask``: a Dask scheduler address or a
    number of local Dask worker processes: the indexing and the CNN k-NN candidate search run there (the same
    groups; ``--tier exact`` neither indexes nor searches, so it runs here).

    Cost: ``--tier exact`` decodes nothing (sizes, then both ends of the files whose size is shared,
    then the full sha256 of those still alike; a file the catalog knows unchanged is not read at all).
    Verification verdicts are cached in the catalog by content (catalog/verdicts.py): a re-run verifies
    only pairs it has never seen; ``stats["verified"]`` / ``stats["cached"]`` count both kinds.

    File identity: a file is its (st_dev, st_ino). Its names found by the scan are one file: a symbolic
    link (or chain of links) and its target, or two hard links, are never a keeper and duplicate of each
    other. The group holds the file once, under a regular (non-symlink) name; its other names are listed
    in ``Group.links``, never acted on. A symlink whose target was not scanned is left out. Options are
    validated (options.check_dupes_options) before anything is read."""
    check_dupes_options(tier, threshold, keep=keep)
    if isinstance(check_cluster(dask), int) and tier != "exact":  # one LocalCluster for indexing and search
        with local_session(dask) as address:
            return find_duplicates(paths, tier, threshold, keep, keep_in, catalog, progress, recursive, workers,
                                   dask=address)
    policy = parse_policy(keep)
    keep_args = check_inputs(str(d) for d in keep_in)  # a misspelt path: UsageError, nothing read
    roots = check_inputs(str(p) for p in paths)
    keep_dirs = [resolve_folder(d) for d in keep_args]  # compared resolved: see keeper.under
    cat = open_catalog(catalog)
    report = DupesReport(tier)
    stats = report.stats
    t0 = time.perf_counter()

    inputs = list(dict.fromkeys(roots + keep_args))
    if tier == "exact":
        walked = _walk(inputs, recursive, report)
        stats.update(files=len(walked), decoded=0)
        files, aliases, protected, links = _identities(walked, keep_dirs, report, stats)
        content = _exact_contents(cat, files, report, stats)
        files = [p for p in files if p in content]  # vanished or unreadable ones are in report.errors
        stats.update(errors=len(report.errors), index_s=round(time.perf_counter() - t0, 2))
    else:
        idx = index_paths(inputs, cat, MODELS_FOR_TIER[tier], recursive=recursive, progress=progress, cluster=dask)
        report.errors = [DupesFailure(f.path, f.error) for f in idx.failed]
        stats.update(files=len(idx.paths), errors=len(idx.failed), decoded=idx.decoded,
                     index_s=round(time.perf_counter() - t0, 2))
        files, aliases, protected, links = _identities(idx.paths, keep_dirs, report, stats)
        content = None
    if not files:
        return report
    facts, content = _facts(cat, files, content)
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
    judge: _Judge | None = None
    stats.update(verified=0, cached=0, verified_in_pool=0)
    if tier in ("near", "similar") and len(nodes) > 1:
        t1 = time.perf_counter()
        # each class is represented by its smallest content hash: the same file whatever it is named
        reps = [min(n, key=lambda p: (content[p], p)) for n in nodes]
        min_ncc = threshold if (threshold is not None and tier == "near") else NEAR_MIN_NCC
        judge = _Judge(cat, reps, [_sha(content, r) for r in reps], min_ncc, workers, stats)
        sim_min = threshold if (threshold is not None and tier == "similar") else SIMILAR_MIN_COS
        try:
            edges = _near_edges(cat, reps, tier, judge, sim_min, stats, progress, dask,
                                keeper=_keeper_picker(nodes, facts, policy))
        except BaseException:
            judge.close()
            raise
        stats["verify_s"] = round(time.perf_counter() - t1, 2)

    # 2. groups
    t2 = time.perf_counter()
    try:
        report.groups = _groups(nodes, edges, facts, content, policy, judge, stats)
    finally:
        if judge is not None:
            judge.close()
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


def _walk(inputs: list[str], recursive: bool, report: DupesReport) -> list[str]:
    """The files under ``inputs`` (the one walk of every command), problems into ``report.errors``."""
    problems: list = []
    walked = walk_inputs(inputs, recursive=recursive, errors=problems)
    report.errors = [DupesFailure(w.path, w.error) for w in problems if not w.skipped]
    return walked


def _exact_contents(cat: Catalog, files: list[str], report: DupesReport, stats: dict) -> dict[str, str]:
    """path -> sha256 for the files that may have a byte-identical twin; no picture is decoded.

    The cheapest test first: a file whose size no other file has is not read; a file the catalog knows
    unchanged (fast path) gives its stored hash without a read; among the others of one size, the first
    and last :data:`PARTIAL_BLOCK` bytes are hashed, and only files still alike (or alike in size to a
    known one) are hashed in full, on every core. Full hashes are written back to the catalog (a new row
    holds the hash only; the indexer fills in the rest), so the next run reads nothing. Files not hashed
    map to their own path (unique by construction)."""
    sizes: dict[int, list[tuple[str, os.stat_result]]] = {}
    content: dict[str, str] = {}
    for p in files:
        try:
            st = os.stat(p)
        except OSError as exc:
            report.errors.append(DupesFailure(p, f"vanished during the search: {exc.strerror or exc}"))
            continue
        if st.st_size == 0:  # not a picture: empty files are never anybody's duplicates
            report.errors.append(DupesFailure(p, "empty file (0 bytes)"))
            continue
        sizes.setdefault(st.st_size, []).append((p, st))
    shared = [(p, st) for group in sizes.values() if len(group) > 1 for p, st in group]
    known = cat.lookup_files([p for p, _ in shared])
    stats["unique_size"] = sum(1 for group in sizes.values() if len(group) == 1)
    to_read: dict[int, list[tuple[str, os.stat_result]]] = {}
    fast = 0
    for p, st in shared:
        h = unchanged_hash(known.get(p), st)
        if h is None:
            to_read.setdefault(st.st_size, []).append((p, st))
        else:
            content[p] = h
            fast += 1
    full: list[tuple[str, os.stat_result]] = []
    partial: list[tuple[str, os.stat_result]] = []
    for size, group in to_read.items():
        if len(group) < len(sizes[size]) or size <= 2 * PARTIAL_BLOCK:
            full.extend(group)  # a known twin to compare with (its full hash), or the ends are the file
        else:
            partial.extend(group)
    with ThreadPoolExecutor(max_workers=cpu_count() + 1, thread_name_prefix="lookalike-hash") as pool:
        ends: dict[tuple[int, str], list[tuple[str, os.stat_result]]] = {}
        for (p, st), h in zip(partial, pool.map(lambda x: _ends_hash(x[0], x[1].st_size), partial), strict=True):
            if isinstance(h, DecodeError):
                report.errors.append(DupesFailure(p, str(h)))
            else:
                ends.setdefault((st.st_size, h), []).append((p, st))
        full.extend(x for group in ends.values() if len(group) > 1 for x in group)
        hashed = list(pool.map(lambda x: _full_hash(x[0], x[1]), full))
    rows: list[FileRow] = []
    for (p, st), (h, row_ok) in zip(full, hashed, strict=True):
        if isinstance(h, DecodeError):
            report.errors.append(DupesFailure(p, str(h)))
            continue
        content[p] = h
        if row_ok:  # the file did not change while it was read: its hash may pass the fast path later
            old = known.get(p)
            status = old.status if old and old.content_hash == h and old.status != "error" else "ok"
            # changed within a clock tick of the read, a further change could keep size, mtime and ctime
            tick = 2_000_000_000 if st.st_ctime_ns % 1_000_000_000 == 0 else 20_000_000
            recent = st.st_ctime_ns > time.time_ns() - tick
            rows.append(FileRow(p, st.st_size, st.st_mtime_ns, h, status, None, st.st_ino,
                                None if recent else st.st_ctime_ns))
    cat.write(files=rows)
    stats.update(fast_path=fast, read_partial=len(partial), read_full=len(full))
    for p in files:
        content.setdefault(p, p)
    return content


def _ends_hash(path: str, size: int) -> str | DecodeError:
    """Hash of the first and last :data:`PARTIAL_BLOCK` bytes of a regular file (FIFOs refused)."""
    try:
        with open_regular(path) as fh:
            head = fh.read(PARTIAL_BLOCK)
            fh.seek(max(0, size - PARTIAL_BLOCK))
            tail = fh.read(PARTIAL_BLOCK)
    except DecodeError as exc:
        return exc
    except OSError as exc:
        return DecodeError(f"cannot read: {exc.strerror or exc}")
    return sha256_of(head + tail)


def _full_hash(path: str, st: os.stat_result) -> tuple[str | DecodeError, bool]:
    """(sha256 of the file, whether a stat after the read still shows the file that was stat'ed before)."""
    try:
        h = file_sha256(path)
        after = os.stat(path)
    except DecodeError as exc:
        return exc, False
    except OSError as exc:
        return DecodeError(f"cannot read: {exc.strerror or exc}"), False
    same = (after.st_size, after.st_mtime_ns, after.st_ino, after.st_ctime_ns) == (
        st.st_size, st.st_mtime_ns, st.st_ino, st.st_ctime_ns)
    return h, same


def _facts(cat: Catalog, files: list[str], content: dict[str, str] | None = None
           ) -> tuple[dict[str, FileFacts], dict[str, str]]:
    """The keeper policy's facts of each file and its content key (the catalog's sha256, else the path).
    ``content``: keys already known (exact tier); files the catalog has no row for are stat'ed."""
    rows = cat.lookup_files(files)
    if content is None:
        content = {p: (rows[p].content_hash if p in rows else None) or p for p in files}
    images = cat.images({h for h in content.values() if h})
    facts = {}
    for p in files:
        im = images.get(content[p])
        row = rows.get(p)
        if row is not None and (content[p] == p or row.content_hash == content[p]):
            f = FileFacts(p, mtime_ns=row.mtime_ns, bytes=row.size)
        else:
            try:
                st = os.stat(p)
                f = FileFacts(p, mtime_ns=st.st_mtime_ns, bytes=st.st_size)
            except OSError:
                f = FileFacts(p, mtime_ns=0, bytes=0)
        if im:
            f.width, f.height, f.format = im.width or 0, im.height or 0, im.format or ""
            f.exif_tags, f.exif_datetime = im.exif_tags or 0, im.exif_datetime
            f.truncated = bool(im.truncated) or (row is not None and row.status == "truncated")
        facts[p] = f
    return facts, content


Pair = tuple[int, int, tuple[bool, ...], int | None]  # (i, j, orientations, dihedral variant or None)


class _Judge:
    """Verdicts on pairs of class representatives: the catalog's cached verdicts first, then the verifier,
    in worker processes when there is more than one core and enough pairs.

    A pair is always verified in one direction, the smaller content hash first (the second picture is the
    one mirrored), so its verdict does not depend on names or walk order, and is the same in any process.
    """

    def __init__(self, cat: Catalog, reps: list[str], hashes: list[str], min_ncc: float, workers: int | None,
                 stats: dict) -> None:
        self.reps, self.hashes, self.min_ncc, self.stats = reps, hashes, min_ncc, stats
        self.store = VerdictStore(cat)
        # the catalog's verdicts between these pictures, read once, and those of this run as they come
        self._stored = self.store.among((h for h in hashes if h), VERDICT_TIER, VERIFIER_VERSION)
        self.verifier = Verifier(reps, min_ncc=min_ncc)
        self.workers = max(1, int(workers)) if workers is not None else (cpu_count() if spawn_is_safe() else 1)
        self._pools: list[Executor] = []  # one single-process executor a worker (started on first use)
        self._home: dict[int, int] = {}  # picture -> the worker that verified it last (it has it cached)
        self.dihash: np.ndarray | None = None  # the representatives' dihedral hashes (set by _near_edges)
        self.emb: np.ndarray | None = None  # their CNN embeddings (set by _near_edges)
        stats.setdefault("verified_aligned", 0)

    def order(self, i: int, j: int) -> tuple[int, int]:
        """The pair in verification order (smaller content hash first; paths when a hash is unknown)."""
        a, b = (self.hashes[i] or self.reps[i], i), (self.hashes[j] or self.reps[j], j)
        return (i, j) if a <= b else (j, i)

    def cosine(self, i: int, j: int) -> float:
        """CNN cosine of two representatives."""
        assert self.emb is not None
        return float(self.emb[i].astype(np.float32) @ self.emb[j].astype(np.float32))

    def pair(self, a: int, b: int) -> Pair:
        """Pictures a and b as a pair to verify: in verification order, the orientations to try (the hash
        says when a mirror fits best; CNN embeddings hardly change under a mirror, so a pair far apart
        for the CNN is tried as it is only) and the aligned test's orientation."""
        assert self.dihash is not None
        i, j = self.order(a, b)
        bits, best = dihedral_match(self.dihash, i, j)
        variant = best if bits <= ALIGNED_MAX_BITS else None
        if best % 2 == 1 and bits <= HASH_MAX_BITS:
            return i, j, (True, False), variant
        return i, j, (False, True) if self.cosine(i, j) >= 0.8 else (False,), variant

    def variant(self, i: int, j: int) -> int | None:
        """The orientation of the aligned test for an ordered pair (None: its hashes are too far apart)."""
        if self.dihash is None:
            return None
        bits, variant = dihedral_match(self.dihash, i, j)
        return variant if bits <= ALIGNED_MAX_BITS else None

    def _key(self, i: int, j: int, orient: tuple[bool, ...], variant: int | None) -> VerdictKey | None:
        if not self.hashes[i] or not self.hashes[j]:
            return None  # no content key: never cached
        tried = ("" if variant is None else f"v{variant}:") + "".join("m" if m else "u" for m in orient)
        return VerdictKey.of(self.hashes[i], self.hashes[j], VERDICT_TIER, VERIFIER_VERSION, tried)

    def cached(self, pairs: Sequence[Pair]) -> dict[int, tuple[bool, float]]:
        """position in ``pairs`` -> (ok, score) of the verdicts the catalog holds for this threshold, or this
        run gave (the caller counts those it uses in ``stats["cached"]``)."""
        out = {}
        for n, p in enumerate(pairs):
            k = self._key(*p)
            v = self._stored.get(k) if k is not None else None
            if v is not None and v.holds_at(self.min_ncc):
                out[n] = (v.ok, v.score)
        return out

    def verify(self, pairs: Sequence[Pair]) -> list[tuple[bool, float]]:
        """Verify pairs (already in verification order); their verdicts go to the catalog."""
        if len(pairs) >= POOL_MIN_PAIRS and self.workers > 1:
            results = self._in_pool(pairs)
            self.stats["verified_in_pool"] += len(pairs)
        else:  # in picture order, as a pool chunk: the pictures of a pair stay in the verifier's cache
            results = [None] * len(pairs)
            for n in sorted(range(len(pairs)), key=lambda n: (pairs[n][0], pairs[n][1])):
                i, j, o, variant = pairs[n]
                v = self.verifier.verify(i, j, o, variant)
                results[n] = (v.ok, float(v.ncc), float(v.lo), float(v.hi), v.ok and v.aligned)
        self.stats["verified"] += len(pairs)
        self.stats["verified_aligned"] += sum(1 for r in results if r[4])
        new = [StoredVerdict(k, ok, score, lo, hi) for p, (ok, score, lo, hi, _)
               in zip(pairs, results, strict=True) if (k := self._key(*p)) is not None]
        self._stored.update((v.key, v) for v in new)
        self.store.add(new)
        return [(ok, score) for ok, score, *_ in results]

    def against(self, links: Sequence[tuple[int, int]], orient: tuple[bool, ...] = (False, True)
                ) -> list[tuple[bool, float]]:
        """(ok, score) of the pairs (k, x), in either order: cached, else verified (on every core)."""
        ordered = [self.order(k, x) for k, x in links]
        pairs = [(i, j, orient, self.variant(i, j)) for i, j in ordered]
        hits = self.cached(pairs)
        self.stats["cached"] += len(hits)
        todo = [n for n in range(len(pairs)) if n not in hits]
        for n, r in zip(todo, self.verify([pairs[n] for n in todo]), strict=True):
            hits[n] = r
        return [hits[n] for n in range(len(pairs))]

    def _in_pool(self, pairs: Sequence[Pair]) -> list[tuple[bool, float, float, float, bool]]:
        """The pairs on every core: this process is one of the workers, the others are spawned processes. A
        pair goes to the worker that last had one of its pictures (it has them decoded and prepared) unless
        that worker already has its share, else to the least loaded one; each worker's pairs in picture
        order, in small chunks."""
        if not self._pools:  # spawned: no fork of a process holding model threads
            spawn = multiprocessing.get_context("spawn")
            self._pools = [ProcessPoolExecutor(max_workers=1, mp_context=spawn, initializer=start_worker,
                                               initargs=(self.min_ncc,)) for _ in range(self.workers - 1)]
        share = math.ceil(1.15 * len(pairs) / self.workers)
        queues: list[list[int]] = [[] for _ in range(self.workers)]  # queue 0: this process
        for n in sorted(range(len(pairs)), key=lambda n: (pairs[n][0], pairs[n][1])):
            i, j = pairs[n][:2]
            w = self._home.get(i, self._home.get(j))
            if w is None or len(queues[w]) >= share:
                w = min(range(len(queues)), key=lambda k: len(queues[k]))
            queues[w].append(n)
            self._home[i] = self._home[j] = w
        size = max(1, min(64, math.ceil(len(pairs) / (4 * self.workers))))
        jobs = []
        for pool, queue in zip(self._pools, queues[1:], strict=True):
            for s in range(0, len(queue), size):
                chunk = queue[s : s + size]
                job = [(self.reps[pairs[n][0]], self.reps[pairs[n][1]], *pairs[n][2:]) for n in chunk]
                jobs.append((chunk, pool.submit(verify_chunk, job)))
        results: list = [None] * len(pairs)
        with one_opencv_thread():  # the other workers hold the other cores
            for n in queues[0]:
                i, j, o, variant = pairs[n]
                v = self.verifier.verify(i, j, o, variant)
                results[n] = (v.ok, float(v.ncc), float(v.lo), float(v.hi), v.ok and v.aligned)
        for chunk, fut in jobs:
            for n, r in zip(chunk, fut.result(), strict=True):
                results[n] = r
        return results

    def close(self) -> None:
        """Write the verdicts still queued and stop the worker processes."""
        try:
            self.store.flush()
        finally:
            for pool in self._pools:
                pool.shutdown(cancel_futures=True)
            self._pools = []


def _near_edges(cat: Catalog, reps: list[str], tier: str, judge: _Judge, sim_min: float, stats: dict,
                progress: Progress | None, dask: str | int | None = None,
                keeper: Callable[[list[int]], int] | None = None) -> dict[tuple[int, int], tuple[str, float]]:
    """Verified links between classes, from the candidate pairs, most promising first.

    The rule is sequential. A candidate pair already joined through verified links is not verified (the
    grouping checks it against its keeper on demand), nor a pair between two components found apart: a
    pair between them (or between what they have grown into) failed its verification, so their other
    pairs are other pairs of the same two pictures-and-copies (the other JPEG qualities of two views of
    one object: one check instead of 25). A pair between two components is verified through their
    keepers (``keeper``: the picture the grouping would keep of a component, the best of the two bests
    when two components join) when those are an aligned pair (see ``step`` below): the grouping needs every
    member linked to its keeper, so a link between two other members would only be checked again against
    the keeper (five JPEG qualities of one photo: four checks instead of seven). When the keepers fail, or
    are no aligned pair, the candidate pair itself is verified, and only when that fails are the components
    set apart. Without ``keeper``, the candidate pair alone is verified.

    It is run in waves so that verification can use every core and still give exactly the sequential
    result: a wave takes, from the next pairs in order, those between two components that no pair of
    the wave touches yet (whatever an earlier pair of the wave decides, their keepers and their being
    joined or apart stay as they are); a pair touching such a component waits, and so do the components
    it touches. Verdicts are then taken in order up to the first pair that waited, and the next wave
    starts there. No pair is verified that the sequential loop would not verify. Pairs whose dihedral
    hashes are within :data:`ALIGNED_MAX_BITS` carry the hash's orientation, for the verifier's aligned
    test (no ORB when it passes)."""
    eff, dih = load_extractor("effnet"), load_extractor("dihash")
    have_e, emb = cat.feature_matrix(reps, eff.id, eff.version, eff.kind)
    have_h, hsh = cat.feature_matrix(reps, dih.id, dih.version, dih.kind)
    if len(have_e) != len(reps) or len(have_h) != len(reps):
        raise RuntimeError("features missing after indexing")  # the indexer guarantees them
    # float16 rows as stored (no whole-collection float32 copy: 5 GB at 1M); pairs are widened one at a time
    cand = embedding_pairs(emb, CNN_K, min(CNN_MIN_COS, sim_min), cluster=dask)
    hash_pairs = (dihedral_pairs(hsh, HASH_K, HASH_MAX_BITS) if len(reps) <= HASH_SCAN_MAX
                  else dihedral_pairs_indexed(hsh, max_bits=3))
    for key, src in hash_pairs.items():
        cand[key] = src if key not in cand or cand[key] == src else "both"
    stats["candidates"] = {s: sum(1 for v in cand.values() if v == s) for s in ("cnn", "hash", "both")}
    accepted = {"cnn": 0, "hash": 0, "both": 0}
    judge.dihash, judge.emb = hsh, emb
    scored = []
    for (i, j), src in cand.items():
        i, j = judge.order(i, j)
        bits, _ = dihedral_match(hsh, i, j)
        scored.append((judge.cosine(i, j), bits, judge.hashes[i] or reps[i], judge.hashes[j] or reps[j], i, j, src))
    scored.sort(key=lambda t: (-t[0], t[1], t[2], t[3]))  # most promising first (ties: by content)
    cands = [(i, j) for *_, i, j, _ in scored]
    known: dict[Pair, tuple[bool, float]] = {}  # verdicts of this run and those read from the catalog
    from_cache: set[Pair] = set()  # read from the catalog, counted in stats["cached"] when used
    looked: set[Pair] = set()  # asked of the catalog already
    edges: dict[tuple[int, int], tuple[str, float]] = {}
    joined = _UnionFind(len(reps), keeper)
    total, skipped, apart, judged, commit = len(cands), 0, 0, 0, 0

    def verdict_of(p: Pair) -> tuple[bool, float] | None:
        """This run's verdict of p, else the catalog's (None: p must be verified)."""
        if p not in known and p not in looked:  # a verdict of an earlier run
            looked.add(p)
            hit = judge.cached([p])
            if hit:
                known[p] = hit[0]
                from_cache.add(p)
        return known.get(p)

    def step(uf: _UnionFind, i: int, j: int) -> tuple[Pair, tuple[bool, float] | None, tuple[Pair, ...]]:
        """What the sequential loop does with candidate (i, j) in the state ``uf``: the pair whose verdict
        decides, that verdict (None: not known yet) and the pairs consulted. When the two components' keepers
        are an aligned pair (their dihedral hashes agree: a cheap, decisive test), they are verified first,
        so the grouping finds its keeper links verified; when they fail, or are no aligned pair, the
        candidate pair itself (two crops of one photo may overlap where their keepers do not)."""
        c = judge.pair(i, j)
        if keeper is not None:
            p = judge.pair(uf.best(i), uf.best(j))
            if p[3] is not None and p[:2] != c[:2]:
                v = verdict_of(p)
                if v is None or v[0]:
                    return p, v, (p,)
                return c, verdict_of(c), (p, c)
        return c, verdict_of(c), (c,)

    def next_wave() -> list[Pair]:
        hopeful = joined.copy()  # the sequential loop's state, for components no pair of the wave touches
        # a pair of the wave joins its anchor (the component whose best picture is the better one, so
        # whatever the verdict that component keeps its best) and a partner; the anchor may take more
        # partners, while a partner, or a component a pair that waits touches, waits for the next wave
        partners: dict[int, set[int]] = {}  # anchor root -> partner roots
        waiting: set[int] = set()
        wave: list[Pair] = []
        pos = commit
        while pos < total and len(wave) < WAVE:
            i, j = cands[pos]
            pos += 1
            ri, rj = hopeful.find(i), hopeful.find(j)
            if ri == rj or hopeful.apart(i, j):
                continue  # joined or apart in the sequential loop too, whatever the wave decides
            if rj in partners.get(ri, ()) or ri in partners.get(rj, ()):
                continue  # a pair of the wave joins or parts them: this one is never verified
            if ri in waiting or rj in waiting or (ri in partners and rj in partners):
                waiting.update((ri, rj))
                continue
            p, verdict, _ = step(hopeful, i, j)
            if verdict is not None and ri not in partners and rj not in partners:
                if verdict[0]:
                    hopeful.union(i, j)
                else:
                    hopeful.set_apart(i, j)
                continue
            anchor, other = (ri, rj) if ri in partners else (rj, ri) if rj in partners else (None, None)
            if anchor is None:  # two components no pair of the wave touches: the better one anchors
                anchor, other = (ri, rj) if keeper is None or _better(hopeful, keeper, ri, rj) else (rj, ri)
            elif (verdict is not None or keeper is None or not _better(hopeful, keeper, anchor, other)
                  or any(hopeful.apart(other, q) for q in partners[anchor])):
                waiting.update((ri, rj))  # its pair, or its being apart, hangs on the anchor's verdicts
                continue
            if verdict is None:
                wave.append(p)
            partners.setdefault(anchor, set()).add(other)
            waiting.add(other)
        return wave

    stats["waves"] = 0
    while commit < total:
        wave = next_wave()
        stats["waves"] += bool(wave)
        for p, verdict in zip(wave, judge.verify(wave) if wave else [], strict=True):
            known[p] = verdict
        while commit < total:  # take verdicts in order, as the sequential loop would
            i, j = cands[commit]
            if joined.same(i, j):
                skipped += 1
            elif joined.apart(i, j):
                apart += 1
                if tier == "similar" and scored[commit][0] >= sim_min:
                    edges[(i, j)] = ("similar", scored[commit][0])
            else:
                p, verdict, consulted = step(joined, i, j)
                if verdict is None:
                    break  # waited in this wave, and is needed: the next wave verifies it
                ok, score = verdict
                judged += 1
                for q in consulted:
                    if q in from_cache:
                        stats["cached"] += 1
                        from_cache.discard(q)
                if ok:
                    edges[(p[0], p[1])] = ("near", score)
                    joined.union(i, j)
                    accepted[scored[commit][-1]] += 1
                else:
                    joined.set_apart(i, j)
                    if tier == "similar" and scored[commit][0] >= sim_min:
                        edges[(i, j)] = ("similar", scored[commit][0])
            commit += 1
            if progress and (commit % 64 == 0 or commit == total):
                progress(commit, total)
    judge.store.flush()
    stats["skipped_linked"] = skipped
    stats["skipped_apart"] = apart
    stats["pairs_verified"] = judged
    stats["verified_near"] = accepted
    return edges


def _better(uf: _UnionFind, keeper: Callable[[list[int]], int], ra: int, rb: int) -> bool:
    """Whether the best picture of ra's component is the one ``keeper`` keeps of the two components' bests."""
    a = uf.best(ra)
    return keeper([a, uf.best(rb)]) == a


def _keeper_picker(nodes: list[list[str]], facts: dict[str, FileFacts], policy: tuple[str, ...]
                   ) -> Callable[[list[int]], int]:
    """The node whose file the keeper policy keeps, among the files of the nodes given (the one rule of
    the candidate loop's keepers and of the grouping's)."""

    def pick(ns: list[int]) -> int:
        owner = {p: n for n in ns for p in nodes[n]}
        path, _ = choose_keeper([facts[p] for p in owner], policy)  # facts carry --keep-in (protected)
        return owner[path]

    return pick


def _groups(nodes: list[list[str]], edges: dict[tuple[int, int], tuple[str, float]], facts: dict[str, FileFacts],
            content: dict[str, str], policy: tuple[str, ...], judge: _Judge | None,
            stats: dict) -> list[Group]:
    adj: dict[int, dict[int, tuple[str, float]]] = {}
    for (i, j), e in edges.items():
        adj.setdefault(i, {})[j] = e
        adj.setdefault(j, {})[i] = e
    on_demand = [0]

    def linked(a: int, b: int) -> bool:
        return b in adj.get(a, {})

    def check_all(k: int, xs: list[int]) -> set[int]:
        """The pictures among ``xs`` linked to keeper k, verifying unknown pairs on demand (in one batch)."""
        hits = {x for x in xs if linked(k, x)}
        if judge is None:
            return hits
        todo = [x for x in xs if x not in hits and (k, x) not in checked]
        checked.update((k, x) for x in todo)
        on_demand[0] += len(todo)
        hits.update(x for x, ok in zip(todo, verify_links([(k, x) for x in todo]), strict=True) if ok)
        return hits

    def verify_links(links: list[tuple[int, int]]) -> list[bool]:
        """Verify keeper links (k, x) in one batch; those that pass join ``adj``."""
        out = []
        for (k, x), (ok, score) in zip(links, judge.against(links) if links else [], strict=True):
            if ok:
                adj.setdefault(k, {})[x] = ("near", score)
                adj.setdefault(x, {})[k] = ("near", score)
            out.append(ok)
        return out

    checked: set[tuple[int, int]] = set()

    pick = _keeper_picker(nodes, facts, policy)
    plan: list[tuple[int, list[int]]] = []
    grouped: set[int] = set()
    comps = components(len(nodes), edges)
    if judge is not None:  # every component's first keeper checks in one batch (on every core): the
        # same pairs split_component asks for one component at a time, component after component
        first = [(pick(c), c) for c in comps if len(c) <= ON_DEMAND_LIMIT]
        batch = [(k, x) for k, c in first for x in c if x != k and not linked(k, x)]
        checked.update(batch)
        on_demand[0] += len(batch)
        verify_links(batch)
    for comp in comps:
        big = len(comp) > ON_DEMAND_LIMIT
        for keeper, members in split_component(comp, linked, pick, check_all=None if big else check_all):
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
    """Union-find over pictures that also remembers which components were found apart: a verification
    between them failed, so no later pair between them (nor between what they grow into) is verified."""

    def __init__(self, n: int, better: Callable[[list[int]], int] | None = None) -> None:
        self.parent = list(range(n))
        self._apart: dict[int, set[int]] = {}  # root -> roots of the components found apart from it
        self._better = better  # of two pictures, the one kept (None: components track no best)
        self._best: dict[int, int] = {}  # root -> its component's best picture (absent: the root itself)

    def find(self, x: int) -> int:
        while self.parent[x] != x:
            self.parent[x] = self.parent[self.parent[x]]
            x = self.parent[x]
        return x

    def union(self, a: int, b: int) -> None:
        ra, rb = self.find(a), self.find(b)
        if ra == rb:
            return
        if self._better is not None:
            self._best[rb] = self._better([self._best.pop(ra, ra), self._best.get(rb, rb)])
        self.parent[ra] = rb
        moved = self._apart.pop(ra, set())
        for r in moved:
            others = self._apart[r]
            others.discard(ra)
            if r != rb:
                others.add(rb)
        if moved:
            self._apart.setdefault(rb, set()).update(moved - {rb})

    def same(self, a: int, b: int) -> bool:
        return self.find(a) == self.find(b)

    def best(self, x: int) -> int:
        """The best picture (by ``better``) of x's component."""
        r = self.find(x)
        return self._best.get(r, r)

    def set_apart(self, a: int, b: int) -> None:
        """Record that the components of a and b are not copies of each other."""
        ra, rb = self.find(a), self.find(b)
        if ra != rb:
            self._apart.setdefault(ra, set()).add(rb)
            self._apart.setdefault(rb, set()).add(ra)

    def apart(self, a: int, b: int) -> bool:
        """Whether the components of a and b were found apart."""
        return self.find(b) in self._apart.get(self.find(a), ())

    def copy(self) -> _UnionFind:
        other = _UnionFind(0, self._better)
        other.parent = list(self.parent)
        other._apart = {r: set(s) for r, s in self._apart.items()}
        other._best = dict(self._best)
        return other
