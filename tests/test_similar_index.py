"""Catalog-wide ``similar`` through the persisted index (issue 11): past the size limit (patched low here)
the index answers with the same top hits as exact search, follows files added, changed and removed, is
rebuilt when its file is damaged, syncs under a lock, and the service's catalog scope never names a path
outside its roots."""

from __future__ import annotations

import os
import shutil
import threading
import time

import numpy as np
import pytest

import lookalike.search.index as search_index
import lookalike.similar as similar
from conftest import needs_effnet, shared_data
from lookalike.catalog import Catalog
from lookalike.features import load_extractor
from lookalike.index import index_paths
from lookalike.search import index_path, open_index
from lookalike.service.matrix_cache import MatrixCache, rank
from lookalike.service.metrics import Metrics
from service_util import copy_photos, ukbench

pytestmark = needs_effnet
MODEL = "effnet"
FIRST = 24  # ukbench 0-23: six objects of four photos


@pytest.fixture(scope="module")
def seeded(tmp_path_factory):
    """A catalog holding the effnet features of ukbench 0-31 (computed once for the module)."""
    base = tmp_path_factory.mktemp("seed")
    photos = copy_photos(shared_data("photos"), base / "photos", [ukbench(i) for i in range(32)])
    cat = Catalog(base / "seed.sqlite")
    index_paths([str(p) for p in photos], cat, [MODEL])
    cat.close()
    return base / "seed.sqlite"


@pytest.fixture
def world(tmp_path, seeded):
    """A folder of ukbench 0-23 and a catalog that already knows their features (copied from the seed,
    so indexing here only hashes the files)."""
    shutil.copy(seeded, tmp_path / "catalog.sqlite")
    cat = Catalog(tmp_path / "catalog.sqlite")
    folder = tmp_path / "photos"
    copy_photos(shared_data("photos"), folder, [ukbench(i) for i in range(FIRST)])
    yield cat, folder
    cat.close()


def top(cat, folder, query, k=5, limit=None, monkeypatch=None):
    if limit is not None:
        monkeypatch.setattr(similar, "INDEX_LIMIT", limit)
    return similar.find_similar(str(query), [folder], k=k, model=MODEL, catalog=cat)


def the_index(cat):
    ext = load_extractor(MODEL)
    return open_index(index_path(cat.path, ext.id, ext.version), ext.kind, ext.dim)


def assert_same(got, want):
    assert [h.path for h in got.results] == [h.path for h in want.results]
    assert np.allclose([h.score for h in got.results], [h.score for h in want.results], atol=2e-3)


@pytest.mark.parametrize("flat_limit", [search_index.FLAT_LIMIT, 8])  # exact fp16 layout, inverted file
def test_index_gives_the_same_top_hits_as_exact(world, monkeypatch, flat_limit):
    cat, folder = world
    monkeypatch.setattr(search_index, "FLAT_LIMIT", flat_limit)
    for q in (0, 9, 17):
        query = folder / ukbench(q)
        want = top(cat, folder, query, k=6)
        assert not the_index(cat).path.exists()  # below the limit: exact, no index file
        got = top(cat, folder, query, k=6, limit=4, monkeypatch=monkeypatch)
        monkeypatch.setattr(similar, "INDEX_LIMIT", 10**9)
        assert_same(got, want)
        assert str(query) not in [h.path for h in got.results]
        index = the_index(cat)
        assert len(index) == 32 and index.layout == ("ivf" if flat_limit == 8 else "flat")
        index.path.unlink()


def test_adding_changing_and_removing_files_reach_the_next_query(world, monkeypatch):
    cat, folder = world
    monkeypatch.setattr(similar, "INDEX_LIMIT", 4)
    query = folder / ukbench(0)
    first = top(cat, folder, query)
    assert len(the_index(cat)) == 32
    # added: a photo the catalog has never seen (its feature is computed now), and a byte copy
    photos = shared_data("photos")
    shutil.copy(photos / "ukbench00100.jpg", folder / "new.jpg")
    shutil.copy(photos / ukbench(1), folder / "copy-of-1.jpg")
    got = top(cat, folder, query, k=30)
    paths = [h.path for h in got.results]
    assert str(folder / "new.jpg") in paths and len(the_index(cat)) == 33
    # a byte copy shares its original's content: same score, next to it
    i = paths.index(str(folder / ukbench(1)))
    j = paths.index(str(folder / "copy-of-1.jpg"))
    assert abs(i - j) == 1 and got.results[i].score == got.results[j].score
    # changed: ukbench 1 now holds the bytes of ukbench 13 (another object): it falls out of the top hits
    (folder / ukbench(1)).write_bytes((photos / ukbench(13)).read_bytes())
    os.utime(folder / ukbench(1), ns=(time.time_ns(), time.time_ns() + 5_000_000_000))
    after = top(cat, folder, query)
    assert str(folder / ukbench(1)) not in [h.path for h in after.results]
    assert str(folder / "copy-of-1.jpg") in [h.path for h in after.results]
    # removed: never named again, and dropped from the index once the catalog forgets it
    (folder / "new.jpg").unlink()
    (folder / ukbench(2)).unlink()
    gone = top(cat, folder, query, k=30)
    names = [h.path for h in gone.results]
    assert str(folder / "new.jpg") not in names and str(folder / ukbench(2)) not in names
    cat.prune()
    top(cat, folder, query)
    assert len(the_index(cat)) == 32  # new.jpg's content is gone from the catalog, so from the index
    monkeypatch.setattr(similar, "INDEX_LIMIT", 10**9)
    assert_same(top(cat, folder, query, k=30), gone)
    assert first.results


