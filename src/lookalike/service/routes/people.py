"""People routes of the web app: face crops, and the faces of a folder grouped by person, named, merged, a
wrong face moved out, over :mod:`lookalike.faces.people` (the same library calls as ``lookalike faces``).
Every path a request names is confined to the roots; the routes that change a face model are in
``CHANGING_ROUTES`` (they need ``--allow-changes``)."""

from __future__ import annotations

import hashlib
import io
import os
import threading
from dataclasses import replace
from pathlib import Path

from fastapi import Request
from fastapi.responses import Response

from lookalike import options
from lookalike.errors import UsageError
from lookalike.service.errors import ApiError
from lookalike.service.requests import float_field, folders_field, int_field, json_body, raw_query_param, read_json
from lookalike.service.routes import Routes
from lookalike.service.routes.jobs import start_job
from lookalike.service.security import confine, inside_roots
from lookalike.service.state import in_thread, state_of

routes = Routes(tags=["faces"])

#: One change of a face model at a time (naming reads, extends and writes the model's files).
_model_lock = threading.Lock()
FACE_SCHEMA = {"type": "object", "properties": {"path": {"type": "string"},
                                                "box": {"type": "array", "items": {"type": "integer"}}}}
PEOPLE_SCHEMA = {"type": "object", "description": "a grouping as /v1/faces/people returned it",
                 "properties": {"groups": {"type": "array"}, "alone": {"type": "array"}}}


@routes.get("/v1/faces/crop", response_class=Response)
async def face_crop(request: Request, path: str, box: str, size: int = 160) -> Response:
    """A JPEG of one face: ``box`` = ``left,top,right,bottom`` in the photo's pixels, with a margin,
    longest side ``size`` (32-512)."""
    st = state_of(request)
    path = raw_query_param(request, "path", path)
    real = confine(path, st.cfg.roots, want="file")
    size = int_field({"size": size}, "size", 160, 32, 512)
    try:
        face = [int(v) for v in box.split(",")]
    except ValueError:
        face = []
    if len(face) != 4 or not (0 <= face[0] < face[2] and 0 <= face[1] < face[3]):
        raise ApiError(400, "bad_parameter", "box must be left,top,right,bottom (whole pixels, left < right)")
    return Response(await in_thread(cached_crop, st.thumbs, real, face, size), media_type="image/jpeg",
                    headers={"Cache-Control": "private, max-age=3600"})


@routes.post("/v1/faces/people", status_code=202, openapi_extra=json_body(
    {"type": "object", "properties": {"folder": {"type": "string"}, "model": {"type": "string"},
                                      "threshold": {"type": "number"}, "min_size": {"type": "integer"}}}))
async def people_job(request: Request):
    """Group the faces of a folder by person (job). Groups whose faces the named (or active) face model
    holds carry its label. Result: a grouping ``{groups: [{id, label, size, faces: [{path, box}]}],
    alone, no_face, failed, model}``, as ``lookalike.faces.people.group_people``."""
    from lookalike.faces import people

    st = state_of(request)
    body = await read_json(request)
    folders = folders_field(body, st)
    model = model_name(body.get("model"))
    threshold = options.check_tolerance(float_field(body, "threshold", None), "threshold")  # at request time
    min_size = int_field(body, "min_size", 2, 1, 1000)

    def run(progress):
        out = people.group_people(folders, model=model, threshold=threshold, min_size=min_size,
                                  catalog=st.catalog, progress=progress)
        return grouping_inside(out, st.cfg.roots).to_json()

    return start_job(st, "faces-people", run, {"folders": folders, "model": model})


@routes.post("/v1/faces/people/merge", openapi_extra=json_body(
    {"type": "object", "required": ["people", "into", "other"], "properties": {
        "people": PEOPLE_SCHEMA, "into": {"type": "string"}, "other": {"type": "string"}}}))
async def people_merge(request: Request):
    """Merge group ``other`` into group ``into`` (refused when both hold a face of one photo); answers
    the new grouping. Changes nothing on disk."""
    from lookalike.faces import people

    st = state_of(request)
    body = await read_json(request)
    grouping = request_grouping(body, st.cfg.roots)
    return (await in_thread(people.merge_people, grouping, str(body.get("into") or ""),
                            str(body.get("other") or ""))).to_json()


@routes.post("/v1/faces/people/move", openapi_extra=json_body(
    {"type": "object", "required": ["people", "face"], "properties": {
        "people": PEOPLE_SCHEMA, "face": FACE_SCHEMA, "to": {"type": "string"}, "model": {"type": "string"}}}))
