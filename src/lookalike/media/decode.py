"""Decode any supported image file into an upright RGB picture, or raise a clear DecodeError.

The one entry point is :func:`decode`. It reads the bytes once (so callers can hash the same bytes),
applies EXIF orientation, decodes JPEGs at reduced size when the caller needs at most ``min_side``
pixels on the short side (libjpeg-turbo's DCT scaling: the main speed lever), keeps what can be decoded
of a truncated file (and says so), and turns every odd mode (CMYK, 16-bit, palette, alpha, animation)
into plain 8-bit RGB.

JPEGs in RGB or greyscale decoded at reduced size go through simplejpeg (libjpeg-turbo, decoding straight
to the reduced size) when it is installed, at the very size Pillow's draft mode would give and with the
same pixels; full-size decodes, any other JPEG (CMYK, truncated, odd markers) and every other format go
through Pillow, as before. HEICs
that carry a large enough thumbnail (phones' do) decode that instead of the 12 MP picture.
"""

from __future__ import annotations

import io
import struct
import threading
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageFile, UnidentifiedImageError

from lookalike.errors import DecodeError
from lookalike.media.files import read_regular

try:  # the fast JPEG path; Pillow's draft mode stands in without it
    import simplejpeg
except ImportError:  # pragma: no cover - only without simplejpeg
    simplejpeg = None

#: Which decoder reads RGB and greyscale JPEGs: "simplejpeg" when installed, else "pillow".
#: Benchmarks and tests set it to "pillow" to measure or compare Pillow's draft mode.
JPEG_DECODER = "simplejpeg" if simplejpeg is not None else "pillow"

try:  # HEIC/HEIF support is optional at import time but installed by default
    import pillow_heif

    pillow_heif.register_heif_opener()
    HEIF_AVAILABLE = True
except Exception:  # pragma: no cover - only without pillow-heif
    HEIF_AVAILABLE = False

#: Largest picture we agree to decode, in pixels (a guard against decompression bombs).
MAX_PIXELS = 180_000_000
Image.MAX_IMAGE_PIXELS = MAX_PIXELS  # Pillow's own guard warns past this and refuses past twice it

#: Formats decoded at reduced size when the caller needs at most ``min_side`` pixels: JPEG by DCT scaling
#: (MPO too: the JPEGs of many cameras and phones carry a second picture, which Pillow reports as MPO),
#: HEIF through pillow-heif's draft, which picks an embedded thumbnail that is a scaled copy of the picture
#: (same aspect ratio, mode and rotation) and at least ``min_side`` on both sides (phones store 320x240).
_JPEG_FORMATS = ("JPEG", "MPO")
_DRAFT_FORMATS = (*_JPEG_FORMATS, "HEIF")

#: Background that transparent pixels are composited onto.
ALPHA_BACKGROUND = (255, 255, 255)

# EXIF tags
_TAG_DATETIME_ORIGINAL = 0x9003
_TAG_DATETIME = 0x0132
_EXIF_IFD = 0x8769


class IOStats:
    """Counts file reads, so tests can prove that an unchanged re-run reads no image bytes."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.files_read = 0
        self.bytes_read = 0

    def add(self, nbytes: int) -> None:
        with self._lock:
            self.files_read += 1
            self.bytes_read += nbytes

    def reset(self) -> None:
        with self._lock:
            self.files_read = 0
            self.bytes_read = 0


io_stats = IOStats()


@dataclass
class DecodedImage:
    """An upright RGB picture and what we learnt about its file while decoding it."""

    image: Image.Image  # mode "RGB", EXIF orientation applied, possibly reduced in size
    width: int  # full-resolution width after orientation
    height: int  # full-resolution height after orientation
    format: str  # Pillow's format name ("JPEG", "PNG", "HEIF", ...)
    mode: str  # the file's own mode before conversion ("RGB", "CMYK", "I;16", "P", ...)
    truncated: bool  # the file ended early; what was there was decoded
    frames: int  # number of frames (animated GIF/WebP); frame 0 is used
    exif_datetime: str | None  # EXIF DateTimeOriginal (or DateTime), "YYYY:MM:DD HH:MM:SS"
    exif_tags: int  # how many EXIF tags the file carries (used to rank keepers)

    def array(self) -> np.ndarray:
        """The picture as a HxWx3 uint8 array."""
        return np.asarray(self.image)


def read_bytes(path: str | Path) -> bytes:
    """Read a whole regular file (FIFOs, devices and sockets are refused), as DecodeErrors with a plain reason."""
    data = read_regular(path)
    io_stats.add(len(data))
    return data


class _TruncationGate:
    """Pillow's "accept truncated files" switch is process-global. Normal decodes share the gate;
    the rare retry of a truncated file takes it alone, so no other decode runs with the switch on."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._readers = 0
        self._writer = False

    def shared(self) -> _Held:
        return _Held(self, exclusive=False)

    def exclusive(self) -> _Held:
        return _Held(self, exclusive=True)


