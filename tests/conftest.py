"""Shared fixtures: an isolated lookalike home per test, the shared data folder, the CLI runner."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import platformdirs
import pytest

ROOT = Path(__file__).resolve().parents[1]
SRC = ROOT / "src"
SHARED = Path(os.environ.get("LOOKALIKE_SHARED", ROOT.parent / "shared")).resolve()
DATA = SHARED / "data"

# Model weights are kept in the real user cache (pulled once by the set-up command), unless the
# caller points LOOKALIKE_MODEL_DIR elsewhere; everything else goes to a throw-away home.
MODEL_DIR = Path(os.environ.get("LOOKALIKE_MODEL_DIR") or Path(platformdirs.user_cache_dir("lookalike")) / "models")


def effnet_available() -> bool:
    return (MODEL_DIR / "effnet" / "model.onnx").is_file()


needs_effnet = pytest.mark.skipif(
    not effnet_available(),
    reason=f"effnet weights not found in {MODEL_DIR}: run `lookalike models pull effnet` "
    "or set LOOKALIKE_MODEL_DIR to a folder holding effnet/model.onnx",
)


def shared_data(*parts: str) -> Path:
    """A path under ../shared/data, or skip the test with the reason."""
    path = DATA.joinpath(*parts)
    if not path.exists():
        pytest.skip(f"shared test data not found: {path}")
    return path


@pytest.fixture(autouse=True)
def lookalike_home(tmp_path_factory, monkeypatch) -> Path:
    home = tmp_path_factory.mktemp("lookalike-home")
    monkeypatch.setenv("LOOKALIKE_HOME", str(home))
    monkeypatch.setenv("LOOKALIKE_MODEL_DIR", str(MODEL_DIR))
    MODEL_DIR.mkdir(parents=True, exist_ok=True)
    return home


@pytest.fixture
def private_trash(tmp_path_factory, monkeypatch) -> Path:
    """Send trashed files to a throw-away XDG trash (here and in subprocesses), never the real one."""
    data_home = tmp_path_factory.mktemp("xdg-data")
    monkeypatch.setenv("XDG_DATA_HOME", str(data_home))
    from send2trash import plat_other

    monkeypatch.setattr(plat_other, "XDG_DATA_HOME", os.fsencode(data_home))
    monkeypatch.setattr(plat_other, "HOMETRASH_B", os.fsencode(data_home / "Trash"))
    monkeypatch.setattr(plat_other, "HOMETRASH", str(data_home / "Trash"))
    return data_home


@pytest.fixture
def catalog(tmp_path):
    from lookalike.catalog import Catalog

    cat = Catalog(tmp_path / "catalog.sqlite")
    yield cat
    cat.close()


class CliResult:
    def __init__(self, proc: subprocess.CompletedProcess) -> None:
        self.returncode, self.stdout, self.stderr = proc.returncode, proc.stdout, proc.stderr

    def json(self):
        return json.loads(self.stdout)


@pytest.fixture
def run_cli():
    """Run `python -m lookalike ARGS...` in a subprocess against this checkout's sources."""

    def run(*args: str, check: bool = True, env: dict | None = None, timeout: float = 600) -> CliResult:
        full_env = {**os.environ, "PYTHONPATH": str(SRC), **(env or {})}
        proc = subprocess.run(
            [sys.executable, "-m", "lookalike", *map(str, args)],
            capture_output=True, text=True, env=full_env, timeout=timeout,
        )
        res = CliResult(proc)
        if check and proc.returncode != 0:
            raise AssertionError(f"lookalike {' '.join(map(str, args))} exited {proc.returncode}:\n{proc.stderr}")
        return res

    return run


@pytest.fixture
def page(tmp_path):
    """A fresh headless Chromium page for the web app's view tests (tests/web_util.py)."""
    from web_util import chromium_page

    with chromium_page(tmp_path) as pg:
        yield pg
