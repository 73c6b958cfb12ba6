"""Decoding of every awkward kind of file: the shared edge cases plus files made here."""

from __future__ import annotations

import importlib
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


# --- the simplejpeg fast path (issue 12): same size and pixels as Pillow's draft mode, same edge behaviour ---

decode_module = importlib.import_module("lookalike.media.decode")
REAL_JPEGS = [("photos", "ukbench00000.jpg"), ("photos", "ukbench00213.jpg"), ("faces", "deepface", "img1.jpg"),
              ("faces", "deepface", "img13.jpg"), ("faces", "celebrity", "Tom_Hanks", "018_b7231fad.jpg")]


@pytest.fixture
def simplejpeg_calls(monkeypatch):
    """Counts the calls of simplejpeg's decoder (and proves the fast path is on)."""
    assert decode_module.JPEG_DECODER == "simplejpeg"  # a pinned dependency: installed with lookalike
    calls = []
    real = decode_module.simplejpeg.decode_jpeg

    def counting(*args, **kwargs):
        calls.append(kwargs)
        return real(*args, **kwargs)

    monkeypatch.setattr(decode_module.simplejpeg, "decode_jpeg", counting)
    return calls


def _both_paths(monkeypatch, source, min_side):
    fast = decode(source, min_side=min_side)
    monkeypatch.setattr(decode_module, "JPEG_DECODER", "pillow")
    slow = decode(source, min_side=min_side)
    monkeypatch.setattr(decode_module, "JPEG_DECODER", "simplejpeg")
    return fast, slow


def _max_pixel_difference(a, b) -> int:
    assert a.image.size == b.image.size
    return int(np.abs(a.array().astype(int) - b.array().astype(int)).max())


@pytest.mark.parametrize("parts", REAL_JPEGS, ids=lambda p: p[-1])
@pytest.mark.parametrize("min_side", [None, 64, 224, 512])
def test_simplejpeg_path_matches_pillow_on_real_photos(monkeypatch, simplejpeg_calls, parts, min_side):
    path = shared_data(*parts)
    fast, slow = _both_paths(monkeypatch, path, min_side)
    reduced = min(slow.image.size) < min(slow.width, slow.height)
    assert len(simplejpeg_calls) == int(reduced)  # reduced decodes take the fast path; full size stays Pillow's
    assert fast.image.mode == "RGB" and fast.image.size == slow.image.size
    assert (fast.width, fast.height, fast.mode, fast.exif_tags) == (slow.width, slow.height, slow.mode, slow.exif_tags)
    assert _max_pixel_difference(fast, slow) <= 2  # both are libjpeg-turbo: identical on every photo seen so far


def test_simplejpeg_path_keeps_exif_orientation_at_reduced_size(simplejpeg_calls):
    img = decode(shared_data("edge", "exif_orientation_6.jpg"), min_side=64)
    assert simplejpeg_calls and (img.width, img.height) == (640, 480)
    arr = img.array()
    assert arr.shape[1] > arr.shape[0]  # upright: wider than high
    r, g, b = arr[2, 2]
    assert r > 200 and g < 60 and b < 60  # the red block is top-left once upright


def _jpeg(tmp_path, name: str, mode: str, **save) -> bytes:
    rng = np.random.default_rng(3)
    smooth = np.kron(rng.integers(0, 255, (30, 40, 3), dtype=np.uint8), np.ones((16, 16, 1), dtype=np.uint8))
    img = Image.fromarray(smooth).convert(mode)
    img.save(tmp_path / name, "JPEG", **save)
    return (tmp_path / name).read_bytes()


@pytest.mark.parametrize("min_side", [64, 100])
def test_progressive_and_greyscale_jpegs_take_the_fast_path(tmp_path, monkeypatch, simplejpeg_calls, min_side):
    _jpeg(tmp_path, "progressive.jpg", "RGB", progressive=True, quality=85)
    _jpeg(tmp_path, "grey.jpg", "L", quality=85)
    for name, mode in (("progressive.jpg", "RGB"), ("grey.jpg", "L")):
        simplejpeg_calls.clear()
        fast, slow = _both_paths(monkeypatch, tmp_path / name, min_side)
        assert len(simplejpeg_calls) == 1 and fast.mode == mode and fast.image.mode == "RGB"
        assert (fast.width, fast.height) == (640, 480)
        assert min_side <= min(fast.image.size) < 480
        assert _max_pixel_difference(fast, slow) <= 2


