"""Indexing: incremental fast path, moved files, awkward files, concurrency, CLI summary."""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from conftest import SRC, shared_data
from lookalike.catalog import Catalog
from lookalike.index import index_paths
from lookalike.media import io_stats


@pytest.fixture
def photos(tmp_path):
    """Twelve real photos copied into a tmp folder (3 UKBench groups)."""
    src = shared_data("photos")
    folder = tmp_path / "photos"
    folder.mkdir()
    for i in range(12):
        shutil.copy(src / f"ukbench{i:05d}.jpg", folder)
    return folder


@pytest.fixture
def edge_copy(tmp_path):
    folder = tmp_path / "edge"
    shutil.copytree(shared_data("edge"), folder)
    return folder


def test_unchanged_rerun_reads_no_image_bytes(photos, catalog):
    first = index_paths([photos], catalog, ["phash", "dhash"])
    assert (first.new, first.changed, first.unchanged, first.failed) == (12, 0, 0, [])
    io_stats.reset()
    again = index_paths([photos], catalog, ["phash", "dhash"])
    assert (again.new, again.changed, again.unchanged) == (0, 0, 12)
    assert io_stats.files_read == 0 and io_stats.bytes_read == 0


def test_new_model_on_unchanged_files_reads_them_once(photos, catalog):
    index_paths([photos], catalog, ["phash"])
    io_stats.reset()
    rep = index_paths([photos], catalog, ["phash", "ahash"])
    assert rep.unchanged == 12 and io_stats.files_read == 12
    _, mat = catalog.feature_matrix(rep.paths, "ahash", "1", "hash")
    assert mat.shape == (12, 1)


def test_renamed_file_reuses_features_without_decoding(photos, catalog):
    index_paths([photos], catalog, ["phash"])
    os.rename(photos / "ukbench00003.jpg", photos / "renamed.jpg")
    rep = index_paths([photos], catalog, ["phash"])
    assert (rep.new, rep.unchanged, rep.decoded, rep.reused) == (1, 11, 0, 1)
    paths, mat = catalog.feature_matrix([str(photos / "renamed.jpg")], "phash", "1", "hash")
    assert len(paths) == 1


def test_changed_file_is_reindexed(photos, catalog):
    index_paths([photos], catalog, ["phash"])
    target = photos / "ukbench00000.jpg"
    shutil.copy(photos / "ukbench00005.jpg", target)
    rep = index_paths([photos], catalog, ["phash"])
    assert (rep.changed, rep.unchanged) == (1, 11)
    row = catalog.lookup_files([str(target)])[str(target)]
    from lookalike.index import file_sha256

    assert row.content_hash == file_sha256(str(photos / "ukbench00005.jpg"))


def test_awkward_files_reported_and_good_ones_indexed(edge_copy, catalog):
    (edge_copy / "nested" / ".hidden").mkdir(parents=True)
    rep = index_paths([edge_copy], catalog, ["phash"])
    failed = {os.path.basename(f.path): f.error for f in rep.failed}
    assert set(failed) == {"empty.jpg", "not_an_image.jpg"}
    assert "empty" in failed["empty.jpg"] and "not an image" in failed["not_an_image.jpg"]
    assert rep.new == 15 and len(rep.paths) == 15
    assert [os.path.basename(p) for p in rep.truncated] == ["truncated_60pct.jpg"]
    row = catalog.lookup_files([str(edge_copy / "truncated_60pct.jpg")])
    assert row[str(edge_copy / "truncated_60pct.jpg")].status == "truncated"
    # the three byte-identical JPEGs share one content hash, hence one feature
    names = ("UPPERCASE.JPG", "jpeg_without_extension", "photo é 日本.jpg")
    same = catalog.lookup_files([str(edge_copy / n) for n in names])
    assert len({r.content_hash for r in same.values()}) == 1


def test_file_vanishing_during_the_scan_is_reported(photos, catalog):
    victim = photos / "ukbench00007.jpg"

    def progress(done, total):
        if victim.exists():
            victim.unlink()  # the walk has seen it; the worker will not find it

    rep = index_paths([photos], catalog, ["phash"], progress=progress)
    assert [(os.path.basename(f.path), f.error) for f in rep.failed] == [
        ("ukbench00007.jpg", "file vanished before it could be read")
    ]
    assert rep.new == 11


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to switch to an unprivileged user")
def test_permission_denied_is_reported(photos):
    # root reads everything, so the indexer runs as "nobody", in a folder of its own that it can reach
    # (pytest keeps its tmp folders private, and concurrent pytest runs reset their modes)
    top = Path(tempfile.mkdtemp(prefix="lookalike-perm-"))
    try:
        _index_as_nobody(photos, top)
    finally:
        shutil.rmtree(top, ignore_errors=True)


