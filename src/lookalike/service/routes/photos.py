"""Photo routes of the web app's folder browser and compare view: the pictures of a folder (the grid) and
a picture at full resolution (the zoom). Every path is confined to the roots."""

from __future__ import annotations

import io
import os

import anyio
from fastapi import Request
from fastapi.responses import Response

from lookalike.service.requests import raw_query_param
from lookalike.service.routes import Routes
from lookalike.service.security import confine, paths_inside
from lookalike.service.state import in_thread, state_of

routes = Routes()

#: The most photos one folder listing names (the grid asks for thumbnails as they come into view).
MAX_LISTED = 5000
#: Formats a browser shows as they are (others are sent as a JPEG).
BROWSER_FORMATS = {"JPEG": "image/jpeg", "PNG": "image/png", "GIF": "image/gif", "WEBP": "image/webp"}


def folder_listing(real: str, roots: list[str]) -> dict:
    """The pictures directly in a folder (at most :data:`MAX_LISTED`, those under the roots) and its sub-folders."""
    from lookalike.media import iter_images

    found = []
    for p in iter_images([real], recursive=False):
        found.append(p)
        if len(found) > MAX_LISTED:
            break
    inside = paths_inside(found[:MAX_LISTED], roots)
    with os.scandir(real) as it:
        folders = sorted(e.path for e in it if e.is_dir(follow_symlinks=False) and not e.name.startswith("."))
    return {"path": real, "folders": folders, "photos": inside, "truncated": len(found) > MAX_LISTED}


@routes.get("/v1/photos", tags=["service"])
async def photos(request: Request, path: str) -> dict:
    """The pictures directly in a folder under a root (by name) and its sub-folders: the folder
    browser's grid. ``truncated`` when there are more than 5000."""
    roots = state_of(request).cfg.roots
    path = raw_query_param(request, "path", path)
    real = confine(path, roots, want="dir")
    return await anyio.to_thread.run_sync(folder_listing, real, roots)


def full_picture(path: str) -> tuple[bytes, str]:
    """The file itself when a browser shows its format, else a JPEG of it (longest side at most 4096)."""
    from PIL import Image, UnidentifiedImageError

    from lookalike.media import decode
    from lookalike.media.files import read_regular

    data = read_regular(path)  # a FIFO or device named like a picture is refused, not waited on
    try:
        fmt = Image.open(io.BytesIO(data)).format
    except (UnidentifiedImageError, OSError):
        fmt = None
    if fmt in BROWSER_FORMATS:
        return data, BROWSER_FORMATS[fmt]
    img = decode(data).image.convert("RGB")
    img.thumbnail((4096, 4096), Image.Resampling.LANCZOS)
    buf = io.BytesIO()
    img.save(buf, "JPEG", quality=92)
    return buf.getvalue(), "image/jpeg"


@routes.get("/v1/photo", tags=["images"], response_class=Response)
async def photo(request: Request, path: str) -> Response:
    """A picture under a root at full resolution, for the compare view's zoom: the file itself when a
    browser shows its format (JPEG, PNG, GIF, WebP), else a JPEG of it (longest side at most 4096)."""
    path = raw_query_param(request, "path", path)
    real = confine(path, state_of(request).cfg.roots, want="file")
    data, media = await in_thread(full_picture, real)
    return Response(data, media_type=media, headers={"Cache-Control": "private, max-age=3600"})
