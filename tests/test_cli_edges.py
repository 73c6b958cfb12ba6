"""Rough edges a new user hit (issue 13): a misspelt path and an empty folder behave alike in every command (one
clear line, exit status 1, nothing written), tables instead of Python dicts, a header row in exported features,
and --help without Python types.

The command matrix runs in process (typer's CliRunner: the error is the UsageError that ``lookalike.cli.main``
prints as one line with exit status 1); one subprocess test checks that line and the exit status end to end."""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path

import click
import pytest
import typer
from typer.testing import CliRunner

from conftest import shared_data
from lookalike.cli import app
from lookalike.errors import UsageError
from lookalike.media import walk_inputs

runner = CliRunner()


def invoke(*args: object):
    return runner.invoke(app, [os.fspath(a) if isinstance(a, Path) else str(a) for a in args],
                         env={"COLUMNS": "200", "NO_COLOR": "1"})


def usage_error(*args: object) -> str:
    """The one-line error a command stops with (what `lookalike` prints after "error: ", exit status 1)."""
    res = invoke(*args)
    assert isinstance(res.exception, UsageError), (args, res.exception, res.output)
    return str(res.exception)


def commands(path: Path, tmp: Path) -> dict[str, list[object]]:
    """Every command that takes folders, with ``path`` where its folder goes."""
    query = shared_data("photos", "ukbench00000.jpg")
    return {
        "index": ["index", path, "-m", "phash"],
        "similar --in": ["similar", query, "--in", path, "-m", "phash"],
        "dupes": ["dupes", path, "--tier", "exact"],
        "dupes --keep-in": ["dupes", query, "--keep-in", path, "--tier", "exact"],
        "sort": ["sort", path, "-m", "phash"],
        "sort --strip": ["sort", "--strip", path],
        "cluster": ["cluster", path, "-m", "phash"],
        "video": ["video", path, "--out", tmp / "frames"],
        "faces who": ["faces", "who", path],
        "faces cluster": ["faces", "cluster", path],
        "faces train": ["faces", "train", path, "-m", "family"],
        "faces name": ["faces", "name", path, "--as", "Carol", "-m", "family"],
        "export features": ["export", "features", path, "-m", "phash", "--csv", tmp / "features.csv"],
    }


NAMES = list(commands(Path("x"), Path("y")))


@pytest.mark.parametrize("name", NAMES)
def test_a_misspelt_path_is_one_clear_error_in_every_command(name, tmp_path):
    missing = tmp_path / "Picturs"
    assert usage_error(*commands(missing, tmp_path)[name]) == f"no such file or folder: {missing}"
    assert not (tmp_path / "frames").exists() and not (tmp_path / "features.csv").exists()


