"""The "Prompts" part of the Prompt and Propagate dock: polarity, box and mask prompts, keyframes,
and what the model is computing."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from qtpy.QtCore import Qt
from qtpy.QtWidgets import (
    QButtonGroup,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QListWidget,
    QListWidgetItem,
    QPushButton,
    QVBoxLayout,
)

from ..errors import PromptError
from ._gui_thread import SessionLink
from ._hub import ProjectHub
from ._widgets import StatusLine
from .prompt_layers import PromptLayers


class PromptsBox(QGroupBox):
    """Polarity and box buttons act on the prompt layers; *Use label mask as prompt*, the
    keyframe list, *Go to* and *Delete* call the session. A line tells which prompt the model
    is computing (the mask appears when it is ready)."""

    def __init__(self, hub: ProjectHub, layers: PromptLayers, on_error: Callable[[BaseException], Any]):
        super().__init__("Prompts")
        self.hub = hub
        self.layers = layers
        self.on_error = on_error
        self._link = SessionLink()
        self._computing: list[tuple[int, int]] = []
        vb = QVBoxLayout(self)
        row = QHBoxLayout()
        self.positive_btn = QPushButton("+ positive")
        self.negative_btn = QPushButton("− negative")
        group = QButtonGroup(self)
        for b in (self.positive_btn, self.negative_btn):
            b.setCheckable(True)
            group.addButton(b)
            row.addWidget(b)
        self.positive_btn.setChecked(True)
        self.positive_btn.clicked.connect(lambda: layers.set_polarity(True))
        self.negative_btn.clicked.connect(lambda: layers.set_polarity(False))
        layers.on_polarity = self._show_polarity
        self.box_btn = QPushButton("Box")
        self.box_btn.setToolTip("Draw a rectangle on the boxes layer")
        self.box_btn.clicked.connect(layers.start_box)
        row.addWidget(self.box_btn)
        vb.addLayout(row)
        self.mask_btn = QPushButton("Use label mask as prompt")
        self.mask_btn.setToolTip("The active object's pixels on this frame become its mask prompt")
        self.mask_btn.clicked.connect(lambda: self.use_label_mask())
        vb.addWidget(self.mask_btn)
        self.compute_label = StatusLine("")
        vb.addWidget(self.compute_label)
        vb.addWidget(QLabel("Keyframes of the active object"))
        self.keyframes_list = QListWidget()
        self.keyframes_list.itemDoubleClicked.connect(lambda item: self.goto_keyframe(item.data(Qt.UserRole)))
        self.keyframes_list.setMaximumHeight(90)
        vb.addWidget(self.keyframes_list)
        row = QHBoxLayout()
        self.goto_btn = QPushButton("Go to")
        self.goto_btn.clicked.connect(lambda: self.goto_keyframe())
        self.delete_kf_btn = QPushButton("Delete")
        self.delete_kf_btn.clicked.connect(lambda: self.delete_keyframe())
        row.addWidget(self.goto_btn)
        row.addWidget(self.delete_kf_btn)
        vb.addLayout(row)
        hub.session_changed.connect(self._attach)
        self._attach(hub.session)

    def _attach(self, session: Any) -> None:
        self._link.disconnect_all()
        self._computing.clear()
        self.compute_label.setText("")
        if session is not None:
            ev = session.events
            self._link.connect(ev.keyframes_changed, lambda _obj: self.refresh_keyframes())
            self._link.connect(ev.active_object_changed, lambda _obj: self.refresh_keyframes())
            self._link.connect(ev.prompt_started, self._on_prompt_started)
            self._link.connect(ev.prompt_finished, self._on_prompt_finished)
        self.refresh_keyframes()

    # ------------------------------------------------------------------ polarity
    @property
    def positive(self) -> bool:
        return self.layers.positive

    def _show_polarity(self, positive: bool) -> None:
        (self.positive_btn if positive else self.negative_btn).setChecked(True)

    # ------------------------------------------------------------- model status
    def _on_prompt_started(self, obj_id: int, frame: int) -> None:
        self._computing.append((obj_id, frame))
        self.compute_label.setText(f"computing the mask of object {obj_id} on frame {frame}…")

    def _on_prompt_finished(self, obj_id: int, frame: int) -> None:
        if (obj_id, frame) in self._computing:
            self._computing.remove((obj_id, frame))
        if not self._computing:
            self.compute_label.setText("")

    # ---------------------------------------------------------------- mask prompt
    def use_label_mask(self, frame: int | None = None) -> None:
        """Use the active object's pixels on the Labels layer (this frame) as its prompt."""
        session = self.hub.session
        try:
            if session is None or self.layers.labels_data is None:
                raise PromptError("no project open: choose the image layer and press 'Open project'")
            frame = self.layers.frame() if frame is None else frame
            self.layers.flush_edits()
            session.request_label_mask_prompt(frame, labels2d=self.layers.labels_data.frame(frame))
        except Exception as exc:  # noqa: BLE001 - shown to the user
            self.on_error(exc)

    # ------------------------------------------------------------------ keyframes
    def refresh_keyframes(self) -> None:
        self.keyframes_list.clear()
        session = self.hub.session
        if session is None or session.active_id is None:
            return
        for frame in session.keyframes(session.active_id):
            item = QListWidgetItem(f"frame {frame}")
            item.setData(Qt.UserRole, frame)
            self.keyframes_list.addItem(item)

    def _selected_keyframe(self) -> int | None:
        item = self.keyframes_list.currentItem()
        return None if item is None else item.data(Qt.UserRole)

    def goto_keyframe(self, frame: int | None = None) -> None:
        frame = self._selected_keyframe() if frame is None else frame
        if frame is not None and self.hub.session is not None:
            self.hub.session.go_to_frame(frame)

    def delete_keyframe(self, frame: int | None = None, obj_id: int | None = None) -> None:
        """Delete the active object's prompt on a keyframe (the selected one by default)."""
        frame = self._selected_keyframe() if frame is None else frame
        session = self.hub.session
        if session is None or frame is None:
            return
        try:
            session.delete_keyframe(session.active_id if obj_id is None else obj_id, frame)
        except Exception as exc:  # noqa: BLE001
            self.on_error(exc)
