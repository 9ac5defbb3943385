"""The project lock: one writing process, readers free, stale locks taken over, released on exit."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import textwrap

import pytest

from napari_sam2_track.errors import ProjectLockedError
from napari_sam2_track.project import ProjectStore
from napari_sam2_track.project.lock import LOCK_NAME, ProjectLock, StaleLockWarning, read_holder


def python(code: str, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", textwrap.dedent(code), *args],
                          capture_output=True, text=True, timeout=120)


def dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


@pytest.fixture
def project(tmp_path):
    ProjectStore.create(tmp_path / "p.zarr", num_frames=3, height=8, width=8).close()
    return tmp_path / "p.zarr"


HOLD = """
import sys, time
from napari_sam2_track.project import ProjectStore
store = ProjectStore.open(sys.argv[1], command="holder for the test")
store.begin_run(direction="forward")
print("locked", flush=True)
time.sleep(120)
"""


@pytest.fixture
def holder(project):
    """Another process holding the project's lock with a run in progress."""
    proc = subprocess.Popen([sys.executable, "-c", HOLD, str(project)], stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "locked"
    yield proc
    proc.kill()
    proc.wait()


def test_lock_file_names_host_pid_start_and_command(project):
    with ProjectStore.open(project, command="track x --resume") as store:
        data = json.loads((project / LOCK_NAME).read_text())
        assert data["host"] == socket.gethostname() and data["pid"] == os.getpid()
        assert data["command"] == "track x --resume" and data["started"] and data["process_start"]
        assert store.locked
    assert not (project / LOCK_NAME).exists()


def test_a_second_writer_is_refused_naming_the_holder(project, holder):
    with pytest.raises(ProjectLockedError, match=rf"PID {holder.pid} on .*holder for the test"):
        ProjectStore.open(project)
    with pytest.raises(ProjectLockedError):
        ProjectStore.create(project, num_frames=3, height=8, width=8, overwrite=True)
    assert read_holder(project).pid == holder.pid  # the refused writer left the lock alone


def test_readers_never_need_the_lock(project, holder):
    store = ProjectStore.open(project, "r")
    summary = store.summary()
    assert summary["lock"]["pid"] == holder.pid
    assert summary["runs"][-1]["status"] == "running"


def test_a_lock_whose_holder_is_gone_is_taken_over(project):
    pid = dead_pid()
    (project / LOCK_NAME).write_text(json.dumps(
        {"host": socket.gethostname(), "pid": pid, "started": "2020-01-01T00:00:00+00:00",
         "command": "track old", "process_start": 1.0}))
    with pytest.warns(StaleLockWarning, match=f"PID {pid} .* no longer running"):
        store = ProjectStore.open(project)
    assert read_holder(project).pid == os.getpid()
    store.close()


def test_a_reused_pid_is_stale(project):
    """The PID runs, but it is another process than the one that took the lock."""
    (project / LOCK_NAME).write_text(json.dumps(
        {"host": socket.gethostname(), "pid": 1, "started": "2020-01-01T00:00:00+00:00",
         "command": "track old", "process_start": 12.0}))
    with pytest.warns(StaleLockWarning):
        ProjectStore.open(project).close()


def test_a_lock_from_another_host_is_respected(project):
    (project / LOCK_NAME).write_text(json.dumps(
        {"host": "elsewhere.example", "pid": 4242, "started": "2020-01-01T00:00:00+00:00",
         "command": "track there"}))
    with pytest.raises(ProjectLockedError, match="PID 4242 on elsewhere.example"):
        ProjectStore.open(project)


def test_lock_is_released_at_normal_exit_and_stale_after_kill(project):
    done = python("""
        import sys
        from napari_sam2_track.project import ProjectStore
        store = ProjectStore.open(sys.argv[1])   # never closed
    """, str(project))
    assert done.returncode == 0, done.stderr
    assert not (project / LOCK_NAME).exists()
    proc = subprocess.Popen([sys.executable, "-c", HOLD, str(project)], stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "locked"
    proc.kill()
    proc.wait()
    assert read_holder(project).pid == proc.pid  # kill -9 leaves the file ...
    assert ProjectStore.open(project, "r").run_statuses() == {1: "interrupted"}  # ... shown as dead
    with pytest.warns(StaleLockWarning):
        store = ProjectStore.open(project)  # ... and the next writer takes it over
    assert store.meta["runs"][0]["status"] == "interrupted"
    store.close()


def test_the_lock_is_reentrant_within_a_process(project):
    a = ProjectStore.open(project)
    b = ProjectStore.open(project)
    with a.lock():
        pass
    a.close()
    assert (project / LOCK_NAME).exists()  # b still holds it
    b.close()
    assert not (project / LOCK_NAME).exists()


def test_explicit_lock_context(project, holder):
    store = ProjectStore.open(project, "r")
    with pytest.raises(ProjectLockedError):
        store.lock()
    holder.kill()
    holder.wait()
    with pytest.warns(StaleLockWarning), ProjectLock(project, command="napari") as lock:
        assert lock.held and read_holder(project).command == "napari"
    assert not (project / LOCK_NAME).exists()


def test_a_lock_taken_outside_dask_names_no_worker_and_a_dask_holder_is_read_back(project):
    from napari_sam2_track.project.lock import LockHolder

    with ProjectStore.open(project):
        data = json.loads((project / LOCK_NAME).read_text())
        assert "worker" not in data and "scheduler" not in data
        assert read_holder(project).worker is None
    holder = LockHolder("node7", 4242, "2026-11-25T08:00:00", "dask worker", 1.0,
                        "tcp://10.0.0.7:39001", "tcp://10.0.0.1:8786")
    (project / LOCK_NAME).write_text(json.dumps(holder.as_json()))
    assert read_holder(project) == holder
    assert "PID 4242 on node7 (dask worker tcp://10.0.0.7:39001, 'dask worker'" in holder.describe()


def test_take_over_removes_only_the_lock_it_was_told_about(project):
    from napari_sam2_track.project.lock import LockHolder, take_over

    gone = LockHolder("node7", 4242, "?", "dask worker", None, "tcp://10.0.0.7:1", "tcp://s:1")
    (project / LOCK_NAME).write_text(json.dumps(gone.as_json()))
    with pytest.raises(ProjectLockedError, match="PID 4242 on node7"):  # another host: respected
        ProjectStore.open(project)
    newer = LockHolder("node8", 77, "?", "dask worker", None, "tcp://10.0.0.8:1", "tcp://s:1")
    assert not take_over(project, newer, "not the holder")
    assert read_holder(project) == gone
    with pytest.warns(StaleLockWarning, match="is gone \\(worker left\\)"):
        assert take_over(project, gone, "worker left")
    assert read_holder(project) is None
    with ProjectStore.open(project) as store:
        assert store.locked
