"""Service routes: liveness, metrics, what this service serves, folder browsing, the model list."""

from __future__ import annotations

import os
import time

import anyio
from fastapi import Request
from fastapi.responses import PlainTextResponse

from lookalike import __version__
from lookalike.features import registry
from lookalike.service.requests import raw_query_param
from lookalike.service.routes import Routes
from lookalike.service.security import confine
from lookalike.service.state import state_of

routes = Routes(tags=["service"])


@routes.get("/healthz")
async def healthz(request: Request) -> dict:
    """Liveness (no token needed)."""
    return {"status": "ok", "service": "lookalike", "version": __version__, "pid": os.getpid(),
            "uptime_s": round(time.time() - state_of(request).started, 1)}


@routes.get("/metrics", response_class=PlainTextResponse)
async def metrics(request: Request) -> PlainTextResponse:
    """Prometheus text metrics of the worker that answers."""
    return PlainTextResponse(state_of(request).metrics.render(), media_type="text/plain; version=0.0.4")


@routes.get("/v1/info")
async def info(request: Request) -> dict:
    """What this service serves: roots, whether changes are allowed, loaded models, klik ports."""
    st = state_of(request)
    cfg = st.cfg
    return {"version": __version__, "roots": cfg.roots, "allow_changes": cfg.allow_changes,
            "models_loaded": st.models.loaded(), "klik": cfg.klik_ports, "klik_servers": cfg.klik_servers,
            "workers": cfg.workers, "batching": cfg.batching}


@routes.get("/v1/browse")
async def browse(request: Request, path: str | None = None) -> dict:
    """Sub-folders of a folder under a root (the roots themselves without ``path``)."""
    roots = state_of(request).cfg.roots
    path = raw_query_param(request, "path", path)
    if not path:
        return {"path": None, "folders": roots}
    real = confine(path, roots, want="dir")

    def listing() -> list[str]:
        with os.scandir(real) as it:
            return sorted(e.path for e in it if e.is_dir(follow_symlinks=False) and not e.name.startswith("."))

    return {"path": real, "folders": await anyio.to_thread.run_sync(listing)}


@routes.get("/v1/models")
async def models() -> list[dict]:
    """Known feature models, as ``lookalike models list --json``."""
    return [e.to_json() for e in registry.list_models()]
