"""Duplicate finder speed (issue 12): verdicts cached in the catalog by content, verification on several
processes with the single-process result, and an exact tier that decodes nothing."""

from __future__ import annotations

import shutil
import time
from pathlib import Path

import pytest

from conftest import needs_effnet, shared_data
from lookalike.catalog import Catalog, StoredVerdict, VerdictKey, VerdictStore
from lookalike.dupes import find_duplicates, finder
from photo_edits import write_edits

EDITS = ["meta", "crop70", "rot90", "flip", "grey", "jpeg30"]


def shape(report, root: Path) -> list:
    """Groups as (keeper, sorted (member, tier, score)) with paths relative to ``root``."""
    rel = lambda p: str(Path(p).relative_to(root))  # noqa: E731
    return sorted((rel(g.keep), sorted((rel(m.path), m.tier, round(m.score, 6)) for m in g.members))
                  for g in report.groups)


@pytest.fixture(scope="module")
def photo_set(tmp_path_factory) -> Path:
    """Two originals with edited copies, and another photo of the first one's object (a distractor)."""
    root = tmp_path_factory.mktemp("speed") / "set"
    faces = sorted(shared_data("faces", "celebrity", "Tom_Hanks").glob("*.jpg"))
    for name, src in (("ukb", shared_data("photos", "ukbench00004.jpg")), ("face", faces[0])):
        (root / name).mkdir(parents=True)
        shutil.copyfile(src, root / name / src.name)
        write_edits(src, root / name / "edits", EDITS)
    shutil.copyfile(shared_data("photos", "ukbench00005.jpg"), root / "other_view.jpg")
    return root


@needs_effnet
def test_a_rerun_verifies_nothing_and_renamed_files_keep_their_verdicts(photo_set, tmp_path):
    root = tmp_path / "set"
    shutil.copytree(photo_set, root)
    cat = Catalog(tmp_path / "c.sqlite")
    cold = find_duplicates([root], catalog=cat, workers=1)
    assert cold.stats["verified"] > 0 and cold.stats["cached"] == 0 and cold.groups
    warm = find_duplicates([root], catalog=cat, workers=1)
    assert warm.stats["verified"] == 0 and warm.stats["cached"] == cold.stats["verified"]
    assert warm.stats["decoded"] == 0 and shape(warm, root) == shape(cold, root)

    moved = tmp_path / "moved"  # every file renamed: the verdicts are keyed by content, not by name
    moved.mkdir()
    for p in sorted(root.rglob("*.*")):
        shutil.move(p, moved / ("x_" + "_".join(p.relative_to(root).parts)))
    again = find_duplicates([moved], catalog=cat, workers=1)
    assert again.stats["verified"] == 0 and again.stats["cached"] > 0
    renamed = lambda g: sorted(len(x.paths) for x in g)  # noqa: E731
    assert renamed(again.groups) == renamed(cold.groups)
    scores = lambda r: sorted(round(m.score, 6) for g in r.groups for m in g.members)  # noqa: E731
    assert scores(again) == scores(cold)


@needs_effnet
def test_a_new_verifier_version_verifies_again(photo_set, tmp_path, monkeypatch):
    import lookalike.dupes.finder as finder

    cat = Catalog(tmp_path / "c.sqlite")
    first = find_duplicates([photo_set], catalog=cat, workers=1)
    monkeypatch.setattr(finder, "VERIFIER_VERSION", "test-next")
    bumped = find_duplicates([photo_set], catalog=cat, workers=1)
    assert bumped.stats["cached"] == 0 and bumped.stats["verified"] == first.stats["verified"]
    assert shape(bumped, photo_set) == shape(first, photo_set)
    assert VerdictStore(cat).count() == 2 * first.stats["verified"]  # old rows kept, never read
    # `lookalike cache prune` drops the rows no run reads again: the old version's, then a removed file's
    assert cat.prune(verdict_version="test-next")["verdicts_removed"] == first.stats["verified"]
    assert VerdictStore(cat).count() == first.stats["verified"]
    again = find_duplicates([photo_set], catalog=cat, workers=1)
    assert again.stats["verified"] == 0 and shape(again, photo_set) == shape(first, photo_set)


