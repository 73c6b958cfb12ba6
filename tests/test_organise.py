"""Organise: sort order (determinism, stability, quality), rank prefixes with undo, clustering, links, time mixing."""

from __future__ import annotations

import os
import shutil
import warnings
from pathlib import Path

import numpy as np
import pytest

from conftest import needs_effnet, shared_data
from lookalike.organise.cluster import cluster, cluster_vectors
from lookalike.organise.sort import greedy_chain, order_vectors, path_length, sort_order
from lookalike.organise.vectors import Vectors, capture_times, from_matrix, scaled_times
from lookalike.search import exact_knn, ivf_knn


def _photos(tmp_path: Path, groups: range, name: str = "photos") -> Path:
    """A folder with the 4 views of each UKBench object in ``groups``."""
    src = shared_data("photos")
    dest = tmp_path / name
    dest.mkdir()
    for g in groups:
        for i in range(4 * g, 4 * g + 4):
            shutil.copy2(src / f"ukbench{i:05d}.jpg", dest / f"ukbench{i:05d}.jpg")
    return dest


def _clustered(n: int, dim: int = 64, per: int = 6, seed: int = 0) -> Vectors:
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((max(1, n // per), dim))
    x = centres[rng.integers(0, len(centres), n)] + 0.5 * rng.standard_normal((n, dim))
    return from_matrix([f"/p/{i:05d}.jpg" for i in range(n)], x.astype(np.float32), "embedding")


def _undo_all(run_cli=None) -> None:
    """Undo every journal run, newest first (through `lookalike undo ID` when given the CLI runner)."""
    from lookalike.journal import list_journals, undo

    for info in reversed(list_journals()):
        if run_cli is not None:
            run_cli("undo", info.id)
        else:
            assert undo(info.id).ok


def _adjacent_pairs(order: list) -> set:
    return {frozenset(p) for p in zip(order, order[1:], strict=False)}


# -- sort ---------------------------------------------------------------------------------------

def test_order_is_a_permutation_and_beats_its_own_start():
    vec = _clustered(400)
    order, dist = order_vectors(vec)
    assert sorted(order) == list(range(400))
    assert np.allclose(dist, path_length(vec, order), atol=2e-6)
    rng = np.random.default_rng(1)
    assert dist.mean() < 0.6 * path_length(vec, rng.permutation(400)).mean()


def test_order_is_deterministic_whatever_the_input_order():
    vec = _clustered(300)
    rng = np.random.default_rng(5)
    perm = rng.permutation(300)
    shuffled = from_matrix([vec.paths[i] for i in perm], vec.x[perm], "embedding")  # rows re-sorted by path
    a, _ = order_vectors(vec)
    b, _ = order_vectors(shuffled)
    c, _ = order_vectors(vec)
    assert [vec.paths[i] for i in a] == [shuffled.paths[i] for i in b]
    assert a == c


def test_adding_one_photo_moves_few_others():
    base = _clustered(301, seed=3)
    before = Vectors(base.paths[:300], base.x[:300], "embedding")
    old, _ = order_vectors(before)
    new, _ = order_vectors(base)
    old_paths = [before.paths[i] for i in old]
    new_paths = [base.paths[i] for i in new if i != 300]  # the new photo taken out again
    kept = len(_adjacent_pairs(old_paths) & _adjacent_pairs(new_paths)) / (len(old_paths) - 1)
    assert kept >= 0.9, f"only {kept:.0%} of neighbour pairs survived adding one photo"


def test_ivf_knn_finds_most_true_neighbours():
    vec = _clustered(3000, dim=32, per=10)
    exact, approx = exact_knn(vec, 10), ivf_knn(vec, 10)
    recall = np.mean([len(set(exact.idx[i]) & set(approx.idx[i])) / 10 for i in range(len(vec))])
    assert recall >= 0.9
    assert not approx.exact and (approx.idx != np.arange(3000)[:, None]).all()


@needs_effnet
def test_sort_real_photos_beats_greedy_chain_and_is_stable(tmp_path, catalog):
    folder = _photos(tmp_path, range(12))
    first = sort_order(folder, model="effnet", catalog=catalog)
    again = sort_order(folder, model="effnet", catalog=catalog)
    assert first.order == again.order and len(first.order) == 48
    from lookalike.organise.vectors import load_vectors

    vec = load_vectors([folder], catalog=catalog)
    greedy = path_length(vec, greedy_chain(vec, 0)).mean()
    assert first.mean_distance <= greedy + 1e-6
    cls = {p: int(Path(p).name[7:12]) // 4 for p in first.order}
    same = np.mean([cls[a] == cls[b] for a, b in zip(first.order, first.order[1:], strict=False)])
    assert same >= 0.6  # most neighbours are views of the same object
    # one more photo: most neighbour pairs survive
    shutil.copy2(shared_data("photos") / "ukbench00048.jpg", folder / "ukbench00048.jpg")
    more = sort_order(folder, model="effnet", catalog=catalog)
    new = [p for p in more.order if not p.endswith("00048.jpg")]
    kept = len(_adjacent_pairs(first.order) & _adjacent_pairs(new)) / 47
    assert kept >= 0.85


def test_sort_cli_json_and_keys(tmp_path, run_cli):
    folder = _photos(tmp_path, range(3))
    res = run_cli("sort", folder, "--model", "phash", "--json").json()
    assert list(res) == ["order"]
    assert sorted(res["order"]) == sorted(str(p) for p in folder.iterdir())
    assert all(os.path.isabs(p) for p in res["order"])
    keys = run_cli("sort", folder, "--model", "phash", "--keys").stdout.splitlines()
    assert [k.split("\t")[0] for k in keys] == [f"{i:02d}" for i in range(1, 13)]
    assert [k.split("\t")[1] for k in keys] == res["order"]


def test_rename_then_undo_restores_names_and_twice_does_not_stack(tmp_path, run_cli):
    folder = _photos(tmp_path, range(3))
    user = folder / "2019_holiday.jpg"  # a user's own digits_ name: never treated as a lookalike prefix
    shutil.copy2(shared_data("photos") / "ukbench00040.jpg", user)
    before = {p.name: p.read_bytes() for p in folder.iterdir()}
    dry = run_cli("sort", folder, "--model", "phash", "--rename", "--dry-run")
    assert "would be done" in dry.stderr and {p.name for p in folder.iterdir()} == set(before)

    order = run_cli("sort", folder, "--model", "phash", "--rename", "--json").json()["order"]
    names = sorted(p.name for p in folder.iterdir())
    assert len(names) == 13 and all(n[:2].isdigit() and n[2] == "_" for n in names)
    assert [Path(p).name for p in order] == names  # the rank prefixes follow the order
    assert "13_2019_holiday.jpg" in names or any(n.endswith("_2019_holiday.jpg") for n in names)

    run_cli("sort", folder, "--model", "phash", "--rename")  # twice: prefixes are replaced, never stacked
    again = sorted(p.name for p in folder.iterdir())
    assert all(not n[3:5].isdigit() or n[3:].startswith("2019_") for n in again)
    assert sorted(n[3:] for n in again) == sorted(before)

    run_cli("sort", folder, "--strip")
    assert {p.name for p in folder.iterdir()} == set(before)  # 2019_holiday.jpg keeps its name

    _undo_all(run_cli)  # strip, second rename (if any), first rename
    assert {p.name: p.read_bytes() for p in folder.iterdir()} == before


def test_rename_with_clashing_names_goes_through_temporary_names(tmp_path, catalog):
    from lookalike.journal import apply_plan
    from lookalike.organise.rename import plan_rename, record_applied

    folder = _photos(tmp_path, range(2))
    first = folder / "ukbench00000.jpg"
    users = folder / "01_ukbench00000.jpg"  # the user's own file, holding the name rank 1 of `first` needs
    shutil.copy2(shared_data("photos") / "ukbench00040.jpg", users)
    before = {p.name: p.read_bytes() for p in folder.iterdir()}
    rest = sorted(str(p) for p in folder.iterdir() if p not in (first, users))
    plan = plan_rename([str(first), str(users), *rest], catalog)
    assert any(".lookalike-renaming" in (op.dst or "") for op in plan)
    report = apply_plan(plan)
    assert not report.failed
    record_applied(report, catalog)
    assert (folder / "01_ukbench00000.jpg").read_bytes() == before["ukbench00000.jpg"]
    assert (folder / "02_01_ukbench00000.jpg").read_bytes() == before["01_ukbench00000.jpg"]
    assert len(list(folder.iterdir())) == 9 and not list(folder.glob(".lookalike*"))
    _undo_all()
    assert {p.name: p.read_bytes() for p in folder.iterdir()} == before


# -- cluster ------------------------------------------------------------------------------------

def test_cluster_sim_zero_gives_one_group_and_json_shape(tmp_path, run_cli):
    folder = _photos(tmp_path, range(3))
    res = run_cli("cluster", folder, "--model", "phash", "--sim", "0", "--json").json()
    assert list(res) == ["clusters", "unclustered"]
    assert len(res["clusters"]) == 1 and list(res["clusters"][0]) == ["members"]
    assert sorted(res["clusters"][0]["members"]) == sorted(str(p) for p in folder.iterdir())
    assert res["unclustered"] == []


@needs_effnet
def test_cluster_sim_one_groups_only_identical_photos(tmp_path, catalog):
    folder = _photos(tmp_path, range(3))
    shutil.copy2(folder / "ukbench00005.jpg", folder / "copy_of_5.jpg")
    res = cluster(folder, sim=1.0, catalog=catalog)
    assert [sorted(Path(p).name for p in c) for c in res.clusters] == [["copy_of_5.jpg", "ukbench00005.jpg"]]
    assert len(res.unclustered) == 11
    groups = cluster(folder, sim=0.6, catalog=catalog)  # the same objects group together at a usual level
    assert len(groups.clusters) == 3
    for c in groups.clusters:
        assert len({int(Path(p).name[7:12]) // 4 for p in c if p.startswith(str(folder / "ukb"))}) == 1


def test_sim_meaning_is_absolute_and_relative_cut_is_an_option():
    vec = _clustered(60, dim=16, per=6, seed=2)
    for method in ("average", "complete", "single"):
        assert len(cluster_vectors(vec, sim=0.0, method=method).clusters) == 1
    # two copies of the same set: the absolute cut gives each copy the same groups
    res = cluster_vectors(vec, sim=0.6, method="complete")
    d = 1 - vec.x @ vec.x.T
    index = {p: i for i, p in enumerate(vec.paths)}
    for c in res.clusters:  # complete linkage: every pair inside a group is at similarity >= sim
        ids = [index[p] for p in c]
        assert d[np.ix_(ids, ids)].max() <= 0.4 + 1e-5
    rel = cluster_vectors(vec, sim=0.6, method="complete", relative=True)
    assert rel.threshold == pytest.approx(0.4 * float(np.clip(d, 0, 1).max()), abs=1e-5)
    ward = cluster_vectors(vec, sim=0.6, method="ward")
    assert ward.threshold == pytest.approx(np.sqrt(2 * 0.4))


def test_graph_mode_agrees_with_exact_on_separated_groups():
    vec = _clustered(240, dim=32, per=8, seed=4)
    for method in ("average", "single", "complete"):
        exact = cluster_vectors(vec, sim=0.5, method=method)
        graph = cluster_vectors(vec, sim=0.5, method=method, exact_limit=0)
        assert exact.mode == "exact" and graph.mode == "graph"
        assert sorted(map(sorted, exact.clusters)) == sorted(map(sorted, graph.clusters)), method
    # ward (the default) needs the full matrix: past the limit it becomes complete linkage, and says so
    fallback = cluster_vectors(vec, sim=0.5, method="ward", exact_limit=0)
    assert fallback.method == "complete" and fallback.mode == "graph" and "ward" in fallback.note
    assert sorted(map(sorted, fallback.clusters)) == sorted(map(sorted, graph.clusters))
    assert cluster_vectors(vec, sim=0.5, method="ward").note is None


def test_time_mixing_with_missing_and_equal_times(tmp_path):
    from PIL import Image

    exif_photo = shared_data("photos") / "ukbench00000.jpg"  # EXIF DateTimeOriginal 2005
    plain = tmp_path / "plain.png"
    Image.new("RGB", (32, 32), "red").save(plain)
    os.utime(plain, (1_700_000_000, 1_700_000_000))
    from lookalike.catalog import Catalog
    from lookalike.index import index_paths

    cat = Catalog(tmp_path / "c.sqlite")
    index_paths([str(exif_photo), str(plain)], cat, ["phash"])
    t = capture_times([str(exif_photo), str(plain), str(tmp_path / "gone.jpg")], cat)
    assert 1.1e9 < t[0] < 1.15e9  # 2005, from EXIF
    assert t[1] == 1_700_000_000  # no EXIF: the file time
    assert t[2] == 0.0  # unreadable: no crash
    cat.close()

    vec = _clustered(40, dim=16, per=4, seed=6)
    equal = np.full(40, 1234.0)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no division by zero
        assert (scaled_times(equal) == 0).all()
        mixed = cluster_vectors(vec, sim=0.5, time_weight=0.5, times=equal)
    # equal times: the time term is 0, so d = 0.5 * d_content: like cutting content alone at 1 - sim = 1
    assert sorted(map(sorted, mixed.clusters)) == sorted(map(sorted, cluster_vectors(vec, sim=0.0).clusters))
    # time only: two bursts of photos an hour apart form two groups whatever their content
    times = np.where(np.arange(40) < 20, 0.0, 3600.0) + np.arange(40)
    by_time = cluster_vectors(vec, sim=0.9, time_weight=1.0, times=times)
    assert sorted(len(c) for c in by_time.clusters) == [20, 20]


def test_cluster_links_are_correct_and_undo_removes_only_what_it_wrote(tmp_path, run_cli):
    folder = _photos(tmp_path, range(3))
    out = tmp_path / "out"
    (out / "cluster_with_4" / "cluster_0").mkdir(parents=True)
    mine = out / "cluster_with_4" / "cluster_0" / "mine.txt"
    mine.write_text("the user's own file")
    res = run_cli("cluster", folder, "--model", "phash", "--sim", "0", "--links", out, "--sheet", "--plot",
                  "--json").json()
    members = res["clusters"][0]["members"]
    made = out / "cluster_with_12" / "cluster_0"
    links = sorted(made.iterdir())
    assert len(links) == 12
    for link in links:
        assert link.is_symlink() and os.readlink(link) in members and link.name == Path(os.readlink(link)).name
    assert (out / "cluster_with_12" / "cluster_0_sheet.jpg").stat().st_size > 0
    assert (out / "dendrogram.png").stat().st_size > 0
    assert mine.read_text() == "the user's own file"

    # a second run replaces the tree the first one wrote (issue 13: no cluster_1 twin), never the user's file
    run_cli("cluster", folder, "--model", "phash", "--sim", "0", "--copy", out)
    assert not (out / "cluster_with_12" / "cluster_1").exists()
    copies = sorted((out / "cluster_with_12" / "cluster_0").iterdir())
    assert len(copies) == 12 and not any(p.is_symlink() for p in copies)
    by_name = {Path(m).name: m for m in members}
    assert all(c.read_bytes() == Path(by_name[c.name]).read_bytes() for c in copies)
    assert mine.read_text() == "the user's own file"

    _undo_all()
    assert sorted(p.relative_to(out).as_posix() for p in out.rglob("*")) == [
        "cluster_with_4", "cluster_with_4/cluster_0", "cluster_with_4/cluster_0/mine.txt"]
    assert sorted(p.name for p in folder.iterdir()) == sorted(Path(m).name for m in members)


def test_rename_plan_file_applied_later_is_recognised_by_strip(tmp_path, run_cli):
    folder = _photos(tmp_path, range(2))
    before = sorted(p.name for p in folder.iterdir())
    plan = tmp_path / "plan.json"
    run_cli("sort", folder, "--model", "phash", "--rename", "--plan", plan)
    assert sorted(p.name for p in folder.iterdir()) == before  # only written
    run_cli("apply", plan)
    assert all(p.name[:2].isdigit() and p.name[2] == "_" for p in folder.iterdir())
    run_cli("sort", folder, "--strip")
    assert sorted(p.name for p in folder.iterdir()) == before


# -- the library entry points of `sort` and `cluster` (issue 14: the CLI only parses, calls, prints) ----------

def test_sort_folder_renames_through_the_journal_and_gives_the_order_under_the_new_names(tmp_path, catalog):
    from lookalike.journal import undo
    from lookalike.organise import sort_folder

    folder = _photos(tmp_path, range(2))
    before = {p.name: p.read_bytes() for p in folder.iterdir()}
    plain = sort_folder(folder, "phash", catalog=catalog)
    assert plain.action == "order" and plain.applied is None and plain.to_json() == {"order": plain.order}
    assert plain.keys == [f"{i:02d}" for i in range(1, 9)]

    dry = sort_folder(folder, "phash", rename=True, dry_run=True, catalog=catalog)
    assert dry.applied.dry_run and len(dry.plan) == 8 and {p.name for p in folder.iterdir()} == set(before)

    done = sort_folder(folder, "phash", rename=True, catalog=catalog)
    assert done.action == "rename" and done.failed == []
    assert [Path(p).name for p in done.order] == [f"{i:02d}_{Path(p).name}" for i, p in enumerate(plain.order, 1)]
    assert all(Path(p).is_file() for p in done.order)  # the renames were followed to the final names

    stripped = sort_folder(folder, strip=True, catalog=catalog)
    assert stripped.action == "strip" and stripped.applied.done == 8 and stripped.to_json()["done"] == 8
    assert {p.name for p in folder.iterdir()} == set(before)
    assert undo(stripped.applied.journal).ok and undo(done.applied.journal).ok
    assert {p.name: p.read_bytes() for p in folder.iterdir()} == before
    with pytest.raises(Exception, match="cannot be combined"):
        sort_folder(folder, rename=True, strip=True, catalog=catalog)


def test_cluster_folder_writes_links_in_one_journal_run_and_checks_its_options_first(tmp_path, catalog):
    from lookalike.errors import UsageError
    from lookalike.journal import undo
    from lookalike.organise import cluster_folder

    folder = _photos(tmp_path, range(2))
    out = tmp_path / "out"
    res = cluster_folder(folder, sim=0, model="phash", out=out, mode="link", sheet=True, catalog=catalog)
    assert res.to_json()["clusters"][0]["members"] == res.clusters[0]
    assert res.applied is not None and res.applied.failed == [] and res.folders == [str(out / "cluster_with_8" /
                                                                                         "cluster_0")]
    assert len([p for p in Path(res.folders[0]).iterdir() if p.is_symlink()]) == 8
    assert (out / "cluster_with_8" / "cluster_0_sheet.jpg").is_file()
    assert undo(res.applied.journal).ok and not any(p.is_file() for p in out.rglob("*"))
    assert cluster_folder(folder, sim=0, model="phash", catalog=catalog).applied is None  # nothing written
    for bad in ({"sheet": True}, {"dry_run": True}, {"mode": "link"}, {"mode": "hard", "out": out},
                {"sim": 2.0}, {"method": "median"}):
        with pytest.raises(UsageError):
            cluster_folder(folder, model="phash", catalog=catalog, **bad)


def test_cluster_and_dupes_defaults_are_the_librarys():
    """The defaults live next to the function that uses them; the CLI's options take them from there."""
    import importlib
    import inspect

    from lookalike import dupes
    from lookalike.cli.dupes import dupes_cmd
    from lookalike.cli.organise import cluster_cmd

    cluster_mod = importlib.import_module("lookalike.organise.cluster")  # (organise.cluster is the function)

    cli = inspect.signature(cluster_cmd).parameters
    lib = inspect.signature(cluster_mod.cluster_folder).parameters
    for name, value in (("sim", 0.45), ("method", "ward"), ("min_size", 2), ("time_weight", 0.0)):
        assert cli[name].default == lib[name].default == inspect.signature(cluster_mod.cluster).parameters[
            name].default == getattr(cluster_mod, f"DEFAULT_{name.upper()}") == value
    cli = inspect.signature(dupes_cmd).parameters
    assert cli["tier"].default == inspect.signature(dupes.find_duplicates).parameters["tier"].default == \
        dupes.DEFAULT_TIER
    assert cli["link_kind"].default == inspect.signature(dupes.plan_for).parameters["link_kind"].default == \
        dupes.DEFAULT_LINK_KIND
