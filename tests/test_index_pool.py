"""Hash-only indexing in worker processes (lookalike.index.pool): the same catalog and report as the thread
path, awkward files recorded per file, a FIFO swapped in after planning refused, a crashed worker costing
only the file it crashed on."""

from __future__ import annotations

import os
import shutil
import sqlite3
import threading
import time
from pathlib import Path

import pytest

from conftest import needs_effnet, shared_data
from lookalike.catalog import Catalog
from lookalike.index import index_paths, pool
from lookalike.media import io_stats

MODELS = ["phash", "dhash"]


@pytest.fixture
def mixed(tmp_path) -> Path:
    """40 real photos (UKBench, celebrity faces) and every awkward file of ../shared/data/edge, in one folder, with
    a byte-identical copy and a name that is not UTF-8."""
    folder = tmp_path / "mixed"
    shutil.copytree(shared_data("edge"), folder)
    (folder / "README.md").unlink()
    photos = sorted(shared_data("photos").glob("*.jpg"))[:32]
    faces = sorted(p for p in shared_data("faces").rglob("*") if p.suffix.lower() in (".jpg", ".jpeg"))[:8]
    for i, p in enumerate(photos + faces):
        shutil.copy(p, folder / f"{i:02d}_{p.name}")
    shutil.copy(photos[0], folder / "zz_copy_of_first.jpg")  # byte-identical content under a second name
    shutil.copy(photos[1], os.fsdecode(os.fsencode(folder) + b"/zz_\xff\xfe_not_utf8.jpg"))  # a name not UTF-8
    time.sleep(0.05)  # past the racy window: both runs see settled ctimes
    return folder


def _dump(db: Path) -> tuple[list, list, list]:
    """Everything a run writes (files, pictures, features), without the clock."""
    c = sqlite3.connect(db)
    try:
        files = sorted(c.execute("SELECT f.path, f.size, f.mtime_ns, f.status, f.error, f.inode, f.ctime_ns, c.sha256 "
                                 "FROM files f LEFT JOIN contents c ON c.id = f.content_id"), key=repr)  # str, bytes
        images = sorted(c.execute("SELECT c.sha256, i.width, i.height, i.format, i.mode, i.truncated, i.frames, "
                                  "i.exif_datetime, i.exif_tags, i.bytes FROM images i "
                                  "JOIN contents c ON c.id = i.content_id"))
        feats = sorted(c.execute("SELECT c.sha256, m.model, m.version, x.data FROM features x "
                                 "JOIN contents c ON c.id = x.content_id JOIN models m ON m.id = x.model_id"))
    finally:
        c.close()
    return files, images, feats


def _run(folder: Path, db: Path, processes: bool, monkeypatch, progress=None):
    monkeypatch.setattr(pool, "USE_PROCESSES", processes)
    io_stats.reset()
    calls: list[tuple[int, int]] = []

    def record(done: int, total: int) -> None:
        calls.append((done, total))
        if progress:
            progress(done, total)

    rep = index_paths([folder], Catalog(db), MODELS, progress=record)
    return rep, calls, io_stats.files_read


def _facts(rep) -> tuple:
    return (rep.new, rep.changed, rep.unchanged, rep.decoded, rep.reused, sorted(rep.truncated), rep.paths,
            sorted((f.path, f.error) for f in rep.failed), sorted((f.path, f.error) for f in rep.skipped))


def test_pool_writes_the_thread_paths_catalog_and_report(mixed, tmp_path, monkeypatch):
    threads, t_calls, t_read = _run(mixed, tmp_path / "threads.sqlite", False, monkeypatch)
    procs, p_calls, p_read = _run(mixed, tmp_path / "procs.sqlite", True, monkeypatch)
    assert pool.worker_pids(), "the run did not go to worker processes"
    assert _dump(tmp_path / "procs.sqlite") == _dump(tmp_path / "threads.sqlite")
    assert _facts(procs) == _facts(threads)
    assert p_calls == t_calls and p_read == t_read  # progress and the parent's read count include the workers'
    failed = {os.path.basename(f.path) for f in procs.failed}
    assert {"empty.jpg", "not_an_image.jpg"} <= failed  # errors recorded per file, the run went on
    assert len(procs.paths) >= 40 and procs.truncated  # truncated_60pct.jpg kept what it had
    assert any(p.endswith("_not_utf8.jpg") for p in procs.paths)
    # the worker pool is started once per process: a second run reuses its workers
    pids = sorted(pool.worker_pids())
    again, _, read = _run(mixed, tmp_path / "procs2.sqlite", True, monkeypatch)
    assert sorted(pool.worker_pids()) == pids and _facts(again) == _facts(threads)


