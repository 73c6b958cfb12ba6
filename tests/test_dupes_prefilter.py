"""Issue 12: candidate pairs settled before ORB where a cheaper signal can.

- The aligned test: a pair the dihedral hash says is aligned (a re-encoding, a resize, a recolour, a
  90-degree turn or a mirror image) is mapped by its sizes in the hash's orientation and checked by the
  same correlation and retake tests, with no key points at all; ORB runs only when that fails (a crop).
- Components found apart: once a verification between two groups-to-be fails, no later candidate pair
  between them is verified (the other JPEG qualities of two views of one object: one check, not 25).
Both keep the groups of one process and of several identical."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from conftest import needs_effnet, shared_data
from lookalike.catalog import Catalog, VerdictStore
from lookalike.dupes import find_duplicates
from lookalike.dupes.candidates import dihedral_distance, dihedral_match
from lookalike.dupes.finder import _UnionFind
from lookalike.dupes.verify import Verifier
from lookalike.features import load_extractor
from photo_edits import write_edits


def _dihash(paths: list[Path]) -> np.ndarray:
    ext = load_extractor("dihash")
    rows = []
    for p in paths:
        with Image.open(p) as im:
            rows.append(ext.prepare(im.convert("RGB")))
    return ext.infer(np.stack(rows))


@pytest.fixture(scope="module")
def edited(tmp_path_factory) -> dict[str, Path]:
    """ukbench00004 and some of its edited copies, plus another shot of a flat tile and its retake."""
    root = tmp_path_factory.mktemp("prefilter")
    src = shared_data("photos", "ukbench00004.jpg")
    files = {"orig": root / src.name}
    shutil.copyfile(src, files["orig"])
    files.update(write_edits(src, root / "edits", ["jpeg30", "resize50", "flip", "rot90", "crop70", "grey"]))
    for shot in ("ukbench00052", "ukbench00053"):
        files[shot] = root / f"{shot}.jpg"
        shutil.copyfile(shared_data("photos", f"{shot}.jpg"), files[shot])
    return files


def test_the_dihedral_hash_names_the_orientation_of_a_turned_or_mirrored_copy(edited):
    names = ["orig", "flip", "rot90", "jpeg30"]
    h = _dihash([edited[n] for n in names])
    bits, variant = dihedral_match(h, 0, 1)
    assert bits <= 4 and variant % 2 == 1  # a mirror image
    assert dihedral_distance(h, 0, 1) == (bits, True)
    bits, variant = dihedral_match(h, 0, 2)
    assert bits <= 4 and variant in (2, 6)  # turned by 90 degrees one way or the other, not mirrored
    bits, variant = dihedral_match(h, 0, 3)
    assert bits <= 4 and variant == 0  # a re-encoding: upright


@pytest.mark.parametrize("edit", ["jpeg30", "resize50", "grey", "flip", "rot90"])
def test_an_aligned_copy_is_accepted_without_key_points(edited, edit):
    h = _dihash([edited["orig"], edited[edit]])
    _, variant = dihedral_match(h, 0, 1)
    v = Verifier([str(edited["orig"]), str(edited[edit])])
    verdict = v.verify(0, 1, (False, True), variant)
    assert verdict.ok and verdict.aligned and verdict.score >= 0.87
    assert verdict.residual is not None and not verdict.residual.retake  # the retake test did run
    assert v.pairs_orb == 0 and v.accepted_aligned == 1
    assert not v.local(0, features=False).has_features and not v.local(1, features=False).has_features
    assert verdict.lo < 0.87 <= verdict.hi == verdict.score  # holds up to its own correlation


def test_a_crop_fails_the_aligned_test_and_is_still_found_by_orb(edited):
    v = Verifier([str(edited["orig"]), str(edited["crop70"])])
    verdict = v.verify(0, 1, (False, True), 0)  # told it is aligned upright: the sizes do not fit
    assert verdict.ok and not verdict.aligned and verdict.inliers >= 10
    assert v.pairs_orb == 1 and v.accepted_aligned == 0


def test_a_retake_is_rejected_by_the_aligned_test_and_by_orb(edited):
    v = Verifier([str(edited["ukbench00052"]), str(edited["ukbench00053"])])
    for variant in (0, None):
        verdict = v.verify(0, 1, (False, True), variant)
        assert not verdict.ok, verdict


def test_components_found_apart_stay_apart_as_they_grow():
    uf = _UnionFind(6)
    uf.union(0, 1)
    uf.set_apart(1, 2)
    assert uf.apart(0, 2) and uf.apart(2, 1) and not uf.apart(0, 3)
    uf.union(2, 3)
    uf.union(4, 0)
    assert uf.apart(3, 4) and uf.apart(1, 3)
    copy = uf.copy()
    copy.set_apart(5, 0)
    assert copy.apart(5, 3) is False and copy.apart(5, 4) and not uf.apart(5, 4)  # copies are independent
    assert not uf.same(0, 2)


@pytest.fixture(scope="module")
def qualities(tmp_path_factory) -> Path:
    """Two UKBench objects, 4 views each, every view saved at three JPEG qualities (24 files): the views
    of one object are near each other for the CNN but never copies."""
    root = tmp_path_factory.mktemp("qualities")
    for n in range(8):
        src = shared_data("photos", f"ukbench{n:05d}.jpg")
        with Image.open(src) as im:
            rgb = im.convert("RGB")
        for q in (90, 60, 30):
            rgb.save(root / f"{src.stem}_q{q}.jpg", "JPEG", quality=q)
    return root


@needs_effnet
def test_qualities_group_by_aligned_tests_and_views_apart_are_checked_once(qualities, tmp_path):
    one = find_duplicates([qualities], catalog=Catalog(tmp_path / "one.sqlite"), workers=1)
    groups = sorted(sorted(Path(p).name for p in g.paths) for g in one.groups)
    assert groups == [[f"ukbench{n:05d}_q{q}.jpg" for q in (30, 60, 90)] for n in range(8)]
    st = one.stats
    assert st["verified_aligned"] >= 16  # 2 links a photo, every one settled without ORB
    assert st["skipped_apart"] > 0  # views of one object: their other qualities never verified
    # copies are verified against their component's keeper in the candidate loop, so the grouping has
    # (almost) nothing left to check: a chain q90-q60-q30 would need q90-q30 checked on demand
    assert st["verified_on_demand"] <= 2
    assert st["verified"] == st["pairs_verified"] + st["verified_on_demand"]
    assert st["verified"] < st["candidates"]["cnn"] + st["candidates"]["hash"] + st["candidates"]["both"]

    two = find_duplicates([qualities], catalog=Catalog(tmp_path / "two.sqlite"), workers=2)
    assert two.stats["verified_in_pool"] >= 8  # the pool did run
    assert [g.to_json() for g in two.groups] == [g.to_json() for g in one.groups]
    for key in ("verified", "verified_aligned", "pairs_verified", "skipped_linked", "skipped_apart",
                "verified_near", "verified_on_demand"):
        assert two.stats[key] == st[key], key
    rows = lambda c: sorted(VerdictStore(c).catalog.connection().execute("SELECT * FROM verdicts"))  # noqa: E731
    assert rows(Catalog(tmp_path / "one.sqlite")) == rows(Catalog(tmp_path / "two.sqlite"))

    warm = find_duplicates([qualities], catalog=Catalog(tmp_path / "one.sqlite"), workers=1)
    assert warm.stats["verified"] == 0 and [g.to_json() for g in warm.groups] == [g.to_json() for g in one.groups]