@needs_effnet
def test_prune_drops_the_verdicts_of_removed_files(photo_set, tmp_path):
    root = tmp_path / "set"
    shutil.copytree(photo_set, root)
    cat = Catalog(tmp_path / "c.sqlite")
    find_duplicates([root], catalog=cat, workers=1)
    store = VerdictStore(cat)
    before = store.count()
    gone = root / "other_view.jpg"
    gone_hash = cat.lookup_files([str(gone)])[str(gone)].content_hash
    about = cat.connection().execute("SELECT COUNT(*) FROM verdicts WHERE hash_a = ? OR hash_b = ?",
                                     (gone_hash, gone_hash)).fetchone()[0]
    assert about > 0  # the distractor was verified against the photo of its object
    gone.unlink()
    res = cat.prune()
    assert res["files_removed"] == 1 and res["verdicts_removed"] == about and store.count() == before - about


@needs_effnet
def test_another_threshold_reuses_verdicts_only_where_they_hold(photo_set, tmp_path):
    cat = Catalog(tmp_path / "c.sqlite")
    find_duplicates([photo_set], catalog=cat, workers=1)
    for threshold in (0.93, 0.82):
        reused = find_duplicates([photo_set], catalog=cat, threshold=threshold, workers=1)
        fresh = find_duplicates([photo_set], catalog=Catalog(tmp_path / f"fresh{threshold}.sqlite"),
                                threshold=threshold, workers=1)
        assert reused.stats["cached"] > 0
        assert reused.stats["verified"] < fresh.stats["verified"]
        assert shape(reused, photo_set) == shape(fresh, photo_set)


@needs_effnet
def test_verification_on_two_processes_gives_the_single_process_result(photo_set, tmp_path, monkeypatch):
    # a set this small verifies a few pairs a wave: send every wave to the pool, as a large set would
    monkeypatch.setattr(finder, "POOL_MIN_PAIRS", 1)
    one = find_duplicates([photo_set], catalog=Catalog(tmp_path / "one.sqlite"), workers=1)
    two = find_duplicates([photo_set], catalog=Catalog(tmp_path / "two.sqlite"), workers=2)
    assert two.stats["verified_in_pool"] >= 8 and one.stats["verified_in_pool"] == 0  # the pool did run
    assert shape(two, photo_set) == shape(one, photo_set)
    for key in ("verified", "pairs_verified", "skipped_linked", "verified_near", "verified_on_demand"):
        assert two.stats[key] == one.stats[key], key
    a = VerdictStore(Catalog(tmp_path / "one.sqlite"))
    b = VerdictStore(Catalog(tmp_path / "two.sqlite"))
    rows = lambda s: sorted(s.catalog.connection().execute("SELECT * FROM verdicts").fetchall())  # noqa: E731
    assert rows(a) == rows(b)


def test_exact_tier_reads_no_pixels_and_rereads_nothing(tmp_path):
    root = tmp_path / "s"
    root.mkdir()
    photo = shared_data("photos", "ukbench00010.jpg").read_bytes()
    (root / "a.jpg").write_bytes(photo)
    (root / "b.jpg").write_bytes(photo)
    junk = b"\xff\xd8 not a picture, but the same bytes twice" * 300
    (root / "junk1.jpg").write_bytes(junk)
    (root / "junk2.jpg").write_bytes(junk)
    (root / "alone.jpg").write_bytes(shared_data("photos", "ukbench00011.jpg").read_bytes())  # a size of its own
    (root / "same_size_1.jpg").write_bytes(b"\xff\xd8" + b"1" * 20000)  # same size, other ends: no full read
    (root / "same_size_2.jpg").write_bytes(b"\xff\xd8" + b"2" * 20000)
    (root / "empty1.jpg").write_bytes(b"")  # the same (no) bytes, but no picture: never a duplicate
    (root / "empty2.jpg").write_bytes(b"")
    cat = Catalog(tmp_path / "c.sqlite")
    time.sleep(0.05)  # past the clock tick of the writes: the hashes may be trusted next time
    rep = find_duplicates([root], tier="exact", catalog=cat)
    groups = sorted(sorted(Path(p).name for p in g.paths) for g in rep.groups)
    assert groups == [["a.jpg", "b.jpg"], ["junk1.jpg", "junk2.jpg"]]
    assert sorted((Path(e.path).name, e.error) for e in rep.errors) == [("empty1.jpg", "empty file (0 bytes)"),
                                                                         ("empty2.jpg", "empty file (0 bytes)")]
    assert rep.stats["decoded"] == 0 and rep.stats["unique_size"] == 1
    assert rep.stats["read_partial"] == 6 and rep.stats["read_full"] == 4
    again = find_duplicates([root], tier="exact", catalog=cat)
    assert again.stats["fast_path"] == 4 and again.stats["read_full"] == 0 and again.stats["read_partial"] == 2
    assert sorted(sorted(Path(p).name for p in g.paths) for g in again.groups) == groups
    (root / "b.jpg").write_bytes(photo[:-1] + b"\x00")  # changed since: read again, no longer a copy
    changed = find_duplicates([root], tier="exact", catalog=cat)
    assert [sorted(Path(p).name for p in g.paths) for g in changed.groups] == [["junk1.jpg", "junk2.jpg"]]
    assert changed.stats["read_full"] == 1 and changed.stats["fast_path"] == 3  # b only: a's hash is known


