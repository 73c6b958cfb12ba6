"""Test-only hooks to interrupt a run at a chosen point, the way a crash or ``kill -9`` would.

- ``LOOKALIKE_JOURNAL_TEST_DELAY=SECONDS``: sleep at every step point (so a test can kill the process mid-run).
- ``LOOKALIKE_JOURNAL_TEST_KILL=SEQ:POINT``: send SIGKILL to this process when operation SEQ reaches POINT
  (``intended``, ``checked``, ``kept``, ``staged``, ``acted``; see ``ops.py``), or ``SEQ:*`` at its first point.

Both are read from the environment at each call; they cost nothing when unset.
"""

from __future__ import annotations

import os
import signal
import time


def checkpoint(seq: int, point: str) -> None:
    delay = os.environ.get("LOOKALIKE_JOURNAL_TEST_DELAY")
    if delay:
        time.sleep(float(delay))
    kill = os.environ.get("LOOKALIKE_JOURNAL_TEST_KILL")
    if kill:
        want_seq, _, want_point = kill.partition(":")
        if int(want_seq) == seq and want_point in (point, "*"):
            os.kill(os.getpid(), getattr(signal, "SIGKILL", signal.SIGTERM))
