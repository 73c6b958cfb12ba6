"""Issue 10, file identity and the walk: the catalog's fast path sees content changed with size and mtime
kept (case 3), names that are not UTF-8 work end to end (case 6), the walk stays inside the folders it was
given and out of lookalike's own data folder (CONTRACTS 3, case 7), only regular files are opened (case 9,
pictures), and a damaged, read-only or misplaced catalog gives one clear line (case 12).

Everything runs on real files, real SQLite and the real CLI (hash models, so each test takes about a second)."""

from __future__ import annotations

import csv
import json
import os
import shutil
import socket
import sqlite3
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import pytest

from conftest import SRC, needs_effnet, shared_data
from lookalike.catalog import Catalog, DamagedFeatureError, FileRow
from lookalike.errors import CatalogError
from lookalike.index import file_sha256, index_paths
from lookalike.media import iter_images
from lookalike.media.walk import DATA_FOLDER, LINK_INTO_DATA, LINK_OUTSIDE, WalkProblem

CAFE = b"caf\xe9.jpg"  # Latin-1 bytes: not UTF-8
CAFE_STR = os.fsdecode(CAFE)  # 'caf\udce9.jpg'


def photo(i: int) -> Path:
    return shared_data("photos") / f"ukbench{i:05d}.jpg"


def put(folder: Path, name: str | bytes, src: Path) -> str:
    """Copy ``src`` to folder/name (name may be bytes: not UTF-8). Returns the path as Python names it."""
    folder.mkdir(parents=True, exist_ok=True)
    target = os.path.join(os.fsencode(folder), name if isinstance(name, bytes) else name.encode())
    with open(target, "wb") as fh:
        fh.write(src.read_bytes())
    return os.fsdecode(target)


def run_raw(*args: object, env: dict | None = None, timeout: float = 120) -> subprocess.CompletedProcess:
    """Run the CLI and keep stdout/stderr as bytes (a name's own bytes may be in them)."""
    full_env = {**os.environ, "PYTHONPATH": str(SRC), **(env or {})}
    argv = [os.fsencode(a) if isinstance(a, str | Path) else a for a in args]
    return subprocess.run([sys.executable, "-m", "lookalike", *argv], capture_output=True, env=full_env,
                          timeout=timeout)


def no_traceback(res) -> None:
    err = res.stderr if isinstance(res.stderr, str) else res.stderr.decode("utf-8", "replace")
    assert "Traceback" not in err, err


# -- case 3: content changed with size and mtime kept ---------------------------------------------------------------
def same_size_other_content(src: Path, like: Path) -> bytes:
    """Another photo's bytes, padded (after the JPEG end marker, which decoders ignore) or cut to the size
    of ``like``: different content, same size."""
    data, size = src.read_bytes(), like.stat().st_size
    return data[:size] if len(data) >= size else data + b"\0" * (size - len(data))


def test_touch_r_rewrite_is_seen_as_changed_and_not_exact(tmp_path, run_cli):
    folder = tmp_path / "f"
    a, b = Path(put(folder, "a.jpg", photo(0))), Path(put(folder, "b.jpg", photo(0)))
    cat = tmp_path / "c.sqlite"
    first = run_cli("dupes", folder, "--tier", "exact", "--json", "--catalog", cat).json()
    assert len(first["groups"]) == 1  # a true exact pair
    st = b.stat()
    b.write_bytes(same_size_other_content(photo(8), a))  # another photo, same size
    os.utime(b, ns=(st.st_atime_ns, st.st_mtime_ns))  # what `touch -r` or a time-keeping tool does
    assert (b.stat().st_size, b.stat().st_mtime_ns) == (st.st_size, st.st_mtime_ns)
    rep = run_cli("index", folder, "-m", "phash", "--json", "--catalog", cat).json()
    assert (rep["changed"], rep["unchanged"]) == (1, 1)
    again = run_cli("dupes", folder, "--tier", "exact", "--json", "--catalog", cat).json()
    assert again["groups"] == []
    with Catalog(cat) as c:
        assert c.lookup_files([str(b)])[str(b)].content_hash == file_sha256(str(b))


