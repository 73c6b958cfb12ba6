"""Long operations (duplicates, sort, cluster, face training) as jobs with progress and cancel.

A job runs in a thread of the worker process that accepted it. Its state lives in a small JSON file
under the service's state folder, so any worker of the same service can answer ``GET /v1/jobs/{id}``
and ``DELETE /v1/jobs/{id}``: cancelling writes a marker file that the running job's progress callback
notices (library functions let an exception raised by ``progress`` propagate: that is how a job stops).

Each state names the process that runs it (pid and that process's start time). A job whose process is
gone (the service was killed, or crashed, while it ran) can never finish: it is marked failed, with a
reason, when a service starts on the same state folder and whenever its state is read.
"""

from __future__ import annotations

import json
import os
import threading
import time
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from lookalike.errors import LookalikeError
from lookalike.service.daemon import pid_alive
from lookalike.service.metrics import Metrics

Progress = Callable[[int, int], None]
JobFn = Callable[[Progress], Any]

TERMINAL = ("done", "failed", "cancelled")
INTERRUPTED = ("interrupted: the service stopped (killed or crashed) before this job finished; "
               "start it again")


def _process_start(pid: int) -> str | None:
    """When a process started (clock ticks since boot, from /proc), so a reused pid is not taken for
    the process that wrote a job; None where /proc is not available."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as fh:
            fields = fh.read().rsplit(b")", 1)[1].split()
        return fields[19].decode() if fields[0] != b"Z" else None
    except (OSError, IndexError):
        return None


def _alive(pid: int, started: str | None) -> bool:
    """The process ``pid`` runs (not a zombie) and is the one that started at ``started`` (pids are reused)."""
    if not pid_alive(pid):
        return False
    now = _process_start(pid)
    return started is None or now is None or now == started


class JobOutput:
    """What a job function may return instead of its bare result: the result plus more keys for the
    job's state (e.g. the content hashes a duplicates search saw, which the review's plan checks)."""

    def __init__(self, result: Any, extra: dict | None = None) -> None:
        self.result, self.extra = result, dict(extra or {})


class JobCancelled(Exception):
    """Raised from a job's progress callback once the job was cancelled."""


