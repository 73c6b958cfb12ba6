"""Picture routes: a picture's feature vector, the pictures most like it, cached thumbnails."""

from __future__ import annotations

import hashlib
import io
import os
from pathlib import Path

import numpy as np
from fastapi import Request
from fastapi.responses import Response
from PIL import Image

from lookalike import options
from lookalike.collection import Collection
from lookalike.export import feature_values
from lookalike.media import decode
from lookalike.service.errors import JSONResponse
from lookalike.service.matrix_cache import rank
from lookalike.service.requests import IMAGE_BODY, ImageRequest, int_field, model_field, raw_query_param, read_image
from lookalike.service.routes import Routes
from lookalike.service.security import confine
from lookalike.service.state import State, in_thread, state_of

routes = Routes(tags=["images"])


def embed_request(st: State, inp: ImageRequest, model: str) -> np.ndarray:
    """The feature vector of a request's picture, through the model pool (batched)."""
    ext = st.models.get(model)
    img = decode(inp.source(), min_side=ext.decode_min_side).image
    return st.models.embed_images(model, [img])[0]


@routes.post("/v1/embed", openapi_extra=IMAGE_BODY)
async def embed(request: Request) -> JSONResponse:
    """The picture's feature vector: ``{"model", "vector"}`` (hash models: 0/1 bits)."""
    st = state_of(request)
    inp = await read_image(request, st)
    model = model_field(inp.fields)
    vec = await in_thread(embed_request, st, inp, model)
    return JSONResponse({"model": model, "vector": feature_values(vec, st.models.get(model).kind)})


def similar_to(st: State, inp: ImageRequest, model: str, k: int, folder: str | None) -> dict:
    """``lookalike similar --json``'s JSON for a request's picture, over a folder or the catalog."""
    if inp.path is not None:
        qvec = Collection(inp.path, catalog=st.catalog).feature_of(inp.path, model)
        st.metrics.inc("lookalike_cache_hits_total", cache="catalog_feature")
    else:
        qvec = embed_request(st, inp, model)
    entry = st.matrices.folder_scope(folder, model) if folder else st.matrices.catalog_scope(model)
    return rank(entry, qvec, k, model, inp.name, exclude=inp.path).to_json()


@routes.post("/v1/similar", openapi_extra=IMAGE_BODY)
async def similar(request: Request) -> JSONResponse:
    """The k most similar pictures (fields: ``k`` = 5, ``model``, ``folder``; no folder: the catalog)."""
    st = state_of(request)
    inp = await read_image(request, st)
    model = model_field(inp.fields)
    k = int_field(inp.fields, "k", 5)
    options.check_k(k)
    folder = inp.fields.get("folder")
    folder = confine(str(folder), st.cfg.roots, want="dir") if folder else None
    return JSONResponse(await in_thread(similar_to, st, inp, model, k, folder))


def thumbnail_file(st: State, path: str, size: int) -> Path:
    """The cached JPEG thumbnail of a picture (made now when missing or out of date)."""
    stt = os.stat(path)
    key = hashlib.sha1(os.fsencode(path) + f"|{stt.st_mtime_ns}|{stt.st_size}|{size}".encode()).hexdigest()
    out = st.thumbs / key[:2] / f"{key}.jpg"
    if out.is_file():
        st.metrics.inc("lookalike_cache_hits_total", cache="thumbnail")
        return out
    st.metrics.inc("lookalike_cache_misses_total", cache="thumbnail")
    img = decode(path, min_side=size).image
    img.thumbnail((size, size), Image.Resampling.LANCZOS)
    out.parent.mkdir(parents=True, exist_ok=True)
    buf = io.BytesIO()
    img.save(buf, "JPEG", quality=82)
    tmp = out.with_suffix(f".{os.getpid()}.tmp")
    tmp.write_bytes(buf.getvalue())
    os.replace(tmp, out)
    return out


@routes.get("/v1/thumb", response_class=Response)
async def thumb(request: Request, path: str, size: int = 256) -> Response:
    """A cached JPEG thumbnail (longest side ``size``, 32-1024) of a picture under a root. ``path``
    is percent-encoded bytes: UTF-8, or the raw bytes of a name that is not UTF-8."""
    st = state_of(request)
    path = raw_query_param(request, "path", path)
    real = confine(path, st.cfg.roots, want="file")
    size = int_field({"size": size}, "size", 256, 32, 1024)
    out = await in_thread(thumbnail_file, st, real, size)
    return Response(out.read_bytes(), media_type="image/jpeg", headers={"Cache-Control": "private, max-age=3600"})
