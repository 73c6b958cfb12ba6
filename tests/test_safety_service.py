"""Issue 10, case 10: no web page or other host can act through the service, and the service names no
file outside its roots. Real `lookalike serve` processes on loopback, real files, real HTTP."""

from __future__ import annotations

import json
import os
import shutil
import signal
import sqlite3
import time
from importlib.util import find_spec
from pathlib import Path
from urllib.parse import quote

import httpx
import pytest

from conftest import shared_data
from service_util import Server, copy_photos, free_port, ukbench

EVIL = "http://evil.example"


def outside_names(obj, roots: list[Path]) -> list[str]:
    """Every string in a JSON value that is an absolute path whose real location is outside ``roots``."""
    real_roots = [os.path.realpath(r) for r in roots]
    found: list[str] = []

    def visit(v) -> None:
        if isinstance(v, dict):
            for x in v.values():
                visit(x)
        elif isinstance(v, list):
            for x in v:
                visit(x)
        elif isinstance(v, str) and v.startswith("/"):
            real = os.path.realpath(v)
            if not any(real == r or real.startswith(r + os.sep) for r in real_roots):
                found.append(v)

    visit(obj)
    return found


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    """A root with pictures, symlinks out of it (to a picture elsewhere, to a folder elsewhere, to
    /etc/passwd), a file and a folder whose names are not UTF-8; a service on it with --allow-changes
    and no token (the README's `serve --allow-changes --daemon` example) and a klik port."""
    base = tmp_path_factory.mktemp("safety-service")
    photos = shared_data("photos")
    root = base / "root"
    album = root / "album"
    copy_photos(photos, album, [ukbench(i) for i in (0, 1, 2)])
    elsewhere = base / "elsewhere"  # another folder of the same machine: not served
    copy_photos(photos, elsewhere, [ukbench(3)])
    shutil.copy(photos / ukbench(0), elsewhere / "private copy.jpg")  # an exact copy of album/ukbench00000
    (album / "link.jpg").symlink_to(elsewhere / "private copy.jpg")
    (album / "passwd.jpg").symlink_to("/etc/passwd")
    (album / "outside-folder").symlink_to(elsewhere, target_is_directory=True)
    (album / "inside-link.jpg").symlink_to(album / ukbench(1))  # a link that stays inside: still served
    (album / "chain.jpg").symlink_to(album / "link.jpg")  # a chain of links that ends outside
    (album / "chained-folder").symlink_to(album / "outside-folder", target_is_directory=True)
    odd = os.fsdecode(os.fsencode(str(root)) + b"/caf\xe9.jpg")
    shutil.copy(photos / ukbench(4), odd)
    os.mkdir(os.fsencode(str(root)) + b"/f\xeate")
    server = Server(base, "--root", str(root), "--allow-changes", "--klik", "--klik-type", "MobileNet", token=None)
    server.root, server.album, server.elsewhere, server.odd = root, album, elsewhere, odd
    server.klik_port = httpx.get(server.url + "/v1/info").json()["klik"]["MobileNet"]
    yield server
    server.stop()


@pytest.fixture(scope="module")
def locked(tmp_path_factory):
    """A service without --allow-changes."""
    base = tmp_path_factory.mktemp("safety-service-locked")
    root = base / "root"
    copy_photos(shared_data("photos"), root, [ukbench(0)])
    server = Server(base, "--root", str(root), token=None)
    server.root = root
    yield server
    server.stop()


def move_plan(src: Path, dst: Path) -> dict:
    return {"plan": {"description": "cross-origin", "operations": [{"op": "move", "src": str(src), "dst": str(dst)}]}}


def post(server, path: str, *, body: bytes | None = None, headers: dict | None = None, **kw) -> httpx.Response:
    return httpx.post(server.url + path, content=body, headers=headers or {}, timeout=60, **kw)