def test_touch_r_rewrite_seen_by_dupes_alone(tmp_path, run_cli):
    """dupes indexes by itself: the rewritten file must not be called an exact copy."""
    folder = tmp_path / "f"
    a, b = Path(put(folder, "a.jpg", photo(0))), Path(put(folder, "b.jpg", photo(0)))
    cat = tmp_path / "c.sqlite"
    assert len(run_cli("dupes", folder, "--tier", "exact", "--json", "--catalog", cat).json()["groups"]) == 1
    st = b.stat()
    with open(b, "r+b") as fh:  # rewrite in place: same inode, same size
        fh.write(same_size_other_content(photo(8), a))
    os.utime(b, ns=(st.st_atime_ns, st.st_mtime_ns))
    assert run_cli("dupes", folder, "--tier", "exact", "--json", "--catalog", cat).json()["groups"] == []


def test_file_swapped_for_another_with_same_size_and_mtime(tmp_path, catalog):
    """Same path, size and mtime, another inode (a tool that writes a new file and renames it over)."""
    folder = tmp_path / "f"
    a = Path(put(folder, "a.jpg", photo(0)))
    index_paths([folder], catalog, ["phash"])
    st = a.stat()
    tmp = folder / "new.tmp"
    tmp.write_bytes(same_size_other_content(photo(8), a))
    os.utime(tmp, ns=(st.st_atime_ns, st.st_mtime_ns))
    os.replace(tmp, a)
    rep = index_paths([folder], catalog, ["phash"])
    assert rep.changed == 1 and rep.unchanged == 0


def test_file_rewritten_while_it_is_read_is_read_again(tmp_path, catalog, monkeypatch):
    """The rewrite lands right after the read, maybe in the same clock tick (so ctime may not move): the row
    must not pass the fast path with the old hash ("racily clean", as git calls it)."""
    import lookalike.index.pipeline as pipeline

    folder = tmp_path / "f"
    a = Path(put(folder, "a.jpg", photo(0)))
    new = same_size_other_content(photo(8), a)
    real_read = pipeline.read_bytes

    def sneaky_read(path):
        data = real_read(path)
        if path == str(a) and a.read_bytes() != new:
            st = a.stat()
            with open(a, "r+b") as fh:
                fh.write(new)
            os.utime(a, ns=(st.st_atime_ns, st.st_mtime_ns))
        return data

    monkeypatch.setattr(pipeline, "read_bytes", sneaky_read)
    index_paths([folder], catalog, ["phash"])
    monkeypatch.setattr(pipeline, "read_bytes", real_read)
    row = catalog.lookup_files([str(a)])[str(a)]
    assert not row.same_file(a.stat()) or row.content_hash == file_sha256(str(a))
    rep = index_paths([folder], catalog, ["phash"])
    assert rep.changed == 1
    assert catalog.lookup_files([str(a)])[str(a)].content_hash == file_sha256(str(a))


def test_old_catalog_is_migrated_and_rows_without_inode_count_as_changed_once(tmp_path, run_cli):
    folder = tmp_path / "f"
    a = Path(put(folder, "a.jpg", photo(0)))
    db = tmp_path / "old.sqlite"
    conn = sqlite3.connect(db)  # the schema of version 1, with a row as the old fast path wrote it
    conn.executescript(
        "CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT);"
        "INSERT INTO meta VALUES ('schema_version', '1');"
        "CREATE TABLE files (path TEXT PRIMARY KEY, size INTEGER NOT NULL, mtime_ns INTEGER NOT NULL, "
        "content_hash TEXT, status TEXT NOT NULL, error TEXT, seen_at REAL NOT NULL);"
    )
    st = a.stat()
    conn.execute("INSERT INTO files VALUES (?,?,?,?,?,?,?)",
                 (str(a), st.st_size, st.st_mtime_ns, "0" * 64, "ok", None, 0.0))  # a stale hash
    conn.commit()
    conn.close()
    rep = run_cli("index", folder, "-m", "phash", "--json", "--catalog", db).json()
    assert (rep["changed"], rep["unchanged"]) == (1, 0)
    rep = run_cli("index", folder, "-m", "phash", "--json", "--catalog", db).json()
    assert (rep["changed"], rep["unchanged"]) == (0, 1)
    conn = sqlite3.connect(db)
    assert conn.execute("SELECT hex(sha256) FROM files JOIN contents ON id = content_id").fetchone()[0].lower() \
        == file_sha256(str(a))
    assert conn.execute("SELECT value FROM meta WHERE key='schema_version'").fetchone()[0] == "3"
    conn.close()


