"""The duplicates review of the web page, end to end in headless Chromium (Debian's /usr/bin/chromium
driven by Playwright) on real photos: each group side by side with its facts and the keeper's reason
in plain words, keyboard shortcuts, "keep best", the confirmation that says what will happen, the move
(moved files leave the view, an Undo stays), undo, cancelling a long job, and the token asked for in
plain words. Screenshots of the key views go to the test's tmp folder (``screens/``)."""

from __future__ import annotations

import hashlib
import io
import os
import shutil

import httpx
import pytest
from PIL import Image

from conftest import shared_data
from service_util import BROWSER_MARKS, CHROMIUM, CHROMIUM_FLAGS, Server, ukbench

pytestmark = BROWSER_MARKS

LONG = "a folder with a rather long name, as people make them, from the holiday of summer 2024"


def sha(p) -> str:
    return hashlib.sha256(open(p, "rb").read()).hexdigest()


def snapshot(folder) -> dict[str, str]:
    return {str(p.relative_to(folder)): sha(p) for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    """A served root with three groups (a byte copy and a copy deep in a long-named folder; a re-save;
    a half-size copy) and a folder of 60 photos for a job long enough to cancel."""
    base = tmp_path_factory.mktemp("review")
    photos = shared_data("photos")
    album = base / "root" / "album"
    deep = album / LONG / "backup"
    deep.mkdir(parents=True)
    for i in (0, 4, 8):
        shutil.copy(photos / ukbench(i), album / ukbench(i))
    shutil.copy(photos / ukbench(0), album / "copy of 0.jpg")
    shutil.copy(photos / ukbench(0), deep / "ukbench00000 (another copy from the old laptop).jpg")
    buf = io.BytesIO()
    Image.open(photos / ukbench(4)).save(buf, "JPEG", quality=60)  # re-saved: a near copy
    (album / "ukbench00004 resaved.jpg").write_bytes(buf.getvalue())
    img = Image.open(photos / ukbench(8))
    exif = img.getexif()
    img.resize((320, 240), Image.Resampling.LANCZOS).save(album / "ukbench00008 small.jpg", "JPEG", quality=90,
                                                          exif=exif)
    many = base / "root" / "many"
    many.mkdir()
    for i in range(100, 160):
        shutil.copy(photos / ukbench(i), many / ukbench(i))
    server = Server(base, "--root", str(base / "root"), "--allow-changes", token="review-token-1")
    yield server, album, many
    server.stop()


@pytest.fixture
def browser(tmp_path):
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        ctx = pw.chromium.launch_persistent_context(
            str(tmp_path / "chromium-profile"), executable_path=CHROMIUM, headless=True, args=CHROMIUM_FLAGS,
            viewport={"width": 1280, "height": 900})
        try:
            page = ctx.new_page()
            page.errors = []
            page.on("pageerror", lambda e: page.errors.append(str(e)))
            yield page
        finally:
            ctx.close()


def shot(page, tmp_path, name: str) -> None:
    """The whole page in one viewport (a full-page capture would leave the sticky bars mid-page)."""
    (tmp_path / "screens").mkdir(exist_ok=True)
    size = page.viewport_size
    height = page.evaluate(
        "() => Math.ceil(document.querySelector('main').getBoundingClientRect().bottom + window.scrollY) + 40")
    page.set_viewport_size({"width": size["width"], "height": max(400, min(height, 2400))})
    page.evaluate("() => window.scrollTo(0, 0)")
    page.screenshot(path=str(tmp_path / "screens" / f"{name}.png"))
    page.set_viewport_size(size)


def open_page(page, server, token=True):
    page.goto(f"{server.url}/" + (f"#token={server.token}" if token else ""))


def find(page, folder, tier="near"):
    page.wait_for_selector("body[data-ready='1']", timeout=30_000)
    page.fill("[data-testid=folder]", str(folder))
    page.select_option("#tier", tier)
    page.click("[data-testid=run-dupes]")


def test_review_confirm_move_undo(site, browser, tmp_path):
    from playwright.sync_api import expect

    server, album, _ = site
    page = browser
    before = snapshot(album)
    open_page(page, server)
    find(page, album)
    page.wait_for_function("() => document.querySelector('#groups .group') || document.querySelector('#status')"
                           ".dataset.state === 'error'", timeout=120_000)
    assert page.locator("#status").get_attribute("data-state") != "error", (
        page.locator("#status").inner_text(), server.output()[-2000:])
    groups = page.locator("#groups .group")
    expect(groups).to_have_count(3)

    def group_of(name: str):
        return groups.filter(has=page.locator(f".card[data-path$='/{name}']"))

    exact, resaved, small = (group_of("copy of 0.jpg"), group_of("ukbench00004 resaved.jpg"),
                             group_of("ukbench00008 small.jpg"))
    expect(exact.locator(".card")).to_have_count(3)
    page.wait_for_function(
        "() => [...document.querySelectorAll('.card img')].every(i => i.complete && i.naturalWidth > 0)",
        timeout=30_000)

    # each photo's facts side by side: resolution, bytes, format, capture date, path, tier and score
    card = small.locator(".card[data-path$='/ukbench00008 small.jpg']")
    facts = card.locator("dl.facts")
    expect(facts).to_contain_text("320 × 240")
    expect(facts).to_contain_text("JPEG")
    expect(facts).to_contain_text("taken2005-")
    expect(facts).to_contain_text("near copy")
    expect(card.locator(".dir")).to_contain_text(str(album))
    expect(small.locator(".card.keeper dl.facts dd.best").first).to_have_text("640 × 480")
    expect(exact.locator(".card:not(.keeper) dl.facts").first).to_contain_text("exact copy")
    # why the keeper won, in plain words (not "shortest path")
    expect(small.locator(".reason")).to_contain_text("Keeps ukbench00008.jpg: it has the most pixels (640 × 480)")
    expect(exact.locator(".reason")).to_contain_text("the copies are alike in resolution, size, format and date")
    # no label broken over two lines: each card's "keep" and "to trash" stay on one line each
    heights = page.eval_on_selector_all(".card .controls label",
                                        "els => els.map(e => e.getBoundingClientRect().height)")
    assert heights and max(heights) < 2 * min(heights)
    # the long folder name stays inside its card
    overflow = page.eval_on_selector_all(
        ".card", "els => els.filter(c => c.scrollWidth > c.clientWidth + 1).map(c => c.dataset.path)")
    assert overflow == []
    expect(page.locator("[data-testid=apply]")).to_have_text("Move 4 marked files to the trash…")
    shot(page, tmp_path, "review")

    # keyboard: Space unmarks the focused photo, K makes it the keeper, B goes back to the proposal
    dup = resaved.locator(".card:not(.keeper)")
    dup.focus()
    page.keyboard.press(" ")
    expect(resaved.locator(".card.spared")).to_have_count(1)
    expect(page.locator("[data-testid=apply]")).to_have_text("Move 3 marked files to the trash…")
    keeper_path = exact.locator(".card.keeper").get_attribute("data-path")
    assert keeper_path == str(album / "copy of 0.jpg")  # all else equal: the shortest path
    exact.locator(f".card[data-path='{album / ukbench(0)}']").focus()
    page.keyboard.press("k")
    expect(exact.locator(".card.keeper")).to_have_attribute("data-path", str(album / ukbench(0)))
    expect(exact.locator(".reason")).to_contain_text(f"You chose {ukbench(0)}")
    expect(exact.locator(f".card[data-path='{keeper_path}']")).to_have_class("card dupe doomed")
    page.keyboard.press("b")
    expect(exact.locator(".card.keeper")).to_have_attribute("data-path", keeper_path)
    expect(page.locator("[data-testid=apply]")).to_have_text("Move 4 marked files to the trash…")
    # the mouse works as well: untick the re-save, nothing of that group is touched
    resaved.locator(".card:not(.keeper) input.tick").uncheck()
    expect(resaved.locator(".card.doomed")).to_have_count(0)

    # the confirmation says what will happen; Cancel moves nothing
    page.click("[data-testid=apply]")
    dialog = page.locator("[data-testid=confirm]")
    expect(dialog).to_be_visible()
    expect(dialog).to_contain_text("Move 3 files to the trash? Keepers stay. You can undo.")
    shot(page, tmp_path, "confirm")
    page.click("[data-testid=confirm-cancel]")
    expect(dialog).to_be_hidden()
    assert snapshot(album) == before
    # Delete asks the same question; Esc answers no, as Cancel does
    page.keyboard.press("Delete")
    expect(dialog).to_be_visible()
    page.keyboard.press("Escape")
    expect(dialog).to_be_hidden()
    expect(page.locator("[data-testid=status]")).to_have_text("Nothing was moved")
    assert snapshot(album) == before
    page.keyboard.press("Delete")
    expect(dialog).to_be_visible()
    page.click("[data-testid=confirm-ok]")
    status = page.locator("[data-testid=status]")
    expect(status).to_contain_text("Moved 3 files to the trash", timeout=30_000)

    # moved files leave the view; the group left untouched stays; an Undo button stays
    expect(groups).to_have_count(1)
    expect(groups.locator(".card")).to_have_count(2)
    expect(page.locator("#groups .card.doomed")).to_have_count(0)
    gone = {str(album / ukbench(0)), str(album / "ukbench00008 small.jpg"),
            str(album / LONG / "backup" / "ukbench00000 (another copy from the old laptop).jpg")}
    assert all(not os.path.exists(p) for p in gone)
    assert os.path.exists(keeper_path) and os.path.exists(album / ukbench(8))
    assert len(list((server.xdg / "Trash" / "files").iterdir())) == 3
    undo = page.locator("[data-testid=undo]")
    expect(undo).to_be_visible()
    expect(undo).to_have_text("Undo: put 3 files back")
    shot(page, tmp_path, "after-move")

    undo.click()
    expect(status).to_contain_text("Put 3 files back", timeout=30_000)
    assert snapshot(album) == before
    expect(groups).to_have_count(3)
    expect(undo).to_be_hidden()
    assert page.errors == []


def test_long_job_progress_and_cancel(site, browser, tmp_path):
    from playwright.sync_api import expect

    server, _, many = site
    page = browser
    open_page(page, server)
    find(page, many)
    job = page.locator("[data-testid=dupes-job]")
    expect(job).to_be_visible()
    expect(job.locator("progress")).to_be_visible()
    cancel = job.locator("[data-testid=cancel-job]")
    expect(cancel).to_be_enabled(timeout=30_000)
    expect(job.locator(".job-text")).to_contain_text(" of ", timeout=60_000)
    shot(page, tmp_path, "progress")
    cancel.click()
    expect(page.locator("[data-testid=status]")).to_contain_text("Finding duplicates cancelled: nothing was changed",
                                                                 timeout=30_000)
    expect(job).to_be_hidden()
    expect(page.locator("#groups .group")).to_have_count(0)
    # the service says so too: its last duplicates job was cancelled
    jobs = [p for p in (server.home).rglob("jobs-*/*.json")]
    states = [httpx.get(f"{server.url}/v1/jobs/{p.stem}", headers=server.headers).json() for p in jobs]
    assert any(s["state"] == "cancelled" and s["params"]["folders"] == [str(many)] for s in states)
    assert page.errors == []


def test_token_asked_in_plain_words(site, browser, tmp_path):
    from playwright.sync_api import expect

    server, album, _ = site
    page = browser
    open_page(page, server, token=False)
    prompt = page.locator("[data-testid=token-prompt]")
    expect(prompt).to_be_visible(timeout=30_000)
    expect(prompt).to_contain_text("This service needs its access token: enter it above")
    expect(page.locator("[data-testid=status]")).to_contain_text("This service needs its access token")
    expect(page.locator("[data-testid=status]")).not_to_contain_text("Authorization")
    expect(page.locator("[data-testid=token]")).to_be_focused()
    shot(page, tmp_path, "token")
    page.fill("[data-testid=token]", "wrong")
    page.press("[data-testid=token]", "Enter")
    expect(prompt).to_contain_text("The access token entered above is not this service's")
    page.fill("[data-testid=token]", server.token)
    page.press("[data-testid=token]", "Enter")
    page.wait_for_selector("body[data-ready='1']", timeout=30_000)
    expect(prompt).to_be_hidden()
    # sub-folder links wrap and long names are cut with an ellipsis: nothing runs off the page
    page.locator("#subfolders a").first.click()
    page.locator("#subfolders a", has_text="album").click()
    link = page.locator("#subfolders a", has_text="a folder with")
    expect(link).to_have_attribute("title", str(album / LONG))
    page.set_viewport_size({"width": 480, "height": 800})
    assert page.evaluate("() => document.documentElement.scrollWidth <= window.innerWidth")
    assert page.evaluate("(a) => a.getBoundingClientRect().right <= window.innerWidth", link.element_handle())
    assert page.errors == []


def test_review_odd_name_and_file_changed_since(site, browser, tmp_path):
    """A name that is not UTF-8 is reviewed, moved and put back like any other; a marked file that
    changed after the search is left out of the move, said so, and stays in the view."""
    from playwright.sync_api import expect

    server, album, _ = site
    root = album.parent / "odd"
    root.mkdir()
    photos = shared_data("photos")
    for name in (b"a.jpg", b"caf\xe9.jpg", b"b.jpg"):
        shutil.copy(photos / ukbench(20), os.path.join(os.fsencode(root), name))
    shutil.copy(photos / ukbench(24), root / "c.jpg")
    shutil.copy(photos / ukbench(24), root / "c copy.jpg")
    odd = os.fsdecode(os.path.join(os.fsencode(root), b"caf\xe9.jpg"))
    page = browser
    open_page(page, server)
    find(page, root, tier="exact")
    groups = page.locator("#groups .group")
    expect(groups).to_have_count(2, timeout=60_000)
    page.wait_for_function(
        "() => [...document.querySelectorAll('.card img')].every(i => i.complete && i.naturalWidth > 0)",
        timeout=30_000)
    # the odd name is a member of the first group (keeper: a.jpg, the shortest name), marked for the trash
    assert page.evaluate("() => review.groups[0].keep") == str(root / "a.jpg")
    assert page.evaluate("() => [...review.groups[0].marked].sort()") == sorted([str(root / "b.jpg"), odd])
    # c copy.jpg changes on disk after the search: it must not be moved
    changed = root / "c copy.jpg"
    changed.write_bytes(changed.read_bytes() + b"\0")
    page.click("[data-testid=apply]")
    expect(page.locator("[data-testid=confirm]")).to_contain_text("Move 3 files to the trash?")
    page.click("[data-testid=confirm-ok]")
    status = page.locator("[data-testid=status]")
    expect(status).to_contain_text("Moved 2 files to the trash", timeout=30_000)
    expect(status).to_contain_text("1 file left out (c copy.jpg")
    assert not os.path.lexists(odd) and not (root / "b.jpg").exists() and changed.exists()
    expect(groups).to_have_count(1)
    expect(groups.locator(f".card[data-path='{changed}']")).to_have_count(1)
    page.click("[data-testid=undo]")
    expect(status).to_contain_text("Put 2 files back", timeout=30_000)
    assert os.path.lexists(odd) and (root / "b.jpg").exists()
    assert page.errors == []
