"""Review dock on a real napari viewer (run under xvfb): table, timeline, keys, QC, queue."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("napari")
pytest.importorskip("pytestqt")

from qtpy.QtCore import QPoint, Qt  # noqa: E402

from napari_sam2_track._qt.review_dock import TABLE_COLUMNS, ReviewWidget  # noqa: E402
from napari_sam2_track._qt.review_timeline import LABEL_WIDTH, ROW_HEIGHT  # noqa: E402
from test_prompt_widget import own_settings  # noqa: E402,F401 - settings under tmp_path
from napari_sam2_track.project import STATE_PROPAGATED, ProjectStore  # noqa: E402
from napari_sam2_track.prompts import ObjectSpec, Prompt  # noqa: E402
from napari_sam2_track.review import read_review  # noqa: E402
from napari_sam2_track.review.flags import find_flags  # noqa: E402
from napari_sam2_track.review.qc import correction_queue  # noqa: E402
from napari_sam2_track.session import AnnotationSession  # noqa: E402
from napari_sam2_track.sources import open_source  # noqa: E402
from _review import review_dock  # noqa: E402

T, H, W = 20, 48, 48
JUMP_FRAME = 12  # object 1 leaps 14 px between frames 11 and 12


def review_project(path) -> ProjectStore:
    """Object 1 on every frame with one jump; object 2 on frames 0-5 and 10-19; object 3 never."""
    store = ProjectStore.create(path, num_frames=T, height=H, width=W)
    store.set_objects([ObjectSpec(id=1, name="runner"), ObjectSpec(id=2, name="blinker"), ObjectSpec(id=3)])
    for t in range(T):
        m1 = np.zeros((H, W), bool)
        x = 4 + (14 if t >= JUMP_FRAME else 0)
        m1[4:12, x : x + 8] = True
        m2 = np.zeros((H, W), bool)
        if not 6 <= t <= 9:
            m2[30:38, 30:38] = True
        m3 = np.zeros((H, W), bool)
        for obj, m in ((1, m1), (2, m2), (3, m3)):
            store.write_mask(obj, t, m)
            store.write_row(obj, t, m, presence=6.0 if m.any() else -6.0, state=STATE_PROPAGATED, run=1)
        store.merge_labels(t)
    store.put_prompt(Prompt(object=1, frame=0, points=[(8.0, 8.0)], labels=[1]))
    return store


@pytest.fixture
def dock(make_napari_viewer, qtbot, tmp_path):
    store = review_project(tmp_path / "p.zarr")
    viewer = make_napari_viewer(show=True)  # the review keys are bound while the dock is shown
    viewer.add_image(np.zeros((T, H, W), np.uint8), name="video")
    session = AnnotationSession(open_source(np.zeros((T, H, W), np.uint8)), store, prefetch=False)
    for widget, dock_widget in review_dock(viewer, session, qtbot):
        yield widget


def _reload(widget, qtbot, action):
    with qtbot.waitSignal(widget.refreshed, timeout=10000):
        action()
    qtbot.waitUntil(lambda: not widget.loading, timeout=10000)


def press(viewer, key):
    """Run the viewer's binding of ``key`` as napari does on a key press."""
    from napari.utils.key_bindings import coerce_keybinding

    viewer.keymap[coerce_keybinding(key)](viewer)


def _row_of(widget, obj_id):
    table = widget.table
    return next(r for r in range(table.rowCount()) if table.item(r, 0).data(Qt.ItemDataRole.UserRole) == obj_id)


def _cell(widget, obj_id, column):
    return widget.table.item(_row_of(widget, obj_id), TABLE_COLUMNS.index(column)).text()


