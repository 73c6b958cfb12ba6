"""Faces (issue 5): training, incremental retraining, crops and prototypes, several models, every face of a
photo, photos without a face, --direct, clustering with the one-photo constraint, the catalog cache.

Real photos from ../shared/data/faces and real dlib models; few photos (dlib embeds ~0.1 s per face), and
one catalog shared by the whole module so each photo is embedded once."""

from __future__ import annotations

import csv
import io
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from conftest import SRC, shared_data

pytest.importorskip("dlib")

PEOPLE = ["Brad_Pitt", "Tom_Hanks", "Natalie_Portman"]


def _photos(person: str) -> list[Path]:
    return sorted(shared_data("faces", "celebrity", person).glob("*.jpg"))


@pytest.fixture(scope="module")
def face_catalog(tmp_path_factory) -> Path:
    """One catalog for the module: face embeddings are computed once per photo."""
    return tmp_path_factory.mktemp("faces-cat") / "catalog.sqlite"


@pytest.fixture
def dataset(tmp_path) -> Path:
    """Two people x 4 photos (a third person is added by the tests that need it)."""
    root = tmp_path / "people"
    for person in PEOPLE[:2]:
        (root / person).mkdir(parents=True)
        for p in _photos(person)[:4]:
            shutil.copy(p, root / person / p.name)
    return root


def _add_person(root: Path, person: str, n: int = 4) -> None:
    (root / person).mkdir()
    for p in _photos(person)[:n]:
        shutil.copy(p, root / person / p.name)


def _side_by_side(a: Path, b: Path, out: Path) -> Path:
    """A real two-face photo: two portraits pasted side by side on one canvas."""
    ia, ib = Image.open(a).convert("RGB"), Image.open(b).convert("RGB")
    h = max(ia.height, ib.height)
    canvas = Image.new("RGB", (ia.width + ib.width + 40, h + 20), (128, 128, 128))
    canvas.paste(ia, (10, 10))
    canvas.paste(ib, (ia.width + 30, 10))
    canvas.save(out, quality=95)
    return out


def test_face_models_found_without_importing_their_package():
    code = ("import sys; from lookalike.faces.embed import dlib_model_file, SHAPE_PREDICTOR, DLIB_RESNET;"
            "assert dlib_model_file(SHAPE_PREDICTOR).is_file() and dlib_model_file(DLIB_RESNET).is_file();"
            "assert 'face_recognition_models' not in sys.modules and 'pkg_resources' not in sys.modules")
    subprocess.run([sys.executable, "-c", code], check=True, env={**os.environ, "PYTHONPATH": str(SRC)})


def test_train_add_person_retrain_incrementally(dataset, face_catalog):
    from lookalike.faces import face_model_info, recognize, train

    rep = train(dataset, "family", catalog=face_catalog)
    assert rep.photos_added == 8 and rep.people == 2 and rep.prototypes == 8
    assert sorted(rep.people_added) == PEOPLE[:2] and not rep.no_face and not rep.failed
    assert rep.threshold is not None and 0.3 <= rep.threshold <= 0.7

    _add_person(dataset, PEOPLE[2])
    shutil.copy(_photos("Brad_Pitt")[4], dataset / "Brad_Pitt")  # and one new photo of a known person
    rep2 = train(dataset, "family", catalog=face_catalog)
    assert rep2.people_added == [PEOPLE[2]]
    assert rep2.photos_added == 5 and rep2.unchanged == 8
    assert rep2.prototypes == 13 and rep2.people == 3
    info = face_model_info("family")
    assert info["per_person"] == {"Brad_Pitt": 5, "Natalie_Portman": 4, "Tom_Hanks": 4}
    assert info["calibration"]["genuine_samples"] == 13

    # A third run has nothing to do.
    assert train(dataset, "family", catalog=face_catalog).photos_added == 0

    # Photos never trained on: known people are named, a stranger is unknown (calibrated threshold).
    for person in PEOPLE:
        res = recognize(_photos(person)[8], model="family", catalog=face_catalog)
        assert [f.label for f in res.faces] == [person]
        assert res.faces[0].distance <= res.threshold
    stranger = recognize(_photos("Will_Smith")[0], model="family", catalog=face_catalog)
    assert [f.label for f in stranger.faces] == ["unknown"]
    assert stranger.faces[0].distance > stranger.threshold
    # --tolerance overrides the calibrated threshold.
    lax = recognize(_photos("Will_Smith")[0], model="family", tolerance=1.5, catalog=face_catalog)  # the most allowed
    assert lax.faces[0].label != "unknown" and lax.threshold == 1.5


