"""Duplicate routes: a duplicate search (a job, as ``lookalike dupes --json``) and the journal plan for
a reviewed result (as ``lookalike dupes --action ... --plan``)."""

from __future__ import annotations

from dataclasses import fields as dataclass_fields

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
    from lookalike.dupes import find_duplicates

    st = state_of(request)
    body = await read_json(request)
    paths = folders_field(body, st)
    tier = str(body.get("tier") or "near")
    threshold = float_field(body, "threshold", None)
    keep = body.get("keep")
    keep_in = [dir_field(p, st) for p in (body.get("keep_in") or [])]
    options.check_dupes_options(tier, threshold, keep=keep)

    def run(progress):
        report = find_duplicates(paths, tier=tier, threshold=threshold, keep=keep, keep_in=keep_in,
                                 catalog=st.catalog, progress=progress)
        # the content hashes the search saw, for the review's plan: a file changed since is left out
        hashes = {}
        for g in report.groups:
            hashes[g.keep] = getattr(g, "keep_sha256", "")
            hashes.update({m.path: getattr(m, "sha256", "") for m in g.members})
        return JobOutput(report.to_json(), {"hashes": {p: h for p, h in hashes.items() if h}})

    return start_job(st, "dupes", run, {"folders": paths, "tier": tier, "threshold": threshold})


@routes.post("/v1/dupes/plan", tags=["changes"], openapi_extra=json_body(
    {"type": "object", "required": ["job", "groups"], "properties": {
        "job": {"type": "string"}, "action": {"type": "string"}, "dest": {"type": "string"},
        "groups": {"type": "array", "items": {"type": "object", "properties": {
            "keep": {"type": "string"}, "members": {"type": "array", "items": {"type": "string"}}}}}}}))
async def dupes_plan(request: Request):
    """The journal plan for a reviewed duplicates result: per group the chosen keeper and the members
    to act on (each must belong to that group of the job's result). Built by ``lookalike.dupes.plan_for``,
    exactly as ``lookalike dupes --action ... --plan``; apply it with ``/v1/plans/apply``."""
    from lookalike.dupes import plan_for

    st = state_of(request)
    body = await read_json(request)
    job = st.jobs.get(str(body.get("job") or ""))
    if job is None or job.get("kind") != "dupes":
        raise ApiError(404, "no_such_job", "give 'job': the id of a finished duplicates job")
    if job["state"] != "done":
        raise ApiError(409, "job_not_done", f"the duplicates job is {job['state']}")
    action = str(body.get("action") or "trash")
    dest = body.get("dest")
    if dest:
        dest = confine_target(str(dest), st.cfg.roots)
    report = reviewed_report(job, body.get("groups"))
    plan = await in_thread(lambda: plan_for(report, action, dest=dest))
    return {"plan": plan.to_json(), "operations": len(plan), "skipped": list(getattr(plan, "skipped", []))}


def reviewed_report(job: dict, groups: object):
    """A DupesReport from the job's result with the reviewer's keepers and ticked members."""
    from lookalike.dupes import DupesReport, Group, Member

    if not isinstance(groups, list):
        raise ApiError(400, "bad_parameter", "give 'groups': [{keep, members}] from the review")
    original = job["result"]["groups"]
    hashes = job.get("hashes") if isinstance(job.get("hashes"), dict) else {}
    where: dict[str, tuple[int, dict]] = {}
    for n, g in enumerate(original):
        where[g["keep"]] = (n, {"path": g["keep"], "tier": "exact", "score": 1.0, "keeper": True,
                                "sha256": g.get("keep_sha256") or hashes.get(g["keep"])})
        for m in g["members"]:
            where[m["path"]] = (n, {**m, "sha256": m.get("sha256") or hashes.get(m["path"])})
    out = []
    for g in groups:
        if not isinstance(g, dict) or not isinstance(g.get("keep"), str):
            raise ApiError(400, "bad_parameter", "each group needs 'keep' (a path) and 'members' (paths)")
        members = [str(p) for p in g.get("members") or []]
        ids = {where.get(p, (None,))[0] for p in [g["keep"], *members]}
        if None in ids or len(ids) != 1:
            raise ApiError(400, "bad_parameter", "a reviewed group may only hold files of one group of the job")
        if g["keep"] in members:
            raise ApiError(400, "bad_parameter", "the keeper cannot also be a member to act on")
        keep = where[g["keep"]][1]
        picked = []
        for p in members:
            m = where[p][1]
            # the search's keeper, now acted on: it is to the new keeper what the new keeper was to it
            rel = keep if m.get("keeper") and not keep.get("keeper") else m
            picked.append(Member(p, rel.get("tier", "near"), float(rel.get("score", 1.0)),
                                 **_hash_of(Member, "sha256", m.get("sha256"))))
        if picked:
            out.append(Group(keep=g["keep"], reason="chosen in review", members=picked,
                             **_hash_of(Group, "keep_sha256", keep.get("sha256"))))
    return DupesReport(tier=str(job["params"].get("tier", "near")), groups=out)


def _hash_of(cls, name: str, value) -> dict:
    """``{name: value}`` when the report class has that field and the job's result gave a hash (so the
    plan checks that nothing changed since the search), else nothing (the plan hashes afresh)."""
    if isinstance(value, str) and value and any(f.name == name for f in dataclass_fields(cls)):
        return {name: value}
    return {}
