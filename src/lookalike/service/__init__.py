"""The local HTTP service: ``lookalike serve``.

* :mod:`.app` -- assembles the FastAPI app: state, route tables, error handlers, metrics middleware;
* :mod:`.state` -- the per-worker application state (settings, catalog, model pool, jobs, metrics, matrices);
* :mod:`.requests` -- reading JSON bodies, uploads, query parameters and their fields;
* :mod:`.routes` -- one module per route group (``/healthz``, ``/v1/...``, the review page, /docs);
* :mod:`.security` -- token, roots, upload checks, Host/Origin guard; :mod:`.errors` -- error bodies;
* :mod:`.jobs` -- background jobs; :mod:`.model_pool` -- models kept loaded, idle unload, request batching;
* :mod:`.matrix_cache` -- feature matrices kept between searches; :mod:`.metrics`;
* :mod:`.klik` -- the klikr desktop app's protocol and registry files;
* :mod:`.server` / :mod:`.daemon` -- sockets, workers, pid files, logs.
"""

from lookalike.service.config import ServiceConfig

__all__ = ["ServiceConfig"]