# -- case 6: names that are not UTF-8 ---------------------------------------------------------------------------------
@pytest.fixture
def latin1_folder(tmp_path) -> Path:
    """caf\\xe9.jpg (an exact copy of ukbench00000), a folder d\\xe9j\\xe0/ with a photo, normal photos, and an
    undecodable 'bad\\xff.jpg'."""
    folder = tmp_path / "lib"
    put(folder, "a.jpg", photo(0))
    put(folder, "b.jpg", photo(4))
    put(folder, "c.jpg", photo(8))
    put(folder, CAFE, photo(0))
    put(Path(os.fsdecode(os.path.join(os.fsencode(folder), b"d\xe9j\xe0"))), "d.jpg", photo(12))
    with open(os.path.join(os.fsencode(folder), b"bad\xff.jpg"), "wb") as fh:
        fh.write(b"not a picture at all")
    return folder


def test_latin1_names_index_and_fast_path(latin1_folder, tmp_path):
    cat = tmp_path / "c.sqlite"
    res = run_raw("index", latin1_folder, "-m", "phash", "--json", "--catalog", cat)
    assert res.returncode == 0, res.stderr
    no_traceback(res)
    out = json.loads(res.stdout)  # valid UTF-8 JSON
    assert out["new"] == 5
    bad = os.fsdecode(os.path.join(os.fsencode(latin1_folder), b"bad\xff.jpg"))
    assert [f["path"] for f in out["failed"]] == [bad]  # the same str Python names the file with
    again = json.loads(run_raw("index", latin1_folder, "-m", "phash", "--json", "--catalog", cat).stdout)
    assert (again["new"], again["changed"], again["unchanged"]) == (0, 0, 5)  # the fast path holds
    human = run_raw("index", latin1_folder, "-m", "phash", "--catalog", cat)
    assert human.returncode == 0 and b"bad\\xff.jpg" in human.stdout  # the error names the file
    with Catalog(cat) as c:
        assert c.lookup_files([bad])[bad].status == "error"
        under = {r.path for r in c.files_under(latin1_folder)}
        assert os.path.join(str(latin1_folder), CAFE_STR) in under
        deja = os.fsdecode(os.path.join(os.fsencode(latin1_folder), b"d\xe9j\xe0"))
        assert {r.path for r in c.files_under(deja)} == {os.path.join(deja, "d.jpg")}


def test_latin1_names_similar_json_csv_table(latin1_folder, tmp_path):
    cat = tmp_path / "c.sqlite"
    cafe = os.path.join(str(latin1_folder), CAFE_STR)
    res = run_raw("similar", latin1_folder / "a.jpg", "--in", latin1_folder, "-m", "phash", "-k", "10", "--json",
                  "--catalog", cat)
    assert res.returncode == 0, res.stderr
    hits = json.loads(res.stdout)["results"]
    assert hits[0] == {"path": cafe, "score": 0.0}  # json.loads gives back the very same path
    assert b"\\udce9" in res.stdout
    res = run_raw("similar", latin1_folder / "a.jpg", "--in", latin1_folder, "-m", "phash", "--csv", "--catalog", cat)
    assert res.returncode == 0, res.stderr
    rows = list(csv.reader(res.stdout.decode("utf-8", "surrogateescape").splitlines()))
    assert rows[1] == [cafe, "0.0"]  # the file's own bytes
    res = run_raw("similar", cafe, "--in", latin1_folder, "-m", "phash", "--catalog", cat)  # a Latin-1 query
    assert res.returncode == 0, res.stderr
    assert b"most like " in res.stdout and b"caf\\xe9.jpg (phash)" in res.stdout