class _Held:
    def __init__(self, gate: _TruncationGate, exclusive: bool) -> None:
        self.gate, self.exclusive = gate, exclusive

    def __enter__(self) -> None:
        g = self.gate
        with g._cond:
            if self.exclusive:
                while g._writer or g._readers:
                    g._cond.wait()
                g._writer = True
            else:
                while g._writer:
                    g._cond.wait()
                g._readers += 1

    def __exit__(self, *exc: object) -> None:
        g = self.gate
        with g._cond:
            if self.exclusive:
                g._writer = False
            else:
                g._readers -= 1
            g._cond.notify_all()


_gate = _TruncationGate()


def _open(data: bytes) -> Image.Image:
    if not data:
        raise DecodeError("empty file (0 bytes)")
    try:
        return Image.open(io.BytesIO(data))
    except UnidentifiedImageError as exc:
        raise DecodeError("not an image, or an unsupported image format") from exc
    except Image.DecompressionBombError as exc:
        raise DecodeError(f"picture too large to decode safely (decompression bomb guard): {exc}") from exc
    except Exception as exc:  # corrupt headers raise all sorts of things
        raise DecodeError(f"corrupt image header: {exc}") from exc


_TRANSPOSE = {
    2: Image.Transpose.FLIP_LEFT_RIGHT,
    3: Image.Transpose.ROTATE_180,
    4: Image.Transpose.FLIP_TOP_BOTTOM,
    5: Image.Transpose.TRANSPOSE,
    6: Image.Transpose.ROTATE_270,
    7: Image.Transpose.TRANSVERSE,
    8: Image.Transpose.ROTATE_90,
}


def _parse_tiff_exif(raw: bytes) -> tuple[int, str | None, int]:
    """(orientation, DateTimeOriginal or DateTime, tag count) from raw EXIF bytes, reading only the two
    directories' entry headers: several times cheaper than decoding every tag, and it holds the GIL."""
    if raw.startswith(b"Exif\x00\x00"):
        raw = raw[6:]
    order = {b"II": "<", b"MM": ">"}[raw[:2]]
    u16 = struct.Struct(order + "H").unpack_from
    u32 = struct.Struct(order + "I").unpack_from

    def entries(offset: int):
        n = u16(raw, offset)[0]
        if n > 1000:
            raise ValueError("implausible EXIF directory")
        for i in range(n):
            pos = offset + 2 + 12 * i
            tag, typ = u16(raw, pos)[0], u16(raw, pos + 2)[0]
            yield tag, typ, u32(raw, pos + 4)[0], pos + 8
        return

    def ascii_value(count: int, pos: int) -> str:
        start = pos if count <= 4 else u32(raw, pos)[0]
        return raw[start : start + count].split(b"\x00", 1)[0].decode("ascii", "replace").strip()

    orientation, when, when_original, count, sub = 1, None, None, 0, None
    for tag, typ, cnt, pos in entries(u32(raw, 4)[0]):
        count += 1
        if tag == 0x0112:
            orientation = u16(raw, pos)[0]
        elif tag == _TAG_DATETIME and typ == 2:
            when = ascii_value(cnt, pos)
        elif tag == _EXIF_IFD:
            sub = u32(raw, pos)[0]
    if sub:
        for tag, typ, cnt, pos in entries(sub):
            count += 1
            if tag == _TAG_DATETIME_ORIGINAL and typ == 2:
                when_original = ascii_value(cnt, pos)
    return (orientation if 1 <= orientation <= 8 else 1), (when_original or when or None), count


