"""Drop-in for the klikr desktop app's ML servers ("klik protocol").

The app finds servers through JSON files ``<type>_<uuid>.json`` = ``{"type", "port", "uuid"}`` in
``~/.klikr/.privacy_screen/image_similarity_server_registry/`` (type ``MobileNet``) and
``~/.klikr/.privacy_screen/face_recognition_server_registry/`` (``FaceNet``, ``MTCNN``, ``Haar_*``),
checks each with ``GET /health`` (a registry file whose server does not answer is deleted by the app),
picks one at random per request and asks ``GET /<URL-encoded absolute path>``:

* image similarity / face embeddings -> ``{"features": [floats]}``;
* face detection -> the PNG crop of the most confident face, or 404 with a JSON reason.

The app sends the same URL to every kind of server, so lookalike answers by the port a request
arrives on. klikr's load balancer wants a quota of live servers per type and starts its own Python
servers for the rest (read from klikr's source, philgentric/klikr ``ML_server_type.quota``:
MobileNet = klikr's "number of image similarity servers", by default the machine's core count as Java's
``availableProcessors`` sees it; FaceNet and MTCNN 3; each Haar type 1). So lookalike registers as many
servers per type as that quota (:func:`plan`): each one a loopback port of its own with its own uuid
(the one in its registry file and in its ``/health``), all answered by this one process. Our registry
files also carry ``"name"`` (what older app versions read), ``"server": "lookalike"`` and our ``"pid"``,
so a later start can delete files left by a lookalike that died without cleaning up.
"""

from __future__ import annotations

import io
import json
import math
import os
import time
import uuid
from pathlib import Path
from urllib.parse import unquote_to_bytes

import anyio
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import ASGIApp, Receive, Scope, Send

from lookalike.errors import LookalikeError
from lookalike.service.config import ServiceConfig
from lookalike.service.daemon import pid_alive
from lookalike.service.errors import ApiError, JSONResponse, error_body, from_library
from lookalike.service.security import GuardMiddleware, SiteGuard, SiteRules, confine

IMAGE_TYPES = ("MobileNet",)
FACE_EMBEDDING_TYPES = ("FaceNet",)
FACE_DETECTION_TYPES = ("MTCNN", "Haar_default", "Haar_alt1", "Haar_alt2", "Haar_tree")
ALL_TYPES = IMAGE_TYPES + FACE_EMBEDDING_TYPES + FACE_DETECTION_TYPES

#: klikr's fixed quotas (``ML_server_type.quota``); MobileNet's is the core count (:func:`quotas`).
FIXED_QUOTAS = {"FaceNet": 3, "MTCNN": 3, "Haar_default": 1, "Haar_alt1": 1, "Haar_alt2": 1, "Haar_tree": 1}
#: Most cores ``--klik-cores`` accepts (each MobileNet server is one more listening socket).
MAX_CORES = 512
#: The environment variable behind ``serve --klik-cores``.
CORES_ENV = "LOOKALIKE_KLIK_CORES"


def _cgroup_cpus() -> int | None:
    """The CPU limit of this process's cgroup (v2 ``cpu.max``, v1 ``cfs_quota_us``), rounded up."""
    for quota_file, period_file in (("/sys/fs/cgroup/cpu.max", None),
                                    ("/sys/fs/cgroup/cpu/cpu.cfs_quota_us", "/sys/fs/cgroup/cpu/cpu.cfs_period_us")):
        try:
            text = Path(quota_file).read_text().split()
            if period_file is None:
                quota, period = text[0], (text[1] if len(text) > 1 else "100000")
            else:
                quota, period = text[0], Path(period_file).read_text().split()[0]
            if quota in ("max", "-1"):
                return None
            q, per = int(quota), int(period)
            if q > 0 and per > 0:
                return max(1, math.ceil(q / per))
        except (OSError, ValueError, IndexError):
            continue
    return None


