"""Pictures of a clustering, drawn with Pillow: one contact sheet per group, and a dendrogram."""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from lookalike.errors import DecodeError
from lookalike.media import decode

THUMB = 160
MAX_PER_SHEET = 100


def contact_sheet(paths: Sequence[str], dest: str | Path, thumb: int = THUMB, columns: int | None = None) -> Path:
    """A grid of thumbnails (with file names) of ``paths``, saved as JPEG at ``dest``; at most 100 shown."""
    shown = list(paths)[:MAX_PER_SHEET]
    cols = columns or max(1, math.ceil(math.sqrt(len(shown))))
    rows = max(1, math.ceil(len(shown) / cols))
    label_h = 14
    pad = 4
    cell_w, cell_h = thumb + pad, thumb + label_h + pad
    extra = len(paths) - len(shown)
    sheet = Image.new("RGB", (cols * cell_w + pad, rows * cell_h + pad + (label_h if extra else 0)), "white")
    draw = ImageDraw.Draw(sheet)
    font = ImageFont.load_default()
    for i, p in enumerate(shown):
        x, y = pad + (i % cols) * cell_w, pad + (i // cols) * cell_h
        try:
            im = decode(p, min_side=thumb).image
            im.thumbnail((thumb, thumb))
            sheet.paste(im, (x + (thumb - im.width) // 2, y + (thumb - im.height) // 2))
        except DecodeError:
            draw.rectangle((x, y, x + thumb - 1, y + thumb - 1), outline="red")
        name = os.path.basename(p)
        if len(name) > 24:
            name = name[:11] + "..." + name[-10:]
        draw.text((x, y + thumb + 1), name, fill="black", font=font)
    if extra:
        draw.text((pad, rows * cell_h + pad), f"... and {extra} more", fill="black", font=font)
    dest = Path(dest)
    sheet.save(dest, "JPEG", quality=85)
    return dest


def dendrogram_png(
    linkage: np.ndarray, dest: str | Path, cut: float | None = None, width: int = 1600, height: int = 700,
    max_leaves: int = 300,
) -> Path:
    """Draw the dendrogram of a scipy linkage matrix (the last ``max_leaves`` merges) with the cut line."""
    n = len(linkage) + 1
    kw = {"truncate_mode": "lastp", "p": max_leaves} if n > max_leaves else {}
    from scipy.cluster import hierarchy

    tree = hierarchy.dendrogram(linkage, no_plot=True, **kw)
    icoord, dcoord = np.asarray(tree["icoord"]), np.asarray(tree["dcoord"])
    img = Image.new("RGB", (width, height), "white")
    draw = ImageDraw.Draw(img)
    font = ImageFont.load_default()
    left, right, top, bottom = 60, 20, 20, 40
    xmax = max(float(icoord.max(initial=10.0)), 10.0)
    ymax = max(float(dcoord.max(initial=0.0)), cut or 0.0, 1e-9) * 1.05

    def sx(v: float) -> float:
        return left + (v / xmax) * (width - left - right)

    def sy(v: float) -> float:
        return height - bottom - (v / ymax) * (height - top - bottom)

    for xs, ys in zip(icoord, dcoord, strict=True):
        pts = [(sx(x), sy(y)) for x, y in zip(xs, ys, strict=True)]
        draw.line(pts, fill=(30, 60, 160), width=1)
    draw.line([(left, sy(0)), (width - right, sy(0))], fill="black")
    draw.line([(left, top), (left, sy(0))], fill="black")
    for k in range(6):
        v = ymax * k / 5
        draw.text((4, sy(v) - 6), f"{v:.2f}", fill="black", font=font)
    if cut is not None:
        draw.line([(left, sy(cut)), (width - right, sy(cut))], fill=(200, 0, 0), width=1)
        draw.text((width - right - 120, sy(cut) - 14), f"cut at {cut:.3f}", fill=(200, 0, 0), font=font)
    note = f"{n} photos" + (f", last {max_leaves} merges shown" if n > max_leaves else "") + "; height = merge distance"
    draw.text((left, height - bottom + 12), note, fill="black", font=font)
    dest = Path(dest)
    img.save(dest, "PNG")
    return dest
