"""Prompt & Propagate dock: objects, keyframe prompts, model, propagation and edits.

Every button calls a named method, so scripts and tests can drive the dock directly. The state
lives in :class:`~napari_sam2_track.session.AnnotationSession`; this module only maps napari
layers and events onto it.
"""

from __future__ import annotations

import threading
import time
from pathlib import Path

import numpy as np
from qtpy.QtCore import QObject, Qt, QTimer, Signal
from qtpy.QtWidgets import (
    QButtonGroup,
    QCheckBox,
    QComboBox,
    QFileDialog,
    QFormLayout,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QListWidget,
    QListWidgetItem,
    QPushButton,
    QSpinBox,
    QVBoxLayout,
    QWidget,
)

from .._napari_io import META_KEY, FrameArray, labels_colormap
from ..errors import PromptError, SourceError
from ..session import AnnotationSession, check_layer_shape, default_store_path
from ._hub import hub_for, report

POSITIVE_COLOR = "lime"
NEGATIVE_COLOR = "red"
MODEL_CHOICES = ("tiny", "small", "base-plus", "large")
DEVICE_CHOICES = ("auto", "cpu", "cuda", "mps")

SHORTCUTS = """\
Prompting (on the clicks layer, in 'add' mode):
  click              positive click (or negative, when the mode is '− negative')
  Alt+click / Ctrl+click   negative click
  N                  toggle positive / negative mode
Boxes: draw a rectangle on the boxes layer.
Labels: paint or erase with napari's tools; edits are saved and the frames marked 'edited'.
  K / Shift+K        jump to the next / previous keyframe of the active object
  Delete a click: select it (clicks layer, select mode) and press Backspace/Delete."""


def _fmt_eta(seconds: float) -> str:
    if not np.isfinite(seconds):
        return "--:--"
    seconds = int(seconds)
    return f"{seconds // 60:02d}:{seconds % 60:02d}" if seconds < 3600 else f"{seconds // 3600}h{seconds % 3600 // 60:02d}"


class _ProgressRelay(QObject):
    """Carries progress from the worker thread to the GUI thread (queued signal)."""

    progress = Signal(object)


