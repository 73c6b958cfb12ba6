"""`lookalike dupes`: find duplicate pictures and (optionally) clean them up through the journal."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.text import Text

from lookalike.catalog import open_catalog
from lookalike.cli.common import (
    CatalogOption,
    CsvOption,
    DaskWorkersOption,
    JsonOption,
    SchedulerOption,
    chosen_catalog,
    console,
    out,
    print_csv,
    print_json,
    progress_bar,
    shown,
)
from lookalike.dupes import (
    ACTIONS,
    DEFAULT_LINK_KIND,
    DEFAULT_POLICY,
    DEFAULT_TIER,
    NEAR_MIN_NCC,
    SIMILAR_MIN_COS,
    TIERS,
    DupesReport,
    find_duplicates,
)
from lookalike.errors import UsageError
from lookalike.options import check_dupes_options, cluster_option


def register(app: typer.Typer) -> None:
    app.command("dupes")(dupes_cmd)


def dupes_cmd(
    paths: Annotated[list[Path] | None, typer.Argument(
        help="Folders or files to search (all against all). None: the small bundled demo folder (report only).",
        show_default=False)] = None,
    tier: Annotated[str, typer.Option("--tier", help=f"One of {', '.join(TIERS)}; each includes the previous ones: "
                                      "exact = same bytes, pixel = same decoded pixels, near = edited copies "
                                      "(default), similar = same scene (looser).")] = DEFAULT_TIER,
    threshold: Annotated[float | None, typer.Option(
        "--threshold", help=f"near: minimum aligned local correlation (default {NEAR_MIN_NCC:.2f}); similar: "
        f"minimum CNN cosine (default {SIMILAR_MIN_COS:.2f}).")] = None,
    keep: Annotated[str | None, typer.Option(
        "--keep", help=f"Keeper criteria in order, comma-separated (default: {','.join(DEFAULT_POLICY)}).")] = None,
    keep_in: Annotated[list[Path] | None, typer.Option(
        "--keep-in", help="Folder whose files are never touched and win the keeper choice (repeatable).")] = None,
    action: Annotated[str, typer.Option("--action", help=f"One of {', '.join(ACTIONS)}. copy/move: each group, "
                                        "keeper included (named KEEP_<name>), into DEST/group_NNNN; move-dupes: "
                                        "only the duplicates into DEST/group_NNNN, the keepers stay in place; "
                                        "trash/delete: the duplicates; link: each duplicate becomes a link to its "
                                        "keeper.")] = "report",
    dest: Annotated[Path | None, typer.Option("--dest", help="Destination folder for copy, move and move-dupes.")
                    ] = None,
    link_kind: Annotated[str, typer.Option("--link-kind", help="hard or symbolic (for --action link).")
                         ] = DEFAULT_LINK_KIND,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Print the plan; change nothing.")] = False,
    plan_file: Annotated[Path | None, typer.Option(
        "--plan", help="Write the plan to FILE (edit it, then `lookalike apply FILE`); change nothing.")] = None,
    yes: Annotated[bool, typer.Option("--yes", help="Confirm --action delete.")] = False,
    recursive: Annotated[bool, typer.Option("--recursive/--no-recursive", help="Enter sub-folders.")] = True,
    scheduler: SchedulerOption = None,
    dask_workers: DaskWorkersOption = None,
    catalog: CatalogOption = None,
    json_out: JsonOption = False,
    csv_out: CsvOption = False,
) -> None:
    """Find duplicate pictures: one keeper per group, with the reason it was kept.

    Mutating actions (copy, move, trash, delete, link) are journaled: `lookalike undo` restores the tree.
    With --scheduler or --dask-workers the indexing and the CNN k-NN candidate search run on a Dask cluster
    (the same groups); verification stays on this machine.
    """
    # every option first, before the catalog is opened or anything is read (the library checks again)
    check_dupes_options(tier, threshold, action=action, dest=dest, link_kind=link_kind, keep=keep)
    dask = cluster_option(scheduler, dask_workers)
    if action == "delete" and not (yes or dry_run or plan_file):
        raise UsageError("--action delete needs --yes (files go to the journal until `lookalike journal purge`)")
    if json_out and csv_out:
        raise UsageError("choose one of --json and --csv")
    if not paths:
        from lookalike.demo import demo_folder

        if action != "report":
            raise UsageError(f"--action {action} needs a folder of yours; the bundled demo folder is only reviewed")
        paths = [demo_folder()]
        if not (json_out or csv_out):
            console.print(f"no folder given: reviewing the bundled demo folder {paths[0]} (give your own: "
                          "`lookalike dupes ~/Pictures`)", highlight=False)
    cat = open_catalog(chosen_catalog(catalog))
    with progress_bar("finding duplicates", not (json_out or csv_out)) as progress:
        report = find_duplicates([str(p) for p in paths], tier=tier, threshold=threshold, keep=keep,
                                 keep_in=[str(p) for p in keep_in or []], catalog=cat, progress=progress,
                                 recursive=recursive, dask=dask)
    if csv_out:
        print_csv(DupesReport.CSV_HEADER, report.csv_rows())
    elif not json_out:
        _print_table(report)
    if action != "report":
        _act(report, action, dest, link_kind, dry_run, plan_file, json_out)
    elif json_out:
        print_json(report.to_json())


def _print_table(report: DupesReport) -> None:
    for n, g in enumerate(report.groups, 1):
        out.print(f"[bold]group {n}[/bold]  keep {g.keep}", highlight=False)
        out.print(f"    why: {g.reason}", highlight=False)
        for m in g.members:
            lock = "  (--keep-in: untouched)" if m.path in g.protected else ""
            out.print(f"    {m.tier:7} {m.score:6.3f}  {m.path}{lock}", highlight=False)
        for a in g.links:
            out.print(f"    {a.kind:7} {'':6}  {a.path} -> same file as {a.to} (never acted on)", highlight=False,
                      markup=False)
    for e in report.errors:
        console.print(f"[yellow]skipped[/yellow] {e.path}: {e.error}", highlight=False)
    out.print(f"{len(report.groups)} groups, {report.duplicate_count} duplicates, {len(report.errors)} unreadable "
              f"({report.tier} tier, {report.stats.get('files', 0)} files)", highlight=False)


def _act(report: DupesReport, action: str, dest: Path | None, link_kind: str, dry_run: bool,
         plan_file: Path | None, json_out: bool) -> None:
    from lookalike.dupes import act_on

    with progress_bar(action, not (json_out or plan_file)) as progress:
        done = act_on(report, action, dest, link_kind, dry_run=dry_run, plan_file=plan_file, progress=progress)
    for s in done.plan.skipped:
        console.print(f"[yellow]left out[/yellow] {s['path']}: {s['reason']}", highlight=False)
    if done.plan_file is not None:
        console.print(f"plan with {len(done.plan)} operations written to {plan_file}; run `lookalike apply "
                      f"{plan_file}`", highlight=False)
        if json_out:
            print_json(done.to_json())
    else:
        _report_apply(done, dry_run, json_out)
        if action == "move-dupes" and not (json_out or dry_run) and done.applied.done:
            out.print(Text(f"moved {done.applied.done} duplicates into {shown(dest)}/group_NNNN/; every keeper "
                           "stays where it was"))
    if done.failed:  # a requested change was not (or would not be) made
        raise typer.Exit(1)


def _report_apply(done, dry_run: bool, json_out: bool) -> None:
    if json_out:
        print_json(done.to_json())
        return
    applied = done.applied
    for f in applied.failed:
        console.print(f"[red]refused[/red] {f.get('op')} {f.get('path')}: {f.get('error')}", highlight=False)
    if dry_run:
        for op in applied.operations:
            out.print(f"{op.get('op'):7} {op.get('src') or op.get('path')} -> "
                      f"{op.get('dst') or op.get('target') or ''}", highlight=False)
        out.print(f"dry run: {len(applied.operations)} operations would run; nothing changed", highlight=False)
    else:
        out.print(f"{applied.done} of {applied.total} operations done; undo with `lookalike undo {applied.id}`",
                  highlight=False)