# ---- Origin and Content-Type on routes that change state or start work ---------------------
def test_cross_origin_simple_request_cannot_apply_a_plan(world):
    """A page elsewhere can POST text/plain (no preflight); with "json" in a parameter main took it."""
    src, dst = world.album / ukbench(2), world.album / "moved.jpg"
    body = json.dumps(move_plan(src, dst)).encode()
    for headers in ({"Content-Type": "text/plain; charset=json", "Origin": EVIL},
                    {"Content-Type": "text/plain; charset=json"},  # even without an Origin
                    {"Content-Type": "application/x-www-form-urlencoded; json=1"},
                    {"Content-Type": "application/jsonp"},
                    {"Content-Type": "application/json", "Origin": EVIL},
                    {"Content-Type": "application/json", "Origin": "null"},  # sandboxed frame, file: page
                    {"Content-Type": "application/json", "Origin": f"http://127.0.0.1:{world.port + 1}"},
                    {"Content-Type": "application/json", "Sec-Fetch-Site": "cross-site"}):
        r = post(world, "/v1/plans/apply", body=body, headers=headers)
        assert r.status_code in (403, 415), (headers, r.status_code, r.text)
        assert r.json()["error"]["code"] in ("origin_refused", "unsupported_media_type")
        assert src.exists() and not dst.exists()
    r = post(world, "/v1/undo", body=b"{}", headers={"Content-Type": "application/json", "Origin": EVIL})
    assert r.status_code == 403


def test_own_page_and_plain_clients_still_work(world):
    src, dst = world.album / ukbench(2), world.album / "moved.jpg"
    body = json.dumps({**move_plan(src, dst), "dry_run": True}).encode()
    for origin in (None, world.url, f"http://localhost:{world.port}", f"http://[::1]:{world.port}"):
        headers = {"Content-Type": "application/json; charset=utf-8"}
        if origin:
            headers |= {"Origin": origin, "Sec-Fetch-Site": "same-origin"}
        r = post(world, "/v1/plans/apply", body=body, headers=headers)
        assert r.status_code == 200, (origin, r.text)
        assert r.json()["dry_run"] is True
    assert src.exists() and not dst.exists()


def test_cross_origin_upload_and_jobs_are_refused(world):
    """multipart/form-data is CORS-safelisted: only the Origin check stops a page's upload."""
    data = (world.album / ukbench(0)).read_bytes()
    r = httpx.post(world.url + "/v1/similar", files={"file": ("q.jpg", data, "image/jpeg")},
                   data={"model": "phash"}, headers={"Origin": EVIL}, timeout=60)
    assert r.status_code == 403 and r.json()["error"]["code"] == "origin_refused"
    r = httpx.post(world.url + "/v1/similar", files={"file": ("q.jpg", data, "image/jpeg")},
                   data={"model": "phash"}, headers={"Origin": world.url}, timeout=60)
    assert r.status_code == 200, r.text
    for route in ("/v1/index", "/v1/dupes", "/v1/sort", "/v1/cluster"):
        r = post(world, route, body=json.dumps({"folder": str(world.album)}).encode(),
                 headers={"Content-Type": "text/plain; x=json", "Origin": EVIL})
        assert r.status_code == 403, (route, r.text)


# ---- Host header (DNS rebinding) ------------------------------------------------------------
def test_foreign_host_header_is_refused_everywhere(world):
    thumb = {"path": str(world.album / ukbench(0)), "size": 64}
    for host in ("evil.example", f"evil.example:{world.port}", f"127.0.0.1.evil.example:{world.port}",
                 f"localhost:{world.port + 1}"):
        for path, params in (("/v1/thumb", thumb), ("/v1/info", None), ("/healthz", None), ("/", None)):
            r = httpx.get(world.url + path, params=params, headers={"Host": host}, timeout=30)
            assert r.status_code == 400, (host, path, r.status_code)
            assert r.json()["error"]["code"] == "host_refused"
        r = httpx.get(f"http://127.0.0.1:{world.klik_port}/health", headers={"Host": host}, timeout=30)
        assert r.status_code == 400, ("klik", host, r.status_code)
    for host in (f"127.0.0.1:{world.port}", f"localhost:{world.port}", "localhost", f"[::1]:{world.port}"):
        r = httpx.get(world.url + "/v1/thumb", params=thumb, headers={"Host": host}, timeout=30)
        assert r.status_code == 200 and r.headers["content-type"] == "image/jpeg", (host, r.text)
    r = httpx.get(f"http://127.0.0.1:{world.klik_port}/health", timeout=30)
    assert r.status_code == 200


def test_other_sites_cannot_embed_reads(world):
    """<img src=http://127.0.0.1:PORT/v1/thumb?path=...> on another site would tell it what exists."""
    thumb = {"path": str(world.album / ukbench(0)), "size": 64}
    r = httpx.get(world.url + "/v1/thumb", params=thumb, headers={"Sec-Fetch-Site": "cross-site",
                                                                   "Sec-Fetch-Mode": "no-cors"}, timeout=30)
    assert r.status_code == 403
    r = httpx.get(world.url + "/v1/thumb", params=thumb, headers={"Sec-Fetch-Site": "same-origin"}, timeout=30)
    assert r.status_code == 200
    r = httpx.get(world.url + "/", headers={"Sec-Fetch-Site": "cross-site", "Sec-Fetch-Mode": "navigate"}, timeout=30)
    assert r.status_code == 200  # a link to the review page still opens it


