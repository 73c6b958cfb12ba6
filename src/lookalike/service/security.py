"""Who may call, which files may be touched, and what an upload may be.

* Bearer token: when the service has a token, every request but the public ones (``/healthz``, the
  klik ``/health``, the review page's static shell, which carries no data) needs
  ``Authorization: Bearer <token>``; compared in constant time.
* Roots: a path is served only when its real location (symlinks resolved) lies under one of the
  ``--root`` folders. ``..`` components are refused outright; relative paths are taken inside the only
  root (ambiguous with several roots, so refused then).
* Uploads: the body is capped while it streams in (413 past the cap), must decode as a picture, and
  its pixel count is checked from the header before any pixel is decoded (decompression bombs).
"""

from __future__ import annotations

import hmac
import io
import os
from pathlib import Path

from PIL import Image, UnidentifiedImageError
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from lookalike.service.errors import ApiError, error_body

PUBLIC_PATHS = {"/healthz", "/", "/favicon.ico"}
PUBLIC_PREFIXES = ("/static/",)


def resolve_roots(roots: list[str]) -> list[str]:
    """Real, absolute forms of the configured roots; each must be an existing folder."""
    out = []
    for r in roots:
        real = os.path.realpath(os.path.abspath(os.path.expanduser(r)))
        if not os.path.isdir(real):
            raise ValueError(f"--root {r}: not a folder")
        out.append(real)
    return out


def _under(path: str, root: str) -> bool:
    return path == root or path.startswith(root.rstrip(os.sep) + os.sep)


def confine(raw: str, roots: list[str], *, want: str = "any") -> str:
    """The real path of ``raw`` if it lies under a root, else raise ApiError (403/404/400).

    ``want``: "file", "dir" or "any" (must exist in every case)."""
    if not isinstance(raw, str) or not raw.strip():
        raise ApiError(400, "bad_path", "a path is required")
    if "\x00" in raw:
        raise ApiError(400, "bad_path", "path contains a NUL byte")
    if not roots:
        raise ApiError(403, "no_roots", "path access is off: start the service with --root DIR (uploads still work)")
    if ".." in Path(raw).parts or ".." in raw.replace("\\", "/").split("/"):
        raise ApiError(403, "path_refused", "'..' is not allowed in paths")
    if os.path.isabs(raw):
        lexical = os.path.normpath(raw)
    elif len(roots) == 1:
        lexical = os.path.normpath(os.path.join(roots[0], raw))
    else:
        raise ApiError(400, "bad_path", "relative paths are ambiguous with several roots: give an absolute path")
    real = os.path.realpath(lexical)
    if not any(_under(real, r) for r in roots):
        if any(_under(lexical, r) for r in roots):
            raise ApiError(403, "path_refused", "path leads outside the served roots through a symbolic link")
        raise ApiError(403, "path_refused", "path is outside the served roots")
    if not os.path.exists(real):
        raise ApiError(404, "not_found", f"no such file or folder: {raw}")
    if want == "file" and not os.path.isfile(real):
        raise ApiError(400, "bad_path", f"not a file: {raw}")
    if want == "dir" and not os.path.isdir(real):
        raise ApiError(400, "bad_path", f"not a folder: {raw}")
    return real


def confine_target(raw: str, roots: list[str]) -> str:
    """Like :func:`confine` for a path that may not exist yet (a move's destination): its nearest
    existing ancestor, symlinks resolved, must lie under a root. Returns the absolute path."""
    if not isinstance(raw, str) or not raw.strip() or "\x00" in raw:
        raise ApiError(400, "bad_path", "a valid path is required")
    if not roots:
        raise ApiError(403, "no_roots", "path access is off: start the service with --root DIR")
    if ".." in Path(raw).parts:
        raise ApiError(403, "path_refused", "'..' is not allowed in paths")
    if not os.path.isabs(raw):
        raise ApiError(400, "bad_path", f"plans need absolute paths: {raw}")
    lexical = os.path.normpath(raw)
    probe = lexical
    while not os.path.lexists(probe) and os.path.dirname(probe) != probe:
        probe = os.path.dirname(probe)
    real = os.path.realpath(probe)
    if not any(_under(real, r) for r in roots):
        raise ApiError(403, "path_refused", f"path is outside the served roots: {raw}")
    return lexical


