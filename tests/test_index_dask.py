"""Indexing on a Dask cluster (issue 11) and the Parquet export/import of features.

Real photos (UKBench from shared/data), real SQLite, real Dask LocalClusters of worker processes on loopback.
The catalog of a Dask run must equal the plain run's: file rows, picture facts and hash features byte for
byte, embeddings within float16 rounding (measured byte-identical on one machine; the test allows one
float16 step, since another CPU may round the model's last bit otherwise).
"""

from __future__ import annotations

import os
import shutil
import sqlite3
import stat
import time

import numpy as np
import pytest

from conftest import MODEL_DIR, effnet_available, shared_data

distributed = pytest.importorskip("distributed", reason="the lookalike[dask] extra is not installed")
pa = pytest.importorskip("pyarrow")
pq = pytest.importorskip("pyarrow.parquet")

from lookalike import dask_cluster  # noqa: E402
from lookalike.catalog import Catalog, FeatureRow  # noqa: E402
from lookalike.errors import UsageError  # noqa: E402
from lookalike.index import distributed as dask_index  # noqa: E402
from lookalike.index import index_paths  # noqa: E402

N_PHOTOS = 8
MODELS = ["phash", "dhash"] + (["effnet"] if effnet_available() else [])


@pytest.fixture
def photos(tmp_path):
    src = shared_data("photos")
    folder = tmp_path / "photos"
    folder.mkdir()
    for i in range(N_PHOTOS):
        shutil.copy2(src / f"ukbench{i:05d}.jpg", folder / f"ukbench{i:05d}.jpg")
    # a file read within a clock tick of its last change keeps no fast path (index/pipeline._racy): these
    # tests count unchanged files on the next run, so the copies must be older than that tick when read
    time.sleep(0.05)
    return folder


