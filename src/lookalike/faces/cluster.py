"""Group the faces of unlabelled photos into people: Chinese whispers over the graph of faces closer than
the threshold, with the constraint that two faces of one photo are never the same person (a face never
joins a group that already holds another face of its photo). Then ``write_links`` lays out one folder per
person of links to the photos, and ``name_cluster`` turns a reviewed folder into training data.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from lookalike.catalog import Catalog
from lookalike.errors import UsageError
from lookalike.faces.embed import FaceEmbedder, load_face_embedder
from lookalike.faces.scan import scan_paths
from lookalike.faces.store import FaceModel, active_face_model
from lookalike.faces.train import TrainReport, add_examples
from lookalike.media import WalkProblem, check_inputs, walk_inputs
from lookalike.options import check_tolerance

MANIFEST = ".faces.json"
#: Smallest group of faces reported as a person (``faces cluster --min-size``).
DEFAULT_MIN_SIZE = 2


def chinese_whispers(
    embeddings: np.ndarray, groups: Sequence[int], threshold: float, iterations: int = 30, seed: int = 0
) -> np.ndarray:
    """Cluster ids (0..k-1, biggest cluster first) for each row; rows sharing a ``groups`` value (one photo)
    never end up in the same cluster."""
    n = len(embeddings)
    if n == 0:
        return np.zeros(0, dtype=np.int64)
    groups = np.asarray(groups)
    neigh: list[np.ndarray] = []
    weights: list[np.ndarray] = []
    for start in range(0, n, 1024):
        d = FaceEmbedder.distances(embeddings[start:start + 1024], embeddings)
        for r, row in enumerate(d):
            i = start + r
            ok = np.flatnonzero((row <= threshold) & (groups != groups[i]))
            neigh.append(ok)
            weights.append(1.0 - row[ok] / (2.0 * threshold))
    labels = np.arange(n)
    photos: dict[int, Counter] = {i: Counter([groups[i]]) for i in range(n)}
    rng = np.random.default_rng(seed)
    for _ in range(iterations):
        changed = 0
        for i in rng.permutation(n):
            if not len(neigh[i]):
                continue
            score: dict[int, float] = {}
            for j, w in zip(neigh[i], weights[i], strict=True):
                score[labels[j]] = score.get(labels[j], 0.0) + float(w)
            cur = labels[i]
            for lab, _s in sorted(score.items(), key=lambda kv: (-kv[1], kv[0])):
                if lab == cur:
                    break
                if photos[lab][groups[i]] == 0:  # no other face of this photo in that cluster
                    photos[cur][groups[i]] -= 1
                    photos[lab][groups[i]] += 1
                    labels[i] = lab
                    changed += 1
                    break
        if not changed:
            break
    sizes = Counter(labels.tolist())
    order = {lab: k for k, (lab, _) in enumerate(sorted(sizes.items(), key=lambda kv: (-kv[1], kv[0])))}
    return np.asarray([order[lab] for lab in labels], dtype=np.int64)


@dataclass
class FaceCluster:
    id: str
    faces: list[tuple[str, tuple[int, int, int, int]]]

    def to_json(self) -> dict[str, Any]:
        return {"id": self.id, "size": len(self.faces),
                "faces": [{"path": p, "box": list(b)} for p, b in self.faces]}


@dataclass
class FaceClusterReport:
    clusters: list[FaceCluster] = field(default_factory=list)
    unclustered: list[tuple[str, tuple[int, int, int, int]]] = field(default_factory=list)
    no_face: list[str] = field(default_factory=list)
    failed: list[tuple[str, str]] = field(default_factory=list)
    threshold: float = 0.0
    embedder: str = ""
    hashes: dict[str, str] = field(default_factory=dict)  # photo path -> content hash

    def to_json(self) -> dict[str, Any]:
        return {
            "threshold": self.threshold,
            "embedder": self.embedder,
            "clusters": [c.to_json() for c in self.clusters],
            "unclustered": [{"path": p, "box": list(b)} for p, b in self.unclustered],
            "no_face": self.no_face,
            "failed": [{"path": p, "error": e} for p, e in self.failed],
        }


def cluster_faces(
    folder: str | Path | Sequence[str | Path],
    threshold: float | None = None,
    min_size: int = DEFAULT_MIN_SIZE,
    model: str | None = None,
    embedder: str | None = None,
    detector: str | None = None,
    recursive: bool = True,
    catalog: Catalog | str | Path | None = None,
    workers: int | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> FaceClusterReport:
    """Group every face found under a folder into people. The threshold defaults to the named (or active)
    face model's calibrated one, else the embedder's default tolerance."""
    threshold = check_tolerance(threshold, "threshold")  # the one face-distance check (CLI and HTTP alike)
    walk_errors: list[WalkProblem] = []  # a FIFO or device named like a picture: one error each
    # a misspelt path or a folder without pictures: UsageError, before any model is loaded
    paths = walk_inputs([folder] if isinstance(folder, str | Path) else list(folder), recursive=recursive,
                        errors=walk_errors)
    fm = FaceModel.load(model) if model else (FaceModel.load(active_face_model()) if active_face_model() else None)
    emb = load_face_embedder(embedder or (fm.embedder if fm else None))
    if threshold is None:
        threshold = fm.threshold if fm and fm.threshold and fm.embedder == emb.id else emb.default_tolerance
    photos = scan_paths(paths, catalog, emb.id, detector, workers=workers, progress=progress)
    rep = FaceClusterReport(threshold=float(threshold), embedder=emb.id)
    rep.failed.extend((e.path, e.error) for e in walk_errors if not e.skipped)
    items: list[tuple[str, tuple[int, int, int, int]]] = []
    vecs, groups = [], []
    for g, ph in enumerate(photos):
        if ph.path and ph.content_hash:
            rep.hashes[ph.path] = ph.content_hash
        if ph.error:
            rep.failed.append((ph.path or "", ph.error))
        elif not ph.faces:
            rep.no_face.append(ph.path or "")
        for f in ph.faces:
            items.append((ph.path or "", f.box))
            vecs.append(f.embedding)
            groups.append(g)
    if not items:
        return rep
    ids = chinese_whispers(np.stack(vecs), groups, float(threshold))
    members: dict[int, list[int]] = {}
    for i, c in enumerate(ids):
        members.setdefault(int(c), []).append(i)
    k = 0
    for c in sorted(members):
        idx = members[c]
        if len(idx) < max(1, min_size):
            rep.unclustered.extend(items[i] for i in idx)
            continue
        k += 1
        rep.clusters.append(FaceCluster(f"person-{k:03d}", [items[i] for i in idx]))
    return rep


def write_links(report: FaceClusterReport, out: str | Path, progress: Callable[[int, int], None] | None = None,
                dry_run: bool = False):
    """One folder per cluster under ``out`` holding symbolic links to its photos (copies where links are not
    possible) and a manifest of which face of each photo belongs to it, written by the one journal-based link
    writer (:func:`lookalike.journal.links.write_link_tree`), so ``lookalike undo`` takes it back; existing
    names are never overwritten. Returns the journal's ApplyReport."""
    from lookalike.journal.links import GENERATED_PREFIX, write_link_tree

    root = Path(out).expanduser().resolve()
    for c in report.clusters:
        if (root / c.id).exists():
            raise UsageError(f"{root / c.id} already exists: pick an empty --links folder")
    with tempfile.TemporaryDirectory(prefix=GENERATED_PREFIX) as tmp:
        manifests = {}
        for c in report.clusters:
            manifest = Path(tmp) / f"{c.id}.json"
            manifest.write_text(json.dumps([{"path": p, "box": list(b)} for p, b in c.faces], indent=1))
            manifests[str(manifest)] = str(root / c.id / MANIFEST)
        groups = [(root / c.id, list(dict.fromkeys(p for p, _box in c.faces))) for c in report.clusters]
        _plan, applied = write_link_tree(groups, root, f"faces cluster --links {root}", extras=manifests,
                                         hashes=report.hashes, dry_run=dry_run, progress=progress)
        return applied


