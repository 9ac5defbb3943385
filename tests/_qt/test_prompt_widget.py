"""Prompt and Propagate and Schema docks on a real napari viewer (run under xvfb)."""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np
import pytest

pytest.importorskip("napari")
pytest.importorskip("pytestqt")

from qtpy.QtCore import QTimer  # noqa: E402

from napari_sam2_track._napari_io import sample_cells  # noqa: E402
from napari_sam2_track._qt.prompt_widget import PromptWidget  # noqa: E402
from napari_sam2_track._qt.schema_widget import SchemaWidget  # noqa: E402
from napari_sam2_track.samples import first_frame_prompts, make_cells  # noqa: E402
from napari_sam2_track.project import (  # noqa: E402
    STATE_ABSENT,
    STATE_EDITED,
    STATE_NOT_RUN,
    STATE_PROMPTED,
    STATE_PROPAGATED,
    ProjectStore,
)

N_FRAMES, SIZE = 8, (96, 96)


@pytest.fixture(autouse=True)
def own_settings(tmp_path, monkeypatch):
    """The dock's remembered settings live under tmp_path, never in the user's config."""
    from napari_sam2_track import settings

    monkeypatch.setenv(settings.ENV_DIR, str(tmp_path / "config"))
    return tmp_path / "config"


@pytest.fixture
def errors(monkeypatch):
    """Messages shown with napari's show_error."""
    import napari.utils.notifications as notifications

    shown: list[str] = []
    real = notifications.show_error

    def record(message):
        shown.append(str(message))
        real(message)

    monkeypatch.setattr(notifications, "show_error", record)
    return shown


def _viewer_with_cells(make_napari_viewer):
    viewer = make_napari_viewer()
    for data, kwargs, kind in sample_cells(n_frames=N_FRAMES, size=SIZE):
        getattr(viewer, f"add_{kind}")(data, **kwargs)
    return viewer


def _docks(viewer):
    schema_dock = SchemaWidget(viewer)
    dock = PromptWidget(viewer)
    viewer.window.add_dock_widget(schema_dock, name="Schema")
    viewer.window.add_dock_widget(dock, name="Prompt and Propagate")
    return schema_dock, dock


def _wait_done(qtbot, dock, timeout=120_000):
    qtbot.waitUntil(lambda: not dock.running, timeout=timeout)


@dataclass
class _MouseEvent:
    """A vispy-like mouse event, as napari's own layer tests simulate them."""

    type: str
    position: tuple
    modifiers: list = field(default_factory=list)
    is_dragging: bool = False
    pos: np.ndarray = field(default_factory=lambda: np.zeros(2))
    view_direction: list | None = None
    up_direction: list | None = None
    dims_displayed: list = field(default_factory=lambda: [1, 2])


def _click(layer, t, y, x, modifiers=()):
    """A mouse click on the clicks layer at data position (t, y, x): press, then release."""
    from napari.utils._proxies import ReadOnlyWrapper
    from napari.utils.interactions import mouse_press_callbacks, mouse_release_callbacks

    for kind, callbacks in (("mouse_press", mouse_press_callbacks), ("mouse_release", mouse_release_callbacks)):
        event = _MouseEvent(type=kind, position=(t, y, x), modifiers=list(modifiers))
        callbacks(layer, ReadOnlyWrapper(event, exceptions=("handled",)))


