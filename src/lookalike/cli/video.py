"""`lookalike video`: write the unique frames of videos."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from lookalike.cli.common import JsonOption, console, out, print_json, progress_bar
from lookalike.errors import UsageError

# Kept in step with lookalike.media.video_reader.DEFAULT_SAMPLE_FPS and lookalike.video.DEFAULT_THRESHOLD (a test
# checks): the library imports OpenCV, which this module must not load just to build the command line.
DEFAULT_SAMPLE_FPS = 2.0
DEFAULT_THRESHOLD = 10


HELP = (
    "Write the unique frames of one or many videos as JPEGs named <video-stem>_<hh-mm-ss.mmm>.jpg "
    "(the frame's time in the video).\n\n"
    "Each sampled frame is compared with every frame kept so far from the same video (64-bit perceptual hash, "
    "confirmed on a 32x32 thumbnail), so repeats are dropped whether they are consecutive or not, while scene "
    "changes, fades and new content are kept.\n\n"
    "Existing files in --out are never overwritten: a free name is picked (... (1).jpg). A video that cannot be "
    "read (a damaged clip, or not a regular file: a FIFO, a device) is reported and the others are still processed; "
    "the exit code is 1 when a video named on the command line could not be read, or when no video could be read "
    "(a bad file found inside a folder is reported only).\n\n"
    "Examples: lookalike video clip.mp4 --out frames/ ; lookalike video ~/Videos --out frames/ --fps 1 --crop 0.85"
)


def register(app: typer.Typer) -> None:
    short = "Write the unique frames of videos: repeats dropped, scene changes kept."
    app.command("video", help=HELP, short_help=short)(video_cmd)


def video_cmd(
    sources: Annotated[
        list[Path], typer.Argument(help="Video files, or folders searched for videos (by extension).", exists=False)
    ],
    out_dir: Annotated[Path, typer.Option("--out", "-o", help="Folder to write the frames to (created if missing).")],
    every: Annotated[
        int | None, typer.Option("--every", help="Sample every Nth frame (1 = every frame).", min=1)
    ] = None,
    fps: Annotated[
        float | None,
        typer.Option("--fps", help=f"Sample F frames per second of video (default {DEFAULT_SAMPLE_FPS:g}).", min=0.0),
    ] = None,
    crop: Annotated[
        float | None,
        typer.Option("--crop", help="Keep this fraction of the frame's AREA, centred (e.g. 0.85), before comparing "
                     "and writing.", min=0.0, max=1.0),
    ] = None,
    threshold: Annotated[
        int | None,
        typer.Option("--threshold", "-t", help="Frames within T bits (of 64) of a kept frame's perceptual hash, and "
                     f"alike pixel for pixel, are duplicates. Higher keeps fewer (default {DEFAULT_THRESHOLD}).",
                     min=0, max=64),
    ] = None,
    recursive: Annotated[bool, typer.Option("--recursive/--no-recursive", help="Enter sub-folders.")] = True,
    json_out: JsonOption = False,
) -> None:
    """Write the unique frames of videos (see HELP)."""
    if every is not None and fps is not None:
        raise UsageError("give either --every or --fps, not both")
    from lookalike.video import unique_frames

    with progress_bar("frames", not json_out) as progress:
        report = unique_frames(
            [str(s) for s in sources], out_dir, every=every, fps=fps, crop=crop, threshold=threshold,
            progress=progress, recursive=recursive,
        )
    if json_out:
        print_json(report.to_json())
    else:
        for v in report.videos:
            if v.error:
                console.print(f"[red]error:[/red] {v.path}: {v.error}", highlight=False, soft_wrap=True)
                continue
            out.print(
                f"{v.path}: kept {len(v.kept)} of {v.frames_sampled} sampled frames ({v.frames_read} read)",
                highlight=False,
            )
            if v.warning:
                console.print(f"[yellow]warning:[/yellow] {v.path}: {v.warning}", highlight=False, soft_wrap=True)
        ok = len(report.videos) - len(report.errors)
        out.print(
            f"wrote {report.frames_kept} frames from {ok} video(s) to {report.out_dir} in {report.seconds:.1f}s"
            + (f"; {len(report.errors)} failed" if report.errors else ""),
            highlight=False,
        )
    if not report.videos:
        if not json_out:
            console.print("[red]error:[/red] no video found in the given paths", highlight=False)
        raise typer.Exit(1)
    if len(report.errors) == len(report.videos) or report.failed_inputs:
        raise typer.Exit(1)
