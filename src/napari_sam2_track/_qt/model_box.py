"""The "Model" part of the Prompt and Propagate dock: which model, at which input size, on which
device; loaded on a worker, shown in use, remembered for the next time (:mod:`..settings`)."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from qtpy.QtWidgets import (
    QComboBox,
    QFileDialog,
    QFormLayout,
    QGroupBox,
    QHBoxLayout,
    QPushButton,
    QSpinBox,
)

from .. import settings
from ..engine.spec import ModelSpec
from ..errors import ModelError
from ._hub import ProjectHub
from ._widgets import StatusLine

MODEL_CHOICES = ("tiny", "small", "base-plus", "large")
DEVICE_CHOICES = ("auto", "cpu", "cuda", "mps")
NO_MODEL = "no model loaded"
#: the input size spin box's value for "the size the model's config gives"
SIZE_FROM_MODEL = 0

#: CLI wording in the engine's messages -> what to do in this dock
_DOCK_WORDS = (
    (re.compile(r"pass --model /path/to/file\.pt"), "choose a local .pt checkpoint with '…' beside Model"),
    (re.compile(r"pass the \.pt file to --model"), "choose the .pt file with '…' beside Model"),
    (re.compile(r"the path given to --model"), "the path in the Model field"),
    (re.compile(r"\(--image-size\)"), "(Input size)"),
    (re.compile(r"use --device cpu"), "choose Device cpu"),
    (re.compile(r"--model"), "the Model field"),
)


def dock_words(message: str) -> str:
    """An engine message with its command-line wording turned into the dock's."""
    for pattern, words in _DOCK_WORDS:
        message = pattern.sub(words, message)
    return message


def describe_model(model: Any) -> str:
    """``name @ size px on device`` of a loaded model."""
    return f"{model.name} @ {model.image_size} px on {model.device}"


class ModelBox(QGroupBox):
    """Model (a size, a Hugging Face id or a local ``.pt``), input size and device ->
    *Load model* (worker thread) -> ``hub.set_model``; the last loaded spec is remembered.

    A failed load leaves its one-line message (in the dock's words) until the next attempt.
    """

    def __init__(self, hub: ProjectHub, on_error: Callable[[BaseException], Any]):
        super().__init__("Model")
        self.hub = hub
        self.on_error = on_error
        self.worker = None
        #: the spec of the model in use (``None``: none loaded from this dock)
        self.spec: ModelSpec | None = None
        form = QFormLayout(self)
        self.model_combo = QComboBox()
        self.model_combo.setEditable(True)
        self.model_combo.addItems(MODEL_CHOICES)
        self.model_combo.setToolTip("tiny|small|base-plus|large (downloaded once), a Hugging Face id,\n"
                                    "or a local .pt checkpoint (use '…' to choose the file)")
        self.model_combo.setMinimumContentsLength(10)
        self.browse_btn = QPushButton("…")
        self.browse_btn.setToolTip("Choose a local .pt checkpoint")
        self.browse_btn.setMaximumWidth(30)
        self.browse_btn.clicked.connect(self._browse_checkpoint)
        row = QHBoxLayout()
        row.addWidget(self.model_combo, 1)
        row.addWidget(self.browse_btn)
        form.addRow("Model", row)
        self.size_spin = QSpinBox()
        self.size_spin.setRange(SIZE_FROM_MODEL, 4096)
        self.size_spin.setSingleStep(32)
        self.size_spin.setSpecialValueText("auto (1024)")
        self.size_spin.setSuffix(" px")
        self.size_spin.setMinimumWidth(100)
        self.size_spin.setToolTip("The input size the checkpoint was trained at (a multiple of 32):\n"
                                  "auto takes the model config's own, 1024 for SAM 2.1; fine-tuned\n"
                                  "checkpoints may need 256 or 512.")
        form.addRow("Input size", self.size_spin)
        self.device_combo = QComboBox()
        self.device_combo.addItems(DEVICE_CHOICES)
        self.device_combo.setEditable(True)
        form.addRow("Device", self.device_combo)
        self.load_model_btn = QPushButton("Load model")
        self.load_model_btn.clicked.connect(lambda: self.load_model())
        self.model_label = StatusLine(NO_MODEL)
        form.addRow(self.load_model_btn, self.model_label)
        self._show_remembered()
        hub.model_changed.connect(self._show_model)
        if hub.model is not None:
            self._show_model(hub.model)

    # ------------------------------------------------------------------ form
    def _show_remembered(self) -> None:
        spec = settings.last_model()
        if spec is None:
            return
        self.show_spec(spec)
        self._show(f"{NO_MODEL} (last used: {spec.model}; press Load model)")

    def show_spec(self, spec: ModelSpec) -> None:
        """Put ``spec``'s model, input size and device in the form."""
        self.model_combo.setCurrentText(spec.model)
        self.size_spin.setValue(int(spec.image_size or SIZE_FROM_MODEL))
        self.device_combo.setCurrentText(spec.device or "auto")

    def form_spec(self) -> ModelSpec:
        """The model the form describes."""
        size = self.size_spin.value()
        return ModelSpec(model=self.model_combo.currentText().strip() or "tiny",
                         device=self.device_combo.currentText().strip() or "auto",
                         image_size=None if size == SIZE_FROM_MODEL else size)

    def _browse_checkpoint(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self, "SAM 2 checkpoint", "", "Checkpoint (*.pt *.pth)")
        if path:
            self.model_combo.setCurrentText(path)

    # ------------------------------------------------------------------ loading
    def load_model(self, name: str | None = None, device: str | None = None,
                   image_size: int | None = None, *, spec: ModelSpec | None = None):
        """Load a model on a worker thread (the form's, unless given); returns the worker.
        The spec is remembered once the model is loaded."""
        from napari.qt.threading import create_worker

        if spec is None:
            spec = self.form_spec()
            changes = {k: v for k, v in (("model", name), ("device", device), ("image_size", image_size))
                       if v is not None}
            if changes:
                from dataclasses import replace

                spec = replace(spec, **changes)
        self.show_spec(spec)
        self.load_model_btn.setEnabled(False)
        size = f" @ {spec.image_size} px" if spec.image_size else ""
        self._show(f"loading {spec.model}{size} ({spec.device})…")
        worker = create_worker(spec.load, _start_thread=False, _ignore_errors=True)
        worker.returned.connect(lambda model, s=spec: self._loaded(s, model))
        worker.errored.connect(self._on_load_error)
        worker.finished.connect(lambda: self.load_model_btn.setEnabled(True))
        self.worker = worker
        worker.start()
        return worker

    def _loaded(self, spec: ModelSpec, model: Any) -> None:
        self.spec = spec
        self.set_model(model)
        if self.hub.model is model:
            settings.remember_model(spec)

    def set_model(self, model: Any) -> None:
        """Use an already loaded model (kept for the life of the viewer)."""
        try:
            self.hub.set_model(model)
        except Exception as exc:  # noqa: BLE001 - e.g. refused during a run
            self._on_load_error(exc)

    def _show_model(self, model: Any) -> None:
        self._show(f"in use: {describe_model(model)}")

    def _on_load_error(self, exc: BaseException) -> None:
        current = self.hub.model
        before = f"still using {current.name}" if current is not None else NO_MODEL
        message = dock_words(str(exc))
        self._show(f"{before}: {message}", error=True)
        self.on_error(ModelError(message) if isinstance(exc, ModelError) else exc)

    def _show(self, text: str, error: bool = False) -> None:
        self.model_label.set_text(text, error=error)

