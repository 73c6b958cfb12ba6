"""The journal: every operation round-trips through apply and undo, collisions never overwrite, a run killed with
SIGKILL at any point can be undone or resumed, edited plans are honoured, changed files are refused, purge."""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import time
from pathlib import Path

import pytest

import crash_points
from lookalike.journal import (
    Op,
    Plan,
    apply_plan,
    find_interrupted,
    list_journals,
    load_plan,
    purge,
    resume,
    show_journal,
    undo,
    write_plan,
)
from lookalike.journal.fsops import fingerprint

ROOT = Path(__file__).resolve().parents[1]
SRC = ROOT / "src"
MTIME = 1_600_000_000_000_000_000  # a fixed, old mtime: undo must bring it back


pytestmark = pytest.mark.usefixtures("private_trash")  # trash goes to a throw-away folder (conftest)


# ----------------------------------------------------------------------------- helpers
def build_tree(root: Path, n: int = 6, seed: int = 0) -> Path:
    """Files with distinct random bytes (and a sub-folder), all with a fixed old mtime."""
    rng = random.Random(seed)
    (root / "sub").mkdir(parents=True, exist_ok=True)
    for i in range(n):
        p = root / ("sub" if i % 3 == 2 else "") / f"img_{i:03d}.jpg"
        p.write_bytes(rng.randbytes(2000 + 37 * i))
        os.utime(p, ns=(MTIME, MTIME + i))
    dup = root / "sub" / "dup_of_003.jpg"  # an exact duplicate (own inode, own mtime), as dupes would link
    dup.write_bytes((root / "img_003.jpg").read_bytes())
    os.utime(dup, ns=(MTIME, MTIME - 1))
    return root


def tree_state(root: Path, mtimes: bool = True) -> dict[str, tuple]:
    """Every path under root (files, links, folders) with its fingerprint (and file mtime): the exact listing."""
    state = {}
    for dirpath, dirs, files in os.walk(root):
        for name in dirs + files:
            p = os.path.join(dirpath, name)
            fp = fingerprint(p)
            if fp and fp.startswith("symlink:"):
                fp = fp.replace(str(root), "<root>")
            mt = os.lstat(p).st_mtime_ns if mtimes and fp != "dir" else None
            state[os.path.relpath(p, root)] = (fp, mt)
    return state


