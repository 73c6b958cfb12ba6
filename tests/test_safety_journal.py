"""Issue 10, the journal's part: no clean-up can remove the last copy of a photo.

Every operation that removes or replaces a duplicate names its keeper (path + sha256) and the journal checks it
right before acting, at apply and at resume, whatever the front end (CLI, plan file, library, HTTP service):
cases 2 (keeper never re-checked), 7 (the journal's kept copies acted on), 12 (exit status, damaged journals),
plus hard links, non-UTF-8 names and operations of one plan that depend on each other.
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import signal
import subprocess
from pathlib import Path

import pytest

import crash_points
from conftest import SRC, shared_data
from lookalike.dupes import find_duplicates, plan_for
from lookalike.dupes.report import DupesReport, Group, Member
from lookalike.errors import UsageError
from lookalike.journal import Op, Plan, apply_plan, list_journals, load_plan, resume, show_journal, undo, write_plan
from lookalike.journal.run import find_interrupted

pytestmark = pytest.mark.usefixtures("private_trash")  # trash goes to a throw-away folder (conftest)


def photo(n: int) -> bytes:
    return (shared_data("photos") / f"ukbench{n:05d}.jpg").read_bytes()


def sha(p: str | os.PathLike) -> str:
    return hashlib.sha256(Path(p).read_bytes()).hexdigest()


def pair(root: Path, n: int = 0, names: tuple[str, str] = ("IMG_0001.jpg", "IMG_0001 copy.jpg")) -> tuple[Path, Path]:
    """Two byte-identical copies of one real photo."""
    root.mkdir(parents=True, exist_ok=True)
    a, b = root / names[0], root / names[1]
    a.write_bytes(photo(n))
    b.write_bytes(photo(n))
    return a, b


def regular_copies(root: Path, digest: str) -> list[str]:
    """Regular files (not symlinks) under root holding ``digest``."""
    out = []
    for dirpath, _dirs, files in os.walk(root):
        for name in files:
            p = os.path.join(dirpath, name)
            if not os.path.islink(p) and sha(p) == digest:
                out.append(p)
    return out


def apply_in_subprocess(plan_file: Path, kill: str | None = None, env: dict | None = None) -> int:
    """Apply in a fresh interpreter, killed at step point ``kill`` (``SEQ:POINT``, tests/crash_points.py)."""
    code = "import sys; from lookalike.journal import apply_plan; apply_plan(sys.argv[1])"
    proc = subprocess.run(crash_points.command([plan_file], kill=kill, code=code),
                          env={**os.environ, "PYTHONPATH": str(SRC), **(env or {})}, capture_output=True, text=True,
                          timeout=60)
    return proc.returncode


def one_line_error(run_cli, *args: str) -> str:
    """Run the CLI (a wide console, so that nothing is wrapped); it must fail with exactly one line on stderr,
    no traceback. Returns that line."""
    res = run_cli(*args, check=False, env={"COLUMNS": "4000"})
    assert res.returncode == 1, (res.returncode, res.stdout, res.stderr)
    assert "Traceback" not in res.stderr, res.stderr
    lines = [x for x in res.stderr.splitlines() if x.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), res.stderr
    return lines[0]


# ----------------------------------------------------------------------------- case 2: the keeper is re-checked
@pytest.mark.parametrize("change", ["overwritten", "deleted", "symlink", "moved"])
@pytest.mark.parametrize("action", ["delete", "trash", "link"])
def test_keeper_changed_between_plan_and_apply_is_refused(tmp_path, catalog, action, change):
    keep_a, dup_b = pair(tmp_path / "S")
    digest = sha(keep_a)
    plan = plan_for(find_duplicates([tmp_path / "S"], tier="exact", catalog=catalog), action)
    [op] = plan.operations
    assert op.keep and op.keep_sha256 == digest and op.path != op.keep  # the plan names its keeper
    plan_file = write_plan(plan, tmp_path / "p.json")
    keep, dup = Path(op.keep), Path(op.path)
    if change == "overwritten":  # the keeper is now another photo: the duplicate is the last copy
        keep.write_bytes(photo(1))
    elif change == "deleted":
        keep.unlink()
    elif change == "symlink":  # case 1 after the fact: the keeper became a link to the duplicate itself
        keep.unlink()
        keep.symlink_to(dup)
    else:
        keep.rename(tmp_path / "S" / "elsewhere.jpg")
    report = apply_plan(plan_file)
    assert report.done == 0 and len(report.failed) == 1
    assert "keeper" in report.failed[0]["error"] and str(keep) in report.failed[0]["error"]
    assert not dup.is_symlink() and sha(dup) == digest  # untouched
    assert regular_copies(tmp_path / "S", digest)


def test_cli_apply_refuses_a_plan_whose_keeper_was_overwritten(tmp_path, run_cli):
    keep_a, _ = pair(tmp_path / "S")
    digest = sha(keep_a)
    plan_file = tmp_path / "p.json"
    run_cli("dupes", tmp_path / "S", "--tier", "exact", "--action", "delete", "--plan", plan_file)
    ops = json.loads(plan_file.read_text())["operations"]
    assert [(o["op"], o["keep_sha256"]) for o in ops] == [("delete", digest)]
    Path(ops[0]["keep"]).write_bytes(photo(1))
    res = run_cli("apply", plan_file, check=False)
    assert res.returncode == 1
    assert "0 of 1 operations done" in res.stdout
    assert "keeper" in res.stderr and "changed since the plan was made" in res.stderr
    assert sha(ops[0]["path"]) == digest


def test_hand_edited_plan_without_keeper_is_refused(tmp_path, run_cli):
    keep_a, _ = pair(tmp_path / "S")
    digest = sha(keep_a)
    plan_file = tmp_path / "p.json"
    run_cli("dupes", tmp_path / "S", "--tier", "exact", "--action", "trash", "--plan", plan_file)
    lines = plan_file.read_text().splitlines()
    op = json.loads(lines[1])
    victim = op["path"]
    edits = {
        "no keeper": {k: v for k, v in op.items() if k not in ("keep", "keep_sha256")},
        "no keeper sha": {k: v for k, v in op.items() if k != "keep_sha256"},
        "keeper is itself": {**op, "keep": victim, "keep_sha256": digest},
        "made-up sha": {**op, "keep_sha256": "0" * 64},
    }
    for n, (what, edited) in enumerate(edits.items()):
        plan_file.write_text("\n".join([lines[0], json.dumps(edited), *lines[2:]]) + "\n")
        if n == 0:  # through the CLI once, then through the library (the same check)
            dry = run_cli("apply", plan_file, "--dry-run", check=False)
            assert dry.returncode == 1 and "refused" in dry.stderr and "does not name its keeper" in dry.stderr
            res = run_cli("apply", plan_file, "--json", check=False)
            assert res.returncode == 1 and res.json()["done"] == 0
        else:
            report = apply_plan(plan_file)
            assert report.done == 0 and len(report.failed) == 1, what
        assert os.path.isfile(victim) and sha(victim) == digest, what
    # a plan given as JSON data (as the HTTP service receives it) is checked the same way
    report = apply_plan(Plan.from_json({"operations": [edits["no keeper"]]}))
    assert report.done == 0 and "does not name its keeper" in report.failed[0]["error"]


def test_link_whose_keeper_became_junk_is_refused(tmp_path):
    a, b = pair(tmp_path / "S")
    digest = sha(a)
    plan = Plan()
    plan.link(b, a, kind="hard", replace=True)
    plan_file = write_plan(plan, tmp_path / "p.json")
    a.write_bytes(b"junk")  # the keeper is no longer the photo
    report = apply_plan(plan_file)
    assert report.done == 0 and "changed since the plan was made" in report.failed[0]["error"]
    assert sha(b) == digest and os.stat(b).st_ino != os.stat(a).st_ino


def test_resume_rechecks_the_keeper(tmp_path):
    """At resume the keeper is checked again, both for an operation the killed run had journaled (finished by
    the resume) and for one it never reached (prepared by the resume)."""
    root = tmp_path / "S"
    a, b = pair(root, 0, ("a.jpg", "b.jpg"))
    c, d = pair(root, 1, ("c.jpg", "d.jpg"))
    e, f = pair(root, 2, ("e.jpg", "f.jpg"))
    plan = Plan()
    plan.delete(b, keep=a)
    plan.delete(d, keep=c)  # journaled with op 0 (one fsync group), killed before acting
    plan.delete(a, keep=e)  # changes op 0's keeper: starts a new group, never journaled by the killed run
    plan_file = write_plan(plan, tmp_path / "p.json")
    assert apply_in_subprocess(plan_file, "1:intended") == -signal.SIGKILL
    journal = find_interrupted(plan_file)
    assert journal is not None and not b.exists() and d.exists()
    c.write_bytes(photo(3))  # op 1's keeper changed while the run was down
    e.unlink()  # op 2's keeper deleted
    report = resume(journal)
    errors = {x["seq"]: x["error"] for x in report.failed}
    assert report.done == 1 and set(errors) == {1, 2}
    assert "changed since the plan was made" in errors[1] and "no longer exists" in errors[2]
    assert sha(d) == hashlib.sha256(photo(1)).hexdigest() != sha(c) and sha(a) == hashlib.sha256(photo(0)).hexdigest()
    assert undo(journal).ok and sha(b) == sha(a)


def test_no_environment_variable_can_stop_a_real_run(tmp_path):
    """Crash points are the tests' alone (tests/crash_points.py replaces a no-op in its own process): the
    variables that used to SIGKILL or slow down any lookalike process are ignored."""
    a, b = pair(tmp_path / "S")
    plan = Plan()
    plan.delete(b, keep=a)
    plan_file = write_plan(plan, tmp_path / "p.json")
    env = {"LOOKALIKE_JOURNAL_TEST_KILL": "0:*", "LOOKALIKE_JOURNAL_TEST_DELAY": "30"}
    assert apply_in_subprocess(plan_file, env=env) == 0
    assert not b.exists() and find_interrupted(plan_file) is None


def test_resume_rechecks_the_keeper_of_trash_and_link(tmp_path):
    """Trash and replacing links keep a hard link of their file in the journal right after journaling: when the
    resumed run refuses them, that link is dropped again and the files stay as they are."""
    root = tmp_path / "S"
    c, d = pair(root, 1, ("c.jpg", "d.jpg"))
    e, f = pair(root, 2, ("e.jpg", "f.jpg"))
    plan = Plan()
    plan.trash(d, keep=c)
    plan.link(f, e, kind="hard", replace=True)
    plan_file = write_plan(plan, tmp_path / "p.json")
    assert apply_in_subprocess(plan_file, "0:intended") == -signal.SIGKILL
    journal = find_interrupted(plan_file)
    assert len(list((journal.folder / "kept").iterdir())) == 2  # staged before the kill
    c.write_bytes(photo(3))
    e.unlink()
    e.symlink_to(f)  # the link's keeper is now a symlink to the file it would replace
    report = resume(journal)
    assert report.done == 0 and len(report.failed) == 2
    assert list((journal.folder / "kept").iterdir()) == []
    assert sha(d) == hashlib.sha256(photo(1)).hexdigest() and sha(f) == hashlib.sha256(photo(2)).hexdigest()
    assert not f.is_symlink() and os.stat(f).st_nlink == 1
    assert undo(journal).ok


def test_service_apply_rechecks_the_keeper(tmp_path):
    from service_util import Server

    root = tmp_path / "root"
    a, b = pair(root)
    digest = sha(a)
    server = Server(tmp_path, "--root", str(root), "--allow-changes")
    try:
        c = server.client()
        op = {"op": "trash", "path": str(b), "keep": str(a), "keep_sha256": digest}
        a.write_bytes(photo(1))
        rep = c.apply({"operations": [op]})
        assert rep["done"] == 0 and "keeper" in rep["failed"][0]["error"]
        rep = c.apply({"operations": [{"op": "trash", "path": str(b)}]})
        assert rep["done"] == 0 and "does not name its keeper" in rep["failed"][0]["error"]
        assert sha(b) == digest
    finally:
        server.stop()


# ----------------------------------------------------------------------------- hard links, symlinks, FIFOs
@pytest.mark.parametrize("how", ["delete", "trash", "symlink_replace"])
def test_a_hard_link_of_its_keeper_is_never_removed(tmp_path, how):
    """Two names of one inode are one file: removing one frees nothing, and is refused."""
    root = tmp_path / "S"
    root.mkdir()
    a, b = root / "a.jpg", root / "b.jpg"
    a.write_bytes(photo(0))
    os.link(a, b)
    plan = Plan()
    if how == "symlink_replace":
        plan.link(b, a, kind="symbolic", replace=True)
    else:
        getattr(plan, how)(b, keep=a)
    report = apply_plan(plan)
    assert report.done == 0 and "one file" in report.failed[0]["error"]
    assert os.path.samefile(a, b) and not b.is_symlink() and sha(b) == sha(a)
    # and the duplicate finder's plan leaves such a member out (nothing to do)
    rep = DupesReport("exact", [Group(keep=str(a), reason="t", members=[Member(str(b), "exact", 1.0)])])
    assert len(plan_for(rep, "delete")) == 0


def test_a_symlink_is_never_a_keeper_nor_removed_as_a_copy_of_its_target(tmp_path):
    root = tmp_path / "S"
    root.mkdir()
    real = root / "IMG_0001_original.jpg"
    real.write_bytes(photo(0))
    (root / "a.jpg").symlink_to(real)
    (root / "hop.jpg").symlink_to(root / "a.jpg")  # a chain
    for keeper in ("a.jpg", "hop.jpg"):
        report = apply_plan(Plan([Op("delete", path=str(real), keep=str(root / keeper), keep_sha256=sha(real))]))
        assert report.done == 0 and "symbolic link" in report.failed[0]["error"]
    report = apply_plan(Plan([Op("delete", path=str(root / "a.jpg"), keep=str(real), keep_sha256=sha(real))]))
    assert report.done == 0 and "symbolic link to its keeper" in report.failed[0]["error"]
    assert real.is_file() and (root / "a.jpg").is_symlink()
    # plan_for leaves a group whose keeper is a symlink alone, with the reason
    rep = DupesReport("exact", [Group(keep=str(root / "a.jpg"), reason="t", members=[Member(str(real), "exact", 1)])])
    plan = plan_for(rep, "delete")
    assert len(plan) == 0 and "symbolic link" in plan.skipped[0]["reason"]


def test_fifos_are_never_opened(tmp_path):
    root = tmp_path / "S"
    a, b = pair(root)
    fifo = root / "clip.jpg"
    os.mkfifo(fifo)
    plan = Plan()
    plan.add(Op("delete", path=str(b), keep=str(fifo), keep_sha256="0" * 64))
    plan.add(Op("delete", path=str(fifo), keep=str(a), keep_sha256=sha(a)))
    report = apply_plan(plan)  # would hang forever reading the FIFO
    assert report.done == 0
    assert all("FIFO" in f["error"] for f in report.failed)
    assert b.exists() and fifo.exists()


# ----------------------------------------------------------------------------- one plan, operations in order
def test_two_removals_keeping_each_other_remove_only_one(tmp_path, run_cli):
    a, b = pair(tmp_path / "S")
    digest = sha(a)
    plan = Plan()
    plan.delete(b, keep=a)
    plan.delete(a, keep=b)  # its keeper is gone by then
    plan_file = write_plan(plan, tmp_path / "p.json")
    dry = apply_plan(plan_file, dry_run=True)  # the dry run says the same as the run
    assert [f["seq"] for f in dry.failed] == [1] and "earlier in this plan" in dry.failed[0]["error"]
    res = run_cli("apply", plan_file, "--json", check=False)
    assert res.returncode == 1
    data = res.json()
    assert data["done"] == 1 and [f["seq"] for f in data["failed"]] == [1]
    assert "no longer exists" in data["failed"][0]["error"]
    assert regular_copies(tmp_path / "S", digest) == [str(a)]


def test_two_runs_removing_each_others_keeper_at_once_remove_only_one(tmp_path):
    """Two processes, each checked its keeper before the other acted: the last check and the removal happen
    under one lock shared by every lookalike process, so the second sees its keeper gone."""
    a, b = pair(tmp_path / "S")
    digest = sha(a)
    files = []
    for n, (path, keep) in enumerate(((b, a), (a, b))):
        plan = Plan()
        plan.delete(path, keep=keep)
        files.append(write_plan(plan, tmp_path / f"p{n}.json"))
    code = "import sys; from lookalike.journal import apply_plan; r = apply_plan(sys.argv[1]); print(r.done)"
    env = {**os.environ, "PYTHONPATH": str(SRC)}
    procs = [subprocess.Popen(crash_points.command([f], delay=0.8, code=code), env=env, stdout=subprocess.PIPE,
                              text=True) for f in files]  # slowed down at every step point

    done = [int(p.communicate(timeout=60)[0]) for p in procs]
    assert sorted(done) == [0, 1]
    assert len(regular_copies(tmp_path / "S", digest)) == 1


def test_keeper_moved_or_replaced_earlier_in_the_same_plan(tmp_path):
    root = tmp_path / "S"
    a, b = pair(root, 0, ("a.jpg", "b.jpg"))
    c, d = pair(root, 1, ("c.jpg", "d.jpg"))
    e, f = pair(root, 2, ("e.jpg", "f.jpg"))
    other = root / "other.jpg"
    other.write_bytes(photo(3))
    plan = Plan()
    plan.move(a, root / "moved" / "a.jpg")
    plan.delete(b, keep=a)  # keeper moved away by the op before
    plan.link(c, other, kind="symbolic", replace=True)
    plan.delete(d, keep=c)  # keeper is now a symlink
    plan.link(e, other, kind="hard", replace=True)
    plan.delete(f, keep=e)  # keeper now holds another photo
    dry = apply_plan(plan, dry_run=True)  # the dry run knows what earlier operations move or make a symlink
    assert [x["seq"] for x in dry.failed] == [1, 3] and "earlier in this plan" in dry.failed[0]["error"]
    report = apply_plan(plan)
    errors = {x["seq"]: x["error"] for x in report.failed}
    assert report.done == 3 and set(errors) == {1, 3, 5}
    assert "no longer exists" in errors[1] and "symbolic link" in errors[3] and "changed" in errors[5]
    assert sha(b) == sha(root / "moved" / "a.jpg") and sha(d) != sha(other) and sha(f) != sha(other)
    assert undo(report.journal).ok


def test_no_plan_of_removals_removes_every_copy(tmp_path):
    """Random plans over copies of one photo (deletes, trashes, links, moves, each naming a random copy as keeper,
    right or wrong): a regular copy always survives, and undo brings everything back."""
    rng = random.Random(10)
    data = photo(0)
    digest = hashlib.sha256(data).hexdigest()
    for trial in range(25):
        root = tmp_path / f"t{trial}"
        root.mkdir()
        names = [root / f"c{i}.jpg" for i in range(4)]
        for p in names:
            p.write_bytes(data)
        plan = Plan()
        for _ in range(8):
            path, keep = rng.choice(names), rng.choice(names)
            kind = rng.choice(["delete", "trash", "hard", "symbolic", "move"])
            if kind == "move":
                plan.add(Op("move", src=str(path), dst=str(rng.choice(names))), hash_source=False)
            elif kind in ("hard", "symbolic"):
                plan.add(Op("link", path=str(path), target=str(keep), kind=kind, replace=True, keep=str(keep),
                            keep_sha256=digest), hash_source=False)
            else:
                plan.add(Op(kind, path=str(path), keep=str(keep), keep_sha256=digest), hash_source=False)
        before = sorted(os.listdir(root))
        report = apply_plan(plan)
        assert regular_copies(root, digest), (trial, [op.to_json() for op in plan], report.failed)
        assert undo(report.journal).ok
        assert sorted(os.listdir(root)) == before and all(sha(p) == digest and not p.is_symlink() for p in names)


# ----------------------------------------------------------------------------- case 7: lookalike's own folder
def test_lookalike_home_inside_the_searched_folder(tmp_path, run_cli):
    """The journal's kept copies are never acted on: the first clean-up stays undoable."""
    root = tmp_path / "S"
    a, a2 = pair(root, 0, ("a.jpg", "a copy.jpg"))
    c, c2 = pair(root, 1, ("c.jpg", "c copy.jpg"))
    before = {p: sha(p) for p in (a, a2, c, c2)}
    env = {"LOOKALIKE_HOME": str(root / "lookalike-data")}
    first = run_cli("dupes", root, "--tier", "exact", "--action", "delete", "--yes", "--json", env=env).json()
    assert first["apply"]["done"] == 2
    kept = sorted((Path(first["apply"]["journal"]) / "kept").iterdir())
    kept_sha = {p: sha(p) for p in kept}
    assert len(kept) == 2
    second = run_cli("dupes", root, "--tier", "exact", "--action", "delete", "--yes", "--json", env=env, check=False)
    data = second.json()
    assert all("lookalike-data" not in (op.get("path") or "") for op in data["apply"]["operations"])
    assert {p: sha(p) for p in kept} == kept_sha  # still there, untouched
    res = run_cli("undo", first["apply"]["id"], "--json", env=env).json()
    assert res["undone"] == 2 and res["problems"] == []
    assert {p: sha(p) for p in before} == before


