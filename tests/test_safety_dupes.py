"""Issue 10, duplicate finder: file identity (symlinks, symlink chains, hard links), --keep-in and roots
compared resolved, and one validation of numeric options before any work starts.

Every case runs the real CLI on real files (exact tier: fast) and checks what is left on disk."""

from __future__ import annotations

import hashlib
import math
import os
import shutil
from pathlib import Path

import pytest
from PIL import Image

from conftest import shared_data
from lookalike.errors import UsageError

PHOTO = "ukbench00010.jpg"
OTHER = "ukbench00020.jpg"


def sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def photo(dest: Path, name: str = PHOTO, mtime: float | None = None) -> Path:
    dest.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(shared_data("photos", name), dest)
    if mtime is not None:
        os.utime(dest, (mtime, mtime))
    return dest


def regular_files(root: Path) -> dict[str, str]:
    """Relative path -> sha256 of every regular file (symlinks not followed, not listed)."""
    return {str(p.relative_to(root)): sha(p) for p in sorted(root.rglob("*")) if p.is_file() and not p.is_symlink()}


def dupes_json(run_cli, *args) -> dict:
    return run_cli("dupes", *args, "--json").json()


# ---------------------------------------------------------------- case 1: a symlink is never a keeper


@pytest.fixture
def linked_set(tmp_path) -> Path:
    """S/IMG_0001_original.jpg, an exact copy (newer), a.jpg -> the original, and a dangling link."""
    s = tmp_path / "S"
    photo(s / "IMG_0001_original.jpg", mtime=1_500_000_000)
    photo(s / "IMG_0001_copy.jpg", mtime=1_600_000_000)
    (s / "a.jpg").symlink_to("IMG_0001_original.jpg")
    (s / "gone.jpg").symlink_to("no_such_file.jpg")
    return s


@pytest.mark.parametrize("action", ["delete", "trash", "link"])
def test_symlink_is_never_kept_and_its_target_never_removed(linked_set, run_cli, tmp_path, action):
    s = linked_set
    original = sha(s / "IMG_0001_original.jpg")
    env = {"XDG_DATA_HOME": str(tmp_path / "xdg")}  # a throw-away trash
    data = run_cli("dupes", s, "--tier", "exact", "--action", action, "--yes", "--catalog", tmp_path / "c.sqlite",
                   "--json", env=env).json()
    [group] = data["groups"]
    assert group["keep"] == str(s / "IMG_0001_original.jpg")  # the linked file is kept: the link keeps working
    assert [m["path"] for m in group["members"]] == [str(s / "IMG_0001_copy.jpg")]
    assert group["links"] == [{"path": str(s / "a.jpg"), "to": str(s / "IMG_0001_original.jpg"), "kind": "symlink"}]
    assert data["apply"]["done"] == 1
    # the real photo is untouched, the link still resolves to it, the dangling link is left alone
    assert not (s / "IMG_0001_original.jpg").is_symlink() and sha(s / "IMG_0001_original.jpg") == original
    assert (s / "a.jpg").is_symlink() and sha(s / "a.jpg") == original
    assert (s / "gone.jpg").is_symlink() and not (s / "gone.jpg").exists()
    if action == "link":
        assert os.stat(s / "IMG_0001_copy.jpg").st_ino == os.stat(s / "IMG_0001_original.jpg").st_ino
    else:
        assert not (s / "IMG_0001_copy.jpg").exists()


def test_rerun_after_symbolic_link_action_touches_nothing(tmp_path, run_cli):
    s = tmp_path / "S"
    photo(s / "keep" / "photo.jpg")
    photo(s / "c.jpg")
    content = sha(s / "keep" / "photo.jpg")
    cat = tmp_path / "c.sqlite"
    first = dupes_json(run_cli, s, "--keep-in", s / "keep", "--tier", "exact", "--action", "link",
                       "--link-kind", "symbolic", "--catalog", cat)
    assert first["groups"][0]["keep"] == str(s / "keep" / "photo.jpg") and (s / "c.jpg").is_symlink()
    # c.jpg is now a name of keep/photo.jpg (and the shorter one): not a duplicate, never its keeper
    again = dupes_json(run_cli, s, "--tier", "exact", "--action", "delete", "--yes", "--catalog", cat)
    assert again["groups"] == [] and again["apply"]["total"] == 0
    assert not (s / "keep" / "photo.jpg").is_symlink() and sha(s / "keep" / "photo.jpg") == content
    assert sha(s / "c.jpg") == content


