"""For every command both front ends offer, the CLI's ``--json`` and the HTTP route's JSON are equal on the
same input (issue 14: the CLI and the service only parse, call one library function and format its result).

Each test runs ``python -m lookalike CMD ... --json`` (a subprocess, in the service's environment but with a
catalog of its own, so both sides compute everything themselves) and the matching route of a real
``lookalike serve`` on loopback, on the same files, and compares the two JSON values. Hash models
(``phash``) and the ``exact`` tier keep it fast. What honestly differs is normalised, and only that:

* ``seconds`` of an index run: a timing (:func:`without_timing`);
* a journal's id and folder in apply and undo reports: each run gets its own, named after its start time
  (:func:`without_journal`).

Not compared, because one front end does not offer them: ``faces who``/``faces cluster``/``journal list``
(no route), ``/v1/embed``, ``/v1/thumb``, ``/v1/browse`` (no command).
"""

from __future__ import annotations

import hashlib
import json
import shutil

import httpx
import pytest

from conftest import shared_data
from service_util import Server, copy_photos, ukbench

PEOPLE = ("Tom_Hanks", "Will_Smith")


@pytest.fixture(scope="module")
def svc(tmp_path_factory):
    base = tmp_path_factory.mktemp("parity").resolve()
    root = base / "root"
    photos = copy_photos(shared_data("photos"), root / "photos", [ukbench(i) for i in range(8)])
    shutil.copy(photos[0], root / "photos" / "copy_of_0.jpg")  # an exact duplicate
    copy_photos(shared_data("photos"), root / "index", [ukbench(i) for i in range(10, 13)])
    copy_photos(shared_data("photos"), root / "journal", [ukbench(20), ukbench(21)])
    celeb = shared_data("faces", "celebrity")
    for person in PEOPLE:
        (root / "faces" / "train" / person).mkdir(parents=True)
        for f in sorted((celeb / person).glob("*.jpg"))[:2]:
            shutil.copy(f, root / "faces" / "train" / person / f.name)
    (root / "faces" / "query").mkdir()
    shutil.copy(sorted((celeb / PEOPLE[0]).glob("*.jpg"))[10], root / "faces" / "query" / "q.jpg")
    server = Server(base, "--root", str(root), "--allow-changes")
    server.root = root
    server.cli_catalog = str(base / "cli-catalog.sqlite")
    yield server
    server.stop()


def cli_json(svc: Server, *args: str, catalog: bool = True):
    """``lookalike ARGS --json`` (with the CLI's own catalog where the command takes one), parsed."""
    extra = ["--catalog", svc.cli_catalog] if catalog else []
    proc = svc.cli(*args, *extra, "--json")
    return json.loads(proc.stdout)


def http_json(svc: Server, method: str, path: str, body: dict | None = None):
    """The route's JSON; a job's result once it is done."""
    r = httpx.request(method, svc.url + path, json=body, headers=svc.headers, timeout=300)
    assert r.status_code in (200, 202), (path, r.status_code, r.text)
    out = r.json()
    if r.status_code == 202:
        done = svc.client().wait(out["id"], timeout=300)
        assert done["state"] == "done", done
        return done["result"]
    return out


def without_timing(report: dict) -> dict:
    """An index report without its ``seconds`` (how long the run took differs between any two runs)."""
    return {k: v for k, v in report.items() if k != "seconds"}


def without_journal(value, journal: str, journal_id: str):
    """``value`` with the run's journal folder and id replaced by placeholders (every run has its own)."""
    text = json.dumps(value).replace(json.dumps(journal)[1:-1], "<journal>").replace(journal_id, "<id>")
    return json.loads(text)


def test_index(svc):
    folder = str(svc.root / "index")
    cli = cli_json(svc, "index", folder, "--model", "phash")
    http = http_json(svc, "POST", "/v1/index", {"folder": folder, "model": "phash"})
    assert cli["new"] == 3 and cli["failed"] == []
    assert without_timing(cli) == without_timing(http)


def test_similar_in_a_folder(svc):
    folder, query = svc.root / "photos", svc.root / "photos" / ukbench(1)
    cli = cli_json(svc, "similar", str(query), "--in", str(folder), "-k", "4", "--model", "phash")
    http = http_json(svc, "POST", "/v1/similar", {"path": str(query), "folder": str(folder), "k": 4, "model": "phash"})
    assert len(cli["results"]) == 4
    assert cli == http


