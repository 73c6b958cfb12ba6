"""Organise commands: `lookalike sort` (lookalikes side by side, optional rank prefixes) and `lookalike cluster`."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer

from lookalike.catalog import open_catalog
from lookalike.cli.common import (
    CatalogOption,
    DaskWorkersOption,
    JsonOption,
    SchedulerOption,
    chosen_catalog,
    console,
    out,
    print_json,
    progress_bar,
)
from lookalike.errors import UsageError
from lookalike.features import DEFAULT_MODEL
from lookalike.options import check_cluster_options, cluster_option
from lookalike.organise.cluster import (
    DEFAULT_METHOD,
    DEFAULT_MIN_SIZE,
    DEFAULT_SIM,
    DEFAULT_TIME_WEIGHT,
    MATRIX_LIMIT,
    METHODS,
)

ModelOption = Annotated[
    str, typer.Option("--model", "-m", help="Feature model: effnet (CNN embedding), phash, dhash, ahash, whash.")
]
Folders = Annotated[list[Path], typer.Argument(help="Folder(s) of photos (indexed on the fly).")]
RecursiveOption = Annotated[bool, typer.Option("--recursive/--no-recursive", help="Enter sub-folders.")]
DryRunOption = Annotated[bool, typer.Option("--dry-run", help="Print what would change; change nothing.")]


def register(app: typer.Typer) -> None:
    app.command("sort")(sort_cmd)
    app.command("cluster")(cluster_cmd)


def _print_apply(report, json_out: bool, what: str) -> None:
    if report.dry_run:
        console.print(f"dry run: {len(report.operations)} operation(s) would be done, "
                      f"{len(report.failed)} refused", highlight=False)
        for op in report.operations:
            dst = op.get("dst") or op.get("path")
            src = op.get("src") or op.get("target")
            if src is None:  # a removal: the file and its keeper
                console.print(f"  {op['op']:6} {dst} (keeper {op.get('keep')})", highlight=False, markup=False)
                continue
            console.print(f"  {op['op']:6} {src} -> {dst}", highlight=False, markup=False)
    else:
        console.print(f"{what}: {report.done} done, {len(report.failed)} failed; undo with: lookalike undo "
                      f"{report.id}", highlight=False)
    for f in report.failed:
        console.print(f"  failed: {f.get('path')}: {f.get('error')}", highlight=False, markup=False)


def sort_cmd(
    folders: Folders,
    model: ModelOption = DEFAULT_MODEL,
    rename: Annotated[bool, typer.Option("--rename", help="Prefix each name with its zero-padded rank "
                                         "(0001_IMG_4711.jpg), through the journal (`lookalike undo` restores). "
                                         "A prefix added earlier by lookalike is replaced, never stacked.")] = False,
    strip: Annotated[bool, typer.Option("--strip", help="Remove the rank prefixes lookalike added.")] = False,
    keys: Annotated[bool, typer.Option("--keys", help="Print one sort key per photo: KEY<TAB>PATH.")] = False,
    plan_file: Annotated[Path | None, typer.Option("--plan", help="With --rename/--strip: write the plan to FILE "
                                                   "for `lookalike apply` instead of applying it.",
                                                   dir_okay=False)] = None,
    dry_run: DryRunOption = False,
    recursive: RecursiveOption = True,
    scheduler: SchedulerOption = None,
    dask_workers: DaskWorkersOption = None,
    catalog: CatalogOption = None,
    json_out: JsonOption = False,
) -> None:
    """Order photos so that lookalikes sit next to each other.

    The order is a short path through the k-nearest-neighbour graph (greedy edge matching, then 2-opt and
    Or-opt moves): deterministic, and adding a photo moves few others. Without --rename/--strip nothing is
    changed: the order is printed (--json: {"order": [PATH, ...]}; --keys: KEY<TAB>PATH).

    With --scheduler or --dask-workers the indexing and the k-NN graph run on a Dask cluster (the same order).
    """
    from lookalike.organise.sort import sort_folder

    dask = cluster_option(scheduler, dask_workers)  # before the catalog is opened

    with progress_bar("indexing", not (json_out or keys or strip)) as progress:
        report = sort_folder(folders, model, rename=rename, strip=strip, plan_file=plan_file, dry_run=dry_run,
                             recursive=recursive, catalog=open_catalog(chosen_catalog(catalog)), progress=progress,
                             dask=dask)
    _print_sort(report, json_out, keys)
    if report.failed:
        raise typer.Exit(1)


def _print_sort(report, json_out: bool, keys: bool) -> None:
    if report.action != "order":  # what the journal did (or would do) with the rename or strip plan
        if report.plan_file:
            console.print(f"plan of {len(report.plan)} rename(s) written to {report.plan_file}", highlight=False)
        elif report.applied is None:
            console.print("no lookalike rank prefixes to strip" if report.action == "strip" else
                          "every name already carries its rank: nothing to rename", highlight=False)
        else:
            _print_apply(report.applied, json_out, "stripped" if report.action == "strip" else "renamed")
    if report.action == "strip":
        if json_out and report.applied is not None:
            print_json(report.to_json())
        return
    if json_out:
        print_json(report.to_json())
    elif keys or report.action == "order":
        sep = "\t" if keys else "  "
        sys.stdout.write("".join(f"{key}{sep}{path}\n" for key, path in zip(report.keys, report.order, strict=True)))
        sys.stdout.flush()
    if not (json_out or keys or report.action != "order"):
        console.print(f"{len(report.order)} photos; mean distance between neighbours {report.mean_distance:.4f}",
                      highlight=False)


def cluster_cmd(
    folders: Folders,
    sim: Annotated[float, typer.Option("--sim", help="Similarity in 0..1 needed to group "
                                       "photos (cosine for embeddings, 1 - Hamming/bits for hashes): the tree is "
                                       "cut at distance 1 - sim (ward: sqrt(2(1-sim))). 0: one group (not always "
                                       "with ward); 1: identical photos only. The default is the best measured on "
                                       "objects, people and near duplicates.")
                   ] = DEFAULT_SIM,
    method: Annotated[str, typer.Option("--method", help=f"Linkage: {', '.join(METHODS)}. average: mean "
                                        "similarity between merged groups >= sim; complete: every pair >= sim; "
                                        "single: a chain of pairs >= sim; ward (the default, the best on "
                                        "objects, people and near duplicates alike): cut at sqrt(2(1-sim)) on "
                                        "Euclidean distances of unit vectors (stricter for big groups; past 20,000 "
                                        "photos complete is used).")
                  ] = DEFAULT_METHOD,
    min_size: Annotated[int, typer.Option("--min-size", help="Smallest group reported; smaller ones are "
                                          "listed as unclustered.")] = DEFAULT_MIN_SIZE,
    time_weight: Annotated[float, typer.Option("--time-weight", help="Mix capture times (EXIF "
                                               "DateTimeOriginal, else file time) into the distance: "
                                               "A*d_time + (1-A)*d_content, both in 0..1.")] = DEFAULT_TIME_WEIGHT,
    relative: Annotated[bool, typer.Option("--relative", help="imagecluster's cut instead: at (1 - sim) times "
                                           "the largest distance in this set (meaning changes per folder).")
                        ] = False,
    links: Annotated[Path | None, typer.Option("--links", help="Write OUT/cluster_with_<size>/cluster_<i>/ with "
                                               "a symbolic link per photo (a copy where links are impossible).",
                                               file_okay=False)] = None,
    copy: Annotated[Path | None, typer.Option("--copy", help="Like --links, with copies.", file_okay=False)] = None,
    out_dir: Annotated[Path | None, typer.Option("--out", help="Folder for --sheet/--plot when neither --links "
                                                 "nor --copy is given.", file_okay=False)] = None,
    sheet: Annotated[bool, typer.Option("--sheet", help="Write a contact sheet per group "
                                        "(OUT/cluster_with_<size>/cluster_<i>_sheet.jpg).")] = False,
    plot: Annotated[bool, typer.Option("--plot", help="Write the dendrogram to OUT/dendrogram.png.")] = False,
    model: ModelOption = DEFAULT_MODEL,
    dry_run: DryRunOption = False,
    recursive: RecursiveOption = True,
    scheduler: SchedulerOption = None,
    dask_workers: DaskWorkersOption = None,
    catalog: CatalogOption = None,
    json_out: JsonOption = False,
) -> None:
    """Group photos by similarity (hierarchical clustering) and optionally write the groups to a folder.

    --sim means the same on every folder: it is cut on the similarity scale itself, not relative to the
    set's largest distance (--relative restores that).

    Past 20,000 photos no N x N distance matrix is built: clustering runs over the k-nearest-neighbour
    graph (k=15) instead. --sim keeps its meaning, but photos are joined only through k-NN links (so
    --sim 0 gives one group per connected part of that graph), average/complete linkage is taken over those
    links only, --method ward (the default) becomes complete (a note says so), and --plot is not available.

    Groups are printed under the folder names --links/--copy use (cluster_with_<size>/cluster_<i>), then
    imagecluster's table of cluster sizes (size : count).

    Everything written to OUT goes through the journal: nothing there is overwritten, and `lookalike undo`
    removes exactly what this run wrote. Run again into the same OUT, the new tree replaces what earlier
    cluster runs wrote there (their links, copies, contact sheets and dendrogram, each removal checked against
    a photo it stands for; files of yours are never touched), and one `lookalike undo` brings the previous
    tree back. OUT/.lookalike-links.json records what lookalike wrote, so this works after `journal purge` too.
    With --scheduler/--dask-workers the indexing and the k-NN graph run on a Dask cluster (the same groups).
    """
    from lookalike.organise.cluster import cluster_folder

    if links and copy:
        raise UsageError("--links and --copy cannot be combined")
    check_cluster_options(sim, min_size, time_weight, method, METHODS)  # before the catalog is opened
    dask = cluster_option(scheduler, dask_workers)
    dest = links or copy or out_dir
    mode = "link" if links else "copy" if copy else None
    with progress_bar("indexing", not json_out) as progress:
        result = cluster_folder(folders, sim, method, min_size, time_weight, model, relative=relative, out=dest,
                                mode=mode, sheet=sheet, plot=plot, dry_run=dry_run, recursive=recursive,
                                catalog=open_catalog(chosen_catalog(catalog)), progress=progress, dask=dask)
    if result.applied is not None:
        _print_apply(result.applied, json_out, f"written to {dest}")
        for left in result.left:
            console.print(f"  left in place: {left['path']}: {left['reason']}", highlight=False, markup=False)
    if json_out:
        print_json(result.to_json())
    else:
        _print_clusters(result)


def _print_clusters(result) -> None:
    for name, members in zip(result.names(), result.clusters, strict=True):  # the folder names --links uses
        out.print(f"{name} ({len(members)} photos)", highlight=False, markup=False)
        for p in members:
            out.print(f"  {p}", highlight=False, markup=False)
    for line in result.size_table():
        console.print(line, highlight=False)
    mode = f"k-NN graph mode (more than {MATRIX_LIMIT} photos)" if result.mode == "graph" else "exact mode"
    console.print(f"{len(result.clusters)} group(s), {len(result.unclustered)} unclustered; {result.method} linkage, "
                  f"{mode}, cut at {result.threshold:.4f}", highlight=False)
    if result.note:
        console.print(f"note: {result.note}", highlight=False)
    if result.relative and result.absolute_cut is not None:
        if abs(result.absolute_cut - result.threshold) <= 1e-6:
            note = "the same cut as without --relative (the largest distance in this set is 1)"
        elif result.same_as_absolute:
            note = f"the absolute cut would be at {result.absolute_cut:.4f}, with the same groups"
        elif result.same_as_absolute is False:
            note = f"the absolute cut would be at {result.absolute_cut:.4f}, with other groups"
        else:
            note = f"the absolute cut would be at {result.absolute_cut:.4f}"
        console.print(f"--relative: cut at (1 - sim) x the largest distance in this set; {note}", highlight=False)