@pytest.mark.parametrize("name", NAMES)
def test_an_empty_folder_is_one_clear_error_in_every_command(name, tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    message = usage_error(*commands(empty, tmp_path)[name])
    if name == "faces train":  # its folder holds one folder per person
        assert message.startswith(f"{empty} has no sub-folders")
    elif name == "faces name":  # a folder of links written by `faces cluster --links`
        assert message == f"no pictures in {empty}"
    else:
        what = "videos" if name == "video" else "pictures"
        assert message == f"no {what} in {empty}: the folder is empty"
    assert not (tmp_path / "frames").exists() and not (tmp_path / "features.csv").exists()


def test_folders_without_pictures_say_why(tmp_path):
    root = tmp_path / "r"
    (root / "sub").mkdir(parents=True)
    shutil.copy(shared_data("photos", "ukbench00000.jpg"), root / "sub" / "a.jpg")
    (root / "notes.txt").write_text("no picture here")
    msg = usage_error("index", root, "-m", "phash", "--no-recursive")
    assert msg == f"no pictures in {root} (its sub-folders are not searched with --no-recursive)"
    assert walk_inputs([root]) == [str(root / "sub" / "a.jpg")]  # recursive: found

    fifo = tmp_path / "f"
    fifo.mkdir()
    os.mkfifo(fifo / "x.jpg")  # never opened: the walk reports it
    assert usage_error("dupes", fifo, "--tier", "exact") == (
        f"no pictures in {fifo} (1 left out, e.g. {fifo / 'x.jpg'}: not a regular file: it is a FIFO (named pipe))")

    outside = tmp_path / "links"
    outside.mkdir()
    (outside / "a.jpg").symlink_to(root / "sub" / "a.jpg")  # a link out of the folder is not followed
    assert "symbolic link to outside the searched folders" in usage_error("sort", outside, "-m", "phash")

    hidden = tmp_path / "h"
    hidden.mkdir()
    shutil.copy(shared_data("photos", "ukbench00001.jpg"), hidden / ".secret.jpg")
    assert usage_error("index", hidden, "-m", "phash") == f"no pictures in {hidden}"  # not "empty": it is not

    broken = tmp_path / "broken"
    broken.symlink_to(tmp_path / "gone")
    assert usage_error("index", broken) == f"no such file or folder: {broken} (a broken symbolic link)"


def test_one_folder_given_twice_through_a_link_is_not_empty(tmp_path):
    real = tmp_path / "real"
    real.mkdir()
    shutil.copy(shared_data("photos", "ukbench00000.jpg"), real / "a.jpg")
    (tmp_path / "alias").symlink_to(real)
    # walked once, under the first name; the second name is the same folder, not an empty one
    assert walk_inputs([real, tmp_path / "alias"]) == [str(real / "a.jpg")]
    assert walk_inputs([tmp_path / "alias", real]) == [str(tmp_path / "alias" / "a.jpg")]
    # one empty folder among good ones is still named
    (tmp_path / "empty").mkdir()
    with pytest.raises(UsageError, match="^no pictures in .*empty: the folder is empty$"):
        walk_inputs([real, tmp_path / "empty"])


def test_exit_status_and_one_line_end_to_end(tmp_path, run_cli):
    empty = tmp_path / os.fsdecode(b"caf\xe9")  # a name that is not UTF-8, shown with its byte escaped
    empty.mkdir()
    for args in (["dupes", empty, "--json"], ["index", tmp_path / "nope", "--json"]):
        res = run_cli(*args, check=False)
        assert res.returncode == 1 and res.stdout == "" and len(res.stderr.splitlines()) == 1, res.stderr
        assert res.stderr.startswith("error: ") and "Traceback" not in res.stderr
    assert run_cli("dupes", empty, check=False).stderr.strip() == f"error: no pictures in {tmp_path}/caf\\xe9: " \
                                                                 "the folder is empty"


# -- tables, not Python dicts ------------------------------------------------------------------------------------


def test_cache_stats_prints_tables(tmp_path):
    folder = tmp_path / "p"
    folder.mkdir()
    for i in range(3):
        shutil.copy(shared_data("photos", f"ukbench{i:05d}.jpg"), folder)
    (folder / "bad.jpg").write_bytes(b"not a picture")
    cat = tmp_path / "c.sqlite"
    assert invoke("index", folder, "-m", "phash", "--catalog", cat).exit_code == 0
    res = invoke("cache", "stats", "--catalog", cat)
    assert res.exit_code == 0, res.output
    text = res.output
    assert "{" not in text and "'" not in text  # no dict repr
    lines = {line.split("│")[1].strip(): line.split("│")[2].strip() for line in text.splitlines()
             if line.count("│") >= 3}
    assert lines["status ok"] == "3" and lines["status error"] == "1" and lines["all files"] == "4"
    assert lines["pictures (distinct contents)"] == "3"
    assert lines["phash"] == "1"  # model, version, features, size: the row starts with the model
    assert any(line.split("│")[3].strip() == "3" for line in text.splitlines() if "phash" in line)


def test_faces_models_info_prints_a_table():
    from lookalike.faces.store import FaceModel

    m = FaceModel.create("family", "dlib-face", "1", "auto")
    m.meta.update(threshold=0.5123, calibration={"faces": 8, "genuine_median": 0.41})
    m.save()
    res = invoke("faces", "models", "info")
    assert res.exit_code == 0, res.output
    text = res.output
    assert "{" not in text and "calibration: {" not in text
    rows = {line.split("│")[1].strip(): line.split("│")[2].strip() for line in text.splitlines()
            if line.count("│") >= 3}
    assert rows["unknown threshold"] == "0.5123" and rows["active"] == "yes"
    assert rows["calibration: genuine median"] == "0.41" and rows["prototypes"] == "0"


# -- --help ----------------------------------------------------------------------------------------------------


def _command_paths(cmd: click.Command, prefix: tuple[str, ...] = ()):
    yield prefix
    for name, sub in (getattr(cmd, "commands", None) or {}).items():  # a group (typer's is no click.Group)
        yield from _command_paths(sub, (*prefix, name))


def test_help_of_every_command_shows_no_python_types():
    paths = list(_command_paths(typer.main.get_command(app)))
    assert ("dupes",) in paths and ("faces", "models", "info") in paths and len(paths) > 30
    for path in paths:
        res = invoke(*path, "--help")
        assert res.exit_code == 0, (path, res.output)
        for stray in ("<bool>", "<list[", "<Path>", "list[Path]", "list[str]"):
            assert stray not in res.output, (path, stray, res.output)
    dupes = invoke("dupes", "--help").output
    assert "--dry-run  " in dupes and "<path>" in dupes  # a flag shows no type; a value its own


@pytest.mark.skipif(sys.platform == "win32", reason="POSIX names")
def test_export_features_header_row(tmp_path):
    folder = tmp_path / "p"
    folder.mkdir()
    shutil.copy(shared_data("photos", "ukbench00000.jpg"), folder)
    target = tmp_path / "f.csv"
    assert invoke("export", "features", folder, "-m", "phash", "--csv", target).exit_code == 0
    header, row = target.read_text().splitlines()
    assert header.split(",") == ["path", *(f"bit{i}" for i in range(64))]
    assert row.split(",")[0] == str(folder / "ukbench00000.jpg") and len(row.split(",")) == 65
