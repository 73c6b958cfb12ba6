"""A small Python client for the lookalike HTTP service.

    >>> from lookalike.client import Client
    >>> c = Client("http://127.0.0.1:8765", token="...")
    >>> c.similar(upload="query.jpg", k=5)["results"]
    >>> job = c.dupes("/photos/2024"); c.wait(job["id"])["result"]

Every call has a timeout; requests that are safe to repeat are retried (with backoff) on connection
errors and on 502/503/504. Mutating calls (apply, undo, train) are retried only when the connection
could not be made at all, so they never run twice. Errors raise :class:`ServiceError` with the
service's status, code and message."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx

RETRY_STATUS = (502, 503, 504)


class ServiceError(Exception):
    """The service answered with an error (or could not be reached)."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(f"{status} {code}: {message}")
        self.status, self.code, self.message = status, code, message


class Client:
    """Client(url, token=None, timeout=60, retries=3)."""

    def __init__(self, url: str = "http://127.0.0.1:8765", token: str | None = None, timeout: float = 60.0,
                 retries: int = 3, backoff: float = 0.2) -> None:
        self.url = url.rstrip("/")
        self.retries, self.backoff = max(0, retries), backoff
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        self.http = httpx.Client(base_url=self.url, headers=headers,
                                 timeout=httpx.Timeout(timeout, connect=min(10.0, timeout)))

    def close(self) -> None:
        self.http.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- plumbing ----------------------------------------------------------------------------
    def request(self, method: str, path: str, *, idempotent: bool = True, raw: bool = False, **kw: Any) -> Any:
        """Send a request with retries; returns the decoded JSON (or the response when ``raw``)."""
        if "json" in kw:  # paths that are not UTF-8 travel as "\udcXX" escapes, which the service reads back
            kw["content"] = json.dumps(kw.pop("json")).encode("ascii")
            kw["headers"] = {**(kw.get("headers") or {}), "Content-Type": "application/json"}
        attempt = 0
        while True:
            try:
                resp = self.http.request(method, path, **kw)
            except (httpx.ConnectError, httpx.ConnectTimeout) as exc:
                if attempt >= self.retries:
                    raise ServiceError(0, "unreachable", f"cannot reach {self.url}: {exc}") from exc
            except httpx.TimeoutException as exc:
                if not idempotent or attempt >= self.retries:
                    raise ServiceError(0, "timeout", f"{method} {path} timed out") from exc
            except httpx.TransportError as exc:
                if not idempotent or attempt >= self.retries:
                    raise ServiceError(0, "transport", f"{method} {path}: {exc}") from exc
            else:
                if resp.status_code in RETRY_STATUS and idempotent and attempt < self.retries:
                    pass
                elif resp.status_code >= 400:
                    raise _error(resp)
                else:
                    if raw:
                        return resp
                    return resp.json() if resp.content else None
            attempt += 1
            time.sleep(self.backoff * (2 ** (attempt - 1)))
            for v in kw.get("files", {}).values() if isinstance(kw.get("files"), dict) else []:
                if hasattr(v, "seek"):
                    v.seek(0)

    def _image_call(self, route: str, path: str | None, upload: str | Path | bytes | None, fields: dict) -> Any:
        fields = {k: v for k, v in fields.items() if v is not None}
        if (path is None) == (upload is None):
            raise ValueError("give exactly one of path= (a file under a --root) or upload= (a file or bytes)")
        if path is not None:
            return self.request("POST", route, json={"path": str(path), **fields})
        data = upload if isinstance(upload, bytes | bytearray) else Path(upload).read_bytes()
        name = "upload" if isinstance(upload, bytes | bytearray) else Path(upload).name
        form = {k: str(v) for k, v in fields.items()}
        return self.request("POST", route, files={"file": (name, bytes(data), "application/octet-stream")}, data=form)

    # -- routes ------------------------------------------------------------------------------
    def health(self) -> dict:
        return self.request("GET", "/healthz")

    def info(self) -> dict:
        return self.request("GET", "/v1/info")

    def metrics(self) -> str:
        return self.request("GET", "/metrics", raw=True).text

    def embed(self, path: str | None = None, upload: str | Path | bytes | None = None,
              model: str | None = None) -> dict:
        """``{"model", "vector"}`` of one picture."""
        return self._image_call("/v1/embed", path, upload, {"model": model})

    def similar(self, path: str | None = None, upload: str | Path | bytes | None = None, k: int = 5,
                folder: str | None = None, model: str | None = None) -> dict:
        """Top-k similar pictures (in ``folder``, or the whole catalog), as ``lookalike similar --json``."""
        return self._image_call("/v1/similar", path, upload, {"k": k, "folder": folder, "model": model})

    def thumbnail(self, path: str, size: int = 256) -> bytes:
        query = f"path={quote(os.fsencode(path), safe='/')}&size={int(size)}"  # the name's bytes, as on disk
        return self.request("GET", f"/v1/thumb?{query}", raw=True).content

    def index(self, folder: str | list[str], model: str | None = None) -> dict:
        """Start indexing folders into the service's catalog; returns the job."""
        body = {"folders": _list(folder), **({"model": model} if model else {})}
        return self.request("POST", "/v1/index", json=body, idempotent=False)

    def dupes(self, folder: str | list[str], **params: Any) -> dict:
        """Start a duplicate search; returns the job (poll with :meth:`job` / :meth:`wait`)."""
        return self.request("POST", "/v1/dupes", json={"folders": _list(folder), **params}, idempotent=False)

    def sort(self, folder: str | list[str], **params: Any) -> dict:
        return self.request("POST", "/v1/sort", json={"folders": _list(folder), **params}, idempotent=False)

    def cluster(self, folder: str | list[str], **params: Any) -> dict:
        return self.request("POST", "/v1/cluster", json={"folders": _list(folder), **params}, idempotent=False)

    def job(self, job_id: str) -> dict:
        return self.request("GET", f"/v1/jobs/{job_id}")

    def cancel(self, job_id: str) -> dict:
        return self.request("DELETE", f"/v1/jobs/{job_id}")

    def wait(self, job_id: str, timeout: float = 600.0, poll: float = 0.1) -> dict:
        """Poll a job until it is done, failed or cancelled; returns its final state."""
        deadline = time.monotonic() + timeout
        while True:
            state = self.job(job_id)
            if state["state"] in ("done", "failed", "cancelled"):
                return state
            if time.monotonic() > deadline:
                raise ServiceError(0, "timeout", f"job {job_id} still {state['state']} after {timeout:.0f}s")
            time.sleep(poll)

    def apply(self, plan: dict | None = None, **params: Any) -> dict:
        """Apply a plan (needs a service started with --allow-changes)."""
        body = {"plan": plan, **params} if plan is not None else params
        return self.request("POST", "/v1/plans/apply", json=body, idempotent=False)

    def undo(self, journal: str | None = None) -> dict:
        return self.request("POST", "/v1/undo", json={"journal": journal} if journal else {}, idempotent=False)

    def faces_detect(self, path: str | None = None, upload: str | Path | bytes | None = None) -> dict:
        return self._image_call("/v1/faces/detect", path, upload, {})

    def faces_recognize(self, path: str | None = None, upload: str | Path | bytes | None = None, **params: Any) -> dict:
        return self._image_call("/v1/faces/recognize", path, upload, params)

    def faces_train(self, dataset: str, model: str) -> dict:
        return self.request("POST", "/v1/faces/train", json={"dataset": dataset, "model": model}, idempotent=False)

    def faces_models(self) -> dict:
        return self.request("GET", "/v1/faces/models")

    def faces_use(self, name: str) -> dict:
        return self.request("PUT", "/v1/faces/models/active", json={"name": name})


def _list(x: str | list[str]) -> list[str]:
    return [x] if isinstance(x, str) else list(x)


def _error(resp: httpx.Response) -> ServiceError:
    try:
        err = resp.json()["error"]
        return ServiceError(int(err["status"]), str(err["code"]), str(err["message"]))
    except (ValueError, KeyError, TypeError):
        return ServiceError(resp.status_code, "http_error", resp.text[:200])
