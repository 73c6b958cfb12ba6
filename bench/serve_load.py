"""Load test of `lookalike serve` on a catalog of real photos.

    python bench/serve_load.py                       # 2,400 photos made from ../shared/data/photos
    python bench/serve_load.py --photos 2000 --clients 8 --requests 200 --workers 1 2

1. Makes the catalog: the 400 shared UKBench photos plus re-encoded variants (other sizes, crops,
   JPEG qualities) in a temporary folder, indexed with effnet into a fresh catalog.
2. For each worker count: starts a real `lookalike serve` (loopback), runs CLIENTS concurrent clients
   x REQUESTS `POST /v1/similar` each (alternating uploads and paths, k=5, whole catalog), and prints
   errors, throughput and p50/p99 latency.
3. Embedding throughput under CLIENTS concurrent clients: `POST /v1/embed` uploads against a service
   with request batching and one with --no-batching (each request runs the model alone).
Honours $LOOKALIKE_SHARED (default <repo>/../shared).
"""

from __future__ import annotations

import argparse
import os
import random
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import httpx
import numpy as np
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
SRC = ROOT / "src"
sys.path.insert(0, str(SRC))
SHARED = Path(os.environ.get("LOOKALIKE_SHARED", ROOT.parent / "shared"))
TOKEN = "bench-token-123"

from lookalike.catalog import Catalog  # noqa: E402
from lookalike.config import cpu_count  # noqa: E402
from lookalike.index import index_paths  # noqa: E402


