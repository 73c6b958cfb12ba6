"""Routes over the feature packages (duplicates, organise, journal, faces). Each calls the same library
function as its CLI command; while a package is not part of the build its routes answer 501."""

from __future__ import annotations

from fastapi import FastAPI, Request

from lookalike import options
from lookalike.dupes.finder import DEFAULT_TIER
from lookalike.dupes.review import DEFAULT_REVIEW_ACTION
from lookalike.organise.cluster import DEFAULT_METHOD, DEFAULT_MIN_SIZE, DEFAULT_SIM, DEFAULT_TIME_WEIGHT, METHODS
from lookalike.service.app import (
    State,
    feature_import,
    float_field,
    folders_field,
    in_thread,
    int_field,
    json_body,
    model_field,
    read_image,
    read_json,
    require_changes,
)
from lookalike.service.errors import ApiError
from lookalike.service.jobs import JobOutput

FOLDER_SCHEMA = {"folder": {"type": "string"}, "folders": {"type": "array", "items": {"type": "string"}}}


def register(app: FastAPI, st: State, start_job) -> None:
    cfg = st.cfg

    @app.post("/v1/dupes", tags=["jobs"], status_code=202, openapi_extra=json_body(
        {"type": "object", "properties": {**FOLDER_SCHEMA, "tier": {"type": "string"}, "threshold": {"type": "number"},
                                          "keep": {"type": "string"}, "keep_in": {"type": "array"}}}))
    async def dupes(request: Request):
        """Start a duplicate search (job); its result is ``lookalike dupes --json``'s JSON."""
        body = await read_json(request)
        paths = folders_field(body, st)
        mod = feature_import("lookalike.dupes", "duplicate finding")
        tier = str(body.get("tier") or DEFAULT_TIER)
        threshold = float_field(body, "threshold", None)
        keep = body.get("keep")
        keep_in = [_confine_dir(p, st) for p in (body.get("keep_in") or [])]
        options.check_dupes_options(tier, threshold, keep=keep)

        def run(progress):
            report = mod.find_duplicates(paths, tier=tier, threshold=threshold, keep=keep, keep_in=keep_in,
                                         catalog=st.catalog, progress=progress)
            return JobOutput(report.to_json(), mod.review_state(report))  # hashes seen, --keep-in files

        return start_job("dupes", run, {"folders": paths, "tier": tier, "threshold": threshold})

    @app.post("/v1/dupes/plan", tags=["changes"], openapi_extra=json_body(
        {"type": "object", "required": ["job", "groups"], "properties": {
            "job": {"type": "string"}, "action": {"type": "string"}, "dest": {"type": "string"},
            "groups": {"type": "array", "items": {"type": "object", "properties": {
                "keep": {"type": "string"}, "members": {"type": "array", "items": {"type": "string"}}}}}}}))
    async def dupes_plan(request: Request):
        """The journal plan for a reviewed duplicates result: per group the chosen keeper and the members
        to act on (each must belong to that group of the job's result). Built by ``lookalike.dupes.plan_for``,
        exactly as ``lookalike dupes --action ... --plan``; apply it with ``/v1/plans/apply``."""
        body = await read_json(request)
        mod = feature_import("lookalike.dupes", "duplicate finding")
        job = st.jobs.get(str(body.get("job") or ""))
        if job is None or job.get("kind") != "dupes":
            raise ApiError(404, "no_such_job", "give 'job': the id of a finished duplicates job")
        if job["state"] != "done":
            raise ApiError(409, "job_not_done", f"the duplicates job is {job['state']}")
        action = str(body.get("action") or DEFAULT_REVIEW_ACTION)
        dest = body.get("dest")
        if dest:
            from lookalike.service.security import confine_target

            dest = confine_target(str(dest), st.cfg.roots)
        plan = await in_thread(lambda: mod.review_plan(job["result"], body.get("groups"), action, dest=dest,
                                                       state=job, tier=str(job["params"].get("tier", DEFAULT_TIER))))
        return {"plan": plan.to_json(), "operations": len(plan), "skipped": list(getattr(plan, "skipped", []))}

    @app.post("/v1/sort", tags=["jobs"], status_code=202, openapi_extra=json_body(
        {"type": "object", "properties": {**FOLDER_SCHEMA, "model": {"type": "string"}}}))
    async def sort(request: Request):
        """Start a similarity sort (job); result: ``{"order": [...]}`` as ``lookalike sort --json``."""
        body = await read_json(request)
        paths = folders_field(body, st)
        model = model_field(body)
        mod = feature_import("lookalike.organise", "sorting")

        def run(progress):
            st.models.touch(model)
            return mod.sort_folder(paths, model, catalog=st.catalog, progress=progress).to_json()

        return start_job("sort", run, {"folders": paths, "model": model})

    @app.post("/v1/cluster", tags=["jobs"], status_code=202, openapi_extra=json_body(
        {"type": "object", "properties": {**FOLDER_SCHEMA, "sim": {"type": "number"}, "method": {"type": "string"},
                                          "min_size": {"type": "integer"}, "time_weight": {"type": "number"},
                                          "model": {"type": "string"}}}))
    async def cluster(request: Request):
        """Start clustering (job); result as ``lookalike cluster --json``."""
        body = await read_json(request)
        paths = folders_field(body, st)
        model = model_field(body)
        sim = float_field(body, "sim", DEFAULT_SIM)
        method = str(body.get("method") or DEFAULT_METHOD)
        min_size = int_field(body, "min_size", DEFAULT_MIN_SIZE, 1, 1_000_000)
        time_weight = float_field(body, "time_weight", DEFAULT_TIME_WEIGHT)
        options.check_cluster_options(sim, min_size, time_weight, method, METHODS)
        mod = feature_import("lookalike.organise", "clustering")

        def run(progress):
            st.models.touch(model)
            return mod.cluster_folder(paths, sim, method, min_size, time_weight, model, catalog=st.catalog,
                                      progress=progress).to_json()

        return start_job("cluster", run, {"folders": paths, "model": model, "sim": sim})

    # ---- journal: apply and undo (mutating) ----
    @app.post("/v1/plans/apply", tags=["changes"])
    async def apply(request: Request):
        """Apply a journal plan (needs --allow-changes). Every path in it must lie under a root."""
        require_changes(st)
        body = await read_json(request)
        journal = feature_import("lookalike.journal", "applying plans")
        return await in_thread(_apply, journal, body, st)

    @app.post("/v1/undo", tags=["changes"])
    async def undo(request: Request):
        """Undo a journal (without ``journal``: the newest run not yet undone); needs --allow-changes."""
        require_changes(st)
        body = await read_json(request, optional=True)
        journal = feature_import("lookalike.journal", "undo")
        return await in_thread(_undo, journal, body.get("journal"), st)

    # ---- faces ----
    @app.post("/v1/faces/detect", tags=["faces"])
    async def faces_detect(request: Request):
        """Faces in a picture (upload or path)."""
        inp = await read_image(request, st)
        faces = feature_import("lookalike.faces", "face detection")
        return await in_thread(_faces_detect, faces, inp)

    @app.post("/v1/faces/recognize", tags=["faces"])
    async def faces_recognize(request: Request):
        """Who is in a picture: as ``lookalike faces recognize --json``."""
        inp = await read_image(request, st)
        faces = feature_import("lookalike.faces", "face recognition")
        k = int_field(inp.fields, "k", 5)
        tolerance = float_field(inp.fields, "tolerance", None)
        direct = str(inp.fields.get("direct", "false")).lower() in ("1", "true", "yes", "on")
        model = inp.fields.get("model") or None
        return await in_thread(lambda: faces.recognize(_image_arg(inp), k=k, model=model, tolerance=tolerance,
                                                       direct=direct, catalog=st.catalog).to_json())

    @app.post("/v1/faces/train", tags=["faces"], status_code=202)
    async def faces_train(request: Request):
        """Train a face model from a folder with one sub-folder per person (job; needs --allow-changes)."""
        require_changes(st)
        body = await read_json(request)
        dataset = _confine_dir(body.get("dataset") or body.get("folder") or "", st)
        name = str(body.get("model") or "")
        if not name:
            raise ApiError(400, "bad_parameter", "give 'model': the name of the face model to train")
        faces = feature_import("lookalike.faces", "face training")

        def run(progress):
            return _to_json(faces.train(dataset, name, progress=progress, catalog=st.catalog))

        return start_job("faces-train", run, {"dataset": dataset, "model": name})

    @app.get("/v1/faces/models", tags=["faces"])
    async def faces_models():
        """Face models and which one is active."""
        faces = feature_import("lookalike.faces", "face models")
        return await in_thread(lambda: {"models": faces.list_face_models(), "active": faces.active_face_model()})

    @app.put("/v1/faces/models/active", tags=["faces"])
    async def faces_use(request: Request):
        """Make a face model the active one: ``{"name": ...}`` (needs --allow-changes)."""
        require_changes(st)
        body = await read_json(request)
        name = str(body.get("name") or "")
        if not name:
            raise ApiError(400, "bad_parameter", "give 'name': the face model to make active")
        faces = feature_import("lookalike.faces", "face models")
        await in_thread(faces.use_face_model, name)
        return {"active": name}

    _ = cfg