def spawn_apply(plan_file: Path, delay: float, resume: bool = False) -> subprocess.Popen:
    """`lookalike apply PLAN --json` in a fresh interpreter that sleeps ``delay`` at every step point."""
    args = ["apply", str(plan_file), "--json"] + (["--resume"] if resume else [])
    return subprocess.Popen(crash_points.command(args, delay=delay), env={**os.environ, "PYTHONPATH": str(SRC)},
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def apply_in_subprocess(plan_file: Path, kill: str) -> int:
    """Apply through the library in a fresh interpreter (cheaper than the CLI) killed at step point ``kill``
    (``SEQ:POINT``, see tests/crash_points.py); returns the exit code."""
    code = "import sys; from lookalike.journal import apply_plan; apply_plan(sys.argv[1])"
    proc = subprocess.run(crash_points.command([plan_file], kill=kill, code=code),
                          env={**os.environ, "PYTHONPATH": str(SRC)}, capture_output=True, text=True, timeout=60)
    return proc.returncode


def make_plan(root: Path, kind: str) -> Plan:
    """A plan for ``root`` (built by build_tree) exercising one kind of operation between two moves."""
    plan = Plan(description=f"test {kind}")
    plan.move(root / "img_000.jpg", root / "out" / "first" / "img_000.jpg")
    a, b = root / "img_001.jpg", root / "img_003.jpg"
    if kind == "move":
        plan.move(a, root / "out" / "deep" / "er" / "moved.jpg")
    elif kind == "rename":
        plan.rename(a, "0001_img_001.jpg")
    elif kind == "copy":
        plan.copy(a, root / "copies" / "img_001.jpg")
    elif kind == "trash":  # every removal names its keeper (here another photo, as for an edited copy)
        plan.trash(a, keep=b)
    elif kind == "delete":
        plan.delete(a, keep=b)
    elif kind == "hardlink_replace":
        plan.link(a, b, kind="hard", replace=True)
    elif kind == "symlink_replace":
        plan.link(a, b, kind="symbolic", replace=True)
    elif kind == "hardlink_replace_duplicate":
        plan.link(root / "sub" / "dup_of_003.jpg", b, kind="hard", replace=True)
    elif kind == "symlink_new":
        plan.link(root / "links" / "c1" / "img_003.jpg", b, kind="symbolic")
    elif kind == "hardlink_new":
        plan.link(root / "links" / "img_003.jpg", b, kind="hard")
    elif kind == "mkdir":
        plan.mkdir(root / "made" / "a" / "b")
    else:
        raise AssertionError(kind)
    plan.move(root / "sub" / "img_002.jpg", root / "img_002_moved.jpg")
    return plan


KINDS = ["move", "rename", "copy", "trash", "delete", "hardlink_replace", "hardlink_replace_duplicate",
         "symlink_replace", "symlink_new", "hardlink_new", "mkdir"]


# ----------------------------------------------------------------------------- round trips
@pytest.mark.parametrize("kind", KINDS)
def test_every_kind_round_trips(tmp_path, kind, private_trash):
    root = build_tree(tmp_path / "photos")
    before = tree_state(root)
    plan = make_plan(root, kind)
    report = apply_plan(plan)
    assert report.failed == [] and report.done == 3
    after = tree_state(root)
    assert after != before
    a, b = str(root / "img_001.jpg"), str(root / "img_003.jpg")
    # the operation really happened, as described
    if kind == "move":
        assert not os.path.exists(a) and fingerprint(str(root / "out/deep/er/moved.jpg")) == before["img_001.jpg"][0]
    elif kind == "rename":
        assert after["0001_img_001.jpg"] == before["img_001.jpg"]  # same content, same mtime
    elif kind == "copy":
        assert after["copies/img_001.jpg"][0] == after["img_001.jpg"][0] == before["img_001.jpg"][0]
    elif kind in ("trash", "delete"):
        assert "img_001.jpg" not in after
        if kind == "trash":
            trashed = private_trash / "Trash" / "files" / "img_001.jpg"
            assert fingerprint(str(trashed)) == before["img_001.jpg"][0]
    elif kind == "hardlink_replace":
        assert os.path.samefile(a, b) and not os.path.islink(a)
    elif kind == "hardlink_replace_duplicate":
        assert os.path.samefile(root / "sub" / "dup_of_003.jpg", b)
    elif kind == "symlink_replace":
        assert os.path.islink(a) and os.readlink(a) == b
    elif kind == "symlink_new":
        assert os.readlink(root / "links/c1/img_003.jpg") == b
    elif kind == "hardlink_new":
        assert os.path.samefile(root / "links/img_003.jpg", b)
    elif kind == "mkdir":
        assert (root / "made/a/b").is_dir()
    # the journal holds a line per operation with before/after fingerprints
    lines = [json.loads(x) for x in (report.journal / "journal.jsonl").read_text().splitlines()]
    intended = [x for x in lines if x.get("state") == "intended"]
    assert len(intended) == 3 and all("before" in x and "after" in x for x in intended)
    for seq in range(3):  # each operation is journaled as intended before it is recorded done
        assert [x["state"] for x in lines if x["type"] == "op" and x["seq"] == seq] == ["intended", "done"]

    result = undo()
    assert result.ok and result.undone == 3
    assert tree_state(root) == before
    again = undo(report.journal)  # idempotent
    assert again.ok and again.undone == 0 and again.already == 3
    assert tree_state(root) == before


def test_collisions_never_overwrite(tmp_path):
    root = build_tree(tmp_path / "p")
    (root / "dest").mkdir()
    existing = root / "dest" / "img_001.jpg"
    existing.write_bytes(b"someone else's photo")
    before = tree_state(root)
    plan = Plan()
    plan.move(root / "img_001.jpg", existing)  # taken
    plan.copy(root / "img_003.jpg", existing)  # taken, and the name chosen just before is taken too
    plan.rename(root / "img_004.jpg", "img_003.jpg")  # a rename onto a taken name
    plan.link(existing, root / "img_003.jpg", kind="symbolic")  # a new link onto a taken name
    plan.copy(root / "img_000.jpg", root / "dest")  # into an existing folder, under its own name
    report = apply_plan(plan)
    assert report.failed == []
    assert fingerprint(str(root / "dest" / "img_000.jpg")) == before["img_000.jpg"][0]
    assert existing.read_bytes() == b"someone else's photo"
    assert fingerprint(str(root / "dest" / "img_001 (1).jpg")) == before["img_001.jpg"][0]
    assert fingerprint(str(root / "dest" / "img_001 (2).jpg")) == before["img_003.jpg"][0]
    assert fingerprint(str(root / "img_003 (1).jpg")) == before["img_004.jpg"][0]
    assert os.readlink(root / "dest" / "img_001 (3).jpg") == str(root / "img_003.jpg")
    assert fingerprint(str(root / "img_003.jpg")) == before["img_003.jpg"][0]
    dsts = [op.get("dst") or op.get("path") for op in report.operations]
    assert len(set(dsts)) == 5
    assert undo().ok
    assert tree_state(root) == before


def test_operations_that_depend_on_earlier_ones(tmp_path):
    """Operations run in plan order, each against the files as the earlier ones left them (also across the
    groups in which intended records are fsynced together)."""
    root = build_tree(tmp_path / "p")
    before = tree_state(root)
    plan = Plan()
    plan.rename(root / "img_000.jpg", "step1.jpg")
    plan.add(Op("rename", src=str(root / "step1.jpg"), dst=str(root / "step2.jpg")))  # made by the op before
    plan.copy(root / "img_001.jpg", root / "new" / "a.jpg")
    plan.add(Op("move", src=str(root / "new" / "a.jpg"), dst=str(root / "new" / "deeper" / "b.jpg")))
    plan.add(Op("delete", path=str(root / "new" / "deeper" / "b.jpg"), keep=str(root / "img_001.jpg")))
    for i in range(300):  # more than one fsync group
        plan.mkdir(root / "many" / f"d{i:03d}")
    report = apply_plan(plan)
    assert report.failed == [] and report.done == 305
    assert fingerprint(str(root / "step2.jpg")) == before["img_000.jpg"][0]
    assert sorted(os.listdir(root / "new")) == ["deeper"] and os.listdir(root / "new" / "deeper") == []
    assert len(os.listdir(root / "many")) == 300
    assert undo().ok
    assert tree_state(root) == before


def test_an_exception_from_progress_stops_the_run_which_can_then_be_resumed(tmp_path, run_cli):
    """The HTTP service cancels a job by raising from its progress callback."""
    root = build_tree(tmp_path / "p")
    plan = Plan()
    for i in (0, 1, 3, 4):
        plan.move(root / f"img_{i:03d}.jpg", root / "o" / f"{i}.jpg")

    def cancel(done: int, total: int) -> None:
        if done == 2:
            raise KeyboardInterrupt("cancelled")

    with pytest.raises(KeyboardInterrupt):
        apply_plan(plan, progress=cancel)
    [info] = list_journals()
    assert info.status == "interrupted" and info.counts["done"] == 2
    report = run_cli("apply", "--resume", "--json").json()  # no FILE: the latest interrupted run
    assert report["done"] == 4 and sorted(os.listdir(root / "o")) == ["0.jpg", "1.jpg", "3.jpg", "4.jpg"]


def test_changed_and_missing_sources_are_refused_and_the_run_goes_on(tmp_path):
    root = build_tree(tmp_path / "p")
    plan = Plan()
    plan.move(root / "img_000.jpg", root / "o" / "img_000.jpg")
    plan.delete(root / "img_001.jpg", keep=root / "sub" / "dup_of_003.jpg")
    plan.trash(root / "img_003.jpg", keep=root / "sub" / "dup_of_003.jpg")
    plan.move(root / "img_004.jpg", root / "o" / "img_004.jpg")
    plan_file = write_plan(plan, tmp_path / "plan.json")
    (root / "img_001.jpg").write_bytes(b"edited after the plan was made")
    (root / "img_003.jpg").unlink()
    report = apply_plan(plan_file)
    assert report.done == 2
    errors = {f["seq"]: f["error"] for f in report.failed}
    assert set(errors) == {1, 2}
    assert "changed since the plan was made" in errors[1] and "does not exist" in errors[2]
    assert (root / "img_001.jpg").read_bytes() == b"edited after the plan was made"
    assert (root / "o" / "img_000.jpg").exists() and (root / "o" / "img_004.jpg").exists()
    shown = show_journal(report.id)
    assert [op["state"] for op in shown["operations"]] == ["done", "failed", "failed", "done"]


def test_edited_plan_is_honoured_via_cli(tmp_path, run_cli):
    root = build_tree(tmp_path / "p")
    before = tree_state(root)
    plan = Plan(description="edit me")
    for i in (0, 1, 3, 4):
        plan.move(root / f"img_{i:03d}.jpg", root / "sorted" / f"{i}.jpg")
    plan_file = write_plan(plan, tmp_path / "plan.json")
    lines = plan_file.read_text().splitlines()
    assert len(lines) == 6  # header line, one line per operation, closing line
    # the user deletes the second operation and the last one (leaving a trailing comma behind)
    edited = [lines[0], lines[1], lines[3], lines[5]]
    plan_file.write_text("\n".join(edited) + "\n")
    assert [op.src for op in load_plan(plan_file)] == [str(root / "img_000.jpg"), str(root / "img_003.jpg")]

    dry = run_cli("apply", plan_file, "--dry-run", "--json").json()
    assert dry["dry_run"] and len(dry["operations"]) == 2 and dry["journal"] is None
    assert tree_state(root) == before

    res = run_cli("apply", plan_file, "--json").json()
    assert res["done"] == 2 and res["failed"] == []
    assert sorted(os.listdir(root / "sorted")) == ["0.jpg", "3.jpg"]
    assert (root / "img_001.jpg").exists() and (root / "img_004.jpg").exists()
    listed = run_cli("journal", "list", "--json").json()["journals"]
    assert [j["id"] for j in listed] == [res["id"]] and listed[0]["status"] == "complete"
    undone = run_cli("undo", "--json").json()
    assert undone["undone"] == 2 and undone["problems"] == []
    assert tree_state(root) == before


def test_undo_never_removes_what_it_did_not_make(tmp_path):
    root = build_tree(tmp_path / "p")
    plan = Plan()
    plan.copy(root / "img_000.jpg", root / "c" / "copy.jpg")
    plan.move(root / "img_001.jpg", root / "m" / "moved.jpg")
    plan.delete(root / "img_003.jpg", keep=root / "sub" / "dup_of_003.jpg")
    report = apply_plan(plan)
    assert report.done == 3
    (root / "c" / "copy.jpg").write_bytes(b"user edited the copy")  # now the user's
    (root / "img_001.jpg").write_bytes(b"a new file where the moved one was")
    (root / "img_003.jpg").write_bytes(b"a new file where the deleted one was")
    result = undo()
    assert len(result.problems) == 3
    reasons = " ".join(p["reason"] for p in result.problems)
    assert "changed after the run" in reasons and "kept at" in reasons
    assert (root / "c" / "copy.jpg").read_bytes() == b"user edited the copy"
    assert (root / "img_001.jpg").read_bytes() == b"a new file where the moved one was"
    assert (root / "m" / "moved.jpg").exists()
    # the deleted original is still kept in the journal, and the journal refuses a plain purge
    kept = list((report.journal / "kept").iterdir())
    assert len(kept) == 1
    with pytest.raises(Exception, match="only copy"):
        purge(report.id)


def test_cross_device_moves_and_deletes(tmp_path):
    shm = Path("/dev/shm")
    if not shm.is_dir() or os.stat(shm).st_dev == os.stat(tmp_path).st_dev:
        pytest.skip("no second file system to move across")
    other = Path(__import__("tempfile").mkdtemp(dir=shm))
    try:
        root = build_tree(tmp_path / "p")
        before = tree_state(root)
        plan = Plan()
        plan.move(root / "img_000.jpg", other / "x" / "img_000.jpg")
        plan.delete(root / "img_001.jpg", keep=root / "img_004.jpg")
        plan.link(other / "x" / "hard.jpg", root / "img_003.jpg", kind="hard", fallback="copy")  # copied instead
        report = apply_plan(plan, journal_dir=other / "journals")  # kept copies on another file system
        assert report.done == 3
        assert fingerprint(str(other / "x" / "hard.jpg")) == before["img_003.jpg"][0]
        assert fingerprint(str(other / "x" / "img_000.jpg")) == before["img_000.jpg"][0]
        assert os.stat(other / "x" / "img_000.jpg").st_mtime_ns == before["img_000.jpg"][1]
        result = undo(report.journal)
        assert result.ok
        assert tree_state(root) == before and not (other / "x").exists()
        hard = Plan()
        hard.link(other / "y.jpg", root / "img_004.jpg", kind="hard")  # no fallback: refused up front
        refused = apply_plan(hard, journal_dir=other / "journals")
        assert "different file systems" in refused.failed[0]["error"] and not (other / "y.jpg").exists()
    finally:
        import shutil

        shutil.rmtree(other, ignore_errors=True)


# ----------------------------------------------------------------------------- crashes
CRASH_POINTS = [
    ("move", "intended"), ("move", "staged"), ("move", "acted"),
    ("rename", "staged"),
    ("copy", "intended"), ("copy", "staged"), ("copy", "acted"),
    ("delete", "intended"), ("delete", "kept"),
    ("trash", "kept"), ("trash", "acted"),
    ("hardlink_replace", "kept"), ("hardlink_replace", "staged"), ("hardlink_replace", "acted"),
    ("hardlink_replace_duplicate", "staged"), ("hardlink_replace_duplicate", "acted"),
    ("symlink_replace", "staged"),
    ("symlink_new", "staged"), ("symlink_new", "acted"),
    ("mkdir", "intended"),
]


@pytest.mark.parametrize("kind,point", CRASH_POINTS)
def test_sigkill_at_each_step_then_undo_or_resume(tmp_path, kind, point):
    # the reference: the same plan on a twin tree, not interrupted
    twin = build_tree(tmp_path / "twin")
    assert apply_plan(make_plan(twin, kind)).failed == []
    expected = tree_state(twin, mtimes=False)

    for follow_up in ("undo", "resume"):
        root = build_tree(tmp_path / follow_up)
        before = tree_state(root)
        plan_file = write_plan(make_plan(root, kind), tmp_path / f"{follow_up}.json")
        rc = apply_in_subprocess(plan_file, f"1:{point}")
        assert rc == -signal.SIGKILL
        interrupted = find_interrupted(plan_file)
        assert interrupted is not None
        if follow_up == "undo":
            result = undo(interrupted)
            assert result.ok, result.problems
            assert tree_state(root) == before
        else:
            report = resume(interrupted)
            assert report.failed == [] and report.done == 3
            assert tree_state(root, mtimes=False) == expected
            assert undo(interrupted).ok  # a resumed run can still be undone
            assert tree_state(root) == before


def test_kill9_during_a_long_cli_apply_then_undo_and_resume(tmp_path, run_cli):
    """A real `lookalike apply` over many files, slowed down, killed with SIGKILL at an arbitrary moment."""
    n = 48

    def build(root: Path) -> Plan:
        build_tree(root, n=n, seed=1)
        plan = Plan(description="many")
        for i in range(n):
            name = f"img_{i:03d}.jpg"
            p = root / ("sub" if i % 3 == 2 else "") / name
            kind = i % 6
            if kind == 0:
                plan.move(p, root / "moved" / f"g{i // 12}" / name)
            elif kind == 1:
                plan.copy(p, root / "copies" / name)
            elif kind == 2:
                plan.delete(p, keep=root / "img_001.jpg")  # img_001 is only copied
            elif kind == 3:
                plan.rename(p, f"{i:04d}_{name}")
            elif kind == 4:
                plan.trash(p, keep=root / "img_001.jpg")
            else:
                plan.link(p, root / "img_001.jpg", kind="symbolic", replace=True)  # img_001 is only copied
        return plan

    twin = tmp_path / "twin"
    assert apply_plan(build(twin)).failed == []
    expected = tree_state(twin, mtimes=False)

    for follow_up in ("undo", "resume"):
        root = tmp_path / follow_up
        plan_file = write_plan(build(root), tmp_path / f"{follow_up}.json")
        before = tree_state(root)
        # slow enough that a loaded machine cannot finish the 48 operations before the kill lands
        proc = spawn_apply(plan_file, delay=0.06)
        deadline = time.monotonic() + 60
        journal_file = None
        while time.monotonic() < deadline:
            folders = [j for j in list_journals() if j.status == "running"]
            if folders:
                journal_file = folders[0].path / "journal.jsonl"
                if journal_file.read_text().count('"state": "done"') >= 12:
                    break
            time.sleep(0.01)
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
        assert proc.returncode == -signal.SIGKILL
        assert journal_file is not None
        assert tree_state(root) != before
        status = [j for j in list_journals() if j.path == journal_file.parent][0]
        assert status.status == "interrupted" and 0 < status.counts["done"] < n
        if follow_up == "undo":
            res = run_cli("undo", "--json").json()
            assert res["problems"] == []
            assert tree_state(root) == before
        else:
            res = run_cli("apply", plan_file, "--resume", "--json", check=False).json()
            assert res["resumed"] and res["failed"] == [] and res["done"] == n, res["failed"]
            assert tree_state(root, mtimes=False) == expected
            res = run_cli("apply", plan_file, "--resume", check=False)
            assert res.returncode == 1 and "no interrupted run" in res.stderr


# ----------------------------------------------------------------------------- journals
def test_purge_and_list(tmp_path, run_cli):
    root = build_tree(tmp_path / "p")
    plan = Plan(description="delete two")
    plan.delete(root / "img_000.jpg", keep=root / "img_003.jpg")
    plan.trash(root / "img_001.jpg", keep=root / "img_003.jpg")
    first = apply_plan(plan)
    second = apply_plan(Plan([], description="empty"))
    kept = list((first.journal / "kept").iterdir())
    assert len(kept) == 2
    infos = {i.id: i for i in list_journals()}
    assert infos[first.id].kept_bytes > 0 and infos[first.id].counts["done"] == 2
    shown = show_journal(first.id)
    assert [op["op"] for op in shown["operations"]] == ["delete", "trash"]
    text = run_cli("journal", "show", first.id).stdout
    assert "delete" in text and "img_000.jpg" in text

    res = run_cli("journal", "purge", first.id, "--json").json()
    assert res["removed"] == [first.id]
    assert not first.journal.exists()
    with pytest.raises(Exception, match="no journal"):
        undo(first.id)
    assert not (root / "img_000.jpg").exists()  # purge made the deletion final

    # an interrupted journal is kept unless forced
    plan_file = write_plan(make_plan(build_tree(tmp_path / "q"), "delete"), tmp_path / "q.json")
    assert apply_in_subprocess(plan_file, "1:kept") == -signal.SIGKILL
    res = run_cli("journal", "purge", "--all", "--json").json()
    assert res["removed"] == [second.id] and len(res["skipped"]) == 1
    assert purge(all=True, force=True)["skipped"] == []
    assert list_journals() == []
    assert run_cli("journal", "purge", check=False).returncode == 1


def test_latest_journal_is_the_last_run_even_within_one_second(tmp_path):
    root = build_tree(tmp_path / "p")
    runs = []
    for i in range(5):
        plan = Plan()
        plan.rename(root / f"img_{i:03d}.jpg" if i % 3 != 2 else root / "sub" / f"img_{i:03d}.jpg", f"r{i}.jpg")
        runs.append(apply_plan(plan))
    infos = list_journals()
    assert [j.id for j in infos] == [r.id for r in runs]
    assert [j.created for j in infos] == sorted({j.created for j in infos})  # distinct and increasing
    assert undo().journal == runs[-1].journal
    assert undo(journal_path=runs[-2].journal).undone == 1
    assert (root / "img_004.jpg").exists() and (root / "img_003.jpg").exists() and not (root / "r3.jpg").exists()


def test_plan_file_round_trip_and_validation(tmp_path):
    root = build_tree(tmp_path / "p")
    plan = Plan(description="all kinds")
    plan.move(root / "img_000.jpg", root / "a.jpg")
    plan.link(root / "l.jpg", root / "img_001.jpg", kind="hard", fallback="copy")
    plan.mkdir(root / "d")
    plan.operations[0].note = "group 1: keeper is a.jpg"
    loaded = load_plan(write_plan(plan, tmp_path / "plan.json"))
    assert [op.to_json() for op in loaded] == [op.to_json() for op in plan]
    assert loaded.description == "all kinds" and loaded.operations[0].sha256 == fingerprint(str(root / "img_000.jpg"))
    (tmp_path / "bad.json").write_text('{"operations": [{"op": "shred", "path": "x"}]}')
    with pytest.raises(Exception, match="unknown operation"):
        load_plan(tmp_path / "bad.json")
    (tmp_path / "rel.json").write_text('{"operations": [{"op": "delete", "path": "p/img_003.jpg"}]}')
    assert load_plan(tmp_path / "rel.json").operations[0].path == str(root / "img_003.jpg")


def test_the_latest_journal_is_one_rule_the_run_undo_reverses(tmp_path):
    """show_journal() / open_journal() without an id name the run a plain undo reverses (latest_to_undo), not
    the newest folder: after undoing the newest run, it is the one before."""
    from lookalike.journal import latest_to_undo, open_journal

    root = build_tree(tmp_path / "r")
    first = apply_plan(make_plan(root, "rename"))
    second = apply_plan(make_plan(build_tree(tmp_path / "s"), "copy"))
    assert open_journal().id == show_journal()["id"] == latest_to_undo().id == second.id
    assert undo().ok
    assert open_journal().id == show_journal()["id"] == latest_to_undo().id == first.id


def test_one_free_name_rule_for_every_writer(tmp_path):
    """journal.fsops.numbered_names is the one rule (name, name (1), name (2), ...): free_name (the journal),
    create_new_file (files written outside a plan, e.g. video frames) and the link trees all follow it."""
    from lookalike.journal.fsops import create_new_file, free_name, numbered_names
    from lookalike.journal.links import plan_link_tree

    first = [n for n, _ in zip(numbered_names(str(tmp_path / "a.jpg")), range(3), strict=False)]
    assert first == [str(tmp_path / "a.jpg"), str(tmp_path / "a (1).jpg"), str(tmp_path / "a (2).jpg")]
    assert next(iter(numbered_names(".profile"))) == ".profile" and list(zip(numbered_names(".profile"), range(2),
                                                                               strict=False))[1][0] == ".profile (1)"
    (tmp_path / "a.jpg").write_bytes(b"user")
    made = [create_new_file(tmp_path / "a.jpg", bytes([i])) for i in range(2)]
    assert made == first[1:] and (tmp_path / "a.jpg").read_bytes() == b"user"
    assert free_name(str(tmp_path / "a.jpg")) == str(tmp_path / "a (3).jpg")
    assert free_name(str(tmp_path / "a.jpg"), {str(tmp_path / "a.jpg")}, on_disk=False) == first[1]
    # two photos of one name in one group folder: numbered in the plan itself, not left to clash at apply time
    for sub in ("x", "y"):
        (tmp_path / sub).mkdir()
        (tmp_path / sub / "IMG.jpg").write_bytes(sub.encode())
    x, y = str(tmp_path / "x" / "IMG.jpg"), str(tmp_path / "y" / "IMG.jpg")
    plan = plan_link_tree([(tmp_path / "out" / "g", [x, y])], "test tree")
    assert [Path(op.path).name for op in plan] == ["IMG.jpg", "IMG (1).jpg"]
    report = apply_plan(plan)
    assert report.failed == [] and os.readlink(tmp_path / "out" / "g" / "IMG (1).jpg") == y