def test_deleting_a_crop_removes_its_prototype(dataset, face_catalog):
    from lookalike.faces import train
    from lookalike.faces.store import FaceModel

    train(dataset, "m", catalog=face_catalog)
    model = FaceModel.load("m")
    assert len(model.prototypes) == 8
    victim = model.prototypes[0]
    crop = model.crop_path(victim)
    assert crop.is_file() and crop.suffix == ".png" and Image.open(crop).size == (150, 150)
    crop.unlink()

    reloaded = FaceModel.load("m")
    assert len(reloaded.prototypes) == 7 and reloaded.dropped == [victim.crop]
    assert victim.crop not in {p.crop for p in reloaded.prototypes}
    on_disk = json.loads((reloaded.folder / "prototypes.json").read_text())
    assert len(on_disk) == 7  # the drop was saved
    # Retraining does not bring back a prototype the user removed.
    assert train(dataset, "m", catalog=face_catalog).photos_added == 0
    assert len(FaceModel.load("m").prototypes) == 7


def test_several_models_use_info_rm(dataset, face_catalog, run_cli, tmp_path):
    run_cli("--catalog", face_catalog, "faces", "train", dataset, "--model", "one")
    _add_person(dataset, PEOPLE[2])
    res = run_cli("--catalog", face_catalog, "faces", "train", dataset, "--model", "two", "--json").json()
    assert res["people"] == 3 and res["photos_added"] == 12

    # Training a second model keeps the first one active (issue 13): it is used until `models use` says otherwise.
    listed = run_cli("faces", "models", "list", "--json").json()
    assert [m["name"] for m in listed] == ["one", "two"] and [m["name"] for m in listed if m["active"]] == ["one"]
    probe = _photos("Natalie_Portman")[9]
    got = run_cli("--catalog", face_catalog, "faces", "recognize", probe, "--json").json()
    assert got["faces"][0]["label"] == "unknown"  # model one does not know her
    assert run_cli("faces", "models", "info", "--json").json()["name"] == "one"

    run_cli("faces", "models", "use", "two")
    listed = run_cli("faces", "models", "list", "--json").json()
    assert [m["name"] for m in listed if m["active"]] == ["two"]
    got = run_cli("--catalog", face_catalog, "faces", "recognize", probe, "--json").json()
    assert got["faces"][0]["label"] == "Natalie_Portman"
    # model one does not know her
    got1 = run_cli("--catalog", face_catalog, "faces", "recognize", probe, "--model", "one", "--json").json()
    assert got1["faces"][0]["label"] == "unknown"

    info = run_cli("faces", "models", "info", "one", "--json").json()
    assert info["people"] == 2 and info["prototypes"] == 8 and info["threshold"] > 0
    rm = run_cli("faces", "models", "rm", "one")
    assert "lookalike undo" in rm.stderr
    assert [m["name"] for m in run_cli("faces", "models", "list", "--json").json()] == ["two"]
    run_cli("undo")  # the journal brings it back, crops included
    assert [m["name"] for m in run_cli("faces", "models", "list", "--json").json()] == ["one", "two"]
    assert run_cli("faces", "models", "info", "one", "--json").json()["prototypes"] == 8


def test_multi_face_photo_returns_every_face(dataset, face_catalog, run_cli, tmp_path):
    from lookalike.faces import train

    _add_person(dataset, PEOPLE[2])
    train(dataset, "m", catalog=face_catalog)
    a, b = _photos("Tom_Hanks")[9], _photos("Natalie_Portman")[9]
    group = _side_by_side(a, b, tmp_path / "two.jpg")
    res = run_cli("--catalog", face_catalog, "faces", "recognize", group, "-k", "3", "--json").json()
    assert set(res) == {"faces"} and len(res["faces"]) == 2
    left, right = res["faces"]
    assert left["box"][2] <= Image.open(a).width + 20 < right["box"][0]
    assert (left["label"], right["label"]) == ("Tom_Hanks", "Natalie_Portman")
    for face in res["faces"]:
        assert set(face) == {"box", "label", "distance", "candidates"}
        assert len(face["candidates"]) == 3 and all(Path(c["crop"]).is_file() for c in face["candidates"])
        assert set(face["candidates"][0]) == {"label", "distance", "crop"}
        assert face["distance"] == face["candidates"][0]["distance"]
    det = run_cli("faces", "detect", group, "--json").json()
    assert len(det["faces"]) == 2 and all(f["detector"].startswith("hog") for f in det["faces"])

    # Training from a group photo uses the largest face and says so.
    (dataset / "Group").mkdir()
    shutil.copy(group, dataset / "Group" / "two.jpg")
    rep = train(dataset, "m", catalog=face_catalog)
    assert [p for p, n in rep.several_faces if n == 2] == [str(dataset / "Group" / "two.jpg")]


