"""Indexing on Dask (issue 11): 1 vs 2 local Dask workers against the plain indexer, in one run, and what N
machines would do for 10M photos, from the per-file costs measured here.

    python bench/dask_index.py                 # the 400 UKBench photos of ../shared/data/photos, effnet
    python bench/dask_index.py --model phash --files 200

Prints (each from a fresh catalog, same files, same process; the clusters are started before their timer):
  plain           index_paths, no Dask
  dask 1 / 2      index_paths(cluster=ADDR) on a LocalCluster of 1 / 2 worker processes (threads_per_worker=1)
  re-run          the 2-worker run again, nothing changed (the driver's walk + stat + fast path per file)
and the per-file costs: read + hash + decode + prepare (one thread, these photos and a 12-MP JPEG), embed
(batches of 16), the shard result's bytes and its transfer + unpickling on the driver, the driver's merge
(Arrow -> rows -> one Catalog.write per shard). From those, a table for 10M photos on N machines.
"""

from __future__ import annotations

import argparse
import io
import os
import pickle
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from lookalike.catalog import Catalog  # noqa: E402
from lookalike.features import load_extractor  # noqa: E402
from lookalike.index import distributed as dask_index  # noqa: E402
from lookalike.index import index_paths  # noqa: E402
from lookalike.index.pipeline import _Job, _read_and_prepare  # noqa: E402

SHARED = Path(os.environ.get("LOOKALIKE_SHARED", ROOT.parent / "shared"))


def load() -> str:
    return "load {:.2f} {:.2f} {:.2f}".format(*os.getloadavg())


def timed(fn, *args, **kwargs) -> tuple[float, object]:
    t = time.perf_counter()
    out = fn(*args, **kwargs)
    return time.perf_counter() - t, out


def per_file_read_decode(paths: list[str], models: list[str]) -> float:
    """Seconds per file of read + sha256 + decode + prepare, one thread, nothing known."""
    exts = [load_extractor(m) for m in models]
    side = dask_index._WorkerSide({})
    t = time.perf_counter()
    for p in paths:
        st = os.stat(p)
        done = _read_and_prepare(_Job(p, st.st_size, st.st_mtime_ns, "new", st.st_ino, st.st_ctime_ns), side, exts)
        assert done.error is None, done.error
    return (time.perf_counter() - t) / len(paths)


def per_file_embed(paths: list[str], models: list[str]) -> float:
    """Seconds per file of the models' inference, batches of 16, pre-decoded."""
    exts = [load_extractor(m) for m in models]
    side = dask_index._WorkerSide({})
    prepared = {e.id: [] for e in exts}
    for p in paths:
        st = os.stat(p)
        done = _read_and_prepare(_Job(p, st.st_size, st.st_mtime_ns, "new", st.st_ino, st.st_ctime_ns), side, exts)
        for k, v in done.prepared.items():
            prepared[k].append(v)
    t = time.perf_counter()
    for e in exts:
        arrs = prepared[e.id]
        for i in range(0, len(arrs), 16):
            e.infer(np.stack(arrs[i : i + 16]))
    return (time.perf_counter() - t) / len(paths)