def test_table_rows_match_objects(dock):
    store = dock.session.store
    assert sorted(int(dock.table.item(r, 0).text()) for r in range(dock.table.rowCount())) == store.object_ids()
    assert _cell(dock, 1, "frames present") == str(T)
    assert (_cell(dock, 2, "frames present"), _cell(dock, 2, "first"), _cell(dock, 2, "last")) == ("16", "0", "19")
    assert _cell(dock, 3, "frames present") == "0"
    assert (_cell(dock, 1, "keyframes"), _cell(dock, 2, "keyframes")) == ("1", "0")
    assert "jump 1" in _cell(dock, 1, "flags by kind")
    assert _cell(dock, 1, "QC status") == "unreviewed"
    # sorting by frames present puts the never-visible object first
    dock.table.sortItems(TABLE_COLUMNS.index("frames present"), Qt.SortOrder.AscendingOrder)
    assert dock.table.item(0, 0).text() == "3"


def test_row_click_selects_and_jumps_to_worst_flag(dock, qtbot):
    jumps = [f for f in find_flags(dock.session.store).flags_of(1) if f.kind == "jump"]
    assert [f.frame for f in jumps] == [JUMP_FRAME]
    row = _row_of(dock, 1)
    rect = dock.table.visualItemRect(dock.table.item(row, 1))
    qtbot.mouseClick(dock.table.viewport(), Qt.MouseButton.LeftButton, pos=rect.center())
    assert dock.session.active_id == 1
    assert int(dock.viewer.dims.current_step[0]) == JUMP_FRAME