def test_allowed_host_and_origin_for_a_reverse_proxy(tmp_path):
    root = tmp_path / "root"
    copy_photos(shared_data("photos"), root, [ukbench(0)])
    server = Server(tmp_path, "--root", str(root), "--allowed-host", "photos.example",
                    "--allowed-origin", "https://photos.example", token="proxy-token-1")
    try:
        h = server.headers
        assert httpx.get(server.url + "/v1/info", headers={**h, "Host": "photos.example"}).status_code == 200
        assert httpx.get(server.url + "/v1/info", headers={**h, "Host": "evil.example"}).status_code == 400
        body = json.dumps({"folder": str(root), "tier": "exact"}).encode()
        for origin, status in (("https://photos.example", 202), ("https://photos.example:8443", 403), (EVIL, 403)):
            r = httpx.post(server.url + "/v1/dupes", content=body, headers={
                **h, "Host": "photos.example", "Content-Type": "application/json", "Origin": origin})
            assert r.status_code == status, (origin, r.text)
    finally:
        server.stop()
    # a malformed --allowed-host or --allowed-origin is a usage error, not a silent allow-all
    from lookalike.errors import UsageError
    from lookalike.service import server as service_server
    from lookalike.service.config import ServiceConfig

    for bad in ({"allowed_hosts": ["http://x/"]}, {"allowed_origins": ["photos.example"]},
                {"allowed_origins": ["null"]}):
        with pytest.raises(UsageError, match="--allowed-"):
            service_server.check(ServiceConfig(state_dir=str(tmp_path / "s"), **bad))


# ---- jobs and searches stay inside the roots ------------------------------------------------
def test_jobs_never_name_a_file_outside_the_roots(world):
    c = world.client()
    roots = [world.root]
    index = c.wait(c.index(str(world.album), model="phash")["id"], timeout=120)
    assert index["state"] == "done", index
    assert outside_names(index["result"], roots) == [] and "/etc/passwd" not in json.dumps(index)
    dupes = c.wait(c.dupes(str(world.album), tier="exact")["id"], timeout=120)
    assert dupes["state"] == "done", dupes
    assert outside_names(dupes["result"], roots) == [], dupes["result"]
    for job in (c.sort(str(world.album), model="phash"), c.cluster(str(world.album), model="phash", sim=0.9)):
        final = c.wait(job["id"], timeout=120)
        assert final["state"] == "done", final
        assert outside_names(final["result"], roots) == [], final["result"]
    order = c.wait(c.sort(str(world.album), model="phash")["id"])["result"]["order"]
    assert str(world.album / "inside-link.jpg") in order  # a symlink that stays inside is still a picture


def test_similar_never_names_a_file_outside_the_roots(world):
    c = world.client()
    assert c.wait(c.index(str(world.album), model="phash")["id"], timeout=120)["state"] == "done"
    query = str(world.album / ukbench(0))
    for folder in (None, str(world.album)):
        res = c.similar(path=query, k=50, model="phash", folder=folder)
        names = [h["path"] for h in res["results"]]
        assert names, res
        assert outside_names(res, [world.root]) == [], (folder, names)
        assert str(world.album / ukbench(1)) in names
    data = (world.album / ukbench(0)).read_bytes()
    res = c.similar(upload=data, k=50, model="phash")
    assert outside_names(res, [world.root]) == [], res


def test_a_link_retargeted_after_indexing_is_not_named(world, tmp_path):
    """The catalog-wide matrix was built while the link pointed inside; it now points outside."""
    c = world.client()
    link = world.album / "moving-link.jpg"
    link.symlink_to(world.album / ukbench(2))
    try:
        assert c.wait(c.index(str(world.album), model="phash")["id"], timeout=120)["state"] == "done"
        time.sleep(1.1)  # the service looks at the catalog's generation at most once a second
        names = [h["path"] for h in c.similar(path=str(world.album / ukbench(2)), k=50, model="phash")["results"]]
        assert str(link) in names
        link.unlink()
        link.symlink_to(world.elsewhere / ukbench(3))
        names = [h["path"] for h in c.similar(path=str(world.album / ukbench(2)), k=50, model="phash")["results"]]
        assert str(link) not in names
    finally:
        link.unlink()


