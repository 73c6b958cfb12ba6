"""Journal commands: apply a plan, undo a run, list/show/purge journals."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from lookalike import journal
from lookalike.cli.common import JsonOption, console, out, print_json, progress_bar
from lookalike.errors import UsageError


def register(app: typer.Typer) -> None:
    app.command("apply")(apply_cmd)
    app.command("undo")(undo_cmd)
    journal_app = typer.Typer(help="List, inspect and purge the journals of file-changing commands.",
                              no_args_is_help=True)
    journal_app.command("list")(journal_list)
    journal_app.command("show")(journal_show)
    journal_app.command("purge")(journal_purge)
    app.add_typer(journal_app, name="journal")


def _op_line(op: dict) -> str:
    kind = op.get("op")
    if kind in ("move", "copy", "rename"):
        return f"{kind:7} {op.get('src')} -> {op.get('dst')}"
    if kind == "link":
        how = f"{op.get('kind')}{', replace' if op.get('replace') else ''}"
        return f"{kind:7} {op.get('path')} -> {op.get('target')} ({how})"
    if op.get("keep"):
        return f"{kind:7} {op.get('path')} (keeper {op.get('keep')})"
    return f"{kind:7} {op.get('path')}"


def apply_cmd(
    file: Annotated[Path | None, typer.Argument(help="Plan file (JSON) written by --plan, possibly edited.",
                                                dir_okay=False)] = None,
    resume: Annotated[bool, typer.Option("--resume", help="Complete an interrupted run (of FILE when given, else "
                                         "the latest interrupted one) instead of starting anew.")] = False,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Check and print what would be done; change nothing.")
                       ] = False,
    json_out: JsonOption = False,
) -> None:
    """Carry out a plan of file operations, journaling each one first so that `lookalike undo` can reverse it.

    Each source is checked against the sha256 in the plan: a file changed since is refused; the run goes on.

    Taken names are never overwritten: `name (1).jpg` is used instead.

    If a run is killed, `lookalike apply FILE --resume` completes it and `lookalike undo` rolls it back.

    Each operation that removes or replaces a file is checked against its keeper (named in the plan): it must
    still be there, a regular file with the sha256 the plan gives; otherwise the operation is refused.

    Exit status 1 when some operation failed or was refused.
    """
    if resume and dry_run:
        raise UsageError("--resume and --dry-run cannot be combined")
    with progress_bar("applying", not json_out) as progress:
        if resume:
            report = journal.resume(plan_file=file, progress=progress)
        else:
            if file is None:
                raise UsageError("give a plan FILE (or --resume)")
            report = journal.apply_plan(file, progress=progress, dry_run=dry_run)
    if json_out:
        print_json(report.to_json())
    else:
        if dry_run:
            for op in report.operations:
                out.print(_op_line(op), highlight=False)
        for f in report.failed:
            console.print(f"[red]refused[/red] #{f['seq']} {f['op']} {f['path']}: {f['error']}", highlight=False)
        if dry_run:
            out.print(f"dry run: {len(report.operations)} of {report.total} operations would run, "
                      f"{len(report.failed)} refused; nothing was changed", highlight=False)
        else:
            out.print(f"{'resumed: ' if report.resumed else ''}{report.done} of {report.total} operations done, "
                      f"{len(report.failed)} failed. Journal {report.id}; undo with `lookalike undo {report.id}`",
                      highlight=False)
    if report.failed:
        raise typer.Exit(1)


def undo_cmd(
    journal_ref: Annotated[str | None, typer.Argument(metavar="JOURNAL",
                                                      help="Journal id or folder (default: the newest run "
                                                           "not yet undone).")] = None,
    json_out: JsonOption = False,
) -> None:
    """Reverse a run of a file-changing command, newest operation first.

    Without JOURNAL: the newest run not yet undone, so running `lookalike undo` again steps back one more run.

    Moved and renamed files go back; copies and links it made are removed; deleted, trashed and replaced files
    are restored from the journal's copies; folders it created are removed when empty.

    Files are checked by sha256: nothing the run did not create is deleted or replaced. What cannot be restored
    is listed with the reason (exit status 1).

    Safe to run again. It also rolls back a run that was killed mid-way. Exit status 1 when there was nothing
    left to undo.
    """
    with progress_bar("undoing", not json_out) as progress:
        report = journal.undo(journal_ref, progress=progress)
    nothing = not report.undone and not report.problems
    if json_out:
        print_json(report.to_json())
    else:
        for p in report.problems:
            console.print(f"[red]not restored[/red] #{p['seq']} {p['op']} {p['path']}: {p['reason']}",
                          highlight=False)
        for note in report.notes:
            console.print(f"note: {note}", highlight=False)
        out.print(f"undid {report.summary} (journal {report.journal.name}): {report.undone} operations undone"
                  + (f", {report.already} already undone" if report.already else "")
                  + (f", {len(report.problems)} could not be undone" if report.problems else ""), highlight=False)
        if nothing:
            console.print(f"nothing to undo: journal {report.journal.name} "
                          + ("was already undone" if report.already else "changed no files"), highlight=False)
    if report.problems or nothing:
        raise typer.Exit(1)


def journal_list(json_out: JsonOption = False) -> None:
    """List journals, oldest first: id (its date), status, operations, the size of the copies they keep, and what
    each run did (the command, how many files it changed and how, and where)."""
    infos = journal.list_journals()
    if json_out:
        print_json({"journals": [i.to_json() for i in infos]})
        return
    if not infos:
        out.print("no journals")
        return
    table = Table(box=None, pad_edge=False)
    table.add_column("id", no_wrap=True)
    for name in ("status", "done", "failed", "undone", "kept"):
        table.add_column(name, no_wrap=True)
    table.add_column("what it did")
    for i in infos:
        c = i.counts
        table.add_row(i.id, i.status, str(c["done"]), str(c["failed"]), str(c["undone"]), _size(i.kept_bytes),
                      i.summary or i.description)
    out.print(table)


def journal_show(
    journal_ref: Annotated[str, typer.Argument(metavar="ID", help="Journal id (or folder).")],
    json_out: JsonOption = False,
) -> None:
    """Show one journal: each operation with its state (done, failed, undone) and the files it touched."""
    data = journal.show_journal(journal_ref)
    if json_out:
        print_json(data)
        return
    out.print(f"journal {data['id']} ({data['status']}) created {data['created']}: {data['summary']}",
              highlight=False)
    for op in data["operations"]:
        state = op["state"] + (f", {op['undo']}" if "undo" in op else "")
        line = _op_line(op) if op.get("op") else "(refused before starting)"
        extra = op.get("error") or op.get("undo_problem") or ""
        out.print(f"#{op['seq']:<5} {state:20} {line}{'  ' + extra if extra else ''}", highlight=False)


def journal_purge(
    journal_ref: Annotated[str | None, typer.Argument(metavar="ID", help="Journal id to purge.")] = None,
    all_: Annotated[bool, typer.Option("--all", help="Purge every journal.")] = False,
    force: Annotated[bool, typer.Option("--force", help="Also purge interrupted journals and journals whose undo "
                                        "left problems (they may hold the only copy of a file).")] = False,
    json_out: JsonOption = False,
) -> None:
    """Delete journals and the copies of deleted, trashed and replaced files they keep.

    After this, those runs can no longer be undone and their deleted files are gone for good.
    """
    result = journal.purge(journal_ref, all=all_, force=force)
    if json_out:
        print_json(result)
        return
    out.print(f"purged {len(result['removed'])} journal(s)", highlight=False)
    for s in result["skipped"]:
        console.print(f"kept {s}: finish it (apply --resume or undo) or use --force", highlight=False)


def _size(n: int) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if n < 1024 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return str(n)
