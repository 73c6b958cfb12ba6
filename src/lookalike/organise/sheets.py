"""Pictures of a clustering, drawn with Pillow: one contact sheet per group, and a dendrogram."""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from dataclasses import dataclass
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


#: Leaves drawn with a thumbnail above their name when the tree has at most this many.
THUMB_LEAVES = 120
LEAF_THUMB = 48
FONT_SIZE = 14


@dataclass
class Dendrogram:
    """A drawn dendrogram: the PNG, and the leaves as drawn, left to right (a photo's file name, or
    ``"(N photos)"`` for a branch of the truncated tree)."""

    path: Path
    leaves: list[str]
    size: tuple[int, int]
    thumbnails: bool
    leaf_x: list[int]  # the x of each leaf, in pixels
    names_y: tuple[int, int]  # the band (top, bottom) the names hang in


def leaf_labels(linkage: np.ndarray, paths: Sequence[str] | None = None, max_leaves: int = 300
                ) -> tuple[list[str], list[int | None]]:
    """The leaves of the (truncated past ``max_leaves``) dendrogram, left to right: their labels (file names,
    or ``"(N photos)"`` for a branch shown as one leaf) and the row of the photo each one is (None for a branch)."""
    from scipy.cluster import hierarchy

    n = len(linkage) + 1
    kw = {"truncate_mode": "lastp", "p": max_leaves} if n > max_leaves else {}
    tree = hierarchy.dendrogram(linkage, no_plot=True, **kw)
    labels, rows = [], []
    for leaf in tree["leaves"]:
        if leaf < n:
            labels.append(os.path.basename(paths[leaf]) if paths is not None else str(leaf))
            rows.append(leaf)
        else:  # a branch: linkage row leaf - n holds its size
            labels.append(f"({int(linkage[leaf - n, 3])} photos)")
            rows.append(None)
    return labels, rows


def _short(name: str, limit: int = 28) -> str:
    return name if len(name) <= limit else name[: limit // 2 - 1] + "..." + name[-(limit // 2 - 2):]


def dendrogram_png(
    linkage: np.ndarray, dest: str | Path, cut: float | None = None, paths: Sequence[str] | None = None,
    height: int = 700, max_leaves: int = 300, thumbnails: bool = True,
) -> Dendrogram:
    """Draw the dendrogram of a scipy linkage matrix (the last ``max_leaves`` merges) with the cut line, each
    leaf named (its file name from ``paths``, turned upright, or its size for a branch) and, up to
    :data:`THUMB_LEAVES` leaves, shown as a thumbnail. The width grows with the leaves so no two names overlap."""
    from scipy.cluster import hierarchy

    n = len(linkage) + 1
    kw = {"truncate_mode": "lastp", "p": max_leaves} if n > max_leaves else {}
    tree = hierarchy.dendrogram(linkage, no_plot=True, **kw)
    labels, rows = leaf_labels(linkage, paths, max_leaves)
    icoord, dcoord = np.asarray(tree["icoord"]), np.asarray(tree["dcoord"])
    font = ImageFont.load_default(size=FONT_SIZE)
    small = ImageFont.load_default(size=FONT_SIZE - 2)
    shown = [_short(lab) for lab in labels]
    name_h = max((int(small.getlength(t)) for t in shown), default=0) + 8
    show_thumbs = thumbnails and paths is not None and len(labels) <= THUMB_LEAVES
    thumb_h = LEAF_THUMB + 6 if show_thumbs else 0
    pitch = max(LEAF_THUMB + 4 if show_thumbs else 0, FONT_SIZE + 4)  # pixels per leaf
    left, right, top = 70, 30, 30
    plot_h = max(300, height - name_h - thumb_h)
    width = max(900, left + right + pitch * len(labels))
    total_h = top + plot_h + thumb_h + name_h + 30
    img = Image.new("RGB", (width, total_h), "white")
    draw = ImageDraw.Draw(img)
    ymax = max(float(dcoord.max(initial=0.0)), cut or 0.0, 1e-9) * 1.05
    base = top + plot_h

    def sx(v: float) -> float:  # scipy puts leaf k at 5 + 10 k
        return left + pitch * (v - 5.0) / 10.0 + pitch / 2

    def sy(v: float) -> float:
        return base - (v / ymax) * plot_h

    for xs, ys in zip(icoord, dcoord, strict=True):
        draw.line([(sx(x), sy(y)) for x, y in zip(xs, ys, strict=True)], fill=(30, 60, 160), width=2)
    draw.line([(left, base), (width - right, base)], fill="black")
    draw.line([(left, top), (left, base)], fill="black")
    for k in range(6):
        v = ymax * k / 5
        draw.text((6, sy(v) - FONT_SIZE // 2), f"{v:.2f}", fill="black", font=font)
    if cut is not None:
        draw.line([(left, sy(cut)), (width - right, sy(cut))], fill=(200, 0, 0), width=2)
        draw.text((width - right - 140, sy(cut) - FONT_SIZE - 4), f"cut at {cut:.3f}", fill=(200, 0, 0), font=font)
    xs_drawn = []
    for k, (text, row) in enumerate(zip(shown, rows, strict=True)):
        x = sx(5.0 + 10.0 * k)
        xs_drawn.append(int(x))
        if show_thumbs and row is not None:
            try:
                im = decode(paths[row], min_side=LEAF_THUMB).image
                im.thumbnail((LEAF_THUMB, LEAF_THUMB))
                img.paste(im.convert("RGB"), (int(x - im.width / 2), base + 4 + (LEAF_THUMB - im.height) // 2))
            except (DecodeError, OSError):  # unreadable, or gone since: an empty red frame
                draw.rectangle((x - LEAF_THUMB / 2, base + 4, x + LEAF_THUMB / 2, base + 4 + LEAF_THUMB), outline="red")
        # the name, upright (read bottom to top), hanging under the leaf
        w = max(1, int(small.getlength(text)))
        strip = Image.new("L", (w + 2, FONT_SIZE + 2), 0)
        ImageDraw.Draw(strip).text((1, 0), text, fill=255, font=small)
        turned = strip.rotate(90, expand=True)
        img.paste((0, 0, 0), (int(x - turned.width / 2), base + thumb_h + 4), turned)
    note = (f"{n} photos" + (f", last {max_leaves} merges shown" if n > max_leaves else "")
            + "; height = merge distance; leaves left to right as listed")
    draw.text((left, total_h - 24), note, fill="black", font=font)
    dest = Path(dest)
    img.save(dest, "PNG")
    return Dendrogram(dest, labels, img.size, show_thumbs, xs_drawn, (base + thumb_h + 4, base + thumb_h + name_h))
