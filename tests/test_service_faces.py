"""Face routes and the klik face servers, over a real service with --allow-changes."""

from __future__ import annotations

import io
import json
import shutil
import time
from urllib.parse import quote_plus

import httpx
import numpy as np
import pytest
from PIL import Image

from conftest import shared_data
from lookalike.client import ServiceError
from service_util import Server, ukbench

PEOPLE = ("Tom_Hanks", "Will_Smith")


@pytest.fixture(scope="module")
def fsvc(tmp_path_factory):
    base = tmp_path_factory.mktemp("faces")
    celeb = shared_data("faces", "celebrity")
    root = base / "root"
    for person in PEOPLE:
        (root / "train" / person).mkdir(parents=True)
        for f in sorted((celeb / person).glob("*.jpg"))[:2]:
            shutil.copy(f, root / "train" / person / f.name)
    (root / "query").mkdir()
    query = sorted((celeb / PEOPLE[0]).glob("*.jpg"))[10]
    shutil.copy(query, root / "query" / "q.jpg")
    shutil.copy(shared_data("photos", ukbench(0)), root / "query" / "object.jpg")
    server = Server(base, "--root", str(root), "--allow-changes", "--klik", token="faces-token-1")
    server.root = root
    yield server
    server.stop()


def test_detect_upload_and_path(fsvc):
    c = fsvc.client()
    by_path = c.faces_detect(path=str(fsvc.root / "query" / "q.jpg"))
    assert len(by_path["faces"]) >= 1
    face = by_path["faces"][0]
    assert len(face["box"]) == 4 and face["score"] > 0
    up = c.faces_detect(upload=fsvc.root / "query" / "q.jpg")
    assert up["query"] == "<upload>" and up["faces"] == by_path["faces"]
    assert c.faces_detect(path=str(fsvc.root / "query" / "object.jpg"))["faces"] == []


def test_train_job_models_and_recognize(fsvc):
    c = fsvc.client()
    job = c.faces_train(str(fsvc.root / "train"), "people")
    assert job["kind"] == "faces-train"
    final = c.wait(job["id"], timeout=120)
    assert final["state"] == "done", final
    models = c.faces_models()
    assert "people" in models["models"]
    assert c.faces_use("people") == {"active": "people"}
    assert c.faces_models()["active"] == "people"
    res = c.faces_recognize(path=str(fsvc.root / "query" / "q.jpg"), k=3)
    assert res["faces"], res
    with pytest.raises(ServiceError) as err:
        c.faces_use("nobody-here")
    assert err.value.status == 400


def _klik_file(fsvc, klik_type):
    folder = fsvc.user_home / ".klikr" / ".privacy_screen" / "face_recognition_server_registry"
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        for f in folder.glob(f"{klik_type}_*.json"):
            return json.loads(f.read_text())
        time.sleep(0.1)
    raise AssertionError(f"no registry file for {klik_type}")


@pytest.mark.parametrize("klik_type", ["MTCNN", "Haar_default", "Haar_alt1", "Haar_alt2", "Haar_tree"])
def test_klik_face_detection_returns_a_png_crop(fsvc, klik_type):
    reg = _klik_file(fsvc, klik_type)
    base = f"http://127.0.0.1:{reg['port']}"
    h = httpx.get(base + "/health", timeout=10).json()
    assert h["type"] == klik_type and h["status"] == "healthy" and h["port"] == reg["port"]
    assert httpx.get(base + "/" + quote_plus(str(fsvc.root / "query" / "q.jpg")), timeout=60).status_code == 401
    r = httpx.get(base + "/" + quote_plus(str(fsvc.root / "query" / "q.jpg")), headers=fsvc.headers, timeout=60)
    assert r.status_code == 200 and r.headers["content-type"] == "image/png"
    crop = Image.open(io.BytesIO(r.content))
    assert crop.format == "PNG" and 20 < crop.width < 400
    r = httpx.get(base + "/" + quote_plus(str(fsvc.root / "query" / "object.jpg")), headers=fsvc.headers, timeout=60)
    assert r.status_code == 404 and r.json()["error"]["code"] == "no_face"


def test_klik_facenet_embeds_a_face_crop(fsvc):
    det = _klik_file(fsvc, "MTCNN")
    crop = httpx.get(f"http://127.0.0.1:{det['port']}/" + quote_plus(str(fsvc.root / "query" / "q.jpg")),
                     headers=fsvc.headers, timeout=60)
    (fsvc.root / "query" / "crop.png").write_bytes(crop.content)
    reg = _klik_file(fsvc, "FaceNet")
    r = httpx.get(f"http://127.0.0.1:{reg['port']}/" + quote_plus(str(fsvc.root / "query" / "crop.png")),
                  headers=fsvc.headers, timeout=60)
    assert r.status_code == 200, r.text
    v = np.array(r.json()["features"])
    assert v.ndim == 1 and len(v) >= 64 and np.isfinite(v).all()
