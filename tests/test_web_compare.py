"""The web app's large compare view, end to end in headless Chromium on real UKBench photos: opened from
the duplicates view by a click or from the keyboard (Enter, C), the group's photos side by side at full
resolution, zoomed together (+ − 0 1, the buttons, the wheel), moved together, the next group with →,
closed with Esc back on the review; and "view" on any photo of the folder grid. Two byte copies and a
half-size PNG copy (the ``near`` tier, which needs effnet): two resolutions side by side."""

from __future__ import annotations

import shutil

import pytest
from PIL import Image

from conftest import shared_data
from service_util import BROWSER_MARKS, Server, ukbench
from web_util import images_loaded, open_app, shot

pytestmark = BROWSER_MARKS


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    base = tmp_path_factory.mktemp("web-compare")
    photos = shared_data("photos")
    album = base / "root" / "album"
    album.mkdir(parents=True)
    for i in (0, 4, 8, 12):
        shutil.copy(photos / ukbench(i), album / ukbench(i))
    shutil.copy(photos / ukbench(0), album / "copy of 0.jpg")
    shutil.copy(photos / ukbench(4), album / "copy of 4.jpg")
    Image.open(photos / ukbench(8)).resize((320, 240), Image.Resampling.LANCZOS).save(album / "small 8.png")
    server = Server(base, "--root", str(base / "root"), token="web-compare-token")
    yield server, album
    server.stop()


def widths(page) -> list[float]:
    return page.eval_on_selector_all("#compare-panes .pane img", "els => els.map(e => e.getBoundingClientRect().width)")


