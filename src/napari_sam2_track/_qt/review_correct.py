"""The Review dock's Correct box: re-propagation of a corrected segment, and its Undo.

With "Re-propagate corrections" on, the session's ``auto_correct`` is on: a prompt added with
the Prompt dock's layers on a frame a propagation produced (a flagged frame, typically)
re-propagates that object alone between its neighbouring keyframes, on the session's compute
thread (:mod:`napari_sam2_track.session.corrections`). This box shows the segment being
recomputed and the one last recomputed, and **Undo** restores it (masks, table rows and
prompts, byte for byte). The GUI thread only draws.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from qtpy.QtCore import Signal
from qtpy.QtWidgets import QCheckBox, QGroupBox, QHBoxLayout, QPushButton, QVBoxLayout

from ..review.volume_flags import where
from ._gui_thread import SessionLink, on_gui_thread
from ._widgets import StatusLine

IDLE_TEXT = "add a prompt on a flagged frame (Prompt dock) to correct it"
IDLE_TEXT_VOLUME = "add a prompt on a flagged slice (Prompt dock) to correct it"


class CorrectBox(QGroupBox):
    """Segment corrections of the open session.

    Signals:
        segment_changed(object, start, end, running): the segment to outline (object -1: none).
        corrected(Correction): a segment was re-propagated or restored.
    """

    segment_changed = Signal(int, int, int, bool)
    corrected = Signal(object)

    def __init__(self, on_error: Callable[[BaseException], Any]):
        super().__init__("Correct")
        self.on_error = on_error
        self.session = None
        self.selected: int | None = None
        self.undo_span: tuple[int, int] | None = None
        self.last = None  # the last Correction seen
        self._link = SessionLink()
        layout = QVBoxLayout(self)
        self.auto_check = QCheckBox("Re-propagate corrections")
        self.auto_check.setChecked(True)
        self.auto_check.setToolTip(
            "A prompt on a frame (or a volume's slice) that was propagated re-propagates that object\n"
            "alone between its neighbouring keyframes (on a worker); the other frames, slices and\n"
            "objects stay as they are.")
        self.auto_check.toggled.connect(self._apply_auto)
        self.stop_check = QCheckBox("Stop once the track agrees")
        self.stop_check.setChecked(True)
        self.stop_check.setToolTip(
            "Each direction stops after the schema's review.agree_frames frames in a row agree with\n"
            "the stored masks (faster; the frames beyond keep masks made with the older memory).\n"
            "Off: re-propagate the whole segment between the keyframes (exact).")
        self.stop_check.toggled.connect(self._apply_stop)
        self.status_label = StatusLine(IDLE_TEXT, lines=2)
        row = QHBoxLayout()
        self.undo_button = QPushButton("Undo")
        self.undo_button.setToolTip("Restore the masks, table rows and prompts the last correction of the\n"
                                    "selected object replaced")
        self.undo_button.clicked.connect(self.undo)
        self.undo_button.setEnabled(False)
        row.addWidget(self.status_label, 1)
        row.addWidget(self.undo_button)
        layout.addWidget(self.auto_check)
        layout.addWidget(self.stop_check)
        layout.addLayout(row)

    # -------------------------------------------------------------- session
    def attach(self, session) -> None:
        """Follow ``session`` (``None``: none)."""
        self._link.disconnect_all()
        self.session = session
        self.last = None
        self.undo_span = None
        self.segment_changed.emit(-1, 0, 0, False)
        self.status_label.setText(IDLE_TEXT if session is None or not session.store.is_volume
                                  else IDLE_TEXT_VOLUME)
        if session is None:
            self.undo_button.setEnabled(False)
            return
        self._apply_auto(self.auto_check.isChecked())
        self.stop_check.setChecked(session.store.schema.review.correction_stop == "agree")
        self._apply_stop(self.stop_check.isChecked())
        self._link.connect(session.events.correction_started, self._on_started)
        self._link.connect(session.events.correction_finished, self._on_finished)

    def detach(self) -> None:
        if self.session is not None:
            self.session.auto_correct = False
        self._link.disconnect_all()
        self.session = None

    def _apply_auto(self, on: bool) -> None:
        if self.session is not None:
            self.session.auto_correct = bool(on)

    def _apply_stop(self, on: bool) -> None:
        if self.session is not None:
            self.session.corrections.stop_early = bool(on)

    def set_selected(self, obj_id: int | None, undo_span: tuple[int, int] | None) -> None:
        """The selected object and the frames an undo of its last correction restores."""
        self.selected = obj_id
        self.undo_span = undo_span
        busy = self.session is not None and self.session.correcting is not None
        self.undo_button.setEnabled(undo_span is not None and not busy)
        self.undo_button.setText("Undo" if undo_span is None else f"Undo {self._where(*undo_span)}")

    def _where(self, start: int, end: int) -> str:
        """Frames ``start..end`` as the user reads them: ``frames 3-9``, or ``t 1 z 3-9``."""
        if self.session is None:
            return f"frames {start}-{end}"
        return where(self.session.store, start, end)

    def _at(self, plane: int) -> str:
        """Where a direction stopped: a frame, or a volume's timepoint (a chain stops there)."""
        store = self.session.store if self.session is not None else None
        return f"t {store.plane_tz(plane)[0]}" if store is not None and store.is_volume else str(plane)

    # --------------------------------------------------------------- events
    def _on_started(self, obj_id: int, start: int, end: int) -> None:
        self.undo_button.setEnabled(False)
        self.status_label.setText(f"re-propagating object {obj_id} on {self._where(start, end)}…")
        self.segment_changed.emit(obj_id, start, end, True)

    def _on_finished(self, correction) -> None:
        self.last = correction
        c = correction
        if c.undone:
            self.status_label.setText(f"object {c.object}: {self._where(c.start, c.end)} restored")
        else:
            stopped = f" (stopped: {', '.join(f'{k} at {self._at(v)}' for k, v in c.stops.items())})" \
                if c.stops else ""
            self.status_label.setText(
                f"object {c.object}: {self._where(c.start, c.end)} re-propagated in {c.seconds:.1f} s"
                f"{stopped}")
        if c.object == self.selected:
            self.set_selected(self.selected, None if c.undone else (c.start, c.end))
        if c.undone:  # the segment is as it was: nothing to outline any more
            self.segment_changed.emit(-1, 0, 0, False)
        else:
            self.segment_changed.emit(c.object, c.start, c.end, False)
        self.corrected.emit(correction)

    # ----------------------------------------------------------------- undo
    def undo(self) -> None:
        """Restore the selected object's last corrected segment (on the compute thread)."""
        if self.session is None or self.selected is None:
            return
        try:
            future = self.session.request_undo(self.selected)
        except Exception as exc:  # noqa: BLE001 - shown to the user
            self.on_error(exc)
            return
        self.undo_button.setEnabled(False)
        self.status_label.setText(f"restoring object {self.selected}…")
        report = on_gui_thread(self.on_error)
        future.add_done_callback(lambda f: f.exception() is not None and report(f.exception()))