def test_end_to_end_cells(make_napari_viewer, qtbot, tmp_path, test_model, errors):
    viewer = _viewer_with_cells(make_napari_viewer)
    schema_dock, dock = _docks(viewer)

    # schema: two categories, stored in the project
    schema_dock.set_schema(schema_dock.schema().model_copy(update={"name": "cells"}))
    schema_dock.categories.item(0, 0).setText("nucleus")
    schema_dock.pick_color(0, "#1f77b4")
    schema_dock.add_category("mitotic cell", "#d62728", "dividing")
    schema_dock.min_pixels.setValue(3)
    assert schema_dock.apply() is not None

    dock.set_model(test_model)
    dock.select_image("cells")
    session = dock.open_project(tmp_path / "cells.zarr")
    assert session is not None, errors
    assert session.schema.category_names() == ["nucleus", "mitotic cell"]
    assert dock.labels_layer.data.shape == (N_FRAMES, *SIZE)

    sample = make_cells(n_frames=N_FRAMES, size=SIZE)
    clicks = first_frame_prompts(sample)
    a = dock.add_object("cell A", "nucleus")
    b = dock.add_object("cell B", "mitotic cell")
    assert [o.id for o in session.objects] == [1, 2]
    # label colours follow the categories
    from napari_sam2_track.schema import object_color
    from napari.utils.colormaps.standardize_color import transform_color

    cmap = dock.labels_layer.colormap.color_dict
    for obj in (a, b):
        expected = object_color(obj.id, obj.category, session.schema)
        assert np.allclose(cmap[obj.id], transform_color(expected)[0])
    viewer.dims.set_current_step(0, 0)

    # a user's clicks on the clicks layer in add mode
    points = dock.points_layer
    assert points.mode == "add"
    for obj, gt_id in ((a, 1), (b, 3)):
        dock.select_object(obj.id)
        x, y = clicks[gt_id]
        _click(points, 0, y, x)
        assert session.keyframes(obj.id) == [0]  # recorded at once; the mask follows
        qtbot.waitUntil(lambda obj=obj: (session.store.labels[0] == obj.id).any(), timeout=60_000)
    # Alt+click adds a negative click for the active object (b)
    _click(points, 0, 2, 2, modifiers=["Alt"])
    assert session.clicks(b.id, 0)[-1] == (2.0, 2.0, 0)
    assert list(points.features["positive"]) == [True, True, False]
    assert not errors

    # propagate, with a heartbeat on the GUI thread
    gaps, last = [], [time.perf_counter()]

    def beat():
        now = time.perf_counter()
        gaps.append(now - last[0])
        last[0] = now

    worker = dock.propagate("forward")
    assert worker is not None and dock.labels_layer.editable is False
    timer = QTimer()
    timer.timeout.connect(beat)
    last[0] = time.perf_counter()
    timer.start(10)
    _wait_done(qtbot, dock)
    timer.stop()
    assert not errors, errors
    assert dock.labels_layer.editable is True
    assert len(gaps) > 10
    assert max(gaps) < 0.1, f"GUI blocked for {max(gaps) * 1000:.0f} ms"

    store = ProjectStore.open(tmp_path / "cells.zarr", mode="r")
    assert store.meta["runs"][-1]["status"] == "completed"
    for obj in (a, b):
        states = store.states(obj.id)
        assert states[0] == STATE_PROMPTED
        assert set(states[1:].tolist()) <= {STATE_PROPAGATED, STATE_ABSENT}
        assert (states == STATE_PROPAGATED).sum() >= 1
    for t in range(N_FRAMES):
        labels = store.labels[t]
        m1, m2 = store.mask(1, t), store.mask(2, t)
        assert np.array_equal(labels == 1, m1)
        assert np.array_equal(labels == 2, m2 & ~m1)
        # the Labels layer shows the store
        assert np.array_equal(np.asarray(dock.labels_layer.data[t]), labels)
    assert (store.labels[N_FRAMES - 1] == 1).any() and (store.labels[N_FRAMES - 1] == 2).any()
    viewer.dims.set_current_step(0, N_FRAMES - 1)
    qtbot.waitUntil(
        lambda: np.array_equal(
            np.asarray(dock.labels_layer._slice.image.raw), store.labels[N_FRAMES - 1]
        ),
        timeout=5000,
    )

    # painting with napari's brush is saved and the frame marked edited
    dock.labels_layer.selected_label = 2
    dock.labels_layer.brush_size = 5
    dock.labels_layer.paint((N_FRAMES - 1, 5, 5), 2)
    dock.flush_edits()
    store = ProjectStore.open(tmp_path / "cells.zarr", mode="r")
    assert store.states(2)[N_FRAMES - 1] == STATE_EDITED
    assert store.mask(2, N_FRAMES - 1)[5, 5]

    # keyframes: list, jump, delete
    dock.select_object(b.id)
    keyframes_list = dock.prompts_box.keyframes_list
    assert keyframes_list.count() == 1
    dock.goto_keyframe(0)
    assert viewer.dims.current_step[0] == 0
    dock.delete_keyframe(0)
    assert session.keyframes(b.id) == [] and keyframes_list.count() == 0
    assert all(o != b.id for o in dock.points_layer.features["object"])


