"""Issue 10, cases 11, 9 and 12 (faces): rank prefixes never eat a user's name; FIFOs and devices never hang
video or faces; a nested person folder is never labelled as its parent.

Everything runs through the CLI on real files (real SQLite catalog, real journal)."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
from pathlib import Path

import pytest

import crash_points
from conftest import SRC, shared_data

USER_NAMES = {"2019_holiday.jpg": "ukbench00040.jpg", "20190610_143000.jpg": "ukbench00044.jpg",
              "07_party.jpg": "ukbench00048.jpg"}


def _folder(tmp_path: Path, name: str = "photos") -> Path:
    """Three lookalike photos plus three with names of the user's own that look like rank prefixes."""
    src = shared_data("photos")
    folder = tmp_path / name
    folder.mkdir()
    for i in range(3):
        shutil.copy2(src / f"ukbench{i:05d}.jpg", folder / f"ukbench{i:05d}.jpg")
    for user, photo in USER_NAMES.items():
        shutil.copy2(src / photo, folder / user)
    return folder


def _by_content(folder: Path) -> dict[bytes, str]:
    return {p.read_bytes(): p.name for p in folder.iterdir()}


def _check_names_kept(folder: Path, originals: dict[bytes, str], stripped: bool = False) -> None:
    """Every photo's name still ends with the whole name it had (a prefix may only have been added);
    after a strip, every name is exactly the original."""
    now = _by_content(folder)
    assert set(now) == set(originals), "a photo went missing"
    for data, name in originals.items():
        if stripped:
            assert now[data] == name, f"{name} became {now[data]}"
        else:
            assert now[data] == name or (now[data].endswith("_" + name) and now[data].split("_")[0].isdigit()), (
                f"{name} became {now[data]}: a prefix the user wrote was removed")


def _sort(run_cli, folder: Path, *args: str):
    return run_cli("sort", folder, "--model", "phash", *args)


def _latest_undo(run_cli) -> None:
    run_cli("undo")


# -- case 11: rank prefixes ---------------------------------------------------------------------------------

def test_rename_strip_rename_never_removes_the_users_prefix(tmp_path, run_cli):
    folder = _folder(tmp_path)
    originals = _by_content(folder)
    _sort(run_cli, folder, "--rename")
    _check_names_kept(folder, originals)
    _sort(run_cli, folder, "--strip")
    _check_names_kept(folder, originals, stripped=True)
    _sort(run_cli, folder, "--rename")  # main: 2019_holiday.jpg -> NN_holiday.jpg
    _check_names_kept(folder, originals)
    _sort(run_cli, folder, "--strip")
    _check_names_kept(folder, originals, stripped=True)
    _sort(run_cli, folder, "--strip")  # main: holiday.jpg, 143000.jpg
    _check_names_kept(folder, originals, stripped=True)


def test_rename_undo_strip_and_rename_twice_undo_strip(tmp_path, run_cli):
    folder = _folder(tmp_path)
    originals = _by_content(folder)
    _sort(run_cli, folder, "--rename")
    _latest_undo(run_cli)
    _check_names_kept(folder, originals, stripped=True)
    res = _sort(run_cli, folder, "--strip")
    assert "no lookalike rank prefixes" in res.stderr
    _check_names_kept(folder, originals, stripped=True)

    _sort(run_cli, folder, "--rename")
    shutil.copy2(shared_data("photos") / "ukbench00003.jpg", folder / "ukbench00003.jpg")  # a new photo:
    originals = _by_content(folder)  # (the others still carry the first rename's prefixes)
    originals = {data: name if name == "ukbench00003.jpg" else name.split("_", 1)[1]
                 for data, name in originals.items()}
    _sort(run_cli, folder, "--rename")  # new ranks: prefixes replaced, never stacked
    _check_names_kept(folder, originals)
    assert all(len(n.split("_")[0]) == 2 for n in _by_content(folder).values())
    assert not any(n.split("_")[1].isdigit() and n.split("_", 1)[1] not in USER_NAMES
                   for n in _by_content(folder).values()), "a prefix was stacked"
    _latest_undo(run_cli)  # back to the first rename's names: still lookalike's, still recognised
    _sort(run_cli, folder, "--strip")
    _check_names_kept(folder, originals, stripped=True)
    _latest_undo(run_cli)  # the strip undone
    _check_names_kept(folder, originals)
    _sort(run_cli, folder, "--strip")
    _check_names_kept(folder, originals, stripped=True)
    _sort(run_cli, folder, "--rename")
    _sort(run_cli, folder, "--strip")
    _check_names_kept(folder, originals, stripped=True)