def test_compare_from_duplicates_zoom_and_keys(site, page, tmp_path):
    from playwright.sync_api import expect

    server, album = site
    open_app(page, server, folder=album)
    page.select_option("#tier", "near")
    page.click("[data-testid=run-dupes]")
    groups = page.locator("#groups .group")
    expect(groups).to_have_count(3, timeout=120_000)
    images_loaded(page, "#groups")
    small = page.evaluate("() => review.groups.findIndex(g => g.paths.some(p => p.endsWith('/small 8.png')))")
    g0 = 1 if small == 0 else 0

    # a click on a photo of a group of two copies opens both of its photos side by side
    first = groups.nth(g0)
    paths = first.locator(".card").evaluate_all("els => els.map(e => e.dataset.path)")
    first.locator(".card img").first.click()
    dialog = page.locator("[data-testid=compare]")
    expect(dialog).to_be_visible()
    expect(page.locator("#compare-title")).to_have_text(f"Group {g0 + 1} of 3")
    panes = page.locator("#compare-panes .pane")
    expect(panes).to_have_count(2)
    assert panes.evaluate_all("els => els.map(e => e.dataset.path)") == paths
    images_loaded(page, "#compare-panes")
    # full resolution, not the grid's thumbnail; fitted to the panes first
    assert page.eval_on_selector_all("#compare-panes img", "els => els.map(e => e.naturalWidth)") == [640, 640]
    expect(page.locator("[data-testid=zoom-level]")).to_have_text("fit")
    expect(page.locator("#compare-panes .caption").first).to_contain_text("keep · ")
    expect(page.locator("#compare-panes .caption").nth(1)).to_contain_text("to the trash · ")
    fit = widths(page)
    assert all(w <= 640 for w in fit)

    # zoom from the keyboard: 1 is actual size, + and − step, 0 fits again; both photos alike
    page.keyboard.press("1")
    expect(page.locator("[data-testid=zoom-level]")).to_have_text("100%")
    assert widths(page) == [640, 640]
    page.keyboard.press("+")
    expect(page.locator("[data-testid=zoom-level]")).to_have_text("150%")
    page.keyboard.press("+")
    expect(page.locator("[data-testid=zoom-level]")).to_have_text("200%")
    assert widths(page) == [1280, 1280]
    # moving one photo moves the other to the same place
    page.locator("#compare-panes .pane").first.evaluate("p => { p.scrollLeft = 300; p.scrollTop = 200; }")
    page.wait_for_function("() => { const [a, b] = document.querySelectorAll('#compare-panes .pane');"
                           " return Math.abs(a.scrollLeft - b.scrollLeft) < 2"
                           " && Math.abs(a.scrollTop - b.scrollTop) < 2"
                           " && b.scrollLeft > 250; }")
    shot(page, tmp_path, "web-compare-zoom", whole=False)
    page.keyboard.press("-")
    expect(page.locator("[data-testid=zoom-level]")).to_have_text("150%")
    page.keyboard.press("0")
    expect(page.locator("[data-testid=zoom-level]")).to_have_text("fit")
    assert widths(page) == fit
    # the buttons and the wheel zoom too
    page.click("[data-testid=zoom-in]")
    expect(page.locator("[data-testid=zoom-level]")).to_have_text("100%")
    page.click("[data-testid=zoom-out]")
    expect(page.locator("[data-testid=zoom-level]")).to_have_text("fit")
    page.locator("#compare-panes .pane").first.hover()
    page.mouse.wheel(0, -100)
    expect(page.locator("[data-testid=zoom-level]")).to_have_text("100%")
    page.keyboard.press("0")

    # → the next group, ← the one before: to the half-size PNG beside its original, and back
    for _ in range(abs(small - g0)):
        page.keyboard.press("ArrowRight" if small > g0 else "ArrowLeft")
    expect(page.locator("#compare-title")).to_have_text(f"Group {small + 1} of 3")
    images_loaded(page, "#compare-panes")
    assert sorted(page.eval_on_selector_all("#compare-panes img", "els => els.map(e => e.naturalWidth)")) == [320, 640]
    expect(page.locator("#compare-panes .caption").first).to_contain_text("640 × 480")
    shot(page, tmp_path, "web-compare", whole=False, docs=True)
    back = small - 1 if small > g0 else small + 1
    page.keyboard.press("ArrowLeft" if small > g0 else "ArrowRight")
    expect(page.locator("#compare-title")).to_have_text(f"Group {back + 1} of 3")
    # Esc closes it, nothing of the review changed, and the review's keys work again
    page.keyboard.press("Escape")
    expect(dialog).to_be_hidden()
    expect(page.locator("[data-testid=apply]")).to_have_text("Move 3 marked files to the trash…")

    # from the keyboard: Enter (or C) on a photo of the review opens its group
    groups.nth(small).locator(".card").first.focus()
    page.keyboard.press("Enter")
    expect(dialog).to_be_visible()
    expect(page.locator("#compare-title")).to_have_text(f"Group {small + 1} of 3")
    page.keyboard.press("Escape")
    expect(dialog).to_be_hidden()
    groups.nth(g0).locator(".card").nth(1).focus()
    page.keyboard.press("c")
    expect(page.locator("#compare-title")).to_have_text(f"Group {g0 + 1} of 3")
    page.keyboard.press("Escape")
    # the compare's keys did not reach the review (no photo was kept or unmarked by them)
    expect(page.locator("[data-testid=apply]")).to_have_text("Move 3 marked files to the trash…")
    assert page.errors == []


def test_view_any_photo_large(site, page, tmp_path):
    from playwright.sync_api import expect

    server, album = site
    open_app(page, server, folder=album, tab="photos")
    card = page.locator(f"[data-testid=photos] .card[data-path='{album / 'small 8.png'}']")
    card.locator(".view-link").click()
    expect(page.locator("[data-testid=compare]")).to_be_visible()
    expect(page.locator("#compare-panes .pane")).to_have_count(1)
    images_loaded(page, "#compare-panes")
    page.keyboard.press("1")
    assert widths(page) == [320]
    page.click("[data-testid=compare-close]")
    expect(page.locator("[data-testid=compare]")).to_be_hidden()
    assert page.errors == []
