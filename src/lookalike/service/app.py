"""The FastAPI application: versioned JSON routes over the same library functions as the CLI.

This module only assembles: the state (:mod:`.state`), the routes (:mod:`.routes`, one module per
group; requests are read by :mod:`.requests`), the error handlers (:mod:`.errors`), the metrics
middleware, and for uvicorn's workers the guards (:mod:`.security`) and the klik ports (:mod:`.klik`).

Image inputs are a multipart upload in the field ``file`` (other parameters as form fields) or a
JSON body with ``"path"`` (other parameters as JSON fields). Long operations are jobs
(``/v1/jobs/{id}``). Everything heavy runs in threads; embeddings go through the model pool's
batcher."""

from __future__ import annotations

import time
from contextlib import asynccontextmanager

from fastapi import FastAPI
from starlette.types import ASGIApp, Receive, Scope, Send

from lookalike import __version__
from lookalike.service import errors as service_errors
from lookalike.service.config import ServiceConfig
from lookalike.service.errors import JSONResponse
from lookalike.service.klik import wrap_with_klik
from lookalike.service.metrics import Metrics
from lookalike.service.routes import (
    dupes,
    faces,
    images,
    index,
    jobs,
    journal,
    organise,
    pages,
    people,
    photos,
    service,
)
from lookalike.service.security import GuardMiddleware, SiteGuard, site_rules
from lookalike.service.state import State

#: Every route group, in the order the app lists them.
ROUTE_GROUPS = (service, pages, images, jobs, index, dupes, organise, journal, faces, photos, people)
DESCRIPTION = ("Local photo similarity service. Every route but /healthz and the static pages "
               "(the review page's shell, /docs) needs the bearer token "
               "when the service was started with --token. Requests must name this service in "
               "their Host header (or an --allowed-host); requests that start work or change "
               "anything must come from no browser or from this service's own page (Origin), "
               "with a body of Content-Type application/json (or a multipart upload).")


class MetricsMiddleware:
    """Pure ASGI (no task groups, so errors raised while reading the body keep their type): counts
    requests by route template, method and status, and times them."""

    def __init__(self, app: ASGIApp, metrics: Metrics) -> None:
        self.app, self.metrics = app, metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
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


def create_app(cfg: ServiceConfig | None = None) -> FastAPI:
    """Build the service's ASGI app (one per worker process)."""
    st = State(cfg or ServiceConfig.from_env())

    @asynccontextmanager
    async def lifespan(_: FastAPI):
        yield
        st.close()

    app = FastAPI(title="lookalike", version=__version__, lifespan=lifespan, default_response_class=JSONResponse,
                  docs_url=None, redoc_url=None, description=DESCRIPTION)
    app.state.lookalike = st
    service_errors.install(app)
    app.add_middleware(MetricsMiddleware, metrics=st.metrics)
    for group in ROUTE_GROUPS:
        group.routes.register(app)
    return app


def app_from_env() -> ASGIApp:
    """Factory for uvicorn worker processes: settings come from $LOOKALIKE_SERVICE_CONFIG."""
    cfg = ServiceConfig.from_env()
    app = create_app(cfg)
    guarded = SiteGuard(GuardMiddleware(app, cfg.token, cfg.max_upload_bytes + 1024 * 1024), site_rules(cfg),
                        allow_changes=cfg.allow_changes)
    return wrap_with_klik(guarded, app, cfg)


__all__ = ["app_from_env", "create_app"]