# ---- --allow-changes ------------------------------------------------------------------------
def test_every_changing_route_needs_allow_changes(locked):
    for method, path, body in (("PUT", "/v1/faces/models/active", {"name": "people"}),
                               ("POST", "/v1/plans/apply", {"plan": {"operations": []}}),
                               ("POST", "/v1/undo", {}),
                               ("POST", "/v1/faces/train", {"dataset": str(locked.root), "model": "x"})):
        r = httpx.request(method, locked.url + path, json=body, timeout=30)
        assert r.status_code == 403, (method, path, r.text)
        assert r.json()["error"]["code"] == "changes_disabled"


def test_every_route_is_classified(tmp_path):
    """A new route that takes a body must be put in CHANGING_ROUTES or WORK_ROUTES on purpose."""
    from lookalike.service.app import create_app
    from lookalike.service.config import ServiceConfig
    from lookalike.service.security import CHANGING_ROUTES, WORK_ROUTES

    app = create_app(ServiceConfig(state_dir=str(tmp_path / "state"), port=free_port(), idle_unload_s=0))
    seen = set()
    for route in app.routes:
        for method in getattr(route, "methods", None) or ():
            if method not in ("GET", "HEAD"):
                seen.add((method, route.path))
    assert seen, "no routes found"
    assert seen <= CHANGING_ROUTES | WORK_ROUTES, seen - (CHANGING_ROUTES | WORK_ROUTES)
    assert not CHANGING_ROUTES & WORK_ROUTES


# ---- jobs interrupted by a crash -----------------------------------------------------------
def test_job_running_when_the_service_was_killed_is_failed_at_restart(tmp_path):
    root = tmp_path / "root"
    copy_photos(shared_data("photos"), root, [ukbench(i) for i in range(6)])
    port = free_port()
    server = Server(tmp_path, "--root", str(root), token=None, port=port)
    catalog = server.home / "catalog.sqlite"
    hold = sqlite3.connect(catalog, isolation_level=None, timeout=30)
    try:
        hold.execute("BEGIN EXCLUSIVE")  # the job cannot write its results: it stays running
        job = server.client().index(str(root), model="phash")
        deadline = time.monotonic() + 30
        while server.client().job(job["id"])["state"] != "running" and time.monotonic() < deadline:
            time.sleep(0.05)
        time.sleep(0.3)
        server.proc.send_signal(signal.SIGKILL)
        server.proc.wait(timeout=30)
    finally:
        hold.execute("ROLLBACK")
        hold.close()
    server.log.close()
    on_disk = json.loads((server.home / "server" / f"jobs-{port}" / f"{job['id']}.json").read_text())
    assert on_disk["state"] == "running"  # what main then reported forever
    again = Server(tmp_path, "--root", str(root), token=None, port=port)
    try:
        state = again.client().job(job["id"])
        assert state["state"] == "failed", state
        assert "interrupted" in state["error"] and state["finished"]
        fresh = again.client().wait(again.client().index(str(root), model="phash")["id"], timeout=120)
        assert fresh["state"] == "done"  # the new service's own jobs are not touched
        assert again.client().job(fresh["id"])["state"] == "done"
    finally:
        again.stop()


# ---- names that are not UTF-8 ---------------------------------------------------------------
def test_klik_path_with_invalid_utf8_is_a_clear_error(world):
    missing = quote(str(world.root), safe="") + "%2Fnothing-here-%E9.jpg"
    r = httpx.get(f"http://127.0.0.1:{world.klik_port}/{missing}", timeout=30)
    assert r.status_code == 404, r.text
    assert r.json()["error"]["code"] == "not_found"
    outside = quote("/etc/caf", safe="") + "%E9.jpg"
    r = httpx.get(f"http://127.0.0.1:{world.klik_port}/{outside}", timeout=30)
    assert r.status_code == 403 and r.json()["error"]["code"] == "path_refused"