def test_latin1_names_dupes_sort_cluster(latin1_folder, tmp_path):
    cat = tmp_path / "c.sqlite"
    cafe = os.path.join(str(latin1_folder), CAFE_STR)
    res = run_raw("dupes", latin1_folder, "--tier", "exact", "--json", "--catalog", cat)
    assert res.returncode == 0, res.stderr
    (group,) = json.loads(res.stdout)["groups"]
    assert {group["keep"], *(m["path"] for m in group["members"])} == {cafe, str(latin1_folder / "a.jpg")}
    res = run_raw("dupes", latin1_folder, "--tier", "exact", "--catalog", cat)
    assert res.returncode == 0, res.stderr
    no_traceback(res)
    res = run_raw("dupes", latin1_folder, "--tier", "exact", "--csv", "--catalog", cat)
    assert res.returncode == 0 and CAFE in res.stdout, res.stderr
    res = run_raw("sort", latin1_folder, "-m", "phash", "--json", "--catalog", cat)
    assert res.returncode == 0, res.stderr
    assert cafe in json.loads(res.stdout)["order"]
    res = run_raw("sort", latin1_folder, "-m", "phash", "--keys", "--catalog", cat)
    assert res.returncode == 0 and CAFE in res.stdout, res.stderr
    res = run_raw("cluster", latin1_folder, "-m", "phash", "--json", "--catalog", cat)
    assert res.returncode == 0, res.stderr
    members = [p for c in json.loads(res.stdout)["clusters"] for p in c["members"]]
    assert cafe in members + json.loads(res.stdout)["unclustered"]
    res = run_raw("cluster", latin1_folder, "-m", "phash", "--catalog", cat)
    assert res.returncode == 0, res.stderr


def test_latin1_names_export_csv_round_trips(latin1_folder, tmp_path):
    cat = tmp_path / "c.sqlite"
    target = tmp_path / "features.csv"
    res = run_raw("export", "features", latin1_folder, "--csv", target, "-m", "phash", "--catalog", cat)
    assert res.returncode == 0, res.stderr
    with open(target, newline="", encoding="utf-8", errors="surrogateescape") as fh:
        header, *rows = csv.reader(fh)
    paths = [row[0] for row in rows]
    assert header[0] == "path" and os.path.join(str(latin1_folder), CAFE_STR) in paths and len(paths) == 5


def test_latin1_catalog_rows_are_lossless(tmp_path):
    """TEXT for UTF-8 names, BLOB (the name's bytes) otherwise: both read back, prune sees both."""
    with Catalog(tmp_path / "c.sqlite") as c:
        good = str(tmp_path / "x.jpg")
        odd = os.fsdecode(os.fsencode(str(tmp_path)) + b"/\xff\xfe.jpg")
        c.write(files=[FileRow(good, 1, 2, "h1", "ok", None, 3, 4), FileRow(odd, 5, 6, "h2", "ok", "odd \udcff", 7, 8)])
        rows = c.lookup_files([good, odd])
        assert rows[odd].content_hash == "h2" and rows[good].content_hash == "h1"
        assert rows[odd].error == "odd \\udcff"
        assert c.prune()["files_removed"] == 2  # neither exists; both were found and compared
    conn = sqlite3.connect(tmp_path / "c.sqlite")
    assert conn.execute("SELECT COUNT(*) FROM files").fetchone()[0] == 0
    conn.close()


