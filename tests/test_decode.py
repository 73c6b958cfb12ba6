"""Decoding of every awkward kind of file: the shared edge cases plus files made here."""

from __future__ import annotations

import io
import struct
import zlib

import numpy as np
import pytest
from PIL import Image

from conftest import DATA, shared_data
from lookalike.errors import DecodeError
from lookalike.media import decode, io_stats, iter_images, sniff

# file -> (width, height, source mode) after EXIF orientation, per shared/data/edge/README.md
EDGE_EXPECTED = {
    "UPPERCASE.JPG": (320, 240, "RGB"),
    "alpha_rgba.png": (320, 240, "RGBA"),
    "animated_3frames.gif": (160, 120, "P"),
    "cmyk.jpg": (320, 240, "CMYK"),
    "exif_orientation_6.jpg": (640, 480, "RGB"),
    "grey16.png": (320, 240, "I;16"),
    "greyscale.jpg": (320, 240, "L"),
    "jpeg_without_extension": (320, 240, "RGB"),
    "photo é 日本.jpg": (320, 240, "RGB"),
    "photo.bmp": (320, 240, "RGB"),
    "photo.heic": (320, 240, "RGB"),
    "photo.tiff": (320, 240, "RGB"),
    "photo.webp": (320, 240, "RGB"),
    "rgb48.png": (320, 240, "RGB"),
    "truncated_60pct.jpg": (640, 480, "RGB"),
}
EDGE_ERRORS = {"empty.jpg": "empty file", "not_an_image.jpg": "not an image"}


@pytest.mark.parametrize("name", sorted(EDGE_EXPECTED))
def test_shared_edge_files_decode_to_rgb(name):
    path = shared_data("edge", name)
    img = decode(path)
    w, h, mode = EDGE_EXPECTED[name]
    assert (img.width, img.height, img.mode) == (w, h, mode)
    assert img.image.mode == "RGB"
    assert img.image.size == (w, h)
    assert img.truncated == (name == "truncated_60pct.jpg")


@pytest.mark.parametrize("name", sorted(EDGE_ERRORS))
def test_shared_edge_errors_are_clear(name):
    with pytest.raises(DecodeError, match=EDGE_ERRORS[name]):
        decode(shared_data("edge", name))


def test_exif_orientation_is_applied():
    img = decode(shared_data("edge", "exif_orientation_6.jpg")).array()
    assert img.shape == (480, 640, 3)
    r, g, b = img[10, 10]
    assert r > 200 and g < 60 and b < 60  # the red block is top-left once upright


def test_sixteen_bit_grey_is_scaled_not_clipped():
    arr = decode(shared_data("edge", "grey16.png")).array()
    row = arr[0, :, 0].astype(int)
    assert row[0] < 5 and row[-1] > 250  # full 0..255 range from a 0..65535 ramp
    assert np.all(np.diff(row) >= 0)


def test_alpha_is_composited_on_white():
    arr = decode(shared_data("edge", "alpha_rgba.png")).array()
    assert tuple(arr[120, 5]) == (255, 255, 255)  # fully transparent left quarter


def test_animated_gif_takes_first_frame():
    img = decode(shared_data("edge", "animated_3frames.gif"))
    assert img.frames == 3
    arr = img.array()
    red = (arr[..., 0] > 200) & (arr[..., 1] < 60) & (arr[..., 2] < 60)
    assert red.sum() > 50  # frame 0 shows a red block


def test_draft_decode_reduces_jpeg_but_keeps_full_size_facts():
    path = shared_data("photos", "ukbench00000.jpg")
    small = decode(path, min_side=224)
    assert (small.width, small.height) == (640, 480)
    assert min(small.image.size) >= 224 and small.image.size[0] < 640


def test_truncated_file_made_here(tmp_path):
    buf = io.BytesIO()
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (300, 400, 3), dtype=np.uint8)).save(buf, "JPEG")
    data = buf.getvalue()
    path = tmp_path / "cut.jpg"
    path.write_bytes(data[: len(data) // 2])
    img = decode(path)
    assert img.truncated and img.image.size == (400, 300)


def _png_with_size(width: int, height: int) -> bytes:
    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0" * 16)) + chunk(b"IEND", b"")


def test_decompression_bomb_is_refused(tmp_path):
    path = tmp_path / "bomb.png"
    path.write_bytes(_png_with_size(40000, 40000))
    with pytest.raises(DecodeError, match="too large"):
        decode(path)


def test_vanished_and_folder_errors(tmp_path):
    with pytest.raises(DecodeError, match="vanished"):
        decode(tmp_path / "nope.jpg")
    with pytest.raises(DecodeError, match="folder"):
        decode(tmp_path)


def test_walk_sniffs_content_skips_hidden_and_survives_symlink_loops(tmp_path):
    src = shared_data("edge", "UPPERCASE.JPG").read_bytes()
    (tmp_path / "a").mkdir()
    (tmp_path / "a" / "noext").write_bytes(src)
    (tmp_path / "a" / "notes.txt").write_text("hello")
    (tmp_path / "a" / "loop").symlink_to(tmp_path)  # a symlink loop back to the top
    (tmp_path / ".cache").mkdir()
    (tmp_path / ".cache" / "thumb.jpg").write_bytes(src)
    (tmp_path / "__pycache__").mkdir()
    (tmp_path / "__pycache__" / "x.jpg").write_bytes(src)
    (tmp_path / "b.JPEG").write_bytes(src)
    found = list(iter_images([tmp_path]))
    assert sorted(found) == sorted([str(tmp_path / "a" / "noext"), str(tmp_path / "b.JPEG")])
    assert list(iter_images([tmp_path], recursive=False)) == [str(tmp_path / "b.JPEG")]


def test_sniff_recognises_formats():
    assert sniff(b"\xff\xd8\xff\xe0") == "JPEG"
    assert sniff(b"\x89PNG\r\n\x1a\n") == "PNG"
    assert sniff(b"RIFF\0\0\0\0WEBPVP8 ") == "WEBP"
    assert sniff(b"hello world") is None


def test_io_stats_counts_reads(tmp_path):
    p = tmp_path / "x.png"
    Image.new("RGB", (8, 8)).save(p)
    io_stats.reset()
    decode(p)
    assert io_stats.files_read == 1 and io_stats.bytes_read == p.stat().st_size


def test_edge_folder_present_or_skipped():
    # The shared folder is optional; when present it must hold what the table above describes.
    if not (DATA / "edge").exists():
        pytest.skip("shared edge data absent")
    names = {p.name for p in (DATA / "edge").iterdir()} - {"README.md"}
    assert names == set(EDGE_EXPECTED) | set(EDGE_ERRORS)