def test_symlink_chain_is_one_file_with_its_target(tmp_path, run_cli):
    s = tmp_path / "S"
    photo(s / "real.jpg", mtime=1_600_000_000)
    photo(s / "zz_copy.jpg", mtime=1_500_000_000)
    (s / "b.jpg").symlink_to("real.jpg")
    (s / "a.jpg").symlink_to("b.jpg")  # a -> b -> real
    data = dupes_json(run_cli, s, "--tier", "exact", "--action", "delete", "--yes", "--catalog", tmp_path / "c.sqlite")
    [group] = data["groups"]
    assert group["keep"] == str(s / "real.jpg") and "2 symbolic links" in group["reason"]
    assert [m["path"] for m in group["members"]] == [str(s / "zz_copy.jpg")]
    assert sorted(a["path"] for a in group["links"]) == [str(s / "a.jpg"), str(s / "b.jpg")]
    assert (s / "a.jpg").is_symlink() and (s / "b.jpg").is_symlink() and (s / "a.jpg").exists()
    assert list(regular_files(s)) == ["real.jpg"]


def test_a_symlink_alone_is_not_a_duplicate_of_its_target(tmp_path, run_cli):
    s = tmp_path / "S"
    photo(s / "photo.jpg")
    (s / "a.jpg").symlink_to("photo.jpg")
    (s / "c.jpg").symlink_to(s / "a.jpg")  # absolute, chained
    data = dupes_json(run_cli, s, "--tier", "pixel", "--action", "delete", "--yes", "--catalog", tmp_path / "c.sqlite")
    assert data["groups"] == [] and data["apply"]["total"] == 0
    assert (s / "photo.jpg").is_file() and (s / "a.jpg").exists() and (s / "c.jpg").exists()


def test_symlink_to_a_file_outside_the_folder_is_never_a_keeper(tmp_path, run_cli):
    s, elsewhere = tmp_path / "S", tmp_path / "elsewhere"
    photo(elsewhere / "photo.jpg")
    photo(s / "copy.jpg")
    (s / "out.jpg").symlink_to(elsewhere / "photo.jpg")  # shorter name: "shortest" made it the keeper
    before = regular_files(s)
    data = dupes_json(run_cli, s, "--tier", "exact", "--action", "delete", "--yes", "--catalog", tmp_path / "c.sqlite")
    assert data["groups"] == []  # the link's target was not searched: copy.jpg has no copy in S
    assert regular_files(s) == before and (s / "out.jpg").is_symlink()
    assert (elsewhere / "photo.jpg").is_file()


def test_symlinked_file_inside_a_keep_in_folder_protects_its_target(tmp_path, run_cli):
    s, k = tmp_path / "S", tmp_path / "K"
    photo(s / "photo.jpg", mtime=1_600_000_000)
    photo(s / "copy.jpg", mtime=1_500_000_000)  # shorter name: the policy alone would keep the copy
    k.mkdir()
    (k / "fav.jpg").symlink_to(s / "photo.jpg")
    data = dupes_json(run_cli, s, k, "--keep-in", k, "--tier", "exact", "--action", "delete", "--yes",
                      "--catalog", tmp_path / "c.sqlite")
    [group] = data["groups"]
    assert group["keep"] == str(s / "photo.jpg") and "--keep-in" in group["reason"]
    assert (s / "photo.jpg").is_file() and (k / "fav.jpg").exists()  # the --keep-in folder is intact
    assert not (s / "copy.jpg").exists()


# ---------------------------------------------------------------- hard links: one inode is one file


def test_hard_links_are_one_file_never_a_pair(tmp_path, run_cli):
    s = tmp_path / "S"
    photo(s / "a.jpg")
    os.link(s / "a.jpg", s / "b.jpg")
    photo(s / "other.jpg", OTHER)
    data = dupes_json(run_cli, s, "--tier", "exact", "--action", "delete", "--yes", "--catalog", tmp_path / "c.sqlite")
    assert data["groups"] == [] and data["apply"]["total"] == 0
    assert (s / "a.jpg").is_file() and (s / "b.jpg").is_file()


