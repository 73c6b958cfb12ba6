"""Who may call, which files may be touched, and what an upload may be.

* Bearer token: when the service has a token, every request but the public ones (``/healthz``, the
  klik ``/health``, the review page's static shell and the ``/docs`` page with its Swagger UI assets,
  which carry no data) needs
  ``Authorization: Bearer <token>``; compared in constant time.
* Roots: a path is served only when its real location (symlinks resolved) lies under one of the
  ``--root`` folders. ``..`` components are refused outright; relative paths are taken inside the only
  root (ambiguous with several roots, so refused then).
* Uploads: the body is capped while it streams in (413 past the cap), must decode as a picture, and
  its pixel count is checked from the header before any pixel is decoded (decompression bombs).
* Sites (:class:`SiteGuard`, in front of every route, the klik ports too): the Host header must name
  this service (its bound address or a loopback name, with its port or none, or an ``--allowed-host``),
  so a DNS-rebinding page cannot read anything; a request that changes state or starts work (any
  method but GET/HEAD/OPTIONS) must come from no browser (no Origin) or from this service's own origin
  (or an ``--allowed-origin``), and a body must be ``application/json`` or a multipart upload: the
  types a browser sends cross-origin without asking first (text/plain, forms) are refused; routes that
  change files or models (:data:`CHANGING_ROUTES`) need ``--allow-changes``.
* Results (:func:`inside_roots`): a job's or a search's result names only files whose real location
  lies under a root (a symlink in a root that points outside is left out).
"""

from __future__ import annotations

import hmac
import io
import ipaddress
import json
import os
import stat
from collections.abc import Callable, Iterable
from pathlib import Path
from urllib.parse import urlsplit

from PIL import Image, UnidentifiedImageError
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from lookalike.service.errors import ApiError, error_body

PUBLIC_PATHS = {"/healthz", "/", "/favicon.ico", "/docs"}
PUBLIC_PREFIXES = ("/static/", "/docs-assets/")


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


def inside_roots(path: str, roots: list[str]) -> bool:
    """True when ``path``'s real location (every symlink resolved) lies under one of ``roots`` (which
    are resolved already). With no roots, every path is inside (the service then reads no path a
    request names, and catalog-wide search covers the whole catalog)."""
    if not roots:
        return True
    try:
        real = os.path.realpath(path)
    except (OSError, ValueError):
        return False
    return any(_under(real, r) for r in roots)


def paths_inside(paths: Iterable[str], roots: list[str]) -> list[str]:
    """The paths of ``paths`` that :func:`inside_roots` keeps, for many paths at once (a catalog's
    worth): each folder is resolved once, each file costs one lstat (a symlink is resolved in full)."""
    if not roots:
        return list(paths)
    dirs: dict[str, str] = {}
    out = []
    for p in paths:
        head, tail = os.path.split(p)
        try:
            real_dir = dirs.get(head)
            if real_dir is None:
                real_dir = dirs[head] = os.path.realpath(head)
            is_link = stat.S_ISLNK(os.lstat(p).st_mode)
        except (OSError, ValueError):
            continue  # gone (or unreadable): nothing to name
        real = os.path.realpath(p) if is_link else os.path.join(real_dir, tail)
        if any(_under(real, r) for r in roots):
            out.append(p)
    return out


def roots_filter(roots: list[str]) -> Callable[[str], bool]:
    return lambda p: isinstance(p, str) and inside_roots(p, roots)


def confine_result(kind: str, result: object, inside: Callable[[str], bool]) -> object:
    """A job's JSON result without any file whose real location is outside the roots.

    Duplicate groups whose keeper lies outside are left out whole (their members would be acted on in
    favour of a file the service may not name); members outside are dropped, and groups left without
    members go. Sort orders, clusters and error lists lose the outside entries."""
    if not isinstance(result, dict):
        return result
    out = dict(result)
    for key in ("failed", "errors", "skipped"):
        if isinstance(out.get(key), list):
            out[key] = [e for e in out[key] if not isinstance(e, dict) or inside(str(e.get("path", "")))]
    if kind == "dupes" and isinstance(out.get("groups"), list):
        groups = []
        for g in out["groups"]:
            if not isinstance(g, dict) or not inside(str(g.get("keep", ""))):
                continue
            g = dict(g)
            g["members"] = [m for m in g.get("members") or [] if isinstance(m, dict) and inside(str(m.get("path", "")))]
            if isinstance(g.get("links"), list):  # other names of the group's files
                g["links"] = [a for a in g["links"] if isinstance(a, dict) and inside(str(a.get("path", "")))
                              and inside(str(a.get("to", "")))]
            if g["members"]:
                groups.append(g)
        out["groups"] = groups
    if isinstance(out.get("order"), list):
        out["order"] = [p for p in out["order"] if inside(p)]
    if isinstance(out.get("clusters"), list):
        clusters = []
        for c in out["clusters"]:
            if isinstance(c, dict) and isinstance(c.get("members"), list):
                c = {**c, "members": [p for p in c["members"] if inside(p)]}
                if not c["members"]:
                    continue
            clusters.append(c)
        out["clusters"] = clusters
    if isinstance(out.get("unclustered"), list):
        out["unclustered"] = [p for p in out["unclustered"] if inside(p)]
    if isinstance(out.get("results"), list):
        out["results"] = [h for h in out["results"] if not isinstance(h, dict) or inside(str(h.get("path", "")))]
    return out


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


