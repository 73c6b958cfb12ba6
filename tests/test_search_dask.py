"""The all-pairs k-NN graph on a Dask cluster (issue 11): partitioned by inverted-file cell (or, exact, by rows).

Real Dask LocalClusters of two worker processes on loopback. The graph on Dask must be the local one: the same
neighbours and scores for the same cells and probes (float products may differ in the last bit with another
BLAS thread count, so a swap of two neighbours whose scores tie within 1e-6 is allowed), exact search on a
small set, and ``lookalike sort --dask-workers 2`` must give the plain order.
"""

from __future__ import annotations

import shutil

import numpy as np
import pytest

from conftest import shared_data

distributed = pytest.importorskip("distributed", reason="the lookalike[dask] extra is not installed")
pytest.importorskip("pyarrow")

from lookalike.catalog import Catalog  # noqa: E402
from lookalike.errors import UsageError  # noqa: E402
from lookalike.index import distributed as dask_index  # noqa: E402
from lookalike.options import check_cluster, cluster_option  # noqa: E402
from lookalike.search import ExactCosineSearcher, InvertedFileSearcher, make_searcher  # noqa: E402
from lookalike.search import distributed as dask_search  # noqa: E402
from lookalike.search.base import unit_block  # noqa: E402
from lookalike.search.ivf import cells_for  # noqa: E402


@pytest.fixture(scope="module")
def client():
    """Two Dask worker processes on loopback, shared by the tests of this module."""
    local = distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None,
                                     silence_logs=40)
    c = distributed.Client(local)
    yield c
    c.close()
    local.close()


