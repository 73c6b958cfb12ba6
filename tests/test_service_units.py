"""In-process parts of the service: request batching, idle unload, jobs, client retries."""

from __future__ import annotations

import threading
import time

import httpx
import numpy as np
import pytest

from conftest import needs_effnet, shared_data
from lookalike.client import Client, ServiceError
from lookalike.features import registry
from lookalike.media import decode
from lookalike.service.jobs import JobStore
from lookalike.service.metrics import Metrics
from lookalike.service.model_pool import Batcher, ModelPool


@needs_effnet
def test_batcher_batches_concurrent_requests_and_matches_single_calls():
    photos = shared_data("photos")
    ext = registry.load_extractor("effnet")
    prepared = [ext.prepare(decode(str(photos / f"ukbench{i:05d}.jpg"), min_side=224).image) for i in range(12)]
    alone = np.stack([ext.infer(p[None])[0] for p in prepared])
    metrics = Metrics()
    batcher = Batcher(ext, window_s=0.05, max_batch=16, metrics=metrics)
    out: dict[int, np.ndarray] = {}
    barrier = threading.Barrier(len(prepared))

    def worker(i: int) -> None:
        barrier.wait()
        out[i] = batcher.submit(prepared[i]).result(timeout=60)

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(len(prepared))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    batcher.close()
    got = np.stack([out[i] for i in range(len(prepared))])
    assert np.allclose(got, alone, atol=2e-3)
    h = next(iter(metrics.hists["lookalike_embed_batch_size"].values()))
    assert h.sum == len(prepared) and h.count < len(prepared)  # fewer model calls than requests


@needs_effnet
def test_idle_models_are_unloaded_and_reload_on_use():
    metrics = Metrics()
    holder = ModelPool(metrics, idle_s=0.3)
    try:
        first = holder.get("effnet")
        assert holder.loaded() == ["effnet"]
        deadline = time.monotonic() + 5
        while holder.loaded() and time.monotonic() < deadline:
            time.sleep(0.05)
        assert holder.loaded() == []
        assert metrics.gauges["lookalike_models_loaded"][(("model", "effnet"),)] == 0
        again = holder.get("effnet")
        assert again is not first  # loaded afresh
        assert metrics.counter_value("lookalike_model_loads_total", model="effnet") == 2
    finally:
        holder.close()


def test_model_in_use_is_not_unloaded():
    holder = ModelPool(Metrics(), idle_s=0)
    holder.get("dhash")
    holder._busy["dhash"] = 1
    assert holder.unload("dhash") is False
    holder._busy["dhash"] = 0
    assert holder.unload("dhash") is True and holder.loaded() == []


def test_job_store_progress_cancel_and_errors(tmp_path):
    jobs = JobStore(tmp_path, threads=2)
    started = threading.Event()

    def slow(progress):
        for i in range(1000):
            progress(i, 1000)
            started.set()
            time.sleep(0.01)
        return {"never": True}

    job = jobs.submit("slow", slow)
    assert started.wait(5)
    time.sleep(0.3)
    mid = jobs.get(job["id"])
    assert mid["state"] == "running" and 0 < mid["progress"]["done"] < 1000
    # a second store over the same folder (another worker process) can cancel it
    other = JobStore(tmp_path, threads=1)
    other.cancel(job["id"])
    final = jobs.wait(job["id"], timeout=10)
    assert final["state"] == "cancelled" and final["result"] is None

    from lookalike.errors import UsageError

    def bad(progress):
        raise UsageError("no such folder: /x")

    assert jobs.wait(jobs.submit("bad", bad)["id"])["error"] == "no such folder: /x"

    def boom(progress):
        raise RuntimeError("kaboom")

    failed = jobs.wait(jobs.submit("boom", boom)["id"])
    assert failed["state"] == "failed" and "RuntimeError" in failed["error"]
    assert jobs.get("../../etc/passwd") is None
    jobs.shutdown()
    other.shutdown()


def test_a_job_that_finishes_while_it_is_read_is_never_called_interrupted(tmp_path):
    """A reader holding the state of a job read while it ran, settled after the job finished (its event gone):
    the job is done, not "interrupted", and its finished state on disk stays (CI saw this race)."""
    jobs = JobStore(tmp_path, threads=1)
    job = jobs.submit("quick", lambda progress: {"ok": True})
    stale = dict(job, state="running")  # what a concurrent get() had read before the final write
    done = jobs.wait(job["id"], timeout=10)
    assert done["state"] == "done"
    assert jobs._settle(stale)["state"] == "done"
    assert jobs.get(job["id"])["state"] == "done" and jobs.get(job["id"])["result"] == {"ok": True}
    jobs.shutdown()


def test_client_retries_on_503_then_succeeds():
    calls = []

    def handler(request: httpx.Request) -> httpx.Response:
        calls.append(request.url.path)
        if len(calls) < 3:
            return httpx.Response(503, json={"error": {"status": 503, "code": "busy", "message": "busy"}})
        return httpx.Response(200, json={"status": "ok"})

    c = Client("http://svc.test", retries=3, backoff=0.001)
    c.http = httpx.Client(base_url="http://svc.test", transport=httpx.MockTransport(handler))
    assert c.health() == {"status": "ok"} and len(calls) == 3


def test_client_does_not_retry_mutations_after_sending():
    calls = []

    def handler(request: httpx.Request) -> httpx.Response:
        calls.append(request.url.path)
        return httpx.Response(503, json={"error": {"status": 503, "code": "busy", "message": "busy"}})

    c = Client("http://svc.test", retries=3, backoff=0.001)
    c.http = httpx.Client(base_url="http://svc.test", transport=httpx.MockTransport(handler))
    with pytest.raises(ServiceError) as err:
        c.undo()
    assert err.value.status == 503 and calls == ["/v1/undo"]


def test_client_gives_up_on_an_unreachable_service():
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    c = Client(f"http://127.0.0.1:{port}", retries=2, backoff=0.01, timeout=2)
    t0 = time.monotonic()
    with pytest.raises(ServiceError) as err:
        c.health()
    assert err.value.code == "unreachable" and time.monotonic() - t0 < 5
