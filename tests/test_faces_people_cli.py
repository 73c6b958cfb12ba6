"""`lookalike faces people FOLDER` (issue 13): the faces of a folder grouped by person from the command line,
over the same library call as the service's /v1/faces/people job (its --json is that job's result), and
`--name GROUP=LABEL` naming a group as the People view does. Real photos, real dlib models."""

from __future__ import annotations

import json
import shutil

import pytest

from conftest import shared_data

pytest.importorskip("dlib")

PEOPLE = ["Brad_Pitt", "Tom_Hanks", "Natalie_Portman"]


def test_faces_people_json_is_the_service_jobs_result_and_naming_shows_again(tmp_path):
    from service_util import Server

    album = tmp_path / "root" / "album"
    album.mkdir(parents=True)
    for person in PEOPLE:
        for p in sorted(shared_data("faces", "celebrity", person).glob("*.jpg"))[:3]:
            shutil.copy(p, album / f"{person}-{p.name}")
    server = Server(tmp_path, "--root", str(tmp_path / "root"), token="faces-people-cli")
    try:
        client = server.client()
        job = client.request("POST", "/v1/faces/people", json={"folder": str(album)}, idempotent=False)
        done = client.wait(job["id"], timeout=600)
        assert done["state"] == "done", done
        cli = json.loads(server.cli("faces", "people", str(album), "--json").stdout)
        assert cli == done["result"] and cli["groups"]  # the same grouping, the same JSON

        text = server.cli("faces", "people", str(album)).stdout
        first = cli["groups"][0]
        assert f"{first['id']}: {first['size']} faces" in text

        # naming: checked before any photo is read, then the group's faces join the model
        for bad, says in ((["--name", "person-001"], "GROUP=LABEL"), (["--name", "person-001=unknown"], "bad name"),
                          (["--threshold", "3"], "--threshold"), (["--name", "person-001=A"], "needs a face model")):
            res = server.cli("faces", "people", str(album), *bad, check=False)
            assert res.returncode == 1 and says in res.stderr, res.stderr
        missing = server.cli("faces", "people", str(album), "--model", "friends", "--name", "person-999=A",
                             check=False)
        assert missing.returncode == 1 and "no group 'person-999'" in missing.stderr
        named = server.cli("faces", "people", str(album), "--model", "friends", "--name", f"{first['id']}=Ada L",
                           "--json")
        assert f"{first['id']} named Ada L: {first['size']} faces added to face model friends" in named.stderr
        grouped = json.loads(named.stdout)
        assert grouped["model"] == "friends" and grouped["groups"][0]["label"] == "Ada L"
        # grouping the folder again (the service's job too) shows the name given
        again = json.loads(server.cli("faces", "people", str(album), "--model", "friends", "--json").stdout)
        assert [g["label"] for g in again["groups"] if g["id"] == first["id"]] == ["Ada L"]
        job = client.request("POST", "/v1/faces/people", json={"folder": str(album), "model": "friends"},
                             idempotent=False)
        assert client.wait(job["id"], timeout=600)["result"] == again
    finally:
        server.stop()
