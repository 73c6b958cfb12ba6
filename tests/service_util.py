"""Start a real `lookalike serve` process on a free loopback port for the service tests."""

from __future__ import annotations

import importlib.util
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from conftest import MODEL_DIR, needs_effnet

ROOT = Path(__file__).resolve().parents[1]
SRC = ROOT / "src"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    """A `python -m lookalike serve ...` subprocess with its own home, HOME and XDG_DATA_HOME."""

    def __init__(self, base: Path, *args: str, token: str | None = "test-token-123", env: dict | None = None,
                 port: int | None = None) -> None:
        self.base = base
        self.home = base / "lookalike-home"
        self.user_home = base / "user-home"
        self.xdg = base / "xdg-data"
        for p in (self.home, self.user_home, self.xdg):
            p.mkdir(parents=True, exist_ok=True)
        self.port = port or free_port()
        self.token = token
        self.url = f"http://127.0.0.1:{self.port}"
        self.env = {
            **os.environ, "PYTHONPATH": str(SRC), "LOOKALIKE_HOME": str(self.home), "HOME": str(self.user_home),
            "XDG_DATA_HOME": str(self.xdg), "LOOKALIKE_LOG_LEVEL": "warning", "LOOKALIKE_MODEL_DIR": str(MODEL_DIR),
            **(env or {}),
        }
        self.env.pop("LOOKALIKE_TOKEN", None)
        cmd = [sys.executable, "-m", "lookalike", "serve", "--port", str(self.port), *args]
        if token:
            cmd += ["--token", token]
        self.log = open(base / f"serve-{self.port}.out", "wb")  # noqa: SIM115
        self.proc = subprocess.Popen(cmd, env=self.env, stdout=self.log, stderr=subprocess.STDOUT)
        self.wait_ready()

    def wait_ready(self, timeout: float = 60.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"server exited {self.proc.returncode}: {self.output()}")
            try:
                if httpx.get(self.url + "/healthz", timeout=1).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        raise RuntimeError(f"server not ready: {self.output()}")

    def output(self) -> str:
        self.log.flush()
        return (self.base / f"serve-{self.port}.out").read_text(errors="replace")

    @property
    def headers(self) -> dict:
        return {"Authorization": f"Bearer {self.token}"} if self.token else {}

    def client(self):
        from lookalike.client import Client

        return Client(self.url, token=self.token, timeout=60, retries=1)

    def cli(self, *args: str, check: bool = True) -> subprocess.CompletedProcess:
        proc = subprocess.run([sys.executable, "-m", "lookalike", *args], env=self.env, capture_output=True,
                              text=True, timeout=300)
        if check and proc.returncode != 0:
            raise AssertionError(f"lookalike {' '.join(args)}: {proc.returncode}\n{proc.stderr}")
        return proc

    def stop(self) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.log.close()
        return self.proc.returncode


def copy_photos(shared_photos: Path, dest: Path, names: list[str]) -> list[Path]:
    dest.mkdir(parents=True, exist_ok=True)
    out = []
    for n in names:
        shutil.copy(shared_photos / n, dest / n)
        out.append(dest / n)
    return out


def ukbench(i: int) -> str:
    return f"ukbench{i:05d}.jpg"


CHROMIUM = os.environ.get("LOOKALIKE_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync"]

#: Marks of the review-page tests in headless Chromium (Debian's, driven by Playwright), with the reasons.
BROWSER_MARKS = [
    needs_effnet,
    pytest.mark.skipif(importlib.util.find_spec("playwright") is None,
                       reason="playwright is not installed (pip install -e '.[dev]')"),
    pytest.mark.skipif(not os.path.exists(CHROMIUM),
                       reason=f"no Chromium at {CHROMIUM}: setup.sh installs Debian's chromium (needs root)"),
    pytest.mark.skipif(importlib.util.find_spec("lookalike.dupes") is None,
                       reason="lookalike.dupes is not part of this build"),
]
