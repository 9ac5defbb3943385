"""The napari dock and the CLI never write one project at once; a viewer can always read it."""

from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import pytest

pytest.importorskip("napari")
pytest.importorskip("pytestqt")

from napari_sam2_track import _napari_io as io  # noqa: E402
from napari_sam2_track._napari_io import sample_cells  # noqa: E402
from napari_sam2_track._qt.prompt_widget import PromptWidget  # noqa: E402
from test_prompt_widget import errors  # noqa: E402,F401 - the shown-errors fixture
from napari_sam2_track.errors import ProjectLockedError, StoreError  # noqa: E402
from napari_sam2_track.project import ProjectStore  # noqa: E402
from napari_sam2_track.project.lock import StaleLockWarning, read_holder  # noqa: E402
from napari_sam2_track.review.models import read_review  # noqa: E402

HOLD = """
import sys, time
from napari_sam2_track.project import ProjectStore
store = ProjectStore.open(sys.argv[1], command="track --resume (test holder)")
print("locked", flush=True)
time.sleep(120)
"""


def _cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "napari_sam2_track.cli", *args],
                          capture_output=True, text=True, timeout=240)


def _dock(make_napari_viewer):
    viewer = make_napari_viewer()
    for data, kwargs, kind in sample_cells(n_frames=4, size=(64, 64)):
        getattr(viewer, f"add_{kind}")(data, **kwargs)
    dock = PromptWidget(viewer)
    viewer.window.add_dock_widget(dock, name="Prompt and Propagate")
    return viewer, dock


def test_the_cli_is_refused_while_the_dock_holds_the_project(make_napari_viewer, tmp_path, errors):
    viewer, dock = _dock(make_napari_viewer)
    project = tmp_path / "p.zarr"
    session = dock.open_project(project)
    assert session is not None, errors
    dock.add_object("a")
    assert read_holder(project).pid == os.getpid()
    assert read_review(session.store).decisions == []

    out = _cli("review", "restore", str(project), "1", "1")  # a writer: needs the lock
    assert out.returncode != 0
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in out.stderr, out.stderr
    assert f"PID {os.getpid()}" in lines[0]
    assert read_review(ProjectStore.open(project, "r")).decisions == []  # nothing written

    # a QC decision needs no lock: the command gets to judge the frames while the dock holds
    # the project (never tracked here, so it refuses them in its own words)
    out = _cli("review", "approve", str(project), "1", "--frames", "0-1", "--reviewer", "cli")
    assert out.returncode != 0 and "PID" not in out.stderr, out.stderr
    assert "never tracked" in out.stderr

    # once the dock lets go of the project, the lock no longer stops the writer either
    dock.hub.set_session(None)
    assert read_holder(project) is None
    out = _cli("review", "restore", str(project), "1", "1")
    assert out.returncode != 0 and "PID" not in out.stderr, out.stderr
    assert len(out.stderr.strip().splitlines()) == 1 and "Traceback" not in out.stderr, out.stderr


def test_the_dock_opens_read_only_while_the_cli_holds_the_project(make_napari_viewer, tmp_path, errors):
    project = tmp_path / "p.zarr"
    viewer, dock = _dock(make_napari_viewer)
    assert dock.open_project(project) is not None, errors
    dock.hub.set_session(None)  # the project exists; the dock gave it back

    holder = subprocess.Popen([sys.executable, "-c", HOLD, str(project)],
                              stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "locked"
        session = dock.open_project(project)  # read-only: QC decisions need no lock
        assert session is not None and session.read_only and not errors, errors
        assert f"PID {holder.pid}" in session.held_by and "test holder" in session.held_by
        with pytest.raises(ProjectLockedError) as refused:  # an edit is refused in one line
            session.persist_edit(0, np.zeros((64, 64), np.uint32))
        assert "\n" not in str(refused.value) and f"PID {holder.pid}" in str(refused.value)
        dock.hub.set_session(None)
        assert read_holder(project).pid == holder.pid  # the read-only dock left the lock alone

        # the project reader still shows it, read-only, and says why edits are not saved
        with pytest.warns(UserWarning, match="read-only"):
            layers = io.read_project(str(project))
        data, kwargs, kind = layers[-1]
        assert kind == "labels" and kwargs["name"].endswith("(read-only)")
        assert data.shape == (4, 64, 64) and not data[0].any()
        with pytest.raises(StoreError, match=rf"not saved: .*PID {holder.pid}"):
            data[0, 1:3, 1:3] = 7
        assert not np.asarray(ProjectStore.open(project, "r").labels[0]).any()
        assert read_holder(project).pid == holder.pid
    finally:
        holder.kill()
        holder.wait()

    # with the holder gone, the reader takes over its stale lock and opens it for writing
    with pytest.warns(StaleLockWarning, match="no longer running"):
        layers = io.read_project(str(project))
    data = layers[-1][0]
    assert not layers[-1][1]["name"].endswith("(read-only)")
    data[0, 1:3, 1:3] = 7
    assert (np.asarray(ProjectStore.open(project, "r").labels[0])[1:3, 1:3] == 7).all()
