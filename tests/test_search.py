"""The nearest-neighbour layer of issue 11: approximate searchers against exact ones, the size switch,
the persisted index (save / reopen / add / remove / sync), and bounded memory in its users."""

from __future__ import annotations

import hashlib
import os

import numpy as np
import pytest

import lookalike.search.index as search_index
from lookalike.search import (
    EXACT_LIMIT,
    ExactCosineSearcher,
    HammingSearcher,
    InvertedFileSearcher,
    hash_id,
    index_path,
    make_searcher,
    open_index,
    sync_index,
)


def clustered(n: int, dim: int = 64, clusters: int = 40, spread: float = 0.8, seed: int = 0) -> np.ndarray:
    """Unit float16 rows around random centres (like photo embeddings: scenes of similar pictures)."""
    rng = np.random.default_rng(seed)
    cent = rng.standard_normal((clusters, dim))
    cent /= np.linalg.norm(cent, axis=1, keepdims=True)
    x = cent[rng.integers(0, clusters, n)] + spread * rng.standard_normal((n, dim)) / np.sqrt(dim)
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float16)


def recall(found: np.ndarray, truth: np.ndarray) -> float:
    hits = sum(len(set(f[f >= 0].tolist()) & set(t[t >= 0].tolist())) for f, t in zip(found, truth, strict=True))
    return hits / int((truth >= 0).sum())


def test_inverted_file_graph_agrees_with_exact_on_clustered_data():
    x = clustered(3000)
    exact = ExactCosineSearcher(x).knn_graph(10)
    approx = InvertedFileSearcher(x).knn_graph(10)
    assert recall(approx.indices, exact.indices) >= 0.95
    # scores are the true cosines of the rows returned
    i, j = 17, approx.indices[17, 0]
    assert approx.scores[17, 0] == pytest.approx(float(x[i].astype(np.float32) @ x[j].astype(np.float32)), abs=2e-3)


def test_inverted_file_query_agrees_with_exact():
    x = clustered(3000, seed=1)
    rng = np.random.default_rng(2)
    q = x[::15].astype(np.float32) + 0.3 * rng.standard_normal((200, 64)) / 8  # pictures like the collection's
    ivf = InvertedFileSearcher(x)
    ivf.train()  # otherwise so few queries are answered by an exact scan
    assert recall(ivf.query(q, 10).indices, ExactCosineSearcher(x).query(q, 10).indices) >= 0.95


def test_inverted_file_graph_has_no_self_edges_and_pads_like_exact():
    x = clustered(300, clusters=6, seed=3)
    g = InvertedFileSearcher(x, probes=1, cells=30).knn_graph(12)
    assert g.indices.shape == (300, 12) and g.scores.shape == (300, 12)
    for i, (row, sc) in enumerate(zip(g.indices, g.scores, strict=True)):
        real = row[row >= 0]
        assert i not in real.tolist()
        assert len(set(real.tolist())) == len(real)
        n_real = len(real)
        assert (row[n_real:] == -1).all() and np.isnan(sc[n_real:]).all()  # padding only at the end
        assert not np.isnan(sc[:n_real]).any()
        assert (np.diff(sc[:n_real]) <= 1e-6).all()  # best first
    # tiny sets: k beyond n - 1 is padded exactly as the exact searcher pads it
    small = clustered(4, seed=4)
    a, e = InvertedFileSearcher(small).knn_graph(6), ExactCosineSearcher(small).knn_graph(6)
    assert (a.indices == e.indices).all()
    assert np.array_equal(np.isnan(a.scores), np.isnan(e.scores))


def test_make_searcher_switches_to_approximate_above_the_limit():
    x = clustered(50, seed=5)
    assert isinstance(make_searcher("embedding", x), ExactCosineSearcher)
    assert isinstance(make_searcher("embedding", x, exact_limit=49), InvertedFileSearcher)
    assert isinstance(make_searcher("embedding", x, exact_limit=50), ExactCosineSearcher)
    assert isinstance(make_searcher("embedding", x, exact=False), InvertedFileSearcher)
    assert isinstance(make_searcher("embedding", x, exact=True, exact_limit=0), ExactCosineSearcher)
    assert make_searcher("embedding", x, exact_limit=0).exact is False
    assert isinstance(make_searcher("hash", np.arange(50, dtype=np.uint64), exact_limit=0), HammingSearcher)
    assert EXACT_LIMIT >= 1000


