"""Reading requests: JSON bodies, picture uploads or paths, query parameters and the checks of their
fields (paths confined to the roots; numbers and choices by :mod:`lookalike.options`). Also the
OpenAPI descriptions of those bodies."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl

from starlette.datastructures import UploadFile
from starlette.requests import Request

from lookalike.features import DEFAULT_MODEL, registry
from lookalike.service.errors import ApiError
from lookalike.service.security import check_upload, confine, is_json_type, is_multipart_type
from lookalike.service.state import State

#: OpenAPI request body of the picture routes: a multipart upload or a JSON path.
IMAGE_BODY = {
    "requestBody": {
        "required": True,
        "content": {
            "multipart/form-data": {
                "schema": {"type": "object", "required": ["file"],
                           "properties": {"file": {"type": "string", "format": "binary"}}},
            },
            "application/json": {
                "schema": {"type": "object", "required": ["path"],
                           "properties": {"path": {"type": "string", "description": "file under a --root"}}},
            },
        },
    }
}
#: OpenAPI properties of the routes over folders.
FOLDER_SCHEMA = {"folder": {"type": "string"}, "folders": {"type": "array", "items": {"type": "string"}}}


def json_body(schema: dict) -> dict:
    """OpenAPI ``openapi_extra`` for a route whose body is JSON of this schema."""
    return {"requestBody": {"required": True, "content": {"application/json": {"schema": schema}}}}


@dataclass
class ImageRequest:
    """One request's picture: uploaded bytes or a confined path, plus the request's other fields."""

    data: bytes | None = None
    path: str | None = None
    fields: dict[str, Any] = field(default_factory=dict)

    @property
    def name(self) -> str:
        return self.path or "<upload>"

    def source(self) -> str | bytes:
        """What the library reads: the path, or the uploaded bytes."""
        return self.path if self.path is not None else self.data  # type: ignore[return-value]


async def read_json(request: Request, *, optional: bool = False) -> dict:
    """The request's JSON object. Only ``Content-Type: application/json`` (a browser cannot send it
    to another origin without asking first). ``optional``: an empty body reads as ``{}``."""
    if optional and not await request.body():
        return {}
    if not is_json_type(request.headers.get("content-type")):
        raise ApiError(415, "unsupported_media_type", "send a JSON body (Content-Type: application/json)")
    try:
        body = await request.json()
    except ValueError as exc:
        raise ApiError(400, "bad_json", "the body is not valid JSON") from exc
    if not isinstance(body, dict):
        raise ApiError(400, "bad_json", "the JSON body must be an object")
    return body


async def read_image(request: Request, st: State) -> ImageRequest:
    """Parse an image request: multipart ``file`` upload or JSON ``path``."""
    ctype = request.headers.get("content-type", "")
    if is_multipart_type(ctype):
        form = await request.form(max_files=1, max_fields=50)
        upload = form.get("file")
        if not isinstance(upload, UploadFile):
            raise ApiError(400, "missing_file", "multipart requests need the picture in the field 'file'")
        data = await upload.read(st.cfg.max_upload_bytes + 1)
        await upload.close()
        check_upload(data, st.cfg.max_upload_bytes, st.cfg.max_pixels)
        fields = {k: v for k, v in form.items() if k != "file" and isinstance(v, str)}
        return ImageRequest(data=data, fields=fields)
    if is_json_type(ctype):
        body = await read_json(request)
        if "path" not in body:
            raise ApiError(400, "missing_path", "JSON requests need a 'path' (or upload the picture as 'file')")
        path = confine(body["path"], st.cfg.roots, want="file")
        return ImageRequest(path=path, fields={k: v for k, v in body.items() if k != "path"})
    raise ApiError(415, "unsupported_media_type", "send multipart/form-data with 'file', or JSON with 'path'")


def raw_query_param(request: Request, name: str, default: str | None) -> str | None:
    """A query parameter decoded as the file system decodes names (surrogate escapes for bytes that
    are not UTF-8), where Starlette would replace such bytes with U+FFFD."""
    qs = request.scope.get("query_string", b"").decode("latin-1")
    for k, v in parse_qsl(qs, keep_blank_values=True, encoding="utf-8", errors="surrogateescape"):
        if k == name:
            return v
    return default


def int_field(fields: dict, name: str, default: int, lo: int = 1, hi: int = 10_000) -> int:
    """An integer field in ``lo..hi`` (400 otherwise)."""
    raw = fields.get(name, default)
    try:
        v = int(raw)
    except (TypeError, ValueError) as exc:
        raise ApiError(400, "bad_parameter", f"{name} must be an integer") from exc
    if not lo <= v <= hi:
        raise ApiError(400, "bad_parameter", f"{name} must be between {lo} and {hi}")
    return v


def float_field(fields: dict, name: str, default: float | None) -> float | None:
    """A number field (``default`` when absent or empty; 400 when not a number)."""
    raw = fields.get(name, default)
    if raw is None or raw == "":
        return default
    try:
        return float(raw)
    except (TypeError, ValueError) as exc:
        raise ApiError(400, "bad_parameter", f"{name} must be a number") from exc


def bool_field(fields: dict, name: str) -> bool:
    """A yes/no field as a form sends it (``1``/``true``/``yes``/``on``) or a JSON boolean."""
    return str(fields.get(name, "false")).lower() in ("1", "true", "yes", "on")


def model_field(fields: dict) -> str:
    """The ``model`` field (the default model when absent); an unknown name is a model error."""
    name = str(fields.get("model") or DEFAULT_MODEL)
    registry.get_spec(name)  # raises ModelError for unknown names
    return name


def dir_field(value: object, st: State) -> str:
    """A folder named by the request, confined to the roots."""
    return confine(str(value), st.cfg.roots, want="dir")


def folders_field(fields: dict, st: State) -> list[str]:
    """The ``folder`` or ``folders`` field: folders under a root (400 when missing)."""
    raw = fields.get("folders", fields.get("folder"))
    if raw is None or raw == "" or raw == []:
        raise ApiError(400, "missing_folder", "give 'folder' (or 'folders'): a folder under a --root")
    items = raw if isinstance(raw, list) else [raw]
    return [dir_field(f, st) for f in items]
