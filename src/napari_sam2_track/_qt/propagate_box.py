"""The "Propagate" part of the Prompt and Propagate dock: a run on napari's ``thread_worker``.

The run is the session's generator (:meth:`AnnotationSession.propagate_iter`) driven by a
napari generator worker: each yielded progress updates the dock and napari's activity dock;
*Cancel* sets the run's cancel event (the tracker checks it before each frame) and calls the
worker's ``quit()``; the run is closed on the worker's own thread (writer flushed, run recorded
as ``cancelled``). "cancelling…" stays shown until the run has stopped.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

import numpy as np
from qtpy.QtWidgets import QCheckBox, QComboBox, QFormLayout, QGroupBox, QHBoxLayout, QPushButton, QSpinBox
from superqt.utils import GeneratorWorker

from ..errors import PromptError
from ._gui_thread import SessionLink
from ._hub import ProjectHub
from ._widgets import StatusLine


def format_eta(seconds: float) -> str:
    if not np.isfinite(seconds):
        return "--:--"
    seconds = int(seconds)
    if seconds >= 3600:
        return f"{seconds // 3600}h{seconds % 3600 // 60:02d}"
    return f"{seconds // 60:02d}:{seconds % 60:02d}"


class RunWorker(GeneratorWorker):
    """A generator worker that closes its generator on its own thread when it stops, so
    ``quit()`` ends a run there instead of leaving it suspended."""

    def work(self):
        try:
            return super().work()
        finally:
            self._gen.close()


class RunFailed(Exception):
    """A run's error, re-raised: superqt's generator worker takes a ``RuntimeError`` (what
    torch raises) for a deleted worker and would never report the run finished."""


def _progress_of(run):
    try:
        yield from run
    except RuntimeError as exc:
        raise RunFailed(str(exc)) from exc


class PropagateBox(QGroupBox):
    """Direction, frame range, *Propagate* and *Cancel*; progress and the run's outcome."""

    def __init__(self, hub: ProjectHub, on_error: Callable[[BaseException], Any]):
        super().__init__("Propagate")
        self.hub = hub
        self.on_error = on_error
        self.worker = None
        self._pbar = None
        self._cancel: threading.Event | None = None
        self._link = SessionLink()
        form = QFormLayout(self)
        self.direction_combo = QComboBox()
        self.direction_combo.addItems(["both", "forward", "backward"])
        form.addRow("Direction", self.direction_combo)
        self.whole_check = QCheckBox("whole video")
        self.whole_check.setChecked(True)
        self.start_spin = QSpinBox()
        self.end_spin = QSpinBox()
        for spin in (self.start_spin, self.end_spin):
            spin.setEnabled(False)
            spin.setMinimumWidth(64)
        self.whole_check.toggled.connect(self._on_whole_toggled)
        form.addRow("Frames", self.whole_check)
        self.start_spin.setPrefix("from ")
        self.end_spin.setPrefix("to ")
        row = QHBoxLayout()
        row.addWidget(self.start_spin, 1)
        row.addWidget(self.end_spin, 1)
        form.addRow("", row)
        row = QHBoxLayout()
        self.propagate_btn = QPushButton("Propagate")
        self.propagate_btn.clicked.connect(lambda: self.propagate())
        self.cancel_btn = QPushButton("Cancel")
        self.cancel_btn.setEnabled(False)
        self.cancel_btn.clicked.connect(lambda: self.cancel())
        row.addWidget(self.propagate_btn)
        row.addWidget(self.cancel_btn)
        form.addRow(row)
        self.status_label = StatusLine("")
        form.addRow(self.status_label)
        hub.session_changed.connect(self._attach)
        self._attach(hub.session)

    def _on_whole_toggled(self, whole: bool) -> None:
        for spin in (self.start_spin, self.end_spin):
            spin.setEnabled(not whole)

    def _attach(self, session: Any) -> None:
        self._link.disconnect_all()
        if session is None:
            self.status_label.setText("")
            return
        self._link.connect(session.events.run_finished, self._on_run_finished)
        n = session.num_frames
        volume = session.store.is_volume
        if volume:  # the range is in timepoints; the session takes planes
            n = session.store.volume_shape[0]
        self.whole_check.setText("all timepoints" if volume else "whole video")
        for spin in (self.start_spin, self.end_spin):
            spin.setRange(0, n - 1)
        self.end_spin.setValue(n - 1)
        self.status_label.setText("")

    @property
    def running(self) -> bool:
        """Whether this dock's run worker is alive."""
        return self.worker is not None

    def propagate(self, direction: str | None = None, start: int | None = None, end: int | None = None):
        """Propagate on a worker thread; returns the worker (``None`` if refused)."""
        from napari.qt.threading import create_worker
        from napari.utils import progress

        if self.worker is not None:
            self.on_error(PromptError("a propagation is already running; wait for it or press Cancel"))
            return None
        direction = direction or self.direction_combo.currentText()
        if start is None and end is None and not self.whole_check.isChecked():
            start, end = self.start_spin.value(), self.end_spin.value()
            session = self.hub.session
            if session is not None and session.store.is_volume:  # timepoints -> their planes
                n_z = session.store.volume_shape[1]
                start, end = start * n_z, end * n_z + n_z - 1
        try:
            if self.hub.session is None:
                raise PromptError("no project open: choose the image layer and press 'Open project'")
            cancel = threading.Event()
            run = self.hub.session.propagate_iter(direction, start, end, cancel=cancel)
        except Exception as exc:  # noqa: BLE001 - shown to the user
            self.on_error(exc)
            return None
        self._cancel = cancel
        worker = create_worker(_progress_of, run, _worker_class=RunWorker, _start_thread=False, _ignore_errors=True)
        worker.yielded.connect(self._on_progress)
        worker.finished.connect(self._on_worker_finished)
        self.worker = worker
        self._pbar = progress(total=0, desc=f"SAM 2 propagation ({direction})")
        self.propagate_btn.setEnabled(False)
        self.cancel_btn.setEnabled(True)
        self.status_label.setText("propagating… (waits for prompts still being computed)")
        worker.start()
        return worker

    @property
    def cancelling(self) -> bool:
        """Whether Cancel was pressed and the run has not stopped yet."""
        return self._cancel is not None and self._cancel.is_set()

    def cancel(self) -> None:
        """Stop the run before its next frame; written frames stay."""
        if self.worker is not None:
            if self._cancel is not None:
                self._cancel.set()
            self.worker.quit()
            self.cancel_btn.setEnabled(False)
            self.status_label.setText("cancelling… (stops after the frame being computed)")

    def _where(self, frame: int) -> str:
        """``frame N``, or ``t T, z Z`` for a plane of a volume project."""
        session = self.hub.session
        if session is not None and session.store.is_volume:
            t, z = session.store.plane_tz(frame)
            return f"t {t}, z {z}"
        return f"frame {frame}"

    def _on_progress(self, p: Any) -> None:
        pbar = self._pbar  # its update may let the run's end close it meanwhile
        if pbar is not None:
            if not pbar.total:
                pbar.total = p.total
            pbar.update(1)
            pbar.set_description(f"SAM 2 propagation: {self._where(p.frame)}, {p.fps:.1f} fps, ETA {format_eta(p.eta)}")
        if not self.cancelling:  # "cancelling…" stays until the run has stopped
            self.status_label.setText(
                f"{self._where(p.frame)}: {p.computed}/{p.total}, {p.fps:.1f} fps, ETA {format_eta(p.eta)}")

    def _on_run_finished(self, outcome: Any) -> None:
        self.status_label.setText(f"propagation {outcome.status}: {outcome.frames} frames")

    def _on_worker_finished(self) -> None:
        self.worker = None
        self._cancel = None
        if self._pbar is not None:
            self._pbar.close()
            self._pbar = None
        self.propagate_btn.setEnabled(True)
        self.cancel_btn.setEnabled(False)
