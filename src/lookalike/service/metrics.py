"""Prometheus text metrics, kept in memory per worker process (no extra dependency).

Counters: requests by route/method/status, jobs by kind/state, cache hits/misses by cache.
Histograms: request latency by route, embedding batch sizes. Gauges: model load seconds, models
loaded, jobs running."""

from __future__ import annotations

import threading
from collections import defaultdict

LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64)


def _labels(pairs: tuple[tuple[str, str], ...]) -> str:
    if not pairs:
        return ""
    esc = [(k, str(v).replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")) for k, v in pairs]
    return "{" + ",".join(f'{k}="{v}"' for k, v in esc) + "}"


class _Histogram:
    def __init__(self, buckets: tuple[float, ...]) -> None:
        self.buckets = buckets
        self.counts = [0] * len(buckets)
        self.sum = 0.0
        self.count = 0

    def observe(self, v: float) -> None:
        self.sum += v
        self.count += 1
        for i, b in enumerate(self.buckets):
            if v <= b:
                self.counts[i] += 1


class Metrics:
    """Thread-safe registry of the service's metrics."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.counters: dict[str, dict[tuple, float]] = defaultdict(lambda: defaultdict(float))
        self.gauges: dict[str, dict[tuple, float]] = defaultdict(dict)
        self.hists: dict[str, dict[tuple, _Histogram]] = defaultdict(dict)
        self.help: dict[str, tuple[str, str]] = {}
        for name, kind, text in (
            ("lookalike_requests_total", "counter", "HTTP requests by route, method and status."),
            ("lookalike_request_seconds", "histogram", "HTTP request latency by route."),
            ("lookalike_jobs_total", "counter", "Jobs by kind and final state (state=started when started)."),
            ("lookalike_jobs_running", "gauge", "Jobs running now in this worker."),
            ("lookalike_model_load_seconds", "gauge", "Seconds the last load of each model took."),
            ("lookalike_models_loaded", "gauge", "1 when a model is loaded in this worker."),
            ("lookalike_model_loads_total", "counter", "Model loads (after start or an idle unload)."),
            ("lookalike_cache_hits_total", "counter", "Cache hits by cache (catalog matrix, features, thumbnails)."),
            ("lookalike_cache_misses_total", "counter", "Cache misses by cache."),
            ("lookalike_embed_batch_size", "histogram", "Pictures per model call in the embedding batcher."),
        ):
            self.help[name] = (kind, text)

    def inc(self, name: str, value: float = 1.0, **labels: str) -> None:
        with self._lock:
            self.counters[name][tuple(sorted(labels.items()))] += value

    def set(self, name: str, value: float, **labels: str) -> None:
        with self._lock:
            self.gauges[name][tuple(sorted(labels.items()))] = value

    def add(self, name: str, value: float, **labels: str) -> None:
        with self._lock:
            key = tuple(sorted(labels.items()))
            self.gauges[name][key] = self.gauges[name].get(key, 0.0) + value

    def observe(self, name: str, value: float, **labels: str) -> None:
        buckets = BATCH_BUCKETS if name == "lookalike_embed_batch_size" else LATENCY_BUCKETS
        with self._lock:
            key = tuple(sorted(labels.items()))
            h = self.hists[name].get(key)
            if h is None:
                h = self.hists[name][key] = _Histogram(buckets)
            h.observe(value)

    def counter_value(self, name: str, **labels: str) -> float:
        with self._lock:
            return self.counters[name].get(tuple(sorted(labels.items())), 0.0)

    def render(self) -> str:
        """The Prometheus text exposition format (version 0.0.4)."""
        lines: list[str] = []
        with self._lock:
            for name, (kind, text) in self.help.items():
                lines.append(f"# HELP {name} {text}")
                lines.append(f"# TYPE {name} {kind}")
                if kind == "counter":
                    for key, v in sorted(self.counters[name].items()):
                        lines.append(f"{name}{_labels(key)} {v:g}")
                elif kind == "gauge":
                    for key, v in sorted(self.gauges[name].items()):
                        lines.append(f"{name}{_labels(key)} {v:g}")
                else:
                    for key, h in sorted(self.hists[name].items()):
                        for b, c in zip(h.buckets, h.counts, strict=True):
                            lines.append(f"{name}_bucket{_labels(key + (('le', f'{b:g}'),))} {c}")
                        lines.append(f"{name}_bucket{_labels(key + (('le', '+Inf'),))} {h.count}")
                        lines.append(f"{name}_sum{_labels(key)} {h.sum:g}")
                        lines.append(f"{name}_count{_labels(key)} {h.count}")
        return "\n".join(lines) + "\n"
