"""Dataset dock on a real napari viewer (under xvfb): items, "mine", the lock holder, changes
made by another process appearing without restarting, and "Open next"."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

pytest.importorskip("napari")
pytest.importorskip("pytestqt")

from conftest import REPO, make_blob_video, write_jpeg_folder  # noqa: E402
from napari_sam2_track._qt import dataset_dock  # noqa: E402
from napari_sam2_track._qt.dataset_dock import TABLE_COLUMNS, DatasetWidget  # noqa: E402
from napari_sam2_track.dataset import Dataset  # noqa: E402
from napari_sam2_track.project import ProjectStore  # noqa: E402
from test_prompt_widget import own_settings  # noqa: E402,F401 - settings under tmp_path


def other_process(code: str) -> None:
    """Run ``code`` in another Python process (another person on the shared folder)."""
    env = {**os.environ, "PYTHONPATH": str(REPO / "src")}
    subprocess.run([sys.executable, "-c", code], check=True, env=env, timeout=120)


@pytest.fixture
def dataset(tmp_path) -> Dataset:
    ds = Dataset.init(tmp_path / "ds", annotators=["ana", "ben"])
    clips = [write_jpeg_folder(make_blob_video(4, seed=i), tmp_path / f"clip{i}") for i in range(3)]
    ds.add_many({"source": c} for c in clips)
    ProjectStore.create(ds.items[0].project, num_frames=4, height=96, width=128).close()
    ds.claim_project(ds.items[0])
    ds.assign(["clip0"], "ana")
    return ds


@pytest.fixture
def dock(make_napari_viewer, qtbot, dataset, monkeypatch):
    monkeypatch.setattr(dataset_dock, "POLL_MS", 200)
    viewer = make_napari_viewer()
    widget = DatasetWidget(viewer)
    viewer.window.add_dock_widget(widget, name="Dataset")
    widget.me_edit.setText("ana")
    with qtbot.waitSignal(widget.refreshed, timeout=10000):
        widget.open_dataset(dataset.folder)
    yield widget
    widget.timer.stop()
    qtbot.waitUntil(lambda: not widget.loading, timeout=10000)


def cells(widget) -> list[dict[str, str]]:
    t = widget.table
    return [{TABLE_COLUMNS[j]: t.item(i, j).text() for j in range(t.columnCount())}
            for i in range(t.rowCount())]


def test_items_mine_and_updates_from_another_process(dock, dataset, qtbot):
    rows = cells(dock)
    assert [r["item"] for r in rows] == ["clip0", "clip1", "clip2"]
    assert rows[0]["assignee"] == "ana" and rows[0]["tracked"] == "0/4"
    assert rows[1]["stage"] == "new" and rows[1]["tracked"] == "-"
    dock.mine.setChecked(True)
    assert [r["item"] for r in cells(dock)] == ["clip0"]
    dock.mine.setChecked(False)
    # another person assigns clip2 to ana and records a stage: the dock shows it by itself
    other_process(
        "from napari_sam2_track.dataset import Dataset\n"
        f"ds = Dataset.open({str(dataset.folder)!r})\n"
        "ds.assign(['clip2'], 'ana', by='ben')\n"
        "ds.record_stage('clip1', 'returned', 'ben')\n")
    qtbot.waitUntil(lambda: cells(dock)[2]["assignee"] == "ana", timeout=10000)
    assert cells(dock)[1]["stage"] == "returned"
    dock.mine.setChecked(True)
    assert [r["item"] for r in cells(dock)] == ["clip0", "clip2"]


def test_the_lock_holder_is_shown(dock, dataset, qtbot):
    holder = subprocess.Popen(
        [sys.executable, "-c",
         "import time; from napari_sam2_track.project import ProjectStore\n"
         f"s = ProjectStore.open({str(dataset.items[0].project)!r}, 'r+'); print('held', flush=True)\n"
         "time.sleep(60)"],
        stdout=subprocess.PIPE, text=True, env={**os.environ, "PYTHONPATH": str(REPO / "src")})
    try:
        assert holder.stdout.readline().strip() == "held"
        qtbot.waitUntil(lambda: cells(dock)[0]["held by"].startswith(f"PID {holder.pid} "),
                        timeout=10000)
    finally:
        holder.kill()
        holder.wait()
    qtbot.waitUntil(lambda: cells(dock)[0]["held by"] == "", timeout=10000)


def test_open_next_claims_and_opens_an_item(dock, dataset, qtbot):
    dock.me_edit.setText("ben")
    with qtbot.waitSignal(dock.item_opened, timeout=20000) as opened:
        dock.open_next()
    assert opened.args == ["clip1"]  # ben had nothing: the first free item is now his
    assert dataset.assignee("clip1") == "ben"
    assert "clip1" in [layer.name for layer in dock.viewer.layers]
    qtbot.waitUntil(lambda: (dataset.items[1].project / "zarr.json").is_file(), timeout=20000)