def test_dupes_and_the_plan_of_a_review_that_keeps_the_search_s_choice(svc, tmp_path):
    folder = str(svc.root / "photos")
    cli = cli_json(svc, "dupes", folder, "--tier", "exact")
    job = httpx.post(svc.url + "/v1/dupes", json={"folder": folder, "tier": "exact"}, headers=svc.headers,
                     timeout=60).json()
    http = svc.client().wait(job["id"], timeout=300)["result"]
    assert len(cli["groups"]) == 1
    assert cli == http
    # the plan for the groups as found equals `dupes --action trash --plan FILE`
    plan_file = tmp_path / "plan.json"
    svc.cli("dupes", folder, "--tier", "exact", "--action", "trash", "--plan", str(plan_file),
            "--catalog", svc.cli_catalog)
    reviewed = [{"keep": g["keep"], "members": [m["path"] for m in g["members"]]} for g in http["groups"]]
    planned = http_json(svc, "POST", "/v1/dupes/plan", {"job": job["id"], "action": "trash", "groups": reviewed})
    assert planned["plan"] == json.loads(plan_file.read_text())


def test_sort(svc):
    folder = str(svc.root / "photos")
    cli = cli_json(svc, "sort", folder, "--model", "phash")
    http = http_json(svc, "POST", "/v1/sort", {"folder": folder, "model": "phash"})
    assert len(cli["order"]) == 9
    assert cli == http


def test_cluster(svc):
    folder = str(svc.root / "photos")
    cli = cli_json(svc, "cluster", folder, "--model", "phash", "--sim", "0.7", "--min-size", "2")
    http = http_json(svc, "POST", "/v1/cluster", {"folder": folder, "model": "phash", "sim": 0.7, "min_size": 2})
    assert cli["clusters"]
    assert cli == http


def test_models_list(svc):
    cli = cli_json(svc, "models", "list", catalog=False)
    http = http_json(svc, "GET", "/v1/models")
    assert {m["name"] for m in cli} >= {"effnet", "phash"}
    assert cli == http


def test_faces_detect_and_recognize(svc):
    query = str(svc.root / "faces" / "query" / "q.jpg")
    cli = cli_json(svc, "faces", "detect", query, catalog=False)
    http = http_json(svc, "POST", "/v1/faces/detect", {"path": query})
    assert len(cli["faces"]) >= 1
    assert cli == http
    svc.cli("faces", "train", str(svc.root / "faces" / "train"), "--model", "people", "--catalog", svc.cli_catalog)
    cli = cli_json(svc, "faces", "recognize", query, "-k", "3")
    http = http_json(svc, "POST", "/v1/faces/recognize", {"path": query, "k": 3})
    assert cli["faces"] and len(cli["faces"][0]["candidates"]) == 3
    assert cli == http


def test_apply_and_undo(svc, tmp_path):
    victim, keeper = svc.root / "journal" / ukbench(21), svc.root / "journal" / ukbench(20)
    digest = hashlib.sha256(victim.read_bytes()).hexdigest()
    plan = {"description": "parity", "operations": [
        {"op": "trash", "path": str(victim), "keep": str(keeper),
         "keep_sha256": hashlib.sha256(keeper.read_bytes()).hexdigest()}]}
    plan_file = tmp_path / "plan.json"
    plan_file.write_text(json.dumps(plan))
    reports = []
    for front in ("cli", "http"):  # the same plan on the same file, restored by the undo in between
        if front == "cli":
            applied = cli_json(svc, "apply", str(plan_file), catalog=False)
            undone = cli_json(svc, "undo", catalog=False)  # the newest run not yet undone
        else:
            applied = http_json(svc, "POST", "/v1/plans/apply", {"plan": plan})
            undone = http_json(svc, "POST", "/v1/undo", {})
        assert applied["done"] == 1 and undone["undone"] == 1 and undone["id"] == applied["id"]
        assert hashlib.sha256(victim.read_bytes()).hexdigest() == digest
        reports.append([without_journal(r, applied["journal"], applied["id"]) for r in (applied, undone)])
    assert reports[0] == reports[1]