def machine_cores() -> int:
    """The core count klikr sees on this machine (Java's ``Runtime.availableProcessors()``: the CPUs
    this process may run on, capped by a container's CPU limit)."""
    try:
        n = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        n = os.cpu_count() or 1
    limit = _cgroup_cpus()
    return max(1, min(n, limit) if limit else n)


def quotas(cores: int | None = None) -> dict[str, int]:
    """klikr's quota per type: below it, the app starts servers of its own."""
    return {"MobileNet": cores or machine_cores(), **FIXED_QUOTAS}


def plan(types: list[str], cores: int | None = None) -> list[str]:
    """One entry per server to register: each type repeated as many times as klikr's quota."""
    q = quotas(cores)
    return [t for t in types for _ in range(q[t])]


def summary(servers: list[dict]) -> str:
    """``MobileNet x2 (ports 4101, 4102), FaceNet x3 (...)``: what ``server status`` and the log show."""
    by_type: dict[str, list[int]] = {}
    for s in servers:
        by_type.setdefault(str(s.get("type")), []).append(int(s.get("port", 0)))
    return ", ".join(f"{t} x{len(ports)} (port{'s' if len(ports) > 1 else ''} {', '.join(map(str, ports))})"
                     for t, ports in by_type.items())


def new_server(klik_type: str, port: int) -> dict:
    """One registered server: what its registry file says and its ``/health`` repeats."""
    return {"type": klik_type, "port": port, "uuid": str(uuid.uuid4())}


def registry_dir(klik_type: str, home: Path | None = None) -> Path:
    """The registry folder the app scans for servers of this type."""
    base = (home or Path(os.path.expanduser("~"))) / ".klikr" / ".privacy_screen"
    sub = "image_similarity_server_registry" if klik_type in IMAGE_TYPES else "face_recognition_server_registry"
    return base / sub


def default_types() -> list[str]:
    """Every type lookalike answers: image similarity, face embeddings and face detection."""
    return list(ALL_TYPES)


def clean_stale(home: Path | None = None) -> list[Path]:
    """Delete registry files written by a lookalike process that is gone. Other servers' files stay."""
    removed = []
    base = registry_dir(IMAGE_TYPES[0], home).parent
    for tmp in base.glob(".lookalike-*.tmp") if base.is_dir() else []:  # a write cut short by a crash
        try:
            tmp.unlink()
        except OSError:
            pass
    for t in (IMAGE_TYPES[0], FACE_DETECTION_TYPES[0]):
        folder = registry_dir(t, home)
        if not folder.is_dir():
            continue
        for f in folder.glob("*.json"):
            try:
                data = json.loads(f.read_text())
            except (OSError, ValueError):
                continue
            if isinstance(data, dict) and data.get("server") == "lookalike" and not pid_alive(int(data.get("pid", 0))):
                try:
                    f.unlink()
                    removed.append(f)
                except OSError:
                    pass
    return removed


def registry_file(server: dict, home: Path | None = None) -> Path:
    """Where a server's registry file goes: ``<registry folder>/<type>_<uuid>.json``."""
    return registry_dir(server["type"], home) / f"{server['type']}_{server['uuid']}.json"


def _write_registry_file(server: dict, home: Path | None = None) -> Path:
    klik_type, port, uid = server["type"], int(server["port"]), str(server["uuid"])
    target = registry_file(server, home)
    target.parent.mkdir(parents=True, exist_ok=True)
    data = {"type": klik_type, "port": port, "uuid": uid, "name": klik_type, "server": "lookalike",
            "pid": os.getpid()}
    # written beside the registry folder, then renamed in: klikr reads every file of the folder and
    # deletes one it finds without a port, so it must never see a half-written file
    tmp = target.parent.parent / f".lookalike-{target.stem}.tmp"
    tmp.write_text(json.dumps(data))
    os.replace(tmp, target)
    return target


