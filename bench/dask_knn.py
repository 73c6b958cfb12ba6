"""The all-pairs k-NN graph on Dask (issue 11): 1 vs 2 local Dask workers against the local inverted file, in
one run, both ways the rows travel, and what N machines would do for 10M vectors, from the per-row costs
measured here.

    python bench/dask_knn.py                  # 100k synthetic 1280-d float16 vectors (bench/scale.py's data)
    python bench/dask_knn.py --n 20000 --k 10

Prints (same vectors, same process; clusters are started before their timer):
  local           InvertedFileSearcher.knn_graph (cells learnt + search), this process
  dask W / file   knn_graph_on_cluster on a LocalCluster of W worker processes (threads_per_worker=1), rows
                  through a memory-mapped .npy in the temporary folder
  dask W / scatter  the same, rows sent once by client.scatter
each with the driver's share (cells learnt and rows filed; rows written or scattered), the search (first task
sent to last block written), the tasks' own seconds summed, and whether the graph equals the local one.
"""

from __future__ import annotations

import argparse
import math
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))
sys.path.insert(0, str(ROOT / "bench"))

from lookalike.search import InvertedFileSearcher  # noqa: E402
from lookalike.search.distributed import GraphStats, knn_graph_on_cluster  # noqa: E402
from lookalike.search.ivf import cells_for  # noqa: E402
from scale import make_data  # noqa: E402


def load() -> str:
    return "load {:.2f} {:.2f} {:.2f}".format(*os.getloadavg())


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=100_000)
    ap.add_argument("--k", type=int, default=10)
    ap.add_argument("--probes", type=int, default=4)
    ap.add_argument("--data", type=Path, default=Path(tempfile.gettempdir()) / "lookalike-scale")
    ap.add_argument("--machines-cores", type=int, default=16, help="cores of each machine in the projection")
    ap.add_argument("--storage-gbps", type=float, default=10.0, help="network / shared storage in the projection")
    args = ap.parse_args()
    import distributed

    folder = args.data / str(args.n)
    make_data(args.n, folder)
    x = np.ascontiguousarray(np.load(folder / "vectors.npy"))
    n, dim = x.shape
    cells = cells_for(n)
    print(f"{n} x {dim} float16 vectors ({x.nbytes / 1e6:.0f} MB), k={args.k}, probes={args.probes}, {cells} cells, "
          f"{os.cpu_count()} cores; {load()}")

    t = time.perf_counter()
    ref = InvertedFileSearcher(x, probes=args.probes).knn_graph(args.k)
    t_local = time.perf_counter() - t
    print(f"local inverted file      {t_local:7.2f} s  {load()}")
    runs: dict[tuple[int, str], tuple[float, GraphStats]] = {}
    for workers in (1, 2):
        ts = time.perf_counter()
        cluster = distributed.LocalCluster(n_workers=workers, threads_per_worker=1, processes=True,
                                           dashboard_address=None, silence_logs=40)
        client = distributed.Client(cluster)
        ts = time.perf_counter() - ts
        for transport in ("file", "scatter"):
            stats = GraphStats()
            t = time.perf_counter()
            got = knn_graph_on_cluster(x, args.k, client, probes=args.probes, transport=transport, stats=stats)
            total = time.perf_counter() - t
            differ = int((got.indices != ref.indices).sum())
            worst = float(np.nanmax(np.abs(got.scores - ref.scores)))
            runs[(workers, transport)] = (total, stats)
            print(f"dask {workers} / {transport:7}      {total:7.2f} s  driver k-means {stats.train_s:.2f} s, send "
                  f"{stats.send_s:.2f} s, filing {stats.file_s:.2f} s (tasks {sum(stats.file_task_s):.2f} s), "
                  f"search {stats.search_s:.2f} s (tasks {sum(stats.task_s):.2f} s in {stats.tasks}); ids "
                  f"differing from local {differ} of {got.indices.size} (scores <= {worst:.1e})  (cluster start "
                  f"{ts:.1f} s)  {load()}")
        client.close()
        cluster.close()
    for transport in ("file", "scatter"):
        one, two = runs[(1, transport)][0], runs[(2, transport)][0]
        s1, s2 = runs[(1, transport)][1].search_s, runs[(2, transport)][1].search_s
        print(f"{transport}: 2 workers vs 1: {one / two:.2f}x end to end, {s1 / s2:.2f}x the search; "
              f"1 worker vs local: {t_local / one:.2f}x")

    # 10M on N machines, from the per-row costs here. Searching a row costs probes x (rows per cell) products
    # and filing it cells products: cells ~ 2 sqrt(N), so both grow per row as sqrt(N) (on the workers). The
    # driver's k-means on SAMPLE_PER_CELL rows a cell grows as cells^2 ~ N and is serial.
    big = 10_000_000
    grow = math.sqrt(big / n)
    one = runs[(1, "file")][1]
    search_row = sum(one.task_s) / n  # one worker process, one BLAS thread: one core's seconds
    file_row = sum(one.file_task_s) / n
    worker_core_s = big * (search_row + file_row) * grow
    kmeans_s = one.train_s * big / n
    data_gb = big * dim * 2 / 1e9
    result_gb = big * args.k * 8 / 1e9
    move_s = ((2 + args.probes) * data_gb + result_gb) * 1e9 / (args.storage_gbps * 1e9 / 8)
    print(f"\n10M x {dim} vectors ({data_gb:.1f} GB float16), per row here: search {search_row * 1e6:.0f} core-us, "
          f"filing {file_row * 1e6:.0f} core-us, both x{grow:.0f} at 10M = {worker_core_s / 3600:.1f} core-hours on "
          f"the workers; the driver's k-means (serial, this machine) {one.train_s:.1f} s x{big // n} = "
          f"{kmeans_s / 60:.0f} min; rows moved (written once, read for filing and for each task's cells and their "
          f"probed cells: <= {2 + args.probes}x the data) and the graph back ({result_gb:.1f} GB): "
          f"{move_s / 60:.1f} min at {args.storage_gbps:g} Gbit/s")
    print(f"| machines ({args.machines_cores} cores) | workers: hours | with the driver's k-means and the transfers: "
          "hours |")
    print("| ---: | ---: | ---: |")
    for machines in (1, 2, 4, 8, 16, 32, 64):
        work_h = worker_core_s / (machines * args.machines_cores) / 3600
        print(f"| {machines} | {work_h:.2f} | {work_h + (kmeans_s + move_s) / 3600:.2f} |")


if __name__ == "__main__":
    main()
