"""Models held by one worker: loaded once, kept while used, unloaded after an idle time, and fed in
batches.

Embedding requests do their own decoding and ``prepare`` (in request threads, in parallel), then hand
the small prepared array to the model's :class:`Batcher`. The batcher's thread takes whatever is
waiting (after a short window for the first request of a quiet spell) and runs one model call for all
of it, so under load the model sees batches of 8-16 instead of 8 concurrent calls that fight over the
same cores.
"""

from __future__ import annotations

import queue
import threading
import time
from concurrent.futures import Future

import numpy as np
from PIL import Image

from lookalike.features import Extractor, registry
from lookalike.service.metrics import Metrics


class Batcher:
    """Collects prepared pictures from many threads and runs them through one extractor in batches."""

    def __init__(self, extractor: Extractor, window_s: float, max_batch: int, metrics: Metrics) -> None:
        self.extractor, self.window_s, self.max_batch, self.metrics = extractor, window_s, max(1, max_batch), metrics
        self._q: queue.Queue[tuple[np.ndarray, Future] | None] = queue.Queue()
        self._thread = threading.Thread(target=self._loop, name=f"batcher-{extractor.id}", daemon=True)
        self._thread.start()

    def submit(self, prepared: np.ndarray) -> Future:
        fut: Future = Future()
        self._q.put((prepared, fut))
        return fut

    def close(self) -> None:
        self._q.put(None)

    def _loop(self) -> None:
        while True:
            first = self._q.get()
            if first is None:
                return
            batch = [first]
            deadline = time.monotonic() + self.window_s
            stop = False
            while len(batch) < self.max_batch:
                try:
                    item = self._q.get_nowait()
                except queue.Empty:
                    left = deadline - time.monotonic()
                    if left <= 0:
                        break
                    try:
                        item = self._q.get(timeout=left)
                    except queue.Empty:
                        break
                if item is None:
                    stop = True
                    break
                batch.append(item)
            self._run(batch)
            if stop:
                return

    def _run(self, batch: list[tuple[np.ndarray, Future]]) -> None:
        self.metrics.observe("lookalike_embed_batch_size", len(batch))
        try:
            out = self.extractor.infer(np.stack([b[0] for b in batch]))
        except Exception as exc:  # hand the error to every waiting request
            for _, fut in batch:
                fut.set_exception(exc)
            return
        for (_, fut), row in zip(batch, out, strict=True):
            fut.set_result(row)


class ModelPool:
    """Loads extractors on first use, times the load, unloads them after ``idle_s`` without use."""

    def __init__(self, metrics: Metrics, idle_s: float = 600.0, batching: bool = True,
                 window_s: float = 0.004, max_batch: int = 16) -> None:
        self.metrics, self.idle_s, self.batching = metrics, idle_s, batching
        self.window_s, self.max_batch = window_s, max_batch
        self._lock = threading.Lock()
        self._loaded: dict[str, Extractor] = {}
        self._batchers: dict[str, Batcher] = {}
        self._last_used: dict[str, float] = {}
        self._busy: dict[str, int] = {}
        self._stop = threading.Event()
        if idle_s > 0:
            threading.Thread(target=self._reaper, name="model-idle-unload", daemon=True).start()

    def get(self, name: str) -> Extractor:
        """The loaded extractor for a model name (loading it now if needed)."""
        with self._lock:
            ext = self._loaded.get(name)
            self._last_used[name] = time.monotonic()
        if ext is not None:
            return ext
        t0 = time.perf_counter()
        ext = registry.load_extractor(name)
        took = time.perf_counter() - t0
        with self._lock:
            if name not in self._loaded:
                self._loaded[name] = ext
                self.metrics.set("lookalike_model_load_seconds", took, model=name)
                self.metrics.set("lookalike_models_loaded", 1, model=name)
                self.metrics.inc("lookalike_model_loads_total", model=name)
            return self._loaded[name]

    def loaded(self) -> list[str]:
        with self._lock:
            return sorted(self._loaded)

    def touch(self, name: str) -> None:
        with self._lock:
            self._last_used[name] = time.monotonic()

    def embed_images(self, name: str, images: list[Image.Image]) -> np.ndarray:
        """Features of decoded pictures, through the batcher for embedding models."""
        ext = self.get(name)
        prepared = [ext.prepare(im) for im in images]
        return self.embed_prepared(name, prepared)

    def embed_prepared(self, name: str, prepared: list[np.ndarray]) -> np.ndarray:
        ext = self.get(name)
        with self._lock:
            self._busy[name] = self._busy.get(name, 0) + 1
        try:
            if ext.kind == "hash" or not self.batching:
                return ext.infer(np.stack(prepared))
            batcher = self._batcher(name, ext)
            futs = [batcher.submit(p) for p in prepared]
            return np.stack([f.result() for f in futs])
        finally:
            with self._lock:
                self._busy[name] -= 1
                self._last_used[name] = time.monotonic()

    def _batcher(self, name: str, ext: Extractor) -> Batcher:
        with self._lock:
            b = self._batchers.get(name)
            if b is None or b.extractor is not ext:
                b = self._batchers[name] = Batcher(ext, self.window_s, self.max_batch, self.metrics)
            return b

    def unload(self, name: str) -> bool:
        """Drop a model now (it reloads on next use). False when it is in use or not loaded."""
        with self._lock:
            if name not in self._loaded or self._busy.get(name, 0):
                return False
            del self._loaded[name]
            b = self._batchers.pop(name, None)
            self.metrics.set("lookalike_models_loaded", 0, model=name)
        if b is not None:
            b.close()
        registry.unload(name)
        return True

    def _reaper(self) -> None:
        period = max(0.05, min(30.0, self.idle_s / 4))
        while not self._stop.wait(period):
            now = time.monotonic()
            with self._lock:
                idle = [n for n in self._loaded if now - self._last_used.get(n, now) >= self.idle_s]
            for n in idle:
                self.unload(n)

    def close(self) -> None:
        self._stop.set()
        with self._lock:
            batchers = list(self._batchers.values())
            self._batchers.clear()
        for b in batchers:
            b.close()
