"""`lookalike faces ...`: detect, train, models, recognize, who, cluster, name, people. Logic: lookalike.faces."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.table import Column, Table
from rich.text import Text

from lookalike.catalog import open_catalog
from lookalike.cli.common import (
    CatalogOption,
    CsvOption,
    JsonOption,
    chosen_catalog,
    console,
    out,
    print_csv,
    print_json,
    progress_bar,
    shown,
)

DetectorOption = Annotated[
    str | None,
    typer.Option("--detector", help="auto (HOG, then YuNet if installed), hog or yunet. Default: the model's / auto."),
]
ModelOpt = Annotated[str | None, typer.Option("--model", "-m", help="Face model (default: the active one).")]
WorkersOption = Annotated[int | None, typer.Option("--workers", help="Processes for detection/embedding.")]


def _say(message: str) -> None:
    console.print(message, highlight=False, soft_wrap=True, markup=False)


def register(app: typer.Typer) -> None:
    faces_app = typer.Typer(help="Detect, learn and recognise faces; group unlabelled faces.", no_args_is_help=True)
    faces_app.command("detect")(detect_cmd)
    faces_app.command("train")(train_cmd)
    faces_app.command("recognize")(recognize_cmd)
    faces_app.command("who")(who_cmd)
    faces_app.command("cluster")(cluster_cmd)
    faces_app.command("name")(name_cmd)
    faces_app.command("people")(people_cmd)
    models_app = typer.Typer(help="Face models on disk: list, use, info, rm.", no_args_is_help=True)
    models_app.command("list")(models_list)
    models_app.command("use")(models_use)
    models_app.command("info")(models_info)
    models_app.command("rm")(models_rm)
    faces_app.add_typer(models_app, name="models")
    app.add_typer(faces_app, name="faces")


def detect_cmd(
    image: Annotated[Path, typer.Argument(help="Photo to look at.")],
    detector: DetectorOption = None,
    json_out: JsonOption = False,
) -> None:
    """Every face in a photo: box (left, top, right, bottom), score and the detector that found it."""
    from lookalike.faces import detect

    faces = detect(str(image), detector)
    if json_out:
        print_json({"query": str(image), "faces": [f.to_json() for f in faces]})  # as POST /v1/faces/detect
        return
    if not faces:
        _say(f"{image}: no face found (try --detector yunet after `lookalike models add yunet --file ...`)")
        return
    for f in faces:
        out.print(f"{f.box[0]},{f.box[1]},{f.box[2]},{f.box[3]}  score {f.score:.3f}  {f.detector}")


def train_cmd(
    dataset: Annotated[Path, typer.Argument(help="Folder holding one sub-folder of photos per person.")],
    model: Annotated[str, typer.Option("--model", "-m", help="Face model to create or extend.")],
    embedder: Annotated[str | None, typer.Option(help="Face embedding model (default dlib-face).")] = None,
    detector: DetectorOption = None,
    workers: WorkersOption = None,
    catalog: CatalogOption = None,
    json_out: JsonOption = False,
) -> None:
    """Learn people from DATASET (folder name = label). Incremental: only new people and photos are added."""
    from lookalike.faces import train

    with progress_bar("faces", not json_out) as progress:
        rep = train(dataset, model, progress=progress, embedder=embedder, detector=detector,
                    catalog=open_catalog(chosen_catalog(catalog)), workers=workers)
    if json_out:
        print_json(rep.to_json())
        return
    out.print(f"model {rep.model}: {rep.people} people, {rep.prototypes} prototypes; added {rep.photos_added} photos"
              f" ({len(rep.people_added)} new people), {rep.unchanged} already known; "
              f"unknown threshold {rep.threshold}")
    for p in rep.no_face:
        _say(f"no face: {p}")
    for p, n in rep.several_faces:
        _say(f"{n} faces, used the largest: {p}")
    for p in rep.duplicates:
        _say(f"duplicate of another photo of the same person, skipped: {p}")
    for p, e in rep.failed:
        _say(f"failed: {p}: {e}")
    for d in rep.nested_skipped:
        _say(f"warning: skipped the folder {d}: a folder inside a person's folder is not used (its photos are "
             "not labelled with the person's name); move them up, or give them a person folder of their own")


def recognize_cmd(
    image: Annotated[Path, typer.Argument(help="Photo to look at.")],
    k: Annotated[int, typer.Option("-k", help="How many closest prototypes to list per face.")] = 5,
    model: ModelOpt = None,
    tolerance: Annotated[float | None, typer.Option(help="Override the model's unknown threshold.")] = None,
    direct: Annotated[bool, typer.Option("--direct", help="No face found: take the whole photo as the face.")] = False,
    detector: DetectorOption = None,
    catalog: CatalogOption = None,
    json_out: JsonOption = False,
) -> None:
    """Every face in a photo: its box, who it is (or `unknown`) and the k closest prototypes."""
    from lookalike.faces import recognize

    res = recognize(str(image), k=k, model=model, tolerance=tolerance, direct=direct,
                    catalog=open_catalog(chosen_catalog(catalog)), detector=detector)
    if res.no_face:
        _say(f"{image}: no face found" + ("" if direct else " (try --direct with a cropped photo)"))
    if json_out:
        print_json(res.to_json())
        return
    for f in res.faces:
        out.print(f"[{f.box[0]}, {f.box[1]}, {f.box[2]}, {f.box[3]}] {f.label} (distance {f.distance:.3f}, "
                  f"threshold {res.threshold:.3f})")
        for c in f.candidates:
            out.print(f"    {c.distance:.3f}  {c.label}  {c.crop}")


def who_cmd(
    folder: Annotated[Path, typer.Argument(help="Folder of photos.")],
    model: ModelOpt = None,
    tolerance: Annotated[float | None, typer.Option(help="Override the model's unknown threshold.")] = None,
    direct: Annotated[bool, typer.Option("--direct", help="Take a photo with no face found as one face.")] = False,
    recursive: Annotated[bool, typer.Option("--recursive/--no-recursive")] = True,
    detector: DetectorOption = None,
    workers: WorkersOption = None,
    catalog: CatalogOption = None,
    csv_out: CsvOption = False,
    json_out: JsonOption = False,
) -> None:
    """One line per face in every photo of a folder: path,left,top,right,bottom,label,distance."""
    from lookalike.faces import who

    with progress_bar("faces", not (json_out or csv_out)) as progress:
        rep = who(folder, model=model, tolerance=tolerance, direct=direct, recursive=recursive,
                  catalog=open_catalog(chosen_catalog(catalog)), detector=detector, workers=workers, progress=progress)
    if json_out:
        print_json(rep.to_json())
    elif csv_out:
        print_csv(rep.HEADER, rep.rows)
    else:
        for r in rep.rows:
            out.print(f"{r[0]}  [{r[1]}, {r[2]}, {r[3]}, {r[4]}]  {r[5]}  {r[6]:.3f}")
    if not json_out:
        for p in rep.no_face:
            _say(f"no face: {p}")
        for p, e in rep.failed:
            _say(f"failed: {p}: {e}")
        _say(f"{rep.photos} photos, {len(rep.rows)} faces, {len(rep.no_face)} without a face, "
                      f"{len(rep.failed)} failed (model {rep.model}, threshold {rep.threshold:.3f})")


def cluster_cmd(
    folder: Annotated[Path, typer.Argument(help="Folder of unlabelled photos.")],
    links: Annotated[Path | None, typer.Option("--links", help="Write one folder of links per person here.")] = None,
    threshold: Annotated[float | None, typer.Option(help="Distance under which two faces may be one person.")] = None,
    min_size: Annotated[int, typer.Option(help="Smallest group reported as a person.")] = 2,
    model: ModelOpt = None,
    detector: DetectorOption = None,
    workers: WorkersOption = None,
    catalog: CatalogOption = None,
    json_out: JsonOption = False,
) -> None:
    """Group the faces of a folder into people; two faces of one photo are never put together."""
    from lookalike.faces import cluster_faces, write_links

    with progress_bar("faces", not json_out) as progress:
        rep = cluster_faces(folder, threshold=threshold, min_size=min_size, model=model, detector=detector,
                            catalog=open_catalog(chosen_catalog(catalog)), workers=workers, progress=progress)
    if links:
        applied = write_links(rep, links)
        _say(f"wrote {len(rep.clusters)} folders of links under {links} ({applied.done} operations, "
             f"{len(applied.failed)} failed); undo with: lookalike undo {applied.journal}")
    if json_out:
        print_json(rep.to_json())
        return
    for c in rep.clusters:
        out.print(f"{c.id}: {len(c.faces)} faces")
        for p, b in c.faces:
            out.print(f"    {p}  {list(b)}")
    _say(f"{len(rep.clusters)} groups, {len(rep.unclustered)} faces alone, {len(rep.no_face)} photos "
                  f"without a face (threshold {rep.threshold:.3f})")


def name_cmd(
    cluster_dir: Annotated[Path, typer.Argument(help="A reviewed cluster folder (from `faces cluster --links`).")],
    label: Annotated[str, typer.Option("--as", help="Who this is.")],
    model: Annotated[str, typer.Option("--model", "-m", help="Face model to add the person to.")],
    catalog: CatalogOption = None,
    json_out: JsonOption = False,
) -> None:
    """Turn a reviewed cluster into training data for LABEL in a face model."""
    from lookalike.faces import name_cluster

    rep = name_cluster(cluster_dir, label, model, catalog=open_catalog(chosen_catalog(catalog)))
    if json_out:
        print_json(rep.to_json())
        return
    out.print(f"model {rep.model}: added {rep.photos_added} faces of {label}; {rep.people} people, "
              f"{rep.prototypes} prototypes, threshold {rep.threshold}")


def _parse_names(names: list[str]) -> list[tuple[str, str]]:
    """``--name GROUP=LABEL`` values as (group id, label), checked before any photo is read."""
    from lookalike.errors import UsageError
    from lookalike.faces.people import check_label

    pairs = []
    for raw in names:
        group, sep, label = raw.partition("=")
        if not sep or not group.strip():
            raise UsageError(f"--name {raw!r}: give GROUP=LABEL, e.g. --name person-001='Ada Lovelace'")
        pairs.append((group.strip(), check_label(label)))
    if len({g for g, _ in pairs}) != len(pairs):
        raise UsageError("--name: each group is named once")
    return pairs


def people_cmd(
    folder: Annotated[list[Path], typer.Argument(help="Folder(s) of photos with faces.")],
    model: ModelOpt = None,
    threshold: Annotated[float | None, typer.Option(help="Distance under which two faces may be one person "
                                                    "(default: the model's, or the embedder's).")] = None,
    min_size: Annotated[int, typer.Option(help="Smallest group reported as a person.")] = 2,
    detector: DetectorOption = None,
    name: Annotated[list[str] | None, typer.Option("--name", metavar="GROUP=LABEL", help="Name a group: its faces "
                                                   "become examples of LABEL in the face model (--model, else the "
                                                   "active one), as the People view does. Repeatable.")] = None,
    catalog: CatalogOption = None,
    json_out: JsonOption = False,
) -> None:
    """The faces of a folder grouped by person, each group named after the face model's label for its faces
    (so names given before show again). --json prints the grouping the service's /v1/faces/people job returns."""
    from lookalike.errors import UsageError
    from lookalike.faces.people import group_people, name_person
    from lookalike.faces.store import active_face_model
    from lookalike.options import check_int, check_tolerance

    check_tolerance(threshold, "--threshold")
    check_int("--min-size", min_size, 1, 1000)
    names = _parse_names(name or [])
    target = model or active_face_model()
    if names and not target:
        raise UsageError("--name needs a face model to add the people to: give --model NAME (created when new)")
    cat = open_catalog(chosen_catalog(catalog))
    with progress_bar("faces", not json_out) as progress:
        people = group_people(folder, model=model, threshold=threshold, min_size=min_size, detector=detector,
                              catalog=cat, progress=progress)
    for group, _label in names:
        people.group(group)  # an unknown id is one clear line, before the model changes
    for group, label in names:
        people, report = name_person(people, group, label, target, catalog=cat)
        _say(f"{group} named {label}: {report.photos_added} faces added to face model {report.model}")
    if json_out:
        print_json(people.to_json())
        return
    for g in people.groups:
        out.print(f"{g.id}" + (f" ({g.label})" if g.label else "") + f": {len(g.faces)} faces",
                  highlight=False, markup=False)
        for f in g.faces:
            out.print(f"    {shown(f.path)}  {list(f.box)}", highlight=False, markup=False)
    where = f"; names from face model {people.model}" if people.model else ""
    _say(f"{len(people.groups)} people, {len(people.alone)} faces alone, {len(people.no_face)} photos without a "
         f"face, {len(people.failed)} failed (threshold {people.threshold:.3f}{where})")


