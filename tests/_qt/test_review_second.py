"""The Review dock's Second opinion box on a real napari viewer (xvfb): a background job with
progress and cancel, its masks as a Labels layer, one-click adoption undone by the Correct box,
and a refusal while a propagation runs."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("napari")
pytest.importorskip("pytestqt")

from napari_sam2_track.project import ProjectStore  # noqa: E402
from napari_sam2_track.prompts import PromptSet  # noqa: E402
from napari_sam2_track.review.second_opinion import SECOND_OPINION_GROUP, open_opinion  # noqa: E402
from napari_sam2_track.session import AnnotationSession  # noqa: E402
from napari_sam2_track.sources import open_source  # noqa: E402
from _review import review_dock  # noqa: E402
from conftest import make_blob_video, nudge_test_model, write_jpeg_folder  # noqa: E402
from test_prompt_widget import own_settings  # noqa: E402,F401 - settings under tmp_path

N = 8
PROMPTS = {
    "objects": [{"id": 1}, {"id": 2}],
    "prompts": [{"object": 1, "frame": 0, "points": [[30, 40]], "labels": [1]},
                {"object": 2, "frame": 0, "box": [78, 18, 102, 42]}],
}


@pytest.fixture(scope="module")
def other_checkpoint(tmp_path_factory):
    import torch

    from napari_sam2_track.engine.models import load_random_model

    model = load_random_model(image_size=256, seed=1, device="cpu")
    nudge_test_model(model.predictor, mask_shift=0.05)
    path = tmp_path_factory.mktemp("ckpt2") / "other_tiny.pt"
    torch.save({"model": model.predictor.state_dict()}, path)
    return path


@pytest.fixture
def dock(make_napari_viewer, qtbot, tmp_path, test_model):
    from napari_sam2_track.pipeline import track

    video = write_jpeg_folder(make_blob_video(N), tmp_path / "jpg")
    project = tmp_path / "p.zarr"
    with open_source(video) as source:
        list(track(source, PromptSet.model_validate(PROMPTS), project, model=test_model))
    viewer = make_napari_viewer(show=True)
    source = open_source(video)
    viewer.add_image(make_blob_video(N), name="video", rgb=True)
    session = AnnotationSession(source, ProjectStore.open(project), model=test_model, prefetch=False)
    for widget, dock_widget in review_dock(viewer, session, qtbot):
        yield widget
    session.close()


def run_from_the_box(dock, qtbot, checkpoint) -> None:
    box = dock.second_box
    box.model_edit.setText(str(checkpoint))
    box.size_spin.setValue(256)
    box.device_combo.setCurrentText("cpu")
    box.run_button.click()


def test_a_second_opinion_from_the_dock_is_shown_flagged_adopted_and_undone(dock, qtbot, other_checkpoint):
    box, session, viewer = dock.second_box, dock.session, dock.viewer
    lines = []
    run_from_the_box(dock, qtbot, other_checkpoint)
    assert box.worker is not None and box.cancel_button.isEnabled() and not box.run_button.isEnabled()
    box.status_label.full_text and lines.append(box.status_label.full_text)
    qtbot.waitUntil(lambda: box.worker is None, timeout=120_000)
    assert box.opinion == "other_tiny-256", box.status_label.full_text
    layer = viewer.layers[box.layer_name()]
    opinion = open_opinion(session.store)
    assert layer.data.shape == (N, 96, 128)
    np.testing.assert_array_equal(np.asarray(layer.data[3]), opinion.labels[3])
    qtbot.waitUntil(lambda: not dock.loading and any(
        f.kind == "disagreement" for t in dock.data.tracks for f in t.flags), timeout=30_000)

    flag = max((f for t in dock.data.tracks for f in t.flags if f.kind == "disagreement"), key=lambda f: f.score)
    dock.select_object(flag.object)
    dock.go_to_frame(flag.frame)
    assert box.target == (flag.object, flag.start, flag.end) and box.adopt_button.isEnabled()
    ours = session.store.masks(flag.object, 0, N)
    with qtbot.waitSignal(box.changed, timeout=60_000):
        box.adopt_button.click()
    theirs = opinion.masks(flag.object, flag.start, flag.end + 1)
    np.testing.assert_array_equal(session.store.masks(flag.object, flag.start, flag.end + 1), theirs)
    qtbot.waitUntil(lambda: dock.correct_box.undo_button.isEnabled(), timeout=30_000)
    with qtbot.waitSignal(dock.correct_box.corrected, timeout=60_000):
        dock.correct_box.undo_button.click()
    np.testing.assert_array_equal(session.store.masks(flag.object, 0, N), ours)


def test_cancel_stores_nothing_and_a_running_propagation_refuses_a_second_opinion(
        dock, qtbot, other_checkpoint):
    box, session = dock.second_box, dock.session
    run_from_the_box(dock, qtbot, other_checkpoint)
    box.cancel_button.click()
    qtbot.waitUntil(lambda: box.worker is None, timeout=120_000)
    assert "cancelled" in box.status_label.full_text
    assert box.opinion is None and not (session.store.path / SECOND_OPINION_GROUP / "other_tiny-256").exists()

    run = session.propagate_iter("forward")  # holds the session's run until closed
    try:
        run_from_the_box(dock, qtbot, other_checkpoint)
        assert box.worker is None and box.status_label.is_error
        assert "cannot start a second opinion while a propagation runs" in box.status_label.full_text
    finally:
        run.close()
