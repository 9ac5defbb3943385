"""Volumes in the Prompt and Propagate dock, on a real napari viewer (run under xvfb): a click on
a slice shows its mask, Propagate fills the other slices (and timepoints) on the worker, equal
to the core's volume tracking, while the sliders and the 3D view keep working."""

from __future__ import annotations

import time

import numpy as np
import pytest

pytest.importorskip("napari")
pytest.importorskip("pytestqt")

from napari_sam2_track.session.volume import VolumeSession  # noqa: E402

from _volumes import sphere_volume  # noqa: E402
from test_prompt_widget import _click, _docks, _wait_done, errors, own_settings  # noqa: E402,F401
from test_volume_session import cli_labels  # noqa: E402

SCALE = (2.0, 0.5, 0.5)


def _volume_viewer(make_napari_viewer, data):
    viewer = make_napari_viewer()
    labels = "zyx" if data.ndim == 3 else "tzyx"
    scale = SCALE if data.ndim == 3 else (1.0, *SCALE)
    viewer.add_image(data, name="vol", scale=scale, axis_labels=tuple(labels))
    return viewer


def _slider_steps_take(qtbot, viewer, axis, steps):
    """The longest time (s) a move of the ``axis`` slider takes to be drawn."""
    from qtpy.QtWidgets import QApplication

    worst = 0.0
    for step in steps:
        began = time.perf_counter()
        viewer.dims.set_current_step(axis, step)
        QApplication.processEvents()
        worst = max(worst, time.perf_counter() - began)
        assert viewer.dims.current_step[axis] == step
        qtbot.wait(20)
    return worst


def test_click_on_a_slice_and_propagate_both_ways(make_napari_viewer, qtbot, tmp_path, test_model,
                                                  errors):
    data, _ = sphere_volume()
    viewer = _volume_viewer(make_napari_viewer, data[0])
    _, dock = _docks(viewer)
    dock.set_model(test_model)
    dock.select_image("vol")
    session = dock.open_project(tmp_path / "p.zarr")
    assert isinstance(session, VolumeSession), errors
    labels_layer, points = dock.labels_layer, dock.points_layer
    assert labels_layer.data.shape == (12, 64, 64) and points.ndim == 3
    assert tuple(labels_layer.scale) == tuple(points.scale) == SCALE
    dock.add_object("ball")
    viewer.dims.set_current_step(0, 6)
    assert dock.layers.frame() == 6
    _click(points, 6 * SCALE[0], 32 * SCALE[1], 26 * SCALE[2])  # world coordinates
    qtbot.waitUntil(lambda: (np.asarray(labels_layer.data[6]) == 1).any(), timeout=60_000)
    assert [(p.frame, p.z, p.points) for p in session.store.prompts.prompts] == [(0, 6, [(26.0, 32.0)])]
    assert not (np.asarray(labels_layer.data[5]) == 1).any()

    assert dock.propagate("both") is not None
    worst = _slider_steps_take(qtbot, viewer, 0, [0, 3, 9, 11, 6])
    viewer.dims.ndisplay = 3  # the labels in 3D while the run writes them
    qtbot.wait(50)
    _wait_done(qtbot, dock)
    assert not errors, errors
    assert worst < 1.0, f"a slider move took {worst:.2f} s during the run"
    assert session.store.meta["runs"][-1]["status"] == "completed"
    got = np.asarray(labels_layer.data[:])
    assert (got[:6] == 1).any() and (got[7:] == 1).any()
    np.testing.assert_array_equal(got, cli_labels(data[0], (0, 6, 26, 32), tmp_path / "cli.zarr",
                                                  test_model)[0])
    labels_layer.refresh()  # drawn in 3D from the project
    viewer.dims.ndisplay = 2
    viewer.dims.set_current_step(0, 2)
    qtbot.wait(50)
    assert dock.layers.frame() == 2


def test_3d_plus_time_a_run_fills_other_timepoints(make_napari_viewer, qtbot, tmp_path, test_model,
                                                   errors):
    data, _ = sphere_volume(t=3, z=6)
    viewer = _volume_viewer(make_napari_viewer, data)
    _, dock = _docks(viewer)
    dock.set_model(test_model)
    session = dock.open_project(tmp_path / "p.zarr")
    assert isinstance(session, VolumeSession), errors
    labels_layer = dock.labels_layer
    assert labels_layer.data.shape == (3, 6, 64, 64) and dock.points_layer.ndim == 4
    box = dock.propagate_box
    assert box.end_spin.maximum() == 2 and box.whole_check.text() == "all timepoints"
    dock.add_object()
    viewer.dims.set_current_step(0, 1)
    viewer.dims.set_current_step(1, 3)
    assert dock.layers.frame() == 1 * 6 + 3
    dock.add_click(29, 32)  # on the slice shown: t=1, z=3
    qtbot.waitUntil(lambda: (np.asarray(labels_layer.data[1, 3]) == 1).any(), timeout=60_000)
    assert [(p.frame, p.z) for p in session.store.prompts.prompts] == [(1, 3)]
    worker = dock.propagate()
    shown = []
    worker.yielded.connect(lambda _p: shown.append(box.status_label.text()))
    worst = max(_slider_steps_take(qtbot, viewer, 0, [0, 2, 1]),
                _slider_steps_take(qtbot, viewer, 1, [0, 5, 3]))
    _wait_done(qtbot, dock)
    assert not errors, errors
    assert worst < 1.0, f"a slider move took {worst:.2f} s during the run"
    assert any(text.startswith("t 1, z ") for text in shown), shown  # progress names (t, z)
    assert not any(text.startswith("frame") for text in shown), shown
    got = np.asarray(labels_layer.data[:])
    assert (got[0] == 1).any() and (got[2] == 1).any()  # other timepoints filled
    np.testing.assert_array_equal(got, cli_labels(data, (1, 3, 29, 32), tmp_path / "cli.zarr",
                                                  test_model))
    viewer.dims.ndisplay = 3
    labels_layer.refresh()
    qtbot.wait(50)


def test_a_volume_layer_read_from_a_file_keeps_its_source(make_napari_viewer, tmp_path, errors):
    from napari_sam2_track._napari_io import volume_layer_data
    from napari_sam2_track.sources import ArrayVolumeSource

    data, _ = sphere_volume()
    source = ArrayVolumeSource(data[0], "ZYX", sizes={"z": (2.0, "µm"), "y": (0.5, "µm"),
                                                     "x": (0.5, "µm")})
    viewer = make_napari_viewer()
    layer_data, kwargs, _ = volume_layer_data(source, name="nii")
    viewer.add_image(layer_data, **kwargs)
    _, dock = _docks(viewer)
    session = dock.open_project(tmp_path / "p.zarr", layer=viewer.layers["nii"])
    assert isinstance(session, VolumeSession), errors
    assert session.volume is source and dock.labels_layer.data.shape == (12, 64, 64)
    assert tuple(dock.labels_layer.scale) == tuple(viewer.layers["nii"].scale) == SCALE
