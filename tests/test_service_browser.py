"""The review web page end to end in a real headless Chromium (Debian's /usr/bin/chromium driven by
Playwright): load, find duplicates, review (change a keeper, untick a member), apply to the trash,
undo, and check the files on disk."""

from __future__ import annotations

import hashlib
import io
import os
import shutil

import pytest
from PIL import Image

from conftest import shared_data
from service_util import BROWSER_MARKS, CHROMIUM, CHROMIUM_FLAGS, Server, ukbench

pytestmark = BROWSER_MARKS


def sha(p) -> str:
    return hashlib.sha256(open(p, "rb").read()).hexdigest()


@pytest.fixture(scope="module")
def album(tmp_path_factory):
    base = tmp_path_factory.mktemp("browser")
    photos = shared_data("photos")
    album = base / "root" / "album"
    album.mkdir(parents=True)
    for i in (0, 4, 8):
        shutil.copy(photos / ukbench(i), album / ukbench(i))
    shutil.copy(photos / ukbench(0), album / "copy of 0.jpg")  # exact duplicate
    buf = io.BytesIO()
    Image.open(photos / ukbench(4)).save(buf, "JPEG", quality=60)  # re-encoded: a near duplicate
    (album / "ukbench00004 small.jpg").write_bytes(buf.getvalue())
    server = Server(base, "--root", str(base / "root"), "--allow-changes", token="browser-token-1")
    yield server, album
    server.stop()


def test_review_page_dupes_apply_undo(album, tmp_path):
    from playwright.sync_api import expect, sync_playwright

    server, folder = album
    before = {p.name: sha(p) for p in folder.iterdir()}
    with sync_playwright() as pw:
        ctx = pw.chromium.launch_persistent_context(
            str(tmp_path / "chromium-profile"), executable_path=CHROMIUM, headless=True, args=CHROMIUM_FLAGS)
        try:
            page = ctx.new_page()
            errors: list[str] = []
            page.on("pageerror", lambda e: errors.append(str(e)))
            page.goto(f"{server.url}/#token={server.token}")
            page.wait_for_selector("body[data-ready='1']", timeout=30_000)
            page.fill("[data-testid=folder]", str(folder))
            page.select_option("#tier", "near")
            page.click("[data-testid=run-dupes]")
            page.wait_for_selector(".group", timeout=120_000)
            groups = page.locator("#groups .group")
            try:
                expect(groups).to_have_count(2, timeout=20_000)
            except AssertionError:
                print("STATUS:", page.locator("[data-testid=status]").inner_text())
                print("BODY:", page.locator("body").inner_text()[:3000])
                print("SERVER:", server.output()[-3000:])
                raise

            def group_of(name: str):
                return groups.filter(has=page.locator(f".card[data-path$='/{name}']"))

            exact, near = group_of("copy of 0.jpg"), group_of("ukbench00004 small.jpg")
            expect(exact.locator(".card")).to_have_count(2)
            expect(near.locator(".card")).to_have_count(2)
            # thumbnails are real pictures, fetched with the token
            page.wait_for_function(
                "() => [...document.querySelectorAll('.card img')].every(i => i.complete && i.naturalWidth > 0)",
                timeout=30_000)
            assert page.locator(".card img").first.get_attribute("src").startswith("blob:")
            # group 1: make the other file the keeper -> the former keeper is ticked for the trash
            old_keeper = exact.locator(".card.keeper").get_attribute("data-path")
            new_keeper = exact.locator(".card:not(.keeper)").get_attribute("data-path")
            exact.locator(f".card[data-path='{new_keeper}'] input.keep").check()
            expect(exact.locator(".card.keeper")).to_have_attribute("data-path", new_keeper)
            expect(exact.locator(f".card[data-path='{old_keeper}'] input.tick")).to_be_checked()
            # group 2: untick its duplicate -> nothing of it is touched
            near_dup = near.locator(".card:not(.keeper)").get_attribute("data-path")
            near.locator(f".card[data-path='{near_dup}'] input.tick").uncheck()
            expect(near.locator(".card.doomed")).to_have_count(0)

            page.click("[data-testid=apply]")
            page.click("[data-testid=confirm-ok]")  # the confirmation (tests/test_service_review.py)
            expect(page.locator("[data-testid=status]")).to_contain_text("Moved 1 file to the trash",
                                                                         timeout=30_000)
            assert not os.path.exists(old_keeper)
            assert os.path.exists(new_keeper)
            assert {p.name for p in folder.iterdir()} == set(before) - {os.path.basename(old_keeper)}
            trash = list((server.xdg / "Trash" / "files").iterdir())
            assert [sha(p) for p in trash] == [before[os.path.basename(old_keeper)]]

            page.click("[data-testid=undo]")
            expect(page.locator("[data-testid=status]")).to_contain_text("Put 1 file back", timeout=30_000)
            assert {p.name: sha(p) for p in folder.iterdir()} == before
            assert errors == []
        finally:
            ctx.close()
