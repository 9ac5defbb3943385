"""What a new user meets in the docks: model input size and remembered settings, a cancel that
stops within a frame and says so, a broken video's reason, boxes that are really boxes,
per-object attributes, an Apply that confirms, where a sample's project is. Real napari
viewer, real SAM 2 architecture with random weights (run under xvfb)."""

from __future__ import annotations

import pytest

pytest.importorskip("napari")
pytest.importorskip("pytestqt")

from napari_sam2_track import settings  # noqa: E402
from napari_sam2_track.errors import Sam2TrackError  # noqa: E402
from napari_sam2_track.engine.spec import ModelSpec  # noqa: E402

from test_prompt_widget import _docks, _viewer_with_cells, _wait_done, errors, own_settings  # noqa: E402,F401


def test_model_input_size_is_used_shown_and_remembered(make_napari_viewer, qtbot, tmp_path, test_model, errors):
    import torch

    checkpoint = tmp_path / "fine_tuned_256.pt"
    torch.save({"model": test_model.predictor.state_dict()}, checkpoint)
    viewer = make_napari_viewer()
    _, dock = _docks(viewer)
    box = dock.model_box
    assert box.size_spin.value() == 0 and settings.last_model() is None
    box.model_combo.setCurrentText(str(checkpoint))
    box.size_spin.setValue(256)
    box.device_combo.setCurrentText("cpu")
    worker = box.load_model()
    qtbot.waitUntil(lambda: not worker.is_running and box.load_model_btn.isEnabled(), timeout=120_000)
    assert not errors, errors
    model = dock.hub.model
    assert model is not None and model.image_size == 256  # not the config's 1024
    assert box.model_label.text() == "in use: fine_tuned_256.pt @ 256 px on cpu"
    assert "fine_tuned_256.pt @ 256 px" in viewer.title
    remembered = ModelSpec(model=str(checkpoint), device="cpu", image_size=256)
    assert settings.last_model() == remembered
    assert settings.settings_path().is_relative_to(tmp_path)
    # a new dock (a new napari) shows it, and annotate loads it at start
    from napari_sam2_track._qt.model_box import ModelBox
    from napari_sam2_track.cli.annotate import startup_model

    again = ModelBox(dock.hub.__class__(), lambda exc: None)
    assert again.form_spec() == remembered and "last used" in again.model_label.text()
    assert startup_model(None, None, None) == remembered
    assert startup_model(None, 512, None) == ModelSpec(model=str(checkpoint), device="cpu", image_size=512)
    assert startup_model("tiny", None, None) == ModelSpec(model="tiny")
    settings.put(settings.MODEL, None)  # nothing remembered: a size or device alone is refused, not dropped
    assert startup_model(None, None, None) is None
    with pytest.raises(Sam2TrackError, match="pass --model too"):
        startup_model(None, 512, None)


def test_engine_messages_in_the_docks_words():
    from napari_sam2_track._qt.model_box import dock_words

    offline = ("cannot look up x/y: the Hugging Face Hub is not reachable (offline); "
               "pass --model /path/to/file.pt (see docs/models.md)")
    assert "--" not in dock_words(offline) and "choose a local .pt checkpoint" in dock_words(offline)
    assert dock_words("image size 100 (--image-size) is not usable") == "image size 100 (Input size) is not usable"


def test_cancel_stops_within_a_frame_and_says_so(make_napari_viewer, qtbot, tmp_path, test_model, errors):
    viewer = _viewer_with_cells(make_napari_viewer)
    _, dock = _docks(viewer)
    dock.set_model(test_model)
    dock.open_project(tmp_path / "p.zarr")
    dock.add_object("a")
    dock.add_click(40, 40, frame=0)
    box = dock.propagate_box
    seen: list = []
    worker = dock.propagate("forward")
    worker.yielded.connect(lambda p: seen.append((p.computed, box.status_label.text())))
    qtbot.waitUntil(lambda: len(seen) >= 1, timeout=60_000)
    dock.cancel()
    at_cancel = seen[-1][0]
    assert box.status_label.text().startswith("cancelling")
    _wait_done(qtbot, dock)
    runs = dock.session.store.meta["runs"]
    assert runs[-1]["status"] == "cancelled"
    assert runs[-1]["frames"] <= at_cancel + 1  # at most the frame being computed
    after = [text for computed, text in seen if computed > at_cancel]
    assert all(text.startswith("cancelling") for text in after)  # not overwritten by progress
    qtbot.waitUntil(lambda: box.status_label.text().startswith("propagation cancelled"), timeout=10_000)