# -- CONTRACTS 3 / case 7: the walk stays inside the roots and out of the data folder -----------------------------
def test_symlinks_out_of_the_roots_are_skipped_with_a_reason(tmp_path, run_cli):
    outside = tmp_path / "elsewhere"
    put(outside, "secret.jpg", photo(0))
    put(outside / "album", "x.jpg", photo(4))
    root = tmp_path / "root"
    put(root, "real.jpg", photo(8))
    (root / "out.jpg").symlink_to(outside / "secret.jpg")
    (root / "album").symlink_to(outside / "album")
    (root / "hop.jpg").symlink_to(root / "out.jpg")  # a chain: inside -> inside -> outside
    (root / "in.jpg").symlink_to(root / "real.jpg")  # inside the root: yielded
    (root / "sub").mkdir()
    (root / "sub" / "up").symlink_to(root)  # a loop back to the root
    (root / "zero.jpg").symlink_to("/dev/zero")
    res = run_cli("index", root, "-m", "phash", "--json", "--catalog", tmp_path / "c.sqlite", timeout=60)
    out = res.json()
    assert out["new"] == 2 and out["failed"] == []
    skipped = {f["path"]: f["error"] for f in out["skipped"]}
    assert skipped == {str(root / n): LINK_OUTSIDE for n in ("album", "hop.jpg", "out.jpg", "zero.jpg")}
    assert "secret" not in res.stdout and "elsewhere" not in res.stdout  # the targets' names are not told
    hits = run_cli("similar", root / "real.jpg", "--in", root, "-m", "phash", "--json", "-k", "10",
                   "--catalog", tmp_path / "c.sqlite").json()["results"]
    assert [h["path"] for h in hits] == [str(root / "in.jpg")]
    dupes = run_cli("dupes", root, "--tier", "exact", "--json", "--catalog", tmp_path / "c.sqlite").json()
    assert "elsewhere" not in json.dumps(dupes)


def test_roots_given_through_a_symlink_are_resolved(tmp_path):
    real = tmp_path / "real"
    put(real / "a", "p.jpg", photo(0))
    put(tmp_path / "other", "q.jpg", photo(4))
    alias = tmp_path / "alias"
    alias.symlink_to(real)
    (real / "a" / "to_real.jpg").symlink_to(real / "a" / "p.jpg")  # through the real name: inside
    (real / "a" / "to_alias.jpg").symlink_to(alias / "a" / "p.jpg")  # through the alias: inside too
    (real / "a" / "away.jpg").symlink_to(tmp_path / "other" / "q.jpg")
    errors: list[WalkProblem] = []
    got = list(iter_images([alias], errors=errors))
    assert got == [str(alias / "a" / n) for n in ("p.jpg", "to_alias.jpg", "to_real.jpg")]
    assert errors == [WalkProblem(str(alias / "a" / "away.jpg"), LINK_OUTSIDE, skipped=True)]
    # A second root makes its folder "inside": the same link is then followed.
    both = list(iter_images([alias, tmp_path / "other"]))
    assert str(alias / "a" / "away.jpg") in both


def test_data_folder_inside_the_searched_folder_is_never_walked(tmp_path, run_cli):
    lib = tmp_path / "lib"
    put(lib, "a.jpg", photo(0))
    put(lib, "b.jpg", photo(0))
    home = lib / "lookalike-home"  # LOOKALIKE_HOME inside the searched folder (case 7)
    env = {"LOOKALIKE_HOME": str(home)}
    res = run_cli("dupes", lib, "--tier", "exact", "--action", "delete", "--yes", "--json", env=env)
    kept = [p for p in home.rglob("*.jpg")]
    assert kept, "the journal keeps a copy of the deleted duplicate"
    (lib / "link_to_kept.jpg").symlink_to(kept[0])
    res = run_cli("dupes", lib, "--tier", "exact", "--json", env=env)
    assert res.json()["groups"] == []  # the kept copy is no duplicate of a.jpg: it is never seen
    out = run_cli("index", lib, "-m", "phash", "--json", env=env).json()
    skipped = {f["path"]: f["error"] for f in out["skipped"]}
    assert skipped == {str(home): DATA_FOLDER, str(lib / "link_to_kept.jpg"): LINK_INTO_DATA}
    # A root inside the data folder is not searched either: nothing to index there, an error (issue 13).
    inside = run_cli("index", kept[0].parent, "-m", "phash", "--json", env=env, check=False)
    assert inside.returncode == 1 and not inside.stdout
    assert f"no pictures in {kept[0].parent}: it lies in lookalike's own data folder" in inside.stderr