class JobStore:
    """Jobs of one service: started here, readable and cancellable from any of its workers."""

    def __init__(self, folder: str | Path, threads: int = 2, metrics: Metrics | None = None) -> None:
        self.folder = Path(folder)
        self.folder.mkdir(parents=True, exist_ok=True)
        self.pool = ThreadPoolExecutor(max_workers=max(1, threads), thread_name_prefix="lookalike-job")
        self.metrics = metrics or Metrics()
        self._events: dict[str, threading.Event] = {}
        self._lock = threading.RLock()  # held for a job's final write + forgetting it, and for settling
        self.owner = {"pid": os.getpid(), "started": _process_start(os.getpid()), "store": uuid.uuid4().hex}
        self.recover()

    # -- files -------------------------------------------------------------------------------
    def _file(self, job_id: str) -> Path:
        return self.folder / f"{job_id}.json"

    def _cancel_file(self, job_id: str) -> Path:
        return self.folder / f"{job_id}.cancel"

    def _write(self, state: dict) -> None:
        tmp = self.folder / f".{state['id']}.{os.getpid()}.{threading.get_ident()}.tmp"
        tmp.write_text(json.dumps(state))
        os.replace(tmp, self._file(state["id"]))

    def get(self, job_id: str) -> dict | None:
        """The job's state dict, or None when unknown. A job whose process is gone reads as failed."""
        if not _valid_id(job_id):
            return None
        try:
            state = json.loads(self._file(job_id).read_text())
        except (OSError, ValueError):
            return None
        if not isinstance(state, dict):
            return None
        return self._settle(state)

    def _orphaned(self, state: dict) -> bool:
        """True for an unfinished job that no live process will ever finish."""
        if state.get("state") in TERMINAL:
            return False
        owner = state.get("owner")
        if not isinstance(owner, dict):
            return True  # written before jobs named their process: its process is long gone
        pid, started = int(owner.get("pid") or 0), owner.get("started")
        if pid == self.owner["pid"] and started == self.owner["started"]:
            if owner.get("store") != self.owner["store"]:
                return False  # another store of this very process (tests): alive as long as we are
            with self._lock:
                return state.get("id") not in self._events
        return not _alive(pid, started)

    def _settle(self, state: dict) -> dict:
        """The state as read, or failed "interrupted" when no live process will finish it. The file is read
        again under the lock first: a job of this process may have finished since ``state`` was read (its
        final write and the forgetting of its event happen together under the same lock)."""
        if not self._orphaned(state):
            return state
        with self._lock:
            try:
                fresh = json.loads(self._file(str(state.get("id"))).read_text())
            except (OSError, ValueError):
                fresh = state
            if not isinstance(fresh, dict):
                fresh = state
            if not self._orphaned(fresh):
                return fresh
            fresh.update(state="failed", error=INTERRUPTED, finished=fresh.get("finished") or time.time())
            try:
                self._write(fresh)
            except OSError:
                pass
        self.metrics.inc("lookalike_jobs_total", kind=str(fresh.get("kind")), state="failed")
        return fresh

    def recover(self) -> list[str]:
        """Mark failed every unfinished job whose process is gone (at start); returns their ids."""
        failed = []
        for f in self.folder.glob("*.json"):
            if not _valid_id(f.stem):
                continue
            try:
                state = json.loads(f.read_text())
            except (OSError, ValueError):
                continue
            if isinstance(state, dict) and state.get("state") not in TERMINAL:
                if self._settle(state).get("state") == "failed":
                    failed.append(f.stem)
        return failed

    # -- life cycle --------------------------------------------------------------------------
    def submit(self, kind: str, fn: JobFn, params: dict | None = None) -> dict:
        """Start ``fn(progress)`` in the background; returns the new job's state."""
        job_id = uuid.uuid4().hex
        state = {
            "id": job_id, "kind": kind, "state": "queued", "params": params or {},
            "progress": {"done": 0, "total": 0}, "result": None, "error": None,
            "created": time.time(), "started": None, "finished": None, "owner": self.owner,
        }
        event = threading.Event()
        with self._lock:
            self._events[job_id] = event
        self._write(state)
        self.metrics.inc("lookalike_jobs_total", kind=kind, state="started")
        self.pool.submit(self._run, state, fn, event)
        return state

    def _run(self, state: dict, fn: JobFn, event: threading.Event) -> None:
        job_id = state["id"]
        last = [0.0]

        def cancelled() -> bool:
            return event.is_set() or self._cancel_file(job_id).exists()

        def progress(done: int, total: int) -> None:
            now = time.monotonic()
            if now - last[0] >= 0.2 or done >= total:
                if cancelled():
                    raise JobCancelled()
                last[0] = now
                state["progress"] = {"done": int(done), "total": int(total)}
                self._write(state)

        self.metrics.add("lookalike_jobs_running", 1)
        try:
            if cancelled():
                raise JobCancelled()
            state.update(state="running", started=time.time())
            self._write(state)
            result = fn(progress)
            if cancelled():
                raise JobCancelled()
            if isinstance(result, JobOutput):
                state.update({k: v for k, v in result.extra.items() if k not in state or k == "hashes"})
                result = result.result
            state.update(state="done", result=result)
        except JobCancelled:
            state.update(state="cancelled", error="cancelled on request")
        except LookalikeError as exc:
            state.update(state="failed", error=str(exc))
        except Exception as exc:  # a job must never take the worker down; no traceback to clients
            import logging

            logging.getLogger("lookalike.service").exception("job %s (%s) failed", job_id, state["kind"])
            state.update(state="failed", error=f"internal error ({type(exc).__name__}): {exc}")
        finally:
            self.metrics.add("lookalike_jobs_running", -1)
            state["finished"] = time.time()
            with self._lock:  # the final state and forgetting the job at once: a reader never sees one alone
                self._write(state)
                self._events.pop(job_id, None)
            self.metrics.inc("lookalike_jobs_total", kind=state["kind"], state=state["state"])
            try:
                self._cancel_file(job_id).unlink()
            except FileNotFoundError:
                pass

    def cancel(self, job_id: str) -> dict | None:
        """Ask a job to stop. Returns its state (unchanged when already finished), None when unknown."""
        state = self.get(job_id)
        if state is None:
            return None
        if state["state"] in TERMINAL:
            return state
        self._cancel_file(job_id).touch()
        with self._lock:
            ev = self._events.get(job_id)
        if ev is not None:
            ev.set()
        return self.get(job_id)

    def wait(self, job_id: str, timeout: float = 30.0) -> dict | None:
        """Poll until the job ends (for tests and the CLI)."""
        deadline = time.monotonic() + timeout
        while True:
            st = self.get(job_id)
            if st is None or st["state"] in TERMINAL or time.monotonic() > deadline:
                return st
            time.sleep(0.05)

    def shutdown(self) -> None:
        with self._lock:
            for ev in self._events.values():
                ev.set()
        self.pool.shutdown(wait=False, cancel_futures=True)


def _valid_id(job_id: str) -> bool:
    return len(job_id) == 32 and all(c in "0123456789abcdef" for c in job_id)
