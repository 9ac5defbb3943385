"""Nothing is lost: exports and imports are atomic, refuse to replace what they did not write,
and fail with one line and no partial result (real processes for kill -9 and Ctrl-C)."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from napari_sam2_track.cli import main
from napari_sam2_track.formats import MARKER, export, read_labels
from napari_sam2_track.project import ProjectStore

from test_export import build_project

SRC = Path(__file__).resolve().parents[1] / "src"


def tree(path: Path) -> dict[str, bytes]:
    """Every file under ``path`` (relative name -> bytes), for byte-for-byte comparisons."""
    path = Path(path)
    if path.is_file():
        return {".": path.read_bytes()}
    return {str(p.relative_to(path)): p.read_bytes() for p in sorted(path.rglob("*")) if p.is_file()}


def leftovers(folder: Path) -> list[str]:
    """Staging and replaced entries (``.NAME.incomplete-…``, ``.NAME.replaced-…``) in ``folder``."""
    return sorted(p.name for p in Path(folder).iterdir()
                  if p.name.startswith(".") and (".incomplete-" in p.name or ".replaced-" in p.name))


def run_cli(capsys, *argv) -> tuple[int, str, str]:
    capsys.readouterr()
    rc = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return rc, out, err


def assert_one_line_error(rc: int, out: str, err: str, *needles: str) -> None:
    assert rc == 2, (rc, out, err)
    assert out == "" and err.startswith("error: ") and err.count("\n") == 1, err
    assert "Traceback" not in err
    for needle in needles:
        assert needle in err, err


@pytest.fixture(scope="module")
def project(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("safety") / "p.zarr"
    build_project(path)
    return path


@pytest.fixture
def work(project, tmp_path) -> Path:
    """A private copy of the project in ``tmp_path``."""
    shutil.copytree(project, tmp_path / "p.zarr")
    return tmp_path / "p.zarr"


# ------------------------------------------------------------------ output vs. the project
@pytest.mark.parametrize("fmt", ["table", "ome-zarr", "ctc", "tiff"])
@pytest.mark.parametrize("where", ["same", "inside", "parent"])
def test_export_never_writes_over_or_into_the_project(work, capsys, fmt, where):
    before = tree(work)
    out = {"same": work, "inside": work / "export.out", "parent": work.parent}[where]
    rc, o, e = run_cli(capsys, "export", work, "-f", fmt, "--out", out, "--overwrite")
    assert_one_line_error(rc, o, e, "nothing was changed")
    assert tree(work) == before
    assert leftovers(work.parent) == [] and leftovers(work) == []


def test_import_never_writes_over_or_into_its_input(work, capsys, tmp_path):
    before = tree(work)
    for out in (work, work / "inside.zarr", tmp_path):
        rc, o, e = run_cli(capsys, "import", work, "-f", "ome-zarr", "--out", out, "--overwrite")
        assert_one_line_error(rc, o, e, "nothing was changed")
    assert tree(work) == before


# ------------------------------------------------------------------------ --overwrite rules
@pytest.mark.parametrize("fmt,name", [("table", "t.csv"), ("ome-zarr", "o.zarr"), ("ctc", "c"), ("tiff", "l.tif"),
                                      ("cvat", "c.xml"), ("youtube-vis", "v.json"), ("mots", "m.txt"),
                                      ("davis", "d"), ("sav", "s"), ("geff", "g")])
def test_overwrite_replaces_only_a_previous_export_of_that_format(project, tmp_path, capsys, fmt, name):
    out = tmp_path / name
    # An unrelated file or folder is never replaced.
    if "." in name and fmt not in ("ome-zarr",):
        out.write_text("my notes\n")
    else:
        out.mkdir()
        (out / "notes.txt").write_text("my notes\n")
    before = tree(out)
    rc, o, e = run_cli(capsys, "export", project, "-f", fmt, "--out", out, "--overwrite")
    assert_one_line_error(rc, o, e, "is not a previous", "--overwrite only replaces")
    assert tree(out) == before
    # A previous export of the same format is replaced, with a complete new one.
    shutil.rmtree(out) if out.is_dir() else out.unlink()
    assert run_cli(capsys, "export", project, "-f", fmt, "--out", out, "--every", "2")[0] == 0
    first = tree(out)
    rc, o, e = run_cli(capsys, "export", project, "-f", fmt, "--out", out, "--overwrite")
    assert rc == 0, e
    fresh = tmp_path / ("fresh-" + name)
    export(project, fmt, fresh)
    assert tree(out).keys() == tree(fresh).keys() and tree(out) != first
    assert leftovers(tmp_path) == []
    if out.is_dir():
        assert (out / MARKER).is_file()


def test_overwrite_refuses_an_export_of_another_format(project, tmp_path, capsys):
    export(project, "ctc", tmp_path / "out")
    before = tree(tmp_path / "out")
    rc, o, e = run_cli(capsys, "export", project, "-f", "davis", "--out", tmp_path / "out", "--overwrite")
    assert_one_line_error(rc, o, e, "not a previous DAVIS")
    assert tree(tmp_path / "out") == before


def test_import_overwrite_replaces_only_a_project(project, tmp_path, capsys):
    ann = export(project, "youtube-vis", tmp_path / "v.json")
    target = tmp_path / "target"
    target.mkdir()
    (target / "zarr.json").write_text('{"zarr_format": 3, "node_type": "group", "attributes": {}}')
    before = tree(target)
    rc, o, e = run_cli(capsys, "import", ann, "--out", target, "--overwrite")
    assert_one_line_error(rc, o, e, "not a previous napari-sam2-track project")
    assert tree(target) == before
    other = tmp_path / "other.zarr"
    shutil.copytree(project, other)
    rc, o, e = run_cli(capsys, "import", ann, "--out", other, "--overwrite")
    assert rc == 0, e
    assert ProjectStore.open(other, "r").meta["source"]["kind"] == "import"
    assert leftovers(tmp_path) == []


def test_import_overwrite_refuses_a_project_being_written(project, tmp_path, capsys):
    lock = pytest.importorskip("napari_sam2_track.project.lock")
    ann = export(project, "youtube-vis", tmp_path / "v.json")
    busy = tmp_path / "busy.zarr"
    shutil.copytree(project, busy)
    holder = subprocess.Popen([sys.executable, "-c", (
        "import sys, time; from napari_sam2_track.project.lock import ProjectLock; "
        f"ProjectLock({str(busy)!r}).acquire(); print('locked', flush=True); time.sleep(60)")],
        stdout=subprocess.PIPE, text=True, env={**os.environ, "PYTHONPATH": str(SRC)})
    try:
        assert holder.stdout.readline().strip() == "locked"
        before = tree(busy)
        rc, o, e = run_cli(capsys, "import", ann, "--out", busy, "--overwrite")
        assert_one_line_error(rc, o, e, "being written by", f"PID {holder.pid}")
        assert tree(busy) == before
    finally:
        holder.kill()
        holder.wait()
    assert lock.live_holder(busy) is None


# ------------------------------------------------------------------ failures leave nothing
def damage_chunk(project: Path, t: int) -> None:
    """Damage frame ``t``'s chunk of the merged labels, which hold the objects' masks."""
    chunk = project / "labels" / "masklets" / "0" / "c" / str(t) / "0" / "0"
    assert chunk.is_file()
    chunk.write_bytes(b"not zstd" * 3)


@pytest.mark.parametrize("fmt,name", [("table", "t.csv"), ("ome-zarr", "o.zarr"), ("sav", "s")])
def test_damaged_chunk_names_frame_and_array_and_keeps_the_previous_export(work, tmp_path, capsys, fmt, name):
    out = tmp_path / name
    export(work, fmt, out)
    previous = tree(out)
    damage_chunk(work, 6)
    rc, o, e = run_cli(capsys, "export", work, "-f", fmt, "--out", out, "--overwrite")
    assert_one_line_error(rc, o, e, "labels/masklets/0", "frame 6", "damaged")
    assert tree(out) == previous
    assert leftovers(tmp_path) == []
    rc, o, e = run_cli(capsys, "export", work, "-f", fmt, "--out", tmp_path / ("new-" + name))
    assert_one_line_error(rc, o, e, "frame 6")
    assert not (tmp_path / ("new-" + name)).exists() and leftovers(tmp_path) == []
    # A range without the damaged frame still exports.
    assert run_cli(capsys, "export", work, "-f", fmt, "--out", tmp_path / ("part-" + name), "--end", "5")[0] == 0


def test_damaged_table_chunk_is_one_line_for_export_and_review_flags(work, tmp_path, capsys):
    from napari_sam2_track.errors import StoreError
    from napari_sam2_track.review.flags import find_flags

    (work / "objects/1/table/c/0/0").write_bytes(b"not a table")
    rc, o, e = run_cli(capsys, "export", work, "-f", "table", "--out", tmp_path / "t.csv")
    assert_one_line_error(rc, o, e, "objects/1/table", "frames 0-", "damaged")
    assert not (tmp_path / "t.csv").exists() and leftovers(tmp_path) == []
    with pytest.raises(StoreError, match="objects/1/table cannot be read"):
        find_flags(ProjectStore.open(work, "r"))


def test_approved_only_with_nothing_approved_warns(work, tmp_path, capsys):
    from napari_sam2_track.review.qc import approve, reject

    n = ProjectStore.open(work, "r").num_frames
    reject(work, 1, 0, n - 1, reviewer="qc")  # the fixture approved object 1; the latest decision counts
    rc, o, e = run_cli(capsys, "export", work, "-f", "table", "--out", tmp_path / "t.csv", "--approved-only")
    assert rc == 0
    assert e.startswith("warning: --approved-only: no object") and e.count("\n") == 1
    # With an approved object there is no warning.
    approve(work, 1, 0, n - 1, reviewer="qc")
    rc, o, e = run_cli(capsys, "export", work, "-f", "table", "--out", tmp_path / "t2.csv", "--approved-only")
    assert rc == 0 and e == ""


def unprivileged() -> list[str]:
    """A command prefix that makes the permission checks apply (root ignores them)."""
    if os.geteuid() != 0:
        return []
    if shutil.which("setpriv") is None:
        pytest.skip("running as root without setpriv: permissions cannot be tested")
    return ["setpriv", "--inh-caps=-all", "--bounding-set=-all", "--"]


def cli(*argv, prefix=(), **kw) -> subprocess.CompletedProcess:
    return subprocess.run([*prefix, sys.executable, "-m", "napari_sam2_track.cli", *map(str, argv)],
                          capture_output=True, text=True, env={**os.environ, "PYTHONPATH": str(SRC)}, **kw)


def test_read_only_output_folder(project, tmp_path):
    folder = tmp_path / "ro"
    folder.mkdir()
    export(project, "table", folder / "t.csv")
    previous = tree(folder)
    folder.chmod(0o555)
    try:
        for args in (["export", project, "-f", "ctc", "--out", folder / "c"],
                     ["export", project, "-f", "table", "--out", folder / "t.csv", "--overwrite"],
                     ["import", folder / "t.csv", "--format", "mots", "--out", folder / "x.zarr"]):
            r = cli(*args, prefix=unprivileged())
            if args[0] == "import":
                assert r.returncode == 2 and r.stderr.count("\n") == 1, r.stderr
                continue
            assert r.returncode == 2 and r.stdout == "", r.stderr
            assert r.stderr.startswith("error: ") and r.stderr.count("\n") == 1, r.stderr
            assert "permission denied" in r.stderr and "Traceback" not in r.stderr
        r = cli("import", project, "--format", "ome-zarr", "--out", folder / "x.zarr", prefix=unprivileged())
        assert r.returncode == 2 and "permission denied" in r.stderr and r.stderr.count("\n") == 1, r.stderr
    finally:
        folder.chmod(0o755)
    assert tree(folder) == previous


# -------------------------------------------------------------------- real interruptions
@pytest.fixture(scope="module")
def long_project(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("long") / "long.zarr"
    build_project(path, n_frames=240)
    return path


def wait_for_partial(folder: Path, proc: subprocess.Popen, min_bytes: int, timeout: float = 120) -> Path:
    """The export's temporary output once it holds ``min_bytes``; fails if the export ended first."""
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        assert proc.poll() is None, "the export finished before it could be interrupted"
        for p in folder.glob(".*.incomplete-*"):
            size = sum(f.stat().st_size for f in p.rglob("*") if f.is_file()) if p.is_dir() else p.stat().st_size
            if size >= min_bytes:
                return p
        time.sleep(0.01)
    raise AssertionError("no temporary output appeared")