def test_plan_applied_later_strip_undo_strip_rename(tmp_path, run_cli):
    folder = _folder(tmp_path)
    originals = _by_content(folder)
    plan = tmp_path / "rename.json"
    _sort(run_cli, folder, "--rename", "--plan", plan)
    _check_names_kept(folder, originals, stripped=True)  # only written
    run_cli("apply", plan)
    _check_names_kept(folder, originals)
    _sort(run_cli, folder, "--strip")
    _check_names_kept(folder, originals, stripped=True)
    _latest_undo(run_cli)
    _sort(run_cli, folder, "--strip")
    _check_names_kept(folder, originals, stripped=True)
    _sort(run_cli, folder, "--rename")
    _check_names_kept(folder, originals)
    _latest_undo(run_cli)
    _sort(run_cli, folder, "--strip")
    _check_names_kept(folder, originals, stripped=True)
    # the plan applied a second time (its sources are back under their names): still recognised
    run_cli("apply", plan)
    _check_names_kept(folder, originals)
    _sort(run_cli, folder, "--strip")
    _check_names_kept(folder, originals, stripped=True)


def test_rename_killed_half_way_then_resumed_is_stripped_exactly(tmp_path, run_cli):
    folder = _folder(tmp_path)
    originals = _by_content(folder)
    killed = subprocess.run(crash_points.command(["sort", folder, "--model", "phash", "--rename"], kill="2:acted"),
                            env={**os.environ, "PYTHONPATH": str(SRC)}, capture_output=True, timeout=600)
    assert killed.returncode == -signal.SIGKILL
    run_cli("apply", "--resume")
    _check_names_kept(folder, originals)
    assert all(n[:2].isdigit() and n[2] == "_" for n in _by_content(folder).values())
    _sort(run_cli, folder, "--strip")  # main: nothing recognised, every prefix stays
    _check_names_kept(folder, originals, stripped=True)


def test_a_copy_put_where_a_renamed_photo_was_is_not_stripped(tmp_path, run_cli):
    """The user moves a renamed photo away and puts a copy (same bytes, size and mtime) under that name."""
    folder = _folder(tmp_path)
    order = _sort(run_cli, folder, "--rename", "--json").json()["order"]
    moved_to = tmp_path / "elsewhere"
    moved_to.mkdir()
    first = Path(order[0])
    shutil.move(first, moved_to / first.name)
    shutil.copy2(moved_to / first.name, first)  # the user's own copy, under the prefixed name
    _sort(run_cli, folder, "--strip")
    assert first.exists(), "the user's copy lost its name"
    assert (moved_to / first.name).exists()  # a renamed photo moved away keeps its name (never guessed)


def test_plan_whose_destination_the_user_took_leaves_the_users_file_alone(tmp_path, run_cli):
    """Between `--plan` and `apply` the user creates a file under a planned name (a copy of that photo)."""
    folder = _folder(tmp_path)
    plan = tmp_path / "rename.json"
    _sort(run_cli, folder, "--rename", "--plan", plan)
    from lookalike.journal import load_plan

    op = next(o for o in load_plan(plan) if Path(o.src).name == "ukbench00000.jpg")
    users = Path(op.dst)
    shutil.copy2(op.src, users)  # same bytes, size and mtime: the user's own file now holds the name
    run_cli("apply", plan)
    assert users.exists()
    free = users.with_name(users.stem + " (1)" + users.suffix)
    assert free.exists()  # the journal gave lookalike's rename a free name
    _sort(run_cli, folder, "--strip")
    assert users.exists(), "the user's file lost the prefix it was given by the user"