def test_broken_video_reason_reaches_the_user(make_napari_viewer, tmp_path, errors):
    path = tmp_path / "broken.mp4"
    path.write_bytes(b"\x00\x01not a video" * 200)
    viewer = make_napari_viewer()
    viewer.open(str(path), plugin="napari-sam2-track")  # no "returned no data" error
    assert len(viewer.layers) == 0
    assert errors and errors[-1].startswith(f"cannot read video {path}") and "re-encode" in errors[-1]


def test_a_click_on_the_boxes_layer_is_not_a_box(make_napari_viewer, tmp_path, test_model, errors):
    viewer = _viewer_with_cells(make_napari_viewer)
    _, dock = _docks(viewer)
    dock.set_model(test_model)
    dock.open_project(tmp_path / "p.zarr")
    dock.add_object("a")
    dock.add_box(30.0, 30.0, 30.4, 30.2, frame=0)  # a press and release, no drag
    assert "not a prompt" in errors[-1] and len(dock.shapes_layer.data) == 0
    assert dock.session.prompts() == {} and dock.session.keyframes() == []
    assert "not a prompt" in dock.message.text() and dock.message.is_error
    dock.add_box(20.0, 20.0, 50.0, 45.0, frame=0)
    assert len(dock.shapes_layer.data) == 1 and dock.session.box(1, 0) == (20.0, 20.0, 50.0, 45.0)


def test_attributes_are_set_on_an_object_and_apply_confirms(make_napari_viewer, tmp_path):
    viewer = _viewer_with_cells(make_napari_viewer)
    schema_dock, dock = _docks(viewer)
    dock.open_project(tmp_path / "p.zarr")
    obj = dock.add_object("a")
    schema_dock.add_attribute("truncated", "bool")
    schema_dock.add_attribute("side", "choice", "left, right")
    schema = schema_dock.apply()
    assert schema is not None
    assert schema_dock.message.text().startswith("schema") and "2 attributes" in schema_dock.message.text()
    assert "p.zarr" in schema_dock.message.text()
    editors = dock.objects_box.attribute_editors
    assert list(editors) == ["truncated", "side"]
    editors["truncated"].setChecked(True)  # as a click on the check box
    dock.objects_box.set_attribute("side", "left")
    assert dock.session.object(obj.id).attributes == {"truncated": True, "side": "left"}
    assert editors["side"].currentText() == "left"
    from napari_sam2_track.project import ProjectStore

    dock.session.close()
    stored = next(o for o in ProjectStore.open(tmp_path / "p.zarr", mode="r").objects if o.id == obj.id)
    assert stored.attributes == {"truncated": True, "side": "left"}


def test_sample_project_location_and_next_step(make_napari_viewer, qtbot, tmp_path, monkeypatch):
    import tempfile

    from napari_sam2_track.cli.annotate import open_annotation_viewer

    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))  # the "temporary folder" of this test

    viewer, _, dock, _ = open_annotation_viewer(sample="cells", frames=6, size=(64, 64), show=False,
                                                viewer=make_napari_viewer())
    try:
        path = dock.session.store.path
        assert path.is_relative_to(tmp_path)
        text = dock.project_box.location_label.text()
        assert "temporary folder" in text
        assert f"napari-sam2-track annotate --sample cells --frames 6 --project {path}" in text
        assert dock.project_box.open_btn.text() == "Open another project"
        assert dock.message.text().startswith("Next: load a model")
        assert viewer.title.startswith(f"{path.name} · no model")
    finally:
        viewer.close()