def test_journal_folder_and_data_folder_are_off_limits(tmp_path, lookalike_home):
    root = tmp_path / "S"
    a, b = pair(root)
    first = apply_plan(Plan([Op("delete", path=str(b), keep=str(a), keep_sha256=sha(a))]))
    [kept] = (first.journal / "kept").iterdir()
    plan = Plan()
    plan.add(Op("delete", path=str(kept), keep=str(a), keep_sha256=sha(a)))  # a kept copy as a "duplicate"
    plan.add(Op("delete", path=str(kept)))  # even as lookalike's own file
    plan.move(kept, root / "out.jpg")
    plan.copy(kept, root / "copy.jpg")
    # the kept copy as keeper, directly or through a symlinked folder
    (root / "via").symlink_to(first.journal)
    plan.add(Op("delete", path=str(a), keep=str(kept), keep_sha256=sha(kept)))
    plan.add(Op("delete", path=str(a), keep=str(root / "via" / "kept" / kept.name), keep_sha256=sha(kept)))
    home_copy = lookalike_home / "x.jpg"
    home_copy.write_bytes(photo(0))
    plan.add(Op("delete", path=str(a), keep=str(home_copy), keep_sha256=sha(home_copy)))
    report = apply_plan(plan)
    assert report.done == 0 and len(report.failed) == 7
    assert all("journal folder" in f["error"] or "data folder" in f["error"] for f in report.failed), report.failed
    assert kept.exists() and a.exists() and not (root / "out.jpg").exists()
    assert undo(first.journal).ok and sha(b) == sha(a)


