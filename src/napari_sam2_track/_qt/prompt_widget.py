"""Prompt and Propagate dock: the video and project, the model, objects, prompts and propagation.

The dock is six boxes over one :class:`~napari_sam2_track.session.AnnotationSession` (shared
through the viewer's hub) and the project's layers:

========================  ========================================================
box                       calls
========================  ========================================================
Video and project         ``AnnotationSession.open`` -> ``hub.set_session``
Model                     ``load_model`` on a worker -> ``hub.set_model``
Objects                   ``add_object``, ``remove_object``, ``rename_object``,
                          ``set_category``, ``set_active``
Prompts                   the clicks/boxes layers -> ``request_prompt``;
                          ``request_label_mask_prompt``, ``go_to_frame``,
                          ``delete_keyframe``
Propagate                 ``propagate_iter`` on napari's ``thread_worker``
Export                    the ``export`` command in a child process, watched by
                          a ``thread_worker``
========================  ========================================================

Each box redraws from the session's events; none calls another. The methods below are the
dock's scripting surface (tests and the ``annotate`` command use them).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ..session import AnnotationSession
from ._gui_thread import SessionLink
from ._hub import hub_for, report
from ._widgets import ScrollDock
from .export_box import ExportBox
from .model_box import ModelBox
from .objects_box import ObjectsBox
from .project_box import ProjectBox
from .prompt_layers import PromptLayers
from .prompts_box import PromptsBox
from .propagate_box import PropagateBox

SHORTCUTS = """\
Prompting (on the clicks layer, in 'add' mode):
  click              positive click (or negative, when the mode is '− negative')
  Alt+click / Ctrl+click   negative click
  N                  toggle positive / negative mode
Boxes: draw a rectangle on the boxes layer.
The mask appears when the model has computed it; you can keep clicking meanwhile.
Labels: paint or erase with napari's tools; edits are saved and the frames marked 'edited'.
  K / Shift+K        jump to the next / previous keyframe of the active object
  Delete a click: select it (clicks layer, select mode) and press Backspace/Delete."""


def next_step(hub: Any) -> str:
    """What to do next, from the state of the viewer's project, model, objects and prompts."""
    session = hub.session
    if session is None:
        return "Start here: choose the video's image layer and press 'Open project'."
    if session.running:
        return "Propagating… Cancel stops it after the frame being computed."
    if hub.model is None:
        return "Next: load a model (Model: a size, or a local .pt with '…' and its input size)."
    if not session.objects:
        return "Next: press 'Add' under Objects, then click on the object in the image."
    if not session.prompts():
        return ("Next: click on the object (clicks layer; Alt+click: negative) or draw a box "
                "around it (Box).")
    if not session.store.meta.get("runs"):
        return "Next: press 'Propagate' to track the prompted objects through the video."
    return ("Review the tracks in the Review dock (a click on a flagged frame corrects it), "
            "then Export.")


