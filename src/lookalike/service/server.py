"""Run the service: check the settings, bind the sockets, run uvicorn (1 or N workers), keep the pid
file and the klik registry files for as long as it runs."""

from __future__ import annotations

import logging
import os
import signal
import socket
import threading

from lookalike.errors import UsageError
from lookalike.service import daemon, klik
from lookalike.service.config import ENV_VAR, ServiceConfig
from lookalike.service.security import resolve_roots, site_rules

log = logging.getLogger("lookalike.service")

#: How often a running service writes again the klik registry files that have gone (seconds).
KLIK_RECHECK_S = float(os.environ.get("LOOKALIKE_KLIK_RECHECK_S", "3"))


def check(cfg: ServiceConfig) -> ServiceConfig:
    """Validate settings (refuses a non-loopback bind without a token); resolves roots."""
    if not cfg.loopback and not cfg.token:
        raise UsageError(f"refusing to listen on {cfg.host} without --token: anyone on the network could use it")
    if cfg.token is not None and len(cfg.token) < 8:
        raise UsageError("--token must be at least 8 characters")
    if cfg.workers < 1:
        raise UsageError("--workers must be at least 1")
    if cfg.klik_cores is not None:
        from lookalike.options import check_int

        cfg.klik_cores = check_int(f"--klik-cores (or {klik.CORES_ENV})", cfg.klik_cores, 1, klik.MAX_CORES,
                                   "the core count klikr's MobileNet quota follows")
    try:
        cfg.roots = resolve_roots(cfg.roots)
        site_rules(cfg)
    except ValueError as exc:
        raise UsageError(str(exc)) from exc
    return cfg


def url_of(cfg: ServiceConfig) -> str:
    host = "127.0.0.1" if cfg.host in ("0.0.0.0", "") else cfg.host
    host = f"[{host}]" if ":" in host else host
    return f"http://{host}:{cfg.port}"


def running_on(port: int) -> daemon.ServerInfo | None:
    info = daemon.read(port)
    if info is not None and not info.alive:
        info.file.unlink(missing_ok=True)
        return None
    return info


def _bind(host: str, port: int) -> socket.socket:
    fam = socket.AF_INET6 if ":" in host else socket.AF_INET
    s = socket.socket(fam, socket.SOCK_STREAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind((host, port))
    s.listen(2048)
    s.set_inheritable(True)
    return s


def _open_sockets(cfg: ServiceConfig, klik_types: list[str] | None) -> list[socket.socket]:
    """The main socket (``cfg.port`` becomes its real port), then one loopback socket per klik server
    (recorded in ``cfg.klik_servers``): as many per type as klikr's quota, so the app never starts
    servers of its own."""
    try:
        main_sock = _bind(cfg.host, cfg.port)
    except OSError as exc:
        raise UsageError(f"cannot listen on {cfg.host}:{cfg.port}: {exc.strerror or exc} "
                         "(another program uses this port? pick another with --port)") from exc
    cfg.port = main_sock.getsockname()[1]
    sockets = [main_sock]
    if not cfg.klik:
        return sockets
    klik.clean_stale()
    for t in klik.plan(klik_types or klik.default_types(), cfg.klik_cores):
        try:
            s = _bind("127.0.0.1", 0)  # the app always talks to 127.0.0.1
        except OSError as exc:
            for other_sock in sockets:
                other_sock.close()
            raise UsageError(f"cannot open a loopback port for klik server {t}: {exc.strerror or exc}") from exc
        sockets.append(s)
        cfg.klik_servers.append(klik.new_server(t, s.getsockname()[1]))
    return sockets


class KlikRegistration:
    """The klik registry files of a running service: written once it answers, written again while it
    runs when klikr has removed them, removed when it stops (never while being written)."""

    def __init__(self, servers: list[dict], url: str) -> None:
        self.servers, self.url = servers, url
        self.stop_event = threading.Event()
        self.lock = threading.Lock()  # stop and remove the files only between two writes
        self.registered: list = []

    def start(self) -> None:
        threading.Thread(target=self._run, name="klik-register", daemon=True).start()

    def _run(self) -> None:
        while not self.stop_event.is_set():
            if daemon.healthy(self.url, timeout=1.0):
                break
            self.stop_event.wait(0.2)
        if not self.servers:
            return
        with self.lock:
            if self.stop_event.is_set():
                return
            self.registered.extend(klik.register(self.servers))
        print(f"klik: registered {len(self.registered)} servers for the klikr app: {klik.summary(self.servers)}",
              flush=True)
        while not self.stop_event.wait(KLIK_RECHECK_S):
            with self.lock:
                if self.stop_event.is_set():
                    return
                for f in klik.restore_missing(self.servers):
                    print(f"klik: {f} had been removed; written again", flush=True)
                    if f not in self.registered:
                        self.registered.append(f)

    def stop(self) -> None:
        with self.lock:
            self.stop_event.set()
            klik.unregister([klik.registry_file(k) for k in self.servers])


def serve(cfg: ServiceConfig, klik_types: list[str] | None = None) -> None:
    """Run in the foreground until SIGINT/SIGTERM."""
    import uvicorn
    from uvicorn.supervisors import Multiprocess

    check(cfg)
    other = running_on(cfg.port)
    if other is not None:
        raise UsageError(f"a lookalike service is already running on port {cfg.port} (pid {other.pid}, {other.url}); "
                         "`lookalike server stop` stops it")
    sockets = _open_sockets(cfg, klik_types)
    os.environ[ENV_VAR] = cfg.to_env()
    url = url_of(cfg)
    daemon.write_pid_file(cfg.port, url, os.environ.get("LOOKALIKE_SERVE_LOG"), klik=cfg.klik_servers)
    registration = KlikRegistration(cfg.klik_servers, url)
    registration.start()
    roots = ", ".join(cfg.roots) or "none (uploads only)"
    print(f"lookalike service on {url} (pid {os.getpid()}, {cfg.workers} worker(s), roots: {roots}, "
          f"changes {'allowed' if cfg.allow_changes else 'off'})", flush=True)
    config = uvicorn.Config("lookalike.service.app:app_from_env", factory=True, workers=cfg.workers,
                            log_level=os.environ.get("LOOKALIKE_LOG_LEVEL", "info"), access_log=False,
                            server_header=False, proxy_headers=False, timeout_graceful_shutdown=5)

    def _exit(signum, _frame) -> None:  # uvicorn re-raises the signal after its graceful shutdown
        raise SystemExit(0)

    previous = {sig: signal.signal(sig, _exit) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        if cfg.workers > 1:
            Multiprocess(config, sockets=sockets).run()
        else:
            uvicorn.Server(config).run(sockets=sockets)
    finally:
        registration.stop()
        daemon.remove_pid_file(cfg.port, os.getpid())
        for s in sockets:
            s.close()
        for sig, handler in previous.items():
            signal.signal(sig, handler)