def test_data_folder_is_compared_after_resolving(tmp_path, monkeypatch):
    """LOOKALIKE_HOME given through a symlink: its files are still recognised by their real paths."""
    real = tmp_path / "real-home"
    real.mkdir()
    (tmp_path / "home-link").symlink_to(real)
    monkeypatch.setenv("LOOKALIKE_HOME", str(tmp_path / "home-link"))
    a, b = pair(tmp_path / "S")
    inside = real / "x.jpg"
    inside.write_bytes(photo(0))
    report = apply_plan(Plan([Op("delete", path=str(b), keep=str(inside), keep_sha256=sha(inside))]))
    assert report.done == 0 and "data folder" in report.failed[0]["error"]
    first = apply_plan(Plan([Op("delete", path=str(b), keep=str(a), keep_sha256=sha(a))]))
    [kept] = (real / "journals" / first.journal.name / "kept").iterdir()
    report = apply_plan(Plan([Op("move", src=str(kept), dst=str(tmp_path / "out.jpg"))]))
    assert report.done == 0 and "journal folder" in report.failed[0]["error"] and kept.exists()
    # a replacing link's keeper is its target, whatever a hand-edited plan says
    c = tmp_path / "S" / "c.jpg"
    c.write_bytes(photo(0))
    report = apply_plan(Plan([Op("link", path=str(c), target=str(a), kind="hard", replace=True,
                                 keep=str(tmp_path / "S" / "IMG_0001.jpg"), keep_sha256=sha(a))]))
    assert report.done == 1  # the same file, spelled the same way
    report = apply_plan(Plan([Op("link", path=str(a), target=str(c), kind="symbolic", replace=True,
                                 keep=str(inside), keep_sha256=sha(inside))]))
    assert report.done == 0 and "is its target" in report.failed[0]["error"]


