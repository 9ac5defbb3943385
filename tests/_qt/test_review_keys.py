"""Review by keyboard on a real napari viewer (xvfb): keys move between flags and queued
masklets, approve and reject, and are bound only while the Review dock is shown."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("napari")
pytest.importorskip("pytestqt")

from qtpy.QtCore import Qt  # noqa: E402

from napari_sam2_track._qt.review_keys import REVIEW_KEYS, help_text  # noqa: E402
from napari_sam2_track.review import read_review  # noqa: E402
from napari_sam2_track.review.flags import find_flags  # noqa: E402
from napari_sam2_track.review.qc import reject  # noqa: E402
from napari_sam2_track.session import AnnotationSession  # noqa: E402
from napari_sam2_track.sources import open_source  # noqa: E402
from _review import review_dock  # noqa: E402
from test_prompt_widget import own_settings  # noqa: E402,F401 - settings under tmp_path
from test_review_dock import H, T, W, review_project  # noqa: E402


def mine(_viewer):
    """A binding of the user's, which the dock must give back."""


@pytest.fixture
def viewer_and_dock(make_napari_viewer, qtbot, tmp_path):
    store = review_project(tmp_path / "p.zarr")
    reject(store, 1, 0, 5, reviewer="ann", log=False)
    reject(store, 2, 10, 19, reviewer="ann", log=False)
    viewer = make_napari_viewer(show=True)
    viewer.bind_key("PageDown", mine, overwrite=True)
    viewer.add_image(np.zeros((T, H, W), np.uint8), name="video")
    session = AnnotationSession(open_source(np.zeros((T, H, W), np.uint8)), store, prefetch=False)
    for widget, dock_widget in review_dock(viewer, session, qtbot):
        yield viewer, widget, dock_widget


def key(qtbot, viewer, key: Qt.Key, modifier=Qt.KeyboardModifier.NoModifier) -> None:
    """A real key press on the canvas, as a user's (napari dispatches it to the keymaps)."""
    canvas = viewer.window._qt_viewer.canvas.native
    canvas.setFocus()
    qtbot.keyClick(canvas, key, modifier)


def frame(viewer) -> int:
    return int(viewer.dims.current_step[0])


def test_keys_move_between_flags_and_queued_masklets_and_decide(viewer_and_dock, qtbot):
    viewer, dock, _ = viewer_and_dock
    assert dock.keys.bound
    dock.select_object(2)
    dock.go_to_frame(7)
    flagged = sorted({f.frame for f in find_flags(dock.session.store).flags_of(2)})
    key(qtbot, viewer, Qt.Key.Key_Period)
    after = min(f for f in flagged if f > 7)
    assert frame(viewer) == after
    key(qtbot, viewer, Qt.Key.Key_Comma)
    assert frame(viewer) == max(f for f in flagged if f < after)

    # the correction queue: object 1 frames 0-5, object 2 frames 10-19, wrapping around
    key(qtbot, viewer, Qt.Key.Key_PageDown)
    assert (dock.selected, frame(viewer)) == (2, 10)
    key(qtbot, viewer, Qt.Key.Key_PageDown)
    assert (dock.selected, frame(viewer)) == (1, 0)
    key(qtbot, viewer, Qt.Key.Key_PageUp)
    assert (dock.selected, frame(viewer)) == (2, 10)

    # approve with a comment, then reject the next one with that comment
    dock.reviewer_edit.setText("kim")
    dock.comment_edit.setText("edges leak")
    with qtbot.waitSignal(dock.refreshed, timeout=10000):
        key(qtbot, viewer, Qt.Key.Key_A, Qt.KeyboardModifier.AltModifier)
    qtbot.waitUntil(lambda: not dock.loading and dock.comment_edit.text() == "", timeout=10000)
    dock.select_object(1)
    dock.go_to_frame(3)
    with qtbot.waitSignal(dock.refreshed, timeout=10000):
        key(qtbot, viewer, Qt.Key.Key_R, Qt.KeyboardModifier.AltModifier)
    qtbot.waitUntil(lambda: not dock.loading, timeout=10000)
    mine_ = [d for d in read_review(dock.session.store).decisions if d.reviewer == "kim"]
    assert [(d.object, d.start, d.end, d.status, d.comment) for d in mine_] == [
        (2, 10, 19, "satisfactory", "edges leak"), (1, 0, 19, "unsatisfactory", "edges leak")]
    # each decision by key is a review event, as a button's is (time per masklet in the report)
    from napari_sam2_track.review.models import read_events

    assert [e.kind for e in read_events(dock.session.store) if e.annotator == "kim"] == ["review", "review"]


def test_keys_are_bound_only_while_the_dock_is_shown(viewer_and_dock, qtbot):
    from napari.utils.key_bindings import coerce_keybinding

    viewer, dock, dock_widget = viewer_and_dock
    ours = {coerce_keybinding(k) for k, _, _ in REVIEW_KEYS}
    assert ours <= set(viewer.keymap)
    dock_widget.hide()
    qtbot.waitUntil(lambda: not dock.keys.bound, timeout=5000)
    assert coerce_keybinding(".") not in viewer.keymap
    assert viewer.keymap[coerce_keybinding("PageDown")] is mine  # the user's binding is back
    dock.go_to_frame(7)
    key(qtbot, viewer, Qt.Key.Key_Period)
    assert frame(viewer) == 7  # nothing moves while the dock is hidden
    dock_widget.show()
    qtbot.waitUntil(lambda: dock.keys.bound, timeout=5000)
    assert viewer.keymap[coerce_keybinding("PageDown")] is not mine
    dock.close()
    assert coerce_keybinding(",") not in viewer.keymap


def test_the_keys_are_listed_in_the_dock():
    text = help_text()
    for k, what, _ in REVIEW_KEYS:
        assert k in text and what in text
    assert "Alt-O" in text and "second opinion" in text and "previous version" in text