def test_pool_keeps_the_fast_path_and_reuses_moved_content(mixed, tmp_path, monkeypatch):
    db = tmp_path / "cat.sqlite"
    first, _, _ = _run(mixed, db, True, monkeypatch)
    again, _, read = _run(mixed, db, True, monkeypatch)
    retried = len(first.failed)  # files that failed are tried again; nothing else is read
    assert (again.unchanged, again.decoded, read) == (first.new, 0, retried)
    os.rename(mixed / "00_ukbench00000.jpg", mixed / "renamed.jpg")
    time.sleep(0.05)  # a rename sets the ctime: past the racy window, or the run reads it once more to settle
    moved, _, read = _run(mixed, db, True, monkeypatch)
    assert (moved.new, moved.reused, moved.decoded, read) == (1, 1, 0, 1 + retried)  # hashed, not decoded


def test_fifo_and_folder_swapped_in_after_planning_do_not_hang_a_worker(mixed, tmp_path, monkeypatch):
    victims = {"01_ukbench00001.jpg": "fifo", "02_ukbench00002.jpg": "folder", "03_ukbench00003.jpg": "gone"}

    def swap(done: int, total: int) -> None:  # first called after planning, before any file is read
        if done == 0:
            for name, kind in victims.items():
                os.unlink(mixed / name)
                if kind == "fifo":
                    os.mkfifo(mixed / name)
                elif kind == "folder":
                    os.mkdir(mixed / name)

    out: dict = {}
    runner = threading.Thread(target=lambda: out.update(rep=_run(mixed, tmp_path / "c.sqlite", True, monkeypatch,
                                                                  swap)[0]), daemon=True)
    runner.start()
    runner.join(120)
    assert not runner.is_alive(), "a worker hung on a FIFO"
    errors = {os.path.basename(f.path): f.error for f in out["rep"].failed}
    assert "not a regular file" in errors["01_ukbench00001.jpg"]
    assert "folder" in errors["02_ukbench00002.jpg"]
    assert "vanished" in errors["03_ukbench00003.jpg"]
    assert len(out["rep"].paths) >= 37


def crash_on_marked_files() -> None:
    """Worker setup (runs in each worker): reading a file named ``crash*`` kills the worker, every time;
    reading one named ``once*`` kills it the first time only (a marker file next to it remembers)."""
    from lookalike.index import pipeline

    real = pipeline.read_bytes

    def read(path):
        name = os.path.basename(path)
        if name.startswith("crash"):
            os._exit(70)
        if name.startswith("once"):
            marker = f"{path}.crashed"
            if not os.path.exists(marker):
                Path(marker).touch()
                os._exit(70)
        return real(path)

    pipeline.read_bytes = read


