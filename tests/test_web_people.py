"""The web app's People view, end to end in headless Chromium on real face photos (three people, three
photos each): the faces of a folder grouped by person, a group named (its faces become examples of a face
model, as `lookalike faces name`), two groups merged, a wrong face moved out (and out of the model), the
names shown again when the folder is grouped again; and the same routes refused without --allow-changes."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import httpx
import pytest

from conftest import shared_data
from service_util import BROWSER_MARKS, Server
from web_util import images_loaded, open_app, shot

pytest.importorskip("dlib")
pytestmark = BROWSER_MARKS

PEOPLE = ["Brad_Pitt", "Tom_Hanks", "Natalie_Portman"]


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    base = tmp_path_factory.mktemp("web-people")
    album = base / "root" / "party"
    album.mkdir(parents=True)
    for person in PEOPLE:
        for p in sorted(shared_data("faces", "celebrity", person).glob("*.jpg"))[:3]:
            shutil.copy(p, album / f"{person}-{p.name}")
    server = Server(base, "--root", str(base / "root"), "--allow-changes", token="web-people-token")
    yield server, album
    server.stop()


def person_of(path: str) -> str:
    return Path(path).name.rsplit("-", 1)[0]


def groups_now(page) -> list[dict]:
    return page.locator("[data-testid=people] .group.person").evaluate_all(
        "els => els.map(e => ({id: e.dataset.group, title: e.querySelector('.person-title').textContent,"
        " paths: [...e.querySelectorAll('.face')].map(f => f.dataset.path)}))")


def prototypes(server) -> list[dict]:
    return json.loads((server.home / "faces" / "people" / "prototypes.json").read_text())


def run_grouping(page) -> None:
    from playwright.sync_api import expect

    page.click("[data-testid=run-people]")
    expect(page.locator("[data-testid=people] .group.person").first).to_be_visible(timeout=120_000)
    images_loaded(page, "[data-testid=people]")


def test_people_group_name_merge_move_out(site, page, tmp_path):
    from playwright.sync_api import expect

    server, album = site
    open_app(page, server, folder=album, tab="people")
    run_grouping(page)
    groups = groups_now(page)
    # the faces grouped by person: three groups, each one person's; a face the grouping was unsure of
    # is on its own (here one of Tom Hanks's, at dlib's default distance)
    assert len(groups) == 3
    assert all(len({person_of(p) for p in g["paths"]}) == 1 for g in groups), groups
    expect(page.locator("[data-testid=people-summary]")).to_contain_text("3 people (0 named)")
    alone = page.locator("[data-testid=alone] .face").evaluate_all("els => els.map(e => e.dataset.path)")
    assert sum(len(g["paths"]) for g in groups) + len(alone) == 9
    shot(page, tmp_path, "web-people")
    # a face on its own joins the person it is ("this is…")
    for path in alone:
        home = next(g for g in groups if person_of(g["paths"][0]) == person_of(path))
        page.locator(f"[data-testid=alone] .face[data-path='{path}'] [data-testid=move-to]").select_option(home["id"])
        expect(page.locator(f".group[data-group='{home['id']}'] .face[data-path='{path}']")).to_have_count(1)
    expect(page.locator("[data-testid=alone]")).to_have_count(0)
    groups = groups_now(page)
    assert sorted(len(g["paths"]) for g in groups) == [3, 3, 3]
    # each face is a crop of its photo, not the whole photo
    sizes = page.eval_on_selector_all("[data-testid=people] .face img",
                                      "els => els.map(i => [i.naturalWidth, i.naturalHeight])")
    assert all(0 < max(w, h) <= 128 for w, h in sizes)

    # name a group: the face model learns that person from its three faces
    tom = next(g for g in groups if person_of(g["paths"][0]) == "Tom_Hanks")
    box = page.locator(f"[data-testid=people] .group[data-group='{tom['id']}']")
    box.locator(".person-name").fill("Tom Hanks")
    box.locator(".person-name").press("Enter")
    status = page.locator("[data-testid=status]")
    expect(status).to_contain_text("Tom Hanks: 3 faces learnt by the face model people", timeout=60_000)
    expect(box.locator(".person-title")).to_have_text("Tom Hanks · 3 faces")
    assert sorted(person_of(p["source"]) for p in prototypes(server)) == ["Tom_Hanks"] * 3
    assert {p["label"] for p in prototypes(server)} == {"Tom Hanks"}

    # merge the two other groups (tick both), then move the wrong faces out of the merged one
    others = [g for g in groups if g["id"] != tom["id"]]
    for g in others:
        page.locator(f"[data-testid=people] .group[data-group='{g['id']}'] input.pick").check()
    merge = page.locator("[data-testid=merge-people]")
    expect(merge).to_be_enabled()
    merge.click()
    expect(page.locator("[data-testid=people] .group.person")).to_have_count(2)
    merged = next(g for g in groups_now(page) if g["id"] == others[0]["id"])
    assert sorted(merged["paths"]) == sorted(others[0]["paths"] + others[1]["paths"])
    expect(status).to_contain_text("Merged: the group now has 6 faces")
    wrong = others[1]["paths"][0]
    page.locator(f"[data-testid=people] .group[data-group='{merged['id']}'] .face[data-path='{wrong}'] "
                 "[data-testid=move-out]").click()
    expect(page.locator("[data-testid=alone] .face")).to_have_count(1)
    expect(page.locator("[data-testid=alone] .face")).to_have_attribute("data-path", wrong)
    expect(page.locator(f"[data-testid=people] .group[data-group='{merged['id']}'] .face")).to_have_count(5)
    # a face of the named group moved out: the model forgets it (recognition no longer takes it for Tom)
    out = tom["paths"][1]
    box.locator(f".face[data-path='{out}'] [data-testid=move-out]").click()
    expect(box.locator(".face")).to_have_count(2)
    expect(page.locator("[data-testid=alone] .face")).to_have_count(2)
    assert sorted(p["source"] for p in prototypes(server)) == sorted(set(tom["paths"]) - {out})
    shot(page, tmp_path, "web-people-named", docs=True)

    # grouping the folder again shows the name given before
    page.reload()
    page.wait_for_selector("body[data-ready='1']", timeout=30_000)
    page.fill("[data-testid=folder]", str(album))
    page.click("[data-testid=tab-people]")
    expect(page.locator("[data-testid=face-model]")).to_have_value("people")
    run_grouping(page)
    titles = [g["title"] for g in groups_now(page) if set(g["paths"]) & set(tom["paths"])]
    assert titles and titles[0].startswith("Tom Hanks · ")
    expect(page.locator("[data-testid=people-summary]")).to_contain_text("names from the face model people")
    assert page.errors == []


def test_people_routes_confined_and_refused_read_only(site, tmp_path):
    """Hostile requests: a grouping naming a photo outside the roots is refused; a bad box, a bad label;
    and without --allow-changes naming and moving answer 403 (merging, which changes nothing, works)."""
    server, album = site
    photo, other = (str(p) for p in sorted(album.iterdir())[:2])
    inside = {"groups": [{"id": "person-001", "faces": [{"path": photo, "box": [10, 10, 60, 60]}]},
                         {"id": "person-002", "faces": [{"path": other, "box": [1, 1, 9, 9]}]}]}
    outside = {"groups": [{"id": "person-001", "faces": [{"path": "/etc/hostname", "box": [0, 0, 5, 5]}]}]}
    h = server.headers
    r = httpx.post(f"{server.url}/v1/faces/people/name", headers=h, timeout=30,
                   json={"people": outside, "group": "person-001", "label": "x", "model": "people"})
    assert r.status_code == 403, r.text
    r = httpx.post(f"{server.url}/v1/faces/people/name", headers=h, timeout=30,
                   json={"people": inside, "group": "person-001", "label": "unknown", "model": "people"})
    assert r.status_code == 400 and "bad name" in r.text
    r = httpx.post(f"{server.url}/v1/faces/people/move", headers=h, timeout=30,
                   json={"people": inside, "face": {"path": photo, "box": [60, 60, 10, 10]}})
    assert r.status_code == 400
    r = httpx.get(f"{server.url}/v1/faces/crop", headers=h, params={"path": "/etc/hostname", "box": "0,0,5,5"})
    assert r.status_code == 403
    # a face distance out of range: refused at request time by the one check the CLI uses (at most 1.5)
    r = httpx.post(f"{server.url}/v1/faces/people", headers=h, timeout=30,
                   json={"folder": str(album), "threshold": 1.8})
    assert r.status_code == 400 and "1.5" in r.text, r.text
    r = httpx.get(f"{server.url}/v1/photo", headers=h, params={"path": str(album / ".." / ".." / "x")})
    assert r.status_code == 403

    locked = Server(tmp_path, "--root", str(album.parent), token="web-people-locked")
    try:
        for route, body in (("name", {"people": inside, "group": "person-001", "label": "A", "model": "m"}),
                            ("move", {"people": inside, "face": inside["groups"][0]["faces"][0]})):
            r = httpx.post(f"{locked.url}/v1/faces/people/{route}", headers=locked.headers, json=body, timeout=30)
            assert r.status_code == 403 and r.json()["error"]["code"] == "changes_disabled", r.text
        r = httpx.post(f"{locked.url}/v1/faces/people/merge", headers=locked.headers, timeout=30,
                       json={"people": inside, "into": "person-001", "other": "person-002"})
        assert r.status_code == 200, r.text
        assert [g["size"] for g in r.json()["groups"]] == [2]
    finally:
        locked.stop()