def test_lookalike_own_files_need_no_keeper(tmp_path, lookalike_home):
    """Internal users (a face model being removed) delete inside the data folder without a keeper; a user's
    file without one is refused."""
    model = lookalike_home / "faces" / "m1"
    model.mkdir(parents=True)
    (model / "crop.jpg").write_bytes(photo(0))
    user = tmp_path / "mine.jpg"
    user.write_bytes(photo(1))
    plan = Plan()
    plan.delete(model / "crop.jpg")
    plan.delete(user)
    report = apply_plan(plan)
    assert report.done == 1 and report.failed[0]["seq"] == 1 and user.exists()
    assert not (model / "crop.jpg").exists()
    assert undo(report.journal).ok and (model / "crop.jpg").exists()


# ----------------------------------------------------------------------------- plan_for re-hashes
def test_plan_for_rehashes_what_it_groups(tmp_path):
    root = tmp_path / "S"
    k, m1 = pair(root, 0, ("k.jpg", "m1.jpg"))
    m2 = root / "m2.jpg"
    m2.write_bytes(photo(0))
    m3 = root / "m3.jpg"
    m3.write_bytes(photo(5))  # near-tier member: other bytes, same hash as when it was found
    digest = sha(k)
    group = Group(keep=str(k), reason="t", keep_sha256=digest, members=[
        Member(str(m1), "exact", 1.0, sha256=digest),
        Member(str(m2), "exact", 1.0),  # no hash from the search: still must equal the keeper's
        Member(str(m3), "near", 0.95, sha256=sha(m3)),
    ])
    rep = DupesReport("near", [group])
    m1.write_bytes(photo(1))  # content changed after the search, same path
    m2.write_bytes(photo(2))
    plan = plan_for(rep, "delete")
    assert [(op.path, op.keep, op.keep_sha256) for op in plan] == [(str(m3), str(k), digest)]
    reasons = {s["path"]: s["reason"] for s in plan.skipped}
    assert "changed since the duplicates were found" in reasons[str(m1)]
    assert "byte-identical" in reasons[str(m2)]
    group.keep_sha256 = "f" * 64  # the keeper changed since the search: the whole group is left out
    plan = plan_for(rep, "link")
    assert len(plan) == 0 and len(plan.skipped) == 3
    loaded = load_plan(write_plan(plan, tmp_path / "p.json"))
    assert loaded.skipped == plan.skipped