def start_export(project: Path, fmt: str, out: Path, *extra) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "napari_sam2_track.cli", "export", str(project), "-f", fmt,
                             "--out", str(out), *map(str, extra)], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, env={**os.environ, "PYTHONPATH": str(SRC)})


@pytest.mark.parametrize("fmt,name,min_bytes", [("sav", "s", 20_000), ("table", "t.csv", 8192)])
def test_kill_9_mid_export_leaves_nothing_that_looks_complete(long_project, tmp_path, fmt, name, min_bytes):
    out = tmp_path / name
    proc = start_export(long_project, fmt, out)
    partial = wait_for_partial(tmp_path, proc, min_bytes)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert not out.exists()
    assert partial.exists() and partial.name.startswith(f".{name}.incomplete-")  # hidden, named as unfinished
    # The next export completes and removes what the killed one left.
    r = cli("export", long_project, "-f", fmt, "--out", out)
    assert r.returncode == 0, r.stderr
    assert not partial.exists() and leftovers(tmp_path) == []
    fresh = export(long_project, fmt, tmp_path / ("fresh-" + name))
    assert tree(out) == tree(fresh) or fmt == "sav"
    if fmt == "sav":
        assert tree(out).keys() == tree(fresh).keys()


def test_kill_9_while_replacing_keeps_the_previous_export(long_project, tmp_path):
    out = tmp_path / "t.csv"
    export(long_project, "table", out)
    previous = out.read_bytes()
    proc = start_export(long_project, "table", out, "--overwrite", "--every", "2")
    wait_for_partial(tmp_path, proc, 8192)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert out.read_bytes() == previous


