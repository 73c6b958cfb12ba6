"""The FastAPI application: versioned JSON routes over the same library functions as the CLI.

Image inputs are a multipart upload in the field ``file`` (other parameters as form fields) or a
JSON body with ``"path"`` (other parameters as JSON fields). Long operations are jobs
(``/v1/jobs/{id}``). Everything heavy runs in threads; embeddings go through the model holder's
batcher."""

from __future__ import annotations

import hashlib
import importlib.resources
import io
import logging
import os
import time
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import anyio
from fastapi import FastAPI, Request
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import FileResponse, HTMLResponse, PlainTextResponse, Response
from PIL import Image
from starlette.datastructures import UploadFile

from lookalike import __version__, options
from lookalike.api import Collection
from lookalike.catalog import Catalog
from lookalike.config import home_dir
from lookalike.errors import LookalikeError
from lookalike.features import DEFAULT_MODEL, registry
from lookalike.media import decode
from lookalike.service import errors as service_errors
from lookalike.service.config import ServiceConfig
from lookalike.service.errors import ApiError, JSONResponse
from lookalike.service.jobs import JobOutput, JobStore
from lookalike.service.metrics import Metrics
from lookalike.service.model_pool import ModelPool
from lookalike.service.matrix_cache import MatrixCache, rank
from lookalike.service.security import (
    GuardMiddleware,
    SiteGuard,
    check_upload,
    confine,
    confine_result,
    is_json_type,
    is_multipart_type,
    roots_filter,
    site_rules,
)

log = logging.getLogger("lookalike.service")
STATIC = Path(__file__).parent / "static"
# Swagger UI's dist files (JS, CSS, favicon), shipped by the fastapi-offline package, served from
# /docs-assets/ so the /docs page works offline (FastAPI's default loads them from a CDN).
DOCS_ASSETS = Path(str(importlib.resources.files("fastapi_offline") / "static"))
DOCS_FILES = {"js": "swagger-ui-bundle.js", "css": "swagger-ui.css", "favicon": "favicon.png"}

IMAGE_BODY = {
    "requestBody": {
        "required": True,
        "content": {
            "multipart/form-data": {
                "schema": {"type": "object", "required": ["file"],
                           "properties": {"file": {"type": "string", "format": "binary"}}},
            },
            "application/json": {
                "schema": {"type": "object", "required": ["path"],
                           "properties": {"path": {"type": "string", "description": "file under a --root"}}},
            },
        },
    }
}


def json_body(schema: dict) -> dict:
    return {"requestBody": {"required": True, "content": {"application/json": {"schema": schema}}}}


@dataclass
class ImageInput:
    """One request's picture: uploaded bytes or a confined path, plus the other parameters."""

    data: bytes | None = None
    path: str | None = None
    fields: dict[str, Any] = field(default_factory=dict)

    @property
    def name(self) -> str:
        return self.path or "<upload>"

    def source(self) -> str | bytes:
        return self.path if self.path is not None else self.data  # type: ignore[return-value]


class State:
    """Per-worker singletons shared by the routes."""

    def __init__(self, cfg: ServiceConfig) -> None:
        self.cfg = cfg
        self.started = time.time()
        self.metrics = Metrics()
        self.catalog = Catalog(cfg.catalog)
        self.models = ModelPool(self.metrics, cfg.idle_unload_s, cfg.batching, cfg.batch_window_ms / 1000.0,
                                  cfg.batch_max)
        self.jobs = JobStore(Path(cfg.state_dir) / f"jobs-{cfg.port}", cfg.job_threads, self.metrics)
        self.matrices = MatrixCache(self.catalog, cfg.roots, self.metrics)
        self.thumbs = home_dir() / "thumbs"