def test_hard_link_of_a_duplicate_is_listed_once(tmp_path, run_cli):
    s = tmp_path / "S"
    photo(s / "x" / "photo.jpg", mtime=1_500_000_000)
    os.link(s / "x" / "photo.jpg", s / "x" / "photo_hardlink.jpg")
    photo(s / "y" / "photo.jpg", mtime=1_600_000_000)
    content = sha(s / "x" / "photo.jpg")
    data = dupes_json(run_cli, s, "--tier", "exact", "--action", "delete", "--yes", "--catalog", tmp_path / "c.sqlite")
    [group] = data["groups"]
    files = [group["keep"], *(m["path"] for m in group["members"])]
    assert len(files) == 2  # two distinct files, the hard link is not a third
    assert group["links"] == [{"path": str(s / "x" / "photo_hardlink.jpg"), "to": str(s / "x" / "photo.jpg"),
                               "kind": "hardlink"}]
    assert os.path.isfile(group["keep"]) and sha(Path(group["keep"])) == content
    assert data["apply"]["done"] == 1


def test_same_file_given_twice_through_a_symlinked_root(tmp_path, run_cli):
    s = tmp_path / "S"
    photo(s / "photo.jpg")
    (tmp_path / "alias").symlink_to(s)
    # the file itself and the folder through a link: one file, two names, never a pair
    data = dupes_json(run_cli, s / "photo.jpg", tmp_path / "alias", "--tier", "exact", "--action", "delete", "--yes",
                      "--catalog", tmp_path / "c.sqlite")
    assert data["groups"] == [] and (s / "photo.jpg").is_file()


# ---------------------------------------------------------------- case 4: --keep-in and roots compared resolved


@pytest.fixture
def keep_set(tmp_path) -> Path:
    """root/a/IMG_1.jpg and root/b/IMG_1.jpg, byte copies (the policy alone keeps a/: first by name)."""
    root = tmp_path / "pics"
    photo(root / "a" / "IMG_1.jpg", mtime=1_500_000_000)
    photo(root / "b" / "IMG_1.jpg", mtime=1_600_000_000)
    photo(root / "other.jpg", OTHER)
    return root


def _keep_in_run(run_cli, tmp_path, root, keep_in) -> tuple[dict, dict[str, str]]:
    """Delete duplicates under ``root`` keeping ``keep_in``; the JSON and the regular files left."""
    data = dupes_json(run_cli, root, "--keep-in", keep_in, "--tier", "exact", "--action", "delete", "--yes",
                      "--catalog", tmp_path / "c.sqlite")
    return data, regular_files(root.resolve())


def test_keep_in_through_a_symlink_protects_the_same_files(keep_set, run_cli, tmp_path):
    root = keep_set
    (tmp_path / "kb").symlink_to(root / "b")
    data, left = _keep_in_run(run_cli, tmp_path, root, tmp_path / "kb")
    assert data["groups"][0]["keep"] == str(root / "b" / "IMG_1.jpg") and "--keep-in" in data["groups"][0]["reason"]
    assert sorted(left) == ["b/IMG_1.jpg", "other.jpg"]


def test_root_through_a_symlink_keeps_the_real_keep_in(keep_set, run_cli, tmp_path):
    root = keep_set
    (tmp_path / "alias").symlink_to(root)
    data, left = _keep_in_run(run_cli, tmp_path, tmp_path / "alias", root / "b")
    assert "--keep-in" in data["groups"][0]["reason"]
    assert sorted(left) == ["b/IMG_1.jpg", "other.jpg"]


def test_keep_in_through_a_symlink_chain_and_a_relative_path(keep_set, run_cli, tmp_path):
    root = keep_set
    (tmp_path / "k1").symlink_to(root / "b")
    (tmp_path / "k2").symlink_to("k1")  # k2 -> k1 -> pics/b
    data, left = _keep_in_run(run_cli, tmp_path, root, tmp_path / "k2")
    assert "--keep-in" in data["groups"][0]["reason"]
    assert sorted(left) == ["b/IMG_1.jpg", "other.jpg"]


def test_symlinked_sub_folder_is_protected_by_its_real_path(tmp_path, run_cli):
    root = tmp_path / "pics"
    photo(root / "a" / "IMG_1.jpg", mtime=1_500_000_000)
    photo(root / "real" / "IMG_1.jpg", mtime=1_600_000_000)
    (root / "0_alias").symlink_to("real")  # walked first: its files are reached as pics/0_alias/...
    data = dupes_json(run_cli, root, "--keep-in", root / "real", "--tier", "exact", "--action", "delete", "--yes",
                      "--catalog", tmp_path / "c.sqlite")
    assert "--keep-in" in data["groups"][0]["reason"]
    assert sorted(regular_files(root)) == ["real/IMG_1.jpg"]