def test_mpo_jpeg_from_a_camera_is_decoded_reduced_like_any_jpeg(tmp_path, monkeypatch, simplejpeg_calls):
    photo = Image.open(shared_data("photos", "ukbench00000.jpg")).convert("RGB")
    path = tmp_path / "camera.jpg"  # a JPEG with a second picture (MPF), as many cameras and phones write
    photo.save(path, "MPO", save_all=True, append_images=[photo.rotate(90).resize((160, 120))])
    fast, slow = _both_paths(monkeypatch, path, 64)
    assert simplejpeg_calls and fast.format == "MPO" and fast.frames == 2
    assert (fast.width, fast.height) == (640, 480) and fast.image.size == (160, 120)  # reduced, first picture
    assert _max_pixel_difference(fast, slow) <= 2


def test_cmyk_jpeg_is_left_to_pillow(simplejpeg_calls):
    img = decode(shared_data("edge", "cmyk.jpg"), min_side=64)
    assert not simplejpeg_calls  # libjpeg-turbo cannot turn CMYK into RGB: Pillow's path, as before
    assert img.mode == "CMYK" and img.image.mode == "RGB" and (img.width, img.height) == (320, 240)


@pytest.mark.parametrize("min_side", [64, 224])
def test_truncated_jpeg_still_decodes_and_says_so(tmp_path, monkeypatch, simplejpeg_calls, min_side):
    data = shared_data("photos", "ukbench00000.jpg").read_bytes()
    cut = data[: len(data) * 6 // 10]
    fast, slow = _both_paths(monkeypatch, cut, min_side)
    assert simplejpeg_calls  # the fast path was tried, refused the damaged file, and Pillow kept what is there
    assert fast.truncated and slow.truncated
    assert fast.image.size == slow.image.size and _max_pixel_difference(fast, slow) == 0


def test_jpeg_cut_inside_its_header_fails_as_before(monkeypatch, simplejpeg_calls):
    data = shared_data("photos", "ukbench00000.jpg").read_bytes()
    head = data[:400]  # markers only: no frame, no scan
    errors = []
    for decoder in ("simplejpeg", "pillow"):
        monkeypatch.setattr(decode_module, "JPEG_DECODER", decoder)
        with pytest.raises(DecodeError) as info:
            decode(head, min_side=64)
        errors.append(str(info.value))
    assert errors[0] == errors[1]


def _heic_with_thumbnail(path, orientation: int = 1) -> None:
    pytest.importorskip("pillow_heif")
    src = Image.open(shared_data("photos", "ukbench00000.jpg")).convert("RGB")
    exif = Image.Exif()
    exif[0x0112] = orientation
    src.save(path, "HEIF", quality=90, thumbnails=[160], exif=exif.tobytes())


@pytest.mark.parametrize("orientation", [1, 6])
def test_heic_decodes_its_thumbnail_when_that_is_enough(tmp_path, orientation):
    path = tmp_path / "phone.heic"
    _heic_with_thumbnail(path, orientation)
    full = decode(path)
    small = decode(path, min_side=100)
    assert (small.width, small.height) == (full.width, full.height)  # full-size facts kept
    assert max(small.image.size) == 160  # the 160x120 thumbnail, not the whole picture
    assert (small.image.width > small.image.height) == (full.image.width > full.image.height)  # same way up
    def coarse(im):
        return np.asarray(im.resize((40, 30) if im.width > im.height else (30, 40), Image.Resampling.BOX), dtype=int)

    assert np.abs(coarse(small.image) - coarse(full.image)).mean() < 6  # a scaled copy of the same picture
    big = decode(path, min_side=200)  # more than the thumbnail has: the picture itself
    assert big.image.size == full.image.size