def test_verdict_store_batches_and_keys_by_ordered_content(tmp_path):
    cat = Catalog(tmp_path / "c.sqlite")
    store = VerdictStore(cat)
    key = VerdictKey.of("bb", "aa", "near", "1", "u")
    assert (key.hash_a, key.hash_b) == ("aa", "bb") and key == VerdictKey.of("aa", "bb", "near", "1", "u")
    store.add([StoredVerdict(key, True, 0.95, 0.80, 0.95)])
    reader = Catalog(tmp_path / "c.sqlite")  # another handle (another connection) sees only written batches
    assert VerdictStore(reader).lookup([key]) == {}
    store.flush()
    got = VerdictStore(reader).lookup([key, VerdictKey.of("aa", "bb", "near", "2", "u")])
    assert list(got) == [key] and got[key].holds_at(0.87) and not got[key].holds_at(0.96)
    assert not got[key].holds_at(0.80) and got[key].holds_at(0.95)


@needs_effnet
def test_an_unguarded_script_is_never_run_again_by_worker_processes(photo_set, tmp_path):
    """Spawned workers import the main script again: one without an ``if __name__ == "__main__"`` guard
    (here it appends a line to a file, as a script acting on duplicates would act) must run once."""
    import os
    import subprocess
    import sys

    script = tmp_path / "script.py"
    runs = tmp_path / "runs.txt"
    script.write_text(
        "from lookalike.dupes import find_duplicates\n"
        f"open({str(runs)!r}, 'a').write('run\\n')\n"
        f"r = find_duplicates([{str(photo_set)!r}], catalog={str(tmp_path / 'c.sqlite')!r})\n"
        f"open({str(runs)!r}, 'a').write(str(r.stats['verified']) + ' ' + str(r.stats['verified_in_pool']) + '\\n')\n")
    src = str(Path(__file__).resolve().parents[1] / "src")
    subprocess.run([sys.executable, str(script)], check=True, timeout=600, env={**os.environ, "PYTHONPATH": src})
    first, counts = runs.read_text().splitlines()
    verified, in_pool = map(int, counts.split())
    assert first == "run" and verified >= 8 and in_pool == 0


def test_one_opencv_thread_is_shared_by_overlapping_users_and_restored_by_the_last():
    import threading

    import cv2

    from lookalike.dupes.verify import one_opencv_thread

    before = cv2.getNumThreads()
    cv2.setNumThreads(3)
    try:
        inside, release = threading.Event(), threading.Event()

        def other() -> None:
            with one_opencv_thread():
                inside.set()
                release.wait(10)

        t = threading.Thread(target=other)
        with one_opencv_thread():
            t.start()
            assert inside.wait(10) and cv2.getNumThreads() == 1
        assert cv2.getNumThreads() == 1  # the other user is still inside
        release.set()
        t.join(10)
        assert cv2.getNumThreads() == 3
    finally:
        cv2.setNumThreads(before)