def test_keep_in_without_a_symlink_is_unchanged(keep_set, run_cli, tmp_path):
    data, left = _keep_in_run(run_cli, tmp_path, keep_set, keep_set / "b")
    assert "--keep-in" in data["groups"][0]["reason"] and sorted(left) == ["b/IMG_1.jpg", "other.jpg"]


# ---------------------------------------------------------------- CONTRACTS 2: content hashes in the report


def test_report_carries_the_content_hashes(keep_set, catalog):
    from lookalike.dupes import find_duplicates

    rep = find_duplicates([keep_set], tier="exact", catalog=catalog)
    [g] = rep.groups
    assert g.keep_sha256 == sha(Path(g.keep))
    assert [m.sha256 for m in g.members] == [sha(Path(m.path)) for m in g.members] == [g.keep_sha256]


# ---------------------------------------------------------------- case 5: numeric options, before any work


BAD_THRESHOLDS = [-5, -1, 2, math.nan, math.inf, -math.inf]


@pytest.mark.parametrize("tier", ["exact", "pixel", "near", "similar"])
def test_threshold_out_of_range_is_refused_before_indexing(keep_set, run_cli, tmp_path, tier):
    root = keep_set
    before = regular_files(root)
    cat = tmp_path / "c.sqlite"
    for value in ("-5", "nan", "inf"):  # through the CLI (the rest below, in-process: same validator)
        res = run_cli("dupes", root, "--tier", tier, "--threshold", value, "--action", "delete", "--yes",
                      "--catalog", cat, check=False)
        assert res.returncode == 1, (tier, value, res.stderr)
        err = res.stderr.replace("\n", " ")
        assert "--threshold" in err and value in err and "Traceback" not in err, err
        assert not cat.exists(), "the catalog was opened: work started before the check"
    assert regular_files(root) == before


@pytest.mark.parametrize("tier", ["exact", "pixel", "near", "similar"])
def test_library_refuses_bad_thresholds_for_every_tier(keep_set, tmp_path, tier):
    from lookalike.dupes import find_duplicates

    cat = tmp_path / "lib.sqlite"
    for value in BAD_THRESHOLDS:
        with pytest.raises(UsageError, match="--threshold"):
            find_duplicates([keep_set], tier=tier, threshold=value, catalog=cat, keep_in=[keep_set / "b"])
    assert not cat.exists()


def test_issue_case_similar_minus_five_deletes_nothing(keep_set, run_cli, tmp_path):
    root = keep_set
    before = regular_files(root)
    res = run_cli("dupes", root, "--tier", "similar", "--threshold", "-5", "--action", "delete", "--yes",
                  "--catalog", tmp_path / "c.sqlite", check=False)
    assert res.returncode == 1 and "0.50" in res.stderr and "1.00" in res.stderr
    assert regular_files(root) == before and not (tmp_path / "c.sqlite").exists()


def test_library_refuses_thresholds_before_opening_the_catalog(keep_set, tmp_path):
    from lookalike.dupes import find_duplicates

    cat = tmp_path / "lib.sqlite"
    for tier, value in [("similar", -1.0), ("similar", 0.3), ("near", 0.5), ("near", math.nan), ("near", 1.01),
                        ("similar", math.inf), ("exact", 0.9), ("pixel", 0.0), ("near", "0.9"), ("near", True)]:
        with pytest.raises(UsageError, match="--threshold"):
            find_duplicates([keep_set], tier=tier, threshold=value, catalog=cat)
    with pytest.raises(UsageError, match="--tier"):
        find_duplicates([keep_set], tier="fuzzy", catalog=cat)
    assert not cat.exists()


def test_threshold_ranges_accept_sane_values():
    from lookalike.options import check_threshold

    assert check_threshold("near", None) is None and check_threshold("exact", None) is None
    assert check_threshold("near", 0.8) == 0.8 and check_threshold("near", 1) == 1.0
    assert check_threshold("similar", 0.5) == 0.5 and check_threshold("similar", 0.95) == 0.95
    with pytest.raises(UsageError, match=r"^--threshold 0.49 is out of range for --tier similar"):
        check_threshold("similar", 0.49)


def test_dupes_action_options_fail_before_indexing(keep_set, run_cli, tmp_path):
    root = keep_set
    cat = tmp_path / "c.sqlite"
    for args, needle in [(["--action", "move"], "--dest"), (["--action", "copy"], "--dest"),
                         (["--action", "nuke"], "--action"),
                         (["--action", "link", "--link-kind", "soft"], "--link-kind"),
                         (["--keep", "colour"], "keep criteria")]:
        res = run_cli("dupes", root, "--tier", "exact", *args, "--catalog", cat, check=False)
        assert res.returncode == 1 and needle in res.stderr, (args, res.stderr)
        assert not cat.exists(), f"{args}: the catalog was opened before the options were checked"


