"""Issue 13's rough edges: `undo` run again steps back one run, readable `journal list` lines, and
`cluster --links OUT` run again replaces its previous tree (through the journal) with numbered groups that
match the folders and imagecluster's size table."""

from __future__ import annotations

import os
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
    assert three.returncode == 1 and "nothing to undo: every run (3) is already undone" in three.stderr
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
        f"cluster --links: 2 files linked, 1 file copied in {out}",  # the copy: the tree's manifest
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


# ----------------------------------------------------------------------------- cluster --links run again
def _photos(root: Path, groups: range) -> Path:
    root.mkdir(parents=True)
    src = shared_data("photos")
    for g in groups:
        for i in range(4 * g, 4 * g + 4):
            shutil.copy2(src / f"ukbench{i:05d}.jpg", root / f"ukbench{i:05d}.jpg")
    return root


def _tree_of(out: Path) -> dict[str, str]:
    """Every entry under OUT: a link as '-> target', a file by its content's first bytes' length."""
    tree = {}
    for p in sorted(out.rglob("*")):
        rel = p.relative_to(out).as_posix()
        tree[rel] = "-> " + os.readlink(p) if p.is_symlink() else ("dir" if p.is_dir() else p.read_bytes()[:64].hex())
    return tree


def _printed_groups(stdout: str) -> dict[str, list[str]]:
    groups: dict[str, list[str]] = {}
    name = None
    for line in stdout.splitlines():
        if line.startswith("  "):
            groups[name].append(line.strip())
        else:
            name = line.split(" (")[0]
            groups[name] = []
    return groups


def test_cluster_links_run_again_replaces_its_tree_and_undo_brings_it_back(tmp_path, run_cli):
    photos = _photos(tmp_path / "photos", range(3))
    out = tmp_path / "out"
    first = run_cli("cluster", photos, "--model", "phash", "--sim", "0", "--links", out)
    assert list(_printed_groups(first.stdout)) == ["cluster_with_12/cluster_0"]
    assert "#images : #clusters\n12 : 1\n#images in clusters total: 12" in first.stderr
    # what the user adds to OUT is theirs: a note, their own link to a photo, a link of ours they re-pointed
    (out / "notes.txt").write_text("mine")
    (out / "my link.jpg").symlink_to(photos / "ukbench00000.jpg")
    repointed = out / "cluster_with_12" / "cluster_0" / "ukbench00001.jpg"
    repointed.unlink()
    repointed.symlink_to(photos / "ukbench00002.jpg")
    before = _tree_of(out)

    second = run_cli("cluster", photos, "--model", "phash", "--sim", "0.6", "--links", out)
    groups = _printed_groups(second.stdout)
    assert len(groups) > 1
    for name, members in groups.items():  # the printed names are the folders, holding the printed members
        size = int(name.split("/")[0].rsplit("_", 1)[1])
        assert len(members) == size
        assert sorted(os.readlink(p) for p in (out / name).iterdir()) == sorted(members)
    sizes: dict[int, int] = {}
    for members in groups.values():
        sizes[len(members)] = sizes.get(len(members), 0) + 1
    table = "\n".join(["#images : #clusters", *(f"{s} : {n}" for s, n in sorted(sizes.items())),
                       f"#images in clusters total: {sum(s * n for s, n in sizes.items())}"])
    assert table in second.stderr
    # the first tree's links are gone (no cluster_1 twins), but not what was not lookalike's as it made it
    after = _tree_of(out)
    folders = {k for k in after if k.count("/") == 1 and after[k] == "dir"}
    assert folders == set(groups) | {"cluster_with_12/cluster_0"}
    assert after["notes.txt"] == before["notes.txt"] and after["my link.jpg"] == before["my link.jpg"]
    assert after["cluster_with_12/cluster_0/ukbench00001.jpg"] == "-> " + str(photos / "ukbench00002.jpg")
    assert [k for k in after if k.startswith("cluster_with_12/cluster_0/")] == [
        "cluster_with_12/cluster_0/ukbench00001.jpg"]
    linked = sum(len(m) for m in groups.values())
    assert list_journals()[-1].summary == \
        f"cluster --links: 11 links removed, {linked} files linked, 1 file replaced in {out}"  # (the manifest)

    run_cli("undo")  # one undo: the previous tree is back, exactly
    assert _tree_of(out) == before
    # the same again: the first tree is replaced in place, except the folder holding the link the user changed
    third = run_cli("cluster", photos, "--model", "phash", "--sim", "0", "--links", out)
    assert list(_printed_groups(third.stdout)) == ["cluster_with_12/cluster_1"]
    assert sorted(p.name for p in (out / "cluster_with_12" / "cluster_0").iterdir()) == ["ukbench00001.jpg"]
    assert len(list((out / "cluster_with_12" / "cluster_1").iterdir())) == 12


