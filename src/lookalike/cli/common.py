"""Helpers shared by every CLI command: catalog option, progress bar, JSON/CSV/table output."""

from __future__ import annotations

import codecs
import csv
import io
import json
import os
import re
import sys
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

from lookalike.errors import LookalikeError


def _plain_help_types() -> None:
    """``--help`` without Python types: typer (0.2x) shows every flag as ``<bool>`` and a repeatable option as
    ``<list[Path]>``. A flag takes no value, so it shows none; a list shows its element (``<path>``). Patched
    here, once for every command, and only where typer has these hooks (another typer prints its own help)."""
    try:
        from typer import core as typer_core
    except ImportError:  # pragma: no cover
        return
    for cls in (getattr(typer_core, "_TyperParameter", None), getattr(typer_core, "TyperOption", None)):
        original = getattr(cls, "display_type_rich", None) if cls is not None else None
        if original is None or getattr(original, "_lookalike", False):
            continue

        def display_type_rich(self, ctx, _original=original):
            if getattr(self, "is_flag", False):
                return None
            text = _original(self, ctx)
            return _LIST_TYPE.sub(lambda m: f"<{m.group(1).lower()}>", text) if isinstance(text, str) else text

        display_type_rich._lookalike = True  # type: ignore[attr-defined]
        cls.display_type_rich = display_type_rich  # type: ignore[method-assign]
    # Later paragraphs of a docstring keep their line breaks in typer's help (the first one is joined): join
    # them too, except a paragraph whose lines are a list or indented (or marked verbatim with \b).
    try:
        from typer import rich_utils
    except ImportError:  # pragma: no cover
        return
    fix = getattr(rich_utils, "_fix_linebreaks", None)
    if fix is not None and not getattr(fix, "_lookalike", False):

        def _fix_linebreaks(paragraphs, markup_mode):
            return "\n\n".join(p if _VERBATIM.search(p) else p.replace("\n", " ") for p in paragraphs)

        _fix_linebreaks._lookalike = True  # type: ignore[attr-defined]
        rich_utils._fix_linebreaks = _fix_linebreaks  # type: ignore[attr-defined]


_LIST_TYPE = re.compile(r"<list\[(\w+)\]>")
_VERBATIM = re.compile(r"^\x08|(^|\n)\s*([-*]|\d+\.)\s|\n\s")
_plain_help_types()

console = Console(stderr=True, soft_wrap=True)  # one error, one line, whatever the width
out = Console(soft_wrap=True)

CatalogOption = Annotated[
    Path | None,
    typer.Option(
        "--catalog",
        help="Catalog database to use (default: $LOOKALIKE_HOME/catalog.sqlite, or the user cache folder).",
        dir_okay=False,
    ),
]
JsonOption = Annotated[bool, typer.Option("--json", help="Print machine-readable JSON on stdout.")]
SchedulerOption = Annotated[
    str | None,
    typer.Option("--scheduler", metavar="ADDRESS",
                 help="Dask scheduler (tcp://host:8786; the lookalike[dask] extra): its workers read, decode and "
                      "embed the files that need indexing (this process stays the one writer of the catalog) and "
                      "compute the k-NN graph of sort, cluster and dupes, split by cell."),
]
DaskWorkersOption = Annotated[
    int | None,
    typer.Option("--dask-workers", metavar="N",
                 help="Start a local Dask cluster of N worker processes (1-256) for this run."),
]
CsvOption = Annotated[bool, typer.Option("--csv", help="Print CSV on stdout.")]


#: Set by the root command's ``--catalog`` option; a command's own ``--catalog`` wins.
global_options: dict[str, Any] = {"catalog": None}


def chosen_catalog(path: Path | None) -> Path | None:
    """The catalog a person chose: this command's ``--catalog``, else the root command's, else None (the
    default one). Library functions open it (:func:`lookalike.catalog.open_catalog`)."""
    return path or global_options["catalog"]


