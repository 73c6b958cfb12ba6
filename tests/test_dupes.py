"""Duplicate finder: tiers on real photos and their edited copies, keeper policy, --keep-in, no chaining,
awkward files, JSON shape, and every action round-tripping through the journal (apply, then undo)."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from pathlib import Path

import pytest

from conftest import needs_effnet, shared_data
from lookalike.dupes import choose_keeper, find_duplicates, parse_policy, plan_for
from lookalike.dupes.grouping import split_component
from lookalike.dupes.keeper import FileFacts
from lookalike.errors import UsageError
from photo_edits import relabel_jpeg, write_edits

NEAR_EDITS = ["meta", "crop70", "rot90", "flip", "grey", "watermark", "border20", "rot5"]


def tree(root: Path) -> dict[str, str]:
    """Relative path -> sha256 of every file under root (links followed)."""
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def near_set(tmp_path_factory) -> tuple[Path, dict[str, str]]:
    """Two real originals with edited copies, one same-object photo (a distractor) and two awkward files.
    Returns the folder and family name per file."""
    root = tmp_path_factory.mktemp("near")
    photos = shared_data("photos")
    faces = sorted(shared_data("faces", "celebrity", "Tom_Hanks").glob("*.jpg"))
    family = {}
    for name, src in (("ukb", photos / "ukbench00004.jpg"), ("face", faces[0])):
        dest = root / name / src.name
        dest.parent.mkdir()
        shutil.copyfile(src, dest)
        family[str(dest)] = name
        for path in write_edits(src, root / name / "edits", NEAR_EDITS).values():
            family[str(path)] = name
    shutil.copyfile(photos / "ukbench00005.jpg", root / "other_view.jpg")  # same object, another photo
    (root / "notes.jpg").write_text("not a picture")
    (root / "empty.jpg").write_bytes(b"")
    return root, family


@pytest.fixture(scope="module")
def near_report(near_set, tmp_path_factory):
    from lookalike.catalog import Catalog

    cat = Catalog(tmp_path_factory.mktemp("cat") / "catalog.sqlite")
    calls = []
    rep = find_duplicates([near_set[0]], catalog=cat, progress=lambda d, t: calls.append((d, t)))
    return rep, calls


@needs_effnet
def test_near_tier_groups_every_edit_and_nothing_else(near_set, near_report):
    root, family = near_set
    rep, calls = near_report
    assert calls, "progress was never reported"
    groups = [set(g.paths) for g in rep.groups]
    expected = [{p for p, f in family.items() if f == name} for name in ("face", "ukb")]
    assert sorted(groups, key=len) == sorted(expected, key=len)
    assert str(root / "other_view.jpg") not in set().union(*groups)
    for g in rep.groups:
        for m in g.members:
            assert m.tier in ("pixel", "near") and 0.0 < m.score <= 1.0
        assert g.reason


@needs_effnet
def test_awkward_files_are_reported_not_fatal(near_set, near_report):
    root, _ = near_set
    rep, _ = near_report
    bad = {e.path for e in rep.errors}
    assert bad == {str(root / "notes.jpg"), str(root / "empty.jpg")}
    assert all(e.error for e in rep.errors)


@needs_effnet
def test_json_shape_is_exactly_the_documented_one(near_report):
    data = near_report[0].to_json()
    assert set(data) == {"groups", "errors"}
    for g in data["groups"]:
        assert set(g) == {"keep", "keep_facts", "reason", "members"} and os.path.isabs(g["keep"])
        assert g["keep"] not in [m["path"] for m in g["members"]]
        facts = [g["keep_facts"]]
        for m in g["members"]:
            assert set(m) == {"path", "tier", "score", "facts"} and os.path.isabs(m["path"])
            assert isinstance(m["score"], float)
            facts.append(m["facts"])
        for f in facts:  # what the keeper choice compared, for the review page
            assert set(f) == {"width", "height", "bytes", "format", "taken", "modified"}
            assert f["width"] > 0 and f["height"] > 0 and f["bytes"] > 0 and f["format"] == "JPEG"
            assert f["taken"] is None or len(f["taken"]) == 19
    for e in data["errors"]:
        assert set(e) == {"path", "error"}


@pytest.fixture
def exact_set(tmp_path) -> Path:
    """A photo, a byte copy, a metadata-only copy (same pixels) and an unrelated photo."""
    root = tmp_path / "pics"
    (root / "a").mkdir(parents=True)
    (root / "b").mkdir()
    src = shared_data("photos", "ukbench00010.jpg")
    shutil.copyfile(src, root / "a" / "IMG_1.jpg")
    shutil.copyfile(src, root / "b" / "IMG_1.jpg")  # same name elsewhere: collisions in DEST
    (root / "b" / "resaved.jpg").write_bytes(relabel_jpeg(src.read_bytes()))
    shutil.copyfile(shared_data("photos", "ukbench00020.jpg"), root / "other.jpg")
    return root


def test_exact_and_pixel_tiers(exact_set, catalog):
    root = exact_set
    exact = find_duplicates([root], tier="exact", catalog=catalog)
    assert [sorted(g.paths) for g in exact.groups] == [[str(root / "a/IMG_1.jpg"), str(root / "b/IMG_1.jpg")]]
    assert [m.tier for m in exact.groups[0].members] == ["exact"]
    pixel = find_duplicates([root], tier="pixel", catalog=catalog)
    assert len(pixel.groups) == 1
    g = pixel.groups[0]
    assert set(g.paths) == {str(root / "a/IMG_1.jpg"), str(root / "b/IMG_1.jpg"), str(root / "b/resaved.jpg")}
    tiers = {m.path: m.tier for m in g.members}
    resaved = str(root / "b/resaved.jpg")
    assert tiers[resaved] == ("exact" if g.keep == resaved else "pixel")
    assert sorted(tiers.values()) == ["exact", "pixel"] or g.keep == resaved


def test_keeper_policy_order_and_reasons():
    big = FileFacts("/p/big.jpg", 4000, 3000, bytes=1_000, format="JPEG")
    small = FileFacts("/p/small.png", 400, 300, bytes=9_000, format="PNG")
    same_png = FileFacts("/p/x/same.png", 4000, 3000, bytes=1_000, format="PNG")
    keep, why = choose_keeper([small, big], parse_policy(None))
    assert keep == big.path and "highest resolution" in why
    keep, why = choose_keeper([small, big], parse_policy("size,resolution"))
    assert keep == small.path and "largest file" in why
    keep, why = choose_keeper([big, same_png], parse_policy(None))
    assert keep == same_png.path and "lossless" in why
    keep, why = choose_keeper([big, small], parse_policy(None), keep_in=["/p/x", "/p/small.png"])
    assert keep == small.path and why.startswith("in a --keep-in folder")
    broken = FileFacts("/p/huge.jpg", 8000, 6000, bytes=99_000, format="JPEG", truncated=True)
    keep, why = choose_keeper([broken, small], parse_policy(None))
    assert keep == small.path and "truncated" in why
    with pytest.raises(UsageError):
        parse_policy("resolution,colour")


def test_no_chaining_through_weak_links():
    # 0 - 1 - 2 - 3: a chain; only neighbours match. Keeper 0 takes 1 only; 2 and 3 form their own group.
    links = {(0, 1), (1, 2), (2, 3)}

    def linked(a: int, b: int) -> bool:
        return (a, b) in links or (b, a) in links

    groups = split_component([0, 1, 2, 3], linked, pick_keeper=min)
    assert groups == [(0, [1]), (2, [3])]
    # a member that matches a strong majority of the group joins even without a direct keeper link
    links = {(0, 1), (0, 2), (0, 3), (1, 2), (1, 3), (2, 3), (4, 1), (4, 2), (4, 3)}
    assert split_component([0, 1, 2, 3, 4], linked, pick_keeper=min) == [(0, [1, 2, 3, 4])]
    # ...but not with only half of it
    links = {(0, 1), (0, 2), (0, 3), (1, 2), (1, 3), (2, 3), (4, 1), (4, 2)}
    assert split_component([0, 1, 2, 3, 4], linked, pick_keeper=min) == [(0, [1, 2, 3])]


@pytest.mark.parametrize("action", ["copy", "move", "move-dupes", "delete", "link"])
def test_actions_round_trip_through_the_journal(exact_set, catalog, tmp_path, action):
    from lookalike.journal import apply_plan, undo

    root = exact_set
    before = tree(root)
    rep = find_duplicates([root], tier="pixel", catalog=catalog)
    dest = tmp_path / "dest"
    plan = plan_for(rep, action, dest=dest if action in ("copy", "move", "move-dupes") else None)
    result = apply_plan(plan)
    assert not result.failed and result.done == len(plan)
    if action in ("copy", "move"):
        names = sorted(p.name for p in (dest / "group_0001").iterdir())
        assert len(names) == 3 and len(set(names)) == 3  # IMG_1.jpg twice: renamed, never overwritten
        # the keeper's copy says so (issue 13): KEEP_<its name>, the others keep theirs
        assert f"KEEP_{os.path.basename(rep.groups[0].keep)}" in names
        assert sum(n.startswith("KEEP_") for n in names) == 1
    if action == "move-dupes":
        names = sorted(p.name for p in (dest / "group_0001").iterdir())
        assert names == sorted(os.path.basename(m.path) for m in rep.groups[0].members)
        assert os.path.isfile(rep.groups[0].keep)  # the keeper stays where it was
    if action in ("delete", "move", "move-dupes"):
        assert not os.path.exists(rep.groups[0].members[0].path)
    if action == "link":
        assert all(os.stat(m.path).st_ino == os.stat(rep.groups[0].keep).st_ino for m in rep.groups[0].members)
    undo(result.journal)
    assert tree(root) == before
    assert not dest.exists() or not any(p.is_file() for p in dest.rglob("*"))


def test_cli_keep_in_is_never_touched_and_undo_restores(exact_set, run_cli, tmp_path):
    root = exact_set
    before = tree(root)
    cat = tmp_path / "cat.sqlite"
    res = run_cli("dupes", root, "--tier", "pixel", "--keep-in", root / "b", "--action", "delete", "--yes",
                  "--catalog", cat, "--json")
    data = res.json()
    group = data["groups"][0]
    assert group["keep"].startswith(str(root / "b"))
    assert "--keep-in" in group["reason"]
    assert set(tree(root / "b").values()) == {before["b/IMG_1.jpg"], before["b/resaved.jpg"]}
    assert not (root / "a" / "IMG_1.jpg").exists()
    assert data["apply"]["done"] == 1
    run_cli("undo", data["apply"]["journal"])
    assert tree(root) == before


def test_cli_delete_needs_yes_and_plan_file(exact_set, run_cli, tmp_path):
    root = exact_set
    before = tree(root)
    res = run_cli("dupes", root, "--tier", "exact", "--action", "delete", "--catalog", tmp_path / "c.sqlite",
                  check=False)
    assert res.returncode == 1 and "--yes" in res.stderr
    plan = tmp_path / "plan.json"
    run_cli("dupes", root, "--tier", "exact", "--action", "trash", "--plan", plan, "--catalog", tmp_path / "c.sqlite")
    assert plan.is_file() and tree(root) == before
    csv_out = run_cli("dupes", root, "--tier", "exact", "--csv", "--catalog", tmp_path / "c.sqlite").stdout
    assert csv_out.splitlines()[0] == "group,role,path,tier,score,reason" and len(csv_out.splitlines()) == 3


def test_indexed_hash_candidates_match_the_scan():
    import numpy as np

    from lookalike.dupes.candidates import dihedral_pairs, dihedral_pairs_indexed

    rng = np.random.default_rng(0)
    h = rng.integers(0, 2**63, size=(2000, 8)).astype(np.uint64)
    h[5, 0] = h[7, 3] ^ np.uint64(0b101)  # a rotated copy, 2 bits off
    h[9, 0] = h[11, 0]  # an identical hash
    h[20, 0] = h[21, 6] ^ np.uint64(0b111)  # a mirrored copy, 3 bits off
    assert set(dihedral_pairs_indexed(h, max_bits=3)) == set(dihedral_pairs(h, 10, 3)) == {(5, 7), (9, 11), (20, 21)}


def test_cli_trash_goes_to_the_os_trash_and_undo_restores(exact_set, run_cli, tmp_path):
    root = exact_set
    before = tree(root)
    env = {"XDG_DATA_HOME": str(tmp_path / "xdg")}  # a throw-away trash, never the user's own
    data = run_cli("dupes", root, "--tier", "exact", "--action", "trash", "--catalog", tmp_path / "c.sqlite",
                   "--json", env=env).json()
    assert data["apply"]["done"] == 1 and len(tree(root)) == len(before) - 1
    assert any(p.is_file() for p in (tmp_path / "xdg" / "Trash" / "files").iterdir())
    run_cli("undo", data["apply"]["journal"], env=env)
    assert tree(root) == before


def test_move_dupes_leaves_keepers_and_keep_in_files_in_place(exact_set, catalog, tmp_path, run_cli):
    """Issue 13 (siamese's clean_move): only the duplicates go to DEST; the keeper and every --keep-in file stay,
    another name (hard link) of a duplicate is not acted on, a duplicate changed since the search is left out."""
    from lookalike.journal import apply_plan, undo

    root = exact_set
    os.link(root / "a" / "IMG_1.jpg", root / "a" / "IMG_1_hardlink.jpg")
    before = tree(root)
    rep = find_duplicates([root], tier="pixel", keep_in=[root / "b"], catalog=catalog)
    [g] = rep.groups
    assert g.keep.startswith(str(root / "b")) and g.protected  # keeper and another file under --keep-in
    dest = tmp_path / "dest"
    plan = plan_for(rep, "move-dupes", dest=dest)
    moved = [op.src for op in plan]
    assert moved == [str(root / "a" / "IMG_1.jpg")]  # neither the keeper nor the --keep-in file
    assert all(op.op == "move" and op.sha256 and g.keep in op.note for op in plan)
    result = apply_plan(plan)
    assert not result.failed and sorted(p.name for p in (dest / "group_0001").iterdir()) == ["IMG_1.jpg"]
    assert (root / "a" / "IMG_1_hardlink.jpg").is_file() and os.path.isfile(g.keep)
    assert set(tree(root / "b")) == {"IMG_1.jpg", "resaved.jpg"}
    undo(result.journal)
    assert tree(root) == before

    # A duplicate rewritten after the search is not moved: it is listed with the reason.
    rep = find_duplicates([root], tier="pixel", catalog=catalog)
    victim = next(m.path for m in rep.groups[0].members if not os.path.samefile(m.path, rep.groups[0].keep))
    Path(victim).write_bytes(Path(victim).read_bytes() + b"changed")
    plan = plan_for(rep, "move-dupes", dest=dest)
    assert victim not in [op.src for op in plan]
    assert {s["path"]: s["reason"] for s in plan.skipped}[victim] == "changed since the duplicates were found"


def test_cli_move_dupes_needs_dest_and_prints_a_plan(exact_set, run_cli, tmp_path):
    root = exact_set
    res = run_cli("dupes", root, "--tier", "exact", "--action", "move-dupes", check=False)
    assert res.returncode == 1 and "--action move-dupes needs --dest DIR" in res.stderr
    before = tree(root)
    plan_file = tmp_path / "plan.json"
    data = run_cli("dupes", root, "--tier", "exact", "--action", "move-dupes", "--dest", tmp_path / "d",
                   "--plan", plan_file, "--json", "--catalog", tmp_path / "c.sqlite").json()
    keep = data["groups"][0]["keep"]
    ops = json.loads(plan_file.read_text())["operations"]
    assert [op["op"] for op in ops] == ["move"] and ops[0]["src"] != keep and keep in ops[0]["note"]
    assert tree(root) == before  # --plan changes nothing
    run_cli("apply", plan_file)
    assert os.path.isfile(keep) and (tmp_path / "d" / "group_0001" / os.path.basename(ops[0]["src"])).is_file()


def test_move_dupes_refuses_a_duplicate_changed_after_the_plan_and_moves_odd_names(tmp_path, catalog):
    from lookalike.journal import apply_plan, undo

    root = tmp_path / "pics"
    root.mkdir()
    src = shared_data("photos", "ukbench00010.jpg")
    shutil.copyfile(src, root / "a.jpg")
    odd = os.fsdecode(os.fsencode(str(root)) + b"/caf\xe9.jpg")  # a name that is not UTF-8
    shutil.copyfile(src, odd)
    shutil.copyfile(src, root / "zz_third.jpg")
    rep = find_duplicates([root], tier="exact", catalog=catalog)
    [g] = rep.groups
    plan = plan_for(rep, "move-dupes", dest=tmp_path / "dest")
    assert sorted(op.src for op in plan) == sorted(m.path for m in g.members) and g.keep not in {op.src for op in plan}
    late = next(op.src for op in plan if op.src != odd)
    Path(late).write_bytes(b"rewritten after the plan was made")
    result = apply_plan(plan)
    assert [f["path"] for f in result.failed] == [late] and "changed" in result.failed[0]["error"]
    assert os.path.isfile(late) and os.path.isfile(g.keep)  # refused: it stays; the keeper never moves
    assert os.listdir(os.fsencode(tmp_path / "dest" / "group_0001")) == [b"caf\xe9.jpg"]
    undo(result.journal)
    assert os.path.isfile(odd) and not any((tmp_path / "dest").rglob("*.jpg"))


def test_reviewed_report_keeps_only_what_the_search_grouped_and_the_keep_in_files():
    """dupes.reviewed_report (was the service's private _reviewed_report): a review may only regroup files of one
    group of the search; hashes and --keep-in files travel beside the JSON (review_state)."""
    from lookalike.dupes import DupesReport, Group, Member, review_state, reviewed_report
    from lookalike.errors import UsageError

    search = DupesReport("near", [Group("/p/a.jpg", "sharpest", [Member("/p/b.jpg", "near", 0.93, sha256="bb"),
                                                              Member("/k/c.jpg", "exact", 1.0, sha256="cc")],
                                        protected=["/k/c.jpg"], keep_sha256="aa"),
                                  Group("/p/x.jpg", "largest", [Member("/p/y.jpg", "exact", 1.0)])])
    state = review_state(search)
    assert state == {"hashes": {"/p/a.jpg": "aa", "/p/b.jpg": "bb", "/k/c.jpg": "cc"}, "protected": ["/k/c.jpg"]}
    result = search.to_json()
    rep = reviewed_report(result, [{"keep": "/p/b.jpg", "members": ["/p/a.jpg", "/k/c.jpg"]}], state)
    (g,) = rep.groups
    assert (g.keep, g.keep_sha256, g.protected, g.reason) == ("/p/b.jpg", "bb", ["/k/c.jpg"], "chosen in review")
    # the search's keeper, now acted on, is to the new keeper what the new keeper was to it
    assert [(m.path, m.tier, m.score, m.sha256) for m in g.members] == [("/p/a.jpg", "near", 0.93, "aa"),
                                                                       ("/k/c.jpg", "exact", 1.0, "cc")]
    assert reviewed_report(result, [{"keep": "/p/x.jpg", "members": []}]).groups == []
    for bad in ({"groups": "all"}, [{"keep": "/p/a.jpg", "members": ["/p/y.jpg"]}],
                [{"keep": "/p/a.jpg", "members": ["/p/a.jpg"]}], [{"keep": "/elsewhere.jpg"}], [{"members": []}]):
        with pytest.raises(UsageError):
            reviewed_report(result, bad, state)


def test_unreadable_files_are_dupes_failure_records_not_exceptions(tmp_path, catalog):
    """issue 14: a record that is not an exception does not end in Error (DupesError -> DupesFailure)."""
    import lookalike.dupes as dupes
    from lookalike.dupes import DupesFailure

    assert not hasattr(dupes, "DupesError") and not issubclass(DupesFailure, BaseException)
    shutil.copyfile(shared_data("photos") / "ukbench00000.jpg", tmp_path / "a.jpg")
    (tmp_path / "broken.jpg").write_bytes(b"\xff\xd8 not a picture")
    report = find_duplicates([tmp_path], tier="pixel", catalog=catalog)  # exact decodes nothing (issue 12)
    assert [type(e) for e in report.errors] == [DupesFailure]
    assert report.to_json()["errors"] == [{"path": str(tmp_path / "broken.jpg"), "error": report.errors[0].error}]


def test_act_on_is_the_dupes_action_of_the_cli(tmp_path, catalog, run_cli):
    """`dupes --action` is one library call (dupes.act_on): its JSON is the CLI's, with --plan and applied."""
    from lookalike.dupes import act_on
    from lookalike.journal import load_plan, undo

    (tmp_path / "S").mkdir()
    for name in ("a.jpg", "b.jpg"):
        shutil.copyfile(shared_data("photos") / "ukbench00000.jpg", tmp_path / "S" / name)
    cli = run_cli("--catalog", tmp_path / "cli.sqlite", "dupes", tmp_path / "S", "--tier", "exact", "--action",
                  "trash", "--plan", tmp_path / "cli.json", "--json").json()
    report = find_duplicates([tmp_path / "S"], tier="exact", catalog=catalog)
    planned = act_on(report, "trash", plan_file=tmp_path / "lib.json")
    assert planned.applied is None and not planned.failed
    assert planned.to_json() == {**cli, "plan": str(tmp_path / "lib.json")}
    assert load_plan(tmp_path / "lib.json").to_json()["operations"] == load_plan(tmp_path / "cli.json").to_json()[
        "operations"]
    done = act_on(report, "trash")
    assert done.applied.done == 1 and done.to_json()["apply"]["done"] == 1
    assert len(list((tmp_path / "S").iterdir())) == 1
    assert undo(done.applied.journal).ok and len(list((tmp_path / "S").iterdir())) == 2