def test_cluster_copies_are_removed_only_while_equal_to_their_photo(tmp_path, run_cli):
    photos = _photos(tmp_path / "photos", range(1))
    out = tmp_path / "out"
    run_cli("cluster", photos, "--model", "phash", "--sim", "0", "--copy", out, "--sheet")
    folder = out / "cluster_with_4" / "cluster_0"
    (folder / "ukbench00000.jpg").write_bytes(b"edited in OUT")  # no longer what lookalike wrote
    (photos / "ukbench00001.jpg").write_bytes(b"the photo changed: the copy is the old version's only copy")
    res = run_cli("cluster", photos, "--model", "phash", "--sim", "1", "--copy", out, check=False)
    assert "left in place" in res.stderr and "ukbench00001.jpg" in res.stderr
    assert (folder / "ukbench00000.jpg").read_bytes() == b"edited in OUT"
    assert (folder / "ukbench00001.jpg").read_bytes() == (shared_data("photos") / "ukbench00001.jpg").read_bytes()
    assert not (folder / "ukbench00002.jpg").exists() and not (folder / "ukbench00003.jpg").exists()
    # the sheet of the earlier tree, which nothing replaces, goes too (a photo it shows is its keeper)
    assert not (out / "cluster_with_4" / "cluster_0_sheet.jpg").exists() and "cluster_0_sheet.jpg" not in res.stderr


def test_unlink_names_the_photo_it_points_to_as_keeper(tmp_path):
    photos = _tree(tmp_path / "p", 2)
    link = tmp_path / "caf\udce9.jpg"  # a name that is not UTF-8
    link.symlink_to(photos / "img_0.jpg")
    plan = Plan()
    plan.unlink(link)
    assert plan.operations[0].keep == str(photos / "img_0.jpg")
    link.unlink()
    link.symlink_to(photos / "img_1.jpg")  # re-pointed between plan and apply
    report = apply_plan(plan)
    assert report.done == 0 and "changed since the plan" in report.failed[0]["error"]
    from lookalike.journal import Op

    wrong = apply_plan(Plan([Op("delete", path=str(link), kind="symbolic", keep=str(photos / "img_0.jpg"),
                                keep_sha256=plan.operations[0].keep_sha256)]))
    assert wrong.done == 0 and "not at its keeper" in wrong.failed[0]["error"]
    again = Plan()
    again.unlink(link)
    assert apply_plan(again).done == 1 and not os.path.lexists(link)
    assert undo().ok and os.readlink(link) == str(photos / "img_1.jpg")
    (photos / "img_1.jpg").unlink()  # the photo is gone: its link is never removed as a link of it
    gone = Plan([Op("delete", path=str(link), kind="symbolic", keep=str(photos / "img_1.jpg"), keep_sha256="0" * 64)])
    assert apply_plan(gone).done == 0 and os.path.islink(link)


def test_relative_says_how_it_compares_with_the_absolute_cut(tmp_path, run_cli):
    import numpy as np

    from lookalike.organise.cluster import cluster_vectors
    from lookalike.organise.vectors import from_matrix

    # the largest distance is 1 (two orthogonal photos): the relative cut is the absolute one
    vec = from_matrix(["/p/a.jpg", "/p/b.jpg", "/p/c.jpg"], np.array([[1, 0], [0, 1], [1, 0.05]], "f4"), "embedding")
    same = cluster_vectors(vec, sim=0.5, method="average", relative=True)
    assert same.absolute_cut == same.threshold == 0.5 and same.same_as_absolute is True
    other = cluster_vectors(from_matrix(["/p/a.jpg", "/p/b.jpg", "/p/c.jpg"],
                                        np.array([[1, 0], [1, 1], [1, 0.05]], "f4"), "embedding"),
                            sim=0.5, method="average", relative=True)
    assert other.threshold < other.absolute_cut == 0.5 and other.same_as_absolute is False
    assert cluster_vectors(vec, sim=0.5).absolute_cut is None  # only said with --relative
    photos = _photos(tmp_path / "photos", range(2))
    res = run_cli("cluster", photos, "--model", "phash", "--sim", "0.5", "--method", "average", "--relative")
    assert "--relative: cut at (1 - sim) x the largest distance in this set; the absolute cut would be at 0.5000, " \
           "with" in res.stderr