# ----------------------------------------------------------------------------- non-UTF-8 names
def test_non_utf8_names_round_trip_through_plan_journal_and_undo(tmp_path, run_cli):
    root = tmp_path / "S"
    root.mkdir()
    broot = os.fsencode(root)
    bad = os.fsdecode(os.path.join(broot, b"caf\xe9.jpg"))
    keeper = os.fsdecode(os.path.join(broot, b"orig\xff.jpg"))
    other = os.fsdecode(os.path.join(broot, b"b\xe9.jpg"))
    for p, n in ((bad, 0), (keeper, 0), (other, 0)):
        Path(p).write_bytes(photo(n))
    plan = Plan(description="caf\udce9")
    plan.delete(bad, keep=keeper)
    plan.link(other, keeper, kind="hard", replace=True)
    plan.rename(keeper, os.fsdecode(b"renamed\xe9.jpg"))
    plan_file = write_plan(plan, tmp_path / "p.json")
    text = plan_file.read_bytes().decode("utf-8")  # valid UTF-8, with \udcXX escapes
    assert "\\udce9" in text
    assert [op.to_json() for op in load_plan(plan_file)] == [op.to_json() for op in plan]
    res = run_cli("apply", plan_file, "--json").json()
    assert res["done"] == 3 and res["operations"][0]["path"] == bad and res["operations"][0]["keep"] == keeper
    assert sorted(os.listdir(broot)) == [b"b\xe9.jpg", b"renamed\xe9.jpg"]
    shown = run_cli("journal", "show", res["id"], "--json").json()
    assert [op.get("path") or op.get("src") for op in shown["operations"]] == [bad, other, keeper]
    assert run_cli("journal", "list", "--json").json()["journals"][0]["description"] == "caf\udce9"
    assert show_journal(res["id"])["operations"][0]["path"] == bad
    undone = run_cli("undo", "--json").json()
    assert undone["undone"] == 3 and undone["problems"] == []
    assert sorted(os.listdir(broot)) == sorted([b"caf\xe9.jpg", b"orig\xff.jpg", b"b\xe9.jpg"])
    assert sha(bad) == sha(keeper) == sha(other) and os.stat(other).st_ino != os.stat(keeper).st_ino