def test_hard_link_named_like_the_prefix_survives_undo_then_strip(tmp_path, run_cli):
    """The user's hard link `01_x.jpg` to `x.jpg`: after a rename and its undo, a strip must leave it."""
    from lookalike.journal import apply_plan
    from lookalike.organise.rename import plan_rename, record_applied

    folder = tmp_path / "links"
    folder.mkdir()
    x = folder / "x.jpg"
    shutil.copy2(shared_data("photos") / "ukbench00000.jpg", x)
    users = folder / "01_x.jpg"
    os.link(x, users)
    plan = plan_rename([str(x), str(users)])  # x.jpg -> 01_x.jpg (held by the link: temporary names first)
    report = apply_plan(plan)
    assert not report.failed
    record_applied(report)
    assert sorted(p.name for p in folder.iterdir()) == ["01_x.jpg", "02_01_x.jpg"]
    _latest_undo(run_cli)
    assert sorted(p.name for p in folder.iterdir()) == ["01_x.jpg", "x.jpg"]
    _sort(run_cli, folder, "--strip")
    assert sorted(p.name for p in folder.iterdir()) == ["01_x.jpg", "x.jpg"]


def test_exact_copy_named_like_the_prefix_survives_undo_then_strip(tmp_path, run_cli):
    """Names that collide: the user's exact copy `01_x.jpg` (same size and mtime) of `x.jpg`."""
    from lookalike.journal import apply_plan
    from lookalike.organise.rename import plan_rename, record_applied

    folder = tmp_path / "copies"
    folder.mkdir()
    x = folder / "x.jpg"
    shutil.copy2(shared_data("photos") / "ukbench00000.jpg", x)
    users = folder / "01_x.jpg"
    shutil.copy2(x, users)
    report = apply_plan(plan_rename([str(x), str(users)]))
    assert not report.failed
    record_applied(report)
    assert sorted(p.name for p in folder.iterdir()) == ["01_x.jpg", "02_01_x.jpg"]
    _latest_undo(run_cli)
    _sort(run_cli, folder, "--strip")
    assert sorted(p.name for p in folder.iterdir()) == ["01_x.jpg", "x.jpg"]
    _sort(run_cli, folder, "--rename")
    _sort(run_cli, folder, "--strip")
    assert sorted(p.name for p in folder.iterdir()) == ["01_x.jpg", "x.jpg"]


def test_folder_renamed_through_a_symlink_is_stripped_through_its_real_path(tmp_path, run_cli):
    folder = _folder(tmp_path)
    originals = _by_content(folder)
    view = tmp_path / "view"
    view.symlink_to(folder, target_is_directory=True)
    _sort(run_cli, view, "--rename")
    _check_names_kept(folder, originals)
    _sort(run_cli, folder, "--rename")  # same folder: prefixes replaced, not stacked
    assert all(n.count("_") == 1 or n.split("_", 1)[1] in USER_NAMES for n in _by_content(folder).values())
    _sort(run_cli, folder, "--strip")  # main: nothing recognised through the other path
    _check_names_kept(folder, originals, stripped=True)


def test_prefix_records_round_trip_names_that_are_not_utf8(tmp_path):
    """The records keep a name that is not UTF-8 (``caf\\xe9.jpg``) exactly (the rename itself is the
    journal's: done here by hand)."""
    from lookalike.catalog import Catalog
    from lookalike.organise.rename import plan_rename, plan_strip, recognise, record_planned

    folder = tmp_path / "odd"
    folder.mkdir()
    odd = os.fsdecode(os.path.join(os.fsencode(folder), b"caf\xe9.jpg"))
    shutil.copy2(shared_data("photos") / "ukbench00000.jpg", odd)
    cat = Catalog(tmp_path / "c.sqlite")
    plan = plan_rename([odd], cat)
    assert record_planned(plan, cat) == 1
    renamed = os.fsdecode(os.path.join(os.fsencode(folder), b"01_caf\xe9.jpg"))
    assert [op.dst for op in plan] == [renamed]
    os.rename(odd, renamed)
    assert renamed in recognise([renamed], cat)
    assert [op.dst for op in plan_strip([folder], cat)] == [odd]
    cat.close()


