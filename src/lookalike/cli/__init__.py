"""The `lookalike` command line. Each command group lives in its own module and registers itself;
commands only parse, call the library, and print."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape

from lookalike import __version__
from lookalike.cli import core
from lookalike.cli import dupes as dupes_cli
from lookalike.cli import faces as faces_cli
from lookalike.cli import journal as journal_cli
from lookalike.cli import organise as organise_cli
from lookalike.cli import serve as serve_cli
from lookalike.cli import video as video_cli
from lookalike.cli.common import console, global_options, safe_stdio, shown
from lookalike.errors import LookalikeError

app = typer.Typer(
    name="lookalike",
    help="Find similar photos, duplicates and faces in your folders: offline, on the CPU.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


def _version(value: bool) -> None:
    if value:
        print(f"lookalike {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    ctx: typer.Context,
    catalog: Annotated[
        Path | None,
        typer.Option("--catalog", help="Catalog database (default: under $LOOKALIKE_HOME or the user cache).",
                     dir_okay=False),
    ] = None,
    version: Annotated[bool, typer.Option("--version", callback=_version, is_eager=True)] = False,
) -> None:
    global_options["catalog"] = catalog


core.register(app)
dupes_cli.register(app)
faces_cli.register(app)
journal_cli.register(app)
video_cli.register(app)
serve_cli.register(app)
organise_cli.register(app)


def main() -> None:
    """Entry point: run the app, turning lookalike's own errors into one clear line and exit code 1."""
    safe_stdio()
    try:
        app()
    except LookalikeError as exc:
        console.print(f"[red]error:[/red] {escape(shown(str(exc)))}", highlight=False)
        sys.exit(1)
    except KeyboardInterrupt:
        console.print("interrupted")
        sys.exit(130)
