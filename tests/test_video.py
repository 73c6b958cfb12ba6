"""`lookalike video` / lookalike.video.unique_frames on the real clips in ../shared/data/video."""

from __future__ import annotations

import hashlib
import math
import re
from pathlib import Path

import cv2
import numpy as np
import pytest
from PIL import Image

from conftest import shared_data
from lookalike.errors import UsageError
from lookalike.media.video_reader import VideoReader, centre_crop_box, format_timestamp, iter_videos
from lookalike.video import FrameDeduper, unique_frames

BBB = "big_buck_bunny_60s_640x360.mp4"
VTEST = "vtest.avi"
#: Hard cuts of Big Buck Bunny's first minute (shared/data/README.md).
CUTS = (11.9, 15.75, 23.0, 47.7, 56.1)
NAME = re.compile(r"^(?P<stem>.+)_(?P<h>\d{2})-(?P<m>\d{2})-(?P<s>\d{2})\.(?P<ms>\d{3})(?:_\d+)?\.jpg$")


def clip(name: str) -> Path:
    return shared_data("video", name)


def read_frames(path: Path, indices: list[int]) -> dict[int, np.ndarray]:
    """Frames of a clip by index, RGB, read in one sequential pass with plain OpenCV (the reference)."""
    want, got = set(indices), {}
    cap = cv2.VideoCapture(str(path), cv2.CAP_FFMPEG)
    try:
        for i in range(max(want) + 1):
            assert cap.grab()
            if i in want:
                ok, bgr = cap.retrieve()
                assert ok
                got[i] = cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
        return got
    finally:
        cap.release()


def mad(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.abs(a.astype(np.float32) - b.astype(np.float32)).mean())