def clustered(n: int, dim: int = 48, seed: int = 0) -> np.ndarray:
    """n float16 unit rows around n / 100 random centres (as the catalog stores embeddings)."""
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((max(2, n // 100), dim)).astype(np.float32)
    x = centres[rng.integers(0, len(centres), n)] + 0.6 * rng.standard_normal((n, dim)).astype(np.float32)
    return unit_block(x).astype(np.float16)


def assert_same_graph(got, want) -> None:
    """Same neighbours, same scores (to 1e-6); two neighbours may trade places only where their scores tie."""
    assert got.indices.shape == want.indices.shape
    np.testing.assert_allclose(got.scores, want.scores, atol=1e-6, rtol=0)
    differ = got.indices != want.indices
    assert differ.sum() <= max(2, want.indices.size // 20_000), int(differ.sum())
    for r in np.unique(np.nonzero(differ)[0]):  # a swap of tied neighbours: the same set in that row
        tied = np.abs(want.scores[r] - want.scores[r][differ[r]].min()) <= 2e-6
        assert set(got.indices[r][~tied]) == set(want.indices[r][~tied])


def _rows_searched(client) -> dict[str, int]:
    return {w: s["rows_searched"] for w, s in client.run(dask_search.worker_stats).items()}


@pytest.mark.parametrize("transport", ["file", "scatter"])
def test_the_graph_on_two_workers_is_the_local_inverted_file_graph(client, transport):
    """20k clustered rows: the Dask graph, split into tasks of consecutive cells over both workers, equals
    InvertedFileSearcher.knn_graph with the same cells and probes, whichever way the rows travel."""
    x = clustered(20_000)
    want = InvertedFileSearcher(x, probes=4).knn_graph(10)
    before = _rows_searched(client)
    stats = dask_search.GraphStats()
    got = dask_search.knn_graph_on_cluster(x, 10, client, probes=4, transport=transport, stats=stats)
    after = _rows_searched(client)
    assert (stats.workers, stats.tasks, stats.transport, stats.exact) == (2, 8, transport, False)
    assert stats.cells == cells_for(len(x)) > stats.tasks
    searched = {w: after[w] - before.get(w, 0) for w in after}
    assert sum(searched.values()) == len(x) and all(v > 0 for v in searched.values()), searched
    assert_same_graph(got, want)
    assert (got.indices != np.arange(len(x))[:, None]).all()  # never a row's own neighbour
    assert not any(client.run(lambda: len(dask_search._MAPPED)).values())  # the shared file let go, and removed


def test_on_a_small_set_the_dask_graph_is_exact_search(client):
    """At most EXACT_LIMIT rows, make_searcher(..., cluster=) is split by rows and searched exactly: the graph
    of exact search, also with duplicate rows and k larger than the set."""
    x = clustered(300, seed=1)
    x[7] = x[3]  # an identical pair: each the other's nearest, never itself
    for k in (5, 400):
        want = ExactCosineSearcher(x).knn_graph(k)
        got = make_searcher("embedding", x, cluster=client.scheduler.address).knn_graph(k)
        assert_same_graph(got, want)
        assert got.indices[3, 0] == 7 and got.indices[7, 0] == 3
    assert (got.indices[:, 299:] == -1).all() and np.isnan(got.scores[:, 299:]).all()


def test_sort_with_two_dask_workers_gives_the_plain_order(tmp_path, run_cli, client):
    """`lookalike sort --dask-workers 2` on real photos gives the order of a plain sort; from Python, with a
    scheduler address, both the indexing and the k-NN graph run on the workers."""
    from lookalike.organise import sort_folder

    folder = tmp_path / "photos"
    folder.mkdir()
    for p in sorted(shared_data("photos").glob("*.jpg"))[:24]:
        shutil.copy2(p, folder / p.name)
    plain = run_cli("sort", folder, "-m", "phash", "--catalog", tmp_path / "plain.sqlite", "--json").json()
    dask = run_cli("sort", folder, "-m", "phash", "--dask-workers", "2", "--catalog", tmp_path / "dask.sqlite",
                   "--json").json()
    assert len(plain["order"]) == 24 and dask["order"] == plain["order"]

    files_before = sum(s["files_seen"] for s in client.run(dask_index.worker_stats).values())
    rows_before = sum(_rows_searched(client).values())
    cat = Catalog(tmp_path / "lib.sqlite")
    report = sort_folder(folder, "phash", catalog=cat, dask=client.scheduler.address)
    assert report.order == plain["order"]
    assert sum(s["files_seen"] for s in client.run(dask_index.worker_stats).values()) - files_before == 24
    assert sum(_rows_searched(client).values()) - rows_before == 24
    cat.close()


def test_the_cluster_option_is_checked_once_for_every_front_end(tmp_path, run_cli):
    """One validator (options.py): both options at once, a worker count out of range, a blank address and a
    bool are refused with the option's name, by the CLI of sort, cluster and dupes and by the library, before
    anything is read."""
    assert cluster_option(None, 3) == 3 and cluster_option("tcp://h:8786", None) == "tcp://h:8786"
    for bad, words in (((None, 0), "--dask-workers 0 is out of range"), (("tcp://h:1", 2), "not both"),
                       ((" ", None), "is not a Dask scheduler address"), ((None, 257), "between 1 and 256")):
        with pytest.raises(UsageError, match=words):
            cluster_option(*bad)
    with pytest.raises(UsageError, match="a number of local workers"):
        check_cluster(True)
    from lookalike.dupes import find_duplicates
    from lookalike.organise import cluster_folder, sort_folder

    folder = tmp_path / "none-read"
    folder.mkdir()
    for call in (lambda: sort_folder(folder, dask=0), lambda: cluster_folder(folder, dask=-1),
                 lambda: find_duplicates([folder], dask=1000)):
        with pytest.raises(UsageError, match="--dask-workers .* is out of range"):
            call()
    for cmd in ("sort", "cluster", "dupes"):
        res = run_cli(cmd, folder, "--dask-workers", "0", "--catalog", tmp_path / "c.sqlite", check=False)
        assert res.returncode == 1 and "--dask-workers 0 is out of range" in res.stderr, (cmd, res.stderr)
        res = run_cli(cmd, folder, "--dask-workers", "2", "--scheduler", "tcp://127.0.0.1:1", check=False)
        assert res.returncode == 1 and "not both" in res.stderr, (cmd, res.stderr)
    assert not (tmp_path / "c.sqlite").exists()
