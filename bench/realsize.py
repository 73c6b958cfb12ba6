"""A real-size benchmark set, made on the fly from the shared photos and cached: 12 MP camera-like JPEGs
and phone-like HEICs.

Each picture is a shared UKBench photo (640x480) enlarged to 4000x3000 (12 MP), with sensor-like grain
added so that it compresses like a camera picture rather than like a smooth enlargement (about 3-5 MB
per JPEG), saved with camera-like EXIF (make, model, capture time; one in five is a portrait shot
stored sideways with EXIF orientation 6). JPEGs: qualities 88-95, 4:2:0 chroma. HEICs (through
pillow-heif, when it is installed): quality 80 with a 320x240 thumbnail, as phones store them.
Made once under the user cache folder (``platformdirs.user_cache_dir("lookalike-bench")/realsize-v1``)
and reused; enlarging more photos only adds the missing ones.

    python bench/realsize.py --jpeg 300 --heic 20     # make (or complete) the set, print where it is
"""

from __future__ import annotations

import argparse
import io
import os
import sys
from pathlib import Path

import numpy as np
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("LOOKALIKE_SHARED", ROOT.parent / "shared"))
SIZE = (4000, 3000)
VERSION = "realsize-v1"


def cache_root() -> Path:
    """The folder the set is cached in."""
    try:
        import platformdirs

        base = Path(platformdirs.user_cache_dir("lookalike-bench"))
    except ImportError:  # pragma: no cover
        base = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "lookalike-bench"
    return base / VERSION


def _camera_picture(src: Path, i: int) -> tuple[Image.Image, Image.Exif]:
    rng = np.random.default_rng(i)
    with Image.open(src) as im:
        big = im.convert("RGB").resize(SIZE, Image.Resampling.BICUBIC)
    arr = np.asarray(big, dtype=np.int16)
    grain = rng.normal(0.0, 4.0, size=(SIZE[1], SIZE[0], 1)).astype(np.int16)  # luma grain, like a sensor
    pixels = Image.fromarray(np.clip(arr + grain, 0, 255).astype(np.uint8))
    exif = Image.Exif()
    exif[0x010F] = "Canon"  # Make
    exif[0x0110] = "Canon EOS 250D"  # Model
    exif[0x0131] = "lookalike bench/realsize.py"  # Software
    exif[0x0132] = f"2026:0{1 + i % 9}:{10 + i % 18} 1{i % 10}:{10 + i % 50}:{10 + i % 49}"  # DateTime
    exif[0x0112] = 6 if i % 5 == 4 else 1  # Orientation: portrait shots are stored sideways
    sub = exif.get_ifd(0x8769)
    sub[0x9003] = exif[0x0132]  # DateTimeOriginal
    sub[0xA002], sub[0xA003] = SIZE  # PixelXDimension, PixelYDimension
    sub[0x829A] = (1, 125)  # ExposureTime
    sub[0x8827] = 100 * (1 + i % 8)  # ISO
    return pixels, exif


def _sources() -> list[Path]:
    src = sorted((SHARED / "data" / "photos").glob("*.jpg"))
    if not src:
        sys.exit(f"no photos in {SHARED / 'data' / 'photos'}; set LOOKALIKE_SHARED")
    return src


def real_size_jpegs(n: int, folder: Path | None = None) -> list[str]:
    """n 12 MP JPEGs (made once, then reused): their paths."""
    out = (folder or cache_root()) / "jpeg"
    out.mkdir(parents=True, exist_ok=True)
    src = _sources()
    paths = []
    for i in range(n):
        p = out / f"IMG_{i:04d}.JPG"
        if not p.exists():
            pixels, exif = _camera_picture(src[i % len(src)], i)
            tmp = p.with_suffix(".part")
            pixels.save(tmp, "JPEG", quality=88 + i % 8, subsampling="4:2:0", exif=exif)
            tmp.replace(p)
        paths.append(str(p))
    return paths


def heif_available() -> bool:
    try:
        import pillow_heif  # noqa: F401
    except ImportError:
        return False
    return True


def real_size_heics(n: int, folder: Path | None = None) -> list[str]:
    """n 12 MP HEICs with a 320x240 thumbnail (made once, then reused; slow to encode): their paths.
    Empty when pillow-heif is not installed."""
    if not n or not heif_available():
        return []
    import pillow_heif

    pillow_heif.register_heif_opener()
    out = (folder or cache_root()) / "heic"
    out.mkdir(parents=True, exist_ok=True)
    src = _sources()
    paths = []
    for i in range(n):
        p = out / f"IMG_{i:04d}.HEIC"
        if not p.exists():
            pixels, exif = _camera_picture(src[(i * 7 + 3) % len(src)], 1000 + i)
            buf = io.BytesIO()
            pixels.save(buf, "HEIF", quality=80, exif=exif.tobytes(), thumbnails=[320],
                        enc_params={"preset": "ultrafast"})
            tmp = p.with_suffix(".part")
            tmp.write_bytes(buf.getvalue())
            tmp.replace(p)
        paths.append(str(p))
    return paths


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--jpeg", type=int, default=300)
    ap.add_argument("--heic", type=int, default=20)
    args = ap.parse_args()
    jpegs = real_size_jpegs(args.jpeg)
    heics = real_size_heics(args.heic)
    size = sum(os.path.getsize(p) for p in jpegs + heics)
    print(f"{len(jpegs)} JPEGs and {len(heics)} HEICs in {cache_root()} ({size / 2**20:.0f} MiB)")


if __name__ == "__main__":
    main()