def test_box_and_label_mask_prompts(make_napari_viewer, qtbot, tmp_path, test_model, errors):
    viewer = _viewer_with_cells(make_napari_viewer)
    _, dock = _docks(viewer)
    dock.set_model(test_model)
    dock.open_project(tmp_path / "p.zarr")
    obj = dock.add_object("boxed")
    viewer.dims.set_current_step(0, 2)
    dock.add_box(20, 20, 50, 60)
    assert dock.session.box(obj.id, 2) == (20.0, 20.0, 50.0, 60.0)
    qtbot.waitUntil(lambda: (dock.session.store.labels[2] == obj.id).any(), timeout=60_000)
    # a painted mask on another frame becomes a mask prompt
    viewer.dims.set_current_step(0, 5)
    dock.labels_layer.paint((5, 40, 40), obj.id)
    dock.use_label_mask()
    assert not errors, errors
    assert dock.session.keyframes(obj.id) == [2, 5]
    assert dock.session.wait_idle(60)
    prompt = [p for p in dock.session.store.prompts.prompts if p.frame == 5][0]
    assert prompt.kind == "mask"
    # a second rectangle on the same frame replaces the first
    viewer.dims.set_current_step(0, 2)
    dock.add_box(10, 10, 40, 40)
    assert dock.session.box(obj.id, 2) == (10.0, 10.0, 40.0, 40.0)
    assert len(dock.shapes_layer.data) == 1
    # propagate a frame range only
    box = dock.propagate_box
    box.whole_check.setChecked(False)
    box.start_spin.setValue(2)
    box.end_spin.setValue(4)
    box.direction_combo.setCurrentText("forward")
    assert dock.propagate() is not None
    _wait_done(qtbot, dock)
    states = dock.session.store.states(obj.id)
    assert states[2] == STATE_PROMPTED and states[5] == STATE_PROMPTED
    assert states[3] != STATE_NOT_RUN and states[4] != STATE_NOT_RUN
    assert states[0] == STATE_NOT_RUN and states[6] == STATE_NOT_RUN
    assert not errors, errors


def test_schema_dock_load_save(make_napari_viewer, tmp_path, errors):
    viewer = make_napari_viewer()
    schema_dock = SchemaWidget(viewer)
    schema_dock.add_category("tool", "#00ff00", "an instrument")
    schema_dock.add_attribute("side", "choice", "left, right", "which hand")
    schema_dock.reentry.setCurrentText("new_linked_id")
    schema_dock.edge_policy.setCurrentText("flag")
    for suffix in ("yaml", "json"):
        path = schema_dock.save(tmp_path / f"s.{suffix}")
        schema_dock.set_schema(type(schema_dock.schema()).default())
        loaded = schema_dock.load(path)
        assert loaded.category_names() == ["object", "tool"]
        assert loaded.attribute("side").choices == ["left", "right"]
        assert loaded.reentry_identity == "new_linked_id" and loaded.edge_policy == "flag"
        assert schema_dock.schema() == loaded
    # invalid: duplicate category names -> one-line notification, nothing applied
    schema_dock.add_category("tool")
    assert schema_dock.apply() is None
    assert errors and "duplicate category" in errors[-1]
    (tmp_path / "bad.yaml").write_text("categories: [")
    assert schema_dock.load(tmp_path / "bad.yaml") is None
    assert "not valid YAML" in errors[-1]


# ------------------------------------------------------------------------------ bad input
def test_wrong_dimensionality_and_rgb_mixups(make_napari_viewer, tmp_path, errors):
    viewer = make_napari_viewer()
    _, dock = _docks(viewer)
    viewer.add_image(np.zeros((32, 32), np.uint8), name="single")
    assert dock.open_project(tmp_path / "a.zarr", layer=viewer.layers["single"]) is None
    assert "single" in errors[-1] and not (tmp_path / "a.zarr").exists()
    viewer.add_image(np.zeros((4, 32, 32, 3), np.uint8), name="rgb as gray", rgb=False)
    assert dock.open_project(tmp_path / "b.zarr", layer=viewer.layers["rgb as gray"]) is None
    assert "rgb=True" in errors[-1] and not (tmp_path / "b.zarr").exists()
    viewer.add_image(np.zeros((2, 4, 32, 32, 2), np.uint16), name="5-D")
    assert dock.open_project(tmp_path / "c.zarr", layer=viewer.layers["5-D"]) is None
    assert "dimensions" in errors[-1]
    viewer.add_image(np.zeros((4, 32, 32, 3), np.uint8), name="rgb", rgb=True)
    assert dock.open_project(tmp_path / "d.zarr", layer=viewer.layers["rgb"]) is not None
    # the project of an RGB video cannot be reused for a gray one of another shape
    viewer.add_image(np.zeros((5, 32, 32), np.uint8), name="gray")
    assert dock.open_project(tmp_path / "d.zarr", layer=viewer.layers["gray"]) is None
    assert "video" in errors[-1]
    assert dock.session.source.channels == 3