@pytest.mark.parametrize("damage", ["garbage", "truncated", "empty", "folder"])
def test_a_damaged_index_file_is_rebuilt_silently(world, monkeypatch, damage):
    cat, folder = world
    query = folder / ukbench(5)
    want = top(cat, folder, query)
    top(cat, folder, query, limit=4, monkeypatch=monkeypatch)
    path = the_index(cat).path
    data = path.read_bytes()
    if damage == "garbage":
        path.write_bytes(data[:40] + os.urandom(len(data) - 40))
    elif damage == "truncated":
        path.write_bytes(data[: len(data) // 2])
    elif damage == "empty":
        path.write_bytes(b"")
    else:
        path.unlink()
        path.mkdir()  # not a regular file: cannot be replaced by a rename either: exact search answers
    got = top(cat, folder, query)
    assert_same(got, want)
    if damage != "folder":
        again = the_index(cat)
        assert again.reset_reason == "" and len(again) == 32


def test_an_index_that_cannot_be_kept_falls_back_to_exact(world, monkeypatch, tmp_path):
    cat, folder = world
    query = folder / ukbench(9)
    want = top(cat, folder, query)
    lock = the_index(cat).path.with_name(the_index(cat).path.name + ".lock")
    os.symlink(tmp_path / "elsewhere", lock)  # a planted link: never followed, never created through
    assert_same(top(cat, folder, query, limit=4, monkeypatch=monkeypatch), want)
    assert not (tmp_path / "elsewhere").exists() and not the_index(cat).path.exists()


def test_syncs_wait_for_the_lock(world, monkeypatch):
    cat, folder = world
    path = the_index(cat).path
    done = threading.Event()

    def sync():
        similar.synced_index(Catalog(cat.path), MODEL)
        done.set()

    with search_index.index_lock(path):
        t = threading.Thread(target=sync)
        t.start()
        assert not done.wait(1.0)  # another writer holds the lock: the sync waits
        assert not path.exists()
    t.join(60)
    assert done.is_set() and len(the_index(cat)) == 32


def test_service_catalog_scope_uses_the_index_and_stays_inside_the_roots(world, monkeypatch, tmp_path):
    cat, folder = world
    photos = shared_data("photos")
    outside = tmp_path / "outside"
    copy_photos(photos, outside, [ukbench(i) for i in range(24, 32)])
    os.symlink(outside / ukbench(25), folder / "escape.jpg")  # inside by name, outside in fact
    index_paths([str(folder), str(outside)], cat, [MODEL])
    qvec = similar.query_feature(str(outside / ukbench(24)), cat, MODEL)  # its own object lies outside

    def ask(limit, max_ask=similar.INDEX_MAX_ASK):
        monkeypatch.setattr(similar, "INDEX_LIMIT", limit)
        monkeypatch.setattr(similar, "INDEX_MAX_ASK", max_ask)
        cache = MatrixCache(cat, [str(folder)], Metrics())
        entry = cache.catalog_scope(MODEL)
        return entry, rank(entry, qvec, 8, MODEL, "q")

    exact_entry, want = ask(10**9)
    assert exact_entry.indexed is None
    entry, got = ask(4)
    assert entry.indexed is not None and entry.searcher is None and entry.fallbacks == 0
    assert len(entry.indexed.index) == 32  # the index covers the catalog; the roots filter its hits
    assert_same(got, want)
    assert len(got.results) == 8
    real_root = os.path.realpath(folder)
    for h in got.results:
        assert os.path.realpath(h.path).startswith(real_root + os.sep), h.path
    # too few candidates allowed: the scope's exact matrix answers, with the same hits
    entry, small = ask(4, max_ask=9)
    assert entry.fallbacks == 1 and entry.searcher is not None
    assert_same(small, want)


def test_an_unchanged_catalog_is_not_listed_again(world, monkeypatch):
    cat, folder = world
    query = folder / ukbench(3)
    want = top(cat, folder, query, limit=4, monkeypatch=monkeypatch)
    calls = []
    real = similar.catalog_index
    monkeypatch.setattr(similar, "catalog_index", lambda *a, **kw: calls.append(1) or real(*a, **kw))
    assert_same(top(cat, folder, query), want)
    assert calls == []  # same generation, same file: opened as it is
    shutil.copy(shared_data("photos") / ukbench(20), folder / "another.jpg")  # known content, new file row
    got = top(cat, folder, query, k=30)
    assert calls == [1] and str(folder / "another.jpg") in [h.path for h in got.results]
