"""The "Video and project" part of the Prompt and Propagate dock: which image layer, which project."""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
import tempfile
from pathlib import Path
from typing import Any

from qtpy.QtWidgets import QComboBox, QFileDialog, QFormLayout, QGroupBox, QHBoxLayout, QLineEdit, QPushButton

from .._napari_io import META_KEY, FrameArray, VolumeArray
from ..errors import PromptError, SourceError
from ..samples import SAMPLE_FRAMES
from ..session import AnnotationSession, check_layer_shape, default_store_path
from ..session.layers import schema_for_layer
from ..session.volume import VolumeSession, is_volume_layer, volume_source_for_array
from ._hub import ProjectHub
from ._widgets import StatusLine


def layer_metadata(layer: Any) -> dict:
    meta = getattr(layer, "metadata", None)
    return meta.get(META_KEY, {}) if isinstance(meta, dict) else {}


def layer_path(layer: Any) -> Path | None:
    """The file an image layer was read from, if any."""
    path = layer_metadata(layer).get("path") or getattr(layer.source, "path", None)
    return Path(path) if path else None


def layer_is_volume(layer: Any) -> bool:
    """Whether an image layer is a ``(z, y, x)`` or ``(t, z, y, x)`` volume."""
    return is_volume_layer(layer.data.shape, layer.rgb, getattr(layer, "axis_labels", ()))


def source_for_layer(layer: Any):
    """A frame source over an image layer's data (a volume source for a volume layer);
    :class:`SourceError` for other images."""
    from napari.layers import Image

    from ..sources import open_source

    if not isinstance(layer, Image):
        raise SourceError(f"layer {getattr(layer, 'name', layer)!r} is not an image layer")
    if layer.multiscale:
        raise SourceError(f"layer {layer.name!r} is multiscale; open its full-resolution level")
    if isinstance(layer.data, VolumeArray):  # read from a file: its own geometry and path
        return layer.data.source
    if layer_is_volume(layer):
        return volume_source_for_array(layer.data, layer.scale, layer_metadata(layer).get("unit"))
    check_layer_shape(layer.data.shape, layer.rgb, layer.name)
    if isinstance(layer.data, FrameArray):
        return layer.data.source
    return open_source(layer.data, axes="tyxc" if layer.rgb else "tyx")


def _open_session(source: Any, path: Path, prepare: Callable[[AnnotationSession], Any] | None = None,
                  **options: Any) -> AnnotationSession:
    """(Worker thread.) Open the project, then ``prepare(session)`` (builds its layers, so the
    GUI thread only inserts them). A failed preparation is left to the GUI thread to redo."""
    import pandas  # noqa: F401 - the layers' features need it; imported here, not on the GUI

    session = open_session(source, path, **options)
    if prepare is not None:
        try:
            prepare(session)
        except Exception:  # noqa: BLE001 - the layers are then built on the GUI thread
            pass
    return session


def open_session(source: Any, path: Path, *, layer_scale: Any = None, lead: int | None = None,
                 **options: Any) -> AnnotationSession:
    """The session of ``source``'s project at ``path``: a :class:`VolumeSession` for a volume
    (``lead``: the layer's axes before ``(y, x)``, ``layer_scale`` its scale)."""
    from ..sources.volume import VolumeSource

    if isinstance(source, VolumeSource):
        return VolumeSession.open_volume(source, path, lead=lead, layer_scale=layer_scale, **options)
    return AnnotationSession.open(source, path, **options)


def volume_options(layer: Any) -> dict:
    """What :func:`open_session` needs of a volume layer (nothing for a video)."""
    if not layer_is_volume(layer):
        return {}
    return {"lead": layer.ndim - 2, "layer_scale": tuple(layer.scale)}


OPEN_TEXT = "Open project"
OPEN_OTHER_TEXT = "Open another project"


def is_temporary(path: Path) -> bool:
    """Whether ``path`` lies in the system's temporary folder (emptied at some point)."""
    try:
        return Path(path).resolve().is_relative_to(Path(tempfile.gettempdir()).resolve())
    except OSError:
        return False


def reopen_command(path: Path, layer: Any = None) -> str:
    """The command that opens the project at ``path`` again with its video or sample."""
    meta = layer_metadata(layer) if layer is not None else {}
    if meta.get("kind") == "sample":
        frames = int(layer.data.shape[0])
        extra = "" if frames == SAMPLE_FRAMES or layer_is_volume(layer) else f" --frames {frames}"
        return f"napari-sam2-track annotate --sample {meta.get('sample')}{extra} --project {path}"
    video = layer_path(layer) if layer is not None else None
    return f"napari-sam2-track annotate {video or 'VIDEO'} --project {path}"


def describe_location(path: Path, layer: Any = None) -> str:
    """One line: where the project is; for a temporary folder, that it is one and how to reopen it."""
    if is_temporary(path):
        return (f"In a temporary folder; reopen it with: {reopen_command(path, layer)} "
                "(copy or export it to keep it)")
    return f"project: {path}"


