"""Job routes: a job's state and cancelling it; :func:`start_job`, how every job route starts one."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from fastapi import Request

from lookalike.service.errors import ApiError, JSONResponse
from lookalike.service.jobs import JobOutput
from lookalike.service.routes import Routes
from lookalike.service.security import confine_result, roots_filter
from lookalike.service.state import State, state_of

routes = Routes(tags=["jobs"])


def start_job(st: State, kind: str, fn: Callable[[Any], Any], params: dict) -> JSONResponse:
    """Run ``fn(progress)`` as a job (202 with its state). Its result names only files under the roots
    (symlinks resolved): whatever the library walked, an outside file never reaches the client."""
    inside = roots_filter(st.cfg.roots)

    def confined(progress):
        out = fn(progress)
        if isinstance(out, JobOutput):
            extra = dict(out.extra)
            if isinstance(extra.get("hashes"), dict):
                extra["hashes"] = {p: h for p, h in extra["hashes"].items() if inside(p)}
            if isinstance(extra.get("protected"), list):
                extra["protected"] = [p for p in extra["protected"] if inside(p)]
            return JobOutput(confine_result(kind, out.result, inside), extra)
        return confine_result(kind, out, inside)

    state = st.jobs.submit(kind, confined, params)
    return JSONResponse(state, status_code=202, headers={"Location": f"/v1/jobs/{state['id']}"})


@routes.get("/v1/jobs/{job_id}")
async def job(request: Request, job_id: str) -> JSONResponse:
    """State (queued|running|done|failed|cancelled), progress {done,total}, result or error."""
    state = state_of(request).jobs.get(job_id)
    if state is None:
        raise ApiError(404, "no_such_job", f"no job {job_id}")
    return JSONResponse(state)


@routes.delete("/v1/jobs/{job_id}")
async def cancel(request: Request, job_id: str) -> JSONResponse:
    """Cancel a job (it stops at its next progress report)."""
    state = state_of(request).jobs.cancel(job_id)
    if state is None:
        raise ApiError(404, "no_such_job", f"no job {job_id}")
    return JSONResponse(state)
