"""Mutating routes with --allow-changes: apply a journal plan (trash), undo it; refusals."""

from __future__ import annotations

import hashlib

import pytest

from conftest import shared_data
from lookalike.client import ServiceError
from service_util import Server, copy_photos, ukbench


@pytest.fixture(scope="module")
def csvc(tmp_path_factory):
    base = tmp_path_factory.mktemp("changes")
    root = base / "root"
    copy_photos(shared_data("photos"), root, [ukbench(i) for i in range(3)])
    outside = base / "outside"
    copy_photos(shared_data("photos"), outside, [ukbench(5)])
    server = Server(base, "--root", str(root), "--allow-changes")
    server.root, server.outside = root, outside
    yield server
    server.stop()


def sha(p):
    return hashlib.sha256(p.read_bytes()).hexdigest()


def test_apply_trash_then_undo(csvc):
    c = csvc.client()
    victim = csvc.root / ukbench(1)
    digest = sha(victim)
    keeper = csvc.root / ukbench(0)  # a removal names its keeper (the journal checks it before acting)
    plan = {"description": "service test", "operations": [{"op": "trash", "path": str(victim), "keep": str(keeper),
                                                             "keep_sha256": sha(keeper)}]}
    dry = c.apply(plan, dry_run=True)
    assert dry["dry_run"] is True and victim.exists()
    rep = c.apply(plan)
    assert rep["done"] == 1 and rep["failed"] == [] and rep["id"]
    assert not victim.exists()
    trashed = list((csvc.xdg / "Trash" / "files").iterdir())
    assert [sha(p) for p in trashed] == [digest]
    undone = c.undo(rep["id"])
    assert undone["undone"] == 1 and undone["problems"] == []
    assert victim.exists() and sha(victim) == digest


def test_plan_outside_the_roots_is_refused(csvc):
    c = csvc.client()
    for op in ({"op": "trash", "path": str(csvc.outside / ukbench(5))},
               {"op": "move", "src": str(csvc.root / ukbench(0)), "dst": str(csvc.outside / "x.jpg")},
               {"op": "move", "src": str(csvc.root / ukbench(0)), "dst": str(csvc.root / ".." / "x.jpg")}):
        with pytest.raises(ServiceError) as err:
            c.apply({"operations": [op]})
        assert err.value.status == 403
    assert (csvc.outside / ukbench(5)).exists() and (csvc.root / ukbench(0)).exists()


def test_bad_plans_and_journals(csvc):
    c = csvc.client()
    for body in ({}, {"plan": "nope"}, {"plan": {"operations": []}}):
        with pytest.raises(ServiceError) as err:
            c.request("POST", "/v1/plans/apply", json=body, idempotent=False)
        assert err.value.status in (400, 422)
    with pytest.raises(ServiceError) as err:
        c.undo("../../etc")
    assert err.value.status == 400
    with pytest.raises(ServiceError) as err:
        c.undo("no-such-journal")
    assert err.value.status == 404


def test_dupes_job_matches_the_cli_and_plans_follow_the_review(csvc):
    import shutil

    folder = csvc.root / "dupes"
    folder.mkdir()
    shutil.copy(csvc.root / ukbench(0), folder / "a.jpg")
    shutil.copy(csvc.root / ukbench(0), folder / "b.jpg")
    shutil.copy(csvc.root / ukbench(2), folder / "c.jpg")
    c = csvc.client()
    job = c.dupes(str(folder), tier="exact")
    final = c.wait(job["id"], timeout=120)
    assert final["state"] == "done", final
    cli = csvc.cli("dupes", str(folder), "--tier", "exact", "--json")
    import json

    assert final["result"] == json.loads(cli.stdout)
    (group,) = final["result"]["groups"]
    keep, dup = group["keep"], group["members"][0]["path"]
    # review: swap the keeper; the plan trashes the former keeper
    plan = c.request("POST", "/v1/dupes/plan", json={"job": job["id"], "action": "trash",
                                                    "groups": [{"keep": dup, "members": [keep]}]})
    assert plan["operations"] == 1
    assert [(op["op"], op["path"]) for op in plan["plan"]["operations"]] == [("trash", keep)]
    # a file from outside the group, or the keeper listed as a member, is refused
    for groups in ([{"keep": keep, "members": [str(folder / "c.jpg")]}], [{"keep": keep, "members": [keep]}]):
        with pytest.raises(ServiceError) as err:
            c.request("POST", "/v1/dupes/plan", json={"job": job["id"], "groups": groups})
        assert err.value.status == 400
    with pytest.raises(ServiceError) as err:
        c.request("POST", "/v1/dupes/plan", json={"job": "0" * 32, "groups": []})
    assert err.value.status == 404


def test_undo_without_a_journal_steps_back_one_run_at_a_time(csvc):
    """/v1/undo with no journal picks the run as `lookalike undo` does (journal.latest_to_undo): the newest one
    not yet undone, so calling it again steps back instead of repeating the undone one."""
    c = csvc.client()
    folder = csvc.root / "steps"
    copy_photos(shared_data("photos"), folder, [ukbench(0), ukbench(1)])
    ids = []
    for i, name in enumerate((ukbench(0), ukbench(1))):
        op = {"op": "rename", "src": str(folder / name), "dst": str(folder / f"step{i}.jpg")}
        ids.append(c.apply({"description": f"step {i}", "operations": [op]})["id"])
    first, second = c.undo(), c.undo()
    assert (first["id"], second["id"]) == (ids[1], ids[0])
    assert first["undone"] == second["undone"] == 1
    assert sorted(p.name for p in folder.iterdir()) == [ukbench(0), ukbench(1)]


def test_a_reviewed_plan_never_acts_on_a_keep_in_file(csvc):
    """The review is rebuilt by dupes.reviewed_report from the job's result and its review_state: a file under
    --keep-in stays untouched even when the reviewer ticks it (main rebuilt the report without it and trashed it)."""
    import shutil

    folder = csvc.root / "keepin"
    (folder / "safe").mkdir(parents=True)
    shutil.copy(csvc.root / ukbench(0), folder / "safe" / "a.jpg")
    shutil.copy(csvc.root / ukbench(0), folder / "b.jpg")
    c = csvc.client()
    job = c.dupes(str(folder), tier="exact", keep_in=[str(folder / "safe")])
    final = c.wait(job["id"], timeout=120)
    assert final["state"] == "done", final
    (group,) = final["result"]["groups"]
    assert group["keep"] == str(folder / "safe" / "a.jpg")
    # the reviewer makes b the keeper and ticks the --keep-in file: nothing to do, it is left alone
    plan = c.request("POST", "/v1/dupes/plan", json={"job": job["id"], "action": "trash",
                                                    "groups": [{"keep": str(folder / "b.jpg"),
                                                                "members": [group["keep"]]}]})
    assert plan["operations"] == 0, plan
