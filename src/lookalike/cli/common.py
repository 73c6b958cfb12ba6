"""Helpers shared by every CLI command: catalog option, progress bar, JSON/CSV/table output."""

from __future__ import annotations

import csv
import json
import sys
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

from lookalike.catalog import Catalog

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
CsvOption = Annotated[bool, typer.Option("--csv", help="Print CSV on stdout.")]


#: Set by the root command's ``--catalog`` option; a command's own ``--catalog`` wins.
global_options: dict[str, Any] = {"catalog": None}


def open_catalog(path: Path | None) -> Catalog:
    return Catalog(path or global_options["catalog"])


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


def print_json(data: Any) -> None:
    sys.stdout.write(json.dumps(data, ensure_ascii=False) + "\n")
    sys.stdout.flush()


def print_csv(header: Sequence[str], rows: Sequence[Sequence[Any]]) -> None:
    w = csv.writer(sys.stdout, lineterminator="\n")
    w.writerow(header)
    w.writerows(rows)


def fail(message: str, code: int = 1) -> typer.Exit:
    console.print(f"[red]error:[/red] {escape(str(message))}", highlight=False)
    return typer.Exit(code)
