"""The local HTTP service: ``lookalike serve``.

* :mod:`.app` -- FastAPI routes (``/v1/...``, ``/healthz``, ``/metrics``, the review page);
* :mod:`.security` -- token, roots, upload checks; :mod:`.jobs` -- background jobs;
* :mod:`.model_pool` -- models kept loaded, idle unload, request batching; :mod:`.metrics`; :mod:`.matrix_cache` -- feature matrices kept between searches;
* :mod:`.klik` -- the klikr desktop app's protocol and registry files;
* :mod:`.server` / :mod:`.daemon` -- sockets, workers, pid files, logs.
"""

from lookalike.service.config import ServiceConfig

__all__ = ["ServiceConfig"]