def test_json_with_names_that_are_not_utf8(world):
    r = httpx.get(world.url + "/v1/browse", params={"path": str(world.root)}, timeout=30)
    assert r.status_code == 200, r.text
    folders = r.json()["folders"]
    assert os.fsdecode(os.fsencode(str(world.root)) + b"/f\xeate") in folders
    # the thumbnail of a file whose name is not UTF-8: its bytes, percent-encoded
    raw = quote(os.fsencode(world.odd), safe="/")
    r = httpx.get(f"{world.url}/v1/thumb?size=64&path={raw}", timeout=30)
    assert r.status_code == 200 and r.headers["content-type"] == "image/jpeg", r.text
    # an error that names such a file is JSON too
    body = json.dumps({"path": world.odd[:-4] + "-missing.jpg", "model": "phash"}).encode()  # "\udce9" escapes
    r = httpx.post(world.url + "/v1/embed", content=body, headers={"Content-Type": "application/json"})
    assert r.status_code == 404 and json.loads(r.content)["error"]["code"] == "not_found"
    assert world.odd[:-4] in json.loads(r.content)["error"]["message"]
    # the Python client sends and reads such names too
    c = world.client()
    assert c.thumbnail(world.odd, size=64)[:2] == b"\xff\xd8"
    assert c.embed(path=world.odd, model="phash")["model"] == "phash"


# ---- numeric options are refused when asked, not as a failed job later ---------------------
@pytest.mark.skipif(find_spec("lookalike.options") is None,
                    reason="lookalike.options (the shared validators) is not part of this build yet")
def test_bad_threshold_is_a_400_before_any_job(world):
    for body in ({"folder": str(world.album), "tier": "similar", "threshold": -5},
                 {"folder": str(world.album), "tier": "near", "threshold": -1}):
        r = httpx.post(world.url + "/v1/dupes", json=body, timeout=30)
        assert r.status_code == 400, r.text
    r = httpx.post(world.url + "/v1/cluster", json={"folder": str(world.album), "sim": 7}, timeout=30)
    assert r.status_code == 400, r.text


def test_undo_reads_a_chunked_body(world):
    """A body sent without Content-Length (chunked) names the journal; it is not taken as `{}`
    (which would undo the latest journal instead)."""
    def chunks():
        yield b'{"journal": "no-such-journal"}'

    r = httpx.post(world.url + "/v1/undo", content=chunks(), headers={"Content-Type": "application/json"})
    assert r.status_code == 404 and "no-such-journal" in r.json()["error"]["message"]


def test_guard_units():
    from lookalike.service.security import SiteRules, is_json_type, normal_origin, split_host

    assert is_json_type("application/json") and is_json_type("Application/JSON; charset=UTF-8")
    for bad in ("text/plain", "text/plain; charset=json", "application/json; boundary=x", "application/jsonx",
                "application/x-www-form-urlencoded", "", None):
        assert not is_json_type(bad), bad
    assert split_host("[::1]:8765") == ("::1", 8765) and split_host("LOCALHOST") == ("localhost", None)
    assert split_host("a@b") is None and split_host("x:99999") is None
    assert normal_origin("null") is None and normal_origin("http://A:80") == "http://a:80"
    rules = SiteRules("127.0.0.1")
    assert rules.host_ok("127.0.0.1:8765", 8765) and not rules.host_ok("10.0.0.1:8765", 8765)
    assert not rules.origin_ok("http://127.0.0.1:8766", "127.0.0.1:8765", 8765)
    wild = SiteRules("0.0.0.0")
    assert wild.host_ok("192.168.1.5:8765", 8765) and not wild.host_ok("evil.example:8765", 8765)
    assert not wild.origin_ok("http://6.6.6.6:8765", "192.168.1.5:8765", 8765)
    assert wild.origin_ok("http://192.168.1.5:8765", "192.168.1.5:8765", 8765)
    with pytest.raises(ValueError):
        SiteRules("127.0.0.1", allowed_hosts=["http://x/"])


def test_job_of_a_reused_pid_or_an_old_format_is_failed(tmp_path):
    """A container restarted gives the new service the old one's pid: the start time tells them apart."""
    from lookalike.service.jobs import JobStore

    folder = tmp_path / "jobs"
    folder.mkdir()
    me = os.getpid()
    for job_id, owner in (("a" * 32, {"pid": me, "started": "1"}), ("b" * 32, None)):
        state = {"id": job_id, "kind": "index", "state": "running", "params": {}, "progress": {"done": 1, "total": 9},
                 "result": None, "error": None, "created": 1.0, "started": 1.0, "finished": None}
        if owner:
            state["owner"] = owner
        (folder / f"{job_id}.json").write_text(json.dumps(state))
    store = JobStore(folder, threads=1)
    try:
        for job_id in ("a" * 32, "b" * 32):
            on_disk = json.loads((folder / f"{job_id}.json").read_text())
            assert on_disk["state"] == "failed" and "interrupted" in on_disk["error"], on_disk
            assert store.get(job_id)["state"] == "failed"
    finally:
        store.shutdown()


