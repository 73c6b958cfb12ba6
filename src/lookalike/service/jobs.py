"""Long operations (duplicates, sort, cluster, face training) as jobs with progress and cancel.

A job runs in a thread of the worker process that accepted it. Its state lives in a small JSON file
under the service's state folder, so any worker of the same service can answer ``GET /v1/jobs/{id}``
and ``DELETE /v1/jobs/{id}``: cancelling writes a marker file that the running job's progress callback
notices (library functions let an exception raised by ``progress`` propagate: that is how a job stops).
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
from lookalike.service.metrics import Metrics

Progress = Callable[[int, int], None]
JobFn = Callable[[Progress], Any]

TERMINAL = ("done", "failed", "cancelled")


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
        self._lock = threading.Lock()

    # -- files -------------------------------------------------------------------------------
    def _file(self, job_id: str) -> Path:
        return self.folder / f"{job_id}.json"

    def _cancel_file(self, job_id: str) -> Path:
        return self.folder / f"{job_id}.cancel"

    def _write(self, state: dict) -> None:
        tmp = self.folder / f".{state['id']}.{threading.get_ident()}.tmp"
        tmp.write_text(json.dumps(state))
        os.replace(tmp, self._file(state["id"]))

    def get(self, job_id: str) -> dict | None:
        """The job's state dict, or None when unknown."""
        if not _valid_id(job_id):
            return None
        try:
            return json.loads(self._file(job_id).read_text())
        except (FileNotFoundError, ValueError):
            return None

    # -- life cycle --------------------------------------------------------------------------
    def submit(self, kind: str, fn: JobFn, params: dict | None = None) -> dict:
        """Start ``fn(progress)`` in the background; returns the new job's state."""
        job_id = uuid.uuid4().hex
        state = {
            "id": job_id, "kind": kind, "state": "queued", "params": params or {},
            "progress": {"done": 0, "total": 0}, "result": None, "error": None,
            "created": time.time(), "started": None, "finished": None,
        }
        self._write(state)
        event = threading.Event()
        with self._lock:
            self._events[job_id] = event
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
            self._write(state)
            self.metrics.inc("lookalike_jobs_total", kind=state["kind"], state=state["state"])
            with self._lock:
                self._events.pop(job_id, None)
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
