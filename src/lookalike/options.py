"""One validation of numeric (and choice) options, shared by every front end.

The library entry points (``dupes.find_duplicates``, ``Collection.similar``, ``organise.sort_order``,
``organise.cluster``) call these first, before anything is indexed, so the CLI, the HTTP service and
Python callers get the same checks and the same messages; a front end may call them earlier still (the
CLI does, before it opens the catalog). Each check raises :class:`UsageError` with one line that names
the option, the value given and the range allowed, and returns the value as the caller should use it.

Nothing here imports a feature package: this module sits beside ``errors.py`` in the layers.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Sequence

from lookalike.errors import UsageError

#: Duplicate tiers, loosest last (``dupes.TIERS`` is this tuple).
DUPES_TIERS = ("exact", "pixel", "near", "similar")
#: What ``dupes --action`` may do (``dupes.ACTIONS`` must stay equal; a test checks it).
DUPES_ACTIONS = ("report", "copy", "move", "move-dupes", "trash", "delete", "link")
#: The actions that put files into ``--dest`` (``move-dupes``: the duplicates only, keepers stay in place).
DUPES_DEST_ACTIONS = ("copy", "move", "move-dupes")
LINK_KINDS = ("hard", "symbolic")

#: ``--threshold`` per tier: (lowest, highest, what it is, why nothing looser is allowed).
#: near: the lower quartile of aligned local correlations between a picture and its edited copy
#: (default 0.87; distinct reshoots of one flat object already reach 0.89-0.94, see docs/BENCHMARKS.md).
#: similar: the CNN cosine of two photos of one scene (default 0.80); under 0.5 the candidate search
#: itself stops (``dupes.finder.CNN_MIN_COS``) and pictures are no longer the same scene.
THRESHOLDS: dict[str, tuple[float, float, str, str]] = {
    "near": (0.80, 1.0, "an aligned local correlation",
             "below 0.80 distinct shots of one object pass as edited copies"),
    "similar": (0.50, 1.0, "a CNN cosine",
                "below 0.50 pictures are no longer of the same scene, let alone duplicates"),
}

#: Most results (``-k``) one query may ask for; the HTTP service uses the same bound.
MAX_K = 10_000
#: Neighbours per photo in the k-NN graph of ``sort`` (each costs memory for every photo).
MAX_GRAPH_K = 100
#: Largest count accepted for sizes and limits (``--min-size`` and the like).
MAX_COUNT = 1_000_000


def _fmt(value: object) -> str:
    if isinstance(value, float):
        return repr(value) if not math.isfinite(value) else f"{value:g}"
    return repr(value) if isinstance(value, str) else str(value)


def check_number(name: str, value: object, lo: float, hi: float, why: str = "", what: str | None = None,
                 where: str = "", digits: int | None = None) -> float:
    """``value`` as a float in [lo, hi]; nan, infinities, bools and non-numbers are refused.

    The message names the option (``name``, then ``where``: e.g. " for --tier near"), what it measures
    (``what``, default "a number"/"a value"), the range (``digits`` decimals, default ``:g``) and ``why``."""
    rng = (f"between {lo:g} and {hi:g}" if digits is None else f"between {lo:.{digits}f} and {hi:.{digits}f}")
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise UsageError(f"{name}{where} must be {what or 'a number'} {rng}, not {_fmt(value)}")
    v = float(value)
    if not math.isfinite(v):
        raise UsageError(f"{name} {_fmt(v)} is not a finite number{where}: give {what or 'a value'} {rng}")
    if not lo <= v <= hi:
        raise UsageError(f"{name} {_fmt(v)} is out of range{where}: give {what or 'a value'} {rng}"
                         + (f" ({why})" if why else ""))
    return v


def check_int(name: str, value: object, lo: int, hi: int, why: str = "") -> int:
    """``value`` as an int in [lo, hi]; bools, fractions, nan and infinities are refused."""
    rng = f"between {lo} and {hi}"
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise UsageError(f"{name} must be a whole number {rng}, not {_fmt(value)}")
    if not isinstance(value, numbers.Integral):
        f = float(value)
        if not math.isfinite(f) or not f.is_integer():
            raise UsageError(f"{name} must be a whole number {rng}, not {_fmt(f)}")
    v = int(value)
    if not lo <= v <= hi:
        raise UsageError(f"{name} {v} is out of range: give a whole number {rng}" + (f" ({why})" if why else ""))
    return v


def check_choice(name: str, value: object, choices: Sequence[str]) -> str:
    """``value`` when it is one of ``choices``."""
    if not isinstance(value, str) or value not in choices:
        raise UsageError(f"{name} {_fmt(value)} is not one of: {', '.join(choices)}")
    return value


def check_positive_int(name: str, value: object, hi: int = MAX_COUNT) -> int:
    """A count or size: a whole number from 1 to ``hi``."""
    return check_int(name, value, 1, hi)


def check_fraction(name: str, value: object) -> float:
    """A share or weight in 0..1 (``--time-weight``, ``--crop``...)."""
    return check_number(name, value, 0.0, 1.0)


def check_k(k: object, name: str = "-k", hi: int = MAX_K) -> int:
    """How many results one query asks for: 1 to ``hi`` (10,000)."""
    return check_int(name, k, 1, hi)


def check_sim(sim: object, name: str = "--sim") -> float:
    """A similarity in 0..1 (cosine for embeddings, 1 - Hamming/bits for hashes)."""
    return check_number(name, sim, 0.0, 1.0)


#: Face distances are Euclidean between unit vectors (0..2); a tolerance near 2 would call anyone a match.
MAX_FACE_TOLERANCE = 1.5


def check_tolerance(value: object, name: str = "--tolerance") -> float | None:
    """A face model's "unknown" threshold (None: the model's calibrated one): above 0, at most 1.5."""
    if value is None:
        return None
    v = check_number(name, value, 0.0, MAX_FACE_TOLERANCE,
                     "Euclidean distance between unit face embeddings; larger calls strangers by a known name")
    if v <= 0.0:
        raise UsageError(f"{name} 0 would recognise no one: give a value above 0 and at most {MAX_FACE_TOLERANCE:g}")
    return v


def check_tier(tier: object) -> str:
    return check_choice("--tier", tier, DUPES_TIERS)


def check_threshold(tier: str, value: object) -> float | None:
    """``--threshold`` for a duplicate tier: None keeps the tier's default.

    near: aligned local correlation in 0.80..1; similar: CNN cosine in 0.50..1; exact and pixel take
    none (they compare bytes or pixels, there is nothing to tune), so any value given there is refused."""
    tier = check_tier(tier)
    if value is None:
        return None
    if tier not in THRESHOLDS:
        raise UsageError(f"--threshold {_fmt(value)} does not apply to --tier {tier} (it compares "
                         f"{'bytes' if tier == 'exact' else 'decoded pixels'}); it is for --tier near "
                         f"({THRESHOLDS['near'][0]:.2f}-1.00) and --tier similar ({THRESHOLDS['similar'][0]:.2f}-1.00)")
    lo, hi, what, why = THRESHOLDS[tier]
    return check_number("--threshold", value, lo, hi, why, what=what, where=f" for --tier {tier}", digits=2)


def check_dupes_options(
    tier: object = "near",
    threshold: object = None,
    action: object = None,
    dest: object = None,
    link_kind: object = None,
    keep: str | Sequence[str] | None = None,
) -> None:
    """Every option of a duplicate search (and, when given, of its action), before any work starts.

    ``action`` None: a search only (``find_duplicates``). copy, move and move-dupes need ``dest``."""
    check_threshold(check_tier(tier), threshold)
    if keep is not None:
        from lookalike.dupes.keeper import parse_policy  # light: no journal, no model

        parse_policy(keep)
    if action is not None:
        check_choice("--action", action, DUPES_ACTIONS)
        if action in DUPES_DEST_ACTIONS and (dest is None or str(dest) == ""):
            raise UsageError(f"--action {action} needs --dest DIR")
    if link_kind is not None:
        check_choice("--link-kind", link_kind, LINK_KINDS)


def check_sort_options(k: object = 10) -> int:
    """``sort``'s k-NN graph size: 1 to 100 neighbours per photo."""
    return check_int("k", k, 1, MAX_GRAPH_K, "neighbours per photo in the k-NN graph")