@pytest.fixture(scope="module")
def cluster():
    """Two Dask worker processes on loopback, shared by the tests of this module."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("LOOKALIKE_MODEL_DIR", str(MODEL_DIR))
        local = distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                         dashboard_address=None, silence_logs=40)
    client = distributed.Client(local)
    yield client
    client.close()
    local.close()


def _files_seen(client) -> int:
    return sum(s["files_seen"] for s in client.run(dask_index.worker_stats).values())


def _tables(path) -> dict[str, list]:
    db = sqlite3.connect(path)
    try:
        return {
            # content ids are the catalog's own numbering: rows are compared by their sha256 instead
            "files": db.execute("SELECT f.path,f.size,f.mtime_ns,c.sha256,f.status,f.error,f.inode,f.ctime_ns "
                                "FROM files f LEFT JOIN contents c ON c.id = f.content_id ORDER BY f.path").fetchall(),
            "images": db.execute("SELECT c.sha256,i.width,i.height,i.format,i.mode,i.truncated,i.frames,"
                                 "i.exif_datetime,i.exif_tags,i.bytes FROM images i JOIN contents c "
                                 "ON c.id = i.content_id ORDER BY c.sha256").fetchall(),
            "features": db.execute("SELECT c.sha256,m.model,m.version,x.data FROM features x "
                                   "JOIN contents c ON c.id = x.content_id JOIN models m ON m.id = x.model_id "
                                   "ORDER BY 1,2,3").fetchall(),
        }
    finally:
        db.close()


def test_two_local_dask_workers_give_the_plain_catalog(photos, tmp_path, run_cli):
    """`lookalike index --dask-workers 2` (a LocalCluster of two worker processes) writes the same catalog as
    a plain run: same file rows and picture facts, hash features byte for byte, embeddings within float16."""
    odd = os.path.join(os.fsencode(photos), b"caf\xe9 (not UTF-8).jpg")  # stored as a BLOB path
    shutil.copy2(photos / "ukbench00000.jpg", odd)
    model_args = [a for m in MODELS for a in ("-m", m)]
    plain = run_cli("index", photos, *model_args, "--catalog", tmp_path / "plain.sqlite", "--json").json()
    dask = run_cli("index", photos, *model_args, "--dask-workers", "2", "--catalog", tmp_path / "dask.sqlite",
                   "--json").json()
    assert (plain["new"], dask["new"], dask["failed"]) == (N_PHOTOS + 1, N_PHOTOS + 1, [])
    assert dask["dask"]["workers"] == 2 and dask["dask"]["sent"] == N_PHOTOS + 1 and dask["dask"]["shards"] >= 2
    a, b = _tables(tmp_path / "plain.sqlite"), _tables(tmp_path / "dask.sqlite")
    assert a["files"] == b["files"] and len(a["files"]) == N_PHOTOS + 1
    assert os.fsencode(odd) in [r[0] for r in b["files"]]
    assert all(r[4] == "ok" and r[7] is not None for r in b["files"])  # full fast-path rows
    assert a["images"] == b["images"] and len(a["images"]) == N_PHOTOS
    assert [r[:3] for r in a["features"]] == [r[:3] for r in b["features"]]
    assert len(a["features"]) == N_PHOTOS * len(MODELS)
    for x, y in zip(a["features"], b["features"], strict=True):
        if x[1] == "effnet":
            va, vb = (np.frombuffer(r[3], "<f2").astype(np.float32) for r in (x, y))
            assert np.abs(va - vb).max() <= 2**-10
        else:
            assert x[3] == y[3]


def test_a_second_dask_run_sends_nothing(photos, tmp_path, cluster):
    """Unchanged files pass the driver's fast path: no file reaches a worker; one changed file is the only one
    sent."""
    address = cluster.scheduler.address
    cat = Catalog(tmp_path / "c.sqlite")
    seen = _files_seen(cluster)
    first = index_paths([photos], cat, ["phash"], cluster=address)
    assert (first.new, first.sent, first.workers) == (N_PHOTOS, N_PHOTOS, 2)
    assert _files_seen(cluster) - seen == N_PHOTOS
    second = index_paths([photos], cat, ["phash"], cluster=address)
    assert (second.unchanged, second.sent, second.shards) == (N_PHOTOS, 0, 0)
    assert _files_seen(cluster) - seen == N_PHOTOS  # no worker read anything
    changed = photos / "ukbench00003.jpg"
    changed.write_bytes((photos / "ukbench00004.jpg").read_bytes())
    third = index_paths([photos], cat, ["phash"], cluster=address)
    assert (third.changed, third.unchanged, third.sent, third.reused) == (1, N_PHOTOS - 1, 1, 1)
    assert _files_seen(cluster) - seen == N_PHOTOS + 1
    row = cat.lookup_files([str(changed)])[str(changed)]
    assert row.content_hash == cat.lookup_files([str(photos / "ukbench00004.jpg")])[
        str(photos / "ukbench00004.jpg")].content_hash
    cat.close()


def test_a_file_a_worker_cannot_read_is_a_per_file_error(photos, tmp_path, cluster):
    """Files gone from (or no longer regular at) their path when the worker reads them fail one by one; the
    run goes on and indexes the rest."""
    gone, fifo = str(photos / "ukbench00001.jpg"), str(photos / "ukbench00002.jpg")

    def after_planning(done: int, total: int) -> None:
        if os.path.exists(gone):  # the driver has planned (stat-ed) every file: pull two of them away
            os.unlink(gone)
            os.unlink(fifo)
            os.mkfifo(fifo)

    cat = Catalog(tmp_path / "c.sqlite")
    report = index_paths([photos], cat, ["phash"], cluster=cluster.scheduler.address, progress=after_planning)
    errors = {f.path: f.error for f in report.failed}
    assert set(errors) == {gone, fifo}, errors
    assert "regular" in errors[fifo]
    assert report.new == N_PHOTOS - 2 and report.sent == N_PHOTOS and report.lost == 0
    rows = cat.lookup_files(report.paths)
    assert len(rows) == N_PHOTOS - 2 and all(r.status == "ok" for r in rows.values())
    assert cat.lookup_files([gone])[gone].status == "error"
    cat.close()


def test_an_interrupted_dask_run_leaves_whole_shards(photos, tmp_path, cluster):
    """Ctrl-C (KeyboardInterrupt) after the first shard is merged: the catalog holds whole files only (each row
    with its picture facts and every model's feature), the other shards are cancelled, and the next run sends
    just the files that are missing."""
    calls = []

    def interrupt(done: int, total: int) -> None:
        calls.append(done)
        if len(calls) == 2:  # 1: after planning; 2: after the first shard is in the catalog
            raise KeyboardInterrupt

    cat = Catalog(tmp_path / "c.sqlite")
    with pytest.raises(KeyboardInterrupt):
        index_paths([photos], cat, ["phash", "dhash"], cluster=cluster.scheduler.address, progress=interrupt)
    tables = _tables(tmp_path / "c.sqlite")
    stored = {r[3] for r in tables["files"]}
    assert 0 < len(stored) < N_PHOTOS
    assert {r[0] for r in tables["images"]} == stored
    want = sorted((h, m) for h in stored for m in ("dhash", "phash"))
    assert sorted((r[0], r[1]) for r in tables["features"]) == want
    rest = index_paths([photos], cat, ["phash", "dhash"], cluster=cluster.scheduler.address)
    assert (rest.unchanged, rest.new, rest.sent) == (len(stored), N_PHOTOS - len(stored), N_PHOTOS - len(stored))
    cat.close()


def test_a_worker_running_another_lookalike_is_refused(photos, tmp_path, cluster):
    """Every worker's lookalike version is checked before any work is sent: a mismatch is a clear error and
    nothing is indexed."""

    def set_version(version: str) -> str:
        import lookalike

        old, lookalike.__version__ = lookalike.__version__, version
        return old

    worker = sorted(cluster.scheduler_info()["workers"])[0]
    old = cluster.run(set_version, "9.9.9", workers=[worker])[worker]
    try:
        cat = Catalog(tmp_path / "c.sqlite")
        seen = _files_seen(cluster)
        with pytest.raises(dask_index.ClusterError, match=r"9\.9\.9.*same lookalike version"):
            index_paths([photos], cat, ["phash"], cluster=cluster.scheduler.address)
        assert _files_seen(cluster) == seen
        assert cat.stats()["files"] == 0
        cat.close()
    finally:
        cluster.run(set_version, old, workers=[worker])


def test_features_round_trip_through_parquet(photos, tmp_path, run_cli):
    """export features --parquet, then import features into an empty catalog: the same stored bytes; a second
    import writes nothing. Hashes and (when the weights are here) effnet embeddings."""
    src, dst = tmp_path / "src.sqlite", tmp_path / "dst.sqlite"
    for model in MODELS[:1] + MODELS[2:]:
        out = tmp_path / f"{model}.parquet"
        exported = run_cli("export", "features", photos, "--parquet", out, "-m", model, "--catalog", src,
                           "--json").json()
        assert exported["rows"] == N_PHOTOS
        whole = run_cli("export", "features", "--parquet", tmp_path / "all.parquet", "-m", model,
                        "--catalog", src, "--json").json()
        assert whole["rows"] == N_PHOTOS  # the whole catalog, nothing indexed
        table = pq.read_table(out)
        assert table.column("model").to_pylist() == [model] * N_PHOTOS
        first = run_cli("import", "features", out, "--catalog", dst, "--json").json()
        assert (first["rows"], first["written"], first["same"]) == (N_PHOTOS, N_PHOTOS, 0)
        again = run_cli("import", "features", out, "--catalog", dst, "--json").json()
        assert (again["written"], again["same"]) == (0, N_PHOTOS)
    assert _tables(src)["features"] == _tables(dst)["features"]


def test_import_never_overwrites_a_different_stored_value(photos, tmp_path):
    """A stored feature that differs from the file's stops the import before anything is written; --replace
    overwrites, and says how many."""
    from lookalike.export.parquet import export_features_parquet, import_features_parquet

    src = Catalog(tmp_path / "src.sqlite")
    export_features_parquet(tmp_path / "f.parquet", "phash", src, [photos])
    rows = pq.read_table(tmp_path / "f.parquet").to_pylist()
    dst = Catalog(tmp_path / "dst.sqlite")
    mine = bytes(8)  # a phash of all zeros: not what the file holds
    dst.write(features=[FeatureRow(rows[0]["content_hash"], "phash", "1", mine)])
    with pytest.raises(UsageError, match="differ.*nothing imported.*--replace"):
        import_features_parquet(tmp_path / "f.parquet", dst)
    stored = [(bytes.fromhex(rows[0]["content_hash"]), "phash", "1", mine)]
    assert _tables(tmp_path / "dst.sqlite")["features"] == stored
    done = import_features_parquet(tmp_path / "f.parquet", dst, replace=True)
    assert (done.replaced, done.written) == (1, N_PHOTOS - 1)
    assert _tables(tmp_path / "dst.sqlite")["features"] == _tables(tmp_path / "src.sqlite")["features"]
    src.close()
    dst.close()


def test_import_refuses_another_model_version_size_or_bad_values(photos, tmp_path):
    """The file's model must be this lookalike's (same version, kind and dim), and every row a sha256 with
    finite values of the right width; otherwise nothing is imported."""
    import json

    from lookalike.export.parquet import export_features_parquet, import_features_parquet

    src = Catalog(tmp_path / "src.sqlite")
    export_features_parquet(tmp_path / "f.parquet", "phash", src, [photos])
    table = pq.read_table(tmp_path / "f.parquet")
    meta = json.loads(table.schema.metadata[b"lookalike"])

    def variant(name: str, table=table, **changes) -> str:
        path = tmp_path / f"{name}.parquet"
        pq.write_table(table.replace_schema_metadata({"lookalike": json.dumps({**meta, **changes})}), path)
        return str(path)

    dst = Catalog(tmp_path / "dst.sqlite")
    with pytest.raises(UsageError, match="version 0 .*computes phash version 1"):
        import_features_parquet(variant("old", version="0"), dst)
    with pytest.raises(UsageError, match="dim 128"):
        import_features_parquet(variant("wide", dim=128), dst)
    with pytest.raises(UsageError, match="unknown model"):
        import_features_parquet(variant("alien", model="alien"), dst)
    bad_hash = table.set_column(1, "content_hash", pa.array(["../../etc/passwd"] * len(table)))
    with pytest.raises(UsageError, match="no sha256"):
        import_features_parquet(variant("badhash", table=bad_hash), dst)
    with pytest.raises(UsageError, match="not a lookalike features file"):
        pq.write_table(table.replace_schema_metadata({}), tmp_path / "plain.parquet")
        import_features_parquet(tmp_path / "plain.parquet", dst)
    with pytest.raises(UsageError, match="as Parquet"):
        import_features_parquet(photos / "ukbench00000.jpg", dst)
    os.mkfifo(tmp_path / "fifo.parquet")  # an export never opens (and blocks on) a FIFO, nor replaces it
    with pytest.raises(UsageError, match="not a regular file"):
        export_features_parquet(tmp_path / "fifo.parquet", "phash", src)
    assert stat.S_ISFIFO(os.lstat(tmp_path / "fifo.parquet").st_mode)
    assert _tables(tmp_path / "dst.sqlite")["features"] == []
    if effnet_available():  # an embedding that is not a finite number
        export_features_parquet(tmp_path / "e.parquet", "effnet", src, [photos])
        emb = pq.read_table(tmp_path / "e.parquet")
        values = emb.column("feature").combine_chunks().flatten().to_numpy().copy()
        values[5] = np.nan
        emb = emb.set_column(4, "feature", pa.FixedSizeListArray.from_arrays(pa.array(values), 1280))
        pq.write_table(emb, tmp_path / "nan.parquet")
        with pytest.raises(UsageError, match="not a finite number"):
            import_features_parquet(tmp_path / "nan.parquet", dst)
        assert _tables(tmp_path / "dst.sqlite")["features"] == []
    src.close()
    dst.close()


def test_worker_rows_outside_the_shard_are_refused():
    """The one writer checks what a worker sends: rows about other files, pictures or features of contents the
    shard does not hold, or features of another model version never reach the catalog."""
    from lookalike.catalog import FileRow, ImageRow

    ext = [dask_index.load_extractor("phash")]
    job = dask_index.ShardJob("/p/a.jpg", 1, 1, "new", 1, 1, None, None)
    h, other = "a" * 64, "b" * 64
    good = FileRow("/p/a.jpg", 1, 1, h, "ok", None, 1, 1)
    feat = FeatureRow(h, "phash", "1", bytes(8))
    dask_index._check_rows([job], [good], [], [feat], ext, "w")  # the shard's own rows pass
    bad_cases = {
        "not its shard's files": ([FileRow("/etc/x.jpg", 1, 1, h, "ok", None, 1, 1)], [], []),
        "does not hold": ([good], [ImageRow(other, 1, 1, "JPEG", "RGB", False, 1, None, 0, 1)], []),
        "version 0": ([good], [], [FeatureRow(h, "phash", "0", bytes(8))]),
        "bytes instead of 8": ([good], [], [FeatureRow(h, "phash", "1", bytes(16))]),
    }
    for why, (files, images, features) in bad_cases.items():
        with pytest.raises(dask_index.ClusterError, match=why):
            dask_index._check_rows([job], files, images, features, ext, "w")


def test_an_unreachable_scheduler_is_one_clear_error(photos, tmp_path, monkeypatch, run_cli):
    """No scheduler at the address: a ClusterError naming it, nothing indexed; --scheduler with --dask-workers
    is refused by the CLI."""
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # closed again: nobody listens there
    monkeypatch.setattr(dask_cluster, "CONNECT_TIMEOUT_S", 2)  # moved there from index/distributed.py
    cat = Catalog(tmp_path / "c.sqlite")
    with pytest.raises(dask_index.ClusterError, match=f"cannot reach the Dask scheduler at tcp://127.0.0.1:{port}"):
        index_paths([photos], cat, ["phash"], cluster=f"tcp://127.0.0.1:{port}")
    assert cat.stats()["files"] == 0
    cat.close()
    res = run_cli("index", photos, "-m", "phash", "--scheduler", "tcp://127.0.0.1:1", "--dask-workers", "2",
                  "--catalog", tmp_path / "c.sqlite", check=False)
    assert res.returncode == 1 and "not both" in res.stderr


def test_a_shard_whose_worker_fails_is_retried_next_run(photos, tmp_path, cluster):
    """A worker that fails on a whole shard (here: its pool raises, as a worker that lost its disk would) makes
    that shard's files per-file failures with the reason; nothing is written for them, the other shards are
    merged, and the next run indexes them."""
    bad = str(photos / "ukbench00005.jpg")

    def break_pool(path: str) -> None:
        from lookalike.index import pipeline

        real = getattr(pipeline, "_real_run_in_pool", pipeline._run_in_pool)
        pipeline._real_run_in_pool = real

        def failing(jobs, *args):
            if any(j.path == path for j in jobs):
                raise OSError("input/output error on the worker's mount")
            return real(jobs, *args)

        pipeline._run_in_pool = failing

    def mend_pool() -> None:
        from lookalike.index import pipeline

        pipeline._run_in_pool = getattr(pipeline, "_real_run_in_pool", pipeline._run_in_pool)

    cat = Catalog(tmp_path / "c.sqlite")
    cluster.run(break_pool, bad)
    try:
        report = index_paths([photos], cat, ["phash"], cluster=cluster.scheduler.address)
    finally:
        cluster.run(mend_pool)
    lost = {f.path: f.error for f in report.failed}
    assert report.lost == 1 and bad in lost and "input/output error" in lost[bad]
    assert report.new == N_PHOTOS - len(lost)
    assert not cat.lookup_files(list(lost))  # no row: the next run tries them again
    again = index_paths([photos], cat, ["phash"], cluster=cluster.scheduler.address)
    assert (again.new, again.unchanged, again.failed) == (len(lost), N_PHOTOS - len(lost), [])
    cat.close()


def test_imported_features_spare_the_model(photos, tmp_path, monkeypatch):
    """Features imported from Parquet are keyed by content: indexing the same photos on another catalog then
    never runs the model (its inference would fail here), and stores exactly the imported values."""
    from lookalike.export.parquet import export_features_parquet, import_features_parquet
    from lookalike.features import load_extractor

    src = Catalog(tmp_path / "src.sqlite")
    export_features_parquet(tmp_path / "f.parquet", "phash", src, [photos])
    dst = Catalog(tmp_path / "dst.sqlite")
    assert import_features_parquet(tmp_path / "f.parquet", dst).written == N_PHOTOS

    def no_model(batch):
        raise AssertionError("the model ran although every feature was imported")

    monkeypatch.setattr(load_extractor("phash"), "infer", no_model)
    report = index_paths([photos], dst, ["phash"])
    assert report.new == N_PHOTOS and not report.failed
    assert _tables(tmp_path / "dst.sqlite")["features"] == _tables(tmp_path / "src.sqlite")["features"]
    src.close()
    dst.close()