def test_no_face_reported_and_direct(dataset, face_catalog, run_cli, tmp_path):
    run_cli("--catalog", face_catalog, "faces", "train", dataset, "--model", "m")
    scene = shared_data("photos", "ukbench00000.jpg")  # an object, no face
    res = run_cli("--catalog", face_catalog, "faces", "recognize", scene, "--json")
    assert res.json() == {"faces": []} and "no face" in res.stderr

    direct = run_cli("--catalog", face_catalog, "faces", "recognize", scene, "--direct", "-k", "1", "--json").json()
    w, h = Image.open(scene).size
    assert len(direct["faces"]) == 1 and direct["faces"][0]["box"] == [0, 0, w, h]

    # A tight crop around a face that a detector could miss still works with --direct.
    src = _photos("Tom_Hanks")[10]
    from lookalike.faces import detect

    box = detect(str(src))[0].box
    crop = tmp_path / "crop.png"
    Image.open(src).crop(box).save(crop)
    got = run_cli("--catalog", face_catalog, "faces", "recognize", crop, "--direct", "--json").json()
    assert len(got["faces"]) == 1 and got["faces"][0]["label"] == "Tom_Hanks"

    # A folder with a face photo, a photo without a face, and a broken file: reported, nothing crashes.
    folder = tmp_path / "mixed"
    folder.mkdir()
    shutil.copy(_photos("Brad_Pitt")[9], folder / "brad.jpg")
    shutil.copy(scene, folder / "scene.jpg")
    (folder / "broken.jpg").write_bytes(b"not a jpeg at all")
    who = run_cli("--catalog", face_catalog, "faces", "who", folder, "--csv")
    rows = list(csv.reader(io.StringIO(who.stdout)))
    assert rows[0] == ["path", "left", "top", "right", "bottom", "label", "distance"]
    assert len(rows) == 2 and rows[1][0] == str(folder / "brad.jpg") and rows[1][5] == "Brad_Pitt"
    assert all(v.isdigit() for v in rows[1][1:5]) and float(rows[1][6]) >= 0
    assert "no face: " + str(folder / "scene.jpg") in who.stderr and "broken.jpg" in who.stderr


def test_embeddings_cached_in_catalog(dataset, tmp_path):
    from lookalike.catalog import Catalog
    from lookalike.faces import scan_paths

    cat = Catalog(tmp_path / "c.sqlite")
    paths = [str(p) for p in sorted((dataset / "Brad_Pitt").iterdir())]
    first = scan_paths(paths, cat, workers=1)
    assert not any(p.cached for p in first)
    moved = tmp_path / "moved.jpg"
    shutil.copy(paths[0], moved)  # same bytes under another name: reused by content hash
    second = scan_paths([*paths, str(moved)], cat, workers=1)
    assert all(p.cached for p in second)
    assert np.allclose(second[0].faces[0].embedding, first[0].faces[0].embedding)
    assert np.allclose(second[-1].faces[0].embedding, first[0].faces[0].embedding)


def test_chinese_whispers_never_joins_faces_of_one_photo():
    from lookalike.faces import chinese_whispers

    rng = np.random.default_rng(1)
    a, b = rng.normal(size=128), rng.normal(size=128)
    a, b = a / np.linalg.norm(a), b / np.linalg.norm(b)
    emb = np.stack([a, a + 0.01, a + 0.02, b, b + 0.01, a + 0.015])
    groups = [0, 1, 2, 3, 4, 2]  # faces 2 and 5 come from one photo and look alike
    ids = chinese_whispers(emb.astype(np.float32), groups, threshold=0.5)
    assert ids[2] != ids[5]
    assert ids[0] == ids[1] and ids[3] == ids[4] and ids[0] != ids[3]


