"""The Review dock on a session, for the dock tests' fixtures."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from napari_sam2_track._qt._hub import hub_for
from napari_sam2_track._qt.review_dock import ReviewWidget


def review_dock(viewer: Any, session: Any, qtbot: Any) -> Iterator[tuple[ReviewWidget, Any]]:
    """Yield ``(widget, dock widget)``: the dock on ``session``, its first load done; the
    session is taken off the viewer afterwards (``yield from`` it in a fixture)."""
    hub_for(viewer).set_session(session)
    widget = ReviewWidget(viewer)
    dock_widget = viewer.window.add_dock_widget(widget, name="Review")
    qtbot.waitUntil(lambda: widget.data is not None and not widget.loading, timeout=10000)
    try:
        yield widget, dock_widget
    finally:
        hub_for(viewer).set_session(None)
