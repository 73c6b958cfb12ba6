"""The application state of one worker process: settings, catalog, model pool, jobs, metrics and the
feature-matrix cache, shared by every route (``request.app.state.lookalike``)."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import anyio
from starlette.requests import Request

from lookalike.catalog import Catalog
from lookalike.config import home_dir
from lookalike.errors import LookalikeError
from lookalike.service.config import ServiceConfig
from lookalike.service.errors import ApiError, from_library
from lookalike.service.jobs import JobStore
from lookalike.service.matrix_cache import MatrixCache
from lookalike.service.metrics import Metrics
from lookalike.service.model_pool import ModelPool

T = TypeVar("T")


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

    def require_changes(self) -> None:
        """Refuse (403) a route that changes files or models unless the service runs with --allow-changes."""
        if not self.cfg.allow_changes:
            raise ApiError(403, "changes_disabled",
                           "this route changes files or models; start the service with --allow-changes to enable it")

    def close(self) -> None:
        """Stop the jobs' threads and the model pool (the app's shutdown)."""
        self.jobs.shutdown()
        self.models.close()


def state_of(request: Request) -> State:
    """The state of the app that answers ``request``."""
    return request.app.state.lookalike


async def in_thread(fn: Callable[..., T], *args: Any) -> T:
    """Run a blocking library call in a worker thread; a library error becomes its API error."""
    try:
        return await anyio.to_thread.run_sync(fn, *args)
    except LookalikeError as exc:
        raise from_library(exc) from exc