def twelve_mp(src: str, dest: Path) -> str:
    """A 4000x3000 JPEG (quality 90) made from a real photo, for the decode cost of a camera-sized file."""
    img = Image.open(src).convert("RGB").resize((4000, 3000), Image.Resampling.LANCZOS)
    noise = np.random.default_rng(0).integers(0, 12, (3000, 4000, 3), dtype=np.uint8)
    img = Image.fromarray(np.clip(np.asarray(img, dtype=np.int16) + noise - 6, 0, 255).astype(np.uint8))
    buf = io.BytesIO()
    img.save(buf, format="JPEG", quality=90)
    path = dest / "twelve_mp.jpg"
    path.write_bytes(buf.getvalue())
    return str(path)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--files", type=int, default=400, help="how many of the shared photos (at most 400)")
    ap.add_argument("--model", action="append", help="model(s); default effnet")
    ap.add_argument("--machines-cores", type=int, default=16, help="cores of each machine in the projection")
    ap.add_argument("--storage-gbps", type=float, default=10.0, help="shared storage bandwidth in the projection")
    args = ap.parse_args()
    models = args.model or ["effnet"]
    import distributed

    src = sorted((SHARED / "data" / "photos").glob("*.jpg"))[: args.files]
    if not src:
        sys.exit(f"no photos in {SHARED / 'data' / 'photos'}")
    tmp = Path(tempfile.mkdtemp(prefix="lookalike-dask-bench-"))
    folder = tmp / "photos"
    folder.mkdir()
    for p in src:
        shutil.copy2(p, folder / p.name)
    paths = sorted(str(p) for p in folder.iterdir())
    n = len(paths)
    mean_bytes = sum(os.path.getsize(p) for p in paths) / n
    for m in models:
        load_extractor(m)  # weights loaded before any timer
    print(f"{n} photos (mean {mean_bytes / 1e3:.0f} KB), models {models}, {os.cpu_count()} cores; {load()}")

    rows: dict[str, float] = {}
    t, rep = timed(index_paths, [folder], Catalog(tmp / "plain.sqlite"), models)
    rows["plain"] = t
    print(f"plain indexer         {t:7.2f} s  {n / t:6.1f} files/s  {load()}")
    starts = {}
    for workers in (1, 2):
        ts, local = timed(distributed.LocalCluster, n_workers=workers, threads_per_worker=1, processes=True,
                          dashboard_address=None, silence_logs=40)
        starts[workers] = ts
        client = distributed.Client(local)
        client.run(lambda ms=tuple(models): [load_extractor(m) for m in ms] and None)  # weights on each worker
        cat = Catalog(tmp / f"dask{workers}.sqlite")
        t, rep = timed(index_paths, [folder], cat, models, cluster=local.scheduler_address)
        assert rep.new == n and not rep.failed, rep.to_json()
        rows[f"dask{workers}"] = t
        print(f"dask, {workers} worker(s)      {t:7.2f} s  {n / t:6.1f} files/s  ({rep.shards} shards; cluster "
              f"start {ts:.1f} s)  {load()}")
        if workers == 2:
            t, rep = timed(index_paths, [folder], cat, models, cluster=local.scheduler_address)
            assert rep.sent == 0
            rows["rerun"] = t
            print(f"re-run, nothing sent  {t:7.3f} s  ({t / n * 1e6:.0f} us/file on the driver)  {load()}")
            # transfer and merge of one shard of 32 files, measured on the driver
            shard = [dask_index.ShardJob(p, os.stat(p).st_size, os.stat(p).st_mtime_ns, "new", os.stat(p).st_ino,
                                         os.stat(p).st_ctime_ns, None, None) for p in paths[:32]]
            fut = client.submit(dask_index.index_shard, shard, models, dask_index.fingerprint(models), {},
                                pure=False)
            distributed.wait(fut)
            t_transfer, result = timed(fut.result)
            nbytes = len(pickle.dumps(result))
            merge_cat = Catalog(tmp / "merge.sqlite")
            t_merge, _ = timed(lambda c=merge_cat, r=result: c.write(*dask_index._rows(r)))
            rows["transfer"], rows["bytes"], rows["merge"] = t_transfer / 32, nbytes / 32, t_merge / 32
        client.close()
        local.close()

    sample = paths[:64]
    rows["decode"] = per_file_read_decode(sample, models)
    rows["embed"] = per_file_embed(sample, models)
    big = twelve_mp(paths[0], tmp)
    rows["decode12"] = per_file_read_decode([big] * 8, models)
    big_bytes = os.path.getsize(big)
    print(f"per file: read+hash+decode+prepare {rows['decode'] * 1e3:.1f} ms (12-MP JPEG of {big_bytes / 1e6:.1f} MB: "
          f"{rows['decode12'] * 1e3:.1f} ms), embed {rows['embed'] * 1e3:.1f} ms, result {rows['bytes']:.0f} B, "
          f"transfer+unpickle {rows['transfer'] * 1e6:.0f} us, merge {rows['merge'] * 1e6:.0f} us  {load()}")
    ratio = rows["dask1"] / rows["dask2"]
    print(f"2 workers vs 1: {ratio:.2f}x faster; 1 worker vs plain: {rows['plain'] / rows['dask1']:.2f}x")

    # 10M photos on N machines: workers limited by CPU (core-seconds per file, measured one thread per file here
    # with the model on all cores: the plain run's rate on this machine's cores), the one writer by its merge,
    # the driver's plan by its per-file stat.
    total = 10_000_000
    cores_here = len(os.sched_getaffinity(0))
    core_s = rows["plain"] / n * cores_here  # core-seconds per file, these photos, end to end
    core_s12 = core_s + (rows["decode12"] - rows["decode"]) * 1.0  # camera-sized files: decode costs more
    merge_rate = 1 / (rows["merge"] + rows["transfer"])
    print(f"\n10M photos, machines of {args.machines_cores} cores (core-s per file here: {core_s * 1e3:.1f} ms "
          f"for these photos, {core_s12 * 1e3:.1f} ms for 12-MP JPEGs; one writer merges {merge_rate:,.0f} files/s; "
          f"plan {rows['rerun'] / n * total / 60:.1f} min of stat on the driver)")
    bw = args.storage_gbps * 1e9 / 8
    plan_h = rows["rerun"] / n * total / 3600
    print(f"shared storage at {args.storage_gbps:g} Gbit/s; 12-MP JPEGs of {big_bytes / 1e6:.1f} MB")
    print("| machines | these photos: hours | bound by | 12-MP photos: hours | bound by |")
    print("| ---: | ---: | --- | ---: | --- |")
    for machines in (1, 2, 4, 8, 16, 32, 64, 128):
        cells = []
        for cost, size in ((core_s, mean_bytes), (core_s12, big_bytes)):
            limits = {"workers' CPU": total * cost / (machines * args.machines_cores),
                      "the one writer": total / merge_rate, "storage": total * size / bw}
            bound = max(limits, key=limits.get)
            cells += [f"{plan_h + limits[bound] / 3600:.1f}", bound]
        print(f"| {machines} | " + " | ".join(cells) + " |")
    print("(hours include the driver's plan of 10M files: walk + stat + fast path, "
          f"{plan_h * 60:.1f} min at the per-file cost measured here on a local disk)")
    shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