def test_k_is_checked_before_indexing(keep_set, run_cli, tmp_path):
    from lookalike import Collection

    cat = tmp_path / "k.sqlite"
    col = Collection(keep_set, catalog=cat)
    for k in (0, -1, 10**12, 2.5, math.nan, True):
        with pytest.raises(UsageError, match="-k"):
            col.similar(keep_set / "other.jpg", k=k, model="phash")
    assert col.catalog.lookup_files([str(keep_set / "other.jpg")]) == {}
    res = run_cli("similar", keep_set / "other.jpg", "--in", keep_set, "-k", str(10**12), "-m", "phash",
                  "--catalog", tmp_path / "k2.sqlite", check=False)
    assert res.returncode == 1 and "-k" in res.stderr and "10000" in res.stderr
    assert col.similar(keep_set / "other.jpg", k=10_000, model="phash").results  # the bound itself is fine


def test_sort_k_is_checked_before_indexing(keep_set, tmp_path):
    from lookalike.organise import sort_order

    for k in (0, -3, 10**9):
        with pytest.raises(UsageError, match="k"):
            sort_order([keep_set], model="phash", catalog=tmp_path / "s.sqlite", k=k)
    assert not (tmp_path / "s.sqlite").exists()


@pytest.mark.parametrize("args", [["--sim", "1.5"], ["--sim", "-0.1"], ["--sim", "nan"], ["--sim", "inf"],
                                  ["--min-size", "0"], ["--time-weight", "2"], ["--time-weight", "nan"],
                                  ["--method", "median"]])
def test_cluster_options_are_checked_before_indexing(keep_set, run_cli, tmp_path, args):
    cat = tmp_path / "c.sqlite"
    res = run_cli("cluster", keep_set, "-m", "phash", *args, "--catalog", cat, check=False)
    assert res.returncode == 1 and args[0] in res.stderr and "Traceback" not in res.stderr, res.stderr
    assert not cat.exists()


def test_cluster_library_refuses_nan_sim_before_indexing(keep_set, tmp_path):
    from lookalike.organise import cluster

    with pytest.raises(UsageError, match="--sim"):
        cluster([keep_set], sim=math.nan, model="phash", catalog=tmp_path / "cl.sqlite")
    assert not (tmp_path / "cl.sqlite").exists()


def test_options_validators_one_line_naming_option_value_and_range():
    from lookalike import options
    from lookalike.dupes import ACTIONS, TIERS

    assert options.DUPES_ACTIONS == ACTIONS and options.DUPES_TIERS == TIERS
    cases = [
        (lambda: options.check_k(0), "-k 0", "between 1 and 10000"),
        (lambda: options.check_sim(1.2), "--sim 1.2", "between 0 and 1"),
        (lambda: options.check_fraction("--time-weight", math.inf), "--time-weight inf", "between 0 and 1"),
        (lambda: options.check_positive_int("--min-size", -2), "--min-size -2", "between 1 and 1000000"),
        (lambda: options.check_threshold("similar", -5), "--threshold -5", "between 0.50 and 1.00"),
    ]
    for call, name_value, rng in cases:
        with pytest.raises(UsageError) as err:
            call()
        msg = str(err.value)
        assert "\n" not in msg and name_value in msg and rng in msg, msg
    assert options.check_k(7) == 7 and options.check_sim(0) == 0.0 and options.check_fraction("x", 1) == 1.0


@pytest.mark.parametrize("args", [["--tolerance", "5"], ["--tolerance", "nan"], ["--tolerance", "0"],
                                  ["--tolerance", "-1"], ["-k", "0"]])
def test_faces_recognize_refuses_nonsense_before_loading_anything(args, tmp_path, run_cli):
    """A tolerance near 2 (unit embeddings) would call every stranger by a known name."""
    photo = tmp_path / "p.jpg"
    Image.new("RGB", (64, 64), (90, 120, 150)).save(photo)
    res = run_cli("faces", "recognize", photo, *args, "--model", "nobody-trained-this", check=False)
    assert res.returncode == 1, res.stdout
    assert "out of range" in res.stderr or "finite" in res.stderr or "recognise no one" in res.stderr, res.stderr
    assert "nobody-trained-this" not in res.stderr  # refused before the model was looked for
    assert res.stderr.strip().count("\n") == 0
