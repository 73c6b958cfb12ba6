"""The klikr desktop app's protocol: registry files, /health, GET /<URL-encoded path> -> features."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from urllib.parse import quote_plus

import httpx
import numpy as np
import pytest

from conftest import needs_effnet, shared_data
from service_util import Server, copy_photos, ukbench

pytestmark = needs_effnet


def registry(server, kind="image_similarity_server_registry"):
    return server.user_home / ".klikr" / ".privacy_screen" / kind


@pytest.fixture(scope="module")
def klik(tmp_path_factory):
    base = tmp_path_factory.mktemp("klik")
    root = base / "root"
    copy_photos(shared_data("photos"), root, [ukbench(i) for i in range(4)])
    (root / "été + space.jpg").write_bytes((root / ukbench(1)).read_bytes())
    outside = base / "outside"
    copy_photos(shared_data("photos"), outside, [ukbench(9)])
    # registry files left behind: one by a dead lookalike (removed at start), one by another server (kept)
    reg = base / "user-home" / ".klikr" / ".privacy_screen" / "image_similarity_server_registry"
    reg.mkdir(parents=True)
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    (reg / "MobileNet_dead.json").write_text(json.dumps(
        {"type": "MobileNet", "port": 1, "uuid": "dead", "server": "lookalike", "pid": dead.pid}))
    (reg / "MobileNet_other.json").write_text(json.dumps({"type": "MobileNet", "port": 2, "uuid": "other"}))
    server = Server(base, "--root", str(root), "--klik", token=None)
    server.root, server.outside = root, outside
    yield server
    server.stop()


def our_files(server):
    import time

    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        files = [f for f in registry(server).glob("*.json") if json.loads(f.read_text()).get("server") == "lookalike"]
        if files:
            return files
        time.sleep(0.1)
    return []


def test_registry_files_written_and_stale_ones_removed(klik):
    files = our_files(klik)
    assert len(files) == 1
    data = json.loads(files[0].read_text())
    assert data["type"] == "MobileNet" and files[0].name == f"MobileNet_{data['uuid']}.json"
    assert isinstance(data["port"], int) and data["port"] != klik.port
    assert not (registry(klik) / "MobileNet_dead.json").exists()
    assert (registry(klik) / "MobileNet_other.json").exists()


def test_health(klik):
    data = json.loads(our_files(klik)[0].read_text())
    r = httpx.get(f"http://127.0.0.1:{data['port']}/health", timeout=10)
    assert r.status_code == 200
    h = r.json()
    assert h["type"] == "MobileNet" and h["port"] == data["port"] and h["status"] == "healthy"
    assert h["uuid"]


def test_features_round_trip(klik):
    port = json.loads(our_files(klik)[0].read_text())["port"]
    for name in (ukbench(2), "été + space.jpg"):
        path = str(klik.root / name)
        # what java.net.URLEncoder.encode(path, "UTF-8") produces: spaces as '+', '/' as %2F
        r = httpx.get(f"http://127.0.0.1:{port}/" + quote_plus(path), timeout=60)
        assert r.status_code == 200, r.text
        feats = np.array(r.json()["features"])
        assert feats.shape == (1280,)
        ref = np.array(klik.client().embed(path=path)["vector"])
        assert float(feats @ ref) / np.linalg.norm(feats) / np.linalg.norm(ref) > 0.999


def test_klik_errors_are_json_never_a_hang(klik):
    port = json.loads(our_files(klik)[0].read_text())["port"]
    base = f"http://127.0.0.1:{port}/"
    r = httpx.get(base + quote_plus(str(klik.root / "missing.jpg")), timeout=10)
    assert r.status_code == 404 and r.json()["error"]["code"] == "not_found"
    r = httpx.get(base + quote_plus(str(klik.outside / ukbench(9))), timeout=10)
    assert r.status_code == 403 and r.json()["error"]["code"] == "path_refused"
    r = httpx.post(base + "x", timeout=10)
    assert r.status_code == 405
    # the klik port does not serve the API
    assert httpx.get(base + "v1/info", timeout=10).status_code in (403, 404)


def test_main_port_still_serves_the_api(klik):
    assert klik.client().info()["klik"]["MobileNet"] == json.loads(our_files(klik)[0].read_text())["port"]


def test_registry_files_removed_at_stop(tmp_path):
    root = tmp_path / "root"
    root.mkdir()
    server = Server(tmp_path, "--root", str(root), "--klik", "--klik-type", "MobileNet", token=None)
    files = our_files(server)
    assert files
    assert server.stop() == 0
    assert not any(f.exists() for f in files)
    assert os.listdir(registry(server)) == []
