"""The klikr desktop app's protocol: registry files, /health, GET /<URL-encoded path> -> features;
as many servers per type as klikr's quotas, so the unchanged app never starts servers of its own."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from urllib.parse import quote_plus

import httpx
import numpy as np
import pytest

from conftest import needs_effnet, shared_data
from service_util import Server, copy_photos, free_port, ukbench


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
    server = Server(base, "--root", str(root), "--klik", "--klik-cores", "1", token=None)
    server.root, server.outside = root, outside
    yield server
    server.stop()


def our_files(server, want: int = 1):
    """Our registry files for image similarity, once ``want`` of them are there."""
    deadline = time.monotonic() + 10
    files = []
    while time.monotonic() < deadline:
        files = [f for f in registry(server).glob("*.json") if json.loads(f.read_text()).get("server") == "lookalike"]
        if len(files) >= want:
            return files
        time.sleep(0.1)
    return files


@needs_effnet
def test_registry_files_written_and_stale_ones_removed(klik):
    files = our_files(klik)
    assert len(files) == 1
    data = json.loads(files[0].read_text())
    assert data["type"] == "MobileNet" and files[0].name == f"MobileNet_{data['uuid']}.json"
    assert isinstance(data["port"], int) and data["port"] != klik.port
    assert not (registry(klik) / "MobileNet_dead.json").exists()
    assert (registry(klik) / "MobileNet_other.json").exists()


@needs_effnet
def test_health(klik):
    data = json.loads(our_files(klik)[0].read_text())
    r = httpx.get(f"http://127.0.0.1:{data['port']}/health", timeout=10)
    assert r.status_code == 200
    h = r.json()
    assert h["type"] == "MobileNet" and h["port"] == data["port"] and h["status"] == "healthy"
    assert h["uuid"]


@needs_effnet
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


@needs_effnet
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


@needs_effnet
def test_main_port_still_serves_the_api(klik):
    assert klik.client().info()["klik"]["MobileNet"] == json.loads(our_files(klik)[0].read_text())["port"]


@needs_effnet
def test_registry_files_removed_at_stop(tmp_path):
    root = tmp_path / "root"
    root.mkdir()
    server = Server(tmp_path, "--root", str(root), "--klik", "--klik-type", "MobileNet", "--klik-cores", "3",
                    token=None)
    files = our_files(server, 3)
    assert len(files) == 3
    assert server.stop() == 0
    assert not any(f.exists() for f in files)
    assert os.listdir(registry(server)) == []


# --- klikr's view of the registry -------------------------------------------------------------------
# Read from klikr's source (philgentric/klikr): ML_server_type lists the types, their registry folder
# (~/.klikr/.privacy_screen/{image_similarity,face_recognition}_server_registry) and quota(); ML_registry
# lists every file of the folder, takes "type", "port" and "uuid" with Simple_json_parser.read_key, keeps a
# server whose GET http://127.0.0.1:<port>/health answers 200 within 5 s, and Load_balancer starts servers
# of its own for a type while it has fewer live ones than the quota.

KLIKR_TYPES = ("MobileNet", "FaceNet", "MTCNN", "Haar_tree", "Haar_default", "Haar_alt1", "Haar_alt2")


def klikr_quota(klikr_type: str, cores: int) -> int:
    """ML_server_type.quota(): MobileNet follows the core count (its default setting), FaceNet and MTCNN
    are 3, each Haar type 1."""
    return {"MobileNet": cores, "FaceNet": 3, "MTCNN": 3}.get(klikr_type, 1)


def klikr_read_key(content: str, key: str) -> str | None:
    """What klikr's Simple_json_parser.read_key finds: the first place the quoted key appears, the text
    after the next colon: a quoted string up to the next quote, or a bare value up to ',' or '}'."""
    at = content.find(f'"{key}"')
    if at < 0:
        return None
    i = content.find(":", at) + 1
    while i < len(content) and content[i].isspace():
        i += 1
    if i >= len(content):
        return None
    if content[i] == '"':
        end = content.find('"', i + 1)
        return None if end < 0 else content[i + 1:end]
    end = next((j for j in range(i, len(content)) if content[j] in ",}"), len(content))
    return content[i:end].strip()


def klikr_scan(user_home) -> dict[str, list[tuple[int, str, str]]]:
    """The live servers klikr finds per type: (port, uuid, type) records, as ML_registry builds them."""
    found: dict[str, list[tuple[int, str, str]]] = {t: [] for t in KLIKR_TYPES}
    for t in KLIKR_TYPES:
        kind = "image_similarity_server_registry" if t == "MobileNet" else "face_recognition_server_registry"
        folder = user_home / ".klikr" / ".privacy_screen" / kind
        for f in sorted(folder.iterdir()) if folder.is_dir() else []:
            content = f.read_text()
            if klikr_read_key(content, "type") != t:
                continue
            port, uuid = int(klikr_read_key(content, "port")), klikr_read_key(content, "uuid")
            assert uuid, f
            r = httpx.get(f"http://127.0.0.1:{port}/health", timeout=5)  # Host: 127.0.0.1:<port>, as Java sends
            if r.status_code == 200 and (port, uuid, t) not in found[t]:
                found[t].append((port, uuid, t))
    return found


def wait_registered(server, want: int) -> None:
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        n = sum(1 for kind in ("image_similarity_server_registry", "face_recognition_server_registry")
                for _ in (registry(server, kind).glob("*.json") if registry(server, kind).is_dir() else []))
        if n >= want:
            return
        time.sleep(0.1)
    raise AssertionError(f"only {n} of {want} registry files after 20 s:\n{server.output()}")


@pytest.mark.parametrize("cores, workers", [(2, 2), (8, 1)])
def test_klikr_finds_its_full_quota_of_servers_per_type(tmp_path, cores, workers):
    """klikr's default quotas on a machine of 2 and of 8 cores (asked with --klik-cores, so the 8-core
    case runs on a 2-core machine): every type has as many live servers as its quota, so the unchanged
    app starts none of its own; each registry file's uuid is the one its /health returns, from every
    worker; every klik port keeps the Host check."""
    root = tmp_path / "root"
    root.mkdir()
    server = Server(tmp_path, "--root", str(root), "--klik", "--klik-cores", str(cores), "--workers", str(workers),
                    token=None, env={"LOOKALIKE_KLIK_RECHECK_S": "0.3"})
    try:
        want = {t: klikr_quota(t, cores) for t in KLIKR_TYPES}
        wait_registered(server, sum(want.values()))
        found = klikr_scan(server.user_home)
        assert {t: len(v) for t, v in found.items()} == want  # klikr: size >= quota -> no servers of its own
        ports = [port for servers in found.values() for port, _, _ in servers]
        assert len(set(ports)) == len(ports) and server.port not in ports  # one real loopback port each
        for servers in found.values():
            for port, uuid, t in servers:
                for _ in range(3 if workers > 1 else 1):  # new connections: any worker may answer
                    h = httpx.get(f"http://127.0.0.1:{port}/health", timeout=5).json()
                    assert (h["type"], h["port"], h["uuid"]) == (t, port, uuid)
                r = httpx.get(f"http://127.0.0.1:{port}/health", headers={"Host": "evil.example"}, timeout=5)
                assert r.status_code == 400, (t, port)  # SiteGuard: DNS rebinding is refused on every klik port
        # klikr deletes the file of a server that misses one health check (then starts its own): written again
        gone = next(registry(server).glob("MobileNet_*.json"))
        before = gone.read_text()
        gone.unlink()
        deadline = time.monotonic() + 10
        while not gone.exists():
            assert time.monotonic() < deadline, server.output()
            time.sleep(0.1)
        assert klikr_read_key(gone.read_text(), "uuid") == klikr_read_key(before, "uuid")
        assert not list(registry(server).parent.glob("*.tmp")) and not list(registry(server).glob(".*"))
    finally:
        assert server.stop() == 0
    assert klikr_scan(server.user_home) == {t: [] for t in KLIKR_TYPES}  # all files gone at stop


def test_klik_quota_defaults_to_this_machines_cores_and_refuses_nonsense(tmp_path):
    """Without the setting MobileNet's quota is the core count Java's availableProcessors() reports
    (the CPUs this process may run on); out-of-range settings are one clear line, exit 1."""
    from lookalike.service import klik

    assert klik.quotas()["MobileNet"] == klik.machine_cores() >= 1
    if not os.path.exists("/sys/fs/cgroup/cpu.max") or open("/sys/fs/cgroup/cpu.max").read().startswith("max"):
        assert klik.machine_cores() == len(os.sched_getaffinity(0))
    assert klik.quotas(8) == {"MobileNet": 8, "FaceNet": 3, "MTCNN": 3, "Haar_default": 1, "Haar_alt1": 1,
                              "Haar_alt2": 1, "Haar_tree": 1}
    assert klik.plan(["MobileNet", "FaceNet"], 2) == ["MobileNet", "MobileNet", "FaceNet", "FaceNet", "FaceNet"]
    env = {**os.environ, "LOOKALIKE_HOME": str(tmp_path / "home"), "HOME": str(tmp_path)}
    env.pop("LOOKALIKE_KLIK_CORES", None)
    for args, extra in ((["--klik-cores", "0"], {}), (["--klik-cores", "100000"], {}),
                        ([], {"LOOKALIKE_KLIK_CORES": "0"})):
        p = subprocess.run([sys.executable, "-m", "lookalike", "serve", "--klik", "--port", str(free_port()), *args],
                           env={**env, **extra}, capture_output=True, text=True, timeout=60)
        assert p.returncode == 1, (args, extra, p.stdout, p.stderr)
        assert "--klik-cores" in p.stderr and "out of range" in p.stderr and len(p.stderr.strip().splitlines()) == 1


def test_server_status_lists_klik_ports_and_logs_finds_the_daemon_on_any_port(tmp_path):
    """`server status` shows every klik port; `server logs` finds the running daemon without --port
    (it runs on a port other than the default), or by one of its klik ports."""
    env = {**os.environ, "LOOKALIKE_HOME": str(tmp_path / "home"), "HOME": str(tmp_path / "user-home"),
           "XDG_DATA_HOME": str(tmp_path / "xdg"), "LOOKALIKE_LOG_LEVEL": "info"}
    env.pop("LOOKALIKE_TOKEN", None)
    (tmp_path / "user-home").mkdir()

    def cli(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-m", "lookalike", *args], env=env, capture_output=True, text=True,
                              timeout=120)

    p = cli("server", "logs")
    assert p.returncode == 1 and "no lookalike service is running" in p.stderr
    port = free_port()
    p = cli("serve", "--daemon", "--port", str(port), "--klik", "--klik-type", "MobileNet", "--klik-type", "FaceNet",
            "--klik-cores", "2")
    assert p.returncode == 0, p.stderr
    try:
        p = cli("server", "status", "--json")
        assert p.returncode == 0, p.stderr
        (info,) = json.loads(p.stdout)
        assert info["port"] == port
        klik_ports = sorted(k["port"] for k in info["klik"])
        assert [k["type"] for k in info["klik"]].count("MobileNet") == 2
        assert [k["type"] for k in info["klik"]].count("FaceNet") == 3
        text = cli("server", "status").stdout
        assert "klik servers (5)" in text and all(str(k) in text for k in klik_ports)
        deadline = time.monotonic() + 20
        while "klik: registered" not in (logs := cli("server", "logs", "-n", "200")).stdout:
            assert time.monotonic() < deadline, logs.stdout + logs.stderr
            time.sleep(0.3)
        assert logs.returncode == 0 and f"lookalike service on http://127.0.0.1:{port}" in logs.stdout
        by_klik = cli("server", "logs", "--port", str(klik_ports[0]), "-n", "200")
        assert by_klik.returncode == 0 and f"http://127.0.0.1:{port}" in by_klik.stdout
        assert cli("server", "status", "--port", str(klik_ports[-1])).returncode == 0
    finally:
        assert cli("server", "stop", "--port", str(port)).returncode == 0
    p = cli("server", "logs")  # stopped: the last daemon log is still there to read
    assert p.returncode == 0 and f"http://127.0.0.1:{port}" in p.stdout and "no lookalike service" in p.stderr


def test_a_registry_file_of_a_zombie_lookalike_is_stale(tmp_path):
    """A lookalike that exited but is not yet reaped (a zombie) answers no request: its registry files are
    removed like those of a process that is gone (klik uses the daemon's pid check, zombie check included);
    a live lookalike's file and another server's file stay."""
    from lookalike.service import klik

    zombie = subprocess.Popen([sys.executable, "-c", "pass"])
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:  # exited, not reaped
        with open(f"/proc/{zombie.pid}/stat") as fh:
            if fh.read().split(")")[-1].split()[0] == "Z":
                break
        time.sleep(0.02)
    folder = klik.registry_dir("MobileNet", tmp_path)
    folder.mkdir(parents=True)
    files = {}
    for name, data in (("zombie", {"server": "lookalike", "pid": zombie.pid}),
                       ("alive", {"server": "lookalike", "pid": os.getpid()}),
                       ("other", {"pid": zombie.pid})):
        files[name] = folder / f"MobileNet_{name}.json"
        files[name].write_text(json.dumps({"type": "MobileNet", "port": 1, "uuid": name, **data}))
    try:
        assert klik.clean_stale(tmp_path) == [files["zombie"]]
    finally:
        zombie.wait()
    assert not files["zombie"].exists() and files["alive"].exists() and files["other"].exists()
