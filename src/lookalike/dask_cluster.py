"""Reaching a Dask cluster: the one place that starts a LocalCluster or connects to a scheduler (issue 11).

Used by indexing on Dask (:mod:`lookalike.index.distributed`) and the k-NN graph on Dask
(:mod:`lookalike.search.distributed`). ``cluster`` is what ``--scheduler ADDR`` / ``--dask-workers N`` give
(validated by :func:`lookalike.options.check_cluster`): a scheduler address, or a number of local worker
processes (a LocalCluster started for the run and closed after it). Every worker must run this lookalike
version (and, for indexing, the same model versions): :func:`check_workers` refuses the cluster otherwise.

Dask is the optional ``lookalike[dask]`` extra; nothing here imports it before it is needed.
"""

from __future__ import annotations

import contextlib
import logging
import signal
import threading
from collections.abc import Iterator, Sequence
from typing import Any

from lookalike.errors import LookalikeError
from lookalike.options import check_cluster

#: Seconds to wait for a scheduler's first worker.
WORKER_WAIT_S = 60
#: Seconds to keep trying to reach a scheduler.
CONNECT_TIMEOUT_S = 15


class ClusterError(LookalikeError):
    """The Dask cluster cannot be used: not installed, not reachable, no workers, another lookalike."""


def require_dask() -> Any:
    """The ``distributed`` module (with pyarrow present), or a ClusterError saying which extra to install."""
    try:
        import distributed
        import pyarrow  # noqa: F401
    except ImportError as exc:
        raise ClusterError(f"running on Dask needs the dask extra ({exc.name} is missing): "
                           "pip install 'lookalike[dask]'") from exc
    return distributed


def fingerprint(models: Sequence[str] = ()) -> dict:
    """What must be the same on the driver and every worker: lookalike's version and each model's version."""
    import lookalike
    from lookalike.features import registry

    return {"lookalike": lookalike.__version__, "models": {m: registry.get_spec(m).version for m in models}}


def _probe(models: Sequence[str]) -> Any:
    """A function run on every worker that reports its fingerprint. Defined here, inside, so cloudpickle sends
    it by value: a worker without lookalike (or with one that has no such module) still answers."""

    def probe() -> dict:
        try:
            import lookalike
            from lookalike.features import registry
        except Exception as exc:
            return {"lookalike": None, "error": f"{type(exc).__name__}: {exc}"}
        models_seen = {}
        for m in models:
            try:
                models_seen[m] = registry.get_spec(m).version
            except Exception as exc:
                models_seen[m] = f"unknown ({exc})"
        return {"lookalike": getattr(lookalike, "__version__", None), "models": models_seen}

    return probe


def check_workers(client: Any, models: Sequence[str] = ()) -> int:
    """Refuse the cluster unless every worker runs this lookalike with the same model versions; returns the
    number of workers."""
    mine = fingerprint(models)
    answers = client.run(_probe(models))
    if not answers:
        raise ClusterError("the Dask cluster has no workers")
    wrong = []
    for addr, theirs in sorted(answers.items()):
        if theirs.get("lookalike") is None:
            wrong.append(f"{addr} cannot import lookalike ({theirs.get('error')})")
        elif theirs != mine:
            wrong.append(f"{addr} runs lookalike {theirs['lookalike']} (models {theirs.get('models')})")
    if wrong:
        raise ClusterError(
            f"refusing the Dask cluster: this is lookalike {mine['lookalike']} (models {mine['models']}), but "
            + "; ".join(wrong) + ". Install the same lookalike version on every worker.")
    return len(answers)


@contextlib.contextmanager
def _workers_ignore_ctrl_c() -> Iterator[None]:
    """Worker processes started inside inherit an ignored SIGINT: a Ctrl-C at the terminal (sent to the whole
    process group) interrupts the driver only, which cancels its tasks and closes the cluster itself."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)


def _start_local(distributed: Any, workers: int) -> Any:
    """A LocalCluster of ``workers`` processes, one thread each (each worker's numpy and model use its cores)."""
    with _workers_ignore_ctrl_c():
        return distributed.LocalCluster(n_workers=workers, threads_per_worker=1, processes=True,
                                        dashboard_address=None, silence_logs=logging.ERROR)


def connect(cluster: str | int) -> tuple[Any, Any, str]:
    """(client, local cluster or None, scheduler address) for an address or a local worker count."""
    cluster = check_cluster(cluster)
    if cluster is None:
        raise ClusterError("no Dask cluster given")
    distributed = require_dask()
    if isinstance(cluster, int):
        local = _start_local(distributed, cluster)
        return distributed.Client(local), local, local.scheduler_address
    try:
        client = distributed.Client(cluster, timeout=CONNECT_TIMEOUT_S)
    except (OSError, TimeoutError) as exc:
        raise ClusterError(f"cannot reach the Dask scheduler at {cluster}: {exc}") from exc
    try:
        client.wait_for_workers(1, timeout=WORKER_WAIT_S)
    except (OSError, TimeoutError) as exc:
        client.close()
        raise ClusterError(f"the Dask scheduler at {cluster} has no workers (waited {WORKER_WAIT_S} s)") from exc
    return client, None, cluster


@contextlib.contextmanager
def connected(cluster: str | int) -> Iterator[tuple[Any, bool, str]]:
    """``with connected(cluster) as (client, local, address)``: the client (and a LocalCluster when ``cluster``
    is a worker count, ``local`` True then), both closed on leaving."""
    client, local, address = connect(cluster)
    try:
        yield client, local is not None, address
    finally:
        client.close()
        if local is not None:
            local.close()


@contextlib.contextmanager
def local_session(cluster: str | int | None) -> Iterator[str | None]:
    """One cluster for a whole command: for a worker count, a LocalCluster started here and closed on leaving,
    given as its scheduler address (so the indexing and the k-NN graph of one ``sort`` share it); an address
    or None passes through."""
    cluster = check_cluster(cluster)
    if not isinstance(cluster, int):
        yield cluster
        return
    local = _start_local(require_dask(), cluster)
    try:
        yield local.scheduler_address
    finally:
        local.close()


def workers_are_local(client: Any) -> bool:
    """Whether every worker listens on a loopback address (so it runs on this machine and sees its files)."""
    import ipaddress
    from urllib.parse import urlsplit

    workers = client.scheduler_info().get("workers", {})
    for addr in workers:
        host = urlsplit(addr).hostname or ""
        try:
            if not ipaddress.ip_address(host).is_loopback:
                return False
        except ValueError:
            if host != "localhost":
                return False
    return bool(workers)
