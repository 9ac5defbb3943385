"""The docks at 1366 x 768 and 1920 x 1080, as ``annotate`` lays them out and as napari's
Plugins menu opens them (all three at once): every enabled button can be scrolled into view
inside the window, status texts never change the window's size, and the canvas keeps at least
half the window. Real napari viewer, under xvfb."""

from __future__ import annotations

import time

import pytest

pytest.importorskip("napari")
pytest.importorskip("pytestqt")

from qtpy.QtCore import QPoint, QRect  # noqa: E402
from qtpy.QtWidgets import QAbstractButton, QApplication  # noqa: E402

from napari_sam2_track._qt._widgets import ScrollDock, StatusLine  # noqa: E402
from napari_sam2_track.cli.annotate import open_annotation_viewer  # noqa: E402

from test_prompt_widget import own_settings  # noqa: E402,F401 - settings under tmp_path

SCREENS = [(1366, 768), (1920, 1080)]
PLUGIN = "napari-sam2-track"
LONG = ("a status text far longer than any dock is wide, as a propagation's progress or an "
        "error message can be: " + "frame 123: 45/678, 9.9 fps, ETA 01:23 " * 12)


def _settle(seconds: float = 0.3) -> None:
    app = QApplication.instance()
    end = time.time() + seconds
    while time.time() < end:
        app.processEvents()
        time.sleep(0.01)


def _global_rect(widget) -> QRect:
    return QRect(widget.mapToGlobal(QPoint(0, 0)), widget.size())


def unreachable_buttons(window, dock: ScrollDock) -> list[str]:
    """Enabled buttons of ``dock`` that cannot be scrolled into view inside ``window`` (each
    section expanded first)."""
    for section in dock.sections():
        section.set_expanded(True)
    _settle(0.1)
    frame = _global_rect(window)
    missing = []
    for button in dock.findChildren(QAbstractButton):
        if not button.isVisibleTo(dock) or not button.isEnabled() or button.width() == 0:
            continue
        dock.scroll_area.ensureWidgetVisible(button, 0, 0)
        QApplication.instance().processEvents()
        rect = _global_rect(button)
        viewport = _global_rect(dock.scroll_area.viewport())
        inside = viewport.contains(rect) or not dock.scroll_area.isAncestorOf(button)
        if not (frame.contains(rect) and inside):
            missing.append(f"{type(dock).__name__}: {button.text() or button.toolTip()!r} at "
                           f"{rect.getRect()} (window {frame.getRect()}, viewport {viewport.getRect()})")
    return missing


def _status_lines(docks) -> list[StatusLine]:
    return [line for dock in docks for line in dock.findChildren(StatusLine)]


def _check_long_texts_keep_the_size(window, docks) -> None:
    size = window.size()
    lines = _status_lines(docks)
    export_boxes = [dock.export_box for dock in docks if hasattr(dock, "export_box")]
    assert export_boxes and all(box.status_label in lines for box in export_boxes)
    for line in lines:
        line.set_text(LONG, error=True)
    _settle(0.3)
    assert window.size() == size, f"{size} -> {window.size()}"
    for line in lines:
        assert line.text() == LONG and line.toolTip() == LONG  # all of it, in the tooltip


@pytest.mark.parametrize("screen", SCREENS, ids=lambda s: f"{s[0]}x{s[1]}")
def test_annotate_layout_fits_the_screen(make_napari_viewer, qtbot, tmp_path, screen):
    viewer, schema_dock, prompt_dock, review_dock = open_annotation_viewer(
        sample="cells", frames=6, size=(64, 64), project=tmp_path / "c.zarr", screen_size=screen,
        viewer=make_napari_viewer())
    try:
        window = viewer.window._qt_window
        docks = [prompt_dock, review_dock, schema_dock]
        wrappers = [d.parentWidget() for d in docks]
        while wrappers[0] is not None and not hasattr(wrappers[0], "title"):
            wrappers = [w.parentWidget() for w in wrappers]
        _settle(0.5)
        assert (window.width(), window.height()) == screen
        # the dock where work starts is in front, with a short tab title
        assert not prompt_dock.visibleRegion().isEmpty()
        assert review_dock.visibleRegion().isEmpty() and schema_dock.visibleRegion().isEmpty()
        assert [w.windowTitle() for w in wrappers] == ["Prompt and Propagate", "Review", "Schema"]
        assert "Open project" in prompt_dock.message.text() or "model" in prompt_dock.message.text()
        canvas = viewer.window._qt_viewer.canvas.native
        assert canvas.width() >= window.width() // 2 - 4, (canvas.width(), window.width())
        prompt_dock.add_object("cell")
        for dw, dock in zip(wrappers, docks):
            dw.raise_()
            _settle(0.2)
            assert unreachable_buttons(window, dock) == []
            # the content fits the column's width: nothing to scroll sideways for
            assert dock.scroll_area.horizontalScrollBar().maximum() == 0, type(dock).__name__
        wrappers[0].raise_()
        _check_long_texts_keep_the_size(window, docks)
    finally:
        viewer.close()


@pytest.mark.parametrize("screen", SCREENS, ids=lambda s: f"{s[0]}x{s[1]}")
def test_plugins_menu_docks_fit_the_screen(make_napari_viewer, qtbot, tmp_path, screen):
    """All three docks opened from the Plugins menu (stacked, not tabbed) in a window of the
    screen's size: the window does not grow, every button can be reached."""
    from napari_sam2_track._napari_io import sample_cells

    viewer = make_napari_viewer(show=True)
    for data, kwargs, kind in sample_cells(n_frames=6, size=(64, 64)):
        getattr(viewer, f"add_{kind}")(data, **kwargs)
    window = viewer.window._qt_window
    window.resize(*screen)
    docks = [viewer.window.add_plugin_dock_widget(PLUGIN, name)[1]
             for name in ("Schema", "Prompt and Propagate", "Review")]
    _settle(0.5)
    assert (window.width(), window.height()) == screen
    prompt_dock = docks[1]
    prompt_dock.open_project(tmp_path / "cells.zarr")
    prompt_dock.add_object("cell")
    _settle(0.3)
    assert (window.width(), window.height()) == screen
    for dock in docks:
        assert unreachable_buttons(window, dock) == []
    _check_long_texts_keep_the_size(window, docks)


def test_status_line_elides_and_keeps_its_height(qtbot):
    line = StatusLine("short", lines=2)
    qtbot.addWidget(line)
    line.resize(200, line.height())
    line.show()
    height = line.height()
    line.set_text(LONG)
    assert line.height() == height and line.text() == LONG
    assert line.text_shown().endswith("…") and len(line.text_shown()) < len(LONG)
    line.set_text("fits")
    assert line.text_shown() == "fits" and line.toolTip() == "fits"
