"""The HTTP service over a real uvicorn process on loopback: every core route's happy path and refusals."""

from __future__ import annotations

import io
import json
import os
import re
import time

import httpx
import numpy as np
import pytest
from PIL import Image

from conftest import needs_effnet, shared_data
from lookalike.client import ServiceError
from service_util import Server, copy_photos, ukbench

TOKEN = "test-token-123"


@pytest.fixture(scope="module")
def svc(tmp_path_factory):
    base = tmp_path_factory.mktemp("svc")
    photos = shared_data("photos")
    root = base / "root"
    copy_photos(photos, root, [ukbench(i) for i in range(8)])
    copy_photos(photos, root / "sub", [ukbench(8), ukbench(9)])
    (root / "with space + plus.jpg").write_bytes((photos / ukbench(10)).read_bytes())
    outside = base / "outside"
    copy_photos(photos, outside, [ukbench(12)])
    os.symlink(outside / ukbench(12), root / "escape.jpg")
    os.symlink(outside, root / "escape-dir")
    os.symlink(root / ukbench(0), root / "inner-link.jpg")
    (root / "notes.txt").write_text("not a picture")
    server = Server(base, "--root", str(root), "--max-upload-mb", "1", "--max-megapixels", "20")
    server.root, server.outside, server.photos = root, outside, photos
    yield server
    server.stop()


def post_json(svc, route, body, token=TOKEN):
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    return httpx.post(svc.url + route, json=body, headers=headers, timeout=60)


def upload(svc, route, data, fields=None, token=TOKEN, name="x.jpg"):
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    return httpx.post(svc.url + route, files={"file": (name, data, "image/jpeg")}, data=fields or {},
                      headers=headers, timeout=60)


def assert_error(resp, status, code=None):
    assert resp.status_code == status, resp.text
    body = resp.json()
    assert set(body) == {"error"}
    assert body["error"]["status"] == status
    if code:
        assert body["error"]["code"] == code
    assert "Traceback" not in resp.text and 'File "' not in resp.text
    return body["error"]["message"]


# -- authentication --------------------------------------------------------------------------
def test_healthz_needs_no_token(svc):
    r = httpx.get(svc.url + "/healthz")
    assert r.status_code == 200 and r.json()["status"] == "ok" and r.json()["service"] == "lookalike"


@pytest.mark.parametrize("route", ["/v1/info", "/metrics", "/openapi.json", "/v1/models"])
def test_routes_need_the_token(svc, route):
    assert_error(httpx.get(svc.url + route), 401, "unauthorized")
    assert_error(httpx.get(svc.url + route, headers={"Authorization": "Bearer wrong-token-xx"}), 401)
    assert_error(httpx.get(svc.url + route, headers={"Authorization": f"Basic {TOKEN}"}), 401)
    assert httpx.get(svc.url + route, headers=svc.headers).status_code == 200


def test_docs_page_loads_swagger_ui_from_this_service(svc):
    """Issue 13: /docs works offline: every asset it references is a local URL this service answers
    (FastAPI's default loads Swagger UI from a CDN). The page and its assets hold no data, so, like the
    review page's shell, they need no token; the schema they load (/openapi.json) still does."""
    r = httpx.get(svc.url + "/docs")
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/html")
    assert "http://" not in r.text and "https://" not in r.text and "//cdn" not in r.text
    refs = re.findall(r'(?:src|href)\s*=\s*["\']([^"\']+)["\']', r.text)
    assert len(refs) >= 2
    kinds = set()
    for ref in refs:
        assert ref.startswith("/") and not ref.startswith("//"), ref
        a = httpx.get(svc.url + ref)
        assert a.status_code == 200, (ref, a.text[:200])
        ctype = a.headers["content-type"]
        assert ctype.split(";")[0] in ("text/javascript", "application/javascript", "text/css", "image/png"), ctype
        kinds.add(ctype.split(";")[0].split("/")[1])
        assert len(a.content) > 100
    assert {"css"} <= kinds and kinds & {"javascript"}
    assert "url: '/openapi.json'" in r.text
    assert_error(httpx.get(svc.url + "/openapi.json"), 401, "unauthorized")


@pytest.mark.parametrize("name", ["redoc.standalone.js", "..%2Fcore.py", ".hidden", "nope.js", "__init__.py"])
def test_docs_assets_serve_only_swagger_files(svc, name):
    assert_error(httpx.get(svc.url + "/docs-assets/" + name), 404)