def models_list(json_out: JsonOption = False) -> None:
    """Face models on disk; the active one is marked."""
    from lookalike.faces import face_model_info, list_face_models

    infos = [face_model_info(n) for n in list_face_models()]
    if json_out:
        print_json([{k: i[k] for k in ("name", "active", "people", "prototypes", "threshold", "embedder")}
                    for i in infos])
        return
    if not infos:
        _say("no face models yet: lookalike faces train DATASET --model NAME")
        return
    table = Table("", "name", "people", "prototypes", "threshold", "embedder")
    for i in infos:
        table.add_row("*" if i["active"] else "", i["name"], str(i["people"]), str(i["prototypes"]),
                      str(i["threshold"]), i["embedder"])
    out.print(table)


def models_use(name: Annotated[str, typer.Argument(help="Face model to make active.")]) -> None:
    """Make a face model the active one."""
    from lookalike.faces import use_face_model

    use_face_model(name)
    _say(f"active face model: {name}")


def models_info(
    name: Annotated[str | None, typer.Argument(help="Face model (default: the active one).")] = None,
    json_out: JsonOption = False,
) -> None:
    """People, prototypes, calibration and photos without a face of one model."""
    from lookalike.faces import face_model_info

    info = face_model_info(name)
    if json_out:
        print_json(info)
        return
    table = Table("", "value", title=Text(f"face model {info['name']}" + (" (active)" if info["active"] else "")),
                  title_justify="left", show_header=False)
    threshold = info["threshold"]
    rows = [
        ("folder", shown(info["folder"])),
        ("active", "yes" if info["active"] else "no (`lookalike faces models use NAME` makes it active)"),
        ("embedder", f"{info['embedder']} {info['embedder_version'] or ''}".strip()),
        ("detector", str(info["detector"])),
        ("unknown threshold", f"{threshold:.4f}" if isinstance(threshold, int | float) else "not calibrated yet"),
        ("people", str(info["people"])),
        ("prototypes", str(info["prototypes"])),
        ("photos seen", str(info["photos_seen"])),
        ("photos without a face", str(len(info["photos_without_face"]))),
        ("created", str(info["created"])),
        ("updated", str(info["updated"])),
    ]
    for i, (key, value) in enumerate(rows):
        table.add_row(key, Text(value), end_section=i == len(rows) - 1 and bool(info["calibration"]))
    for key, value in info["calibration"].items():
        table.add_row(f"calibration: {key.replace('_', ' ')}", Text(str(value)))
    out.print(table)
    if info["per_person"]:
        people = Table("person", Column("prototypes", justify="right"))
        for label, n in info["per_person"].items():
            people.add_row(Text(label), str(n))
        out.print(people)


def models_rm(name: Annotated[str, typer.Argument(help="Face model to remove.")]) -> None:
    """Remove a face model (through the journal: `lookalike undo` restores it)."""
    from lookalike.faces import remove_face_model

    rep = remove_face_model(name)
    if rep.failed:
        _say(f"could not remove every file of {name}: {rep.failed}")
    _say(f"removed {name}; undo with: lookalike undo {rep.journal}")