async def people_move(request: Request):
    """Move a wrong face out of its group (to group ``to``, else to the faces alone). A named group's
    face is also taken out of ``model`` (needs --allow-changes). Answers the new grouping."""
    from lookalike.faces import people

    st = state_of(request)
    st.require_changes()
    body = await read_json(request)
    grouping = request_grouping(body, st.cfg.roots)
    face = await in_thread(people.Face.from_json, body.get("face"))
    to = body.get("to")
    model = model_name(body.get("model"))

    def move():
        with _model_lock:
            return people.move_face(grouping, face, to=str(to) if to else None, model=model)

    return (await in_thread(move)).to_json()


@routes.post("/v1/faces/people/name", openapi_extra=json_body(
    {"type": "object", "required": ["people", "group", "label", "model"], "properties": {
        "people": PEOPLE_SCHEMA, "group": {"type": "string"}, "label": {"type": "string"},
        "model": {"type": "string"}}}))
async def people_name(request: Request):
    """Name a group: its faces become examples of ``label`` in face model ``model`` (created when new),
    as ``lookalike faces name`` (needs --allow-changes). Answers ``{people, report}`` (the training
    report of ``lookalike faces name --json``)."""
    from lookalike.faces import people

    st = state_of(request)
    st.require_changes()
    body = await read_json(request)
    grouping = request_grouping(body, st.cfg.roots)
    model = model_name(body.get("model"))
    if not model:
        raise ApiError(400, "bad_parameter", "give 'model': the face model that learns the name")

    def name():
        with _model_lock:
            return people.name_person(grouping, str(body.get("group") or ""), body.get("label"), model,
                                      catalog=st.catalog)

    grouped, report = await in_thread(name)
    return {"people": grouped.to_json(), "report": report.to_json()}


def model_name(raw: object) -> str | None:
    """A face model's name from the request (None when absent), checked as the face store checks it."""
    if raw is None or raw == "":
        return None
    from lookalike.faces.store import check_name

    try:
        return check_name(str(raw))
    except UsageError as exc:
        raise ApiError(400, "bad_parameter", str(exc)) from exc


def request_grouping(body: dict, roots: list[str]):
    """The request's grouping, every photo it names confined to the roots."""
    from lookalike.faces import people

    try:
        grouping = people.People.from_json(body.get("people"))
    except UsageError as exc:
        raise ApiError(400, "bad_parameter", str(exc)) from exc
    for path in {f.path for g in grouping.groups for f in g.faces} | {f.path for f in grouping.alone}:
        confine(path, roots, want="file")
    return grouping


def grouping_inside(grouping, roots: list[str]):
    """A grouping without the faces of photos outside the roots (a symlink out of a root)."""

    def keep(f) -> bool:
        return inside_roots(f.path, roots)

    groups = [replace(g, faces=[f for f in g.faces if keep(f)]) for g in grouping.groups]
    return replace(grouping, groups=[g for g in groups if g.faces], alone=[f for f in grouping.alone if keep(f)],
                   no_face=[p for p in grouping.no_face if inside_roots(p, roots)],
                   failed=[(p, e) for p, e in grouping.failed if inside_roots(p, roots)])


def cached_crop(thumbs: Path, path: str, box: list[int], size: int) -> bytes:
    """A face crop, kept beside the thumbnails (keyed by the photo's path, mtime and size, the box and
    the crop's size), so a People view of many faces decodes each photo once."""
    stt = os.stat(path)
    key = hashlib.sha1(os.fsencode(path) + f"|{stt.st_mtime_ns}|{stt.st_size}|{box}|{size}".encode()).hexdigest()
    out = thumbs / "faces" / key[:2] / f"{key}.jpg"
    if out.is_file():
        return out.read_bytes()
    data = face_crop_jpeg(path, box, size)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_suffix(f".{os.getpid()}.{threading.get_ident()}.tmp")
    tmp.write_bytes(data)
    os.replace(tmp, out)
    return data


def face_crop_jpeg(path: str, box: list[int], size: int) -> bytes:
    """The JPEG of one face with a margin of a quarter of its size, longest side ``size``."""
    from PIL import Image

    from lookalike.media import decode

    img = decode(path).image
    left, top, right, bottom = box
    pad = max(right - left, bottom - top) // 4
    region = (max(0, left - pad), max(0, top - pad), min(img.width, right + pad), min(img.height, bottom + pad))
    if region[0] >= region[2] or region[1] >= region[3]:
        raise ApiError(400, "bad_parameter", "the box lies outside the picture")
    face = img.crop(region).convert("RGB")
    face.thumbnail((size, size), Image.Resampling.LANCZOS)
    buf = io.BytesIO()
    face.save(buf, "JPEG", quality=85)
    return buf.getvalue()