def test_crashed_worker_loses_only_the_file_it_crashed_on(mixed, tmp_path, monkeypatch):
    threads, _, _ = _run(mixed, tmp_path / "threads.sqlite", False, monkeypatch)
    shutil.copy(mixed / "05_ukbench00005.jpg", tmp_path / "crash_me.jpg")
    shutil.copy(mixed / "06_ukbench00006.jpg", tmp_path / "once_only.jpg")
    shutil.move(tmp_path / "crash_me.jpg", mixed / "crash_me.jpg")
    shutil.move(tmp_path / "once_only.jpg", mixed / "once_only.jpg")
    monkeypatch.setattr(pool, "WORKER_SETUP", crash_on_marked_files)
    try:
        rep, _, _ = _run(mixed, tmp_path / "procs.sqlite", True, monkeypatch)
    finally:
        pool.shutdown_pool()  # no later test gets the crashing workers
    for marker in mixed.glob("*.crashed"):
        marker.unlink()
    errors = {os.path.basename(f.path): f.error for f in rep.failed}
    assert errors.pop("crash_me.jpg") == pool.CRASHED
    assert errors == {os.path.basename(f.path): f.error for f in threads.failed}
    assert str(mixed / "once_only.jpg") in rep.paths  # in flight when its worker died: read again, indexed
    files, images, feats = _dump(tmp_path / "procs.sqlite")
    t_files, t_images, t_feats = _dump(tmp_path / "threads.sqlite")
    rows = {r[0]: r for r in files}
    assert all(rows[r[0]] == r for r in t_files)  # every other file's row, as the thread path wrote it
    assert set(t_feats) <= set(feats) and set(t_images) <= set(images)


def test_processes_only_for_hash_runs_and_where_spawning_is_safe(monkeypatch):
    from lookalike.features import load_extractor

    hashes = [load_extractor("phash"), load_extractor("dhash")]

    class Embedding:
        kind = "embedding"

    monkeypatch.setattr(pool, "cpu_count", lambda: 2)
    assert pool.use_processes(pool.POOL_MIN_FILES, hashes)  # pytest runs as `python -m pytest`: safe
    assert not pool.use_processes(pool.POOL_MIN_FILES - 1, hashes)
    assert not pool.use_processes(1000, [*hashes, Embedding()])
    monkeypatch.setattr(pool, "spawn_is_safe", lambda: False)  # a script without a main guard
    assert not pool.use_processes(1000, hashes)
    monkeypatch.setattr(pool, "USE_PROCESSES", True)  # ... that says it is guarded
    assert pool.use_processes(1, hashes)
    monkeypatch.setattr(pool, "cpu_count", lambda: 1)
    monkeypatch.setattr(pool, "USE_PROCESSES", None)
    monkeypatch.setattr(pool, "spawn_is_safe", lambda: True)
    assert not pool.use_processes(1000, hashes)  # one core: nothing to gain


def test_spawning_is_safe_under_a_script_that_only_defines(tmp_path, monkeypatch):
    """The ``lookalike`` command's script (as pip writes it) re-imported in a worker does nothing; a script
    with work at its top level would run it again, so it keeps its work in its own process."""
    import sys
    import types

    from lookalike.config import spawn_is_safe

    guarded = tmp_path / "lookalike"
    guarded.write_text("#!/usr/bin/python\nimport sys\nfrom lookalike.cli import main\n"
                       "if __name__ == '__main__':\n    sys.exit(main())\n")
    unguarded = tmp_path / "script.py"
    unguarded.write_text('"""doc"""\nimport os\ndef f():\n    pass\nos.remove("x")\n')
    for path, safe in ((guarded, True), (unguarded, False), (tmp_path / "missing.py", False)):
        main = types.ModuleType("__main__")
        main.__file__ = str(path)
        main.__spec__ = None
        monkeypatch.setitem(sys.modules, "__main__", main)
        assert spawn_is_safe() is safe, path


@needs_effnet
def test_effnet_in_worker_processes_gives_the_thread_paths_features(tmp_path, monkeypatch):
    """Workers prepare pictures for the model (sent without its inference session); the parent infers."""
    folder = tmp_path / "photos"
    folder.mkdir()
    for p in sorted(shared_data("photos").glob("*.jpg"))[:20]:
        shutil.copy(p, folder)
    time.sleep(0.05)
    for processes in (False, True):
        monkeypatch.setattr(pool, "USE_PROCESSES", processes)
        rep = index_paths([folder], Catalog(tmp_path / f"{processes}.sqlite"), ["effnet", "dihash"])
        assert rep.new == 20 and not rep.failed
    assert _dump(tmp_path / "True.sqlite") == _dump(tmp_path / "False.sqlite")
