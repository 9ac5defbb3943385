"""The Review dock's timeline on a 3D + time project (run under xvfb): its columns are the planes
of the timepoint on screen, the t and z sliders move it, a click jumps to that (t, z)."""

from __future__ import annotations

import pytest

pytest.importorskip("napari")
pytest.importorskip("pytestqt")

from qtpy.QtCore import QPoint, Qt  # noqa: E402

from napari_sam2_track._qt.review_timeline import LABEL_WIDTH, ROW_HEIGHT  # noqa: E402
from napari_sam2_track.project import STATE_PROPAGATED  # noqa: E402
from napari_sam2_track.session.volume import VolumeSession, volume_source_for_array  # noqa: E402

from _volumes import sphere_volume  # noqa: E402
from _review import review_dock  # noqa: E402

N_T, N_Z = 3, 6


@pytest.fixture
def review(make_napari_viewer, qtbot, tmp_path):
    data, truth = sphere_volume(t=N_T, z=N_Z)
    volume = volume_source_for_array(data, scale=(1.0, 2.0, 0.5, 0.5))
    session = VolumeSession.open_volume(volume, tmp_path / "v.zarr", prefetch=False)
    store = session.store
    session.add_object("ball")
    for t in range(N_T):
        for z in range(N_Z):
            p, m = store.plane(t, z), truth[t, z]
            store.write_mask(1, p, m)
            store.write_row(1, p, m, presence=6.0 if m.any() else -6.0, state=STATE_PROPAGATED, run=1)
            store.merge_labels(p)
    viewer = make_napari_viewer(show=True)
    viewer.add_image(data, name="vol", scale=(1.0, 2.0, 0.5, 0.5), axis_labels=tuple("tzyx"))
    for widget, dock_widget in review_dock(viewer, session, qtbot):
        yield widget
    session.close()


def test_timeline_runs_along_z_of_the_timepoint_on_screen(review, qtbot):
    viewer, timeline = review.viewer, review.timeline
    assert review.data.num_frames == N_T * N_Z
    viewer.dims.set_current_step(0, 1)
    viewer.dims.set_current_step(1, 2)
    assert timeline.window == (N_Z, 2 * N_Z - 1) and timeline.shown_frames == N_Z
    assert review.current_frame == timeline.current_frame == 1 * N_Z + 2
    viewer.dims.set_current_step(1, 5)  # the z slider moves the cursor
    assert timeline.current_frame == N_Z + 5
    viewer.dims.set_current_step(0, 2)  # the t slider moves the window
    assert timeline.window == (2 * N_Z, 3 * N_Z - 1) and timeline.current_frame == 2 * N_Z + 5
    z = 3
    x = LABEL_WIDTH + int((z + 0.5) * timeline.plot_width / N_Z)
    qtbot.mouseClick(timeline, Qt.MouseButton.LeftButton, pos=QPoint(x, ROW_HEIGHT // 2))
    assert tuple(int(s) for s in viewer.dims.current_step[:2]) == (2, z)
    review.go_to_frame(0 * N_Z + 4)  # a plane of another timepoint: both sliders follow
    assert tuple(int(s) for s in viewer.dims.current_step[:2]) == (0, 4)
    assert timeline.window == (0, N_Z - 1)
    timeline.grab()  # draws the windowed rows


def test_flags_are_listed_by_timepoint_and_slice(review, qtbot):
    store = review.session.store
    review._select(1)
    flags = review.track.flags
    assert flags, "a ball has a first and a last slice at every timepoint"
    assert f"{N_T} timepoint(s) x {N_Z} slices" in review.status_label.text()
    texts = [review.flag_list.item(i).text() for i in range(review.flag_list.count())]
    assert len(texts) == len(flags) and not any(t.startswith("frame ") for t in texts)
    for flag in flags:
        t, z = store.plane_tz(flag.frame)
        assert any(text.startswith(f"t {t} z {z}") and flag.kind in text for text in texts), texts
    bottom = next(f for f in flags if f.kind == "z_bottom")
    review.go_to_frame(bottom.frame)
    t, z = store.plane_tz(bottom.frame)
    assert f"t {t} z {z}" in review.flag_label.text()


def test_a_click_on_a_propagated_slice_is_corrected_through_the_dock(review, qtbot, test_model):
    session = review.session
    session.set_model(test_model)
    assert session.auto_correct  # the Correct box's "Re-propagate corrections" turns it on
    with qtbot.waitSignal(review.correct_box.corrected, timeout=300_000) as blocker:
        session.request_click(1 * N_Z + 3, 26, 32, obj_id=1)
    c = blocker.args[0]
    # no prompt before: t 1 is the object's first prompted timepoint, its chain runs both ways
    assert (c.object, c.frame, c.start, c.end, c.undone) == (1, N_Z + 3, 0, N_T * N_Z - 1, False)
    text = review.correct_box.status_label.text()
    assert f"object 1: t 0-{N_T - 1} re-propagated" in text and "frames" not in text, text
    assert session.undo_segment(1) == (0, N_T * N_Z - 1)
