"""The index route: index folders into the catalog (a job), as ``lookalike index``."""

from __future__ import annotations

from fastapi import Request

from lookalike.service.errors import JSONResponse
from lookalike.service.requests import folders_field, json_body, model_field, read_json
from lookalike.service.routes import Routes
from lookalike.service.routes.jobs import start_model_job
from lookalike.service.state import state_of

routes = Routes(tags=["jobs"])


@routes.post("/v1/index", status_code=202, openapi_extra=json_body(
    {"type": "object", "properties": {"folder": {"type": "string"}, "folders": {"type": "array"},
                                      "model": {"type": "string"}}}))
async def index_job(request: Request) -> JSONResponse:
    """Index folders into the catalog (job): makes catalog-wide ``similar`` see them. Result as
    ``lookalike index --json``."""
    st = state_of(request)
    body = await read_json(request)
    paths = folders_field(body, st)
    model = model_field(body)

    def run(progress):
        from lookalike.index import index_paths

        return index_paths(paths, st.catalog, [model], progress=progress)

    return start_model_job(st, "index", paths, model, run)