@contextmanager
def progress_bar(label: str, enabled: bool = True) -> Iterator[Any]:
    """Yields a progress(done, total) callback that draws a bar on a terminal (stderr), else nothing."""
    if not enabled or not sys.stderr.isatty():
        yield None
        return
    with Progress(
        TextColumn(f"[bold]{label}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeRemainingColumn(),
        console=console,
        transient=True,
    ) as bar:
        task = bar.add_task(label, total=None)

        def update(done: int, total: int) -> None:
            bar.update(task, completed=done, total=total)

        yield update


# -- names that are not UTF-8 --------------------------------------------------------------------------------
# Python gives a file name's undecodable bytes as lone surrogates ('caf\udce9.jpg' for b'caf\xe9.jpg').
# They cannot be encoded as UTF-8, so every output path below says what becomes of them.

_SURROGATE = re.compile("[\ud800-\udfff]")


def _raw_bytes_errors(exc: UnicodeError) -> tuple[bytes | str, int]:
    """Encoding error handler "lookalike.raw": a file name's escaped bytes are written back as those bytes
    (like ``surrogateescape``); any other unencodable character as a backslash escape. Never fails."""
    if not isinstance(exc, UnicodeEncodeError):
        raise exc
    out = bytearray()
    for ch in exc.object[exc.start : exc.end]:
        code = ord(ch)
        out += bytes([code - 0xDC00]) if 0xDC80 <= code <= 0xDCFF else ascii(ch)[1:-1].encode()
    return bytes(out), exc.end


codecs.register_error("lookalike.raw", _raw_bytes_errors)


def safe_stdio() -> None:
    """Make stdout write any path without failing: a name's bytes are written back as they are (machine
    output: ``sort --keys``, CSV, tables piped to other tools). stderr keeps Python's backslash escapes."""
    reconfigure = getattr(sys.stdout, "reconfigure", None)
    if reconfigure is not None:
        try:
            reconfigure(errors="lookalike.raw")
        except (ValueError, OSError, LookupError):  # pragma: no cover - exotic streams
            pass


def shown(path: Any) -> str:
    """A path for a message a person reads: a name that is not UTF-8 shows its bytes as ``\\xe9`` escapes."""
    text = os.fsdecode(path) if isinstance(path, bytes | os.PathLike) else str(path)
    if text.isascii() or not _SURROGATE.search(text):
        return text
    try:
        return os.fsencode(text).decode("utf-8", "backslashreplace")
    except UnicodeEncodeError:
        return text.encode("utf-8", "backslashreplace").decode("utf-8")


def to_json(data: Any) -> str:
    """JSON text, valid UTF-8 whatever the paths: a name's undecodable bytes stay ``\\udcXX`` escapes, which
    ``json.loads`` in Python reads back to the same path. NaN and infinity are refused (not JSON)."""
    try:
        text = json.dumps(data, ensure_ascii=False, allow_nan=False)
    except ValueError as exc:
        raise LookalikeError(f"cannot write JSON: {exc}") from exc
    return _SURROGATE.sub(lambda m: f"\\u{ord(m.group()):04x}", text)


def print_json(data: Any) -> None:
    sys.stdout.write(to_json(data) + "\n")
    sys.stdout.flush()


def csv_text(header: Sequence[str] | None, rows: Iterable[Sequence[Any]]) -> str:
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    if header is not None:
        w.writerow(header)
    w.writerows(rows)
    return buf.getvalue()


def write_raw(text: str) -> None:
    """Write to stdout with file names' own bytes (see :func:`safe_stdio`), whatever stdout's settings."""
    binary = getattr(sys.stdout, "buffer", None)
    if binary is None:  # a test's captured stream: text is fine
        sys.stdout.write(text)
        return
    sys.stdout.flush()
    binary.write(text.encode(sys.stdout.encoding or "utf-8", "lookalike.raw"))
    binary.flush()


def print_csv(header: Sequence[str], rows: Sequence[Sequence[Any]]) -> None:
    """CSV on stdout; a path that is not UTF-8 is written as its own bytes (read it back with
    ``errors="surrogateescape"`` to get the same path)."""
    write_raw(csv_text(header, rows))


def fail(message: str, code: int = 1) -> typer.Exit:
    console.print(f"[red]error:[/red] {escape(shown(str(message)))}", highlight=False)
    return typer.Exit(code)