class MetricsMiddleware:
    """Pure ASGI (no task groups, so errors raised while reading the body keep their type): counts
    requests by route template, method and status, and times them."""

    def __init__(self, app, metrics: Metrics) -> None:
        self.app, self.metrics = app, metrics

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        t0 = time.perf_counter()
        status = [500]

        async def tracking_send(msg) -> None:
            if msg["type"] == "http.response.start":
                status[0] = msg["status"]
            await send(msg)

        try:
            await self.app(scope, receive, tracking_send)
        finally:
            label = getattr(scope.get("route"), "path", "unmatched")
            self.metrics.inc("lookalike_requests_total", route=label, method=scope["method"], status=str(status[0]))
            self.metrics.observe("lookalike_request_seconds", time.perf_counter() - t0, route=label)


# -- request parsing -------------------------------------------------------------------------
async def read_json(request: Request, *, optional: bool = False) -> dict:
    """The request's JSON object. Only ``Content-Type: application/json`` (a browser cannot send it
    to another origin without asking first). ``optional``: an empty body reads as ``{}``."""
    if optional and not await request.body():
        return {}
    if not is_json_type(request.headers.get("content-type")):
        raise ApiError(415, "unsupported_media_type", "send a JSON body (Content-Type: application/json)")
    try:
        body = await request.json()
    except ValueError as exc:
        raise ApiError(400, "bad_json", "the body is not valid JSON") from exc
    if not isinstance(body, dict):
        raise ApiError(400, "bad_json", "the JSON body must be an object")
    return body


async def read_image(request: Request, st: State) -> ImageInput:
    """Parse an image request: multipart ``file`` upload or JSON ``path``."""
    ctype = request.headers.get("content-type", "")
    if is_multipart_type(ctype):
        form = await request.form(max_files=1, max_fields=50)
        upload = form.get("file")
        if not isinstance(upload, UploadFile):
            raise ApiError(400, "missing_file", "multipart requests need the picture in the field 'file'")
        data = await upload.read(st.cfg.max_upload_bytes + 1)
        await upload.close()
        check_upload(data, st.cfg.max_upload_bytes, st.cfg.max_pixels)
        fields = {k: v for k, v in form.items() if k != "file" and isinstance(v, str)}
        return ImageInput(data=data, fields=fields)
    if is_json_type(ctype):
        body = await read_json(request)
        if "path" not in body:
            raise ApiError(400, "missing_path", "JSON requests need a 'path' (or upload the picture as 'file')")
        path = confine(body["path"], st.cfg.roots, want="file")
        return ImageInput(path=path, fields={k: v for k, v in body.items() if k != "path"})
    raise ApiError(415, "unsupported_media_type", "send multipart/form-data with 'file', or JSON with 'path'")


def raw_query_param(request: Request, name: str, default: str | None) -> str | None:
    """A query parameter decoded as the file system decodes names (surrogate escapes for bytes that
    are not UTF-8), where Starlette would replace such bytes with U+FFFD."""
    from urllib.parse import parse_qsl

    qs = request.scope.get("query_string", b"").decode("latin-1")
    for k, v in parse_qsl(qs, keep_blank_values=True, encoding="utf-8", errors="surrogateescape"):
        if k == name:
            return v
    return default


def int_field(fields: dict, name: str, default: int, lo: int = 1, hi: int = 10_000) -> int:
    raw = fields.get(name, default)
    try:
        v = int(raw)
    except (TypeError, ValueError) as exc:
        raise ApiError(400, "bad_parameter", f"{name} must be an integer") from exc
    if not lo <= v <= hi:
        raise ApiError(400, "bad_parameter", f"{name} must be between {lo} and {hi}")
    return v


def float_field(fields: dict, name: str, default: float | None) -> float | None:
    raw = fields.get(name, default)
    if raw is None or raw == "":
        return default
    try:
        return float(raw)
    except (TypeError, ValueError) as exc:
        raise ApiError(400, "bad_parameter", f"{name} must be a number") from exc


def model_field(fields: dict) -> str:
    name = str(fields.get("model") or DEFAULT_MODEL)
    registry.get_spec(name)  # raises ModelError for unknown names
    return name


