"""Regenerate the small demo folder bundled with lookalike (src/lookalike/demo/photos).

The pictures are drawn here (no photo of anyone's is shipped): six scenes made of random shapes over
textured backgrounds, edited copies of four of them (re-save, resize, crop, rotate, mirror, greyscale),
and an exact copy. `lookalike dupes` with no folder runs on them.

    python scripts/make_demo.py
"""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from photo_edits import write_edits  # noqa: E402  (test-only code, not in the package)

OUT = Path(__file__).resolve().parents[1] / "src" / "lookalike" / "demo" / "photos"
SCENES = ("harbour", "meadow", "market", "orchard", "station", "terrace")
EDITED = {"harbour": ["resize50", "jpeg30"], "meadow": ["crop85", "flip"], "market": ["rot90", "grey"],
          "orchard": ["rot5", "meta"]}


def scene(seed: int, size: tuple[int, int] = (640, 480)) -> Image.Image:
    """A deterministic picture with detail at several scales (so key points and hashes have work to do)."""
    rng = np.random.default_rng(seed)
    w, h = size
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    base = np.stack([
        127 + 100 * np.sin(xx / rng.uniform(40, 120) + rng.uniform(0, 6)) * np.cos(yy / rng.uniform(40, 120)),
        127 + 100 * np.sin(yy / rng.uniform(30, 90) + rng.uniform(0, 6)),
        127 + 100 * np.cos((xx + yy) / rng.uniform(50, 150)),
    ], axis=-1)
    base += rng.normal(0, 12, base.shape)
    img = Image.fromarray(np.clip(base, 0, 255).astype(np.uint8)).filter(ImageFilter.GaussianBlur(1.2))
    draw = ImageDraw.Draw(img)
    for _ in range(60):
        x, y = rng.integers(0, w), rng.integers(0, h)
        r = int(rng.integers(6, 60))
        colour = tuple(int(c) for c in rng.integers(0, 256, 3))
        kind = rng.integers(0, 3)
        if kind == 0:
            draw.ellipse((x - r, y - r, x + r, y + r), fill=colour, outline=(0, 0, 0), width=2)
        elif kind == 1:
            draw.rectangle((x, y, x + r * 2, y + r), fill=colour, outline=(255, 255, 255), width=2)
        else:
            pts = [(int(x + rng.integers(-r, r)), int(y + rng.integers(-r, r))) for _ in range(5)]
            draw.polygon(pts, fill=colour)
    return img


def main() -> None:
    if OUT.exists():
        shutil.rmtree(OUT)
    OUT.mkdir(parents=True)
    for i, name in enumerate(SCENES):
        path = OUT / f"{name}.jpg"
        scene(1000 + i).save(path, quality=88)
        if name in EDITED:
            write_edits(path, OUT, EDITED[name])
    shutil.copy(OUT / "terrace.jpg", OUT / "terrace (copy).jpg")
    total = sum(p.stat().st_size for p in OUT.iterdir())
    print(f"{len(list(OUT.iterdir()))} files, {total / 1e6:.2f} MB in {OUT}")


if __name__ == "__main__":
    main()
