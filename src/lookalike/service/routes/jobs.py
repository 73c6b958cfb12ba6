"""Job routes: a job's state and cancelling it; :func:`start_job`, how every job route starts one
(:func:`start_model_job` for one over folders with a model)."""

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


def start_model_job(st: State, kind: str, paths: list[str], model: str, fn: Callable[[Any], Any],
                    **params: Any) -> JSONResponse:
    """:func:`start_job` for a job over the folders ``paths`` with the model ``model`` (the model pool counts
    it as used when the job runs); the job's result is ``fn(progress).to_json()``."""

    def run(progress):
        st.models.touch(model)
        return fn(progress).to_json()

    return start_job(st, kind, run, {"folders": paths, "model": model, **params})


def _found(state: dict | None, job_id: str) -> JSONResponse:
    """A job's state, or 404 when there is no such job."""
    if state is None:
        raise ApiError(404, "no_such_job", f"no job {job_id}")
    return JSONResponse(state)


@routes.get("/v1/jobs/{job_id}")
async def job(request: Request, job_id: str) -> JSONResponse:
    """State (queued|running|done|failed|cancelled), progress {done,total}, result or error."""
    return _found(state_of(request).jobs.get(job_id), job_id)


@routes.delete("/v1/jobs/{job_id}")
async def cancel(request: Request, job_id: str) -> JSONResponse:
    """Cancel a job (it stops at its next progress report)."""
    return _found(state_of(request).jobs.cancel(job_id), job_id)
