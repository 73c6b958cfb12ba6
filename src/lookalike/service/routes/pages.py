"""Static pages: the review page and its files, and the OpenAPI docs (Swagger UI) with every asset
served by this service, so /docs works offline."""

from __future__ import annotations

import importlib.resources
from pathlib import Path

from fastapi import Request
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import FileResponse, HTMLResponse

from lookalike.service.errors import ApiError
from lookalike.service.routes import Routes

routes = Routes(include_in_schema=False)

STATIC = Path(__file__).resolve().parents[1] / "static"
# Swagger UI's dist files (JS, CSS, favicon), shipped by the fastapi-offline package, served from
# /docs-assets/ so the /docs page works offline (FastAPI's default loads them from a CDN).
DOCS_ASSETS = Path(str(importlib.resources.files("fastapi_offline") / "static"))
DOCS_FILES = {"js": "swagger-ui-bundle.js", "css": "swagger-ui.css", "favicon": "favicon.png"}


@routes.get("/")
async def index_page() -> HTMLResponse:
    return HTMLResponse((STATIC / "index.html").read_text(encoding="utf-8"))


@routes.get("/static/{name}")
async def static(name: str) -> FileResponse:
    target = STATIC / name
    if "/" in name or name.startswith(".") or not target.is_file():
        raise ApiError(404, "not_found", "no such file")
    return FileResponse(target)


@routes.get("/docs")
async def docs_page(request: Request) -> HTMLResponse:
    """The OpenAPI docs (Swagger UI), every asset served by this service: works offline."""
    return get_swagger_ui_html(openapi_url=request.app.openapi_url or "/openapi.json", title="lookalike API",
                               swagger_js_url=f"/docs-assets/{DOCS_FILES['js']}",
                               swagger_css_url=f"/docs-assets/{DOCS_FILES['css']}",
                               swagger_favicon_url=f"/docs-assets/{DOCS_FILES['favicon']}",
                               swagger_ui_parameters={"validatorUrl": None})


@routes.get("/docs-assets/{name}")
async def docs_asset(name: str) -> FileResponse:
    if name not in DOCS_FILES.values():
        raise ApiError(404, "not_found", "no such file")
    return FileResponse(DOCS_ASSETS / name)