def test_sort_rename_exit_status_when_a_rename_fails(tmp_path, run_cli):
    """A name too long to take a prefix: that rename fails, the others are done, the exit status is 1."""
    folder = _folder(tmp_path)
    long = folder / ("x" * 250 + ".jpg")
    shutil.copy2(shared_data("photos") / "ukbench00052.jpg", long)
    res = run_cli("sort", folder, "--model", "phash", "--rename", check=False)
    assert res.returncode == 1 and "failed" in res.stderr
    assert long.exists() and sum(p.name[:2].isdigit() for p in folder.iterdir()) >= 6


# -- case 9: FIFOs and devices never hang video or faces ---------------------------------------------------

def _fifo(path: Path) -> Path:
    if not hasattr(os, "mkfifo"):
        pytest.skip("no FIFOs on this system")
    os.mkfifo(path)
    return path


VTEST = "vtest.avi"


def test_video_folder_with_a_fifo_clip_still_writes_the_good_clip(tmp_path, run_cli):
    folder = tmp_path / "videos"
    folder.mkdir()
    _fifo(folder / "clip.mp4")  # main: `lookalike video FOLDER` blocks in open() forever
    shutil.copy(shared_data("video", VTEST), folder / "good.avi")
    out = tmp_path / "frames"
    res = run_cli("video", folder, "--out", out, "--every", "400", timeout=60)  # a bad file inside a folder: rc 0
    errors = [line for line in res.stderr.splitlines() if "clip.mp4" in line]
    assert len(errors) == 1 and "FIFO" in errors[0], res.stderr
    assert "good.avi: kept" in res.stdout
    assert sorted(out.iterdir()) and all(p.name.startswith("good_") for p in out.iterdir())


def test_video_named_fifo_and_dev_zero_fail_fast_with_their_names(tmp_path, run_cli):
    fifo = _fifo(tmp_path / "clip.mp4")
    res = run_cli("video", fifo, "/dev/zero", shared_data("video", VTEST), "--out", tmp_path / "frames",
                  "--every", "400", "--json", check=False, timeout=60)
    assert res.returncode == 1  # two of the videos asked for by name could not be read
    errors = {e["path"]: e["error"] for e in res.json()["errors"]}
    assert errors == {str(fifo): "not a regular file: it is a FIFO (named pipe)",
                      "/dev/zero": "not a regular file: it is a character device"}
    assert res.json()["frames_kept"] >= 1  # the good clip was still written


def _faces(person: str, n: int) -> list[Path]:
    return sorted(shared_data("faces", "celebrity", person).glob("*.jpg"))[:n]


def _dataset(root: Path, people: dict[str, int]) -> Path:
    for person, n in people.items():
        (root / person).mkdir(parents=True)
        for p in _faces(person, n):
            shutil.copy2(p, root / person / p.name)
    return root


def test_faces_detect_fifo_and_dev_zero_one_line_naming_the_file(tmp_path, run_cli):
    fifo = _fifo(tmp_path / "face.jpg")
    for path, kind in ((fifo, "FIFO (named pipe)"), ("/dev/zero", "character device")):
        res = run_cli("faces", "detect", path, check=False, timeout=60)
        assert res.returncode == 1
        assert " ".join(res.stderr.split()) == f"error: {path}: not a regular file: it is a {kind}", res.stderr


