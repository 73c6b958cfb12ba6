"""Duplicate routes: a duplicate search (a job, as ``lookalike dupes --json``) and the journal plan for
a reviewed result (as ``lookalike dupes --action ... --plan``)."""

from __future__ import annotations

from fastapi import Request

from lookalike import options
from lookalike.service.errors import ApiError
from lookalike.service.jobs import JobOutput
from lookalike.service.requests import FOLDER_SCHEMA, dir_field, float_field, folders_field, json_body, read_json
from lookalike.service.routes import Routes
from lookalike.service.routes.jobs import start_job
from lookalike.service.security import confine_target
from lookalike.service.state import in_thread, state_of

routes = Routes()


@routes.post("/v1/dupes", tags=["jobs"], status_code=202, openapi_extra=json_body(
    {"type": "object", "properties": {**FOLDER_SCHEMA, "tier": {"type": "string"}, "threshold": {"type": "number"},
                                      "keep": {"type": "string"}, "keep_in": {"type": "array"}}}))
async def dupes(request: Request):
    """Start a duplicate search (job); its result is ``lookalike dupes --json``'s JSON."""
    from lookalike.dupes import DEFAULT_TIER, find_duplicates, review_state

    st = state_of(request)
    body = await read_json(request)
    paths = folders_field(body, st)
    tier = str(body.get("tier") or DEFAULT_TIER)
    threshold = float_field(body, "threshold", None)
    keep = body.get("keep")
    keep_in = [dir_field(p, st) for p in (body.get("keep_in") or [])]
    options.check_dupes_options(tier, threshold, keep=keep)

    def run(progress):
        report = find_duplicates(paths, tier=tier, threshold=threshold, keep=keep, keep_in=keep_in,
                                 catalog=st.catalog, progress=progress)
        # what the review's plan needs besides the result: the hashes the search saw, the --keep-in files
        return JobOutput(report.to_json(), review_state(report))

    return start_job(st, "dupes", run, {"folders": paths, "tier": tier, "threshold": threshold})


@routes.post("/v1/dupes/plan", tags=["changes"], openapi_extra=json_body(
    {"type": "object", "required": ["job", "groups"], "properties": {
        "job": {"type": "string"}, "action": {"type": "string"}, "dest": {"type": "string"},
        "groups": {"type": "array", "items": {"type": "object", "properties": {
            "keep": {"type": "string"}, "members": {"type": "array", "items": {"type": "string"}}}}}}}))
async def dupes_plan(request: Request):
    """The journal plan for a reviewed duplicates result: per group the chosen keeper and the members
    to act on (each must belong to that group of the job's result). Built by ``lookalike.dupes.review_plan``,
    exactly as ``lookalike dupes --action ... --plan``; apply it with ``/v1/plans/apply``."""
    from lookalike.dupes import DEFAULT_REVIEW_ACTION, DEFAULT_TIER, review_plan

    st = state_of(request)
    body = await read_json(request)
    job = st.jobs.get(str(body.get("job") or ""))
    if job is None or job.get("kind") != "dupes":
        raise ApiError(404, "no_such_job", "give 'job': the id of a finished duplicates job")
    if job["state"] != "done":
        raise ApiError(409, "job_not_done", f"the duplicates job is {job['state']}")
    action = str(body.get("action") or DEFAULT_REVIEW_ACTION)
    dest = body.get("dest")
    if dest:
        dest = confine_target(str(dest), st.cfg.roots)
    tier = str(job["params"].get("tier", DEFAULT_TIER))
    plan = await in_thread(lambda: review_plan(job["result"], body.get("groups"), action, dest=dest, state=job,
                                               tier=tier))
    return {"plan": plan.to_json(), "operations": len(plan), "skipped": list(getattr(plan, "skipped", []))}
