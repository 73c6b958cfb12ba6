"""Pid files, logs and the life cycle of a running service (foreground or daemon).

Each service writes ``<home>/server/serve-<port>.json`` (pid, url, log file, start time) while it
runs and removes it when it stops; a daemon's output goes to ``serve-<port>.log`` beside it. A file
whose process is gone is stale: it is reported as such and removed."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from lookalike.config import home_dir


def state_dir() -> Path:
    path = home_dir() / "server"
    path.mkdir(parents=True, exist_ok=True)
    return path


def pid_file(port: int) -> Path:
    return state_dir() / f"serve-{port}.json"


def log_file(port: int) -> Path:
    return state_dir() / f"serve-{port}.log"


def latest_log() -> Path | None:
    """The daemon log written last (the one to read when no service runs any more)."""
    logs = []
    for f in state_dir().glob("serve-*.log"):
        try:
            logs.append((f.stat().st_mtime, f))
        except OSError:
            continue
    return max(logs)[1] if logs else None


@dataclass
class ServerInfo:
    """What a pid file says, plus whether the process and its /healthz answer."""

    port: int
    pid: int
    url: str
    log: str | None
    started: float
    alive: bool
    healthy: bool
    file: Path
    klik: list[dict] = field(default_factory=list)  # {"type", "port", "uuid"} per klik server

    def to_json(self) -> dict:
        return {"port": self.port, "pid": self.pid, "url": self.url, "log": self.log, "started": self.started,
                "alive": self.alive, "healthy": self.healthy, "state": self.state, "klik": self.klik}

    def answers_on(self, port: int) -> bool:
        """Its main port or one of its klik ports."""
        return port == self.port or any(int(k.get("port", -1)) == port for k in self.klik)

    @property
    def state(self) -> str:
        return "running" if self.alive and self.healthy else ("starting or hung" if self.alive else "stale")


def pid_alive(pid: int) -> bool:
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:  # a zombie (exited child not yet reaped) is not alive
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().split(")")[-1].split()[0] != "Z"
    except OSError:
        return True


def healthy(url: str, timeout: float = 2.0) -> bool:
    try:
        r = httpx.get(url.rstrip("/") + "/healthz", timeout=timeout)
        return r.status_code == 200 and r.json().get("service") == "lookalike"
    except (httpx.HTTPError, ValueError):
        return False


def write_pid_file(port: int, url: str, log: str | None, pid: int | None = None,
                   klik: list[dict] | None = None) -> Path:
    f = pid_file(port)
    data = {"pid": pid or os.getpid(), "port": port, "url": url, "log": log, "started": time.time(),
            "klik": list(klik or [])}
    tmp = f.with_suffix(".tmp")
    tmp.write_text(json.dumps(data))
    os.replace(tmp, f)
    return f


def remove_pid_file(port: int, pid: int | None = None) -> None:
    """Remove the pid file if it is ours (or whoever's, without ``pid``)."""
    f = pid_file(port)
    try:
        data = json.loads(f.read_text())
    except (OSError, ValueError):
        return
    if pid is None or data.get("pid") == pid:
        f.unlink(missing_ok=True)


def read(port: int) -> ServerInfo | None:
    f = pid_file(port)
    try:
        data = json.loads(f.read_text())
    except (OSError, ValueError):
        return None
    pid = int(data.get("pid", 0))
    alive = pid_alive(pid)
    url = str(data.get("url", f"http://127.0.0.1:{port}"))
    klik = [k for k in data.get("klik") or [] if isinstance(k, dict) and "port" in k]
    return ServerInfo(port, pid, url, data.get("log"), float(data.get("started", 0)), alive,
                      alive and healthy(url), f, klik)


def servers(clean: bool = True) -> list[ServerInfo]:
    """Every service with a pid file; stale files are removed when ``clean``."""
    out = []
    for f in sorted(state_dir().glob("serve-*.json")):
        try:
            port = int(f.stem.split("-", 1)[1])
        except ValueError:
            continue
        info = read(port)
        if info is None:
            continue
        if clean and not info.alive:
            f.unlink(missing_ok=True)
        out.append(info)
    return out


def port_free(host: str, port: int) -> bool:
    fam = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(fam, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((host, port))
        except OSError:
            return False
    return True


def start_daemon(argv: list[str], port: int, url: str, timeout: float = 120.0) -> int:
    """Start ``python -m lookalike ARGV`` (a foreground ``serve`` command line) detached: own session,
    output to the log; wait until /healthz answers. Returns the pid; raises RuntimeError with the
    log's tail if it fails."""
    log = log_file(port)
    with open(log, "ab") as fh:
        fh.write(f"\n--- lookalike serve starting at {time.strftime('%Y-%m-%d %H:%M:%S')} ---\n".encode())
        fh.flush()
        proc = subprocess.Popen(
            [sys.executable, "-m", "lookalike", *argv],
            stdin=subprocess.DEVNULL, stdout=fh, stderr=subprocess.STDOUT, start_new_session=True,
            env={**os.environ, "LOOKALIKE_SERVE_LOG": str(log)}, close_fds=True,
        )
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"the service exited with code {proc.returncode}:\n{tail(log, 15)}")
        if healthy(url, timeout=1.0):
            return proc.pid
        time.sleep(0.2)
    proc.terminate()
    raise RuntimeError(f"the service did not answer within {timeout:.0f}s:\n{tail(log, 15)}")


def stop(info: ServerInfo, timeout: float = 20.0) -> bool:
    """SIGTERM the service, wait for it to exit (SIGKILL after ``timeout``). True when it is gone."""
    if not info.alive:
        info.file.unlink(missing_ok=True)
        return True
    try:
        os.kill(info.pid, signal.SIGTERM)
    except ProcessLookupError:
        pass
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not pid_alive(info.pid):
            info.file.unlink(missing_ok=True)
            return True
        time.sleep(0.1)
    try:
        os.kill(info.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    time.sleep(0.2)
    info.file.unlink(missing_ok=True)
    return not pid_alive(info.pid)


def tail(path: str | Path, lines: int = 50) -> str:
    try:
        with open(path, "rb") as fh:
            fh.seek(0, os.SEEK_END)
            size = fh.tell()
            fh.seek(max(0, size - 200_000))
            data = fh.read().decode("utf-8", "replace")
    except OSError:
        return ""
    return "\n".join(data.splitlines()[-lines:])