def test_cluster_links_and_name(face_catalog, run_cli, tmp_path):
    brad, tom = _photos("Brad_Pitt"), _photos("Tom_Hanks")
    folder = tmp_path / "unsorted"
    folder.mkdir()
    for p in brad[10:13] + tom[10:13]:
        shutil.copy(p, folder / p.name)
    # Two different photos of the same man in one picture: both are Brad, yet never one group.
    _side_by_side(brad[13], brad[14], folder / "brad_twice.jpg")
    links = tmp_path / "people"
    # Brad-vs-Tom distances here are >= 0.7; photos of one man are 0.3-0.58 apart.
    res = run_cli("--catalog", face_catalog, "faces", "cluster", folder, "--links", links, "--threshold", "0.6",
                  "--json").json()
    clusters = res["clusters"]
    for c in clusters:
        paths = [f["path"] for f in c["faces"]]
        assert len(paths) == len(set(paths)), "two faces of one photo in one group"
    twice = [c["id"] for c in clusters for f in c["faces"] if f["path"].endswith("brad_twice.jpg")]
    twice += ["alone" for f in res["unclustered"] if f["path"].endswith("brad_twice.jpg")]
    assert len(twice) == 2 and (len(set(twice)) == 2 or twice == ["alone", "alone"])
    # The Tom photos form one group without any Brad photo.
    tom_names = {p.name for p in tom[10:13]}
    tom_groups = [c for c in clusters if any(Path(f["path"]).name in tom_names for f in c["faces"])]
    assert len(tom_groups) == 1 and {Path(f["path"]).name for f in tom_groups[0]["faces"]} == tom_names

    assert "lookalike undo" in run_cli("--catalog", face_catalog, "faces", "cluster", folder, "--links",
                                       tmp_path / "again", "--threshold", "0.6").stderr
    run_cli("undo")  # the journal takes the second set of links back
    assert not any(p.is_symlink() for p in (tmp_path / "again").rglob("*"))

    tom_dir = links / tom_groups[0]["id"]
    assert sorted(p.name for p in tom_dir.iterdir() if not p.name.startswith(".")) == sorted(tom_names)
    assert all((tom_dir / n).is_symlink() for n in tom_names)
    named = run_cli("--catalog", face_catalog, "faces", "name", tom_dir, "--as", "Tom", "--model", "fromclusters",
                    "--json").json()
    assert named["people_added"] == ["Tom"] and named["photos_added"] == 3
    got = run_cli("--catalog", face_catalog, "faces", "recognize", tom[20], "--json").json()
    assert got["faces"][0]["candidates"][0]["label"] == "Tom"


def test_yunet_detector_from_file(run_cli, tmp_path, monkeypatch):
    onnx = shared_data("..", "models", "yunet", "face_detection_yunet_2023mar.onnx")
    monkeypatch.setenv("LOOKALIKE_MODEL_DIR", str(tmp_path / "models"))
    env = {"LOOKALIKE_MODEL_DIR": str(tmp_path / "models")}
    run_cli("models", "add", "yunet", "--file", onnx, env=env)
    listed = {m["name"]: m for m in run_cli("models", "list", "--json", env=env).json()}
    assert listed["yunet"]["kind"] == "face-detector" and listed["yunet"]["installed"]
    assert listed["dlib-face"]["kind"] == "face-embedding"
    img = shared_data("faces", "deepface", "img1.jpg")  # a face larger than YuNet's range at full size
    got = run_cli("faces", "detect", img, "--detector", "yunet", "--json", env=env).json()
    assert len(got["faces"]) >= 1 and got["faces"][0]["detector"] == "yunet"
    hog = run_cli("faces", "detect", img, "--detector", "hog", "--json", env=env).json()
    (l1, t1, r1, b1), (l2, t2, r2, b2) = got["faces"][0]["box"], hog["faces"][0]["box"]
    assert max(l1, l2) < min(r1, r2) and max(t1, t2) < min(b1, b2)  # both boxes cover the same face


def test_a_new_model_never_changes_which_model_is_active():
    """Issue 13: creating (training) another model keeps the active one, whether it was chosen with `use` or
    was active as the only model; the first model ever made is active."""
    from lookalike.faces import active_face_model, remove_face_model, use_face_model
    from lookalike.faces.store import FaceModel

    FaceModel.create("first", "dlib-face", "1", "auto")
    assert active_face_model() == "first"
    FaceModel.create("second", "dlib-face", "1", "auto")
    assert active_face_model() == "first"
    use_face_model("second")
    FaceModel.create("third", "dlib-face", "1", "auto")
    assert active_face_model() == "second"
    remove_face_model("second")  # the active one removed: two left, none chosen for the user
    assert active_face_model() is None
    FaceModel.create("fourth", "dlib-face", "1", "auto")
    assert active_face_model() is None


