"""`lookalike serve` and `lookalike server status|stop|logs`."""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Annotated

import typer

from lookalike.cli.common import console, fail, out, print_json
from lookalike.cli.common import global_options as _globals

DEFAULT_PORT = 8765


def register(app: typer.Typer) -> None:
    app.command("serve")(serve_cmd)
    server_app = typer.Typer(help="Status, stop and logs of running lookalike services.", no_args_is_help=True)
    server_app.command("status")(status_cmd)
    server_app.command("stop")(stop_cmd)
    server_app.command("logs")(logs_cmd)
    app.add_typer(server_app, name="server")


def serve_cmd(
    host: Annotated[str, typer.Option(help="Address to listen on. Anything but loopback needs --token.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="TCP port.")] = DEFAULT_PORT,
    workers: Annotated[int, typer.Option(min=1, help="Worker processes (each loads its own models).")] = 1,
    root: Annotated[list[Path] | None, typer.Option(
        "--root", help="Folder whose pictures may be read by path (repeat). Without any, only uploads work.")] = None,
    token: Annotated[str | None, typer.Option(
        envvar="LOOKALIKE_TOKEN", help="Bearer token every route but /healthz requires (env LOOKALIKE_TOKEN).")] = None,
    allow_changes: Annotated[bool, typer.Option(
        "--allow-changes", help="Enable routes that change files or models (apply, undo, face training, "
                            "switching the active face model).")] = False,
    daemon_: Annotated[bool, typer.Option("--daemon", help="Run in the background (pid file + log).")] = False,
    klik: Annotated[bool, typer.Option("--klik", help="Also answer the klikr desktop app's protocol.")] = False,
    klik_type: Annotated[list[str] | None, typer.Option(
        "--klik-type", help="Register only these klik types (default: all this build supports).")] = None,
    klik_cores: Annotated[int | None, typer.Option(
        "--klik-cores", envvar="LOOKALIKE_KLIK_CORES", metavar="N",
        help="Register as many MobileNet servers as klikr wants on an N-core machine (its 'number of image "
             "similarity servers' setting; default: this machine's core count). "
             "FaceNet and MTCNN get 3 each, each Haar type 1, as klikr asks.")] = None,
    idle_unload: Annotated[float, typer.Option(help="Unload models unused this many seconds (0: never).")] = 600.0,
    batch_window_ms: Annotated[float, typer.Option(help="Wait this long to batch embedding requests.")] = 4.0,
    batch_max: Annotated[int, typer.Option(min=1, help="Most pictures per model call.")] = 16,
    no_batching: Annotated[bool, typer.Option("--no-batching", help="Run the model once per request.")] = False,
    max_upload_mb: Annotated[float, typer.Option(help="Largest upload accepted, in MB.")] = 40.0,
    max_megapixels: Annotated[float, typer.Option(help="Largest uploaded picture, in megapixels.")] = 60.0,
    allowed_host: Annotated[list[str] | None, typer.Option(
        "--allowed-host", help="Also answer requests for this Host name (NAME or NAME:PORT; repeat), e.g. behind "
                               "a reverse proxy. By default only the bound address and localhost/127.0.0.1/[::1] "
                               "are answered, so a DNS-rebinding page cannot read anything. "
                               "'*': any (only behind a proxy that checks Host).")] = None,
    allowed_origin: Annotated[list[str] | None, typer.Option(
        "--allowed-origin", help="Also let pages from this origin (scheme://host[:port]; repeat) start work and "
                                 "make changes. By default only the service's own page may.")] = None,
) -> None:
    """Run the local HTTP service (OpenAPI docs at /docs, review page at /)."""
    from lookalike.service import daemon, server
    from lookalike.service import klik as klik_mod
    from lookalike.service.config import ServiceConfig

    catalog = _globals.get("catalog")
    cfg = ServiceConfig(
        host=host, port=port, workers=workers, roots=[str(r) for r in root or []], token=token,
        allow_changes=allow_changes, catalog=str(Path(catalog).resolve()) if catalog else None,
        max_upload_bytes=int(max_upload_mb * 1024 * 1024), max_pixels=int(max_megapixels * 1_000_000),
        idle_unload_s=idle_unload, batch_window_ms=batch_window_ms, batch_max=batch_max,
        batching=not no_batching, klik=klik, allowed_hosts=list(allowed_host or []),
        allowed_origins=list(allowed_origin or []), klik_cores=klik_cores,
    )
    for t in klik_type or []:
        if t not in klik_mod.ALL_TYPES:
            raise fail(f"unknown klik type {t!r}; known: {', '.join(klik_mod.ALL_TYPES)}")
    server.check(cfg)
    other = server.running_on(port)
    if other is not None:
        console.print(f"a lookalike service is already running on port {port}: pid {other.pid}, {other.url} "
                      f"({other.state}); `lookalike server stop --port {port}` stops it", highlight=False)
        raise typer.Exit(1)
    if daemon_:
        if not daemon.port_free(host, port):
            raise fail(f"port {port} on {host} is in use by another program; pick another with --port")
        argv = [a for a in sys.argv[1:] if a != "--daemon"]  # same command line, in the foreground
        url = server.url_of(cfg)
        try:
            pid = daemon.start_daemon(argv, port, url)
        except RuntimeError as exc:
            raise fail(str(exc)) from exc
        out.print(f"lookalike service running in the background on {url} (pid {pid}); "
                  f"log: {daemon.log_file(port)}", highlight=False)
        return
    server.serve(cfg, klik_type or None)


def _log_of(port: int | None) -> Path:
    """The log of the service asked for: the one on ``port`` (main or klik port), else the only one
    running, else the daemon log written last (a daemon that has stopped or crashed)."""
    from lookalike.service import daemon

    running = [i for i in _pick(port) if i.alive]
    if len(running) > 1:
        raise fail("several lookalike services are running (ports "
                   f"{', '.join(str(i.port) for i in running)}): give --port")
    if running:
        info = running[0]
        if not info.log:
            raise fail(f"the service on port {info.port} (pid {info.pid}) runs in the foreground: its output is in "
                       "the terminal that started it; only services started with --daemon keep a log")
        return Path(info.log)
    if port is not None:
        log = daemon.log_file(port)
        if not log.is_file():
            raise fail(f"no lookalike service is running on port {port} and there is no log for it ({log})")
        return log
    log = daemon.latest_log()
    if log is None:
        raise fail(f"no lookalike service is running and no daemon log is in {daemon.state_dir()}")
    console.print(f"no lookalike service is running; the last daemon log, {log}:", highlight=False)
    return log


def _pick(port: int | None) -> list:
    from lookalike.service import daemon

    infos = daemon.servers()
    if port is not None:
        infos = [i for i in infos if i.answers_on(port)]
    return infos


def status_cmd(
    port: Annotated[int | None, typer.Option(help="Only the service on this port (its own or a klik port).")] = None,
    json_out: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Show running services (pid, url, health, klik ports); stale pid files are cleaned up."""
    infos = _pick(port)
    if json_out:
        print_json([i.to_json() for i in infos])
    elif not infos:
        out.print("no lookalike service is running" + (f" on port {port}" if port else ""))
    for i in infos if not json_out else []:
        up = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(i.started))
        out.print(f"port {i.port}: {i.state}, pid {i.pid}, {i.url}, since {up}" + (f", log {i.log}" if i.log else ""),
                  highlight=False)
        if i.klik:
            from lookalike.service.klik import summary

            out.print(f"  klik servers ({len(i.klik)}): {summary(i.klik)}", highlight=False)
    if not any(i.alive for i in infos):
        raise typer.Exit(3)


def stop_cmd(port: Annotated[int | None, typer.Option(help="The service on this port (default: all).")] = None) -> None:
    """Stop running services (SIGTERM, then SIGKILL if they do not exit)."""
    from lookalike.service import daemon

    infos = [i for i in _pick(port) if i.alive]
    if not infos:
        raise fail("no lookalike service is running" + (f" on port {port}" if port else ""))
    for i in infos:
        ok = daemon.stop(i)
        out.print(f"port {i.port}: {'stopped' if ok else 'could not stop'} (pid {i.pid})", highlight=False)


def logs_cmd(
    port: Annotated[int | None, typer.Option(
        help="The service on this port (its own or a klik port; default: the running service, whatever its port).")]
        = None,
    lines: Annotated[int, typer.Option("-n", "--lines", min=0, help="How many lines.")] = 50,
    follow: Annotated[bool, typer.Option("-f", "--follow", help="Keep printing new lines.")] = False,
) -> None:
    """Print the end of a daemon's log."""
    from lookalike.service import daemon

    log = _log_of(port)
    if lines:
        sys.stdout.write(daemon.tail(log, lines) + "\n")
    if follow:
        with open(log, encoding="utf-8", errors="replace") as fh:
            fh.seek(0, 2)
            try:
                while True:
                    line = fh.readline()
                    if line:
                        sys.stdout.write(line)
                        sys.stdout.flush()
                    else:
                        time.sleep(0.3)
            except KeyboardInterrupt:
                return