def test_persisted_index_survives_save_and_reopen_and_updates_by_id(tmp_path):
    x = clustered(500, seed=6)
    ids = np.arange(500, dtype=np.int64) * 3 + 7
    path = tmp_path / "catalog.db.effnet-1.index"
    index = open_index(path, "embedding", 64)
    assert len(index) == 0 and index.reset_reason == ""
    index.add(ids, x)
    before = index.query(x[:20], 5)
    assert (before.indices[:, 0] == ids[:20]).all()  # each vector finds itself first
    index.save()
    again = open_index(path, "embedding", 64)
    assert len(again) == 500 and (again.ids() == ids).all()
    after = again.query(x[:20], 5)
    assert (after.indices == before.indices).all()
    assert np.allclose(after.scores, before.scores)
    # remove by id: gone from every answer; ids not held are ignored
    assert again.remove([ids[0], ids[1], 999_999]) == 2
    res = again.query(x[:2], 10)
    assert ids[0] not in res.indices and ids[1] not in res.indices
    # add again with the same id: replaced, not doubled
    again.add([ids[5]], x[0:1])
    assert len(again) == 498
    top = again.query(x[0:1], 3).indices[0]
    assert top[0] == ids[5] and list(top).count(ids[5]) == 1
    again.save()
    third = open_index(path, "embedding", 64)
    assert len(third) == 498 and ids[0] not in third.ids()
    # more neighbours asked than held: padded with -1 / NaN
    tiny = open_index(tmp_path / "tiny.index", "embedding", 64)
    tiny.add([1, 2], x[:2])
    r = tiny.query(x[:1], 4)
    assert r.indices[0, 2:].tolist() == [-1, -1] and np.isnan(r.scores[0, 2:]).all()


def test_persisted_index_of_another_kind_or_a_damaged_file_opens_empty(tmp_path):
    path = tmp_path / "x.index"
    index = open_index(path, "embedding", 64)
    index.add([1], clustered(1, seed=7))
    index.save()
    other = open_index(path, "embedding", 32)
    assert len(other) == 0 and "another index" in other.reset_reason
    whole = path.read_bytes()
    path.write_bytes(whole[: len(whole) - 40])  # cut short (a crash mid-copy)
    cut = open_index(path, "embedding", 64)
    assert len(cut) == 0 and "could not be read" in cut.reset_reason
    path.write_bytes(b"not an index at all")
    broken = open_index(path, "embedding", 64)
    assert len(broken) == 0 and "could not be read" in broken.reset_reason
    fifo = tmp_path / "fifo.index"
    os.mkfifo(fifo)
    assert "not a regular file" in open_index(fifo, "embedding", 64).reset_reason  # and did not block
    with pytest.raises(ValueError):
        broken.add([1, 1], clustered(2, seed=8))  # ids repeat
    with pytest.raises(ValueError):
        broken.add([-4], clustered(1, seed=8))
    with pytest.raises(ValueError):
        broken.add([1], np.zeros((1, 10), np.float16))  # wrong dimension


def test_hash_index_is_exact_hamming(tmp_path):
    rng = np.random.default_rng(9)
    words = rng.integers(0, 2**63, size=(300, 1), dtype=np.int64).astype(np.uint64)
    index = open_index(tmp_path / "h.index", "hash", 64)
    index.add(np.arange(300), words)
    index.save()
    index = open_index(tmp_path / "h.index", "hash", 64)
    q = words[:10] ^ np.uint64(0b1011)  # three bits off
    got = index.query(q, 5)
    want = HammingSearcher(words).query(q, 5)
    assert (got.indices[:, 0] == np.arange(10)).all()
    assert np.allclose(got.scores, want.scores)


def test_sync_index_follows_the_catalog_and_switches_layout_by_size(tmp_path, monkeypatch):
    monkeypatch.setattr(search_index, "FLAT_LIMIT", 400)
    x = clustered(1500, seed=10)
    hashes = [hashlib.sha256(str(i).encode()).hexdigest() for i in range(1500)]
    rows = {h: i for i, h in enumerate(hashes)}
    batches: list[int] = []

    def load(hs):
        batches.append(len(hs))
        return x[[rows[h] for h in hs]]

    path = index_path(tmp_path / "catalog.db", "effnet", "1")
    assert path.parent == tmp_path and path.name.startswith("catalog.db.")
    index = open_index(path, "embedding", 64)
    rep = sync_index(index, hashes[:300], load, batch=128)
    assert (rep.added, rep.removed, rep.total) == (300, 0, 300) and index.layout == "flat"
    assert max(batches) <= 128
    rep = sync_index(index, hashes[100:1500], load, batch=128)  # grows past the limit: an inverted file
    assert rep.rebuilt and rep.removed == 100 and rep.total == 1400 and index.layout == "ivf"
    assert sum(b > 128 for b in batches) <= 1  # batches of 128, and the inverted file's training sample
    reopened = open_index(path, "embedding", 64)
    assert reopened.layout == "ivf" and len(reopened) == 1400
    assert hash_id(hashes[50]) not in reopened.ids() and hash_id(hashes[1499]) in reopened.ids()
    q = x[100:1500][::7]
    truth = ExactCosineSearcher(x[100:1500]).query(q, 10).indices
    id_of_row = np.array([hash_id(h) for h in hashes[100:1500]])
    assert recall(reopened.query(q, 10).indices, id_of_row[truth]) >= 0.95
    rep = sync_index(reopened, hashes[100:1500], load)
    assert (rep.added, rep.removed, rep.rebuilt) == (0, 0, False)