# -- issue 12: speed (reduced-image detection, one pool per run, validated workers) ---------------------------
def _iou(a, b) -> float:
    iw = max(0, min(a[2], b[2]) - max(a[0], b[0]))
    ih = max(0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = iw * ih
    return inter / ((a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter)


class _RecordingDetector:
    """dlib's detector, recording the size of every picture it scans."""

    def __init__(self, det) -> None:
        self.det, self.shapes = det, []

    def run(self, arr, up, threshold):
        self.shapes.append((arr.shape[0], arr.shape[1], up))
        return self.det.run(arr, up, threshold)


def test_reduced_first_pass_finds_the_same_faces_as_full_size(tmp_path):
    """With ``first_pass_face`` HOG first scans a half-size copy; on real per-person photos it finds each
    photo's subject where the full-size scan does (box IoU >= 0.5, boxes in full-size pixels), and a face
    too small for the reduced copy is still found by the full-size passes. The default keeps every face."""
    import dlib

    from lookalike.faces.detect import HOG_FIRST_PASS_FACE, HogDetector
    from lookalike.media import decode

    assert HOG_FIRST_PASS_FACE > 80
    fast, full = HogDetector(first_pass_face=HOG_FIRST_PASS_FACE), HogDetector()
    assert full.first_pass_face is None
    rec = _RecordingDetector(dlib.get_frontal_face_detector())
    fast._det = rec
    photos = [_photos(p)[i] for p in ("Brad_Pitt", "Tom_Hanks", "Natalie_Portman", "Will_Smith",
                                      "Angelina_Jolie", "Hugh_Jackman") for i in (0, 7)]
    reduced = 0
    for photo in photos:
        arr = np.asarray(decode(photo).image)
        rec.shapes.clear()
        got, want = fast(arr), full(arr)
        assert want and got, photo
        h, w = arr.shape[:2]
        reduced += rec.shapes[0][:2] == (round(h * 80 / HOG_FIRST_PASS_FACE), round(w * 80 / HOG_FIRST_PASS_FACE))
        subject = max(want, key=lambda f: f.area)
        assert max(_iou(subject.box, g.box) for g in got) >= 0.5, photo
        assert all(0 <= g.box[0] < g.box[2] <= w and 0 <= g.box[1] < g.box[3] <= h for g in got)
    assert reduced == len(photos)  # every photo was first scanned at half size

    # A portrait shrunk so its face (~100 px) is below the first pass's size: found by the full-size pass.
    src = Image.open(_photos("Tom_Hanks")[10]).convert("RGB")
    box = full(np.asarray(src))[0].box
    shrink = 100 / (box[2] - box[0])
    small = np.asarray(src.resize((round(src.width * shrink), round(src.height * shrink))))
    rec.shapes.clear()
    got, want = fast(small), full(small)
    assert len(got) == len(want) == 1 and _iou(got[0].box, want[0].box) >= 0.9
    assert [s[:2] for s in rec.shapes][-1] == small.shape[:2]  # it took the full-size pass

    from lookalike.errors import UsageError

    for bad in (0, 79, 10**6, 1.5, True, "160"):
        with pytest.raises(UsageError):
            HogDetector(first_pass_face=bad)


def test_pool_gives_the_single_process_results(tmp_path):
    """A scan spread over 2 worker processes gives exactly the boxes and embeddings of a scan in this
    process; the pool is started once and reused by the next scan; byte-identical copies are computed once."""
    from lookalike.catalog import Catalog
    from lookalike.faces import scan_paths
    from lookalike.faces.scan import _ready, largest_first, worker_pool

    paths = [str(p) for person in ("Brad_Pitt", "Tom_Hanks", "Natalie_Portman") for p in _photos(person)[20:22]]
    copy = tmp_path / "copy.jpg"
    shutil.copy(paths[0], copy)
    single = scan_paths(paths, Catalog(tmp_path / "one.sqlite"), workers=1)
    pooled = scan_paths([*paths, str(copy)], Catalog(tmp_path / "two.sqlite"), workers=2)
    assert not any(p.cached or p.error for p in pooled)
    for a, b in zip(single, pooled, strict=False):
        assert (a.width, a.height) == (b.width, b.height) and len(a.faces) == len(b.faces) >= 1
        for fa, fb in zip(a.faces, b.faces, strict=True):
            assert (fa.box, fa.detector) == (fb.box, fb.detector)
            assert np.array_equal(fa.embedding, fb.embedding)
    assert pooled[-1].path == str(copy) and pooled[-1].faces[0].box == pooled[0].faces[0].box
    assert np.array_equal(pooled[-1].faces[0].embedding, pooled[0].faces[0].embedding)

    pool = worker_pool(2, "dlib-face", None)
    pids = {pool.submit(_ready).result() for _ in range(8)}
    more = [str(p) for p in _photos("Will_Smith")[20:24]]
    scan_paths(more, Catalog(tmp_path / "three.sqlite"), workers=2)
    assert worker_pool(2, "dlib-face", None) is pool  # the same workers served the second scan
    pids |= {pool.submit(_ready).result() for _ in range(8)}
    assert len(pids) <= 2  # no worker was started again

    sizes = [os.path.getsize(p) for p in largest_first(paths)]
    assert sizes == sorted(sizes, reverse=True)


def test_workers_validated_before_anything_is_read(tmp_path):
    from lookalike.catalog import Catalog
    from lookalike.errors import UsageError
    from lookalike.faces import scan_paths, who

    fifo = tmp_path / "never-read.jpg"
    os.mkfifo(fifo)  # reading it would block: validation must come first
    for bad in (0, -1, 1.5, True, 10**6, "2"):
        with pytest.raises(UsageError, match="--workers"):
            scan_paths([fifo], Catalog(tmp_path / "c.sqlite"), workers=bad)
    with pytest.raises(UsageError, match="--workers"):
        who(tmp_path, workers=0)
    with pytest.raises(UsageError, match="--workers"):
        from lookalike.faces import train

        train(tmp_path, "m", workers=-2)


def test_calibration_not_stretched_to_one_atypical_training_photo():
    """Issue 12: where every other person lies far away, the old rule put the threshold just above the most
    atypical same-person distance; it now stays within the 99% quantile of same-person distances."""
    from lookalike.faces import calibrate

    rng = np.random.default_rng(3)
    centres = np.eye(8, dtype=np.float32)[:4] * 0.8  # four people about 1.13 apart
    emb = np.concatenate([c + rng.normal(0, 0.01, size=(30, 8)) for c in centres]).astype(np.float32)
    labels = [f"p{i // 30}" for i in range(120)]
    odd = centres[0].copy()
    odd[4:] += 0.22  # one atypical photo of p0: 0.44 from its person, > 0.7 from everybody else
    emb[0] = odd
    t, stats = calibrate(emb, labels, default=0.5)
    assert t < 0.44 and "99% quantile" in stats["method"]
    assert stats["known_rejected"] <= 0.01 and stats["strangers_accepted"] == 0


def test_large_jpeg_decoded_reduced_gives_full_size_boxes(tmp_path, monkeypatch):
    """A 12 MP JPEG is decoded at reduced size (libjpeg DCT scaling) for detection and alignment; its boxes
    are in full-size pixels and match a full-size decode, and the embedding stays the same person's."""
    import importlib

    from lookalike.catalog import Catalog
    from lookalike.faces import scan_paths

    scan_mod = importlib.import_module("lookalike.faces.scan")
    src = Image.open(_photos("Tom_Hanks")[10]).convert("RGB")
    canvas = Image.new("RGB", (4000, 3000), (90, 100, 110))
    canvas.paste(src.resize((2400, round(2400 * src.height / src.width))), (800, 100))
    big = tmp_path / "camera.jpg"
    canvas.save(big, quality=92)

    shapes = []
    real = scan_mod.analyse_picture
    monkeypatch.setattr(scan_mod, "analyse_picture",
                        lambda arr, *a, **k: shapes.append(arr.shape) or real(arr, *a, **k))
    reduced = scan_paths([big], Catalog(tmp_path / "a.sqlite"), workers=1)[0]
    monkeypatch.setattr(scan_mod, "DECODE_MIN_SIDE", None)
    full = scan_paths([big], Catalog(tmp_path / "b.sqlite"), workers=1)[0]
    assert shapes == [(1500, 2000, 3), (3000, 4000, 3)]
    assert (reduced.width, reduced.height) == (full.width, full.height) == (4000, 3000)
    assert len(reduced.faces) == len(full.faces) == 1
    assert _iou(reduced.faces[0].box, full.faces[0].box) >= 0.9
    assert np.linalg.norm(reduced.faces[0].embedding - full.faces[0].embedding) < 0.1