def check_cluster_options(
    sim: object = 0.5,
    min_size: object = 2,
    time_weight: object = 0.0,
    method: object | None = None,
    methods: Sequence[str] = (),
) -> None:
    """``cluster``'s options: --sim and --time-weight in 0..1, --min-size from 1, --method one of ``methods``."""
    if method is not None and methods:
        check_choice("--method", method, methods)
    check_sim(sim)
    check_positive_int("--min-size", min_size)
    check_fraction("--time-weight", time_weight)


#: Most local Dask worker processes ``--dask-workers`` may start.
MAX_DASK_WORKERS = 256


def check_cluster(cluster: object) -> str | int | None:
    """Where work goes past this process (``index``, ``dupes``, ``sort``, ``cluster``): None (here), a Dask
    scheduler address (``tcp://host:8786``), or a number of local Dask worker processes, 1 to 256."""
    if cluster is None:
        return None
    if isinstance(cluster, bool) or not isinstance(cluster, numbers.Integral | str):
        raise UsageError(f"cluster must be a Dask scheduler address or a number of local workers, not {_fmt(cluster)}")
    if isinstance(cluster, str):
        if not cluster or cluster != cluster.strip() or not cluster.isprintable():
            raise UsageError(f"--scheduler {_fmt(cluster)} is not a Dask scheduler address (tcp://host:8786)")
        return cluster
    return check_int("--dask-workers", cluster, 1, MAX_DASK_WORKERS, "local Dask worker processes")


def cluster_option(scheduler: object = None, dask_workers: object = None) -> str | int | None:
    """``--scheduler ADDR`` / ``--dask-workers N`` as one ``cluster`` value (see :func:`check_cluster`)."""
    if scheduler is not None and dask_workers is not None:
        raise UsageError("give --scheduler or --dask-workers, not both")
    return check_cluster(scheduler if scheduler is not None else dask_workers)