def test_timeline_click_and_flag_keys(dock, qtbot):
    timeline = dock.timeline
    frame = 7
    x = LABEL_WIDTH + int((frame + 0.5) * timeline.plot_width / T)
    qtbot.mouseClick(timeline, Qt.MouseButton.LeftButton, pos=QPoint(x, ROW_HEIGHT + ROW_HEIGHT // 2))
    assert int(dock.viewer.dims.current_step[0]) == frame
    assert dock.session.active_id == 2  # the second row
    # object 2's flags: its spans start and end on 0, 5, 10, 19
    flagged = sorted({f.frame for f in find_flags(dock.session.store).flags_of(2)})
    assert {0, 5, 10, 19} <= set(flagged)
    press(dock.viewer, ".")
    after = min(f for f in flagged if f > frame)
    assert int(dock.viewer.dims.current_step[0]) == after
    press(dock.viewer, ",")
    assert int(dock.viewer.dims.current_step[0]) == max(f for f in flagged if f < after)
    dock.go_to_frame(19)
    press(dock.viewer, ".")  # wraps around to the first flag
    assert int(dock.viewer.dims.current_step[0]) == flagged[0]


def test_approve_reject_round_trip(dock, qtbot):
    dock.select_object(2)
    dock.go_to_frame(12)
    assert dock.chosen_masklet() == (2, 10, 19)
    dock.reviewer_edit.setText("ana")
    dock.comment_edit.setText("clean edges")
    _reload(dock, qtbot, dock.approve_button.click)
    decisions = read_review(dock.session.store).decisions
    assert [(d.object, d.start, d.end, d.status, d.reviewer, d.comment) for d in decisions] == [
        (2, 10, 19, "satisfactory", "ana", "clean edges")]
    assert _cell(dock, 2, "QC status") == "partly approved (10/16 frames)"
    dock.go_to_frame(2)
    assert dock.chosen_masklet() == (2, 0, 5)
    _reload(dock, qtbot, dock.reject_button.click)
    state = read_review(dock.session.store)
    assert [d.status for d in state.decisions] == ["satisfactory", "unsatisfactory"]
    assert _cell(dock, 2, "QC status") == "rejected (6/16 frames)"
    assert dock.queue_label.text() == "1 to correct"
    # who decided, with the comment, newest first; the reviewer's name is remembered
    texts = dock.decision_list.texts()
    assert len(texts) == 2 and texts[0].startswith("✗ frames 0-5 rejected by ana")
    assert texts[1].startswith("✓ frames 10-19 approved by ana") and '"clean edges"' in texts[1]
    from napari_sam2_track import settings

    assert settings.reviewer() == "ana"
    assert ReviewWidget(dock.viewer).reviewer_edit.text() == "ana"


def test_flag_reasons_are_shown(dock, qtbot):
    dock.select_object(1)
    flags = find_flags(dock.session.store).flags_of(1)
    jump = next(f for f in flags if f.kind == "jump")
    texts = dock.flag_list.texts()
    assert any(t.startswith(f"frame {jump.frame}") and jump.reason in t for t in texts)
    dock.go_to_frame(jump.frame)
    assert jump.reason in dock.flag_label.text() and dock.flag_label.text().startswith("flagged:")
    row = next(i for i, t in enumerate(texts) if t.startswith("frame 0"))
    dock.flag_list.itemClicked.emit(dock.flag_list.item(row))
    assert int(dock.viewer.dims.current_step[0]) == 0


def test_correction_queue_next_previous(dock, qtbot):
    from napari_sam2_track.review.qc import reject

    store = dock.session.store
    reject(store, 1, 0, T - 1, reviewer="bob")
    reject(store, 2, 10, 19, reviewer="bob")
    _reload(dock, qtbot, dock.refresh)
    assert [(s.decision.object, s.decision.start) for s in correction_queue(store)] == [(1, 0), (2, 10)]
    dock.go_to_frame(0)
    dock.select_object(1)
    dock.go_to_frame(0)
    assert dock.next_correction(1) == (2, 10, 19)
    assert (dock.session.active_id, int(dock.viewer.dims.current_step[0])) == (2, 10)
    assert dock.next_correction(1) == (1, 0, T - 1)  # wraps around
    assert dock.next_correction(-1) == (2, 10, 19)
    assert dock.chosen_masklet() == (2, 10, 19)


def test_refreshes_on_session_edit(dock, qtbot):
    session = dock.session
    labels = np.asarray(session.store.labels[3]).copy()
    labels[40:44, 2:6] = 3
    _reload(dock, qtbot, lambda: session.persist_edit(3, labels))
    assert _cell(dock, 3, "frames present") == "1"
    assert "edited" in _cell(dock, 3, "flags by kind")


def test_timeline_binning_keeps_single_frames_visible():
    from napari_sam2_track._qt.review_timeline import bin_any, bin_max, bin_min, column_edges

    n, width = 100_000, 500
    edges = column_edges(n, width)
    assert edges[0] == 0 and edges[-1] == n and len(edges) == width + 1
    presence = np.full(n, 6.0)
    presence[54_321] = 0.5  # one doubtful frame in a long video
    presence[:1000] = np.nan  # never run
    low = bin_min(presence, edges)
    assert np.isnan(low[:5]).all() and not np.isnan(low[5:]).any()
    assert low[54_321 * width // n] == 0.5 and (np.delete(low[5:], 54_321 * width // n - 5) == 6.0).all()
    hit = bin_any(np.array([54_321]), np.array([54_321]), n, edges)
    assert np.flatnonzero(hit).tolist() == [54_321 * width // n]
    visible = np.zeros(n, bool)
    visible[99_999] = True
    assert np.flatnonzero(bin_max(visible.view(np.uint8), edges)).tolist() == [width - 1]
    # a short video on a wide widget: each frame covers several columns
    short = bin_any(np.array([3]), np.array([3]), 10, column_edges(10, 100))
    assert np.flatnonzero(short).tolist() == list(range(30, 40))


def test_edit_inside_an_approval_shows_it_invalidated(dock, qtbot):
    dock.select_object(2)
    dock.go_to_frame(15)
    _reload(dock, qtbot, dock.approve_button.click)
    assert _cell(dock, 2, "QC status") == "partly approved (10/16 frames)"
    session = dock.session
    labels = np.asarray(session.store.labels[15]).copy()
    labels[38:40, 30:38] = 2  # object 2 grows on frame 15, inside the approved 10-19
    _reload(dock, qtbot, lambda: session.persist_edit(15, labels))
    assert _cell(dock, 2, "QC status") == "unreviewed, 1 invalidated"
    tip = dock.table.item(_row_of(dock, 2), TABLE_COLUMNS.index("QC status")).toolTip()
    assert tip.startswith("invalidated:\n10-19: ") and "15" in tip
    assert dock.timeline.data.track(2).approved == []


def test_report_table_shows_the_annotators_numbers(dock, qtbot):
    from napari_sam2_track.review.analytics import log_event

    store = dock.session.store
    for x in range(3):  # three clicks on one frame, then one on another
        log_event(store, "click", annotator="ana", object=1, frames=(0, 0), positive=bool(x % 2))
    log_event(store, "click", annotator="ana", object=1, frames=(4, 4), positive=True)
    _reload(dock, qtbot, dock.refresh)
    table = dock.report_table
    headers = [table.horizontalHeaderItem(c).text() for c in range(table.columnCount())]
    rows = {table.item(r, 0).text(): [table.item(r, c).text() for c in range(table.columnCount())]
            for r in range(table.rowCount())}
    assert {"ana", "project"} <= set(rows)
    col = headers.index("clicks / clicked frame")
    assert rows["ana"][col] == "2.00" and rows["project"][col] == "2.00"
    assert "2.68" in [row[col] for row in rows.values()]  # the SAM 2 paper's row
    # the plot: one bar per row and measure, drawn off the GUI thread, shown as an image
    plotted = dict(dock.report_box.plotted)
    assert plotted["ana"][2] == 2.0 and plotted["paper: SAM 2"] == [4.5, 19.0, 2.68]
    assert plotted["paper: SAM 1"][2] == 4.80
    pixmap = dock.report_box.plot.pixmap()
    assert pixmap is not None and not pixmap.isNull() and pixmap.width() > 100
    image = dock.data.report_plot
    assert image.shape[2] == 4 and len(np.unique(image.reshape(-1, 4), axis=0)) > 10


def test_report_plot_follows_the_numbers():
    from napari_sam2_track._qt.review_report import render_report_plot
    from napari_sam2_track.review.analytics import REFERENCE_ROWS

    refs = [{"who": r["method"], **r} for r in REFERENCE_ROWS]
    few = render_report_plot([{"who": "ana", "seconds_per_frame": 3.0, "percent_frames_edited": 10.0,
                               "clicks_per_clicked_frame": 1.0}, *refs])
    many = render_report_plot([{"who": "ana", "seconds_per_frame": 30.0, "percent_frames_edited": 90.0,
                                "clicks_per_clicked_frame": 4.0}, *refs])
    assert few.shape == many.shape and few.dtype == np.uint8
    assert not np.array_equal(few, many)
    assert render_report_plot([]) is None


def test_crops_of_the_chosen_masklet(dock, qtbot):
    from napari_sam2_track._qt.review_crops import OUTLINE, crop_around, sample_frames

    assert sample_frames(10, 19, 4) == [10, 13, 16, 19]
    dock.samples_spin.setValue(4)
    dock.select_object(2)
    dock.go_to_frame(12)
    qtbot.waitUntil(lambda: [b.toolTip() for b in dock.crops.buttons] == [f"frame {t}" for t in (10, 13, 16, 19)],
                    timeout=10000)
    dock.crops.buttons[2].click()
    assert int(dock.viewer.dims.current_step[0]) == 16
    mask = np.zeros((H, W), bool)
    mask[30:38, 30:38] = True
    crop = crop_around(np.zeros((H, W, 3), np.uint8), mask, size=96)
    assert max(crop.shape[:2]) == 96 and (crop == OUTLINE).all(axis=2).any()


def test_correction_from_a_flagged_frame_with_undo(make_napari_viewer, qtbot, tmp_path, test_model):
    """A click on the Prompt dock's layer on a flagged frame re-propagates the object's segment
    on a worker while the GUI keeps beating; the dock outlines it; Undo restores it exactly."""
    from test_heartbeat import LIMIT, heartbeat
    from test_prompt_widget import _click, _docks, _viewer_with_cells
    from test_review_segments import chunk_files, frame_files

    from napari_sam2_track.samples import first_frame_prompts, make_cells

    viewer = _viewer_with_cells(make_napari_viewer)
    _, prompt_dock = _docks(viewer)
    prompt_dock.set_model(test_model)
    session = prompt_dock.open_project(tmp_path / "cells.zarr")
    review = ReviewWidget(viewer)
    viewer.window.add_dock_widget(review, name="Review")
    n = session.num_frames
    x, y = first_frame_prompts(make_cells(n_frames=n, size=(96, 96)))[1]
    a, b = prompt_dock.add_object("a"), prompt_dock.add_object("b")
    for obj, frame in ((a, 0), (a, n - 1), (b, 0)):
        prompt_dock.select_object(obj.id)
        viewer.dims.set_current_step(0, frame)
        _click(prompt_dock.points_layer, frame, y if obj is a else 10, x if obj is a else 10)
    qtbot.waitUntil(lambda: session.wait_idle(0), timeout=120_000)
    assert prompt_dock.propagate("forward") is not None
    qtbot.waitUntil(lambda: not prompt_dock.running, timeout=300_000)
    qtbot.waitUntil(lambda: review.data is not None and not review.loading
                    and review.data.track(a.id).frames_present > 0, timeout=30_000)
    assert review.correct_box.auto_check.isChecked() and session.auto_correct

    review.select_object(a.id)
    flagged = [f for f in review.track.flag_frames() if 0 < f < n - 1] or [n // 2]
    frame = flagged[0]
    review.go_to_frame(frame)
    before = chunk_files(session.store)
    tables = {o: session.store.table(o).copy() for o in (a.id, b.id)}
    _click(prompt_dock.points_layer, frame, y + 4, x + 4)  # a click on the flagged frame
    with heartbeat() as gaps:
        with qtbot.waitSignal(review.correct_box.corrected, timeout=300_000) as done:
            pass
        qtbot.waitUntil(lambda: review.correct_box.undo_button.isEnabled(), timeout=30_000)
    correction = done.args[0]
    assert (correction.object, correction.frame, correction.start, correction.end) == (a.id, frame, 1, n - 2)
    print(f"\ncorrection: max GUI gap {max(gaps) * 1000:.0f} ms over {len(gaps)} beats")
    assert max(gaps) < LIMIT, f"GUI blocked for {max(gaps) * 1000:.0f} ms"
    assert review.timeline.segment == (a.id, 1, n - 2, False)
    assert review.timeline.segment_rect() is not None
    assert "re-propagated" in review.correct_box.status_label.text()
    after = chunk_files(session.store)
    for t in (0, n - 1):  # outside the segment: the frames' label layers byte-identical
        assert frame_files(after, t) == frame_files(before, t) != {}
        assert session.store.table(a.id)[t].tobytes() == tables[a.id][t].tobytes()
    assert session.store.table(b.id).tobytes() == tables[b.id].tobytes()
    assert any(frame_files(after, t) != frame_files(before, t) for t in range(1, n - 1))

    assert review.correct_box.undo_button.isEnabled()
    with qtbot.waitSignal(review.correct_box.corrected, timeout=120_000) as undone:
        review.correct_box.undo_button.click()
    assert undone.args[0].undone
    assert chunk_files(session.store) == before  # undo: byte-identical
    for o in (a.id, b.id):
        assert session.store.table(o).tobytes() == tables[o].tobytes()
    assert session.keyframes(a.id) == [0, n - 1]
    # the undo is a track version too: Undo now offers to take it back (a redo)
    qtbot.waitUntil(lambda: not review.loading and review.track.undo == (1, n - 2), timeout=30_000)
    assert review.timeline.segment is None and review.timeline.segment_rect() is None  # the outline went
