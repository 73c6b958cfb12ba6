"""The web app's folder browser and Similar, end to end in headless Chromium on real UKBench photos:
a thumbnail grid of a folder with its sub-folders as tiles (in and back up), Similar by clicking a photo
of the grid, and by dropping a photo from the computer (a real drop event whose DataTransfer holds a real
file). The hash model phash keeps it quick: the copies it must find are re-saves of the photos."""

from __future__ import annotations

import base64
import io
import re
import shutil

import pytest
from PIL import Image

from conftest import shared_data
from service_util import BROWSER_MARKS, Server, ukbench
from web_util import images_loaded, open_app, shot

pytestmark = BROWSER_MARKS


def resaved(src, quality: int = 55) -> bytes:
    buf = io.BytesIO()
    Image.open(src).save(buf, "JPEG", quality=quality)
    return buf.getvalue()


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    base = tmp_path_factory.mktemp("web-browse")
    photos = shared_data("photos")
    album = base / "root" / "album"
    trip = album / "trip"
    trip.mkdir(parents=True)
    for i in range(12):
        shutil.copy(photos / ukbench(i), album / ukbench(i))
    (album / "ukbench00004 resaved.jpg").write_bytes(resaved(photos / ukbench(4)))
    for i in range(40, 44):
        shutil.copy(photos / ukbench(i), trip / ukbench(i))
    server = Server(base, "--root", str(base / "root"), token="web-browse-token")
    yield server, album
    server.stop()


def test_folder_grid_and_similar_by_click(site, page, tmp_path):
    from playwright.sync_api import expect

    server, album = site
    open_app(page, server, tab="photos")
    # the root's sub-folder as a tile; into it: a grid of its 13 photos and its own sub-folder
    page.click(".folder-tile[title$='/album']")
    grid = page.locator("[data-testid=photos] .card")
    expect(grid).to_have_count(13)
    expect(page.locator("[data-testid=photos-where]")).to_contain_text(f"{album}: 13 photos, 1 folder")
    expect(page.locator("[data-testid=folder]")).to_have_value(str(album))
    images_loaded(page, "[data-testid=photos]")
    # a grid, not a list: several photos side by side on one row
    tops = page.eval_on_selector_all("[data-testid=photos] .card", "els => els.map(e => e.getBoundingClientRect().top)")
    assert len(set(tops[:5])) == 1
    assert page.evaluate("() => document.documentElement.scrollWidth <= window.innerWidth")
    shot(page, tmp_path, "web-photos", docs=True)
    page.click(".folder-tile[title$='/trip']")
    expect(grid).to_have_count(4)
    page.click(".folder-tile:has-text('up')")
    expect(grid).to_have_count(13)

    # click a photo: the photos most like it, its re-save first
    page.select_option("[data-testid=model]", "phash")
    page.click(f"[data-testid=photos] .card[data-path='{album / ukbench(4)}'] img")
    expect(page.locator("#tab-similar")).to_be_visible()
    hits = page.locator("[data-testid=similar] .card.hit")
    expect(hits.first).to_be_visible(timeout=60_000)
    expect(page.locator("[data-testid=similar] .card.query")).to_have_attribute("data-path", str(album / ukbench(4)))
    expect(hits.first).to_have_attribute("data-path", str(album / "ukbench00004 resaved.jpg"))
    expect(hits.first.locator(".score")).to_have_text(re.compile(r"^(\d+ bits? apart|same hash)$"))
    assert hits.count() == 8  # k = 8, the query itself left out
    images_loaded(page, "[data-testid=similar]")
    shot(page, tmp_path, "web-similar")
    # a hit is a photo too: clicking it asks again, from it
    hits.first.locator("img").click()
    expect(page.locator("[data-testid=similar] .card.query")).to_have_attribute(
        "data-path", str(album / "ukbench00004 resaved.jpg"), timeout=60_000)
    expect(hits.first).to_have_attribute("data-path", str(album / ukbench(4)))
    assert page.errors == []