def test_layers_of_a_project_opened_in_the_background_come_in_steps(make_napari_viewer, qtbot, tmp_path, errors):
    """The button opens the project on a worker, which also builds its layers; they are then
    inserted one per turn of the event loop. Opening another project meanwhile leaves none of
    the first project's layers behind."""
    from napari_sam2_track.session import AnnotationSession

    viewer = _viewer_with_cells(make_napari_viewer)
    _, dock = _docks(viewer)
    images = [layer.name for layer in viewer.layers]
    dock.project_box.path_edit.setText(str(tmp_path / "bg.zarr"))
    dock.project_box.open_btn.click()
    qtbot.waitUntil(lambda: dock.session is not None and dock.layers.complete, timeout=60_000)
    assert [layer.name for layer in viewer.layers] == images + ["cells labels", "cells boxes", "cells clicks"]
    assert viewer.layers.selection.active is dock.points_layer and dock.points_layer.mode == "add"

    # staged: only the labels layer is in after enable(); the rest follow
    first = AnnotationSession.open(dock.session.source, tmp_path / "first.zarr")
    dock.layers.enable(first, "first", staged=True)
    assert [layer.name for layer in viewer.layers] == images + ["first labels"]
    assert not dock.layers.complete
    second = AnnotationSession.open(dock.session.source, tmp_path / "second.zarr")
    dock.layers.enable(second, "second", staged=True)  # before "first" is complete
    qtbot.waitUntil(lambda: dock.layers.complete, timeout=10_000)
    qtbot.wait(100)  # the first project's pending insertions have had their turn
    assert [layer.name for layer in viewer.layers] == images + ["second labels", "second boxes", "second clicks"]
    dock.layers.disable()
    first.close()
    second.close()
    assert not errors, errors


def test_prompt_outside_image_and_no_prompts(make_napari_viewer, tmp_path, test_model, errors):
    viewer = _viewer_with_cells(make_napari_viewer)
    _, dock = _docks(viewer)
    dock.open_project(tmp_path / "p.zarr")
    # no object, no model: clear messages, nothing stored
    dock.add_click(10, 10)
    assert "no object" in errors[-1] and len(dock.points_layer.data) == 0
    dock.add_object("a")
    dock.add_click(10, 10)
    assert "no model loaded" in errors[-1] and len(dock.points_layer.data) == 0
    dock.set_model(test_model)
    dock.add_click(500, 10)
    assert "outside" in errors[-1]
    assert len(dock.points_layer.data) == 0 and dock.session.store.prompts.prompts == []
    dock.add_box(-20, 10, 30, 30)
    assert "outside" in errors[-1] and len(dock.shapes_layer.data) == 0
    n = len(errors)
    assert dock.propagate() is None
    assert len(errors) == n + 1 and "no prompts" in errors[-1]
    assert dock.session.store.meta["runs"] == [] and not dock.running
    assert dock.labels_layer.editable


def test_second_propagation_and_cancel(make_napari_viewer, qtbot, tmp_path, test_model, errors):
    viewer = _viewer_with_cells(make_napari_viewer)
    _, dock = _docks(viewer)
    dock.set_model(test_model)
    dock.open_project(tmp_path / "p.zarr")
    dock.add_object("a")
    dock.add_click(40, 40, frame=0)
    assert dock.propagate("forward") is not None
    assert dock.propagate("forward") is None
    assert "already running" in errors[-1]
    dock.add_click(20, 20, frame=0)  # prompts are frozen during a run
    assert "while a propagation runs" in errors[-1]
    dock.cancel()
    _wait_done(qtbot, dock)
    store = dock.session.store
    runs = store.meta["runs"]
    assert len(runs) == 1 and runs[0]["status"] == "cancelled"
    done = store.frames_with_state(1, exclude=(STATE_NOT_RUN,))
    assert 0 in done and len(done) < N_FRAMES
    for t in done:  # frames written stay written and complete
        assert np.array_equal(store.labels[t] == 1, store.mask(1, t))
    assert dock.session.clicks(1, 0) == [(40.0, 40.0, 1)]


def test_close_viewer_during_run(make_napari_viewer, qtbot, tmp_path, test_model, errors):
    viewer = _viewer_with_cells(make_napari_viewer)
    _, dock = _docks(viewer)
    dock.set_model(test_model)
    session = dock.open_project(tmp_path / "p.zarr")
    dock.add_object("a")
    dock.add_click(40, 40, frame=0)
    worker = dock.propagate("forward")
    qtbot.waitUntil(lambda: bool(session.store.frames_with_state(1, exclude=(STATE_NOT_RUN,))), timeout=60_000)
    viewer.close()
    qtbot.waitUntil(lambda: not session.running, timeout=30_000)
    qtbot.waitUntil(lambda: not worker.is_running, timeout=30_000)
    store = ProjectStore.open(tmp_path / "p.zarr", mode="r")
    run = store.meta["runs"][-1]
    assert run["status"] == "cancelled"
    done = store.frames_with_state(1, exclude=(STATE_NOT_RUN,))
    assert 0 in done
    for t in done:
        assert np.array_equal(store.labels[t] == 1, store.mask(1, t))