def test_faces_train_who_recognize_with_fifos(tmp_path, run_cli):
    """A FIFO in a person's folder and in a searched folder: each is one failure naming it, the rest works."""
    data = _dataset(tmp_path / "people", {"Tom_Hanks": 3, "Will_Smith": 3})
    _fifo(data / "Tom_Hanks" / "pipe.jpg")
    rep = run_cli("faces", "train", data, "--model", "m", "--json", timeout=120).json()
    assert rep["photos_added"] == 6
    assert rep["failed"] == [{"path": str(data / "Tom_Hanks" / "pipe.jpg"),
                              "error": "not a regular file: it is a FIFO (named pipe)"}]

    search = tmp_path / "search"
    search.mkdir()
    shutil.copy2(_faces("Tom_Hanks", 5)[4], search / "tom.jpg")
    fifo = _fifo(search / "pipe.jpg")
    who = run_cli("faces", "who", search, "--model", "m", "--json", timeout=120).json()
    assert who["failed"] == [{"path": str(fifo), "error": "not a regular file: it is a FIFO (named pipe)"}]
    groups = run_cli("faces", "cluster", search, "--model", "m", "--json", timeout=120).json()
    assert groups["failed"] == who["failed"]
    assert [f["path"] for f in who["faces"]] == [str(search / "tom.jpg")]

    res = run_cli("faces", "recognize", fifo, "--model", "m", check=False, timeout=60)
    assert res.returncode == 1 and f"{fifo}: not a regular file: it is a FIFO" in " ".join(res.stderr.split())
    res = run_cli("faces", "recognize", "/dev/zero", "--model", "m", check=False, timeout=60)
    assert res.returncode == 1
    assert "/dev/zero: not a regular file: it is a character device" in " ".join(res.stderr.split())


# -- case 12 (faces): a nested person folder is never labelled as its parent ------------------------------

def test_faces_train_skips_a_folder_inside_a_person_folder_and_names_it(tmp_path, run_cli):
    data = _dataset(tmp_path / "people", {"Tom_Hanks": 2, "Will_Smith": 2})
    holiday = data / "Tom_Hanks" / "holiday"
    holiday.mkdir()
    for p in _faces("Denzel_Washington", 2):  # somebody else, in Tom's sub-folder
        shutil.copy2(p, holiday / p.name)
    rep = run_cli("faces", "train", data, "--model", "m", "--json", timeout=120).json()
    assert rep["photos_added"] == 4  # main: 6, Denzel's photos labelled Tom_Hanks
    assert rep["nested_skipped"] == [str(holiday)]
    text = run_cli("faces", "train", data, "--model", "m2", timeout=120)
    assert f"skipped the folder {holiday}" in text.stderr
    info = run_cli("faces", "models", "info", "m", "--json").json()
    assert info["per_person"] == {"Tom_Hanks": 2, "Will_Smith": 2}


def test_video_walk_keeps_the_picture_walks_rules(tmp_path, monkeypatch):
    """Videos are found by the same walk as pictures: no link out of the folders, never lookalike's own
    folders, FIFOs named like videos reported (never opened)."""
    from lookalike.media.video_reader import iter_videos

    folder, elsewhere = tmp_path / "videos", tmp_path / "elsewhere"
    folder.mkdir()
    elsewhere.mkdir()
    (folder / "clip.mp4").write_bytes(b"x")
    (elsewhere / "private.mp4").write_bytes(b"x")
    (folder / "link.mp4").symlink_to(elsewhere / "private.mp4")
    (folder / "outside").symlink_to(elsewhere, target_is_directory=True)
    os.mkfifo(folder / "pipe.mov")
    home = folder / "home"
    (home / "journals").mkdir(parents=True)
    (home / "journals" / "kept.mp4").write_bytes(b"x")
    monkeypatch.setenv("LOOKALIKE_HOME", str(home))
    found = dict(iter_videos([folder]))
    assert [p for p, err in found.items() if err is None] == [str(folder / "clip.mp4")]
    assert "outside the searched folders" in found[str(folder / "link.mp4")]
    assert "outside the searched folders" in found[str(folder / "outside")]
    assert "FIFO" in found[str(folder / "pipe.mov")]
    assert not any("private" in p or "kept" in p for p in found)
