"""The local HTTP service: ``lookalike serve``.

* :mod:`.app` -- FastAPI routes (``/v1/...``, ``/healthz``, ``/metrics``, the review page);
* :mod:`.security` -- token, roots, upload checks; :mod:`.jobs` -- background jobs;
* :mod:`.models` -- models kept loaded, idle unload, request batching; :mod:`.metrics`;
* :mod:`.klik` -- the klikr desktop app's protocol and registry files;
* :mod:`.server` / :mod:`.daemon` -- sockets, workers, pid files, logs.
"""

from lookalike.service.config import ServiceConfig

__all__ = ["ServiceConfig"]
