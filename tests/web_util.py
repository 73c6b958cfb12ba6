"""Helpers of the web app's view tests (tests/test_web_*.py): headless Chromium with a page-error log,
the page opened with its token, and screenshots (to the test's tmp folder; with
``LOOKALIKE_SCREENSHOTS=docs`` also to docs/screenshots/, where the README's pictures live)."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from service_util import CHROMIUM, CHROMIUM_FLAGS, ROOT

DOCS_SHOTS = ROOT / "docs" / "screenshots"


@contextmanager
def chromium_page(tmp_path: Path) -> Iterator:
    """A fresh headless Chromium page (1280 x 900); ``page.errors`` collects uncaught page errors."""
    from playwright.sync_api import expect, sync_playwright

    expect.set_options(timeout=20_000)  # a shared machine under load: a view may take seconds to draw
    with sync_playwright() as pw:
        ctx = pw.chromium.launch_persistent_context(
            str(tmp_path / "chromium-profile"), executable_path=CHROMIUM, headless=True, args=CHROMIUM_FLAGS,
            viewport={"width": 1280, "height": 900})
        try:
            pg = ctx.new_page()
            pg.set_default_timeout(30_000)
            pg.errors = []
            pg.on("pageerror", lambda e: pg.errors.append(str(e)))
            yield pg
        finally:
            ctx.close()


def open_app(page, server, tab: str | None = None, folder: Path | str | None = None) -> None:
    """Open the web app with the server's token, wait until it is ready, pick a folder and a tab."""
    page.goto(f"{server.url}/#token={server.token}")
    page.wait_for_selector("body[data-ready='1']", timeout=30_000)
    if folder is not None:
        page.fill("[data-testid=folder]", str(folder))
        page.dispatch_event("[data-testid=folder]", "change")
    if tab:
        page.click(f"[data-testid=tab-{tab}]")


def shot(page, tmp_path: Path, name: str, whole: bool = True, docs: bool = False) -> Path:
    """A screenshot of the view: ``whole``: the page down to its content's end in one viewport (the
    sticky bars stay in place), else the viewport as it is (a dialog). Saved as tmp_path/screens/NAME.png;
    a key view (``docs``) also as docs/screenshots/NAME.png when LOOKALIKE_SCREENSHOTS=docs."""
    out = tmp_path / "screens" / f"{name}.png"
    out.parent.mkdir(exist_ok=True)
    size = page.viewport_size
    if whole:
        height = page.evaluate(
            "() => Math.ceil(document.querySelector('main').getBoundingClientRect().bottom + window.scrollY) + 40")
        page.set_viewport_size({"width": size["width"], "height": max(400, min(height, 2400))})
        page.evaluate("() => window.scrollTo(0, 0)")
    page.screenshot(path=str(out))
    if whole:
        page.set_viewport_size(size)
    if docs and os.environ.get("LOOKALIKE_SCREENSHOTS") == "docs":
        # kept small for the repository: 256 colours (dithered), which photos survive well enough
        from PIL import Image

        DOCS_SHOTS.mkdir(parents=True, exist_ok=True)
        Image.open(out).convert("RGB").quantize(colors=256, method=Image.Quantize.MEDIANCUT,
                                                dither=Image.Dither.FLOYDSTEINBERG).save(
            DOCS_SHOTS / out.name, optimize=True)
    return out


def images_loaded(page, selector: str, timeout: float = 30_000) -> None:
    """Wait until every picture under ``selector`` has loaded a real image."""
    page.wait_for_function(
        "(sel) => { const imgs = [...document.querySelectorAll(sel + ' img')];"
        " return imgs.length > 0 && imgs.every(i => i.complete && i.naturalWidth > 0); }",
        arg=selector, timeout=timeout)