def test_dupes_cnn_candidates_past_the_limit_find_planted_copies():
    from lookalike.dupes.candidates import embedding_pairs

    rng = np.random.default_rng(11)
    base = clustered(2000, seed=11).astype(np.float32)
    src = rng.choice(2000, 60, replace=False)
    copies = base[src] + 0.3 * rng.standard_normal((60, 64)) / 8
    x = np.concatenate([base, copies / np.linalg.norm(copies, axis=1, keepdims=True)]).astype(np.float16)
    pairs = embedding_pairs(x, 12, 0.5, exact_limit=1000)
    assert all((int(s), 2000 + c) in pairs for c, s in enumerate(src))
    assert all(a < b for a, b in pairs)


def test_vectors_above_the_exact_limit_are_float16_and_built_in_blocks(monkeypatch):
    import lookalike.organise.vectors as vectors

    x = clustered(100, seed=12)
    small = vectors.from_matrix([f"p{i:03d}" for i in range(100)], x, "embedding")
    assert small.x.dtype == np.float32
    monkeypatch.setattr(vectors, "COMPACT_ABOVE", 50)
    big = vectors.unit_rows(x, "embedding", block=7)
    assert big.dtype == np.float16
    assert np.allclose(big.astype(np.float32), small.x, atol=2e-3)
    assert np.allclose(vectors.Vectors([""] * 100, big, "embedding").pair_distance([0, 1], [2, 3]),
                       small.pair_distance([0, 1], [2, 3]), atol=2e-3)


def test_verifier_cache_never_exceeds_its_bound(tmp_path):
    from PIL import Image

    from lookalike.dupes.verify import Verifier

    rng = np.random.default_rng(13)
    paths = []
    for i in range(8):
        p = tmp_path / f"p{i}.png"
        small = rng.integers(0, 256, (24, 36), dtype=np.uint8)
        Image.fromarray(small).resize((360, 240), Image.BICUBIC).save(p)
        paths.append(str(p))
    probe = Verifier(paths)
    one = probe.local(0).nbytes + probe.local(0, mirror=True).nbytes
    bound = int(2.5 * one)
    v = Verifier(paths, cache_bytes=bound)
    first = v.local(0)
    for i in range(8):
        for mirror in (False, True):
            v.local(i, mirror)
            assert 0 < v.cached_bytes <= bound
    assert v.decoded == 8
    again = v.local(0)  # evicted long ago: decoded again, the same key points
    assert v.decoded == 9 and np.array_equal(again.points, first.points)
    v.local(7)  # the most recent picture stays: no decode
    assert v.decoded == 9
    v.verify(6, 7)
    assert v.cached_bytes <= bound
    v.forget(7)
    v.local(7)
    assert v.decoded == 10
    tiny = Verifier(paths, cache_bytes=10)  # smaller than one picture: nothing is kept, all still works
    assert tiny.local(1) is not None and tiny.cached_bytes == 0


def _index_folder(cat, folder, models):
    from lookalike.index import index_paths

    return index_paths([str(folder)], catalog=cat, models=models)


def test_catalog_index_lives_beside_the_catalog_and_follows_it(tmp_path, catalog):
    from PIL import Image

    from lookalike.features import load_extractor
    from lookalike.search import catalog_index

    rng = np.random.default_rng(14)
    folder = tmp_path / "photos"
    folder.mkdir()
    for i in range(12):
        Image.fromarray(rng.integers(0, 256, (8, 8, 3), dtype=np.uint8)).resize((64, 64)).save(folder / f"{i}.png")
    ext = load_extractor("phash")
    _index_folder(catalog, folder, (ext.id,))
    rows = catalog.lookup_files([str(p) for p in sorted(folder.iterdir())])
    hashes = sorted({r.content_hash for r in rows.values()})
    index, rep = catalog_index(catalog, ext.id, ext.version, ext.kind, ext.dim, hashes)
    assert rep.added == len(hashes) == 12 and index.path.parent == catalog.path.parent and index.path.exists()
    blobs = catalog.features_for_hashes(hashes[:1], ext.id, ext.version)
    from lookalike.catalog import decode_features

    q = decode_features([blobs[hashes[0]]], ext.kind)
    res = index.query(q, 1)
    assert res.indices[0, 0] == hash_id(hashes[0]) and res.scores[0, 0] == 0
    again, rep = catalog_index(catalog, ext.id, ext.version, ext.kind, ext.dim, hashes[3:] + ["f" * 64])
    assert (rep.added, rep.removed, len(again)) == (0, 3, 9)  # the unknown hash has no feature: left out
