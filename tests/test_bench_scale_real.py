"""bench/scale_real.py's collection: its ground truth is what the files are (a tiny shard, made for real)."""

from __future__ import annotations

import dataclasses
import hashlib
import math
import sys
from pathlib import Path

from PIL import Image

from conftest import ROOT, shared_data

sys.path.insert(0, str(ROOT / "bench"))
import scale_real  # noqa: E402


def test_variants_are_stable_and_stay_inside_their_photo():
    w, h = 640, 480
    five = scale_real.variants_of(7, w, h, 5)
    assert scale_real.variants_of(7, w, h, 3) == five[:3]  # a larger collection keeps the smaller one's pictures
    assert len({(v.cx, v.cy, v.bw, v.bh) for v in five}) == 5
    for v in five:
        c, s = abs(math.cos(math.radians(v.angle))), abs(math.sin(math.radians(v.angle)))
        ex, ey = v.bw * c + v.bh * s, v.bw * s + v.bh * c  # the rotated crop's extent: no black corners
        assert ex / 2 <= v.cx <= w - ex / 2 and ey / 2 <= v.cy <= h - ey / 2


def test_tiny_collection_ground_truth(tmp_path):
    shared_data("photos")
    shard = 26
    per = scale_real.variants_per_shard(shard)
    assert per + 2 * math.ceil(per / scale_real.PLANT_EVERY) == shard
    folders = scale_real.collection(shard * 2, shard=shard, processes=1, root=tmp_path)
    assert [f.name for f in folders] == ["shard-000", "shard-001"]
    rows = scale_real.manifest(folders)
    assert len(rows) == 2 * shard
    digests = set()
    for path, row in rows.items():
        with Image.open(path) as im:
            im.load()
        if row["edit"] == "orig":
            digests.add(hashlib.sha256(Path(path).read_bytes()).digest())
    assert len(digests) == 2 * per  # every variant is a picture of its own
    families: dict[int, list[dict]] = {}
    for row in rows.values():
        families.setdefault(row["family"], []).append(row)
    planted = {f: m for f, m in families.items() if len(m) > 1}
    assert sorted(planted) == [g for g in range(2 * per) if (g % per) % scale_real.PLANT_EVERY == 0]
    for members in planted.values():
        assert [r["edit"] for r in members].count("orig") == 1
        assert len(members) == 3 and len({r["source"] for r in members}) == 1
    truth = scale_real.truth_pairs(rows)
    assert len(truth) == 3 * len(planted)
    # the planted copies are edited copies of their variant: the same picture, other bytes
    orig = {r["family"]: p for p, r in rows.items() if r["edit"] == "orig"}
    for p, r in rows.items():
        if r["edit"] != "orig":
            assert Path(p).read_bytes() != Path(orig[r["family"]]).read_bytes()
            assert Path(p).name.startswith(Path(orig[r["family"]]).stem + "__" + r["edit"])
    # scoring: the true groups are perfect; a pair of two crops of one photo is a sibling, not a false pair
    groups = [[p for p, r in rows.items() if r["family"] == f] for f in planted]
    assert scale_real.score_groups(groups, rows)["recall"] == 1.0
    assert scale_real.score_groups(groups, rows)["precision"] == 1.0
    single = [p for p, r in rows.items() if r["edit"] == "orig" and r["family"] not in planted]
    a, b, far = single[0], single[1], single[-1]  # sources 1 and 2: two UKBench photos of one object; 43: another
    assert scale_real.score_groups([*groups, [a, b]], rows)["kinds"]["same_object"] == 1
    assert scale_real.score_groups([*groups, [a, far]], rows)["kinds"]["false"] == 1
    rows[b] = dict(rows[b], group=rows[a]["group"])  # b as another crop of a's photo
    scored = scale_real.score_groups([*groups, [a, b]], rows)
    assert scored["kinds"]["sibling"] == 1 and scored["precision_without_siblings"] == 1.0
    # made once: a second call rewrites nothing
    stamp = (folders[0] / "manifest.json").stat().st_mtime_ns
    assert scale_real.collection(shard, shard=shard, processes=1, root=tmp_path) == folders[:1]
    assert (folders[0] / "manifest.json").stat().st_mtime_ns == stamp


def test_crop_overlap_is_shared_area_over_the_smaller_crop():
    base = scale_real.variants_of(0, 640, 480, 1)[0]
    def box(cx: float, cy: float, side: float) -> scale_real.Variant:
        return dataclasses.replace(base, cx=cx, cy=cy, bw=side, bh=side)

    big, inner, half, away = box(200, 200, 200), box(200, 200, 100), box(300, 200, 200), box(500, 400, 50)
    assert scale_real.crop_overlap(big, inner) == 1.0 == scale_real.crop_overlap(inner, big)
    assert scale_real.crop_overlap(big, half) == 0.5
    assert scale_real.crop_overlap(big, away) == 0.0