def test_docs_page_keeps_the_site_guard(svc):
    r = httpx.get(svc.url + "/docs", headers={"Host": "evil.example:80"})
    assert_error(r, 400, "host_refused")
    r = httpx.get(svc.url + "/docs-assets/swagger-ui.css", headers={"Host": "evil.example"})
    assert_error(r, 400, "host_refused")


def test_post_routes_need_the_token(svc):
    data = (svc.root / ukbench(0)).read_bytes()
    assert_error(upload(svc, "/v1/similar", data, token=None), 401)
    assert_error(upload(svc, "/v1/embed", data, token="nope-nope-nope"), 401)
    assert_error(post_json(svc, "/v1/dupes", {"folder": str(svc.root)}, token=None), 401)


def test_openapi_lists_the_routes(svc):
    spec = httpx.get(svc.url + "/openapi.json", headers=svc.headers).json()
    for route in ("/v1/embed", "/v1/similar", "/v1/dupes", "/v1/sort", "/v1/cluster", "/v1/jobs/{job_id}",
                  "/v1/plans/apply", "/v1/undo", "/v1/faces/detect", "/v1/faces/recognize", "/v1/faces/train",
                  "/v1/faces/models", "/v1/faces/models/active", "/healthz", "/metrics"):
        assert route in spec["paths"], route
    body = spec["paths"]["/v1/similar"]["post"]["requestBody"]["content"]
    assert "multipart/form-data" in body and "application/json" in body


# -- embed and similar -----------------------------------------------------------------------
@needs_effnet
def test_embed_upload_and_path_agree(svc):
    c = svc.client()
    up = c.embed(upload=svc.root / ukbench(1))
    by_path = c.embed(path=str(svc.root / ukbench(1)))
    assert up["model"] == "effnet" and len(up["vector"]) == 1280
    a, b = np.array(up["vector"]), np.array(by_path["vector"])
    assert abs(np.linalg.norm(a) - 1) < 1e-3
    assert float(a @ b) > 0.999


def test_embed_hash_model_gives_bits(svc):
    r = svc.client().embed(path=str(svc.root / ukbench(2)), model="dhash")
    assert r["model"] == "dhash" and len(r["vector"]) == 64 and set(r["vector"]) <= {0, 1}


@needs_effnet
def test_similar_in_folder_matches_the_cli(svc):
    q = str(svc.root / ukbench(0))
    got = svc.client().similar(path=q, folder=str(svc.root), k=3)
    cli = svc.cli("similar", q, "--in", str(svc.root), "-k", "3", "--json")
    assert got == json.loads(cli.stdout)
    assert got["query"] == q and len(got["results"]) == 3
    # UKBench: 00000-00003 are one object; its 3 mates come first
    assert {os.path.basename(h["path"]) for h in got["results"]} <= {ukbench(i) for i in range(1, 4)} | {
        "inner-link.jpg"}


@needs_effnet
def test_similar_upload_searches_the_catalog_without_a_folder(svc):
    c = svc.client()
    job = c.index(str(svc.root))
    done = c.wait(job["id"], timeout=120)
    assert done["state"] == "done" and done["result"]["failed"] == []
    got = c.similar(upload=svc.root / ukbench(5), k=3)
    assert got["query"] == "<upload>" and got["model"] == "effnet"
    assert len(got["results"]) == 3
    assert os.path.basename(got["results"][0]["path"]) == ukbench(5)
    assert got["results"][0]["score"] > 0.99
    scores = [h["score"] for h in got["results"]]
    assert scores == sorted(scores, reverse=True)
    # every result lies under the served root
    assert all(h["path"].startswith(str(svc.root)) for h in got["results"])


def test_similar_with_hash_model_and_k(svc):
    got = svc.client().similar(path=str(svc.root / ukbench(4)), folder=str(svc.root / "sub"), k=1, model="dhash")
    assert len(got["results"]) == 1 and got["results"][0]["score"] >= 0


def test_relative_paths_resolve_inside_the_root(svc):
    got = svc.client().similar(path="sub/" + ukbench(8), folder="sub", k=1, model="dhash")
    assert got["query"] == str(svc.root / "sub" / ukbench(8))
    assert got["results"][0]["path"] == str(svc.root / "sub" / ukbench(9))


def test_symlink_inside_the_root_is_fine(svc):
    r = post_json(svc, "/v1/embed", {"path": str(svc.root / "inner-link.jpg"), "model": "dhash"})
    assert r.status_code == 200