class PromptWidget(QWidget):
    """Choose the video and project, manage objects, prompt keyframes and propagate."""

    def __init__(self, napari_viewer):
        super().__init__()
        self.viewer = napari_viewer
        self.hub = hub_for(napari_viewer)
        self.session: AnnotationSession | None = None
        self.image_layer = None
        self.labels_layer = None
        self.points_layer = None
        self.shapes_layer = None
        self.labels_data = None
        self.positive = True
        self._syncing = False
        self._worker = None
        self._model_worker = None
        self._cancel: threading.Event | None = None
        self._pbar = None
        self._last_refresh = 0.0
        self.last_error: str | None = None
        self.setToolTip("Prompt keyframes and propagate with SAM 2.\n\n" + SHORTCUTS)
        self._build()
        self._edit_timer = QTimer(self)
        self._edit_timer.setSingleShot(True)
        self._edit_timer.setInterval(300)
        self._edit_timer.timeout.connect(self.flush_edits)
        self.viewer.layers.events.inserted.connect(self._refresh_image_choices)
        self.viewer.layers.events.removed.connect(self._refresh_image_choices)
        self.viewer.layers.events.removed.connect(self._on_layer_removed)
        self.hub.objects_changed.connect(self._on_objects_changed)
        # Closing the viewer during a run: stop the worker within one frame.
        cancel_holder = self._cancel_holder = {"event": None}
        self.destroyed.connect(lambda *_: cancel_holder["event"] and cancel_holder["event"].set())
        self._refresh_image_choices()
        if self.hub.model is not None:
            self._show_model(self.hub.model)

    # ======================================================================== UI
    def _build(self) -> None:
        layout = QVBoxLayout(self)

        box = QGroupBox("Video and project")
        form = QFormLayout(box)
        self.image_combo = QComboBox()
        self.image_combo.currentIndexChanged.connect(self._on_image_choice)
        form.addRow("Image layer", self.image_combo)
        row = QHBoxLayout()
        self.path_edit = QLineEdit()
        self.path_edit.setPlaceholderText("<video stem>.zarr beside the video")
        browse = QPushButton("…")
        browse.setMaximumWidth(30)
        browse.clicked.connect(self._browse_project)
        row.addWidget(self.path_edit)
        row.addWidget(browse)
        form.addRow("Project", row)
        self.open_btn = QPushButton("Open project")
        self.open_btn.clicked.connect(lambda: self.open_project())
        form.addRow(self.open_btn)
        layout.addWidget(box)

        box = QGroupBox("Model")
        form = QFormLayout(box)
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
        self.model_label = QLabel("no model loaded")
        form.addRow(self.load_model_btn, self.model_label)
        layout.addWidget(box)

        box = QGroupBox("Objects")
        vb = QVBoxLayout(box)
        self.objects_list = QListWidget()
        self.objects_list.currentItemChanged.connect(self._on_object_selected)
        vb.addWidget(self.objects_list)
        row = QHBoxLayout()
        self.add_object_btn = QPushButton("Add")
        self.add_object_btn.clicked.connect(lambda: self.add_object())
        self.remove_object_btn = QPushButton("Remove")
        self.remove_object_btn.clicked.connect(lambda: self.remove_object())
        row.addWidget(self.add_object_btn)
        row.addWidget(self.remove_object_btn)
        vb.addLayout(row)
        form = QFormLayout()
        self.name_edit = QLineEdit()
        self.name_edit.editingFinished.connect(lambda: self.rename_object(self.name_edit.text()))
        form.addRow("Name", self.name_edit)
        self.category_combo = QComboBox()
        self.category_combo.activated.connect(
            lambda _i: self.set_category(self.category_combo.currentText())
        )
        form.addRow("Category", self.category_combo)
        vb.addLayout(form)
        layout.addWidget(box)

        box = QGroupBox("Prompts")
        vb = QVBoxLayout(box)
        row = QHBoxLayout()
        self.positive_btn = QPushButton("+ positive")
        self.negative_btn = QPushButton("− negative")
        group = QButtonGroup(self)
        for b in (self.positive_btn, self.negative_btn):
            b.setCheckable(True)
            group.addButton(b)
            row.addWidget(b)
        self.positive_btn.setChecked(True)
        self.positive_btn.clicked.connect(lambda: self.set_polarity(True))
        self.negative_btn.clicked.connect(lambda: self.set_polarity(False))
        self.box_btn = QPushButton("Box")
        self.box_btn.setToolTip("Draw a rectangle on the boxes layer")
        self.box_btn.clicked.connect(lambda: self.start_box())
        row.addWidget(self.box_btn)
        vb.addLayout(row)
        self.mask_btn = QPushButton("Use label mask as prompt")
        self.mask_btn.setToolTip("The active object's pixels on this frame become its mask prompt")
        self.mask_btn.clicked.connect(lambda: self.use_label_mask())
        vb.addWidget(self.mask_btn)
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
        layout.addWidget(box)

        box = QGroupBox("Propagate")
        form = QFormLayout(box)
        self.direction_combo = QComboBox()
        self.direction_combo.addItems(["both", "forward", "backward"])
        form.addRow("Direction", self.direction_combo)
        self.whole_check = QCheckBox("whole video")
        self.whole_check.setChecked(True)
        self.start_spin = QSpinBox()
        self.end_spin = QSpinBox()
        for s in (self.start_spin, self.end_spin):
            s.setEnabled(False)
        self.whole_check.toggled.connect(lambda on: [s.setEnabled(not on) for s in (self.start_spin, self.end_spin)])
        row = QHBoxLayout()
        row.addWidget(self.whole_check)
        row.addWidget(QLabel("from"))
        row.addWidget(self.start_spin)
        row.addWidget(QLabel("to"))
        row.addWidget(self.end_spin)
        form.addRow("Frames", row)
        row = QHBoxLayout()
        self.propagate_btn = QPushButton("Propagate")
        self.propagate_btn.clicked.connect(lambda: self.propagate())
        self.cancel_btn = QPushButton("Cancel")
        self.cancel_btn.setEnabled(False)
        self.cancel_btn.clicked.connect(lambda: self.cancel())
        row.addWidget(self.propagate_btn)
        row.addWidget(self.cancel_btn)
        form.addRow(row)
        self.status_label = QLabel("")
        self.status_label.setWordWrap(True)
        form.addRow(self.status_label)
        layout.addWidget(box)
        layout.addStretch(1)

    def _error(self, exc: BaseException) -> None:
        self.last_error = str(exc)
        report(exc)

    # ============================================================ video / project
    def _image_layers(self):
        from napari.layers import Image

        return [lay for lay in self.viewer.layers if isinstance(lay, Image)]

    def _refresh_image_choices(self, *_args) -> None:
        current = self.image_combo.currentText()
        self.image_combo.blockSignals(True)
        self.image_combo.clear()
        names = [lay.name for lay in self._image_layers()]
        self.image_combo.addItems(names)
        if current in names:
            self.image_combo.setCurrentText(current)
        self.image_combo.blockSignals(False)
        if current not in names:
            self._on_image_choice()

    def _on_image_choice(self, *_args) -> None:
        layer = self._chosen_image()
        if layer is not None and self.session is None:
            path = self._layer_path(layer)
            if path is not None:
                self.path_edit.setText(str(default_store_path(path)))

    def _chosen_image(self):
        name = self.image_combo.currentText()
        return self.viewer.layers[name] if name in self.viewer.layers else None

    @staticmethod
    def _layer_path(layer):
        meta = layer.metadata.get(META_KEY, {}) if isinstance(layer.metadata, dict) else {}
        path = meta.get("path") or getattr(layer.source, "path", None)
        return Path(path) if path else None

    def _browse_project(self) -> None:
        path = QFileDialog.getExistingDirectory(self, "Project store (.zarr)")
        if path:
            self.path_edit.setText(path)

    def select_image(self, name: str) -> None:
        self.image_combo.setCurrentText(name)

    def source_for_layer(self, layer):
        """A frame source over an image layer's data; :class:`SourceError` for non-videos."""
        from napari.layers import Image

        from ..sources import open_source

        if not isinstance(layer, Image):
            raise SourceError(f"layer {getattr(layer, 'name', layer)!r} is not an image layer")
        if layer.multiscale:
            raise SourceError(f"layer {layer.name!r} is multiscale; open its full-resolution level")
        check_layer_shape(layer.data.shape, layer.rgb, layer.name)
        if isinstance(layer.data, FrameArray):
            return layer.data.source
        return open_source(layer.data, axes="tyxc" if layer.rgb else "tyx")

    def open_project(self, path: str | Path | None = None, layer=None) -> AnnotationSession | None:
        """Open (or create) the project of the chosen image layer and add the prompt layers."""
        if self.session is not None and self.session.running:
            self._error(PromptError("cannot open another project while a propagation runs"))
            return None
        layer = layer if layer is not None else self._chosen_image()
        if layer is None:
            self._error(SourceError("no image layer: open a video or a sample first"))
            return None
        try:
            source = self.source_for_layer(layer)
            if path is None:
                text = self.path_edit.text().strip()
                path = Path(text) if text else default_store_path(self._layer_path(layer), name=layer.name)
            schema = self.hub.schema
            meta = layer.metadata.get(META_KEY, {}) if isinstance(layer.metadata, dict) else {}
            if meta.get("schema") and schema.model_dump() == type(schema).default().model_dump():
                schema = type(schema).model_validate(meta["schema"])
            session = AnnotationSession.open(source, path, schema=schema, model=self.hub.model)
        except Exception as exc:  # noqa: BLE001
            self._error(exc)
            return None
        self.path_edit.setText(str(path))
        self.image_layer = layer
        if self.session is not None and self.session is not session:
            self.flush_edits()
            self.session.close()
        self.session = session
        self._attach_layers(layer.name)
        self.hub.set_session(session)
        n = len(session.source)
        for s in (self.start_spin, self.end_spin):
            s.setRange(0, n - 1)
        self.end_spin.setValue(n - 1)
        self._refresh_objects()
        self.status_label.setText(f"project {session.store.path}")
        return session

    def _attach_layers(self, name: str) -> None:
        import pandas as pd

        session = self.session
        for lay in (self.labels_layer, self.points_layer, self.shapes_layer):
            if lay is not None and lay in self.viewer.layers:
                self.viewer.layers.remove(lay)
        self.labels_data = session.labels_array()
        self.labels_data.on_dirty = self._edit_timer.start  # undo/redo and scripted writes
        self.labels_layer = self.viewer.add_labels(
            self.labels_data,
            name=f"{name} labels",
            opacity=0.6,
            colormap=labels_colormap(session.label_colors()),
            metadata={META_KEY: {"kind": "project", "path": str(session.store.path)}},
        )
        self.labels_layer.events.paint.connect(self._on_paint)
        self.labels_layer.events.labels_update.connect(lambda *_: self._edit_timer.start())

        self.shapes_layer = self.viewer.add_shapes(
            ndim=3,
            name=f"{name} boxes",
            features=pd.DataFrame({"object": pd.Series([], dtype=int)}),
            edge_color="yellow",
            face_color="transparent",
            edge_width=2,
        )
        for (obj, frame), box in sorted(session._boxes.items()):
            self._add_box_shape(obj, frame, box)
        self.shapes_layer.events.data.connect(self._on_shapes_changed)

        clicks = [(o, f, c) for (o, f), cs in sorted(session._clicks.items()) for c in cs]
        self.points_layer = self.viewer.add_points(
            np.array([[f, c[1], c[0]] for o, f, c in clicks], dtype=float).reshape(-1, 3),
            ndim=3,
            name=f"{name} clicks",
            features=pd.DataFrame(
                {
                    "positive": pd.Series([bool(c[2]) for _, _, c in clicks], dtype=bool),
                    "object": pd.Series([o for o, _, _ in clicks], dtype=int),
                }
            ),
            face_color="positive",
            face_color_cycle={True: POSITIVE_COLOR, False: NEGATIVE_COLOR},
            border_color="white",
            size=max(4, min(session.source.height, session.source.width) // 40),
        )
        self.points_layer.mouse_drag_callbacks.insert(0, self._on_points_press)
        self.points_layer.events.data.connect(self._on_points_changed)
        for lay in (self.points_layer, self.shapes_layer, self.labels_layer):
            lay.bind_key("n", lambda _layer: self.toggle_polarity(), overwrite=True)
            lay.bind_key("k", lambda _layer: self.next_keyframe(+1), overwrite=True)
            lay.bind_key("Shift-k", lambda _layer: self.next_keyframe(-1), overwrite=True)
        self._update_feature_defaults()
        self.viewer.layers.selection.active = self.points_layer
        self.points_layer.mode = "add"

    def _add_box_shape(self, obj: int, frame: int, box) -> None:
        x0, y0, x1, y1 = box
        rect = np.array([[frame, y0, x0], [frame, y0, x1], [frame, y1, x1], [frame, y1, x0]], float)
        self._syncing = True
        try:
            self.shapes_layer.feature_defaults = {"object": obj}
            self.shapes_layer.add_rectangles(rect)
        finally:
            self._syncing = False

    def _on_layer_removed(self, event) -> None:
        layer = event.value
        if layer is self.labels_layer:
            self.labels_layer = None
        elif layer is self.points_layer:
            self.points_layer = None
        elif layer is self.shapes_layer:
            self.shapes_layer = None

    # ======================================================================= model
    def set_model(self, model) -> None:
        """Use an already loaded model (kept for the life of the viewer)."""
        self.hub.model = model
        if self.session is not None:
            try:
                self.session.set_model(model)
            except Exception as exc:  # noqa: BLE001
                self._error(exc)
                return
        self._show_model(model)

    def _show_model(self, model) -> None:
        self.model_label.setText(f"{model.name} on {model.device}")

    def load_model(self, name: str | None = None, device: str | None = None):
        """Load the chosen model on a worker thread; errors (e.g. missing weights) are shown."""
        from napari.qt.threading import create_worker

        name = name or self.model_combo.currentText().strip()
        device = device or self.device_combo.currentText()

        def _load():
            from ..engine.models import load_model

            return load_model(name, device=device)

        self.load_model_btn.setEnabled(False)
        self.model_label.setText(f"loading {name}…")
        worker = create_worker(_load, _start_thread=False, _ignore_errors=True)
        worker.returned.connect(self.set_model)
        worker.errored.connect(self._on_model_error)
        worker.finished.connect(lambda: self.load_model_btn.setEnabled(True))
        self._model_worker = worker
        worker.start()
        return worker

    def _on_model_error(self, exc) -> None:
        self.model_label.setText("no model loaded")
        self._error(exc)

    # ===================================================================== objects
    def _refresh_objects(self) -> None:
        self.objects_list.blockSignals(True)
        self.objects_list.clear()
        session = self.session
        colors = session.label_colors() if session else {}
        from qtpy.QtGui import QColor

        for obj in session.objects if session else []:
            item = QListWidgetItem(f"{obj.id}  {obj.name}  [{obj.category}]")
            item.setData(Qt.UserRole, obj.id)
            item.setForeground(QColor(colors.get(obj.id, "#ffffff")))
            self.objects_list.addItem(item)
            if obj.id == session.active_id:
                self.objects_list.setCurrentItem(item)
        self.objects_list.blockSignals(False)
        self.category_combo.clear()
        if session is not None:
            self.category_combo.addItems(session.schema.category_names())
            if session.active_id is not None:
                obj = session.object(session.active_id)
                self.name_edit.setText(obj.name)
                self.category_combo.setCurrentText(obj.category or "")
            if self.labels_layer is not None:
                self.labels_layer.colormap = labels_colormap(colors)
        self._update_feature_defaults()
        self.refresh_keyframes()

    def _on_objects_changed(self) -> None:
        if self.session is not None:
            self._refresh_objects()

    def _require_session(self) -> AnnotationSession:
        if self.session is None:
            raise PromptError("no project open: choose the image layer and press 'Open project'")
        return self.session

    def add_object(self, name: str = "", category: str | None = None):
        try:
            obj = self._require_session().add_object(name, category)
        except Exception as exc:  # noqa: BLE001
            self._error(exc)
            return None
        self._refresh_objects()
        return obj

    def remove_object(self, obj_id: int | None = None) -> None:
        try:
            session = self._require_session()
            obj_id = session.active_id if obj_id is None else obj_id
            if obj_id is None:
                return
            session.remove_object(obj_id)
        except Exception as exc:  # noqa: BLE001
            self._error(exc)
            return
        self._remove_layer_prompts(obj_id)
        self._refresh_objects()
        self.refresh_labels()

    def _remove_layer_prompts(self, obj_id: int, frame: int | None = None) -> None:
        self._syncing = True
        try:
            for layer in (self.points_layer, self.shapes_layer):
                if layer is None or not len(layer.data):
                    continue
                objs = layer.features["object"].to_numpy()
                keep = objs != obj_id
                if frame is not None:
                    frames = np.array([int(round(np.asarray(d).reshape(-1, 3)[0, 0])) for d in layer.data])
                    keep |= frames != frame
                if not keep.all():
                    layer.selected_data = set(np.flatnonzero(~keep).tolist())
                    layer.remove_selected()
        finally:
            self._syncing = False

    def rename_object(self, name: str) -> None:
        session = self.session
        if session is None or session.active_id is None or not name.strip():
            return
        try:
            session.rename_object(session.active_id, name.strip())
        except Exception as exc:  # noqa: BLE001
            self._error(exc)
        self._refresh_objects()

    def set_category(self, category: str, obj_id: int | None = None) -> None:
        session = self.session
        if session is None:
            return
        obj_id = session.active_id if obj_id is None else obj_id
        if obj_id is None:
            return
        try:
            session.set_category(obj_id, category)
        except Exception as exc:  # noqa: BLE001
            self._error(exc)
        self._refresh_objects()

    def select_object(self, obj_id: int) -> None:
        """Make ``obj_id`` the active object (the target of new clicks and boxes)."""
        try:
            self._require_session().set_active(obj_id)
        except Exception as exc:  # noqa: BLE001
            self._error(exc)
            return
        self._refresh_objects()

    def _on_object_selected(self, item, _previous=None) -> None:
        if item is not None and self.session is not None:
            self.select_object(item.data(Qt.UserRole))

    def _update_feature_defaults(self) -> None:
        active = self.session.active_id if self.session is not None else None
        obj = active or 0
        if self.points_layer is not None:
            self.points_layer.feature_defaults = {"positive": self.positive, "object": obj}
        if self.shapes_layer is not None:
            self.shapes_layer.feature_defaults = {"object": obj}

    # ===================================================================== prompts
    def set_polarity(self, positive: bool) -> None:
        """Positive or negative clicks from now on (the visible mode toggle)."""
        self.positive = bool(positive)
        (self.positive_btn if positive else self.negative_btn).setChecked(True)
        self._update_feature_defaults()

    def toggle_polarity(self) -> None:
        self.set_polarity(not self.positive)

    def _on_points_press(self, layer, event) -> None:
        """Runs before napari adds the point: Alt/Ctrl+click makes a negative click."""
        mods = {str(getattr(m, "name", m)).lower() for m in event.modifiers}
        negative = bool(mods & {"alt", "control", "ctrl", "meta"})
        obj = self.session.active_id if self.session is not None else 0
        layer.feature_defaults = {"positive": self.positive and not negative, "object": obj or 0}

    def _frame(self) -> int:
        return int(self.viewer.dims.current_step[0])

    def _layer_clicks(self) -> dict[tuple[int, int], list[tuple[float, float, int]]]:
        out: dict[tuple[int, int], list] = {}
        layer = self.points_layer
        if layer is None or not len(layer.data):
            return out
        feats = layer.features
        for row, pos, obj in zip(layer.data, feats["positive"], feats["object"]):
            t, y, x = (float(v) for v in row)
            out.setdefault((int(obj), int(round(t))), []).append((x, y, int(bool(pos))))
        return out

    def _on_points_changed(self, event) -> None:
        action = str(getattr(event, "action", ""))
        if self._syncing or action.lower().endswith(("adding", "removing", "changing")):
            return
        self.sync_points()

    def sync_points(self) -> None:
        """Apply the clicks layer to the session: changed (object, frame) prompts are re-run."""
        session = self.session
        if session is None or self.points_layer is None:
            return
        wanted = self._layer_clicks()
        known = {k: v for k, v in session._clicks.items() if v}
        bad = []
        for key in sorted(set(wanted) | set(known)):
            new, old = wanted.get(key, []), known.get(key, [])
            if new == old:
                continue
            obj, frame = key
            try:
                if obj not in session.store.object_ids():
                    if not session.objects:
                        raise PromptError("no object yet: press 'Add' in the Objects list first")
                    raise PromptError(f"object {obj} does not exist; select an object first")
                session.set_prompt(frame, new, session.box(obj, frame), obj_id=obj)
            except Exception as exc:  # noqa: BLE001
                self._error(exc)
                bad.append((key, old))
        if bad:
            self._restore_clicks(bad)
        self.refresh_labels()
        self.refresh_keyframes()

    def _restore_clicks(self, bad) -> None:
        """Put the clicks layer back to the session's clicks for rejected prompts."""
        layer = self.points_layer
        self._syncing = True
        try:
            for (obj, frame), old in bad:
                rows = [
                    i
                    for i, (row, o) in enumerate(zip(layer.data, layer.features["object"]))
                    if int(o) == obj and int(round(row[0])) == frame
                ]
                if rows:
                    layer.selected_data = set(rows)
                    layer.remove_selected()
                for x, y, v in old:
                    layer.feature_defaults = {"positive": bool(v), "object": obj}
                    layer.add([frame, y, x])
        finally:
            self._syncing = False
            self._update_feature_defaults()

    def add_click(self, x: float, y: float, positive: bool | None = None, frame: int | None = None) -> None:
        """Add a click at pixel ``(x, y)`` of the current frame, as a user would on the layer."""
        if self.points_layer is None:
            self._error(PromptError("no project open: press 'Open project' first"))
            return
        frame = self._frame() if frame is None else frame
        positive = self.positive if positive is None else positive
        obj = self.session.active_id or 0
        self.points_layer.feature_defaults = {"positive": positive, "object": obj}
        self.points_layer.add([frame, y, x])
        self._update_feature_defaults()

    def start_box(self) -> None:
        """Select the boxes layer in rectangle mode."""
        if self.shapes_layer is not None:
            self.viewer.layers.selection.active = self.shapes_layer
            self.shapes_layer.mode = "add_rectangle"

    def add_box(self, x0: float, y0: float, x1: float, y1: float, frame: int | None = None) -> None:
        """Draw a box on the current frame, as a user would on the boxes layer."""
        if self.shapes_layer is None:
            self._error(PromptError("no project open: press 'Open project' first"))
            return
        frame = self._frame() if frame is None else frame
        obj = self.session.active_id or 0
        rect = np.array([[frame, y0, x0], [frame, y0, x1], [frame, y1, x1], [frame, y1, x0]], float)
        self.shapes_layer.feature_defaults = {"object": obj}
        self.shapes_layer.add_rectangles(rect)

    def _on_shapes_changed(self, event) -> None:
        action = str(getattr(event, "action", ""))
        if self._syncing or action.lower().endswith(("adding", "removing", "changing")):
            return
        self.sync_boxes()

    def sync_boxes(self) -> None:
        """Apply the boxes layer: the last rectangle of an object on a frame is its box."""
        session = self.session
        layer = self.shapes_layer
        if session is None or layer is None:
            return
        wanted: dict[tuple[int, int], tuple] = {}
        rows: dict[tuple[int, int], list[int]] = {}
        for i, (data, obj) in enumerate(zip(layer.data, layer.features["object"])):
            d = np.asarray(data).reshape(-1, 3)
            frame = int(round(d[0, 0]))
            y0, x0 = d[:, 1].min(), d[:, 2].min()
            y1, x1 = d[:, 1].max(), d[:, 2].max()
            wanted[(int(obj), frame)] = (float(x0), float(y0), float(x1), float(y1))
            rows.setdefault((int(obj), frame), []).append(i)
        bad_rows = []
        for key in sorted(set(wanted) | set(session._boxes)):
            new, old = wanted.get(key), session._boxes.get(key)
            if new == old:
                continue
            obj, frame = key
            try:
                if obj not in session.store.object_ids():
                    raise PromptError("no object selected: add or select an object first")
                session.set_prompt(frame, session.clicks(obj, frame), new, obj_id=obj)
            except Exception as exc:  # noqa: BLE001
                self._error(exc)
                bad_rows.extend(rows.get(key, [])[-1:])
        # one box per object and frame: a new rectangle replaces the earlier one
        bad_rows.extend(i for key, idx in rows.items() for i in idx[:-1])
        if bad_rows:
            self._syncing = True
            try:
                layer.selected_data = set(bad_rows)
                layer.remove_selected()
            finally:
                self._syncing = False
        self.refresh_labels()
        self.refresh_keyframes()

    def use_label_mask(self, frame: int | None = None) -> None:
        """Use the active object's pixels on the Labels layer (this frame) as its prompt."""
        try:
            session = self._require_session()
            frame = self._frame() if frame is None else frame
            self.flush_edits()
            labels2d = self.labels_data.frame(frame) if self.labels_data is not None else None
            session.use_label_mask_as_prompt(frame, labels2d=labels2d)
        except Exception as exc:  # noqa: BLE001
            self._error(exc)
            return
        self._remove_layer_prompts(session.active_id, frame)
        self.refresh_labels()
        self.refresh_keyframes()

    # =================================================================== keyframes
    def refresh_keyframes(self) -> None:
        self.keyframes_list.clear()
        session = self.session
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
        if frame is not None:
            self.viewer.dims.set_current_step(0, frame)

    def next_keyframe(self, step: int = 1) -> None:
        if self.session is None or self.session.active_id is None:
            return
        frames = self.session.keyframes(self.session.active_id)
        now = self._frame()
        after = [f for f in frames if (f > now if step > 0 else f < now)]
        if after:
            self.goto_keyframe(after[0] if step > 0 else after[-1])

    def delete_keyframe(self, frame: int | None = None, obj_id: int | None = None) -> None:
        """Delete the active object's prompt on a keyframe (the selected one by default)."""
        frame = self._selected_keyframe() if frame is None else frame
        session = self.session
        if session is None or frame is None:
            return
        obj_id = session.active_id if obj_id is None else obj_id
        try:
            session.delete_keyframe(obj_id, frame)
        except Exception as exc:  # noqa: BLE001
            self._error(exc)
            return
        self._remove_layer_prompts(obj_id, frame)
        self.refresh_keyframes()

    # ================================================================ propagation
    @property
    def running(self) -> bool:
        return self._worker is not None

    def propagate(self, direction: str | None = None, start: int | None = None, end: int | None = None):
        """Propagate on a worker thread; returns the worker (``None`` if refused)."""
        from napari.qt.threading import create_worker
        from napari.utils import progress

        if self._worker is not None:
            self._error(PromptError("a propagation is already running; wait for it or press Cancel"))
            return None
        direction = direction or self.direction_combo.currentText()
        if start is None and end is None and not self.whole_check.isChecked():
            start, end = self.start_spin.value(), self.end_spin.value()
        try:
            session = self._require_session()
            self.flush_edits()
            cancel = threading.Event()
            gen = session.propagate_iter(direction, start, end, cancel=cancel)
        except Exception as exc:  # noqa: BLE001
            self._error(exc)
            return None
        try:
            return self._start_run(gen, cancel, direction)
        except BaseException:
            gen.close()  # frees the session
            raise

    def _start_run(self, gen, cancel: threading.Event, direction: str):
        from napari.qt.threading import create_worker
        from napari.utils import progress

        relay = _ProgressRelay()
        relay.progress.connect(self._on_progress)
        holder: dict = {}

        def _run():
            # A plain function worker: napari's quit() on viewer close must not leave the
            # generator suspended with the project half-closed; it cancels instead.
            try:
                for p in gen:
                    relay.progress.emit(p)
                    worker = holder.get("worker")
                    if worker is not None and worker.abort_requested:
                        cancel.set()
            finally:
                gen.close()

        self._cancel = cancel
        self._cancel_holder["event"] = cancel
        if self.labels_layer is not None:
            self.labels_layer.editable = False
        self.propagate_btn.setEnabled(False)
        self.cancel_btn.setEnabled(True)
        self._pbar = progress(total=0, desc=f"SAM 2 propagation ({direction})")
        worker = create_worker(_run, _start_thread=False, _ignore_errors=True)
        holder["worker"] = worker
        self._relay = relay
        worker.errored.connect(self._on_run_error)
        worker.finished.connect(self._on_run_finished)
        self._worker = worker
        self.status_label.setText("propagating…")
        worker.start()
        return worker

    def _on_progress(self, p) -> None:
        if self._pbar is not None:
            if not self._pbar.total:
                self._pbar.total = p.total
            self._pbar.update(1)
            self._pbar.set_description(
                f"SAM 2 propagation: frame {p.frame}, {p.fps:.1f} fps, ETA {_fmt_eta(p.eta)}"
            )
        self.status_label.setText(
            f"frame {p.frame}: {p.computed}/{p.total}, {p.fps:.1f} fps, ETA {_fmt_eta(p.eta)}"
        )
        now = time.perf_counter()
        if now - self._last_refresh > 0.1 or p.computed == p.total:
            self._last_refresh = now
            self.refresh_labels()

    def _on_run_error(self, exc) -> None:
        self._error(exc)

    def _on_run_finished(self) -> None:
        self._worker = None
        self._cancel_holder["event"] = None
        if self._pbar is not None:
            self._pbar.close()
            self._pbar = None
        self.propagate_btn.setEnabled(True)
        self.cancel_btn.setEnabled(False)
        if self.labels_layer is not None:
            self.labels_layer.editable = True
        cancelled = self._cancel is not None and self._cancel.is_set()
        self._cancel = None
        self.refresh_labels()
        if self.session is not None:
            runs = self.session.store.meta.get("runs", [])
            status = runs[-1]["status"] if runs else "done"
            self.status_label.setText(f"propagation {'cancelled' if cancelled else status}")

    def cancel(self) -> None:
        """Stop the running propagation after the current frame; written frames stay."""
        if self._cancel is not None:
            self._cancel.set()
            self.status_label.setText("cancelling…")

    # ======================================================================= edits
    def _on_paint(self, _event=None) -> None:
        # napari emits ``paint`` just before it writes the stroke's last pixels: save right after
        QTimer.singleShot(0, self.flush_edits)

    def flush_edits(self) -> None:
        """Save painted/erased frames to the project (marked ``edited``)."""
        if self.labels_data is None or not self.labels_data.dirty_frames:
            return
        if self.session is not None and self.session.running:
            return  # the layer is read-only during a run; nothing to save
        try:
            self.labels_data.flush()
        except Exception as exc:  # noqa: BLE001
            self._error(exc)
        self._refresh_objects()

    def refresh_labels(self) -> None:
        if self.labels_layer is not None:
            self.labels_layer.refresh()
