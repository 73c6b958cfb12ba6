"""Issue 13: the /docs page (Swagger UI) renders in a real headless Chromium with every request to
another host blocked: its assets come from this service, so it works offline."""

from __future__ import annotations

import importlib.util
import os
from urllib.parse import urlsplit

import pytest

from service_util import CHROMIUM, CHROMIUM_FLAGS, Server

pytestmark = [
    pytest.mark.skipif(importlib.util.find_spec("playwright") is None,
                       reason="playwright is not installed (pip install -e '.[dev]')"),
    pytest.mark.skipif(not os.path.exists(CHROMIUM),
                       reason=f"no Chromium at {CHROMIUM}: setup.sh installs Debian's chromium (needs root)"),
]


def test_docs_page_renders_offline(tmp_path):
    from playwright.sync_api import sync_playwright

    server = Server(tmp_path, token=None)
    here = urlsplit(server.url).netloc
    foreign: list[str] = []
    try:
        with sync_playwright() as pw:
            ctx = pw.chromium.launch_persistent_context(
                str(tmp_path / "chromium-profile"), executable_path=CHROMIUM, headless=True, args=CHROMIUM_FLAGS)
            try:
                def only_here(route):
                    if urlsplit(route.request.url).netloc == here:
                        route.continue_()
                    else:
                        foreign.append(route.request.url)
                        route.abort()

                ctx.route("**/*", only_here)
                page = ctx.new_page()
                errors: list[str] = []
                page.on("pageerror", lambda e: errors.append(str(e)))
                page.goto(f"{server.url}/docs")
                page.wait_for_selector("#swagger-ui .opblock", timeout=30_000)
                assert page.locator("#swagger-ui .opblock-summary-path", has_text="/v1/similar").count() >= 1
                assert not errors, errors
            finally:
                ctx.close()
    finally:
        server.stop()
    assert foreign == [], foreign
