"""Errors the service turns into JSON responses: {"error": {"status", "code", "message"}}.

Nothing else reaches a client: an unexpected exception becomes a 500 with a plain message and the
traceback goes to the server log only."""

from __future__ import annotations

import json
import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse as _StarletteJSON
from starlette.exceptions import HTTPException as StarletteHTTPException

from lookalike.errors import CatalogError, DecodeError, LookalikeError, ModelError, UsageError

log = logging.getLogger("lookalike.service")


class JSONResponse(_StarletteJSON):
    r"""JSON that never fails on a file name that is not UTF-8: such names are Python strings with
    surrogate escapes (``caf\udce9.jpg``), written as ``"\udce9"`` escapes, which ``json.loads`` (and
    the review page, and the client) read back to the very same name. Other text stays UTF-8."""

    def render(self, content: Any) -> bytes:
        try:
            return json.dumps(content, ensure_ascii=False, allow_nan=False, indent=None,
                              separators=(",", ":")).encode("utf-8")
        except UnicodeEncodeError:
            return json.dumps(content, ensure_ascii=True, allow_nan=False, indent=None,
                              separators=(",", ":")).encode("ascii")


class ApiError(Exception):
    """An error with an HTTP status, a short machine code and a message for people."""

    def __init__(self, status: int, code: str, message: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status, self.code, self.message, self.headers = status, code, message, headers


def error_body(status: int, code: str, message: str) -> dict:
    return {"error": {"status": status, "code": code, "message": message}}


def error_response(status: int, code: str, message: str, headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse(error_body(status, code, message), status_code=status, headers=headers)


def from_library(exc: LookalikeError) -> ApiError:
    """Map lookalike's own errors to HTTP."""
    if isinstance(exc, DecodeError):
        return ApiError(422, "not_decodable", str(exc))
    if isinstance(exc, UsageError):
        return ApiError(400, "bad_request", str(exc))
    if isinstance(exc, ModelError):
        return ApiError(503, "model_unavailable", str(exc))
    if isinstance(exc, CatalogError):
        return ApiError(503, "catalog_unavailable", str(exc))
    return ApiError(400, "error", str(exc))


def install(app: FastAPI) -> None:
    """Register the handlers that keep every error JSON and traceback-free."""

    @app.exception_handler(ApiError)
    async def _api(_: Request, exc: ApiError) -> JSONResponse:
        return error_response(exc.status, exc.code, exc.message, exc.headers)

    @app.exception_handler(LookalikeError)
    async def _lib(_: Request, exc: LookalikeError) -> JSONResponse:
        e = from_library(exc)
        return error_response(e.status, e.code, e.message)

    @app.exception_handler(StarletteHTTPException)
    async def _http(_: Request, exc: StarletteHTTPException) -> JSONResponse:
        code = {404: "not_found", 405: "method_not_allowed"}.get(exc.status_code, "http_error")
        return error_response(exc.status_code, code, str(exc.detail), getattr(exc, "headers", None))

    @app.exception_handler(RequestValidationError)
    async def _invalid(_: Request, exc: RequestValidationError) -> JSONResponse:
        parts = []
        for err in exc.errors()[:5]:
            where = ".".join(str(x) for x in err.get("loc", ()) if x != "body")
            parts.append(f"{where}: {err.get('msg')}" if where else str(err.get("msg")))
        return error_response(422, "invalid_request", "; ".join(parts) or "invalid request")

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
        log.exception("unexpected error on %s %s", request.method, request.url.path)
        return error_response(500, "internal_error", f"internal error ({type(exc).__name__}); see the server log")