class PromptWidget(ScrollDock):
    """Choose the video and project, manage objects, prompt keyframes and propagate."""

    def __init__(self, napari_viewer: Any):
        super().__init__()
        self.viewer = napari_viewer
        self.hub = hub_for(napari_viewer)
        self.last_error: str | None = None
        self.setToolTip("Prompt keyframes and propagate with SAM 2.\n\n" + SHORTCUTS)
        self.layers = PromptLayers(napari_viewer, self._error)
        self.project_box = ProjectBox(napari_viewer, self.hub, self._error, prepare=self.layers.prepare)
        self.model_box = ModelBox(self.hub, self._error)
        self.objects_box = ObjectsBox(self.hub, self._error)
        self.prompts_box = PromptsBox(self.hub, self.layers, self._error)
        self.propagate_box = PropagateBox(self.hub, self._error)
        self.export_box = ExportBox(self.hub, self._error, before_export=self.layers.flush_edits)
        for box in (self.project_box, self.model_box, self.objects_box, self.prompts_box, self.propagate_box,
                    self.export_box):
            title = box.title()
            box.setTitle("")
            box.setFlat(True)
            self.add_section(title, box)
        self.content_layout.addStretch(1)
        self._link = SessionLink()
        self.hub.session_changed.connect(self._on_session_changed)
        self.hub.model_changed.connect(lambda _model: self.show_next_step())
        # Closing the viewer during a run stops the run within one frame.
        self.destroyed.connect(lambda *_, box=self.propagate_box: box.worker and box.worker.quit())
        # ... and stops an export (nothing is left at its output)
        self.destroyed.connect(lambda *_, box=self.export_box: box.worker and box.worker.quit())
        self._on_session_changed(self.hub.session)

    def _error(self, exc: BaseException) -> None:
        """Show an error in the dock's message line and as a notification."""
        self.last_error = str(exc)
        self.message.set_text(self.last_error, error=True)
        report(exc)

    def show_next_step(self, *_args: Any) -> None:
        """Replace the message line with what to do next (an error stays until then)."""
        try:
            self.message.set_text(next_step(self.hub))
        except RuntimeError:  # the dock was deleted
            return
        self.show_title()

    def show_title(self) -> None:
        """The viewer's title: the project and the model in use."""
        session, model = self.hub.session, self.hub.model
        project = session.store.path.name if session is not None else "no project"
        from .model_box import describe_model

        in_use = describe_model(model) if model is not None else "no model"
        self.viewer.title = f"{project} · {in_use} — napari-sam2-track"

    def _on_session_changed(self, session: AnnotationSession | None) -> None:
        self._link.disconnect_all()
        self.layers.disable()
        if session is not None:
            self._link.connect(session.events.error, self._error)
            ev = session.events
            for signal in (ev.objects_changed, ev.keyframes_changed, ev.running_changed, ev.run_finished):
                self._link.connect(signal, self.show_next_step)
            layer = self.project_box.image_layer
            self.layers.enable(session, layer.name if layer is not None else "project",
                               staged=self.project_box.opened_in_background)
        self.show_next_step()

    # ---------------------------------------------------------------- state
    @property
    def session(self) -> AnnotationSession | None:
        return self.hub.session

    @property
    def labels_layer(self):
        return self.layers.labels_layer

    @property
    def points_layer(self):
        return self.layers.points_layer

    @property
    def shapes_layer(self):
        return self.layers.shapes_layer

    @property
    def labels_data(self):
        return self.layers.labels_data

    @property
    def running(self) -> bool:
        return self.propagate_box.running

    @property
    def positive(self) -> bool:
        return self.layers.positive

    # ------------------------------------------------------------ scripting
    def select_image(self, name: str) -> None:
        self.project_box.select_image(name)

    def open_project(
        self, path: str | Path | None = None, layer: Any = None, *, background: bool = False
    ) -> AnnotationSession | None:
        return self.project_box.open_project(path, layer, background=background)

    def set_model(self, model: Any) -> None:
        self.model_box.set_model(model)

    def load_model(self, name: str | None = None, device: str | None = None, image_size: int | None = None,
                   *, spec: Any = None):
        return self.model_box.load_model(name, device, image_size, spec=spec)

    def add_object(self, name: str = "", category: str | None = None):
        return self.objects_box.add_object(name, category)

    def remove_object(self, obj_id: int | None = None) -> None:
        self.objects_box.remove_object(obj_id)

    def select_object(self, obj_id: int) -> None:
        self.objects_box.select_object(obj_id)

    def add_click(self, x: float, y: float, positive: bool | None = None, frame: int | None = None) -> None:
        self.layers.add_click(x, y, positive, frame)

    def add_box(self, x0: float, y0: float, x1: float, y1: float, frame: int | None = None) -> None:
        self.layers.add_box(x0, y0, x1, y1, frame)

    def set_polarity(self, positive: bool) -> None:
        self.layers.set_polarity(positive)

    def toggle_polarity(self) -> None:
        self.layers.set_polarity(not self.layers.positive)

    def use_label_mask(self, frame: int | None = None) -> None:
        self.prompts_box.use_label_mask(frame)

    def goto_keyframe(self, frame: int | None = None) -> None:
        self.prompts_box.goto_keyframe(frame)

    def delete_keyframe(self, frame: int | None = None, obj_id: int | None = None) -> None:
        self.prompts_box.delete_keyframe(frame, obj_id)

    def next_keyframe(self, step: int = 1) -> None:
        self.layers.next_keyframe(step)

    def propagate(self, direction: str | None = None, start: int | None = None, end: int | None = None):
        return self.propagate_box.propagate(direction, start, end)

    def cancel(self) -> None:
        self.propagate_box.cancel()

    def export(self, fmt: str | None = None, out: str | Path | None = None, *,
               approved_only: bool | None = None, overwrite: bool | None = None):
        return self.export_box.export(fmt, out, approved_only=approved_only, overwrite=overwrite)

    def cancel_export(self) -> None:
        self.export_box.cancel()

    def flush_edits(self) -> None:
        self.layers.flush_edits()

    def refresh_labels(self) -> None:
        self.layers.refresh_labels()