def make_photos(n: int, dest: Path) -> list[Path]:
    """n real photos: the originals, then variants resized (50-90%), cropped and re-encoded."""
    src = sorted((SHARED / "data" / "photos").glob("*.jpg"))
    if not src:
        sys.exit(f"no photos in {SHARED / 'data' / 'photos'} (set LOOKALIKE_SHARED)")
    dest.mkdir(parents=True, exist_ok=True)
    out = []
    rng = random.Random(7)
    for i in range(n):
        p = dest / f"photo_{i:05d}.jpg"
        out.append(p)
        if p.exists():
            continue
        base = src[i % len(src)]
        v = i // len(src)
        if v == 0:
            shutil.copy(base, p)
            continue
        img = Image.open(base).convert("RGB")
        w, h = img.size
        scale = (0.5, 0.6, 0.75, 0.9, 0.8)[v % 5]
        cx, cy = rng.randint(0, w // 10), rng.randint(0, h // 10)
        img = img.crop((cx, cy, w - rng.randint(0, w // 10), h - rng.randint(0, h // 10)))
        img = img.resize((max(32, int(img.width * scale)), max(32, int(img.height * scale))), Image.Resampling.LANCZOS)
        img.save(p, quality=70 + (v * 7) % 25)
    return out


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Service:
    def __init__(self, home: Path, root: Path, *args: str) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        env = {**os.environ, "PYTHONPATH": str(SRC), "LOOKALIKE_HOME": str(home), "LOOKALIKE_LOG_LEVEL": "warning"}
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "lookalike", "serve", "--port", str(self.port), "--root", str(root),
             "--token", TOKEN, *args], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            try:
                if httpx.get(self.url + "/healthz", timeout=1).status_code == 200:
                    return
            except httpx.HTTPError:
                time.sleep(0.2)
        raise SystemExit("service did not start")

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(timeout=30)


def run_clients(url: str, clients: int, requests: int, make_request) -> tuple[list[float], list[str], float]:
    """CLIENTS threads, each with its own connection, REQUESTS each; returns (latencies, errors, seconds)."""
    latencies: list[float] = []
    errors: list[str] = []
    lock = threading.Lock()
    barrier = threading.Barrier(clients + 1)

    def client(cid: int) -> None:
        rng = random.Random(cid)
        with httpx.Client(base_url=url, headers={"Authorization": f"Bearer {TOKEN}"}, timeout=120) as http:
            barrier.wait()
            for i in range(requests):
                t0 = time.perf_counter()
                try:
                    r = make_request(http, rng, i)
                    ok = r.status_code == 200
                    msg = f"{r.status_code} {r.text[:120]}"
                except httpx.HTTPError as exc:
                    ok, msg = False, repr(exc)
                dt = time.perf_counter() - t0
                with lock:
                    latencies.append(dt)
                    if not ok:
                        errors.append(msg)

    threads = [threading.Thread(target=client, args=(c,)) for c in range(clients)]
    for t in threads:
        t.start()
    barrier.wait()
    t0 = time.perf_counter()
    for t in threads:
        t.join()
    return latencies, errors, time.perf_counter() - t0


def pct(values: list[float], q: float) -> float:
    s = sorted(values)
    return s[min(len(s) - 1, int(round(q / 100 * (len(s) - 1))))]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--photos", type=int, default=2400)
    ap.add_argument("--clients", type=int, default=8)
    ap.add_argument("--requests", type=int, default=200, help="similar requests per client")
    ap.add_argument("--workers", type=int, nargs="+", default=[1, cpu_count()])
    ap.add_argument("--embed-requests", type=int, default=40, help="embed requests per client")
    ap.add_argument("--keep", type=Path, default=None, help="folder to keep photos and catalog in (reused)")
    args = ap.parse_args()

    work = args.keep or Path(tempfile.mkdtemp(prefix="lookalike-serve-bench-"))
    root, home = work / "photos", work / "home"
    home.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    photos = make_photos(args.photos, root)
    uploads = [p.read_bytes() for p in photos[:400]]
    os.environ["LOOKALIKE_HOME"] = str(home)
    cat = Catalog(home / "catalog.sqlite")
    rep = index_paths([str(root)], cat, ["effnet"])
    cat.close()
    print(f"catalog: {len(rep.paths)} photos in {root} (made and indexed in {time.perf_counter() - t0:.0f}s; "
          f"{rep.new} new, {rep.unchanged} unchanged, {len(rep.failed)} failed)")
    print(f"machine: {cpu_count()} cores; {args.clients} clients\n")

    def similar(http: httpx.Client, rng: random.Random, i: int) -> httpx.Response:
        if i % 2 == 0:
            data = uploads[rng.randrange(len(uploads))]
            return http.post("/v1/similar", files={"file": ("q.jpg", data, "image/jpeg")}, data={"k": "5"})
        return http.post("/v1/similar", json={"path": str(photos[rng.randrange(len(photos))]), "k": 5})

    def embed(http: httpx.Client, rng: random.Random, i: int) -> httpx.Response:
        data = uploads[rng.randrange(len(uploads))]
        return http.post("/v1/embed", files={"file": ("q.jpg", data, "image/jpeg")})

    rows = []
    for w in args.workers:
        svc = Service(home, root, "--workers", str(w))
        try:
            run_clients(svc.url, args.clients, 3, similar)  # warm-up: models loaded in every worker
            lat, errs, secs = run_clients(svc.url, args.clients, args.requests, similar)
        finally:
            svc.stop()
        rows.append((f"similar, {w} worker{'s' if w > 1 else ''}", len(lat), len(errs), len(lat) / secs,
                     pct(lat, 50) * 1000, pct(lat, 99) * 1000))
        if errs:
            print(f"  first errors: {errs[:3]}")

    embed_rates = {}
    for label, extra in (("batching", []), ("one at a time", ["--no-batching"])):
        svc = Service(home, root, "--workers", "1", *extra)
        try:
            run_clients(svc.url, args.clients, 3, embed)
            lat, errs, secs = run_clients(svc.url, args.clients, args.embed_requests, embed)
            batches = [ln for ln in httpx.get(svc.url + "/metrics", headers={"Authorization": f"Bearer {TOKEN}"}
                                               ).text.splitlines() if ln.startswith("lookalike_embed_batch_size_")]
        finally:
            svc.stop()
        embed_rates[label] = len(lat) / secs
        rows.append((f"embed, {label}", len(lat), len(errs), len(lat) / secs, pct(lat, 50) * 1000,
                     pct(lat, 99) * 1000))
        if label == "batching":
            s = next((float(b.split()[-1]) for b in batches if b.startswith("lookalike_embed_batch_size_sum")), 0)
            n = next((float(b.split()[-1]) for b in batches if b.startswith("lookalike_embed_batch_size_count")), 1)
            mean_batch = s / max(n, 1)

    # the model's own batching ceiling, in this process, on pre-decoded pictures
    from lookalike.features import load_extractor
    from lookalike.media import decode

    ext = load_extractor("effnet")
    prepared = [ext.prepare(decode(str(p), min_side=224).image) for p in photos[:16]]
    ceiling = {}
    for bs in (1, 8, 16):
        batch = np.stack(prepared[:bs])
        ext.infer(batch)
        t1, done = time.perf_counter(), 0
        while time.perf_counter() - t1 < 3.0:
            ext.infer(batch)
            done += bs
        ceiling[bs] = done / (time.perf_counter() - t1)

    print(f"{'run':<26}{'requests':>9}{'errors':>8}{'req/s':>9}{'p50 ms':>9}{'p99 ms':>9}")
    for name, n, e, rate, p50, p99 in rows:
        print(f"{name:<26}{n:>9}{e:>8}{rate:>9.1f}{p50:>9.0f}{p99:>9.0f}")
    ratio = embed_rates["batching"] / embed_rates["one at a time"]
    print(f"\nembedding: batching {embed_rates['batching']:.1f} img/s vs one at a time "
          f"{embed_rates['one at a time']:.1f} img/s = {ratio:.2f}x (target >= 2x); "
          f"mean batch {mean_batch:.1f}")
    print("model alone (in process, pre-decoded): " + ", ".join(f"batch {b}: {r:.1f} img/s" for b, r in ceiling.items())
          + f"; best batching gain possible: {max(ceiling.values()) / ceiling[1]:.2f}x")
    if args.keep:
        print(f"(photos and catalog kept in {work})")
    if not args.keep:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