def test_model_dir_inside_the_searched_folder_is_never_walked(tmp_path, monkeypatch):
    lib = tmp_path / "lib"
    put(lib, "a.jpg", photo(0))
    put(lib / "models" / "x", "weights.jpg", photo(4))
    monkeypatch.setenv("LOOKALIKE_MODEL_DIR", str(lib / "models"))
    errors: list[WalkProblem] = []
    assert list(iter_images([lib], errors=errors)) == [str(lib / "a.jpg")]
    assert errors == [WalkProblem(str(lib / "models"), DATA_FOLDER, skipped=True)]


# -- case 9 (pictures): only regular files are opened ---------------------------------------------------------------
def test_fifo_socket_and_device_get_a_per_file_error(tmp_path, run_cli):
    root = tmp_path / "r"
    put(root, "good.jpg", photo(0))
    os.mkfifo(root / "x.jpg")
    os.mkfifo(root / "noext")  # no extension: would be sniffed, and a FIFO's open() never returns
    (root / "fifo_link.jpg").symlink_to(root / "x.jpg")
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.bind(str(root / "s.png"))
    try:
        res = run_cli("index", root, "-m", "phash", "--json", "--catalog", tmp_path / "c.sqlite", timeout=60)
    finally:
        sock.close()
    out = res.json()
    assert out["new"] == 1
    assert {f["path"]: f["error"] for f in out["failed"]} == {
        str(root / "fifo_link.jpg"): "not a regular file: it is a FIFO (named pipe)",
        str(root / "s.png"): "not a regular file: it is a socket",
        str(root / "x.jpg"): "not a regular file: it is a FIFO (named pipe)",
    }
    # Given directly, a FIFO and a device are errors too, and the other inputs are still indexed.
    res = run_cli("index", root / "x.jpg", "/dev/null", root / "good.jpg", "-m", "phash", "--json",
                  "--catalog", tmp_path / "c.sqlite", timeout=60)
    out = res.json()
    assert out["unchanged"] == 1
    assert {f["path"]: f["error"] for f in out["failed"]} == {
        str(root / "x.jpg"): "not a regular file: it is a FIFO (named pipe)",
        "/dev/null": "not a regular file: it is a character device",
    }
    res = run_cli("similar", root / "good.jpg", "--in", root, "-m", "phash", "--json",
                  "--catalog", tmp_path / "c.sqlite", timeout=60)
    assert res.json()["results"] == []
    for query in (root / "x.jpg", "/dev/zero"):  # as the query: one clear error, never read
        res = run_cli("similar", query, "--in", root, "-m", "phash", "--catalog", tmp_path / "c.sqlite",
                      check=False, timeout=60)
        assert res.returncode == 1 and "not a regular file" in res.stderr, res.stderr
        no_traceback(res)


# -- case 12: catalog errors are one clear line ---------------------------------------------------------------------
@pytest.fixture
def small_lib(tmp_path) -> Path:
    lib = tmp_path / "lib"
    for i in range(24):
        put(lib, f"p{i:02d}.jpg", photo(i))
    return lib


def test_damaged_catalog_is_one_clear_error(small_lib, tmp_path, run_cli):
    cat = tmp_path / "c.sqlite"
    run_cli("index", small_lib, "-m", "phash", "-m", "dhash", "--catalog", cat)
    size = cat.stat().st_size
    assert size >= 5 * 4096 and not Path(str(cat) + "-wal").exists()
    with open(cat, "r+b") as fh:  # garbage over the middle pages; the header page is left intact
        fh.seek(2 * 4096)
        fh.write(np.random.default_rng(1).integers(0, 256, size - 3 * 4096, dtype=np.uint8).tobytes())
    for args in (["cache", "stats"], ["index", small_lib, "-m", "phash"],
                 ["similar", small_lib / "p01.jpg", "--in", small_lib, "-m", "phash"],
                 ["dupes", small_lib, "--tier", "exact"], ["cache", "prune"]):
        res = run_cli(*args, "--catalog", cat, check=False)
        assert res.returncode == 1, (args, res.stdout)
        no_traceback(res)
        assert res.stderr.strip().count("\n") == 0, res.stderr  # one line
        assert f"catalog {cat} is damaged" in res.stderr


