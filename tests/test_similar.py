"""`similar` and search: exactness of the blocked search, UKBench neighbours, CLI output shapes."""

from __future__ import annotations

import csv
import shutil

import numpy as np
import pytest

from conftest import needs_effnet, shared_data
from lookalike.collection import Collection
from lookalike.features.hashes import pack_bits
from lookalike.search import ExactCosineSearcher, HammingSearcher, make_searcher


def test_blocked_cosine_search_equals_brute_force():
    rng = np.random.default_rng(1)
    base = rng.normal(size=(1000, 32)).astype(np.float32)
    base /= np.linalg.norm(base, axis=1, keepdims=True)
    queries = rng.normal(size=(37, 32)).astype(np.float32)
    got = ExactCosineSearcher(base.astype(np.float16), query_block=8, base_block=100).query(queries, 7)
    qn = queries / np.linalg.norm(queries, axis=1, keepdims=True)
    sims = qn @ base.astype(np.float16).astype(np.float32).T
    want = np.argsort(-sims, axis=1, kind="stable")[:, :7]
    assert np.array_equal(got.indices, want)
    assert np.allclose(got.scores, np.take_along_axis(sims, want, axis=1), atol=1e-5)


def test_blocked_hamming_search_equals_brute_force():
    rng = np.random.default_rng(2)
    bits = rng.integers(0, 2, size=(500, 64)).astype(bool)
    base = pack_bits(bits)
    qbits = rng.integers(0, 2, size=(20, 64)).astype(bool)
    got = HammingSearcher(base, query_block=3, base_block=64).query(pack_bits(qbits), 5)
    dist = (qbits[:, None, :] != bits[None, :, :]).sum(axis=2)
    for i in range(20):
        assert list(got.scores[i]) == sorted(dist[i])[:5]
        assert all(dist[i, j] == s for j, s in zip(got.indices[i], got.scores[i], strict=True))


def test_knn_graph_excludes_self_and_pads_small_sets():
    data = np.eye(3, dtype=np.float32)
    g = make_searcher("embedding", data).knn_graph(4)
    assert g.indices.shape == (3, 4)
    for i in range(3):
        assert i not in g.indices[i][:2] and list(g.indices[i][2:]) == [-1, -1]


def test_phash_similar_finds_identical_encodings(tmp_path, run_cli):
    folder = tmp_path / "edge"
    shutil.copytree(shared_data("edge"), folder)
    res = run_cli("similar", folder / "UPPERCASE.JPG", "--in", folder, "--model", "phash", "-k", "6", "--json")
    out = res.json()
    assert out["query"] == str(folder / "UPPERCASE.JPG") and out["model"] == "phash"
    paths = [r["path"] for r in out["results"]]
    assert str(folder / "UPPERCASE.JPG") not in paths  # the query itself is excluded
    scores = {r["path"]: r["score"] for r in out["results"]}
    # byte-identical copies (and re-encodings of the same picture) are at distance 0
    assert scores[str(folder / "jpeg_without_extension")] == 0.0 and scores[str(folder / "photo é 日本.jpg")] == 0.0
    assert [r["score"] for r in out["results"]] == sorted(r["score"] for r in out["results"])


