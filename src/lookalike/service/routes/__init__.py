"""The service's HTTP routes, one module per group, each with a :class:`Routes` table that
``create_app`` adds to the app:

* :mod:`.service` -- /healthz, /metrics, /v1/info, /v1/browse, /v1/models;
* :mod:`.pages` -- the review page, its static files, /docs (Swagger UI served offline);
* :mod:`.images` -- /v1/embed, /v1/similar, /v1/thumb;
* :mod:`.jobs` -- /v1/jobs/{id} (state, cancel) and :func:`.jobs.start_job`;
* :mod:`.index` -- /v1/index; :mod:`.dupes` -- /v1/dupes, /v1/dupes/plan;
* :mod:`.organise` -- /v1/sort, /v1/cluster; :mod:`.journal` -- /v1/plans/apply, /v1/undo;
* :mod:`.faces` -- /v1/faces/detect, recognize, train, models;
* :mod:`.photos` -- /v1/photos (the folder browser's grid), /v1/photo (full resolution, the compare view);
* :mod:`.people` -- /v1/faces/crop and /v1/faces/people... (the web app's People view).

This package's own module imports none of them (no import runs back up to it).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from fastapi import FastAPI


class Routes:
    """Routes declared next to their functions (``@routes.post(path, ...)``, FastAPI's arguments),
    added to an app by :meth:`register`. Unlike an included ``APIRouter`` (kept as one lazy entry by
    this FastAPI), the app then lists every route itself."""

    def __init__(self, **defaults: Any) -> None:
        self.defaults = defaults
        self.entries: list[tuple[str, str, dict[str, Any], Callable[..., Any]]] = []

    def route(self, method: str, path: str, **options: Any) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
        def declare(fn: Callable[..., Any]) -> Callable[..., Any]:
            self.entries.append((method, path, {**self.defaults, **options}, fn))
            return fn

        return declare

    def get(self, path: str, **options: Any):
        return self.route("GET", path, **options)

    def post(self, path: str, **options: Any):
        return self.route("POST", path, **options)

    def put(self, path: str, **options: Any):
        return self.route("PUT", path, **options)

    def delete(self, path: str, **options: Any):
        return self.route("DELETE", path, **options)

    def register(self, app: FastAPI) -> None:
        """Add every declared route to ``app``."""
        for method, path, options, fn in self.entries:
            app.add_api_route(path, fn, methods=[method], **options)


__all__ = ["Routes"]