def test_catalog_in_a_missing_folder_is_an_error_and_creates_nothing(small_lib, tmp_path, run_cli):
    missing = tmp_path / "nonexistent_dir"
    res = run_cli("--catalog", missing / "x.sqlite", "index", small_lib, "-m", "phash", check=False)
    assert res.returncode == 1 and "does not exist" in res.stderr and str(missing) in res.stderr
    no_traceback(res)
    assert not missing.exists()
    res = run_cli("index", small_lib, "-m", "phash", "--catalog", tmp_path, check=False)  # a folder
    assert res.returncode != 0
    no_traceback(res)


def test_index_of_a_missing_input_exits_non_zero(tmp_path, run_cli):
    res = run_cli("index", tmp_path / "nonexistent", "-m", "phash", "--catalog", tmp_path / "c.sqlite",
                  check=False)
    assert res.returncode == 1 and "no such file or folder" in res.stderr and "nonexistent" in res.stderr
    no_traceback(res)


_NOBODY_PRELOAD = (
    "import os, sys, zoneinfo, importlib.metadata\n"
    "from PIL import Image; Image.init()\n"
    "import lookalike.cli, lookalike.index, lookalike.collection\n"
    "from lookalike.features import load_extractor; load_extractor('phash'); load_extractor('dhash')\n"
    "if os.geteuid() == 0:\n"
    "    os.setgid(65534); os.setuid(65534)\n"
    "sys.argv = ['lookalike', *sys.argv[1:]]\n"
    "lookalike.cli.main()\n"
)


def _as_nobody(*args: object, home: Path) -> subprocess.CompletedProcess:
    """The CLI as an unprivileged user (root ignores file modes): modules are loaded first, then the
    process drops to nobody, so nothing but the test's own files needs to be readable by it."""
    env = {**os.environ, "PYTHONPATH": str(SRC), "LOOKALIKE_HOME": str(home), "LOOKALIKE_MODEL_DIR": str(home)}
    return subprocess.run([sys.executable, "-c", _NOBODY_PRELOAD, *map(str, args)], capture_output=True,
                          text=True, env=env, timeout=120)


@pytest.mark.parametrize("how", ["file", "folder"])
def test_read_only_catalog_is_one_clear_error(how, run_cli):
    base = Path(tempfile.mkdtemp(prefix="lookalike-ro-"))  # outside pytest's 0700 folders
    try:
        os.chmod(base, 0o755)
        lib = base / "lib"
        for i in range(3):
            put(lib, f"p{i}.jpg", photo(i))
        os.chmod(lib, 0o755)
        for p in lib.iterdir():
            os.chmod(p, 0o644)
        home = base / "home"
        home.mkdir()
        os.chmod(home, 0o777)
        folder = base / "cat"
        folder.mkdir()
        cat = folder / "c.sqlite"
        run_cli("index", lib, "-m", "phash", "--catalog", cat)
        if how == "file":
            os.chmod(folder, 0o777)
            os.chmod(cat, 0o444)
        else:
            os.chmod(cat, 0o666)
            os.chmod(folder, 0o555)
        for args in (["index", lib, "-m", "dhash"], ["similar", lib / "p0.jpg", "--in", lib, "-m", "dhash"]):
            res = _as_nobody("--catalog", cat, *args, home=home)
            assert res.returncode == 1, res.stdout
            no_traceback(res)
            assert res.stderr.strip().count("\n") == 0, res.stderr
            assert f"catalog {cat}" in res.stderr
            assert "read-only" in res.stderr or "cannot open" in res.stderr
    finally:
        if (base / "cat").exists():  # the test may have been skipped (no shared photos) before making it
            os.chmod(base / "cat", 0o755)
        shutil.rmtree(base, ignore_errors=True)


