"""Organise routes: a similarity sort and clustering (jobs), as ``lookalike sort|cluster --json``."""

from __future__ import annotations

from fastapi import Request

from lookalike import options
from lookalike.organise import cluster_folder, sort_folder
from lookalike.organise.cluster import DEFAULT_METHOD, DEFAULT_MIN_SIZE, DEFAULT_SIM, DEFAULT_TIME_WEIGHT, METHODS
from lookalike.service.requests import (
    FOLDER_SCHEMA,
    float_field,
    folders_field,
    int_field,
    json_body,
    model_field,
    read_json,
)
from lookalike.service.routes import Routes
from lookalike.service.routes.jobs import start_model_job
from lookalike.service.state import state_of

routes = Routes(tags=["jobs"])


@routes.post("/v1/sort", status_code=202, openapi_extra=json_body(
    {"type": "object", "properties": {**FOLDER_SCHEMA, "model": {"type": "string"}}}))
async def sort(request: Request):
    """Start a similarity sort (job); result: ``{"order": [...]}`` as ``lookalike sort --json``."""
    st = state_of(request)
    body = await read_json(request)
    paths = folders_field(body, st)
    model = model_field(body)

    return start_model_job(st, "sort", paths, model,
                           lambda progress: sort_folder(paths, model, catalog=st.catalog, progress=progress))


@routes.post("/v1/cluster", status_code=202, openapi_extra=json_body(
    {"type": "object", "properties": {**FOLDER_SCHEMA, "sim": {"type": "number"}, "method": {"type": "string"},
                                      "min_size": {"type": "integer"}, "time_weight": {"type": "number"},
                                      "model": {"type": "string"}}}))
async def cluster(request: Request):
    """Start clustering (job); result as ``lookalike cluster --json``."""
    st = state_of(request)
    body = await read_json(request)
    paths = folders_field(body, st)
    model = model_field(body)
    sim = float_field(body, "sim", DEFAULT_SIM)
    method = str(body.get("method") or DEFAULT_METHOD)
    min_size = int_field(body, "min_size", DEFAULT_MIN_SIZE, 1, 1_000_000)
    time_weight = float_field(body, "time_weight", DEFAULT_TIME_WEIGHT)
    options.check_cluster_options(sim, min_size, time_weight, method, METHODS)

    def run(progress):
        return cluster_folder(paths, sim, method, min_size, time_weight, model, catalog=st.catalog,
                              progress=progress)

    return start_model_job(st, "cluster", paths, model, run, sim=sim)