def folders_field(fields: dict, st: State) -> list[str]:
    raw = fields.get("folders", fields.get("folder"))
    if raw is None or raw == "" or raw == []:
        raise ApiError(400, "missing_folder", "give 'folder' (or 'folders'): a folder under a --root")
    items = raw if isinstance(raw, list) else [raw]
    return [confine(str(f), st.cfg.roots, want="dir") for f in items]


def feature_import(module: str, what: str):
    """Import a feature package, or answer 501 while it is not part of this build."""
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError as exc:
        raise ApiError(501, "not_implemented", f"{what} is not available in this build ({module} is missing)") from exc


def require_changes(st: State) -> None:
    if not st.cfg.allow_changes:
        raise ApiError(403, "changes_disabled",
                       "this route changes files or models; start the service with --allow-changes to enable it")


async def in_thread(fn, *args):
    try:
        return await anyio.to_thread.run_sync(fn, *args)
    except LookalikeError as exc:
        raise service_errors.from_library(exc) from exc


# -- the app ---------------------------------------------------------------------------------
def create_app(cfg: ServiceConfig | None = None) -> FastAPI:
    """Build the service's ASGI app (one per worker process)."""
    cfg = cfg or ServiceConfig.from_env()
    st = State(cfg)

    @asynccontextmanager
    async def lifespan(_: FastAPI):
        yield
        st.jobs.shutdown()
        st.models.close()

    app = FastAPI(title="lookalike", version=__version__, lifespan=lifespan, default_response_class=JSONResponse,
                  docs_url=None, redoc_url=None,
                  description="Local photo similarity service. Every route but /healthz and the static pages "
                              "(the review page's shell, /docs) needs the bearer token "
                              "when the service was started with --token. Requests must name this service in "
                              "their Host header (or an --allowed-host); requests that start work or change "
                              "anything must come from no browser or from this service's own page (Origin), "
                              "with a body of Content-Type application/json (or a multipart upload).")
    app.state.lookalike = st
    service_errors.install(app)

    app.add_middleware(MetricsMiddleware, metrics=st.metrics)

    # ---- health, metrics, page ----
    @app.get("/healthz", tags=["service"])
    async def healthz() -> dict:
        """Liveness (no token needed)."""
        return {"status": "ok", "service": "lookalike", "version": __version__, "pid": os.getpid(),
                "uptime_s": round(time.time() - st.started, 1)}

    @app.get("/metrics", tags=["service"], response_class=PlainTextResponse)
    async def metrics() -> PlainTextResponse:
        """Prometheus text metrics of the worker that answers."""
        return PlainTextResponse(st.metrics.render(), media_type="text/plain; version=0.0.4")

    @app.get("/", include_in_schema=False)
    async def index_page() -> HTMLResponse:
        return HTMLResponse((STATIC / "index.html").read_text(encoding="utf-8"))

    @app.get("/static/{name}", include_in_schema=False)
    async def static(name: str) -> FileResponse:
        target = STATIC / name
        if "/" in name or name.startswith(".") or not target.is_file():
            raise ApiError(404, "not_found", "no such file")
        return FileResponse(target)

    @app.get("/docs", include_in_schema=False)
    async def docs_page() -> HTMLResponse:
        """The OpenAPI docs (Swagger UI), every asset served by this service: works offline."""
        return get_swagger_ui_html(openapi_url=app.openapi_url or "/openapi.json", title="lookalike API",
                                   swagger_js_url=f"/docs-assets/{DOCS_FILES['js']}",
                                   swagger_css_url=f"/docs-assets/{DOCS_FILES['css']}",
                                   swagger_favicon_url=f"/docs-assets/{DOCS_FILES['favicon']}",
                                   swagger_ui_parameters={"validatorUrl": None})

    @app.get("/docs-assets/{name}", include_in_schema=False)
    async def docs_asset(name: str) -> FileResponse:
        if name not in DOCS_FILES.values():
            raise ApiError(404, "not_found", "no such file")
        return FileResponse(DOCS_ASSETS / name)

    @app.get("/v1/info", tags=["service"])
    async def info() -> dict:
        """What this service serves: roots, whether changes are allowed, loaded models, klik ports."""
        return {"version": __version__, "roots": cfg.roots, "allow_changes": cfg.allow_changes,
                "models_loaded": st.models.loaded(), "klik": cfg.klik_ports, "klik_servers": cfg.klik_servers,
                "workers": cfg.workers, "batching": cfg.batching}

    @app.get("/v1/browse", tags=["service"])
    async def browse(request: Request, path: str | None = None) -> dict:
        """Sub-folders of a folder under a root (the roots themselves without ``path``)."""
        path = raw_query_param(request, "path", path)
        if not path:
            return {"path": None, "folders": cfg.roots}
        real = confine(path, cfg.roots, want="dir")

        def listing() -> list[str]:
            with os.scandir(real) as it:
                return sorted(e.path for e in it if e.is_dir(follow_symlinks=False) and not e.name.startswith("."))

        return {"path": real, "folders": await anyio.to_thread.run_sync(listing)}

    @app.get("/v1/models", tags=["service"])
    async def models() -> list[dict]:
        """Known feature models."""
        return [{"name": e.spec.id, "kind": e.spec.kind, "dim": e.spec.dim, "installed": e.installed}
                for e in registry.list_models()]

    # ---- embeddings and similar ----
    def _embed_input(inp: ImageInput, model: str):
        ext = st.models.get(model)
        img = decode(inp.source(), min_side=ext.decode_min_side).image
        return st.models.embed_images(model, [img])[0]

    @app.post("/v1/embed", tags=["images"], openapi_extra=IMAGE_BODY)
    async def embed(request: Request) -> JSONResponse:
        """The picture's feature vector: ``{"model", "vector"}`` (hash models: 0/1 bits)."""
        inp = await read_image(request, st)
        model = model_field(inp.fields)
        vec = await in_thread(_embed_input, inp, model)
        ext = st.models.get(model)
        if ext.kind == "hash":
            import numpy as np

            values = np.unpackbits(np.asarray(vec, dtype=">u8").view(np.uint8)).tolist()
        else:
            values = [float(x) for x in vec]
        return JSONResponse({"model": model, "vector": values})

    def _similar(inp: ImageInput, model: str, k: int, folder: str | None) -> dict:
        if inp.path is not None:
            qvec = Collection(inp.path, catalog=st.catalog).feature_of(inp.path, model)
            st.metrics.inc("lookalike_cache_hits_total", cache="catalog_feature")
        else:
            qvec = _embed_input(inp, model)
        entry = st.matrices.folder_scope(folder, model) if folder else st.matrices.catalog_scope(model)
        return rank(entry, qvec, k, model, inp.name, exclude=inp.path).to_json()

    @app.post("/v1/similar", tags=["images"], openapi_extra=IMAGE_BODY)
    async def similar(request: Request) -> JSONResponse:
        """The k most similar pictures (fields: ``k`` = 5, ``model``, ``folder``; no folder: the catalog)."""
        inp = await read_image(request, st)
        model = model_field(inp.fields)
        k = int_field(inp.fields, "k", 5)
        options.check_k(k)
        folder = inp.fields.get("folder")
        folder = confine(str(folder), cfg.roots, want="dir") if folder else None
        return JSONResponse(await in_thread(_similar, inp, model, k, folder))

    # ---- thumbnails ----
    def _thumb(path: str, size: int) -> Path:
        stt = os.stat(path)
        key = hashlib.sha1(os.fsencode(path) + f"|{stt.st_mtime_ns}|{stt.st_size}|{size}".encode()).hexdigest()
        out = st.thumbs / key[:2] / f"{key}.jpg"
        if out.is_file():
            st.metrics.inc("lookalike_cache_hits_total", cache="thumbnail")
            return out
        st.metrics.inc("lookalike_cache_misses_total", cache="thumbnail")
        img = decode(path, min_side=size).image
        img.thumbnail((size, size), Image.Resampling.LANCZOS)
        out.parent.mkdir(parents=True, exist_ok=True)
        buf = io.BytesIO()
        img.save(buf, "JPEG", quality=82)
        tmp = out.with_suffix(f".{os.getpid()}.tmp")
        tmp.write_bytes(buf.getvalue())
        os.replace(tmp, out)
        return out

    @app.get("/v1/thumb", tags=["images"], response_class=Response)
    async def thumb(request: Request, path: str, size: int = 256) -> Response:
        """A cached JPEG thumbnail (longest side ``size``, 32-1024) of a picture under a root. ``path``
        is percent-encoded bytes: UTF-8, or the raw bytes of a name that is not UTF-8."""
        path = raw_query_param(request, "path", path)
        real = confine(path, cfg.roots, want="file")
        size = int_field({"size": size}, "size", 256, 32, 1024)
        out = await in_thread(_thumb, real, size)
        return Response(out.read_bytes(), media_type="image/jpeg", headers={"Cache-Control": "private, max-age=3600"})

    # ---- jobs ----
    def _job_response(state: dict, status: int = 200) -> JSONResponse:
        return JSONResponse(state, status_code=status)

    @app.get("/v1/jobs/{job_id}", tags=["jobs"])
    async def job(job_id: str) -> JSONResponse:
        """State (queued|running|done|failed|cancelled), progress {done,total}, result or error."""
        state = st.jobs.get(job_id)
        if state is None:
            raise ApiError(404, "no_such_job", f"no job {job_id}")
        return _job_response(state)

    @app.delete("/v1/jobs/{job_id}", tags=["jobs"])
    async def cancel(job_id: str) -> JSONResponse:
        """Cancel a job (it stops at its next progress report)."""
        state = st.jobs.cancel(job_id)
        if state is None:
            raise ApiError(404, "no_such_job", f"no job {job_id}")
        return _job_response(state)

    def start_job(kind: str, fn, params: dict) -> JSONResponse:
        """Run ``fn(progress)`` as a job. Its result names only files under the roots (symlinks
        resolved): whatever the library walked, an outside file never reaches the client."""
        inside = roots_filter(cfg.roots)

        def confined(progress):
            out = fn(progress)
            if isinstance(out, JobOutput):
                extra = dict(out.extra)
                if isinstance(extra.get("hashes"), dict):
                    extra["hashes"] = {p: h for p, h in extra["hashes"].items() if inside(p)}
                return JobOutput(confine_result(kind, out.result, inside), extra)
            return confine_result(kind, out, inside)

        state = st.jobs.submit(kind, confined, params)
        return JSONResponse(state, status_code=202, headers={"Location": f"/v1/jobs/{state['id']}"})

    @app.post("/v1/index", tags=["jobs"], status_code=202, openapi_extra=json_body(
        {"type": "object", "properties": {"folder": {"type": "string"}, "folders": {"type": "array"},
                                          "model": {"type": "string"}}}))
    async def index_job(request: Request) -> JSONResponse:
        """Index folders into the catalog (job): makes catalog-wide ``similar`` see them. Result as
        ``lookalike index --json``."""
        body = await read_json(request)
        paths = folders_field(body, st)
        model = model_field(body)

        def run(progress):
            from lookalike.pipeline import index

            st.models.touch(model)
            return index(st.catalog, paths, [model], progress=progress).to_json()

        return start_job("index", run, {"folders": paths, "model": model})

    from lookalike.service import routes_features

    routes_features.register(app, st, start_job)

    return app


def app_from_env() -> FastAPI:
    """Factory for uvicorn worker processes: settings come from $LOOKALIKE_SERVICE_CONFIG."""
    cfg = ServiceConfig.from_env()
    app = create_app(cfg)
    from lookalike.service.klik import wrap_with_klik

    guarded = SiteGuard(GuardMiddleware(app, cfg.token, cfg.max_upload_bytes + 1024 * 1024), site_rules(cfg),
                        allow_changes=cfg.allow_changes)
    return wrap_with_klik(guarded, app, cfg)


__all__ = ["ImageInput", "State", "app_from_env", "create_app"]
