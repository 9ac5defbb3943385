"""The Review dock's Second opinion box: run another model over the project's keyframes in the
background (progress, Cancel), show its masks as a Labels layer, and adopt them for a frame
range with one click.

The job is :func:`napari_sam2_track.session.second_opinion.second_opinion_job` on napari's
generator ``thread_worker``; adopting is
:func:`~napari_sam2_track.session.second_opinion.request_adopt` on the session's compute
thread, a correction that the Correct box's Undo restores. The GUI thread only draws.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

from qtpy.QtCore import Signal
from qtpy.QtWidgets import (QCheckBox, QComboBox, QFormLayout, QGroupBox, QHBoxLayout, QLineEdit,
                            QPushButton, QSpinBox)

from ._gui_thread import on_gui_thread
from ._widgets import StatusLine

IDLE_TEXT = "re-track every object from its keyframes with another model, to compare"


class SecondOpinionBox(QGroupBox):
    """Second opinions of the open session.

    Signals:
        changed(): a second opinion was stored or adopted (the dock reads the project again).
    """

    changed = Signal()

    def __init__(self, viewer: Any, on_error: Callable[[BaseException], Any]):
        super().__init__("Second opinion")
        self.viewer = viewer
        self.on_error = on_error
        self.session = None
        self.opinion: str | None = None  # the most recent second opinion's name
        self.target: tuple[int, int, int] | None = None  # (object, start, end) to adopt
        self.worker = None
        self._cancel: threading.Event | None = None
        form = QFormLayout(self)
        self.model_edit = QLineEdit()
        self.model_edit.setPlaceholderText("large, owner/repo or /path/to/fine_tune.pt")
        self.model_edit.setToolTip("The second model: a SAM 2.1 size, a Hugging Face id or a local .pt")
        self.size_spin = QSpinBox()
        self.size_spin.setRange(0, 4096)
        self.size_spin.setSingleStep(32)
        self.size_spin.setSpecialValueText("auto")
        self.device_combo = QComboBox()
        self.device_combo.addItems(["auto", "cpu", "cuda", "mps"])
        self.overwrite_check = QCheckBox("replace one of this name")
        self.overwrite_check.setToolTip("Replace a stored second opinion of the same name")
        self.run_button = QPushButton("Run second opinion")
        self.run_button.clicked.connect(self.start)
        self.cancel_button = QPushButton("Cancel")
        self.cancel_button.clicked.connect(self.cancel)
        self.cancel_button.setEnabled(False)
        self.status_label = StatusLine(IDLE_TEXT, lines=2)
        self.adopt_button = QPushButton("Adopt")
        self.adopt_button.setToolTip("Take the second opinion's masks of the selected object over the\n"
                                     "disagreeing run at the current frame (else the masklet); Undo\n"
                                     "in the Correct box restores them")
        self.adopt_button.clicked.connect(self.adopt)
        row = QHBoxLayout()
        row.addWidget(self.run_button)
        row.addWidget(self.cancel_button)
        form.addRow("model", self.model_edit)
        form.addRow("input size", self.size_spin)
        form.addRow("device", self.device_combo)
        form.addRow(self.overwrite_check)
        form.addRow(row)
        form.addRow(self.status_label)
        form.addRow(self.adopt_button)
        self._update_buttons()

    # -------------------------------------------------------------- session
    def attach(self, session) -> None:
        """Follow ``session`` (``None``: none); show its most recent second opinion."""
        self.cancel()
        self.session = session
        self.opinion = None
        self.status_label.set_text(IDLE_TEXT)
        if session is not None:
            from ..review.second_opinion import latest_opinion

            self.opinion = latest_opinion(session.store)
            if self.opinion is not None:
                self.status_label.set_text(f"second opinion {self.opinion!r} shown as a layer")
                self.show_layer()
        self._update_buttons()

    def set_target(self, obj_id: int | None, frame: int, flags: list, masklet: tuple[int, int] | None) -> None:
        """What Adopt takes: the selected object's disagreement run at ``frame``, else the
        masklet ``(start, end)``."""
        run = next((f for f in flags if f.kind == "disagreement" and f.start <= frame <= f.end), None)
        span = (run.start, run.end) if run is not None else masklet
        self.target = None if obj_id is None or span is None else (obj_id, *span)
        self._update_buttons()

    def _update_buttons(self) -> None:
        running = self.worker is not None
        self.run_button.setEnabled(self.session is not None and not running)
        self.cancel_button.setEnabled(running)
        ok = self.session is not None and self.opinion is not None and self.target is not None
        self.adopt_button.setEnabled(ok and not running)
        self.adopt_button.setText("Adopt" if self.target is None else
                                  f"Adopt object {self.target[0]}, frames {self.target[1]}-{self.target[2]}")

    # ------------------------------------------------------------------ run
    def start(self) -> None:
        """Run a second opinion with the model in the form, on a worker."""
        from napari.qt.threading import thread_worker

        from ..engine.spec import ModelSpec
        from ..session.second_opinion import second_opinion_job

        model = self.model_edit.text().strip()
        if self.session is None or self.worker is not None:
            return
        if not model:
            self.status_label.set_text("name the second model first (a size, an id or a .pt)", error=True)
            return
        spec = ModelSpec(model=model, device=self.device_combo.currentText(),
                         image_size=self.size_spin.value() or None)
        self._cancel = threading.Event()
        try:
            job = second_opinion_job(self.session, spec, overwrite=self.overwrite_check.isChecked(),
                                     cancel=self._cancel)
            first = next(job)  # the refusals (a propagation runs, one exists) come here, at once
        except StopIteration:
            return
        except Exception as exc:  # noqa: BLE001 - shown in the box
            self.status_label.set_text(str(exc), error=True)
            self.on_error(exc)
            return
        self.status_label.set_text(first)

        def rest():
            return (yield from job)

        worker = thread_worker(rest, start_thread=False)()
        worker.yielded.connect(self._on_progress)
        worker.returned.connect(self._on_done)
        worker.errored.connect(self._on_failed)
        worker.finished.connect(self._on_finished)
        self.worker = worker
        self._update_buttons()
        worker.start()

    def cancel(self) -> None:
        if self._cancel is not None and self.worker is not None:
            self._cancel.set()
            self.status_label.set_text("cancelling…")

    def _on_progress(self, item) -> None:
        if isinstance(item, str):
            self.status_label.set_text(item)
        elif not (self._cancel and self._cancel.is_set()):
            self.status_label.set_text(f"second opinion: frame {item.frame}, {item.computed} of {item.total} "
                                       f"({item.fps:.1f} fps)")

    def _on_done(self, name: str | None) -> None:
        if self._cancel is not None and self._cancel.is_set():
            self.status_label.set_text("cancelled; no second opinion was stored")
            return
        self.opinion = name
        self.status_label.set_text(f"second opinion {name!r} stored; disagreements are flagged")
        self.show_layer()
        self.changed.emit()

    def _on_failed(self, exc: BaseException) -> None:
        self.status_label.set_text(str(exc), error=True)
        self.on_error(exc)

    def _on_finished(self) -> None:
        self.worker = None
        self._cancel = None
        try:
            self._update_buttons()
        except RuntimeError:  # the dock was closed meanwhile
            pass

    # ---------------------------------------------------------------- layer
    def layer_name(self) -> str:
        return f"{self.session.store.path.stem} second opinion"

    def show_layer(self) -> None:
        """The second opinion's masks as a read-only Labels layer (replacing an earlier one)."""
        from .._napari_io import labels_colormap
        from ..review.second_opinion import open_opinion
        from ..session import StoreLabelsArray

        if self.session is None or self.opinion is None:
            return
        store = open_opinion(self.session.store, self.opinion)
        data = StoreLabelsArray(store, read_only_reason="a second opinion is compared, not edited")
        name = self.layer_name()
        if name in self.viewer.layers:
            self.viewer.layers.remove(name)
        self.viewer.add_labels(data, name=name, opacity=0.5, colormap=labels_colormap(self.session.label_colors()),
                               metadata={"second_opinion": self.opinion})

    # ---------------------------------------------------------------- adopt
    def adopt(self) -> None:
        """Adopt the second opinion over :attr:`target` (on the session's compute thread)."""
        from ..session.second_opinion import request_adopt

        if self.session is None or self.target is None or self.opinion is None:
            return
        obj, a, b = self.target
        try:
            future = request_adopt(self.session, obj, a, b, name=self.opinion)
        except Exception as exc:  # noqa: BLE001 - shown in the box
            self.status_label.set_text(str(exc), error=True)
            self.on_error(exc)
            return
        self.status_label.set_text(f"adopting object {obj} on frames {a}-{b}…")
        done = on_gui_thread(self._on_adopted)
        future.add_done_callback(lambda f: done(f))

    def _on_adopted(self, future) -> None:
        exc = future.exception()
        if exc is not None:
            self.status_label.set_text(str(exc), error=True)
            return
        a, b = future.result()
        obj = self.target[0] if self.target else "?"
        self.status_label.set_text(f"object {obj}: frames {a}-{b} adopted (Undo in Correct restores them)")
        self.changed.emit()