# -- path refusals ---------------------------------------------------------------------------
@pytest.mark.parametrize("route", ["/v1/embed", "/v1/similar"])
def test_path_refusals(svc, route):
    msg = assert_error(post_json(svc, route, {"path": str(svc.outside / ukbench(12))}), 403, "path_refused")
    assert "outside" in msg
    assert_error(post_json(svc, route, {"path": "/etc/hostname"}), 403, "path_refused")
    msg = assert_error(post_json(svc, route, {"path": str(svc.root / ".." / "outside" / ukbench(12))}), 403)
    assert "'..'" in msg
    assert_error(post_json(svc, route, {"path": "../outside/" + ukbench(12)}), 403, "path_refused")
    msg = assert_error(post_json(svc, route, {"path": str(svc.root / "escape.jpg")}), 403, "path_refused")
    assert "symbolic link" in msg
    assert_error(post_json(svc, route, {"path": str(svc.root / "escape-dir" / ukbench(12))}), 403, "path_refused")
    assert_error(post_json(svc, route, {"path": str(svc.root / "missing.jpg")}), 404, "not_found")
    assert_error(post_json(svc, route, {"path": str(svc.root / "sub")}), 400, "bad_path")
    assert_error(post_json(svc, route, {"path": ""}), 400)


def test_folder_parameter_is_confined_too(svc):
    r = post_json(svc, "/v1/similar", {"path": str(svc.root / ukbench(0)), "folder": str(svc.outside),
                                       "model": "dhash"})
    assert_error(r, 403, "path_refused")
    assert_error(post_json(svc, "/v1/index", {"folder": "/"}), 403, "path_refused")
    assert_error(post_json(svc, "/v1/dupes", {"folder": str(svc.root / "escape-dir")}), 403, "path_refused")
    r = httpx.get(svc.url + "/v1/thumb", params={"path": str(svc.root / "escape.jpg")}, headers=svc.headers)
    assert_error(r, 403, "path_refused")


def test_path_that_is_not_a_picture(svc):
    assert_error(post_json(svc, "/v1/embed", {"path": str(svc.root / "notes.txt")}), 422, "not_decodable")


# -- upload refusals -------------------------------------------------------------------------
def test_oversized_upload(svc):
    big = os.urandom(1024 * 1024 + 10_000)
    assert_error(upload(svc, "/v1/similar", big), 413, "too_large")


def test_oversized_upload_without_content_length(svc):
    def chunks():
        boundary = b"--xyz\r\n"
        yield boundary + b'Content-Disposition: form-data; name="file"; filename="a.jpg"\r\n\r\n'
        for _ in range(40):
            yield os.urandom(64 * 1024)
        yield b"\r\n--xyz--\r\n"

    r = httpx.post(svc.url + "/v1/embed", content=chunks(),
                   headers={**svc.headers, "Content-Type": "multipart/form-data; boundary=xyz"}, timeout=60)
    assert_error(r, 413, "too_large")


def test_non_image_upload(svc):
    assert_error(upload(svc, "/v1/similar", b"hello, I am not a picture" * 10), 415, "not_an_image")
    assert_error(upload(svc, "/v1/embed", b""), 400, "empty_upload")


def test_decompression_bomb_upload(svc):
    buf = io.BytesIO()
    Image.new("1", (6000, 6000)).save(buf, "PNG")  # 36 Mpx, a few kB
    assert len(buf.getvalue()) < 200_000
    msg = assert_error(upload(svc, "/v1/embed", buf.getvalue(), name="bomb.png"), 413, "decompression_bomb")
    assert "Mpx" in msg


def test_truncated_upload_is_a_clear_error(svc):
    data = (svc.root / ukbench(0)).read_bytes()[:300]
    r = upload(svc, "/v1/embed", data, fields={"model": "dhash"})
    assert r.status_code in (415, 422), r.text
    assert_error(r, r.status_code)


def test_bad_requests(svc):
    assert_error(httpx.post(svc.url + "/v1/similar", content=b"{", headers={**svc.headers,
                 "Content-Type": "application/json"}), 400, "bad_json")
    assert_error(httpx.post(svc.url + "/v1/similar", content=b"x", headers={**svc.headers,
                 "Content-Type": "text/plain"}), 415)
    assert_error(post_json(svc, "/v1/similar", {"path": str(svc.root / ukbench(0)), "k": 0}), 400, "bad_parameter")
    assert_error(post_json(svc, "/v1/similar", {"path": str(svc.root / ukbench(0)), "model": "nope"}), 503)
    assert_error(post_json(svc, "/v1/similar", {"nopath": 1}), 400, "missing_path")
    assert_error(httpx.get(svc.url + "/v1/nothing-here", headers=svc.headers), 404, "not_found")
    assert_error(httpx.get(svc.url + "/v1/jobs/" + "0" * 32, headers=svc.headers), 404, "no_such_job")


