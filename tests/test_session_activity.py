"""The session logs every interaction itself: prompts, brush edits, propagations, navigation,
reviews and undos, whichever path made them (session methods, layer edits, QC calls)."""

from __future__ import annotations

import numpy as np

from napari_sam2_track.project import ProjectStore
from napari_sam2_track.review import read_events
from napari_sam2_track.review.analytics import report
from napari_sam2_track.review.qc import approve
from napari_sam2_track.session import AnnotationSession
from napari_sam2_track.session.layers import apply_clicks
from napari_sam2_track.sources import open_source

from conftest import make_blob_video

N, H, W = 6, 96, 128


def test_the_session_logs_what_the_annotator_does(tmp_path, test_model):
    store = ProjectStore.create(tmp_path / "p.zarr", num_frames=N, height=H, width=W)
    session = AnnotationSession(open_source(make_blob_video(N)), store, prefetch=False)
    session.set_model(test_model)
    session.activity.annotator = "ann"
    disc = session.add_object("disc")
    ball = session.add_object("ball")
    session.add_click(0, 30, 40, obj_id=disc.id)
    session.add_click(0, 34, 44, positive=False, obj_id=disc.id)
    # the Prompt dock's layer path sends the whole list of clicks: only the new one counts
    apply_clicks(session, {(disc.id, 0): [*session.clicks(disc.id, 0), (36.0, 40.0, 1)]})
    session.wait_idle()
    session.set_box(0, (80, 20, 100, 40), obj_id=ball.id)
    session.use_label_mask_as_prompt(0, obj_id=ball.id)
    list(session.propagate_iter("forward"))
    for t in (1, 2, 2, 3):  # the repeated frame is no move
        session.set_current_frame(t)
    labels = np.asarray(store.labels[3]).copy()
    labels[:4, :4] = disc.id
    session.persist_edit(3, labels)
    approve(store, disc.id, 0, N - 1, reviewer="rev")  # the Python API of QC logs too
    session.close()

    events = read_events(tmp_path / "p.zarr")
    kinds = [e.kind for e in events]
    assert kinds == ["click", "click", "click", "box", "mask", "propagate",
                     "navigate", "navigate", "navigate", "brush", "review"]
    clicks = [e for e in events if e.kind == "click"]
    assert [(e.object, e.frames, e.details["positive"]) for e in clicks] == [
        (disc.id, (0, 0), True), (disc.id, (0, 0), False), (disc.id, (0, 0), True)]
    run = events[kinds.index("propagate")]
    assert run.frames == (0, N - 1) and run.details["objects"] == [disc.id, ball.id]
    assert run.details["seconds"] > 0
    assert [e.frames for e in events if e.kind == "navigate"] == [(1, 1), (2, 2), (3, 3)]
    brush = events[kinds.index("brush")]
    assert brush.frames == (3, 3) and brush.details["objects"] == [disc.id]
    assert {e.annotator for e in events[:-1]} == {"ann"} and events[-1].annotator == "rev"
    assert all(a.time <= b.time for a, b in zip(events, events[1:]))

    ann = report(tmp_path / "p.zarr")["annotators"]["ann"]
    assert ann["clicks"] == 3 and ann["clicks_per_clicked_frame"] == 3.0
    assert ann["propagated_frames"] == 2 * N and ann["prompts"] == 2
    assert ann["corrections"] == 1  # the brush edit on a propagated frame


def test_a_read_only_project_logs_nothing(tmp_path):
    ProjectStore.create(tmp_path / "p.zarr", num_frames=N, height=H, width=W).close()
    store = ProjectStore.open(tmp_path / "p.zarr", mode="r")
    session = AnnotationSession(open_source(make_blob_video(N)), store, prefetch=False)
    session.set_current_frame(2)
    session.close()
    assert read_events(tmp_path / "p.zarr") == []
