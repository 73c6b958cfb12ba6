"""Test-only crash points: run lookalike in a fresh interpreter that is killed (SIGKILL) or slowed down at a
journal step point, the way a crash or ``kill -9`` would stop it.

Production code has no such switch (no environment variable, no option): ``lookalike.journal.ops.step_point``
is a no-op, and this runner replaces it in its own process only, then runs the CLI or a snippet::

    python tests/crash_points.py --kill 1:intended -- apply plan.json     # `lookalike apply plan.json`
    python tests/crash_points.py --delay 0.06 -c "CODE" ARG...            # like `python -c CODE ARG...`

``--kill SEQ:POINT``: SIGKILL when operation SEQ reaches POINT (``intended``, ``checked``, ``kept``, ``staged``,
``acted``; see ``journal/ops.py``), ``SEQ:*`` at its first point. ``--delay SECONDS``: sleep at every point.
Tests build the command with :func:`command`.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
import time
from collections.abc import Sequence
from pathlib import Path

RUNNER = Path(__file__).resolve()


def command(args: Sequence[object] = (), *, kill: str | None = None, delay: float | None = None,
            code: str | None = None) -> list[str]:
    """The argv that runs ``lookalike ARGS...`` (or ``python -c CODE ARGS...``) with these crash points."""
    cmd = [sys.executable, str(RUNNER)]
    if kill is not None:
        cmd += ["--kill", kill]
    if delay is not None:
        cmd += ["--delay", str(delay)]
    if code is not None:
        cmd += ["-c", code]
    return [*cmd, "--", *map(str, args)]


def install(kill: str | None = None, delay: float | None = None) -> None:
    """Replace the journal's no-op step point, in this process, by one that sleeps and/or kills it."""
    from lookalike.journal import ops

    want_seq, _, want_point = (kill or "").partition(":")

    def step_point(seq: int, point: str) -> None:
        if delay:
            time.sleep(delay)
        if kill and int(want_seq) == seq and want_point in (point, "*"):
            os.kill(os.getpid(), getattr(signal, "SIGKILL", signal.SIGTERM))

    ops.step_point = step_point


def main(argv: Sequence[str]) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--kill", metavar="SEQ:POINT")
    parser.add_argument("--delay", type=float, metavar="SECONDS")
    parser.add_argument("-c", dest="code", metavar="CODE", help="run this Python code instead of the CLI")
    parser.add_argument("args", nargs="*")
    opts = parser.parse_args(argv)
    install(opts.kill, opts.delay)
    if opts.code is not None:
        sys.argv = ["-c", *opts.args]
        exec(compile(opts.code, "<crash_points -c>", "exec"), {"__name__": "__main__"})
        return
    from lookalike.cli import main as cli_main

    sys.argv = ["lookalike", *opts.args]
    cli_main()


if __name__ == "__main__":
    main(sys.argv[1:])