def test_undo_and_deleting_clicks_are_saved(make_napari_viewer, qtbot, tmp_path, test_model, errors):
    viewer = _viewer_with_cells(make_napari_viewer)
    _, dock = _docks(viewer)
    dock.set_model(test_model)
    session = dock.open_project(tmp_path / "p.zarr")
    obj = dock.add_object("a")
    dock.add_click(40, 40, frame=1)
    dock.add_click(60, 60, frame=1)
    assert len(session.clicks(obj.id, 1)) == 2
    # the user deletes the second click (select mode + Delete)
    dock.points_layer.selected_data = {1}
    dock.points_layer.remove_selected()
    assert session.clicks(obj.id, 1) == [(40.0, 40.0, 1)]
    dock.points_layer.selected_data = {0}
    dock.points_layer.remove_selected()
    assert session.keyframes(obj.id) == []
    # paint, then undo: both end up in the store
    layer = dock.labels_layer
    layer.selected_label = obj.id
    layer.brush_size = 3
    layer.paint((4, 10, 10), obj.id)
    qtbot.waitUntil(lambda: bool(session.store.mask(obj.id, 4)[10, 10]), timeout=3000)
    layer.undo()
    qtbot.waitUntil(lambda: not session.store.mask(obj.id, 4)[10, 10], timeout=3000)
    assert not errors, errors


def test_worker_error_is_notified_and_frames_stay(make_napari_viewer, qtbot, tmp_path, test_model, errors):
    viewer = _viewer_with_cells(make_napari_viewer)
    _, dock = _docks(viewer)
    dock.set_model(test_model)
    session = dock.open_project(tmp_path / "p.zarr")
    dock.add_object("a")
    dock.add_click(40, 40, frame=0)
    tracker = session.tracker
    real = tracker._track_frame

    def failing(t, *args, **kwargs):
        if t == 3:
            raise RuntimeError("simulated device failure")
        return real(t, *args, **kwargs)

    tracker._track_frame = failing
    try:
        dock.propagate("forward")
        _wait_done(qtbot, dock)
    finally:
        tracker._track_frame = real
    assert errors and "simulated device failure" in errors[-1]
    store = session.store
    assert store.meta["runs"][-1]["status"] == "failed"
    assert store.frames_with_state(1, exclude=(STATE_NOT_RUN,)) == [0, 1, 2]
    assert dock.labels_layer.editable and not session.running
    # the next run works
    dock.propagate("forward")
    _wait_done(qtbot, dock)
    assert store.meta["runs"][-1]["status"] == "completed"


def test_missing_weights_message(make_napari_viewer, qtbot, tmp_path, errors):
    viewer = make_napari_viewer()
    _, dock = _docks(viewer)
    box = dock.model_box
    worker = dock.load_model(str(tmp_path / "missing.pt"), "cpu")
    qtbot.waitUntil(lambda: not worker.is_running and box.load_model_btn.isEnabled(), timeout=60_000)
    assert errors and "missing.pt" in errors[-1] and "\n" not in errors[-1]
    # the one-line message stays in the dock until the next attempt
    assert box.model_label.text() == f"no model loaded: {errors[-1]}" and dock.hub.model is None
    worker = dock.load_model(str(tmp_path / "other.pt"), "cpu")
    assert box.model_label.text().startswith("loading")
    qtbot.waitUntil(lambda: not worker.is_running and box.load_model_btn.isEnabled(), timeout=60_000)
    assert "other.pt" in box.model_label.text()


def test_polarity_toggle_and_shortcut_docs(make_napari_viewer, tmp_path, test_model, errors):
    viewer = _viewer_with_cells(make_napari_viewer)
    _, dock = _docks(viewer)
    dock.set_model(test_model)
    session = dock.open_project(tmp_path / "p.zarr")
    obj = dock.add_object("a")
    dock.toggle_polarity()  # what N does
    assert dock.prompts_box.negative_btn.isChecked() and not dock.positive
    _click(dock.points_layer, 0, 30, 30)
    _click(dock.points_layer, 0, 40, 40, modifiers=["Control"])
    dock.set_polarity(True)
    _click(dock.points_layer, 0, 50, 50)
    assert [c[2] for c in session.clicks(obj.id, 0)] == [0, 0, 1]
    for key in ("Alt+click", "Ctrl+click", "N ", "K / Shift+K"):
        assert key in dock.toolTip()
    assert not errors, errors