def test_similar_by_drag_and_drop(site, page, tmp_path):
    from playwright.sync_api import expect

    server, album = site
    open_app(page, server, tab="similar", folder=album)
    page.select_option("[data-testid=model]", "phash")
    # a photo from the computer, not in any served folder: a re-save of ukbench00008
    data = base64.b64encode(resaved(shared_data("photos", ukbench(8)), quality=40)).decode()
    dt = page.evaluate_handle(
        """(b64) => { const bin = atob(b64); const bytes = new Uint8Array(bin.length);
           for (let i = 0; i < bin.length; i++) bytes[i] = bin.charCodeAt(i);
           const dt = new DataTransfer();
           dt.items.add(new File([bytes], "from my phone.jpg", { type: "image/jpeg" }));
           return dt; }""", data)
    page.dispatch_event("[data-testid=drop]", "dragover", {"dataTransfer": dt})
    expect(page.locator("[data-testid=drop]")).to_have_class("drop over")
    page.dispatch_event("[data-testid=drop]", "drop", {"dataTransfer": dt})
    hits = page.locator("[data-testid=similar] .card.hit")
    expect(hits.first).to_have_attribute("data-path", str(album / ukbench(8)), timeout=60_000)
    expect(page.locator("[data-testid=similar] .card.query")).to_contain_text("from my phone.jpg")
    expect(page.locator("[data-testid=drop]")).to_have_class("drop")
    images_loaded(page, "[data-testid=similar]")
    shot(page, tmp_path, "web-similar-drop", docs=True)
    # a dropped file that is not a picture: said so, nothing asked of the service
    bad = page.evaluate_handle(
        """() => { const dt = new DataTransfer();
           dt.items.add(new File(["hello"], "notes.txt", { type: "text/plain" })); return dt; }""")
    page.dispatch_event("[data-testid=drop]", "drop", {"dataTransfer": bad})
    expect(page.locator("[data-testid=status]")).to_have_text("That is not a photo: drop a picture file")
    assert page.errors == []


def test_photo_routes_hostile(site, tmp_path):
    """The grid's listing and the full-size picture name only what lies under the roots: a symbolic link
    out of the root is neither listed nor served, a FIFO named like a photo is refused at once (not waited
    on), '..' and folders outside are refused, and a name that is not UTF-8 is listed and served."""
    import os

    import httpx

    server, album = site
    odd = album.parent / "odd"
    odd.mkdir()
    outside = tmp_path / "secret.jpg"
    shutil.copy(shared_data("photos", ukbench(50)), outside)
    (odd / "link out.jpg").symlink_to(outside)
    os.mkfifo(odd / "pipe.jpg")
    name = os.path.join(os.fsencode(odd), b"caf\xe9.jpg")
    shutil.copy(shared_data("photos", ukbench(51)), name)
    h, url = server.headers, server.url
    listed = httpx.get(f"{url}/v1/photos", params={"path": str(odd)}, headers=h, timeout=30)
    assert listed.status_code == 200, listed.text
    photos = listed.json()["photos"]
    assert os.fsdecode(name) in photos
    assert str(odd / "link out.jpg") not in photos and str(odd / "pipe.jpg") not in photos
    raw = f"{url}/v1/photo?path=" + "".join(f"%{b:02X}" for b in name)
    got = httpx.get(raw, headers=h, timeout=30)
    assert got.status_code == 200 and got.headers["content-type"] == "image/jpeg"
    assert got.content == open(name, "rb").read()
    for path, status in ((odd / "link out.jpg", 403), (odd / "pipe.jpg", 400), (f"{album}/../../x.jpg", 403),
                         (tmp_path, 403)):
        r = httpx.get(f"{url}/v1/photo", params={"path": str(path)}, headers=h, timeout=10)
        assert r.status_code == status, (path, r.status_code, r.text)
    assert httpx.get(f"{url}/v1/photos", params={"path": str(tmp_path)}, headers=h, timeout=10).status_code == 403
    assert httpx.get(f"{url}/v1/photos", params={"path": str(odd)}, timeout=10).status_code == 401
    # a PNG is served as it is; a format browsers do not show (TIFF) as a JPEG rendering
    Image.open(shared_data("photos", ukbench(52))).save(odd / "scan.tif")
    r = httpx.get(f"{url}/v1/photo", params={"path": str(odd / "scan.tif")}, headers=h, timeout=30)
    assert r.status_code == 200 and r.headers["content-type"] == "image/jpeg"
    assert Image.open(io.BytesIO(r.content)).size == (640, 480)
