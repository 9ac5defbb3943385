"""The "Model" part of the Prompt and Propagate dock: load a model on a worker, show what is in use."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from qtpy.QtWidgets import QComboBox, QFormLayout, QGroupBox, QLabel, QPushButton

from ._hub import ProjectHub

MODEL_CHOICES = ("tiny", "small", "base-plus", "large")
DEVICE_CHOICES = ("auto", "cpu", "cuda", "mps")
NO_MODEL = "no model loaded"


class ModelBox(QGroupBox):
    """Model name and device -> *Load model* (worker thread) -> ``hub.set_model``.

    A failed load leaves its one-line message in the dock until the next attempt.
    """

    def __init__(self, hub: ProjectHub, on_error: Callable[[BaseException], Any]):
        super().__init__("Model")
        self.hub = hub
        self.on_error = on_error
        self.worker = None
        form = QFormLayout(self)
        self.model_combo = QComboBox()
        self.model_combo.setEditable(True)
        self.model_combo.addItems(MODEL_CHOICES)
        self.model_combo.setToolTip("tiny|small|base-plus|large, a Hugging Face id, or a local .pt")
        form.addRow("Model", self.model_combo)
        self.device_combo = QComboBox()
        self.device_combo.addItems(DEVICE_CHOICES)
        form.addRow("Device", self.device_combo)
        self.load_model_btn = QPushButton("Load model")
        self.load_model_btn.clicked.connect(lambda: self.load_model())
        self.model_label = QLabel(NO_MODEL)
        self.model_label.setWordWrap(True)
        form.addRow(self.load_model_btn, self.model_label)
        hub.model_changed.connect(self._show_model)
        if hub.model is not None:
            self._show_model(hub.model)

    def load_model(self, name: str | None = None, device: str | None = None):
        """Load a model on a worker thread; returns the worker."""
        from napari.qt.threading import create_worker

        from ..engine.models import load_model

        name = name or self.model_combo.currentText().strip()
        device = device or self.device_combo.currentText()
        self.load_model_btn.setEnabled(False)
        self._show(f"loading {name} ({device})…")
        worker = create_worker(load_model, name, device=device, _start_thread=False, _ignore_errors=True)
        worker.returned.connect(self.set_model)
        worker.errored.connect(self._on_load_error)
        worker.finished.connect(lambda: self.load_model_btn.setEnabled(True))
        self.worker = worker
        worker.start()
        return worker

    def set_model(self, model: Any) -> None:
        """Use an already loaded model (kept for the life of the viewer)."""
        try:
            self.hub.set_model(model)
        except Exception as exc:  # noqa: BLE001 - e.g. refused during a run
            self._on_load_error(exc)

    def _show_model(self, model: Any) -> None:
        self._show(f"{model.name} on {model.device}")

    def _on_load_error(self, exc: BaseException) -> None:
        current = self.hub.model
        before = f"still using {current.name}" if current is not None else NO_MODEL
        self._show(f"{before}: {exc}", error=True)
        self.on_error(exc)

    def _show(self, text: str, error: bool = False) -> None:
        self.model_label.setText(text)
        self.model_label.setStyleSheet("color: #ff6b6b;" if error else "")