class ProjectBox(QGroupBox):
    """Image layer + project path -> *Open project* -> ``hub.set_session``."""

    def __init__(self, viewer: Any, hub: ProjectHub, on_error: Callable[[BaseException], Any],
                 prepare: Callable[[AnnotationSession, str], Any] | None = None):
        super().__init__("Video and project")
        self.viewer = viewer
        self.hub = hub
        self.on_error = on_error
        #: called on the opening thread with the new session and the image layer's name
        self.prepare = prepare
        #: whether the open project was opened on the worker (its layers may come in steps)
        self.opened_in_background = False
        #: the image layer of the open project
        self.image_layer = None
        #: the worker opening a project in the background, while it runs
        self.worker = None
        form = QFormLayout(self)
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
        self.open_btn = QPushButton(OPEN_TEXT)
        self.open_btn.clicked.connect(lambda: self.open_project(background=True))
        form.addRow(self.open_btn)
        #: where the open project is (and, for a temporary one, how to reopen it)
        self.location_label = StatusLine("no project open", lines=4)
        form.addRow(self.location_label)
        hub.session_changed.connect(self._show_location)
        viewer.layers.events.inserted.connect(self.refresh_image_choices)
        viewer.layers.events.removed.connect(self.refresh_image_choices)
        self.refresh_image_choices()

    def refresh_image_choices(self, *_args: Any) -> None:
        from napari.layers import Image

        current = self.image_combo.currentText()
        names = [layer.name for layer in self.viewer.layers if isinstance(layer, Image)]
        self.image_combo.blockSignals(True)
        self.image_combo.clear()
        self.image_combo.addItems(names)
        if current in names:
            self.image_combo.setCurrentText(current)
        self.image_combo.blockSignals(False)
        if current not in names:
            self._on_image_choice()

    def _on_image_choice(self, *_args: Any) -> None:
        layer = self.chosen_image()
        if layer is not None and self.hub.session is None:
            path = layer_path(layer)
            if path is not None:
                self.path_edit.setText(str(default_store_path(path)))

    def chosen_image(self):
        name = self.image_combo.currentText()
        return self.viewer.layers[name] if name in self.viewer.layers else None

    def select_image(self, name: str) -> None:
        self.image_combo.setCurrentText(name)

    def _browse_project(self) -> None:
        path = QFileDialog.getExistingDirectory(self, "Project store (.zarr)")
        if path:
            self.path_edit.setText(path)

    def open_project(
        self, path: str | Path | None = None, layer: Any = None, *, background: bool = False
    ) -> AnnotationSession | None:
        """Open (or create) the project of the chosen image layer; ``None`` if refused.

        With ``background`` (the *Open project* button), the project is created or read on a
        worker thread and the session arrives through ``hub.session_changed``; this returns
        ``None`` at once.
        """
        if self.hub.session is not None and self.hub.session.running:
            self.on_error(PromptError("cannot open another project while a propagation runs"))
            return None
        if self.worker is not None:
            self.on_error(PromptError("a project is being opened; wait for it"))
            return None
        layer = layer if layer is not None else self.chosen_image()
        if layer is None:
            self.on_error(SourceError("no image layer: open a video or a sample first"))
            return None
        try:
            source = source_for_layer(layer)
            if path is None:
                text = self.path_edit.text().strip()
                path = Path(text) if text else default_store_path(layer_path(layer), name=layer.name)
            schema = schema_for_layer(self.hub.schema, layer_metadata(layer))
            if background:
                self._open_in_background(source, Path(path), schema, layer)
                return None
            session = open_session(source, Path(path), schema=schema, model=self.hub.model,
                                   **volume_options(layer))
        except Exception as exc:  # noqa: BLE001 - shown to the user
            self.on_error(exc)
            return None
        self._opened(session, Path(path), layer)
        return session

    def _open_in_background(self, source: Any, path: Path, schema: Any, layer: Any) -> None:
        from napari.qt.threading import create_worker

        prepare = None if self.prepare is None else partial(self.prepare, name=layer.name)
        worker = create_worker(
            _open_session, source, path, prepare, schema=schema, model=self.hub.model,
            **volume_options(layer), _start_thread=False
        )
        worker.returned.connect(lambda session: self._opened(session, path, layer, background=True))
        worker.errored.connect(self.on_error)
        worker.finished.connect(self._open_finished)
        self.worker = worker
        self.open_btn.setEnabled(False)
        self.open_btn.setText("Opening project…")
        worker.start()

    def _open_finished(self) -> None:
        self.worker = None
        self.open_btn.setEnabled(True)
        self._show_location(self.hub.session)

    def _show_location(self, session: AnnotationSession | None) -> None:
        if self.worker is not None:
            return
        self.open_btn.setText(OPEN_TEXT if session is None else OPEN_OTHER_TEXT)
        if session is None:
            self.location_label.set_text("no project open")
            return
        self.location_label.set_text(describe_location(session.store.path, self.image_layer))

    def _opened(self, session: AnnotationSession, path: Path, layer: Any, background: bool = False) -> None:
        try:
            self.path_edit.setText(str(path))
        except RuntimeError:  # the dock was closed while the project opened: give the project back
            session.close()
            return
        self.image_layer = layer
        self.opened_in_background = background
        self.hub.set_session(session)