def _tamper(cat: Path, model: str, blob: bytes, path: str) -> None:
    conn = sqlite3.connect(cat)
    (cid,) = conn.execute("SELECT content_id FROM files WHERE path=?", (path,)).fetchone()
    q = "UPDATE features SET data=? WHERE content_id=? AND model_id=(SELECT id FROM models WHERE model=?)"
    assert conn.execute(q, (blob, cid, model)).rowcount == 1
    conn.commit()
    conn.close()


def test_feature_blob_of_the_wrong_size_is_recomputed(small_lib, tmp_path, run_cli):
    cat = tmp_path / "c.sqlite"
    q = str(small_lib / "p00.jpg")
    before = run_cli("similar", q, "--in", small_lib, "-m", "phash", "-k", "30", "--json", "--catalog", cat).json()
    _tamper(cat, "phash", b"\x01\x02\x03", str(small_lib / "p05.jpg"))
    after = run_cli("similar", q, "--in", small_lib, "-m", "phash", "-k", "30", "--json", "--catalog", cat).json()
    assert after == before
    _tamper(cat, "phash", b"\x01" * 16, str(small_lib / "p06.jpg"))  # two words: a multiple of 8, still wrong
    res = run_cli("dupes", small_lib, "--tier", "exact", "--json", "--catalog", cat)
    assert res.json()["groups"] == []
    assert run_cli("similar", q, "--in", small_lib, "-m", "phash", "-k", "30", "--json",
                   "--catalog", cat).json() == before


def test_damaged_blob_read_directly_is_a_catalog_error_and_removed(small_lib, tmp_path):
    cat = tmp_path / "c.sqlite"
    with Catalog(cat) as c:
        rep = index_paths([small_lib], c, ["phash"])
        _tamper(cat, "phash", b"\x01\x02\x03", str(small_lib / "p05.jpg"))
        with pytest.raises(DamagedFeatureError) as exc:
            c.feature_matrix(rep.paths, "phash", "1", "hash")
        assert str(small_lib / "p05.jpg") in str(exc.value) and isinstance(exc.value, CatalogError)
        paths, mat = c.feature_matrix(rep.paths, "phash", "1", "hash")  # the bad row is gone
        assert len(paths) == 23 and mat.shape == (23, 1)
        assert index_paths([small_lib], c, ["phash"]).unchanged == 24  # and comes back on the next run
        assert c.feature_matrix(rep.paths, "phash", "1", "hash")[1].shape == (24, 1)


@needs_effnet
def test_nan_blob_never_reaches_json(tmp_path, run_cli):
    lib = tmp_path / "lib"
    for i in (0, 1, 4):
        put(lib, f"p{i}.jpg", photo(i))
    cat = tmp_path / "c.sqlite"
    q = str(lib / "p0.jpg")
    before = run_cli("similar", q, "--in", lib, "--json", "--catalog", cat).json()
    conn = sqlite3.connect(cat)
    (n,) = conn.execute("SELECT LENGTH(data) FROM features JOIN models ON models.id = model_id "
                        "WHERE model='effnet' LIMIT 1").fetchone()
    conn.close()
    nan = np.full(n // 2, np.nan, dtype="<f2").tobytes()
    _tamper(cat, "effnet", nan, str(lib / "p1.jpg"))
    res = run_cli("similar", q, "--in", lib, "--json", "--catalog", cat)
    assert "NaN" not in res.stdout
    after = res.json()
    assert [h["path"] for h in after["results"]] == [h["path"] for h in before["results"]]
    assert all(abs(a["score"] - b["score"]) < 1e-3 for a, b in zip(after["results"], before["results"], strict=True))
    _tamper(cat, "effnet", np.full(n // 2, np.inf, dtype="<f2").tobytes(), str(lib / "p4.jpg"))
    res = run_cli("dupes", lib, "--tier", "similar", "--json", "--catalog", cat, check=False)
    assert "NaN" not in res.stdout and "Infinity" not in res.stdout
    no_traceback(res)
    if res.returncode:  # reported (one line), and healed on the next run
        assert "damaged" in res.stderr and str(lib / "p4.jpg") in res.stderr
        res = run_cli("dupes", lib, "--tier", "similar", "--json", "--catalog", cat)
    assert "NaN" not in res.stdout
