"""Model registry: fetching through pip from a local package source (never the network), checksums,
adding models from local files, listing and removing."""

from __future__ import annotations

import hashlib
import shutil
import zipfile
from dataclasses import replace

import numpy as np
import pytest

from conftest import MODEL_DIR, needs_effnet, shared_data
from lookalike.errors import ModelError
from lookalike.features import registry
from lookalike.features.base import ModelSpec

PAYLOAD = b"not really onnx, but the fetch path only moves and verifies bytes" * 100


def _make_wheel(folder, name="fakemodels", version="1.0.0", member="fakemodels/models/net.onnx", payload=PAYLOAD):
    folder.mkdir(parents=True, exist_ok=True)
    wheel = folder / f"{name}-{version}-py3-none-any.whl"
    info = f"{name}-{version}.dist-info"
    with zipfile.ZipFile(wheel, "w") as zf:
        zf.writestr(f"{name}/__init__.py", "")
        zf.writestr(member, payload)
        zf.writestr(f"{info}/METADATA", f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n")
        zf.writestr(f"{info}/WHEEL", "Wheel-Version: 1.0\nGenerator: test\nRoot-Is-Purelib: true\nTag: py3-none-any\n")
        zf.writestr(f"{info}/RECORD", "")
    return wheel


@pytest.fixture
def local_index(tmp_path, monkeypatch):
    """pip sees only a local folder of wheels: no index, no network."""
    source = tmp_path / "wheels"
    _make_wheel(source)
    monkeypatch.setenv("PIP_NO_INDEX", "1")
    monkeypatch.setenv("PIP_FIND_LINKS", str(source))
    monkeypatch.setenv("LOOKALIKE_MODEL_DIR", str(tmp_path / "models"))
    return source


def _spec(**kw) -> ModelSpec:
    base = ModelSpec(
        id="fakenet", version="1", kind="embedding", dim=4,
        source="pip:fakemodels==1.0.0#fakemodels/models/net.onnx",
        sha256=hashlib.sha256(PAYLOAD).hexdigest(), filename="model.onnx",
    )
    return replace(base, **kw)


def test_fetch_through_pip_from_local_source(local_index, tmp_path):
    path = registry.ensure_weights(_spec())
    assert path == tmp_path / "models" / "fakenet" / "model.onnx"
    assert path.read_bytes() == PAYLOAD
    path.write_bytes(PAYLOAD)  # second call: already there, pip not needed
    shutil.rmtree(local_index)
    assert registry.ensure_weights(_spec()) == path


def test_checksum_mismatch_installs_nothing(local_index, tmp_path):
    with pytest.raises(ModelError, match="checksum mismatch"):
        registry.ensure_weights(_spec(sha256="0" * 64))
    assert not (tmp_path / "models" / "fakenet" / "model.onnx").exists()


def test_missing_package_gives_an_offline_hint(local_index):
    with pytest.raises(ModelError, match="models add fakenet --file"):
        registry.ensure_weights(_spec(source="pip:fakemodels==9.9.9#fakemodels/models/net.onnx"))


def test_missing_member_is_reported(local_index):
    with pytest.raises(ModelError, match="has no member"):
        registry.ensure_weights(_spec(source="pip:fakemodels==1.0.0#fakemodels/other.onnx"))


def test_no_fetch_when_not_allowed(local_index):
    with pytest.raises(ModelError, match="models pull fakenet"):
        registry.ensure_weights(_spec(), fetch=False)


def test_models_list_and_unknown_model(run_cli):
    rows = run_cli("models", "list", "--json").json()
    names = {r["name"]: r for r in rows}
    assert {"effnet", "phash", "dhash", "ahash", "whash"} <= set(names)
    assert names["phash"]["installed"] and names["effnet"]["dim"] == 1280
    res = run_cli("models", "pull", "nosuch", check=False)
    assert res.returncode == 1 and "unknown model" in res.stderr


def test_models_list_json_is_the_library_record(run_cli):
    """`models list --json` prints registry.list_models()'s records as they are (the one listing the HTTP
    service shows too): every field, same order."""
    rows = run_cli("models", "list", "--json").json()
    assert rows == [e.to_json() for e in registry.list_models()]
    assert set(rows[0]) == {"name", "version", "kind", "dim", "installed", "path", "description"}


def test_add_builtin_weights_from_file_verifies_checksum(tmp_path, monkeypatch):
    monkeypatch.setenv("LOOKALIKE_MODEL_DIR", str(tmp_path / "models"))
    bogus = tmp_path / "bogus.onnx"
    bogus.write_bytes(b"123")
    with pytest.raises(ModelError, match="checksum mismatch"):
        registry.add("effnet", bogus)


@needs_effnet
def test_add_custom_onnx_model_and_use_it(tmp_path, run_cli):
    weights = MODEL_DIR / "effnet" / "model.onnx"
    home_models = tmp_path / "models"
    env = {"LOOKALIKE_MODEL_DIR": str(home_models)}
    run_cli("models", "add", "mynet", "--file", weights, "--input-size", "224", "--dtype", "float16",
            "--imagenet", env=env)
    assert (home_models / "mynet" / "spec.json").is_file()
    rows = {r["name"]: r for r in run_cli("models", "list", "--json", env=env).json()}
    assert rows["mynet"]["dim"] == 1280 and rows["mynet"]["installed"]
    # the same weights with the same preprocessing give the same vectors as the built-in effnet
    shutil.copytree(MODEL_DIR / "effnet", home_models / "effnet")
    folder = tmp_path / "in"
    folder.mkdir()
    for i in range(3):
        shutil.copy(shared_data("photos", f"ukbench{i:05d}.jpg"), folder)
    a = run_cli("similar", folder / "ukbench00000.jpg", "--in", folder, "--model", "mynet", "--json", env=env).json()
    b = run_cli("similar", folder / "ukbench00000.jpg", "--in", folder, "--model", "effnet", "--json", env=env).json()
    assert [r["path"] for r in a["results"]] == [r["path"] for r in b["results"]]
    assert np.allclose([r["score"] for r in a["results"]], [r["score"] for r in b["results"]], atol=1e-3)
    run_cli("models", "remove", "mynet", env=env)
    assert not (home_models / "mynet").exists()
