"""The Review dock's History box on a real napari viewer: versions of the selected object,
read on a worker, and Restore (on the session's compute thread)."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("napari")
pytest.importorskip("pytestqt")

from qtpy.QtCore import Qt  # noqa: E402

from test_review_dock import dock  # noqa: E402,F401 - the dock on a review project
from test_prompt_widget import own_settings  # noqa: E402,F401 - settings under tmp_path


def test_history_lists_versions_and_restores_one(dock, qtbot):
    widget = dock
    session = widget.session
    store = session.store
    before = np.asarray(store.labels[3]).copy()
    labels = before.copy()
    labels[20:28, 4:12] = 1  # a hand edit of object 1: a version
    session.persist_edit(3, labels)
    widget.select_object(1)
    box = widget.history_box
    box.reload()
    qtbot.waitUntil(lambda: [v.kind for v in box.versions] == ["edit"], timeout=10000)
    assert box.list.count() == 1 and "edit" in box.list.item(0).text()
    box.list.setCurrentRow(0)
    assert box.restore_button.isEnabled()
    qtbot.mouseClick(box.restore_button, Qt.LeftButton)
    qtbot.waitUntil(lambda: [v.kind for v in box.versions] == ["edit", "restore"], timeout=10000)
    assert np.array_equal(np.asarray(store.labels[3]), before)  # the edit is gone, to the pixel
    assert box.list.item(0).text().startswith("2  restore")  # newest first