def _confine_dir(path: str, st: State) -> str:
    from lookalike.service.security import confine

    return confine(str(path), st.cfg.roots, want="dir")


def _image_arg(inp):
    return inp.path if inp.path is not None else inp.data


def _to_json(obj):
    if obj is None or isinstance(obj, str | int | float | bool | list | dict):
        return obj
    if hasattr(obj, "to_json"):
        return obj.to_json()
    from dataclasses import asdict, is_dataclass

    if is_dataclass(obj):
        return asdict(obj)
    return str(obj)


def _faces_detect(faces, inp) -> dict:
    found = faces.detect(_image_arg(inp))
    return {"query": inp.name, "faces": [_to_json(f) for f in found]}


def _plan_paths_confined(plan, roots: list[str]) -> None:
    """Every path a plan touches (sources, destinations, link targets, keepers) must lie under a root."""
    from lookalike.service.security import confine_target

    for op in plan:
        for name in ("src", "dst", "path", "target", "keep"):
            value = getattr(op, name, None)
            if value:
                confine_target(str(value), roots)


def _apply(journal, body: dict, st: State) -> dict:
    raw = body.get("plan")
    if not isinstance(raw, dict | list):
        raise ApiError(400, "bad_plan", "give 'plan': a plan as `lookalike dupes --plan` writes it")
    plan = journal.Plan.from_json(raw)
    if not len(plan):
        raise ApiError(400, "bad_plan", "the plan has no operations")
    _plan_paths_confined(plan, st.cfg.roots)
    dry_run = bool(body.get("dry_run", False))
    return journal.apply_plan(plan, dry_run=dry_run).to_json()


def _undo(journal, which: str | None, st: State) -> dict:
    """Undo a journal by id (the name of its folder), or the latest one; only journals whose every
    path lies under the served roots."""
    from lookalike.config import journal_dir

    if which is not None:
        which = str(which)
        if not which or "/" in which or "\\" in which or which.startswith("."):
            raise ApiError(400, "bad_journal", "give the journal's id (as apply returned it), not a path")
        target = journal_dir() / which
        if not target.is_dir():
            raise ApiError(404, "no_such_journal", f"no journal {which}")
    else:
        from lookalike.errors import UsageError

        try:  # the one rule for "the latest": the newest run not yet undone (as `lookalike undo`)
            target = journal.latest_to_undo().folder
        except UsageError as exc:
            raise ApiError(404, "no_such_journal", str(exc)) from None
    ops = journal.show_journal(str(target))
    for rec in ops.get("operations", []) if isinstance(ops, dict) else []:
        for name in ("src", "dst", "path", "target", "keep"):
            if rec.get(name):
                from lookalike.service.security import confine_target

                confine_target(str(rec[name]), st.cfg.roots)
    return journal.undo(target).to_json()