def register(servers: list[dict], home: Path | None = None) -> list[Path]:
    """Write one registry file per server (:func:`new_server`); returns the files (remove them with
    :func:`unregister`). ``type``, ``port`` and ``uuid`` come first: klikr finds a key by the first
    place its quoted name appears. A file that cannot be written is reported on one line; the others
    are still written."""
    files = []
    failed: dict[Path, str] = {}
    for server in servers:
        try:
            files.append(_write_registry_file(server, home))
        except OSError as exc:
            failed.setdefault(registry_dir(server["type"], home), exc.strerror or str(exc))
    for folder, why in failed.items():  # one line per folder, not one per server
        print(f"klik: cannot write registry files in {folder}: {why}; klikr will start servers of its own",
              flush=True)
    return files


def restore_missing(servers: list[dict], home: Path | None = None) -> list[Path]:
    """Write again the registry files that have gone while we run (klikr deletes the file of a server
    that misses one health check, then starts servers of its own); returns the files written."""
    written = []
    for server in servers:
        if not registry_file(server, home).exists():
            try:
                written.append(_write_registry_file(server, home))
            except OSError:
                continue
    return written


def unregister(files: list[Path]) -> None:
    for f in files:
        try:
            f.unlink()
        except FileNotFoundError:
            pass


class KlikApp:
    """ASGI app answering the klik protocol on the extra ports."""

    def __init__(self, main_app, cfg: ServiceConfig) -> None:
        self.st = main_app.state.lookalike
        self.cfg = cfg
        # every worker process builds this from the same settings: one uuid per port, the registry's
        self.by_port = {int(s["port"]): (s["type"], str(s["uuid"])) for s in cfg.klik_servers}
        self.runtime = {port: {"request_count": 0, "error_count": 0, "last_error": None, "last_error_time": None}
                        for port in self.by_port}

    def _port(self, scope: Scope) -> int | None:
        return (scope.get("server") or (None, None))[1]

    def _type_of(self, scope: Scope) -> str:
        return self.by_port.get(self._port(scope), ("MobileNet", None))[0]

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return
        request = Request(scope, receive)
        klik_type = self._type_of(scope)
        t0 = time.perf_counter()
        status = 500
        try:
            if request.method != "GET":
                response = JSONResponse(error_body(405, "method_not_allowed", "the klik protocol is GET only"), 405)
            elif scope["path"] == "/health":
                response = JSONResponse(self._health(klik_type, scope))
            else:
                response = await self._serve(klik_type, scope)
        except ApiError as exc:
            response = self._error(scope, exc.status, exc.code, exc.message)
        except LookalikeError as exc:
            e = from_library(exc)
            response = self._error(scope, e.status, e.code, e.message)
        except Exception as exc:  # never a traceback, never a hang
            import logging

            logging.getLogger("lookalike.service").exception("klik request failed")
            response = self._error(scope, 500, "internal_error", f"internal error ({type(exc).__name__})")
        status = response.status_code
        label = "/health" if scope["path"] == "/health" else "/{klik_path}"
        self.st.metrics.inc("lookalike_requests_total", route=f"klik:{klik_type}{label}", method=request.method,
                            status=str(status))
        self.st.metrics.observe("lookalike_request_seconds", time.perf_counter() - t0, route=f"klik:{klik_type}{label}")
        await response(scope, receive, send)

    def _error(self, scope: Scope, status: int, code: str, message: str) -> JSONResponse:
        rt = self.runtime.get(self._port(scope))
        if rt:
            rt["error_count"] += 1
            rt["last_error"], rt["last_error_time"] = message, time.time()
        return JSONResponse(error_body(status, code, message), status_code=status)

    def _health(self, klik_type: str, scope: Scope) -> dict:
        problem = None
        try:
            if klik_type in IMAGE_TYPES:
                from lookalike.features import registry

                spec = registry.get_spec("effnet")
                if registry.ensure_weights(spec, fetch=False) is None and spec.needs_weights:
                    problem = "effnet weights are not installed: run `lookalike models pull effnet`"
        except Exception as exc:
            problem = str(exc)
        port = self._port(scope)
        return {
            "type": klik_type, "port": port, "uuid": self.by_port.get(port, (None, None))[1], "server": "lookalike",
            "status": "critical_failure" if problem else "healthy",
            "diagnostics": {"model_load_error": problem, "import_error": None, "pid": os.getpid()},
            "runtime": self.runtime.get(port, {}),
        }

    async def _serve(self, klik_type: str, scope: Scope) -> Response:
        raw = scope.get("raw_path") or os.fsencode(scope["path"])
        raw = raw.split(b"?", 1)[0]
        # the path's bytes as the file system has them: UTF-8 names decode as usual, other bytes
        # (%E9 from a Latin-1 name) become surrogate escapes, as os.listdir gives such names
        path = os.fsdecode(unquote_to_bytes(raw[1:].replace(b"+", b" ")))
        if self._port(scope) in self.runtime:
            self.runtime[self._port(scope)]["request_count"] += 1
        real = confine(path, self.cfg.roots, want="file")
        if klik_type in IMAGE_TYPES:
            vec = await anyio.to_thread.run_sync(self._image_features, real)
            return JSONResponse({"features": [float(x) for x in vec]})
        if klik_type in FACE_EMBEDDING_TYPES:
            vec = await anyio.to_thread.run_sync(_face_embedding, real)
            return JSONResponse({"features": [float(x) for x in vec]})
        png = await anyio.to_thread.run_sync(_face_crop_png, real)
        if png is None:
            raise ApiError(404, "no_face", f"no face found in {path}")
        return Response(png, media_type="image/png")

    def _image_features(self, path: str):
        from lookalike.collection import Collection

        self.st.models.touch("effnet")
        return Collection(path, catalog=self.st.catalog).feature_of(path, "effnet")