def _index_as_nobody(photos: Path, tmp_path: Path) -> None:
    os.chmod(tmp_path, 0o755)
    photos = Path(shutil.copytree(photos, tmp_path / "photos"))
    os.chmod(photos, 0o755)
    for p in photos.iterdir():
        os.chmod(p, 0o644)
    os.chmod(photos / "ukbench00001.jpg", 0o000)
    home = tmp_path / "home"
    home.mkdir(mode=0o777)
    os.chmod(home, 0o777)
    env = {**os.environ, "PYTHONPATH": str(SRC), "LOOKALIKE_HOME": str(home), "LOOKALIKE_MODEL_DIR": str(home)}
    code = (
        "import json, os, sys; from PIL import Image; Image.init()\n"
        "from lookalike.catalog import Catalog; from lookalike.index import index_paths\n"
        "cat = Catalog(sys.argv[2]); cat.connection()\n"
        "os.setgid(65534); os.setuid(65534)\n"
        "print(json.dumps(index_paths([sys.argv[1]], cat, ['phash']).to_json()))"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code, str(photos), str(home / "c.sqlite")],
        capture_output=True, text=True, env=env, timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout)
    assert out["new"] == 11
    assert out["failed"] == [{"path": str(photos / "ukbench00001.jpg"), "error": "permission denied"}]


def test_two_processes_indexing_at_once_do_not_corrupt(photos, tmp_path):
    db = tmp_path / "shared.sqlite"
    env = {**os.environ, "PYTHONPATH": str(SRC)}
    cmd = [sys.executable, "-m", "lookalike", "--catalog", str(db), "index", str(photos), "-m", "phash",
           "-m", "dhash", "-m", "whash", "--json"]
    procs = [subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for _ in range(3)]
    outs = [p.communicate(timeout=180) for p in procs]
    assert all(p.returncode == 0 for p in procs), [o[1] for o in outs]
    conn = sqlite3.connect(db)
    assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    assert conn.execute("SELECT COUNT(*) FROM files").fetchone()[0] == 12
    assert conn.execute("SELECT COUNT(*) FROM features").fetchone()[0] == 36
    conn.close()
    with Catalog(db) as cat:
        rep = index_paths([photos], cat, ["phash", "dhash", "whash"])
    assert rep.unchanged == 12


def test_cli_index_json_shape(edge_copy, run_cli, tmp_path):
    res = run_cli("index", edge_copy, "--model", "phash", "--json", "--catalog", tmp_path / "c.sqlite")
    out = res.json()
    assert set(out) == {"new", "changed", "unchanged", "failed", "skipped", "seconds"}
    assert out["new"] == 15 and out["changed"] == 0 and out["unchanged"] == 0
    assert isinstance(out["seconds"], float)
    bad = [str(edge_copy / "empty.jpg"), str(edge_copy / "not_an_image.jpg")]
    assert sorted(f["path"] for f in out["failed"]) == bad
    again = run_cli("index", edge_copy, "--model", "phash", "--json", "--catalog", tmp_path / "c.sqlite").json()
    assert again["unchanged"] == 15 and again["new"] == 0


def test_cli_no_recursive_and_missing_folder(photos, run_cli, tmp_path):
    sub = photos / "sub"
    sub.mkdir()
    shutil.copy(photos / "ukbench00000.jpg", sub / "deep.jpg")
    cat = tmp_path / "c.sqlite"
    assert run_cli("index", photos, "-m", "phash", "--no-recursive", "--json", "--catalog", cat).json()["new"] == 12
    assert run_cli("index", photos, "-m", "phash", "--json", "--catalog", cat).json()["new"] == 1
    res = run_cli("index", tmp_path / "missing", "-m", "phash", "--json", "--catalog", cat, check=False)
    assert res.returncode == 1 and f"no such file or folder: {tmp_path / 'missing'}" in res.stderr  # issue 10


def test_cache_stats_prune_clear(photos, run_cli, tmp_path):
    cat = tmp_path / "c.sqlite"
    run_cli("index", photos, "-m", "phash", "--catalog", cat)
    stats = run_cli("cache", "stats", "--json", "--catalog", cat).json()
    assert stats["files"] == 12 and stats["features"][0]["count"] == 12
    (photos / "ukbench00000.jpg").unlink()
    run_cli("cache", "prune", "--catalog", cat)
    stats = run_cli("cache", "stats", "--json", "--catalog", cat).json()
    assert stats["files"] == 11 and stats["features"][0]["count"] == 11
    run_cli("cache", "clear", "--model", "phash", "--catalog", cat)
    assert run_cli("cache", "stats", "--json", "--catalog", cat).json()["features"] == []


def test_unknown_model_is_a_clear_error(photos, run_cli):
    res = run_cli("index", photos, "--model", "nosuch", check=False)
    assert res.returncode == 1 and "unknown model 'nosuch'" in res.stderr and "Traceback" not in res.stderr


def test_content_hashes_share_the_index_fast_path(photos, catalog, monkeypatch):
    """Face scans ask lookalike.index.content_hashes for content keys: files the index saw unchanged are not
    read at all (the index's own fast path, not a copy); a changed one is read and hashed again."""
    import lookalike.index.fastpath as fastpath
    from lookalike.index import content_hashes, file_sha256, index_paths

    rep = index_paths([photos], catalog, ["phash"])
    reads: list[str] = []
    real = fastpath.read_bytes
    monkeypatch.setattr(fastpath, "read_bytes", lambda p: reads.append(p) or real(p))
    hashes, errors = content_hashes(catalog, rep.paths)
    assert not errors and reads == [] and len(hashes) == len(rep.paths)
    os.utime(rep.paths[0], ns=(0, 0))  # ctime and mtime move: no longer the file the catalog saw
    hashes, _ = content_hashes(catalog, rep.paths)
    assert reads == [rep.paths[0]]
    assert hashes[rep.paths[0]] == file_sha256(rep.paths[0])
