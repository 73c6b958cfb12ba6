"""Settings of one running service, passed to every worker process as JSON in the environment."""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field

from lookalike.config import home_dir

#: Environment variable that carries the settings to uvicorn worker processes.
ENV_VAR = "LOOKALIKE_SERVICE_CONFIG"

LOOPBACK_HOSTS = {"127.0.0.1", "::1", "localhost"}


@dataclass
class ServiceConfig:
    """Everything a worker needs to build the app. Paths are absolute, roots resolved (no symlinks)."""

    host: str = "127.0.0.1"
    port: int = 8765
    workers: int = 1
    roots: list[str] = field(default_factory=list)
    token: str | None = None
    allow_changes: bool = False
    catalog: str | None = None  # None: the default catalog
    max_upload_bytes: int = 40 * 1024 * 1024
    max_pixels: int = 60_000_000  # decompression-bomb guard for uploads
    idle_unload_s: float = 600.0  # unload models unused this long (0: never)
    batch_window_ms: float = 4.0  # how long the first embedding request waits for company
    batch_max: int = 16  # most pictures per model call
    batching: bool = True  # False: every request runs the model alone (for comparison)
    job_threads: int = 2
    klik: bool = False
    # one {"type", "port", "uuid"} per registered klik server, as many per type as klikr's quota
    # (filled in by serve before the workers start, so every worker answers /health with the same uuid)
    klik_servers: list[dict] = field(default_factory=list)
    klik_cores: int | None = None  # the core count klikr's MobileNet quota follows (None: this machine's)
    state_dir: str = ""  # pid files, logs, jobs (default: <home>/server)
    allowed_hosts: list[str] = field(default_factory=list)  # extra Host names (reverse proxy): NAME or NAME:PORT
    allowed_origins: list[str] = field(default_factory=list)  # extra page origins that may change state

    def __post_init__(self) -> None:
        if not self.state_dir:
            self.state_dir = str(home_dir() / "server")

    @property
    def klik_ports(self) -> dict[str, int]:
        """The first port of each registered klik type (what ``/v1/info`` has always shown)."""
        ports: dict[str, int] = {}
        for server in self.klik_servers:
            ports.setdefault(server["type"], int(server["port"]))
        return ports

    @property
    def loopback(self) -> bool:
        return self.host in LOOPBACK_HOSTS or self.host.startswith("127.")

    def to_env(self) -> str:
        return json.dumps(asdict(self))

    @classmethod
    def from_env(cls) -> ServiceConfig:
        raw = os.environ.get(ENV_VAR)
        return cls(**json.loads(raw)) if raw else cls()