def name_cluster(
    cluster_dir: str | Path,
    label: str,
    model: str,
    catalog: Catalog | str | Path | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> TrainReport:
    """Turn a reviewed cluster folder into training data for ``label`` in face model ``model``.

    The folder's manifest says which face of each photo is the person; photos the user removed from the
    folder are left out; photos without a manifest entry contribute their largest face."""
    d = Path(check_inputs([cluster_dir])[0])  # a misspelt path: "no such file or folder", as everywhere
    if not d.is_dir():
        raise UsageError(f"{d} is a file: give a folder written by `lookalike faces cluster --links`")
    if not label or label == "unknown" or "/" in label:
        raise UsageError(f"bad label {label!r}")
    manifest = {}
    if (d / MANIFEST).is_file():
        for e in json.loads((d / MANIFEST).read_text()):
            manifest.setdefault(os.path.realpath(e["path"]), []).append(tuple(e["box"]))
    examples: list[tuple[str, str, tuple[int, int, int, int] | None]] = []
    for entry in sorted(d.iterdir()):
        if entry.name.startswith(".") or not (entry.is_file()):
            continue
        target = os.path.realpath(entry)
        boxes = manifest.get(target)
        if boxes:
            examples.extend((label, target, b) for b in boxes)
        else:
            examples.append((label, target, None))
    if not examples:
        raise UsageError(f"no pictures in {d}")
    return add_examples(model, examples, catalog=catalog, progress=progress)
