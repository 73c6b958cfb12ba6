"""Issue 13's rough edges: `undo` run again steps back one run, readable `journal list` lines, and
`cluster --links OUT` run again replaces its previous tree (through the journal) with numbered groups that
match the folders and imagecluster's size table."""

from __future__ import annotations

import shutil
from pathlib import Path

from conftest import shared_data
from lookalike.journal import Plan, apply_plan, latest_to_undo, list_journals, undo


def _tree(root: Path, n: int = 4) -> Path:
    root.mkdir(parents=True)
    src = shared_data("photos")
    for i in range(n):
        shutil.copy2(src / f"ukbench{i:05d}.jpg", root / f"img_{i}.jpg")
    return root


def _rename(src: Path, name: str, description: str):
    plan = Plan(description=description)
    plan.rename(src, name)
    return apply_plan(plan)


# ----------------------------------------------------------------------------- undo steps back
def test_plain_undo_run_again_steps_back_one_run_at_a_time(tmp_path, run_cli):
    root = _tree(tmp_path / "p")
    first = _rename(root / "img_0.jpg", "a.jpg", "first")
    second = _rename(root / "img_1.jpg", "b.jpg", "second")
    refused = Plan(description="refused")
    refused.rename(root / "img_2.jpg", "c.jpg")
    (root / "img_2.jpg").write_bytes(b"changed since the plan")  # every operation refused: changed nothing
    assert apply_plan(refused).done == 0

    one = run_cli("undo")
    assert f"journal {second.id}" in one.stdout and "1 file renamed" in one.stdout
    assert (root / "img_1.jpg").exists() and (root / "a.jpg").exists()
    two = run_cli("undo", "--json").json()  # today: "nothing to undo: journal ... was already undone"
    assert two["id"] == first.id and two["undone"] == 1
    assert (root / "img_0.jpg").exists() and not (root / "a.jpg").exists()
    three = run_cli("undo", check=False)
    assert three.returncode == 1 and "nothing left to undo" in three.stderr
    # `undo ID` is unchanged: an undone run says so
    again = run_cli("undo", second.id, check=False)
    assert again.returncode == 1 and "was already undone" in again.stderr


def test_library_undo_and_latest_to_undo_agree(tmp_path):
    root = _tree(tmp_path / "p")
    runs = [_rename(root / f"img_{i}.jpg", f"r{i}.jpg", f"run {i}") for i in range(3)]
    for expected in reversed(runs):
        assert latest_to_undo().folder == expected.journal
        assert undo().journal == expected.journal
    assert sorted(p.name for p in root.iterdir()) == [f"img_{i}.jpg" for i in range(4)]


def test_journal_list_lines_are_short_sentences(tmp_path, run_cli):
    photos = _tree(tmp_path / "photos", 2)
    shutil.copy2(photos / "img_0.jpg", photos / "img_0 copy.jpg")
    shutil.copy2(photos / "img_0.jpg", photos / "img_0 copy 2.jpg")
    shutil.copy2(photos / "img_1.jpg", photos / "img_1 copy.jpg")
    run_cli("dupes", photos, "--tier", "exact", "--action", "delete", "--yes")
    run_cli("sort", photos, "--model", "phash", "--rename")
    out = tmp_path / "out"
    run_cli("cluster", photos, "--model", "phash", "--sim", "0", "--links", out)
    summaries = [i.summary for i in list_journals()]
    assert summaries == [
        f"dupes --tier exact --action delete: 3 files deleted in {photos}",
        f"sort --rename: 2 files renamed in {photos}",
        f"cluster --links: 2 files linked in {out}",
    ]
    text = run_cli("journal", "list", env={"COLUMNS": "250"}).stdout
    for s in summaries:
        assert s in text
    assert run_cli("journal", "list", "--json").json()["journals"][0]["summary"] == summaries[0]


def test_a_refused_run_is_described_and_skipped(tmp_path):
    root = _tree(tmp_path / "p", 1)
    plan = Plan(description="refused")
    plan.rename(root / "img_0.jpg", "x.jpg")
    (root / "img_0.jpg").write_bytes(b"other")
    apply_plan(plan)
    info = list_journals()[-1]
    assert info.summary == "refused: nothing changed (1 refused)" and not info.undoable
