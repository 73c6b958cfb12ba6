"""The web app's Clusters view, end to end in headless Chromium on real UKBench photos (four objects of
four photos each, two photos of other objects; effnet, as grouping different views of one object needs
it): the sizes (how many clusters of each size, as imagecluster's
summary), each cluster with its size and photos, and the photos like no other."""

from __future__ import annotations

import shutil

import pytest

from conftest import shared_data
from service_util import BROWSER_MARKS, Server, ukbench
from web_util import images_loaded, open_app, shot

pytestmark = BROWSER_MARKS

OBJECTS = (0, 1, 2, 10)  # UKBench groups: photos 4g .. 4g+3
LONERS = (100, 201)


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    base = tmp_path_factory.mktemp("web-clusters")
    photos = shared_data("photos")
    album = base / "root" / "objects"
    album.mkdir(parents=True)
    for g in OBJECTS:
        for i in range(4 * g, 4 * g + 4):
            shutil.copy(photos / ukbench(i), album / ukbench(i))
    for i in LONERS:
        shutil.copy(photos / ukbench(i), album / ukbench(i))
    server = Server(base, "--root", str(base / "root"), token="web-clusters-token")
    yield server, album
    server.stop()


def test_clusters_with_sizes(site, page, tmp_path):
    from playwright.sync_api import expect

    server, album = site
    open_app(page, server, folder=album, tab="clusters")
    page.click("[data-testid=run-clusters]")
    clusters = page.locator("[data-testid=clusters] .group.cluster")
    expect(clusters.first).to_be_visible(timeout=120_000)
    expect(page.locator("[data-testid=clusters-job]")).to_be_hidden()
    images_loaded(page, "[data-testid=clusters]")

    found = clusters.evaluate_all(
        "els => els.map(e => ({size: Number(e.dataset.size), head: e.querySelector('.reason').textContent,"
        " paths: [...e.querySelectorAll('.card')].map(c => c.dataset.path)}))")
    # every cluster says its size, and holds one object's photos
    for n, c in enumerate(found, 1):
        assert c["size"] == len(c["paths"]) >= 2
        assert c["head"] == f"Cluster {n} · {len(c['paths'])} photos"
        assert len({int(p.rsplit("ukbench", 1)[1][:5]) // 4 for p in c["paths"]}) == 1, c
    assert [c["size"] for c in found] == sorted((c["size"] for c in found), reverse=True)
    assert len(found) >= 3
    # the sizes, as imagecluster's summary: how many clusters hold how many photos
    rows = page.locator("[data-testid=cluster-sizes] tbody tr").evaluate_all(
        "els => els.map(r => [...r.cells].map(c => Number(c.textContent)))")
    counts: dict[int, int] = {}
    for c in found:
        counts[c["size"]] = counts.get(c["size"], 0) + 1
    assert rows == sorted(([s, k] for s, k in counts.items()), reverse=True)
    clustered = sum(c["size"] for c in found)
    alone = 18 - clustered
    words = f"{len(found)} clusters holding {clustered} photos; {alone} photo{'s' if alone != 1 else ''} like no other."
    expect(page.locator("[data-testid=clusters-summary]")).to_contain_text(words)
    # the photos like no other are listed too, among them the two lone objects
    lone = page.locator("[data-testid=clusters] .group.alone .card").evaluate_all("els => els.map(e => e.dataset.path)")
    assert len(lone) == alone and {str(album / ukbench(i)) for i in LONERS} <= set(lone)
    shot(page, tmp_path, "web-clusters", docs=True)
    # any photo of a cluster asks for its similar ones
    clusters.first.locator(".card img").first.click()
    expect(page.locator("[data-testid=similar] .card.hit").first).to_be_visible(timeout=60_000)
    assert page.errors == []