# ----------------------------------------------------------------------------- case 12: damage and exit status
def _damaged_variants(original: bytes) -> dict[str, bytes]:
    lines = original.split(b"\n")
    intended = json.loads(lines[1])
    assert intended["state"] == "intended"
    hostile = {**intended, "kept": "../../../../victim.jpg"}
    return {
        "junk": b"\n".join([lines[0], b"garbage{{", *lines[1:]]),
        "binary": b"\x00\xff\xfe\x80" * 64,
        "wrong shape": b"\n".join([lines[0], b"[1, 2, 3]", *lines[1:]]),
        "seq not a number": b"\n".join([lines[0], json.dumps({**intended, "seq": "x"}).encode(), *lines[2:]]),
        "kept outside": b"\n".join([lines[0], json.dumps(hostile).encode(), *lines[2:]]),
        "no header": b"\n".join(lines[1:]),
    }


def test_damaged_journal_gives_one_line_not_a_traceback(tmp_path, run_cli):
    a, b = pair(tmp_path / "S")
    report = apply_plan(Plan([Op("delete", path=str(b), keep=str(a), keep_sha256=sha(a))]))
    other = apply_plan(Plan([Op("mkdir", path=str(tmp_path / "made"))]))
    jf = report.journal / "journal.jsonl"
    original = jf.read_bytes()
    for n, (what, damaged) in enumerate(_damaged_variants(original).items()):
        jf.write_bytes(damaged)
        if n < 2:
            line = one_line_error(run_cli, "undo", report.id)
        else:
            with pytest.raises(UsageError) as err:
                undo(report.id)
            line = str(err.value)
        assert "damaged" in line and str(jf) in line, (what, line)
        if n == 0:
            one_line_error(run_cli, "journal", "show", report.id)
            listed = run_cli("journal", "list", "--json").json()["journals"]  # the others are still listed
            assert [(j["id"], j["status"]) for j in listed] == [(report.id, "damaged"), (other.id, "complete")]
        else:
            with pytest.raises(UsageError, match="damaged"):
                show_journal(report.id)
            assert [(j.id, j.status) for j in list_journals()] == [(report.id, "damaged"), (other.id, "complete")]
        assert not b.exists() and not (tmp_path / "victim.jpg").exists()
    # a last line torn by a crash is tolerated, as before
    jf.write_bytes(original + b'{"type": "op", "seq": 0, "sta')
    assert run_cli("undo", report.id, "--json").json()["undone"] == 1 and sha(b) == sha(a)