def _face_embedding(path: str):
    """Embedding of a face-crop picture: the whole picture is taken as the face (the app sends crops)."""
    import numpy as np

    from lookalike import faces
    from lookalike.faces.detect import whole_image
    from lookalike.media import decode

    arr = np.asarray(decode(path).image)
    _, emb = faces.load_face_embedder().embed_faces(arr, [whole_image(arr)])
    return emb[0]


def _face_crop_png(path: str) -> bytes | None:
    """The PNG crop of the most confident face in a picture (None: no face)."""
    from lookalike import faces

    found = faces.detect(path)
    if not found:
        return None
    from lookalike.media import decode

    best = max(found, key=lambda f: float(f.score))
    left, top, right, bottom = (int(v) for v in best.box)
    crop = decode(path).image.crop((left, top, right, bottom))
    buf = io.BytesIO()
    crop.save(buf, "PNG")
    return buf.getvalue()


def wrap_with_klik(guarded_main: ASGIApp, main_app, cfg: ServiceConfig) -> ASGIApp:
    """One ASGI app for all sockets: klik ports get the klik protocol, the main port the API."""
    if not cfg.klik_servers:
        return guarded_main
    def public(p: str) -> bool:
        return p == "/health"

    rules = SiteRules("127.0.0.1", cfg.allowed_hosts)  # klik ports listen on loopback only
    klik = SiteGuard(GuardMiddleware(KlikApp(main_app, cfg), cfg.token, 1024 * 1024, public=public), rules,
                     allow_changes=False, public=public, changing=frozenset())
    klik_ports = {int(s["port"]) for s in cfg.klik_servers}

    async def dispatch(scope: Scope, receive: Receive, send: Send) -> None:
        server = scope.get("server") or (None, None)
        if scope["type"] == "http" and server[1] in klik_ports:
            await klik(scope, receive, send)
        else:
            await guarded_main(scope, receive, send)

    return dispatch
