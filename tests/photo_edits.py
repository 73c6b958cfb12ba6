"""Synthetic edited copies of a photo, Copydays-style: used by the tests, the quality benchmark
(bench/dupes_quality.py) and scripts/make_demo.py to build ground truth by construction. Test-only code: it
is not part of the lookalike package (was ``lookalike.dupes.edits``); the others import it from here."""

from __future__ import annotations

import io
import struct
from collections.abc import Callable
from pathlib import Path

from PIL import Image, ImageDraw, ImageEnhance, ImageFont, ImageOps


def _save(img: Image.Image, fmt: str = "JPEG", **kw) -> bytes:
    buf = io.BytesIO()
    if fmt == "JPEG" and img.mode not in ("RGB", "L"):
        img = img.convert("RGB")
    img.save(buf, fmt, **kw)
    return buf.getvalue()


def _crop(img: Image.Image, area: float) -> Image.Image:
    f = area**0.5
    w, h = round(img.width * f), round(img.height * f)
    x, y = (img.width - w) // 3, (img.height - h) // 4  # off centre on purpose
    return img.crop((x, y, x + w, y + h))


def _watermark(img: Image.Image) -> Image.Image:
    out = img.convert("RGBA")
    layer = Image.new("RGBA", out.size, (0, 0, 0, 0))
    draw = ImageDraw.Draw(layer)
    size = max(10, img.height // 12)
    try:
        font = ImageFont.load_default(size=size)
    except TypeError:  # old Pillow
        font = ImageFont.load_default()
    draw.text((img.width // 20, img.height - 2 * size), "(c) lookalike 2026", fill=(255, 255, 255, 190), font=font)
    return Image.alpha_composite(out, layer).convert("RGB")


def relabel_jpeg(data: bytes, note: bytes = b"re-saved by lookalike") -> bytes:
    """Same JPEG pixels, other bytes: drop APPn metadata segments and add a comment (no re-encoding)."""
    if data[:2] != b"\xff\xd8":
        raise ValueError("not a JPEG")
    out = [b"\xff\xd8", b"\xff\xfe" + struct.pack(">H", len(note) + 2) + note]
    pos = 2
    while pos + 4 <= len(data):
        marker = data[pos + 1]
        if data[pos] != 0xFF:
            raise ValueError("corrupt JPEG marker chain")
        if marker == 0xDA:  # start of scan: the rest is image data
            out.append(data[pos:])
            break
        length = struct.unpack(">H", data[pos + 2 : pos + 4])[0]
        seg = data[pos : pos + 2 + length]
        if not (0xE1 <= marker <= 0xEF or marker == 0xFE):  # keep JFIF (APP0), tables, frame header
            out.append(seg)
        pos += 2 + length
    return b"".join(out)


def _meta(img: Image.Image, data: bytes) -> bytes:
    if data[:2] == b"\xff\xd8":
        return relabel_jpeg(data)
    return _save(img, "PNG", compress_level=9)


#: name -> (ground-truth tier, function(original picture, original bytes) -> new file bytes, suffix)
EDITS: dict[str, tuple[str, Callable[[Image.Image, bytes], bytes], str]] = {
    "meta": ("pixel", _meta, ".jpg"),
    "png": ("pixel", lambda im, _: _save(im, "PNG"), ".png"),
    "resize50": ("near", lambda im, _: _save(im.resize((max(1, im.width // 2), max(1, im.height // 2)),
                                                       Image.Resampling.LANCZOS), quality=90), ".jpg"),
    "jpeg30": ("near", lambda im, _: _save(im, quality=30), ".jpg"),
    "crop85": ("near", lambda im, _: _save(_crop(im, 0.85), quality=90), ".jpg"),
    "crop70": ("near", lambda im, _: _save(_crop(im, 0.70), quality=90), ".jpg"),
    "rot5": ("near", lambda im, _: _save(im.rotate(5, resample=Image.Resampling.BICUBIC), quality=90), ".jpg"),
    "rot90": ("near", lambda im, _: _save(im.transpose(Image.Transpose.ROTATE_90), quality=90), ".jpg"),
    "flip": ("near", lambda im, _: _save(im.transpose(Image.Transpose.FLIP_LEFT_RIGHT), quality=90), ".jpg"),
    "bright30": ("near", lambda im, _: _save(ImageEnhance.Brightness(im).enhance(1.3), quality=90), ".jpg"),
    "grey": ("near", lambda im, _: _save(im.convert("L"), quality=90), ".jpg"),
    "border20": ("near", lambda im, _: _save(ImageOps.expand(im, 20, fill=(255, 255, 255)), quality=90), ".jpg"),
    "watermark": ("near", lambda im, _: _save(_watermark(im), quality=90), ".jpg"),
}


def write_edits(original: str | Path, out_dir: str | Path, names: list[str] | None = None) -> dict[str, Path]:
    """Write edited copies of ``original`` into ``out_dir`` as ``<stem>__<edit><suffix>``."""
    src = Path(original)
    data = src.read_bytes()
    img = ImageOps.exif_transpose(Image.open(io.BytesIO(data))).convert("RGB")
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    written = {}
    for name in names or list(EDITS):
        _, fn, suffix = EDITS[name]
        dest = out_dir / f"{src.stem}__{name}{suffix}"
        dest.write_bytes(fn(img, data))
        written[name] = dest
    return written