def site_rules(cfg) -> SiteRules:
    """The Host/Origin rules of a :class:`~lookalike.service.config.ServiceConfig`."""
    return SiteRules(cfg.host, cfg.allowed_hosts, cfg.allowed_origins)


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
    body = json.dumps(error_body(status, code, message)).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    if status == 401:
        headers.append((b"www-authenticate", b"Bearer"))
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


# -- sites: Host, Origin, Content-Type, --allow-changes -----------------------------------------
LOOPBACK_NAMES = frozenset({"localhost", "127.0.0.1", "::1"})
WILDCARD_HOSTS = frozenset({"", "0.0.0.0", "::"})
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
CROSS_SITE = frozenset({"cross-site", "same-site"})

#: Routes that change the user's files, the journal or lookalike's models and settings: they answer
#: only on a service started with ``--allow-changes``. Every other route that takes a body or starts
#: work (search, duplicates, sort, cluster, index into the catalog, plan building, cancelling a job)
#: changes nothing of the user's (a test checks that every non-GET route is in one of the two sets).
CHANGING_ROUTES = frozenset({
    ("POST", "/v1/plans/apply"),
    ("POST", "/v1/undo"),
    ("POST", "/v1/faces/train"),
    ("PUT", "/v1/faces/models/active"),
    ("POST", "/v1/faces/people/move"), ("POST", "/v1/faces/people/name"),  # routes/people.py: change a face model
})
#: Non-GET routes that start work or build a plan but change no file and no setting.
WORK_ROUTES = frozenset({
    ("POST", "/v1/embed"), ("POST", "/v1/similar"), ("POST", "/v1/index"), ("POST", "/v1/dupes"),
    ("POST", "/v1/dupes/plan"), ("POST", "/v1/sort"), ("POST", "/v1/cluster"), ("POST", "/v1/faces/detect"),
    ("POST", "/v1/faces/recognize"), ("DELETE", "/v1/jobs/{job_id}"),
    ("POST", "/v1/faces/people"), ("POST", "/v1/faces/people/merge"),  # routes/people.py
})


def split_host(value: str) -> tuple[str, int | None] | None:
    """``host[:port]`` (``[v6]:port`` for IPv6) as (lower-case host without brackets, port or None);
    None when it is not a well-formed authority."""
    value = value.strip().lower()
    if not value or any(c in value for c in "/@?#\\ \t"):
        return None
    if value.startswith("["):
        end = value.find("]")
        if end < 0:
            return None
        host, rest = value[1:end], value[end + 1:]
        if rest and not rest.startswith(":"):
            return None
        port_s = rest[1:] if rest else None
    elif value.count(":") == 1:
        host, port_s = value.split(":")
    elif ":" in value:  # a bare IPv6 address
        host, port_s = value, None
    else:
        host, port_s = value, None
    if not host:
        return None
    if port_s is None:
        return host, None
    if not port_s.isdigit() or not 0 < int(port_s) < 65536:
        return None
    return host, int(port_s)