def _exif_info(img: Image.Image) -> tuple[int, str | None, int]:
    """(orientation, capture time, number of EXIF tags) of an opened picture."""
    raw = img.info.get("exif")
    if isinstance(raw, bytes) and raw[:2] in (b"II", b"MM", b"Ex"):
        try:
            return _parse_tiff_exif(raw)
        except Exception:
            pass  # odd layout: let Pillow try
    try:
        exif = img.getexif()
    except Exception:
        return 1, None, 0
    if not exif:
        return 1, None, 0
    count = len(exif)
    when = None
    try:
        sub = exif.get_ifd(_EXIF_IFD)
        count += len(sub)
        when = sub.get(_TAG_DATETIME_ORIGINAL)
    except Exception:
        pass
    when = when or exif.get(_TAG_DATETIME)
    if isinstance(when, bytes):
        when = when.decode("ascii", "replace")
    when = when.strip("\x00 ") if isinstance(when, str) else None
    try:
        orientation = int(exif.get(0x0112, 1) or 1)
    except (TypeError, ValueError):
        orientation = 1
    return (orientation if 1 <= orientation <= 8 else 1), (when or None), count


def _to_rgb(img: Image.Image) -> Image.Image:
    """Turn any Pillow mode into 8-bit RGB; transparency is composited onto ALPHA_BACKGROUND."""
    mode = img.mode
    if mode == "RGB":
        return img
    if mode in ("I;16", "I;16B", "I;16L", "I;16N", "I"):
        arr = np.asarray(img, dtype=np.uint32 if mode == "I" else np.uint16)
        if mode == "I":
            arr = np.clip(arr, 0, 65535)
        grey = (arr.astype(np.uint32) // 257).astype(np.uint8)  # scale 16 bit to 8, not clip
        return Image.fromarray(grey).convert("RGB")
    if mode == "F":
        arr = np.asarray(img, dtype=np.float32)
        lo, hi = float(np.nanmin(arr)), float(np.nanmax(arr))
        scaled = np.zeros_like(arr) if hi <= lo else (arr - lo) / (hi - lo) * 255.0
        return Image.fromarray(np.nan_to_num(scaled).astype(np.uint8)).convert("RGB")
    if mode == "P" or mode == "PA":
        img = img.convert("RGBA")
        mode = "RGBA"
    if mode in ("RGBA", "LA", "La", "RGBa") or "transparency" in img.info:
        rgba = img.convert("RGBA")
        background = Image.new("RGB", rgba.size, ALPHA_BACKGROUND)
        background.paste(rgba, mask=rgba.getchannel("A"))
        return background
    return img.convert("RGB")  # L, 1, CMYK, YCbCr, LAB, HSV...


def _load(img: Image.Image) -> None:
    img.load()


def _fast_jpeg(data: bytes, img: Image.Image, full_size: tuple[int, int]) -> Image.Image | None:
    """Decode an RGB or greyscale JPEG (an MPO's first picture) with simplejpeg straight to ``img.size`` (the
    reduced size Pillow's draft mode chose, so both paths give the same picture), as an RGB image; None when
    this path does not apply or the file is anything but clean (truncated, damaged): Pillow then decodes it
    as before. At full size Pillow is as fast (both are libjpeg-turbo), so only reduced decodes come here."""
    if JPEG_DECODER != "simplejpeg" or simplejpeg is None or img.mode not in ("RGB", "L"):
        return None
    w, h = img.size
    if (w, h) == full_size:
        return None
    try:
        # strict: every libjpeg warning (premature end, corrupt data) is an error here, so that such
        # files take Pillow's path, which knows how to keep what is there and say so
        arr = simplejpeg.decode_jpeg(data, colorspace="RGB", min_width=w, min_height=h, strict=True)
    except Exception:  # anything odd: Pillow's path decides, with its own errors and truncation handling
        return None
    if arr.shape != (h, w, 3):  # a scale libjpeg-turbo does not offer: let Pillow do it
        return None
    return Image.fromarray(arr, "RGB")


def decode(source: str | Path | bytes, min_side: int | None = None) -> DecodedImage:
    """Decode an image file (a path or its bytes) into an upright RGB :class:`DecodedImage`.

    ``min_side``: the caller needs at least this many pixels on both sides; JPEGs are then decoded at
    the smallest power-of-two reduction that still gives that (much faster). ``None`` decodes full size.
    Raises :class:`DecodeError` with a plain reason for anything that is not a decodable picture.
    """
    data = read_bytes(source) if not isinstance(source, bytes | bytearray) else bytes(source)
    img = _open(data)
    try:
        fmt = img.format or "unknown"
        mode = img.mode
        w, h = img.size
        if w <= 0 or h <= 0:
            raise DecodeError(f"image has no pixels ({w}x{h})")
        if w * h > MAX_PIXELS:
            raise DecodeError(
                f"picture too large to decode safely: {w}x{h} = {w * h / 1e6:.0f} Mpx, "
                f"over the {MAX_PIXELS / 1e6:.0f} Mpx limit (decompression bomb guard)"
            )
        frames = int(getattr(img, "n_frames", 1) or 1)
        orientation, exif_datetime, exif_tags = _exif_info(img)
        if min_side and fmt in _DRAFT_FORMATS:
            img.draft("RGB", (min_side, min_side))
        truncated = False
        fast = _fast_jpeg(data, img, (w, h)) if fmt in _JPEG_FORMATS else None
        try:
            if fast is None:
                with _gate.shared():
                    _load(img)
        except OSError as exc:
            if "truncated" not in str(exc) and "broken data stream" not in str(exc):
                raise DecodeError(f"corrupt image data: {exc}") from exc
            truncated = True
            img = _open(data)
            if min_side and fmt in _DRAFT_FORMATS:
                img.draft("RGB", (min_side, min_side))
            with _gate.exclusive():
                ImageFile.LOAD_TRUNCATED_IMAGES = True
                try:
                    _load(img)
                except Exception as exc2:
                    raise DecodeError(f"truncated file, nothing decodable: {exc2}") from exc2
                finally:
                    ImageFile.LOAD_TRUNCATED_IMAGES = False
        if orientation in (5, 6, 7, 8):
            w, h = h, w
        rgb = fast if fast is not None else _to_rgb(img)
        if orientation in _TRANSPOSE:
            rgb = rgb.transpose(_TRANSPOSE[orientation])
        return DecodedImage(
            image=rgb,
            width=w,
            height=h,
            format=fmt,
            mode=mode,
            truncated=truncated,
            frames=frames,
            exif_datetime=exif_datetime,
            exif_tags=exif_tags,
        )
    except DecodeError:
        raise
    except MemoryError as exc:
        raise DecodeError("not enough memory to decode this picture") from exc
    except Exception as exc:
        raise DecodeError(f"cannot decode: {type(exc).__name__}: {exc}") from exc


def sniff(head: bytes) -> str | None:
    """Guess an image format from a file's first bytes; None when it does not look like an image."""
    if head.startswith(b"\xff\xd8\xff"):
        return "JPEG"
    if head.startswith(b"\x89PNG\r\n\x1a\n"):
        return "PNG"
    if head[:6] in (b"GIF87a", b"GIF89a"):
        return "GIF"
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return "WEBP"
    if head[:2] == b"BM":
        return "BMP"
    if head[:4] in (b"II*\x00", b"MM\x00*"):
        return "TIFF"
    if head[4:8] == b"ftyp" and head[8:12] in (b"heic", b"heix", b"mif1", b"msf1", b"heim", b"heis", b"avif"):
        return "HEIF"
    return None