def test_damaged_plan_file_and_resume(tmp_path, run_cli):
    a, b = pair(tmp_path / "S")
    garbage = tmp_path / "garbage.json"
    garbage.write_bytes(b"\x89PNG\r\n\x1a\n\x00\x00")
    assert "not a plan" in one_line_error(run_cli, "apply", garbage)
    garbage.write_text('{"operations": [{"op": "delete", "path": 5}]}')
    assert "must be a string" in one_line_error(run_cli, "apply", garbage)
    plan = Plan()
    plan.delete(b, keep=a)
    plan.mkdir(tmp_path / "d")
    plan_file = write_plan(plan, tmp_path / "p.json")
    assert apply_in_subprocess(plan_file, "0:intended") == -signal.SIGKILL
    [info] = list_journals()
    (info.path / "plan.json").write_bytes(b"\x00garbage")
    line = one_line_error(run_cli, "apply", "--resume")
    assert "plan.json" in line
    assert run_cli("undo", "--json").json()["problems"] == []


def test_undo_with_nothing_to_undo_exits_1(tmp_path, run_cli):
    assert "no journal" in one_line_error(run_cli, "undo")
    empty = write_plan(Plan(description="nothing"), tmp_path / "empty.json")
    run_cli("apply", empty)
    res = run_cli("undo", check=False)
    assert res.returncode == 1 and "nothing to undo" in res.stderr
    a, b = pair(tmp_path / "S")
    plan = Plan()
    plan.delete(b, keep=a)
    run_cli("apply", write_plan(plan, tmp_path / "p.json"))
    assert run_cli("undo").returncode == 0 and b.exists()
    res = run_cli("undo", check=False)
    assert res.returncode == 1 and "already undone" in res.stderr


def test_dupes_action_that_changes_nothing_exits_1(tmp_path, run_cli):
    root = tmp_path / "S"
    pair(root, 0, ("a.jpg", "a copy.jpg"))
    pair(root, 1, ("c.jpg", "c copy.jpg"))
    before = sorted(os.listdir(root))
    if os.geteuid() == 0:  # root writes into read-only folders: a destination under a file cannot be made
        blocker = tmp_path / "blocker"
        blocker.write_text("a file, not a folder")
        dest = blocker / "dupes"
    else:
        dest = tmp_path / "readonly"
        dest.mkdir()
        dest.chmod(0o555)
    res = run_cli("dupes", root, "--tier", "exact", "--action", "move", "--dest", dest, check=False)
    assert res.returncode == 1, res.stdout
    assert "0 of 4 operations done" in res.stdout and "refused" in res.stderr
    assert sorted(os.listdir(root)) == before
    res = run_cli("dupes", root, "--tier", "exact", "--action", "move", "--dest", dest, "--dry-run", check=False)
    assert res.returncode == 1