def _is_ip(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


def is_json_type(ctype: str | None) -> bool:
    """Exactly ``application/json``, optionally with a charset (UTF-8) parameter: not text/plain,
    not ``application/x-json-whatever``, none of the types a browser may send cross-origin unasked."""
    if not ctype:
        return False
    media, *params = [p.strip().lower() for p in ctype.split(";")]
    if media != "application/json":
        return False
    for p in params:
        name, _, value = p.partition("=")
        if name.strip() != "charset" or value.strip().strip('"') not in ("utf-8", "utf8"):
            return False
    return True


def is_multipart_type(ctype: str | None) -> bool:
    return bool(ctype) and ctype.split(";")[0].strip().lower() == "multipart/form-data"


class SiteRules:
    """Which Host headers and Origins this service answers (built from its settings)."""

    def __init__(self, bound_host: str, allowed_hosts: Iterable[str] = (), allowed_origins: Iterable[str] = ()) -> None:
        bound = bound_host.strip().lower().strip("[]")
        self.wildcard = bound in WILDCARD_HOSTS
        self.names = set(LOOPBACK_NAMES) | ({bound} if not self.wildcard else set())
        self.any_host = False
        self.extra: list[tuple[str, int | None]] = []
        for h in allowed_hosts:
            if h.strip() == "*":
                self.any_host = True
                continue
            parsed = split_host(h)
            if parsed is None:
                raise ValueError(f"--allowed-host {h!r}: give a host name or address, optionally with :PORT")
            self.extra.append(parsed)
        self.origins: set[str] = set()
        for o in allowed_origins:
            norm = normal_origin(o)
            if norm is None:
                raise ValueError(f"--allowed-origin {o!r}: give scheme://host[:port], e.g. https://photos.example")
            self.origins.add(norm)

    def host_ok(self, header: str | None, port: int | None) -> bool:
        """A request's Host: our bound address or a loopback name (with the port the request came in
        on, or none), an IP address when bound to every interface (a rebinding page always sends its
        own DNS name), or one of ``--allowed-host``."""
        if header is None:
            return True  # HTTP/1.0 without Host: not a browser
        if self.any_host:
            return True
        parsed = split_host(header)
        if parsed is None:
            return False
        host, hport = parsed
        for name, eport in self.extra:
            if host == name and (eport is None or hport == eport):
                return True
        if hport is not None and port is not None and hport != port:
            return False
        return host in self.names or (self.wildcard and _is_ip(host))

    def origin_ok(self, origin: str, host_header: str | None, port: int | None) -> bool:
        """A browser's Origin for a request that changes state or starts work: this service's own page
        (same scheme://host:port as the Host it asked, or http:// + a loopback name + our port) or one
        of ``--allowed-origin``. ``null`` (sandboxed frames, file: pages) is never allowed."""
        norm = normal_origin(origin)
        if norm is None:
            return False
        if norm in self.origins:
            return True
        scheme, rest = norm.split("://", 1)
        parsed = split_host(rest)
        if parsed is None:
            return False
        host, oport = parsed
        if host_header is not None:
            own = split_host(host_header)
            if own is not None and self.host_ok(host_header, port):
                own_port = own[1] if own[1] is not None else (443 if scheme == "https" else 80)
                if own[0] == host and own_port == oport:
                    return True
        return scheme == "http" and host in self.names and port is not None and oport == port


def normal_origin(value: str) -> str | None:
    """``scheme://host:port`` in lower case with the default port made explicit; None for ``null``
    and anything that is not an http(s) origin."""
    value = value.strip()
    if not value or value.lower() == "null":
        return None
    try:
        u = urlsplit(value)
        port = u.port
    except ValueError:
        return None
    if u.scheme.lower() not in ("http", "https") or not u.hostname or u.path not in ("", "/") or u.query or u.username:
        return None
    scheme = u.scheme.lower()
    port = port or (443 if scheme == "https" else 80)
    host = u.hostname.lower()
    host = f"[{host}]" if ":" in host else host
    return f"{scheme}://{host}:{port}"


class SiteGuard:
    """Pure ASGI, in front of everything (token checks included): refuses a foreign Host on every
    route, a foreign Origin (or a cross-site fetch) and a body that is not JSON or a multipart upload
    on every request that changes state or starts work, and the routes of :data:`CHANGING_ROUTES`
    on a service without ``--allow-changes``."""

    def __init__(self, app: ASGIApp, rules: SiteRules, *, allow_changes: bool = False, public=is_public,
                 changing: frozenset = CHANGING_ROUTES) -> None:
        self.app, self.rules, self.allow_changes = app, rules, allow_changes
        self.public, self.changing = public, changing

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        problem = self.check(scope)
        if problem is not None:
            await _send_error(send, *problem)
            return
        await self.app(scope, receive, send)

    def check(self, scope: Scope) -> tuple[int, str, str] | None:
        headers: dict[bytes, bytes] = {}
        for k, v in scope.get("headers") or []:
            headers.setdefault(k, v)

        def header(name: bytes) -> str | None:
            v = headers.get(name)
            return None if v is None else v.decode("latin-1")

        server = scope.get("server") or (None, None)
        port = server[1] if isinstance(server, list | tuple) and len(server) > 1 else None
        host = header(b"host")
        if not self.rules.host_ok(host, port):
            return (400, "host_refused", f"this service does not answer for the host {host!r} "
                    "(start it with --allowed-host NAME to serve it behind a proxy or under another name)")
        method = scope.get("method", "GET").upper()
        origin = header(b"origin")
        fetch_site = (header(b"sec-fetch-site") or "").strip().lower()
        path = scope.get("path", "")
        if method in SAFE_METHODS:
            # reads: a page elsewhere may still embed <img src=...> and learn what exists; only
            # top-level navigation (opening the page from a link) may come from another site
            if (fetch_site in CROSS_SITE and not self.public(path)
                    and (header(b"sec-fetch-mode") or "").lower() != "navigate"
                    and not (origin is not None and self.rules.origin_ok(origin, host, port))):
                return (403, "cross_site_refused", "requests from another site's page are refused")
            return None
        if origin is not None:
            if not self.rules.origin_ok(origin, host, port):
                return (403, "origin_refused", f"requests from the page at {origin!r} are refused: only this "
                        "service's own page (or an --allowed-origin) may change state or start work")
        elif fetch_site in CROSS_SITE:
            return (403, "origin_refused", "requests from another site's page are refused")
        ctype = header(b"content-type")
        has_body = (header(b"transfer-encoding") is not None
                    or (header(b"content-length") or "0").strip() not in ("", "0"))
        if has_body and not (is_json_type(ctype) or is_multipart_type(ctype)):
            return (415, "unsupported_media_type",
                        "send a JSON body with Content-Type: application/json (or a multipart/form-data upload)")
        if not self.allow_changes and (method, path.rstrip("/") or "/") in self.changing:
            return (403, "changes_disabled",
                    "this route changes files or models; start the service with --allow-changes to enable it")
        return None