@pytest.mark.skipif(find_spec("playwright") is None or not os.path.exists(os.environ.get(
    "LOOKALIKE_CHROMIUM", "/usr/bin/chromium")), reason="needs playwright and Chromium (see test_service_browser)")
def test_in_a_real_browser_another_page_cannot_apply_and_odd_names_show(world, tmp_path):
    """Chromium on a page of another origin (another port of this machine) sends the plan as a simple
    request, as an attacker's page would; then the review page shows a file whose name is not UTF-8."""
    import http.server
    import threading

    from playwright.sync_api import sync_playwright

    evil = http.server.ThreadingHTTPServer(("127.0.0.1", 0), http.server.SimpleHTTPRequestHandler)
    threading.Thread(target=evil.serve_forever, daemon=True).start()
    src, dst = world.album / ukbench(2), world.album / "moved by a page.jpg"
    plan = json.dumps(move_plan(src, dst))
    try:
        with sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path=os.environ.get("LOOKALIKE_CHROMIUM", "/usr/bin/chromium"),
                                         headless=True, args=["--no-sandbox", "--disable-gpu"])
            try:
                page = browser.new_page()
                page.goto(f"http://127.0.0.1:{evil.server_address[1]}/")
                for ctype in ("text/plain; charset=json", "application/x-www-form-urlencoded; x=json"):
                    page.evaluate("""([url, body, ctype]) => fetch(url, {method: "POST", mode: "no-cors",
                        headers: {"Content-Type": ctype}, body}).catch(() => null)""",
                                  [world.url + "/v1/plans/apply", plan, ctype])
                page.wait_for_timeout(300)
                assert src.exists() and not dst.exists()
                page.goto(world.url + "/")
                page.wait_for_selector("body[data-ready='1']", timeout=30_000)
                assert page.evaluate("encodePath('/a/caf\\udce9 x.jpg')") == "%2Fa%2Fcaf%E9%20x.jpg"
                url = page.evaluate("(p) => thumb(p)", world.odd)
                assert url.startswith("blob:")
            finally:
                browser.close()
    finally:
        evil.shutdown()


def test_dupes_job_keeps_the_hashes_the_search_saw(world):
    folder = world.root / "hashes"
    copy_photos(shared_data("photos"), folder, [ukbench(5)])
    shutil.copy(folder / ukbench(5), folder / "copy.jpg")
    c = world.client()
    job = c.wait(c.dupes(str(folder), tier="exact")["id"], timeout=120)
    assert job["state"] == "done", job
    import hashlib

    digest = hashlib.sha256((folder / "copy.jpg").read_bytes()).hexdigest()
    assert job["hashes"] == {str(folder / ukbench(5)): digest, str(folder / "copy.jpg"): digest}
    assert "hashes" not in job["result"]  # the result stays what `lookalike dupes --json` prints


@pytest.mark.skipif(not hasattr(__import__("lookalike.journal", fromlist=["Plan"]).Plan(), "skipped"),
                    reason="the journal's plans do not list left-out files in this build")
def test_review_plan_leaves_out_a_file_replaced_since_the_search(world):
    """Near tier: the reviewed duplicate was replaced by another photo after the search; building the
    plan from the review must not trash it (the plan compares it with the hash the search saw)."""
    import io

    from PIL import Image

    from conftest import effnet_available

    if not effnet_available():
        pytest.skip("needs the effnet weights")
    folder = world.root / "replaced"
    copy_photos(shared_data("photos"), folder, [ukbench(6)])
    buf = io.BytesIO()
    Image.open(folder / ukbench(6)).save(buf, "JPEG", quality=60)
    (folder / "small.jpg").write_bytes(buf.getvalue())
    c = world.client()
    job = c.wait(c.dupes(str(folder), tier="near")["id"], timeout=300)
    (group,) = job["result"]["groups"]
    member = group["members"][0]["path"]
    shutil.copy(world.album / ukbench(1), member)  # another photo under the reviewed name
    plan = c.request("POST", "/v1/dupes/plan", json={"job": job["id"], "action": "trash",
                                                    "groups": [{"keep": group["keep"], "members": [member]}]})
    assert plan["operations"] == 0, plan
    assert [s["path"] for s in plan["skipped"]] == [member]