def sha(path: str | Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


@pytest.fixture(scope="module")
def bbb_report(tmp_path_factory):
    """Big Buck Bunny at the default rate (2 fps), run once for several tests."""
    src = clip(BBB)
    out = tmp_path_factory.mktemp("bbb-frames")
    seen: list[tuple[int, int]] = []
    report = unique_frames([src], out, progress=lambda d, t: seen.append((d, t)))
    return report, out, seen


def test_scene_cuts_are_kept(bbb_report):
    report, _, _ = bbb_report
    (v,) = report.videos
    assert v.error is None and v.frames_read == 1440 and v.frames_sampled == 120
    times = [k.timestamp_s for k in v.kept]
    for cut in CUTS:
        after = [t for t in times if cut < t <= cut + 1.0]
        assert after, f"no frame kept within 1 s after the cut at {cut} s (kept: {times})"


def test_duplicates_are_suppressed_and_still_stretch_yields_few(bbb_report):
    report, _, _ = bbb_report
    (v,) = report.videos
    times = [k.timestamp_s for k in v.kept]
    # 21-23 s is a title card: 4 samples there, at most one of them new.
    assert len([t for t in times if 21.0 <= t < 23.0]) <= 1
    # The slow, low-motion shot 12-15.5 s (8 samples) starts with the cut frame and adds nothing.
    assert len([t for t in times if 12.0 <= t <= 15.5]) <= 2
    assert 10 < len(v.kept) < 0.6 * v.frames_sampled


def test_names_and_timestamps(bbb_report):
    report, out, _ = bbb_report
    (v,) = report.videos
    files = sorted(p.name for p in out.iterdir())
    assert files == sorted(Path(k.path).name for k in v.kept)
    src = clip(BBB)
    for k in v.kept:
        m = NAME.match(Path(k.path).name)
        assert m and m["stem"] == "big_buck_bunny_60s_640x360", k.path
        named = int(m["h"]) * 3600 + int(m["m"]) * 60 + int(m["s"]) + int(m["ms"]) / 1000
        assert named == pytest.approx(k.timestamp_s, abs=0.0006)
        # 2 fps on a 24 fps clip: frames 0, 12, 24, ... at exactly index / 24 s.
        assert k.index % 12 == 0 and k.timestamp_s == pytest.approx(k.index / 24, abs=1e-3)
    # The written pixels are the frame at that time (JPEG loss only), not a neighbour.
    checked = (v.kept[len(v.kept) // 2], v.kept[-1])
    refs = read_frames(src, [i for k in checked for i in (k.index, k.index + 6)])
    for k in checked:
        written = np.asarray(Image.open(k.path).convert("RGB"))
        ref = refs[k.index]
        assert written.shape == (360, 640, 3)
        assert mad(written, ref) < 4.0
        assert mad(written, refs[k.index + 6]) > mad(written, ref)
    j = report.to_json()
    kept = j["videos"][0]["kept"]
    assert kept[0]["time"] == "00:00:00.000" and kept[0]["path"] == v.kept[0].path
    assert j["errors"] == [] and j["frames_kept"] == len(v.kept)


def test_progress_reaches_total(bbb_report):
    _, _, seen = bbb_report
    assert seen and seen[-1] == (1440, 1440)
    assert all(b[0] >= a[0] for a, b in zip(seen, seen[1:], strict=False))


def test_non_consecutive_repeat_is_suppressed(tmp_path):
    """A-B-A clip made of real frames: the second A is a repeat of a frame kept long before."""
    src = clip(BBB)
    ref = read_frames(src, [516, 900])
    a = [ref[516]]  # title card (21.5 s)
    b = ref[900]  # 37.5 s, another shot
    made = tmp_path / "aba.avi"
    w = cv2.VideoWriter(str(made), cv2.VideoWriter_fourcc(*"MJPG"), 10, (640, 360))
    assert w.isOpened()
    for frame in a * 10 + [b] * 10 + a * 10:
        w.write(cv2.cvtColor(frame, cv2.COLOR_RGB2BGR))
    w.release()
    report = unique_frames([made], tmp_path / "out", every=1)
    (v,) = report.videos
    assert v.frames_sampled == 30
    times = [round(k.timestamp_s, 3) for k in v.kept]
    assert times == [0.0, 1.0], times  # A at 0 s, B at 1 s, A again at 2 s suppressed


def test_deduper_compares_with_all_kept_frames():
    src = clip(BBB)
    d = FrameDeduper()
    frames = list(read_frames(src, [516, 900, 1300]).values())
    for f in frames:
        h, t = d.signature(f)
        assert not d.is_duplicate(h, t)
        d.add(h, t)
    h, t = d.signature(frames[0])
    assert d.is_duplicate(h, t)
    # Same structure, much darker (a fade): the pixel check keeps it.
    h, t = d.signature((frames[0] * 0.4).astype(np.uint8))
    assert not d.is_duplicate(h, t)


def test_crop_geometry(tmp_path):
    src = clip(VTEST)
    report = unique_frames([src], tmp_path, every=400, crop=0.85, threshold=0)
    (v,) = report.videos
    x, y, w, h = centre_crop_box(480, 360, 0.85)
    assert (w, h) == (round(480 * math.sqrt(0.85)), round(360 * math.sqrt(0.85))) == (443, 332)
    assert (x, y) == ((480 - 443) // 2, (360 - 332) // 2)
    assert abs(w * h / (480 * 360) - 0.85) < 0.005
    assert [k.index for k in v.kept] == [0, 400]
    refs = read_frames(src, [k.index for k in v.kept])
    for k in v.kept:
        written = np.asarray(Image.open(k.path).convert("RGB"))
        assert written.shape == (h, w, 3)
        full = refs[k.index]
        assert mad(written, full[y : y + h, x : x + w]) < 4.0
        assert mad(written, full[:h, :w]) > 2 * mad(written, full[y : y + h, x : x + w])
    with pytest.raises(UsageError):
        unique_frames([src], tmp_path, crop=1.5)


def test_every_and_fps_sampling(tmp_path):
    bbb, vt = clip(BBB), clip(VTEST)
    r = unique_frames([bbb], tmp_path / "every", every=240, threshold=0)
    (v,) = r.videos
    assert v.frames_sampled == 6  # frames 0, 240, ..., 1200
    assert [k.index for k in v.kept] == [0, 240, 480, 720, 960, 1200]
    assert [round(k.timestamp_s, 3) for k in v.kept] == [0.0, 10.0, 20.0, 30.0, 40.0, 50.0]
    # 0.5 fps on the 10 fps clip: one frame every 2 s of its 79.5 s.
    r = unique_frames([vt], tmp_path / "fps", fps=0.5, threshold=0, pixel_threshold=-1)
    (v,) = r.videos
    assert v.frames_sampled == 40 and len(v.kept) == 40
    assert [round(k.timestamp_s, 3) for k in v.kept] == [2.0 * i for i in range(40)]
    assert [k.index for k in v.kept] == [20 * i for i in range(40)]
    with pytest.raises(UsageError):
        unique_frames([vt], tmp_path, every=2, fps=1.0)


def test_long_gaps_are_crossed_by_seeking_to_the_right_frame():
    src = clip(VTEST)
    with VideoReader(src) as reader:
        got = list(reader.frames(every=350))
    assert [f.index for f in got] == [0, 350, 700]
    assert [round(f.timestamp_s, 3) for f in got] == [0.0, 35.0, 70.0]
    refs = read_frames(src, [f.index for f in got])
    for f in got:
        assert mad(f.image, refs[f.index]) < 0.5


def test_bad_files_are_reported_and_the_run_goes_on(tmp_path):
    bad = tmp_path / "notes.mp4"
    bad.write_text("not a video at all\n")
    empty = tmp_path / "empty.avi"
    empty.write_bytes(b"")
    still = shared_data("photos", "ukbench00000.jpg")
    report = unique_frames([bad, empty, still, clip(VTEST)], tmp_path / "out", every=200)
    by_path = {Path(v.path).name: v for v in report.videos}
    assert "not a readable video" in by_path["notes.mp4"].error
    assert "empty" in by_path["empty.avi"].error
    assert "still image" in by_path["ukbench00000.jpg"].error
    good = by_path[VTEST]
    assert good.error is None and good.kept and all(Path(k.path).is_file() for k in good.kept)
    assert {e["path"] for e in report.to_json()["errors"]} == {str(bad), str(empty), str(still)}
    # A misspelt path is not a bad video: like in every command, it stops the run before anything is written
    # (issue 13).
    with pytest.raises(UsageError, match="^no such file or folder: .*missing.mov$"):
        unique_frames([clip(VTEST), tmp_path / "missing.mov"], tmp_path / "out2", every=200)
    assert not (tmp_path / "out2").exists()


def test_truncated_video_keeps_its_frames_and_warns(tmp_path):
    cut = tmp_path / "cut.mp4"
    cut.write_bytes(clip(BBB).read_bytes()[:1_500_000])
    report = unique_frames([cut], tmp_path / "out", fps=1)
    (v,) = report.videos
    assert v.error is None and v.kept and 0 < v.frames_read < 1440
    assert "truncated" in v.warning


def test_existing_files_are_never_overwritten(tmp_path):
    src = clip(VTEST)
    out = tmp_path / "out"
    out.mkdir()
    squatter = out / "vtest_00-00-00.000.jpg"
    squatter.write_bytes(b"the user's own file")
    first = unique_frames([src], out, every=300, threshold=0)
    before = {p.name: sha(p) for p in out.iterdir()}
    second = unique_frames([src], out, every=300, threshold=0)
    assert squatter.read_bytes() == b"the user's own file"
    assert [Path(k.path).name for k in first.videos[0].kept] == [
        "vtest_00-00-00.000 (1).jpg", "vtest_00-00-30.000.jpg", "vtest_00-01-00.000.jpg"]
    assert [Path(k.path).name for k in second.videos[0].kept] == [
        "vtest_00-00-00.000 (2).jpg", "vtest_00-00-30.000 (1).jpg", "vtest_00-01-00.000 (1).jpg"]
    assert all(sha(out / name) == digest for name, digest in before.items())
    assert len(list(out.iterdir())) == 7


def test_taken_names_follow_the_journal_rule_and_links_are_not_written_through(tmp_path):
    """A frame's name taken by a dangling symlink gets the journal's free name `` (1)`` (fsops.free_name, the one
    rule of every writer); the link's target is never created (the file is opened with O_EXCL)."""
    out = tmp_path / "out"
    out.mkdir()
    target = tmp_path / "elsewhere.jpg"
    (out / "vtest_00-00-00.000.jpg").symlink_to(target)
    report = unique_frames([clip(VTEST)], out, every=300, threshold=0)
    assert Path(report.videos[0].kept[0].path).name == "vtest_00-00-00.000 (1).jpg"
    assert not target.exists() and (out / "vtest_00-00-00.000.jpg").is_symlink()


def test_progress_exception_propagates(tmp_path):
    def stop(done: int, total: int) -> None:
        if done > 100:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        unique_frames([clip(VTEST)], tmp_path, every=50, progress=stop)


def test_walk_and_timestamp_format(tmp_path):
    (tmp_path / "a" / "b").mkdir(parents=True)
    (tmp_path / "a" / "b" / "x.MP4").write_bytes(b"")
    (tmp_path / "a" / "y.mkv").write_bytes(b"")
    (tmp_path / "a" / "notes.txt").write_text("x")
    (tmp_path / ".hidden").mkdir()
    (tmp_path / ".hidden" / "z.mp4").write_bytes(b"")
    found = [Path(p).relative_to(tmp_path).as_posix() for p, err in iter_videos([tmp_path]) if err is None]
    assert found == ["a/y.mkv", "a/b/x.MP4"]  # the shared walk: a folder's files, then its sub-folders
    assert [Path(p).name for p, _ in iter_videos([tmp_path], recursive=False)] == []
    assert format_timestamp(3723.4567) == "01-02-03.457"
    assert format_timestamp(59.9996, ":") == "00:01:00.000"


def test_cli_video(run_cli, tmp_path):
    bad = tmp_path / "bad.mov"
    bad.write_text("nope")
    out = tmp_path / "frames"
    res = run_cli("video", str(bad), str(clip(VTEST)), "--out", str(out), "--fps", "0.2", "--crop", "0.85", "--json",
                  check=False)
    assert res.returncode == 1  # bad.mov was named and could not be read
    j = res.json()
    assert [e["path"] for e in j["errors"]] == [str(bad)]
    (good,) = [v for v in j["videos"] if v["error"] is None]
    assert good["frames_sampled"] == 16 and good["frames_kept"] == len(good["kept"]) >= 1
    assert sorted(p.name for p in out.iterdir()) == sorted(Path(k["path"]).name for k in good["kept"])
    assert all(Image.open(k["path"]).size == (443, 332) for k in good["kept"])

    # Human output; errors on stderr; the good video is still written, but the exit status is 1 because a
    # video named on the command line could not be read (issue 10: a requested output was not made).
    res = run_cli("video", str(bad), str(clip(VTEST)), "--out", str(tmp_path / "f2"), "--every", "400", check=False)
    assert res.returncode == 1
    assert "kept 2 of 2 sampled frames" in res.stdout or "kept 1 of 2 sampled frames" in res.stdout
    assert "bad.mov" in res.stderr and "not a readable video" in res.stderr

    # Nothing readable: exit 1 with a clear line; conflicting options: a clean usage error.
    res = run_cli("video", str(bad), "--out", str(tmp_path / "f3"), check=False)
    assert res.returncode == 1 and "not a readable video" in res.stderr
    res = run_cli("video", str(clip(VTEST)), "--out", str(tmp_path / "f4"), "--every", "5", "--fps", "2", check=False)
    assert res.returncode == 1 and "either --every or --fps" in res.stderr and "Traceback" not in res.stderr


def test_cli_defaults_match_library():
    from lookalike.cli import video as cli_video
    from lookalike.media.video_reader import DEFAULT_SAMPLE_FPS
    from lookalike.video import DEFAULT_THRESHOLD

    assert cli_video.DEFAULT_SAMPLE_FPS == DEFAULT_SAMPLE_FPS
    assert cli_video.DEFAULT_THRESHOLD == DEFAULT_THRESHOLD
