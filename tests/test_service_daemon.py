"""`lookalike serve --daemon`, `lookalike server status|stop|logs`, and a second serve on a busy port."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time

import httpx

from service_util import SRC, free_port


def run(env, *args, check=True, timeout=120):
    proc = subprocess.run([sys.executable, "-m", "lookalike", *args], env=env, capture_output=True, text=True,
                          timeout=timeout)
    if check and proc.returncode != 0:
        raise AssertionError(f"lookalike {' '.join(args)} exited {proc.returncode}\n{proc.stdout}\n{proc.stderr}")
    return proc


def test_daemon_start_status_logs_stop(tmp_path):
    home = tmp_path / "home"
    env = {**os.environ, "PYTHONPATH": str(SRC), "LOOKALIKE_HOME": str(home), "HOME": str(tmp_path)}
    env.pop("LOOKALIKE_TOKEN", None)
    port = free_port()
    started = run(env, "serve", "--daemon", "--port", str(port), "--root", str(tmp_path))
    assert f"http://127.0.0.1:{port}" in started.stdout and "background" in started.stdout
    pidfile = home / "server" / f"serve-{port}.json"
    info = json.loads(pidfile.read_text())
    pid = info["pid"]
    try:
        # the daemon outlives the command that started it and answers
        r = httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=5)
        assert r.status_code == 200 and r.json()["pid"] == pid
        status = json.loads(run(env, "server", "status", "--json").stdout)
        assert [(s["port"], s["pid"], s["state"]) for s in status] == [(port, pid, "running")]
        assert "running" in run(env, "server", "status").stdout
        # a second serve on the same port reports the running one
        again = run(env, "serve", "--port", str(port), check=False)
        assert again.returncode == 1
        assert "already running" in again.stderr and str(pid) in again.stderr
        again = run(env, "serve", "--daemon", "--port", str(port), check=False)
        assert again.returncode == 1 and "already running" in again.stderr
        logs = run(env, "server", "logs", "--port", str(port), "-n", "20").stdout
        assert "lookalike service on" in logs
    finally:
        stopped = run(env, "server", "stop", "--port", str(port), check=False)
    assert stopped.returncode == 0 and "stopped" in stopped.stdout
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and _alive(pid):
        time.sleep(0.1)
    assert not _alive(pid)
    assert not pidfile.exists()
    status = run(env, "server", "status", check=False)
    assert status.returncode == 3 and "no lookalike service" in status.stdout
    assert run(env, "server", "stop", check=False).returncode == 1


def test_stale_pid_file_is_cleaned(tmp_path):
    home = tmp_path / "home"
    (home / "server").mkdir(parents=True)
    env = {**os.environ, "PYTHONPATH": str(SRC), "LOOKALIKE_HOME": str(home)}
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    f = home / "server" / "serve-40001.json"
    f.write_text(json.dumps({"pid": dead.pid, "port": 40001, "url": "http://127.0.0.1:40001", "started": 1}))
    out = json.loads(run(env, "server", "status", "--json", check=False).stdout)
    assert out[0]["state"] == "stale"
    assert not f.exists()


def test_port_taken_by_another_program(tmp_path):
    import socket

    env = {**os.environ, "PYTHONPATH": str(SRC), "LOOKALIKE_HOME": str(tmp_path / "home")}
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        port = s.getsockname()[1]
        proc = run(env, "serve", "--port", str(port), check=False, timeout=60)
        assert proc.returncode == 1 and "cannot listen" in proc.stderr and "Traceback" not in proc.stderr
        proc = run(env, "serve", "--daemon", "--port", str(port), check=False, timeout=60)
        assert proc.returncode == 1 and "in use" in proc.stderr


def test_non_loopback_bind_needs_a_token(tmp_path):
    env = {**os.environ, "PYTHONPATH": str(SRC), "LOOKALIKE_HOME": str(tmp_path / "home")}
    env.pop("LOOKALIKE_TOKEN", None)
    proc = run(env, "serve", "--host", "0.0.0.0", "--port", str(free_port()), check=False, timeout=60)
    assert proc.returncode == 1 and "without --token" in proc.stderr
    proc = run(env, "serve", "--root", str(tmp_path / "missing"), check=False, timeout=60)
    assert proc.returncode == 1 and "not a folder" in " ".join(proc.stderr.split())


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().split(")")[-1].split()[0] != "Z"
    except OSError:
        return False


def test_two_workers_share_jobs(tmp_path):
    from conftest import shared_data
    from service_util import Server, copy_photos, ukbench

    root = tmp_path / "root"
    copy_photos(shared_data("photos"), root, [ukbench(i) for i in range(4)])
    server = Server(tmp_path, "--root", str(root), "--workers", "2")
    try:
        pids = set()
        for _ in range(12):
            with httpx.Client() as fresh:  # a new connection each time: any worker may answer
                pids.add(fresh.get(server.url + "/healthz").json()["pid"])
        assert server.proc.pid not in pids and 1 <= len(pids) <= 2  # answered by worker processes
        c = server.client()
        job = c.index(str(root), model="dhash")
        for _ in range(10):
            with httpx.Client(headers=server.headers) as fresh:
                state = fresh.get(f"{server.url}/v1/jobs/{job['id']}").json()
                assert state["id"] == job["id"]
        assert c.wait(job["id"], timeout=60)["state"] == "done"
    finally:
        assert server.stop() == 0