@needs_effnet
def test_ukbench_neighbours_are_group_mates():
    """Reference (shared/docs/REFERENCE.md): 2.93 of 3 group mates on average, 94% of images get all 3."""
    folder = shared_data("photos")
    paths, matrix = Collection(folder).features("effnet")
    assert len(paths) == 400 and matrix.shape == (400, 1280)
    graph = make_searcher("embedding", matrix).knn_graph(3)
    group = np.array([int(p[-9:-4]) // 4 for p in paths])
    mates = (group[graph.indices] == group[:, None]).sum(axis=1)
    assert mates.mean() >= 2.9
    assert (mates == 3).mean() >= 0.92


@needs_effnet
def test_cli_similar_json_csv_and_outside_query(tmp_path, run_cli):
    src = shared_data("photos")
    folder = tmp_path / "in"
    folder.mkdir()
    for i in range(7):
        shutil.copy(src / f"ukbench{i:05d}.jpg", folder)
    outside = tmp_path / "query.jpg"  # group mates 4, 5, 6 are in the folder; the query is not
    shutil.copy(src / "ukbench00007.jpg", outside)
    cat = tmp_path / "c.sqlite"
    out = run_cli("similar", folder / "ukbench00000.jpg", "--in", folder, "-k", "3", "--json", "--catalog", cat).json()
    assert set(out) == {"query", "model", "results"} and out["model"] == "effnet"
    assert sorted(r["path"] for r in out["results"]) == [str(folder / f"ukbench{i:05d}.jpg") for i in (1, 2, 3)]
    scores = [r["score"] for r in out["results"]]
    assert scores == sorted(scores, reverse=True) and all(-1 <= s <= 1 for s in scores)
    out2 = run_cli("similar", outside, "--in", folder, "-k", "10", "--json", "--catalog", cat).json()
    assert len(out2["results"]) == 7 and out2["query"] == str(outside)  # fewer images than k: all of them
    assert {r["path"] for r in out2["results"][:3]} == {str(folder / f"ukbench{i:05d}.jpg") for i in (4, 5, 6)}
    rows = list(csv.reader(run_cli("similar", outside, "--in", folder, "--csv", "--catalog", cat).stdout.splitlines()))
    assert rows[0] == ["path", "score"] and len(rows) == 6


@needs_effnet
def test_export_features_csv(tmp_path, run_cli):
    folder = tmp_path / "in"
    folder.mkdir()
    for i in range(3):
        shutil.copy(shared_data("photos", f"ukbench{i:05d}.jpg"), folder)
    target = tmp_path / "features.csv"
    run_cli("export", "features", folder, "--csv", target, "--catalog", tmp_path / "c.sqlite")
    header, *rows = list(csv.reader(target.open()))
    assert header == ["path", *(f"v{i}" for i in range(1280))]  # issue 13: a header row
    assert len(rows) == 3 and all(len(r) == 1281 for r in rows)
    vec = np.array(rows[0][1:], dtype=np.float32)
    assert abs(np.linalg.norm(vec) - 1) < 1e-2


def test_export_hash_features_as_bits(tmp_path, run_cli):
    folder = tmp_path / "in"
    folder.mkdir()
    shutil.copy(shared_data("photos", "ukbench00000.jpg"), folder)
    target = tmp_path / "h.csv"
    run_cli("export", "features", folder, "--csv", target, "--model", "dhash")
    header, *rows = list(csv.reader(target.open()))
    assert header == ["path", *(f"bit{i}" for i in range(64))]  # issue 13: a header row
    assert len(rows) == 1 and len(rows[0]) == 65 and set(rows[0][1:]) <= {"0", "1"}


def test_similar_errors_are_clear(tmp_path, run_cli):
    res = run_cli("similar", tmp_path / "nope.jpg", "--in", tmp_path, "--model", "phash", check=False)
    assert res.returncode == 1 and "no such image file" in res.stderr
    res = run_cli("similar", tmp_path / "nope.jpg", "--in", tmp_path / "missing", "--model", "phash", check=False)
    assert res.returncode == 1 and "no such file or folder" in res.stderr


def test_collection_api_with_bytes_query(tmp_path):
    folder = tmp_path / "in"
    folder.mkdir()
    for i in range(4):
        shutil.copy(shared_data("photos", f"ukbench{i * 4:05d}.jpg"), folder)
    data = shared_data("photos", "ukbench00004.jpg").read_bytes()
    res = Collection(folder, catalog=tmp_path / "c.sqlite").similar(data, k=1, model="phash")
    assert res.query == "<upload>" and res.results[0].path.endswith("ukbench00004.jpg")
    assert res.results[0].score == 0.0
    with pytest.raises(Exception, match="-k 0 is out of range"):
        Collection(folder, catalog=tmp_path / "c.sqlite").similar(data, k=0, model="phash")


def test_find_similar_and_export_features_are_the_commands(tmp_path, run_cli):
    """`similar --json` is find_similar(...).to_json() (Collection.similar the same); `export features` writes
    export_features(...)'s header and rows; each hash is given as its bits by the one conversion that
    `POST /v1/embed` uses too (feature_values)."""
    from lookalike.export import export_features, feature_values
    from lookalike.similar import embed, find_similar

    folder = tmp_path / "p"
    folder.mkdir()
    for i in range(5):
        shutil.copy(shared_data("photos", f"ukbench{i:05d}.jpg"), folder)
    cat = tmp_path / "c.sqlite"
    query = folder / "ukbench00001.jpg"
    cli = run_cli("similar", query, "--in", folder, "-k", "3", "--model", "phash", "--json", "--catalog", cat).json()
    lib = find_similar(query, [folder], k=3, model="phash", catalog=cat)
    assert lib.to_json() == cli
    assert Collection(folder, catalog=cat).similar(query, k=3, model="phash").to_json() == cli
    assert str(query) not in [h.path for h in lib.results]

    target = tmp_path / "f.csv"
    run_cli("export", "features", folder, "--csv", target, "--model", "phash", "--catalog", cat)
    with open(target, newline="") as fh:
        header, *rows = csv.reader(fh)
    exported = export_features([folder], "phash", catalog=cat)
    assert exported.header == header and len(exported) == 5
    assert [[p, *map(str, v)] for p, v in exported.rows()] == rows
    assert exported.to_json()["rows"] == [[r[0], *map(int, r[1:])] for r in rows]
    first = dict(exported.rows())[str(query)]
    assert feature_values(embed(query, "phash"), "hash") == first and set(first) <= {0, 1} and len(first) == 64


def test_rank_is_the_one_ranking_loop():
    """rank() drops the query itself and hits a filter refuses, and still gives at most k hits: the service's
    matrix cache calls it with its roots filter."""
    from lookalike.service.matrix_cache import _Entry
    from lookalike.service.matrix_cache import rank as service_rank
    from lookalike.similar import rank

    base = np.eye(6, dtype=np.float32)
    paths = [f"/r/{i}.jpg" for i in range(6)]
    searcher = make_searcher("embedding", base)
    q = base[0] + 0.5 * base[1] + 0.25 * base[2]
    res = rank(searcher, paths, q, 2, "m", "/r/0.jpg", exclude="/r/0.jpg")
    assert [h.path for h in res.results] == ["/r/1.jpg", "/r/2.jpg"]
    res = rank(searcher, paths, q, 2, "m", "q", allowed=lambda p: p != "/r/1.jpg")
    assert [h.path for h in res.results] == ["/r/0.jpg", "/r/2.jpg"]
    assert rank(None, [], q, 2, "m", "q").to_json() == {"query": "q", "model": "m", "results": []}
    entry = _Entry(paths, searcher, None, 0.0, ("/r",))
    assert service_rank(entry, q, 2, "m", "q", exclude="/r/0.jpg") == rank(searcher, paths, q, 2, "m", "q",
                                                                             exclude="/r/0.jpg")