def test_dry_run_of_a_rerun_shows_the_names_it_will_use(tmp_path, run_cli):
    photos = _photos(tmp_path / "photos", range(1))
    out = tmp_path / "out"
    run_cli("cluster", photos, "--model", "phash", "--sim", "0", "--links", out)
    dry = run_cli("cluster", photos, "--model", "phash", "--sim", "0", "--links", out, "--dry-run").stderr
    name = out / "cluster_with_4" / "cluster_0" / "ukbench00000.jpg"
    assert f"delete {name} (keeper {photos / 'ukbench00000.jpg'})" in dry
    assert f"-> {name}\n" in dry and "(1).jpg" not in dry


# ----------------------------------------------------------------------------- a readable dendrogram
def test_dendrogram_names_every_leaf_with_a_thumbnail_in_legible_text(tmp_path, catalog):
    import numpy as np
    from PIL import Image
    from scipy.cluster import hierarchy

    from lookalike.organise.cluster import cluster
    from lookalike.organise.sheets import FONT_SIZE, dendrogram_png

    photos = _photos(tmp_path / "photos", range(3))
    res = cluster(photos, model="phash", catalog=catalog)
    drawn = dendrogram_png(res.linkage, tmp_path / "d.png", cut=res.threshold, paths=res.paths)
    order = hierarchy.dendrogram(res.linkage, no_plot=True)["leaves"]
    assert drawn.leaves == [os.path.basename(res.paths[i]) for i in order] and drawn.thumbnails
    assert FONT_SIZE >= 12  # not the 10-px bitmap font
    img = np.asarray(Image.open(drawn.path).convert("L"))
    assert img.shape[::-1] == drawn.size
    bare = dendrogram_png(res.linkage, tmp_path / "bare.png", cut=res.threshold, thumbnails=False)
    assert not bare.thumbnails and bare.leaves == [str(i) for i in order]  # no paths: the rows' numbers
    # under the tree: an upright name per leaf, in its own column (ink under the leaf, none half-way between)
    top, bottom = drawn.names_y
    band = img[top:bottom] < 128
    assert len(drawn.leaves) == 12 and bottom - top > 100  # upright names of 16 letters
    pitch = drawn.leaf_x[1] - drawn.leaf_x[0]
    assert pitch >= FONT_SIZE + 4
    for x in drawn.leaf_x:
        assert band[:, x - FONT_SIZE // 2: x + FONT_SIZE // 2].sum() > 100
        assert not band[:, x + pitch // 2].any()
    def coloured(path) -> int:
        rgb = np.asarray(Image.open(path).convert("RGB")).astype(int)
        return int((rgb.max(axis=2) - rgb.min(axis=2) > 40).sum())

    assert coloured(drawn.path) > coloured(bare.path) + 12 * 400  # a thumbnail of each photo


def test_dendrogram_of_a_big_tree_names_its_branches(tmp_path):
    import numpy as np
    from scipy.cluster import hierarchy

    from lookalike.organise.sheets import dendrogram_png

    rng = np.random.default_rng(1)
    z = hierarchy.linkage(rng.random((500, 4)), "ward")
    drawn = dendrogram_png(z, tmp_path / "big.png", paths=[f"/p/{i}.jpg" for i in range(500)], max_leaves=150)
    assert len(drawn.leaves) == 150 and not drawn.thumbnails  # past 120 leaves: names only
    sizes = [int(x.strip("(").split()[0]) for x in drawn.leaves if x.startswith("(")]
    assert sum(sizes) + sum(1 for x in drawn.leaves if not x.startswith("(")) == 500
    assert drawn.size[0] >= 150 * 18  # wide enough for one name per leaf


# ----------------------------------------------------------------------------- stale sheets, after a purge
def test_cluster_rerun_replaces_its_own_earlier_sheets_and_dendrogram(tmp_path, run_cli):
    photos = _photos(tmp_path / "photos", range(3))
    out = tmp_path / "out"
    run_cli("cluster", photos, "--model", "phash", "--sim", "0", "--method", "average", "--links", out, "--sheet",
            "--plot")
    old_sheet = out / "cluster_with_12" / "cluster_0_sheet.jpg"
    assert old_sheet.is_file() and (out / "dendrogram.png").is_file()
    (out / "cluster_with_12" / "my notes.jpg").write_bytes(b"mine")  # what the user adds is theirs
    before = _tree_of(out)

    second = run_cli("cluster", photos, "--model", "phash", "--sim", "0.6", "--method", "average", "--links", out,
                     "--sheet")
    groups = _printed_groups(second.stdout)
    sheets = sorted(p.relative_to(out).as_posix() for p in out.rglob("*_sheet.jpg"))
    assert sheets == sorted(f"{name}_sheet.jpg" for name in groups)  # the new tree's sheets, and only those
    assert not old_sheet.exists() and not (out / "dendrogram.png").exists()  # the old tree's pictures went
    assert (out / "cluster_with_12" / "my notes.jpg").read_bytes() == b"mine"
    assert "left in place" not in second.stderr
    run_cli("undo")
    assert _tree_of(out) == before  # one undo: the old tree, its sheet and its dendrogram are back

    # a sheet the user changed is no longer lookalike's: left in place, and said so
    old_sheet.write_bytes(b"edited by hand")
    third = run_cli("cluster", photos, "--model", "phash", "--sim", "0.6", "--method", "average", "--links", out)
    assert old_sheet.read_bytes() == b"edited by hand"
    assert f"left in place: {old_sheet}" in third.stderr
    assert not (out / "dendrogram.png").exists()


def test_after_journal_purge_a_rerun_still_knows_its_tree_from_the_manifest(tmp_path, run_cli):
    import json

    from lookalike.journal.links import MANIFEST

    photos = _photos(tmp_path / "photos", range(2))
    out = tmp_path / "out"
    run_cli("cluster", photos, "--model", "phash", "--sim", "0", "--links", out, "--sheet")
    folder = out / "cluster_with_8" / "cluster_0"
    manifest = json.loads((out / MANIFEST).read_text())
    assert {e["path"] for e in manifest["files"]} == {f"cluster_with_8/cluster_0/{p.name}" for p in photos.iterdir()
                                                      } | {"cluster_with_8/cluster_0_sheet.jpg"}
    # the user re-points one link and adds a file of theirs; a hand-made entry names a file of theirs and one
    # outside OUT: neither matches what lookalike wrote, so neither is touched
    changed = folder / "ukbench00001.jpg"
    changed.unlink()
    changed.symlink_to(photos / "ukbench00002.jpg")
    mine = out / "mine.jpg"
    mine.write_bytes(b"mine")
    outside = tmp_path / "outside.jpg"
    outside.write_bytes(b"outside")
    manifest["files"] += [{"path": "mine.jpg", "source": str(photos / "ukbench00000.jpg"),
                           "fingerprints": ["symlink:" + str(photos / "ukbench00000.jpg")]},
                          {"path": "../outside.jpg", "source": str(photos / "ukbench00000.jpg"),
                           "fingerprints": ["0" * 64]}]
    (out / MANIFEST).write_text(json.dumps(manifest))
    assert "purged" in run_cli("journal", "purge", "--all").stdout

    again = run_cli("cluster", photos, "--model", "phash", "--sim", "0", "--links", out, "--sheet")
    # no cluster_1 twin next to the old folder: the old links (all but the changed one) were replaced
    assert list(_printed_groups(again.stdout)) == ["cluster_with_8/cluster_1"]  # cluster_0 still holds the user's
    assert sorted(p.name for p in folder.iterdir()) == ["ukbench00001.jpg"]
    assert os.readlink(changed) == str(photos / "ukbench00002.jpg")
    assert f"left in place: {changed}" in again.stderr
    assert mine.read_bytes() == b"mine" and outside.read_bytes() == b"outside"
    assert not (out / "cluster_with_8" / "cluster_0_sheet.jpg").exists()  # the old sheet went with its tree
    assert (out / "cluster_with_8" / "cluster_1_sheet.jpg").is_file()
    assert len(list((out / "cluster_with_8" / "cluster_1").iterdir())) == 8
    # a re-run puts the tree back into the freed folder number once the user's link is gone
    changed.unlink()
    run_cli("journal", "purge", "--all")
    third = run_cli("cluster", photos, "--model", "phash", "--sim", "0", "--links", out)
    assert list(_printed_groups(third.stdout)) == ["cluster_with_8/cluster_0"]
    assert not (out / "cluster_with_8" / "cluster_1").exists() and not (out / "cluster_with_8" / "cluster_1_sheet.jpg"
                                                                          ).exists()
    assert sorted(p.name for p in out.iterdir()) == sorted([MANIFEST, "cluster_with_8", "mine.jpg"])


def test_a_manifest_that_is_not_lookalikes_is_never_read_or_overwritten(tmp_path, run_cli):
    from lookalike.journal.links import MANIFEST, read_manifest

    photos = _photos(tmp_path / "photos", range(1))
    out = tmp_path / "out"
    out.mkdir()
    (out / MANIFEST).write_text('{"files": [{"path": "x"}]}')  # not lookalike's format
    assert read_manifest(out) is None
    res = run_cli("cluster", photos, "--model", "phash", "--sim", "0", "--links", out)
    assert (out / MANIFEST).read_text() == '{"files": [{"path": "x"}]}'
    assert "no manifest written" in res.stderr
    fifo = tmp_path / "fifo-out"
    fifo.mkdir()
    os.mkfifo(fifo / MANIFEST)
    assert read_manifest(fifo) is None  # never opened (a FIFO would block)


def test_manifest_survives_a_sheets_only_run_odd_names_and_a_linked_out(tmp_path, catalog):
    import json

    from lookalike.journal import purge
    from lookalike.journal.links import MANIFEST
    from lookalike.organise import cluster_folder

    def run(out, **kw):
        kw.setdefault("mode", "link")
        return cluster_folder(photos, sim=0, model="phash", out=out, catalog=catalog, **kw)

    photos = _photos(tmp_path / "photos", range(1))
    odd = photos / "caf\udce9.jpg"  # a name that is not UTF-8
    (photos / "ukbench00003.jpg").rename(odd)
    out = tmp_path / "out"
    run(out)
    run(out, mode=None, sheet=True)  # sheets only: the links stay, and stay in the manifest
    listed = {e["path"] for e in json.loads((out / MANIFEST).read_text())["files"]}
    folder = "cluster_with_4/cluster_0"
    sheets = {p.relative_to(out).as_posix() for p in out.rglob("*_sheet.jpg")}
    assert len(sheets) == 1
    assert listed == {f"{folder}/ukbench0000{i}.jpg" for i in range(3)} | {f"{folder}/caf\udce9.jpg"} | sheets
    purge(all=True)
    via = tmp_path / "via"
    via.symlink_to(out)  # OUT given through a symbolic link
    again = run(via)
    assert again.names() == [folder] and again.left == []
    assert sorted(os.listdir(out / folder)) == sorted(["caf\udce9.jpg", *(f"ukbench0000{i}.jpg" for i in range(3))])
    assert os.readlink(out / folder / "caf\udce9.jpg") == str(odd)
    assert not any(out.rglob("*_sheet.jpg"))  # the old sheet went with the old tree
    # a folder of the tree swapped for a link to elsewhere is not the tree lookalike wrote: nothing there is touched
    elsewhere = tmp_path / "elsewhere"
    shutil.move(out / "cluster_with_4", elsewhere)
    (out / "cluster_with_4").symlink_to(elsewhere)
    purge(all=True)
    run(out)
    assert sorted(os.listdir(elsewhere / "cluster_0")) == sorted(["caf\udce9.jpg",
                                                                  *(f"ukbench0000{i}.jpg" for i in range(3))])