def test_interrupt_mid_export_removes_the_temporary(long_project, tmp_path):
    # A folder export slow enough to be caught midway on any machine (an OME-Zarr export of this
    # project can finish between the temporary appearing and the signal landing).
    out = tmp_path / "s"
    proc = start_export(long_project, "sav", out)
    wait_for_partial(tmp_path, proc, 20_000)
    proc.send_signal(signal.SIGINT)
    proc.communicate(timeout=120)
    assert proc.returncode != 0
    assert not out.exists() and leftovers(tmp_path) == []


def test_kill_9_mid_import_leaves_no_project(long_project, tmp_path):
    ann = export(long_project, "youtube-vis", tmp_path / "v.json")
    out = tmp_path / "imported.zarr"
    proc = subprocess.Popen([sys.executable, "-m", "napari_sam2_track.cli", "import", str(ann), "--out", str(out)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, env={**os.environ, "PYTHONPATH": str(SRC)})
    wait_for_partial(tmp_path, proc, 50_000)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert not out.exists()
    r = cli("import", ann, "--out", out)
    assert r.returncode == 0, r.stderr
    assert leftovers(tmp_path) == []
    a, b = read_labels(long_project), read_labels(out)
    assert a.shape == b.shape
    for (ta, ma), (tb, mb) in zip(a.frames(), b.frames()):
        assert ta == tb and ma.keys() == mb.keys()
        assert all(np.array_equal(ma[i], mb[i]) for i in ma)


@pytest.mark.parametrize("fmt,name", [("table", "t.csv"), ("mots", "m.txt"), ("tiff", "l.tif")])
def test_file_size_limit_mid_export_fails_cleanly(long_project, tmp_path, fmt, name):
    """A write that fails part-way (here the file size limit, as a full disk would) gives one
    line, leaves no partial output, and keeps a previous export."""
    import resource

    def limit():
        resource.setrlimit(resource.RLIMIT_FSIZE, (16_384, 16_384))

    out = tmp_path / name
    for extra in ([], ["--overwrite"]):
        r = subprocess.run([sys.executable, "-m", "napari_sam2_track.cli", "export", str(long_project), "-f", fmt,
                            "--out", str(out), *extra], capture_output=True, text=True, preexec_fn=limit,
                           env={**os.environ, "PYTHONPATH": str(SRC)})
        assert r.returncode == 2 and r.stdout == "", r.stderr
        assert r.stderr.startswith("error: ") and r.stderr.count("\n") == 1 and "Traceback" not in r.stderr
        assert "file too large" in r.stderr and "nothing was written" in r.stderr, r.stderr
        assert leftovers(tmp_path) == []
        if not extra:
            assert not out.exists()
            export(long_project, fmt, out)
            previous = tree(out)
        else:
            assert tree(out) == previous