def check_upload(data: bytes, max_bytes: int, max_pixels: int) -> None:
    """Refuse an upload that is empty, too large, not a picture, or a decompression bomb."""
    if not data:
        raise ApiError(400, "empty_upload", "the uploaded file is empty")
    if len(data) > max_bytes:
        raise ApiError(413, "too_large", f"upload is over the {max_bytes} byte limit")
    try:
        with Image.open(io.BytesIO(data)) as im:
            w, h = im.size
    except (UnidentifiedImageError, Image.DecompressionBombError, OSError, ValueError, SyntaxError) as exc:
        if isinstance(exc, Image.DecompressionBombError):
            raise ApiError(413, "decompression_bomb", "picture has too many pixels to decode safely") from exc
        raise ApiError(415, "not_an_image", "the upload is not a picture lookalike can read") from exc
    if w * h > max_pixels:
        raise ApiError(
            413, "decompression_bomb",
            f"picture is {w}x{h} = {w * h / 1e6:.0f} Mpx, over the {max_pixels / 1e6:.0f} Mpx limit",
        )


def is_public(path: str) -> bool:
    return path in PUBLIC_PATHS or path.startswith(PUBLIC_PREFIXES)


def token_ok(header: str | None, token: str) -> bool:
    if not header or not header.startswith("Bearer "):
        return False
    return hmac.compare_digest(header[7:].strip().encode(), token.encode())


class GuardMiddleware:
    """Pure ASGI: checks the bearer token and caps request bodies as they stream in."""

    def __init__(self, app: ASGIApp, token: str | None, max_body: int, public=is_public) -> None:
        self.app, self.token, self.max_body, self.public = app, token, max_body, public

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        if self.token and not self.public(scope["path"]):
            headers = dict(scope.get("headers") or [])
            auth = headers.get(b"authorization")
            if auth is None:
                await _send_error(send, 401, "unauthorized", "missing Authorization: Bearer token")
                return
            if not token_ok(auth.decode("latin-1"), self.token):
                await _send_error(send, 401, "unauthorized", "wrong token")
                return
        length = dict(scope.get("headers") or []).get(b"content-length")
        if length is not None:
            try:
                too_big = int(length) > self.max_body
            except ValueError:
                too_big = False
            if too_big:
                await _send_error(send, 413, "too_large", f"request body is over the {self.max_body} byte limit")
                return
        received = 0
        sent_start = False

        async def capped_receive() -> Message:
            nonlocal received
            msg = await receive()
            if msg["type"] == "http.request":
                received += len(msg.get("body", b""))
                if received > self.max_body:
                    raise _BodyTooLarge(self.max_body)
            return msg

        async def tracking_send(msg: Message) -> None:
            nonlocal sent_start
            if msg["type"] == "http.response.start":
                sent_start = True
            await send(msg)

        try:
            await self.app(scope, capped_receive, tracking_send)
        except _BodyTooLarge:
            if not sent_start:
                await _send_error(send, 413, "too_large", f"request body is over the {self.max_body} byte limit")


class _BodyTooLarge(ApiError):
    """Raised inside the app while it reads the body, so the app's own handler answers 413."""

    def __init__(self, limit: int) -> None:
        super().__init__(413, "too_large", f"request body is over the {limit} byte limit")


async def _send_error(send: Send, status: int, code: str, message: str) -> None:
    import json

    body = json.dumps(error_body(status, code, message)).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    if status == 401:
        headers.append((b"www-authenticate", b"Bearer"))
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})
