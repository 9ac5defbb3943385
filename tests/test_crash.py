"""Real processes: kill -9 during creation, two writers, a writer and a reader, a full disk,
a read-only folder. Each ends with ``info`` and ``--resume`` giving correct results."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import numpy as np
import pytest
import zarr

from napari_sam2_track.project import STATE_NOT_RUN, ProjectStore
from napari_sam2_track.project.lock import LOCK_NAME, read_holder

from conftest import make_blob_video, write_jpeg_folder
from test_cli import checkpoint, prompts_file  # noqa: F401 - fixture and helper

ONE = {"objects": [{"id": 1}], "prompts": [{"object": 1, "frame": 0, "points": [[30, 40]], "labels": [1]}]}


def cli(*args, **kwargs) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "napari_sam2_track.cli", *map(str, args)],
                          capture_output=True, text=True, timeout=600, **kwargs)


def start(*args) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "napari_sam2_track.cli", *map(str, args)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


@pytest.fixture(scope="module")
def frames(tmp_path_factory) -> Path:
    return write_jpeg_folder(make_blob_video(12), tmp_path_factory.mktemp("crash") / "jpg")


@pytest.fixture
def track_cmd(frames, checkpoint, tmp_path):  # noqa: F811
    prompts = prompts_file(tmp_path, ONE)

    def cmd(out: Path, *extra) -> list:
        return ["track", frames, "--prompts", prompts, "--out", out, "--model", checkpoint,
                "--image-size", 256, "--device", "cpu", "--quiet", "--direction", "forward", *extra]

    return cmd


def one_error_line(result) -> str:
    lines = result.stderr.strip().splitlines()
    assert result.returncode != 0 and len(lines) == 1, result.stderr
    assert lines[0].startswith("error: ") and "Traceback" not in result.stderr
    return lines[0]


def done_frames(out: Path) -> np.ndarray:
    return np.flatnonzero(ProjectStore.open(out, "r").states(1) != STATE_NOT_RUN)


def wait_for(condition, timeout=300.0, proc=None):
    deadline = time.time() + timeout
    while time.time() < deadline:
        with contextlib.suppress(Exception):
            if condition():
                return
        assert proc is None or proc.poll() is None, proc.stderr.read() if proc else ""
        time.sleep(0.05)
    raise AssertionError("timed out")


@pytest.mark.slow
def test_kill_during_creation_then_info_and_resume(tmp_path, track_cmd):
    out = tmp_path / "p.zarr"
    proc = start(*track_cmd(out))
    deadline = time.time() + 300
    while time.time() < deadline and proc.poll() is None:
        if any(p.name.startswith(".p.zarr.incomplete-") for p in tmp_path.iterdir()):
            break
        time.sleep(0.001)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert not out.exists(), "the project appeared before it was complete"
    info = cli("info", out)
    assert "not a project store" in one_error_line(info)
    assert cli("export", out, "--format", "table", "--out", tmp_path / "t.csv").returncode != 0
    resumed = cli(*track_cmd(out, "--resume"))
    assert resumed.returncode == 0, resumed.stderr
    assert len(done_frames(out)) == 12
    info = cli("info", out, "--check")
    assert info.returncode == 0 and "completed" in info.stdout and "check    ok" in info.stdout
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(".")) == []


@pytest.mark.slow
def test_kill_mid_overwrite_keeps_the_old_project(tmp_path, track_cmd):
    out = tmp_path / "p.zarr"
    assert cli(*track_cmd(out, "--end", 3)).returncode == 0
    before = {p: p.read_bytes() for p in out.rglob("*") if p.is_file()}
    proc = start(*track_cmd(out, "--overwrite"))
    staging = []
    wait_for(lambda: staging.extend(tmp_path.glob(".p.zarr.incomplete-*")) or
             zarr.open_group(str(staging[-1]), mode="r")["objects/1/table"][5, 6] > 0, proc=proc)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert {p: p.read_bytes() for p in out.rglob("*") if p.is_file() and p.name != LOCK_NAME} == before
    assert "completed" in cli("info", out).stdout
    again = cli(*track_cmd(out, "--overwrite"))  # takes over the dead lock, removes the leftover
    assert again.returncode == 0, again.stderr
    assert len(done_frames(out)) == 12 and list(tmp_path.glob(".p.zarr.*")) == []


@pytest.mark.slow
def test_two_writers_and_a_reader(tmp_path, track_cmd):
    out = tmp_path / "p.zarr"
    assert cli(*track_cmd(out, "--end", 1)).returncode == 0
    first = start(*track_cmd(out, "--resume"))
    wait_for(lambda: read_holder(out).pid == first.pid and ProjectStore.open(out, "r").meta["runs"][-1]
             ["status"] == "running" and len(done_frames(out)) > 2, proc=first)
    second = cli(*track_cmd(out, "--resume"))
    line = one_error_line(second)
    assert f"is being written by PID {first.pid}" in line and "track" in line
    reader = cli("info", out)
    assert reader.returncode == 0, reader.stderr
    assert f"writer   PID {first.pid}" in reader.stdout and "#2 running" in reader.stdout
    assert first.wait(timeout=600) == 0, first.stderr.read()
    assert not (out / LOCK_NAME).exists()
    runs = ProjectStore.open(out, "r").meta["runs"]
    assert [r["status"] for r in runs] == ["completed", "completed"]
    assert len(done_frames(out)) == 12


@pytest.mark.slow
def test_kill_mid_run_shows_interrupted_and_resume_records_it(tmp_path, track_cmd):
    out = tmp_path / "p.zarr"
    proc = start(*track_cmd(out))
    wait_for(lambda: len(done_frames(out)) >= 3, proc=proc)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    info = cli("info", out)
    assert "#1 interrupted" in info.stdout and "running" not in info.stdout
    assert cli(*track_cmd(out, "--resume")).returncode == 0
    runs = ProjectStore.open(out, "r").meta["runs"]
    assert [r["status"] for r in runs] == ["interrupted", "completed"]


@contextlib.contextmanager
def tmpfs(path: Path, size: str):
    path.mkdir()
    if os.geteuid() != 0 or subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path)],
                                           capture_output=True).returncode != 0:
        pytest.skip("cannot mount a tmpfs here (needs root)")
    try:
        yield path
    finally:
        subprocess.run(["umount", "-l", str(path)], check=False)


def fill(folder: Path, leave: int) -> Path:
    """Fill the file system of ``folder`` up to ``leave`` free bytes."""
    st = os.statvfs(folder)
    filler = folder / f"filler-{uuid.uuid4().hex[:6]}"
    with open(filler, "wb") as f:
        f.write(b"\0" * max(0, st.f_bavail * st.f_frsize - leave))
    return filler


@pytest.mark.slow
def test_full_disk_is_one_line_and_resume_completes(tmp_path, track_cmd):
    with tmpfs(tmp_path / "disk", "4m") as disk:
        out = disk / "p.zarr"
        assert cli(*track_cmd(out, "--end", 1)).returncode == 0
        filler = fill(disk, leave=(256 + 28) * 1024)  # the reserve and a few frames
        failed = cli(*track_cmd(out, "--resume"))
        line = one_error_line(failed)
        assert line.startswith(f"error: no space left on {out}") and "are saved; free space and run with --resume" in line
        saved = done_frames(out)
        assert f"frames 0\u2013{saved[-1]} are saved" in line and 2 <= len(saved) < 12
        assert not (out / LOCK_NAME).exists()
        store = ProjectStore.open(out, "r")
        assert store.meta["runs"][-1]["status"] in ("failed", "running")
        assert store.run_statuses()[2] in ("failed", "interrupted")
        filler.unlink()
        resumed = cli(*track_cmd(out, "--resume"))
        assert resumed.returncode == 0, resumed.stderr
        reference = tmp_path / "ref.zarr"
        assert cli(*track_cmd(reference)).returncode == 0
        assert np.array_equal(ProjectStore.open(out, "r").labels[:], ProjectStore.open(reference, "r").labels[:])
        assert cli("info", out, "--check").returncode == 0


@pytest.mark.slow
def test_read_only_folders_are_one_line(tmp_path, track_cmd):
    with tmpfs(tmp_path / "ro", "4m") as folder:
        out = folder / "p.zarr"
        assert cli(*track_cmd(out, "--end", 1)).returncode == 0
        before = {p: p.read_bytes() for p in out.rglob("*") if p.is_file()}
        assert subprocess.run(["mount", "-o", "remount,ro", str(folder)]).returncode == 0
        try:
            for extra, what in ((["--resume"], "read-only file system"), (["--overwrite"], "read-only file system")):
                line = one_error_line(cli(*track_cmd(out, *extra)))
                assert what in line, line
            line = one_error_line(cli(*track_cmd(folder / "new.zarr")))
            assert "read-only file system" in line and "choose a writable --out" in line
            assert cli("info", out, "--check").returncode == 0  # readers need no lock
        finally:
            subprocess.run(["mount", "-o", "remount,rw", str(folder)])
        assert {p: p.read_bytes() for p in out.rglob("*") if p.is_file()} == before


@pytest.mark.skipif(os.geteuid() == 0, reason="root ignores file permissions")
def test_permission_denied_is_one_line(tmp_path, track_cmd):
    folder = tmp_path / "locked"
    folder.mkdir()
    folder.chmod(0o500)
    try:
        line = one_error_line(cli(*track_cmd(folder / "p.zarr")))
        assert "permission denied" in line
    finally:
        folder.chmod(0o700)
        shutil.rmtree(folder)
