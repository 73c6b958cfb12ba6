"""Speed of `lookalike video` (unique frames) against plain OpenCV decoding of the same clips.

    python bench/video_frames.py                 # the clips in ../shared/data/video ($LOOKALIKE_SHARED)
    python bench/video_frames.py CLIP [CLIP...]

For each clip prints, in video frames per second of wall time:
  grab floor     cap.grab() over every frame (demux + decode, no colour conversion): the fastest pass
  read floor     cap.read() over every frame (decode + BGR copy)
  unique 2 fps   unique_frames at the default rate (2 fps), writing the kept JPEGs: vs the grab floor
  unique all     unique_frames --every 1 (every frame hashed and compared): vs the read floor
Then sampling every Nth frame by grab() only vs by seeking, which sets where the reader switches to seeks,
and the peak resident memory of the process. Every timing is the best of 3 runs.
"""

from __future__ import annotations

import os
import resource
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

import cv2  # noqa: E402

import lookalike.media.video_reader as media_video  # noqa: E402
from lookalike.video import unique_frames  # noqa: E402

SHARED = Path(os.environ.get("LOOKALIKE_SHARED", ROOT.parent / "shared"))


REPEAT = 3  # each timing is the best of this many runs (a 2-core machine is noisy)


def best(fn, *args, **kw):
    """Run ``fn`` REPEAT times; return the result whose last element (seconds) is smallest."""
    return min((fn(*args, **kw) for _ in range(REPEAT)), key=lambda r: r[-1])


def floor(path: Path, retrieve: bool) -> tuple[int, float]:
    cap = cv2.VideoCapture(str(path), cv2.CAP_FFMPEG)
    t = time.perf_counter()
    n = 0
    while cap.grab():
        if retrieve:
            cap.retrieve()
        n += 1
    cap.release()
    return n, time.perf_counter() - t


def run_unique(path: Path, **kw) -> tuple[int, int, int, float]:
    with tempfile.TemporaryDirectory() as out:
        t = time.perf_counter()
        rep = unique_frames([path], out, **kw)
        dt = time.perf_counter() - t
    (v,) = rep.videos
    if v.error:
        raise SystemExit(f"{path}: {v.error}")
    return v.frames_read, v.frames_sampled, len(v.kept), dt


def sample_time(path: Path, every: int, seek: bool) -> float:
    saved = media_video.SEEK_MIN_GAP, media_video.SEEK_MIN_SECONDS
    media_video.SEEK_MIN_GAP, media_video.SEEK_MIN_SECONDS = (0, 0.0) if seek else (10**12, 1e12)
    try:
        t = time.perf_counter()
        with media_video.VideoReader(path) as r:
            for _ in r.frames(every=every):
                pass
        return time.perf_counter() - t
    finally:
        media_video.SEEK_MIN_GAP, media_video.SEEK_MIN_SECONDS = saved


def main(argv: list[str]) -> None:
    clips = [Path(a) for a in argv] or sorted((SHARED / "data" / "video").glob("*.*"))
    if not clips:
        raise SystemExit(f"no clips given and none in {SHARED / 'data' / 'video'}")
    print(f"OpenCV {cv2.__version__}, {os.cpu_count()} CPU(s)\n")
    print(f"{'clip':34} {'frames':>6} {'grab f/s':>9} {'read f/s':>9} {'2fps f/s':>9} {'vs grab':>7} "
          f"{'kept/sampled':>12} {'all f/s':>8} {'vs read':>7} {'kept/all':>9}")
    for clip in clips:
        n, t_grab = best(floor, clip, retrieve=False)
        _, t_read = best(floor, clip, retrieve=True)
        read2, sampled2, kept2, t2 = best(run_unique, clip)
        read1, sampled1, kept1, t1 = best(run_unique, clip, every=1)
        print(f"{clip.name[:34]:34} {n:6d} {n / t_grab:9.0f} {n / t_read:9.0f} {read2 / t2:9.0f} "
              f"{(read2 / t2) / (n / t_grab):7.2f} {f'{kept2}/{sampled2}':>12} {read1 / t1:8.0f} "
              f"{(read1 / t1) / (n / t_read):7.2f} {f'{kept1}/{sampled1}':>9}")
    print("\nsampling every Nth frame: seconds by grab() only vs by seeking (lower is better)")
    print(f"{'clip':34} {'N':>5} {'grab s':>7} {'seek s':>7}")
    for clip in clips:
        for every in (24, 96, 240, 480):
            grab = min(sample_time(clip, every, False) for _ in range(REPEAT))
            seek = min(sample_time(clip, every, True) for _ in range(REPEAT))
            print(f"{clip.name[:34]:34} {every:5d} {grab:7.2f} {seek:7.2f}")
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"\npeak RSS {rss:.0f} MiB")


if __name__ == "__main__":
    main(sys.argv[1:])
