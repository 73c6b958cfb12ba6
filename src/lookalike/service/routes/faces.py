"""Face routes: detect, recognise (as ``lookalike faces recognize --json``), train a face model (a job),
list face models and pick the active one."""

from __future__ import annotations

from dataclasses import asdict, is_dataclass
from typing import Any

from fastapi import Request

from lookalike.service.errors import ApiError
from lookalike.service.requests import (
    ImageRequest,
    bool_field,
    dir_field,
    float_field,
    int_field,
    read_image,
    read_json,
)
from lookalike.service.routes import Routes
from lookalike.service.routes.jobs import start_job
from lookalike.service.state import in_thread, state_of

routes = Routes(tags=["faces"])


def as_json(obj: Any) -> Any:
    """A library result as JSON: its ``to_json()``, a dataclass's fields, or the value itself."""
    if obj is None or isinstance(obj, str | int | float | bool | list | dict):
        return obj
    if hasattr(obj, "to_json"):
        return obj.to_json()
    if is_dataclass(obj):
        return asdict(obj)
    return str(obj)


def detect_faces(inp: ImageRequest) -> dict:
    """Every face found in a request's picture."""
    from lookalike import faces

    return {"query": inp.name, "faces": [as_json(f) for f in faces.detect(inp.source())]}


@routes.post("/v1/faces/detect")
async def faces_detect(request: Request):
    """Faces in a picture (upload or path)."""
    inp = await read_image(request, state_of(request))
    return await in_thread(detect_faces, inp)


@routes.post("/v1/faces/recognize")
async def faces_recognize(request: Request):
    """Who is in a picture: as ``lookalike faces recognize --json``."""
    from lookalike import faces

    st = state_of(request)
    inp = await read_image(request, st)
    k = int_field(inp.fields, "k", 5)
    tolerance = float_field(inp.fields, "tolerance", None)
    direct = bool_field(inp.fields, "direct")
    model = inp.fields.get("model") or None
    return await in_thread(lambda: faces.recognize(inp.source(), k=k, model=model, tolerance=tolerance,
                                                   direct=direct, catalog=st.catalog).to_json())


@routes.post("/v1/faces/train", status_code=202)
async def faces_train(request: Request):
    """Train a face model from a folder with one sub-folder per person (job; needs --allow-changes)."""
    from lookalike import faces

    st = state_of(request)
    st.require_changes()
    body = await read_json(request)
    dataset = dir_field(body.get("dataset") or body.get("folder") or "", st)
    name = str(body.get("model") or "")
    if not name:
        raise ApiError(400, "bad_parameter", "give 'model': the name of the face model to train")

    def run(progress):
        return as_json(faces.train(dataset, name, progress=progress, catalog=st.catalog))

    return start_job(st, "faces-train", run, {"dataset": dataset, "model": name})


@routes.get("/v1/faces/models")
async def faces_models():
    """Face models and which one is active."""
    from lookalike import faces

    return await in_thread(lambda: {"models": faces.list_face_models(), "active": faces.active_face_model()})


@routes.put("/v1/faces/models/active")
async def faces_use(request: Request):
    """Make a face model the active one: ``{"name": ...}`` (needs --allow-changes)."""
    from lookalike import faces

    st = state_of(request)
    st.require_changes()
    body = await read_json(request)
    name = str(body.get("name") or "")
    if not name:
        raise ApiError(400, "bad_parameter", "give 'name': the face model to make active")
    await in_thread(faces.use_face_model, name)
    return {"active": name}
