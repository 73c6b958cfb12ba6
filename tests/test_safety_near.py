"""Issue 10, case 8: the near tier must not group distinct shots of one object as edited copies.

UKBench 00052, 00053 and 00054 are three photos of one flat, framed tile taken from slightly different
angles: a similarity transform aligns them to within a pixel and their local correlations (0.90-0.95)
look like those of a heavily degraded copy, so the near tier used to put them (and their edited copies)
in one group, and delete or link would then act on separate photos. Each must stay in its own group
with its own edited copies."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from conftest import needs_effnet, shared_data
from lookalike.dupes import find_duplicates
from photo_edits import write_edits

SHOTS = ("ukbench00052", "ukbench00053", "ukbench00054")
#: the edits that degrade the picture most (and one that mirrors it): the hardest to tell from a retake
EDITS = {"ukbench00052": ["resize50", "jpeg30", "crop70", "rot5", "flip", "watermark"],
         "ukbench00053": ["jpeg30", "resize50"]}


@pytest.fixture(scope="module")
def retakes(tmp_path_factory) -> tuple[Path, dict[str, str]]:
    """The three shots and some edited copies of two of them; returns the folder and shot per file."""
    root = tmp_path_factory.mktemp("retakes")
    photos = shared_data("photos")
    shot_of: dict[str, str] = {}
    for shot in SHOTS:
        src = photos / f"{shot}.jpg"
        if not src.is_file():
            pytest.skip(f"shared test data not found: {src}")
        dest = root / "shots" / src.name
        dest.parent.mkdir(exist_ok=True)
        shutil.copyfile(src, dest)
        shot_of[str(dest)] = shot
        if shot in EDITS:
            for path in write_edits(src, root / "edits" / shot, EDITS[shot]).values():
                shot_of[str(path)] = shot
    return root, shot_of


@needs_effnet
def test_retakes_of_one_object_never_share_a_near_group(retakes, tmp_path_factory):
    from lookalike.catalog import Catalog

    root, shot_of = retakes
    cat = Catalog(tmp_path_factory.mktemp("cat") / "catalog.sqlite")
    try:
        rep = find_duplicates([root], tier="near", catalog=cat)
    finally:
        cat.close()
    groups = [set(g.paths) for g in rep.groups]
    for g in groups:
        shots = {shot_of[p] for p in g}
        assert len(shots) == 1, f"distinct photos grouped as edited copies: {sorted(Path(p).name for p in g)}"
    # and the edited copies still group with their original
    for shot, edits in EDITS.items():
        family = {p for p, s in shot_of.items() if s == shot}
        assert family in groups, f"{shot} and its {len(edits)} edited copies are not one group: {groups}"


def _grey(path: Path, side: int = 480):
    import cv2
    import numpy as np
    from PIL import Image

    g = np.asarray(Image.open(path).convert("L"))
    s = side / max(g.shape)
    return cv2.resize(g, None, fx=s, fy=s, interpolation=cv2.INTER_AREA)


def test_geometry_tells_a_perspective_retake_from_an_edit():
    """The geometric test alone, on a synthetic pair: the same photo seen with a slight perspective
    (top corners 2 px closer together, bottom ones 2 px further apart) is a retake; a rotated, rescaled,
    recompressed and brightened copy is not."""
    import cv2
    import numpy as np

    from lookalike.dupes.verify import warp_residual

    a = _grey(shared_data("photos", "ukbench00004.jpg"))
    h, w = a.shape
    ident = np.float32([[1, 0, 0], [0, 1, 0]])
    corners = np.float32([[0, 0], [w, 0], [w, h], [0, h]])
    moved = corners + np.float32([[2, 0], [-2, 0], [2, 0], [-2, 0]])  # keystone: top narrower
    persp = cv2.warpPerspective(a, cv2.getPerspectiveTransform(corners, moved), (w, h), flags=cv2.INTER_CUBIC)
    r = warp_residual(a, persp, ident)
    assert r.retake, r

    rot = cv2.getRotationMatrix2D((w / 2, h / 2), 4.0, 0.8)
    edit = cv2.warpAffine(a, rot, (w, h), flags=cv2.INTER_CUBIC)
    edit = cv2.imdecode(cv2.imencode(".jpg", np.clip(edit * 1.2, 0, 255).astype(np.uint8),
                                     [cv2.IMWRITE_JPEG_QUALITY, 30])[1], cv2.IMREAD_GRAYSCALE)
    r = warp_residual(a, edit, cv2.invertAffineTransform(rot))  # edit -> a
    assert r.tracks >= 20 and not r.retake, r