# -- mutating routes -------------------------------------------------------------------------
def test_mutating_routes_are_off_by_default(svc):
    assert_error(post_json(svc, "/v1/plans/apply", {"plan": {}}), 403, "changes_disabled")
    assert_error(post_json(svc, "/v1/undo", {}), 403, "changes_disabled")
    assert_error(post_json(svc, "/v1/faces/train", {"dataset": str(svc.root), "model": "m"}), 403,
                 "changes_disabled")
    c = svc.client()
    with pytest.raises(ServiceError) as err:
        c.undo()
    assert err.value.status == 403 and "--allow-changes" in err.value.message


# -- thumbnails, metrics ---------------------------------------------------------------------
def test_thumbnails_are_small_and_cached(svc):
    c = svc.client()
    data = c.thumbnail(str(svc.root / ukbench(3)), size=96)
    im = Image.open(io.BytesIO(data))
    assert im.format == "JPEG" and max(im.size) == 96
    before = _metric(c.metrics(), 'lookalike_cache_hits_total{cache="thumbnail"}')
    assert c.thumbnail(str(svc.root / ukbench(3)), size=96) == data
    assert _metric(c.metrics(), 'lookalike_cache_hits_total{cache="thumbnail"}') == before + 1
    assert list((svc.home / "thumbs").rglob("*.jpg"))


def test_metrics_are_prometheus_text(svc):
    c = svc.client()
    c.health()
    text = c.metrics()
    assert "# TYPE lookalike_requests_total counter" in text
    assert "# TYPE lookalike_request_seconds histogram" in text
    assert 'lookalike_request_seconds_bucket{route="/healthz",le="+Inf"}' in text
    assert _metric(text, 'lookalike_requests_total{method="GET",route="/healthz",status="200"}') >= 1
    assert "lookalike_jobs_total" in text and "lookalike_cache_hits_total" in text


@needs_effnet
def test_metrics_record_model_load(svc):
    svc.client().embed(upload=svc.root / ukbench(6))
    text = svc.client().metrics()
    assert _metric(text, 'lookalike_models_loaded{model="effnet"}') == 1
    assert _metric(text, 'lookalike_model_load_seconds{model="effnet"}') > 0
    assert "lookalike_embed_batch_size_bucket" in text


def _metric(text: str, key: str) -> float:
    for line in text.splitlines():
        if line.startswith(key + " "):
            return float(line.rsplit(" ", 1)[1])
    return 0.0


# -- jobs ------------------------------------------------------------------------------------
def test_job_progress_and_result(svc):
    c = svc.client()
    job = c.index(str(svc.root / "sub"), model="dhash")
    assert job["state"] in ("queued", "running") and job["kind"] == "index"
    final = c.wait(job["id"], timeout=60)
    assert final["state"] == "done"
    assert final["progress"]["done"] == final["progress"]["total"] == 2
    assert final["result"]["failed"] == []
    # cancelling a finished job changes nothing
    assert c.cancel(job["id"])["state"] == "done"


@needs_effnet
def test_job_cancel(svc, tmp_path):
    many = svc.root / "many"
    names = [ukbench(i) for i in range(100, 300)]
    copy_photos(svc.photos, many, names)
    c = svc.client()
    job = c.index(str(many))
    seen = []
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        st = c.job(job["id"])
        seen.append(st["progress"]["done"])
        if st["progress"]["done"] > 0:
            break
        time.sleep(0.05)
    assert c.cancel(job["id"])["state"] in ("running", "cancelled")
    final = c.wait(job["id"], timeout=60)
    assert final["state"] == "cancelled" and final["error"] == "cancelled on request"
    assert 0 < final["progress"]["done"] < final["progress"]["total"] == len(names)
    assert final["result"] is None


@needs_effnet
@pytest.mark.parametrize("kind", ["sort", "cluster"])
def test_sort_and_cluster_jobs_match_the_cli(svc, kind):
    c = svc.client()
    folder = str(svc.root / "sub")
    job = c.sort(folder) if kind == "sort" else c.cluster(folder, sim=0.5)
    assert job["kind"] == kind
    final = c.wait(job["id"], timeout=120)
    assert final["state"] == "done", final
    cli = svc.cli(kind, folder, "--json") if kind == "sort" else svc.cli(kind, folder, "--sim", "0.5", "--json")
    assert final["result"] == json.loads(cli.stdout)
