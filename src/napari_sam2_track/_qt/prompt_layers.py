"""The layers of an open project: labels, clicks (Points) and boxes (Shapes).

:class:`PromptLayers` is an enable/disable component: :meth:`~PromptLayers.enable` adds the
layers for a session and attaches every layer, mouse, key and dims callback;
:meth:`~PromptLayers.disable` detaches them all and removes the layers. Both are idempotent.
What a layer edit means is decided by :mod:`napari_sam2_track.session.layers`; this module
only moves data between napari and the session, and redraws when the session says so.

Adding a layer to the viewer costs napari a few tens of milliseconds or more on the GUI thread
(its vispy visuals, overlays and layer controls), whatever the length of the video. So that
opening a project never blocks the GUI for the sum of these, the layer objects can be built
beforehand on the thread that opens the project (:meth:`PromptLayers.prepare`), and
``enable(..., staged=True)`` shows them in short steps, one per turn of the event loop: each
layer's insertion, the labels layer's two drawing overlays (napari makes an overlay's visuals
when it becomes visible, so they are hidden while the layer is inserted and shown on later
turns), the choice of the active layer, and the first read-ahead.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from functools import partial
from typing import Any

import numpy as np
from qtpy.QtCore import QTimer

from .._napari_io import META_KEY, labels_colormap
from ..errors import PromptError
from ..session import layers as conv
from ._gui_thread import SessionLink

POSITIVE_COLOR = "lime"
NEGATIVE_COLOR = "red"
KEYS = ("n", "k", "Shift-k")
#: Milliseconds between two steps of a staged enable: time for a repaint and due timers (a
#: zero-delay timer may run before them).
STAGE_MS = 15
#: The labels layer's overlays whose visuals napari makes when they are first visible.
LABELS_OVERLAYS = ("polygon", "brush_stroke")


def _overlay(layer: Any, name: str) -> Any:
    """One of a layer's own overlays (napari keeps them in ``_overlays``), or ``None``."""
    overlays = getattr(layer, "_overlays", None)
    return overlays.get(name) if overlays is not None and hasattr(overlays, "get") else None


@dataclass
class BuiltLayers:
    """The layers of one session, built but not yet in a viewer."""

    session: Any
    name: str
    labels_data: Any
    colors: dict
    labels: Any
    shapes: Any
    points: Any
    #: the clicks' polarity and object the layers' feature defaults are set to
    defaults: tuple[bool, int]


def build_layers(session: Any, name: str, positive: bool = True) -> BuiltLayers:
    """(Any thread.) The labels, boxes and clicks layers of ``session``, named after the image
    layer ``name``, new points ``positive`` or not; napari layers are models, built without a
    viewer."""
    import pandas as pd
    from napari.layers import Labels, Points, Shapes

    labels_data = session.labels_array()
    colors = session.label_colors()
    axes = session.plane_axes
    ndim = axes.lead + 2
    scale = getattr(session, "layer_scale", None)
    placed = {} if scale is None else {"scale": tuple(scale)[-ndim:]}
    labels = Labels(
        labels_data,
        **placed,
        name=f"{name} labels",
        opacity=0.6,
        colormap=labels_colormap(colors),
        metadata={META_KEY: {"kind": "project", "path": str(session.store.path)}},
    )
    prompts = session.prompts()
    shapes_data = conv.shapes_from_boxes({k: p.box for k, p in prompts.items() if p.box is not None},
                                         axes)
    shapes = Shapes(
        shapes_data.rectangles or None,
        **placed,
        shape_type="rectangle",
        ndim=ndim,
        name=f"{name} boxes",
        features=pd.DataFrame({"object": pd.Series(shapes_data.objects, dtype=int)}),
        edge_color="yellow",
        face_color="transparent",
        edge_width=2,
    )
    points_data = conv.points_from_clicks({k: p.clicks for k, p in prompts.items() if p.clicks}, axes)
    points = Points(
        points_data.data,
        **placed,
        ndim=ndim,
        name=f"{name} clicks",
        features=pd.DataFrame(
            {
                "positive": pd.Series(points_data.positive, dtype=bool),
                "object": pd.Series(points_data.objects, dtype=int),
            }
        ),
        face_color="positive",
        face_color_cycle={True: POSITIVE_COLOR, False: NEGATIVE_COLOR},
        border_color="white",
        size=max(4, min(session.source.height, session.source.width) // 40),
    )
    obj = session.active_id or 0
    points.feature_defaults = {"positive": positive, "object": obj}
    shapes.feature_defaults = {"object": obj}
    return BuiltLayers(session, name, labels_data, colors, labels, shapes, points, (positive, obj))


#: the least width and height of a box prompt (pixels): smaller is a click, not a drag
MIN_BOX_SIDE = 2.0


def box_size(rectangle: Any, axes: conv.PlaneAxes = conv.VIDEO_AXES) -> tuple[float, float]:
    """``(width, height)`` of a boxes-layer rectangle."""
    _, (x0, y0, x1, y1) = conv.box_from_rectangle(rectangle, axes)
    return abs(x1 - x0), abs(y1 - y0)


class PromptLayers:
    """Layers of one session on a viewer, and the user's input on them.

    Args:
        viewer: the napari viewer.
        on_error: shows a refused action to the user (one line).
    """

    def __init__(self, viewer: Any, on_error: Callable[[BaseException], Any]):
        self.viewer = viewer
        self.on_error = on_error
        self.session = None
        self.labels_layer = None
        self.points_layer = None
        self.shapes_layer = None
        self.labels_data = None
        self.positive = True
        #: called after the polarity changed (the dock shows it)
        self.on_polarity: Callable[[bool], Any] | None = None
        self._syncing = False  # the layers are being changed to show the session
        self._applying = False  # the session is being changed to follow the layers
        self._shown_frame = 0  # the frame on screen, readable from any thread
        self._link = SessionLink()
        self._edit_timer = QTimer()
        self._edit_timer.setSingleShot(True)
        self._edit_timer.setInterval(300)
        self._edit_timer.timeout.connect(self.flush_edits)
        # label changes arriving in a burst redraw the layer once
        self._refresh_timer = QTimer()
        self._refresh_timer.setSingleShot(True)
        self._refresh_timer.setInterval(30)
        self._refresh_timer.timeout.connect(self.refresh_labels)
        self._colors: dict | None = None  # the colours the labels layer shows
        self._defaults: tuple | None = None  # the feature defaults the layers have
        # labels of the frames next to the shown one are read here, off the GUI thread
        self._reader = ThreadPoolExecutor(max_workers=1, thread_name_prefix="labels-read-ahead")
        self._wanted: set[int] = set()
        self._prepared: BuiltLayers | None = None  # built on the opening thread
        self._prepared_lock = threading.Lock()
        self._pending: list[Callable[[], Any]] = []  # steps still to run (staged enable)

    # ================================================================ enable/disable
    @property
    def enabled(self) -> bool:
        return self.session is not None

    def prepare(self, session: Any, name: str) -> None:
        """(Any thread.) Build the layers of ``session`` now, for :meth:`enable` to insert."""
        built = build_layers(session, name, self.positive)
        with self._prepared_lock:
            self._prepared = built

    def _take_prepared(self, session: Any, name: str) -> BuiltLayers:
        with self._prepared_lock:
            built, self._prepared = self._prepared, None
        if built is None or built.session is not session or built.name != name:
            built = build_layers(session, name, self.positive)
        return built

    def enable(self, session: Any, name: str, *, staged: bool = False) -> None:
        """Add the layers of ``session`` (named after the image layer ``name``) and attach.

        With ``staged``, the labels layer is inserted now and the boxes and clicks layers on
        the next turns of the event loop (each insertion is one short block of the GUI).
        """
        if session is self.session:
            return
        self.disable()
        self.session = session
        built = self._take_prepared(session, name)
        self._shown_frame = self.frame()
        self.labels_data = built.labels_data
        self.labels_data.on_dirty = self._edit_timer.start  # undo/redo and scripted writes
        self._colors = built.colors
        self.labels_layer, self.shapes_layer, self.points_layer = built.labels, built.shapes, built.points
        self._defaults = (*built.defaults, id(self.points_layer), id(self.shapes_layer))
        self.labels_layer.events.paint.connect(self._on_paint)
        self.labels_layer.events.labels_update.connect(lambda *_: self._edit_timer.start())
        self.shapes_layer.events.data.connect(self._on_shapes_changed)
        self.points_layer.events.data.connect(self._on_points_changed)
        ev = session.events
        ev.labels_changed.connect(self._read_ahead)  # on the writing thread, before the redraw
        self._link.connect(ev.labels_changed, self._on_labels_changed)
        self._link.connect(ev.prompts_changed, self._on_prompts_changed)
        self._link.connect(ev.objects_changed, self._on_objects_changed)
        self._link.connect(ev.active_object_changed, lambda _obj: self._update_feature_defaults())
        self._link.connect(ev.frame_requested, self.show_frame)
        self._link.connect(ev.running_changed, self._on_running_changed)
        self.viewer.dims.events.current_step.connect(self._on_step)
        self.viewer.layers.events.removed.connect(self._on_layer_removed)
        for layer in (self.points_layer, self.shapes_layer, self.labels_layer):
            layer.bind_key("n", self._key_toggle_polarity)
            layer.bind_key("k", self._key_next_keyframe)
            layer.bind_key("Shift-k", self._key_previous_keyframe)
        self.points_layer.mouse_drag_callbacks.insert(0, self._on_points_press)
        self._update_feature_defaults()
        overlays = [o for o in (_overlay(self.labels_layer, n) for n in LABELS_OVERLAYS) if o is not None]
        shown = [o for o in overlays if o.visible]
        if staged:
            for overlay in shown:
                overlay.visible = False
        self._pending = [
            partial(self._insert, self.labels_layer),
            *(partial(setattr, o, "visible", True) for o in shown if staged),
            partial(self._insert, self.shapes_layer),
            partial(self._insert, self.points_layer),
            self._activate_clicks,
            self._on_step,
        ]
        if staged:
            self._next_step(session)
        else:
            while self._pending:
                self._next_step(session, chain=False)

    @property
    def complete(self) -> bool:
        """Whether all layers of the open session are in the viewer, the clicks layer active."""
        return self.session is not None and not self._pending

    def _next_step(self, session: Any, chain: bool = True) -> None:
        """Run the next step of showing the layers (the next on a later turn, with ``chain``)."""
        if session is not self.session or not self._pending:
            return  # closed, or another project opened, meanwhile
        self._pending.pop(0)()
        if self._pending and chain:
            QTimer.singleShot(STAGE_MS, lambda: self._next_step(session))

    def _insert(self, layer: Any) -> None:
        self.viewer.layers.append(layer)

    def _activate_clicks(self) -> None:
        self.viewer.layers.selection.active = self.points_layer
        self.points_layer.mode = "add"

    def disable(self) -> None:
        """Save pending edits, detach every callback and remove the layers."""
        if self.session is None:
            return
        self._pending = []
        self.flush_edits()
        self.session.events.labels_changed.disconnect(self._read_ahead)
        self._link.disconnect_all()
        self.viewer.dims.events.current_step.disconnect(self._on_step)
        self.viewer.layers.events.removed.disconnect(self._on_layer_removed)
        for layer in (self.points_layer, self.shapes_layer, self.labels_layer):
            if layer is None:
                continue
            for key in KEYS:
                layer.bind_key(key, None)
            if layer in self.viewer.layers:
                self.viewer.layers.remove(layer)
        if self.points_layer is not None and self._on_points_press in self.points_layer.mouse_drag_callbacks:
            self.points_layer.mouse_drag_callbacks.remove(self._on_points_press)
        self._refresh_timer.stop()
        self.labels_layer = self.points_layer = self.shapes_layer = self.labels_data = None
        self._colors = self._defaults = None
        self.session = None

    def _on_layer_removed(self, event: Any) -> None:
        layer = event.value
        for attr in ("labels_layer", "points_layer", "shapes_layer"):
            if getattr(self, attr) is layer:
                setattr(self, attr, None)

    # ======================================================================= frames
    @property
    def axes(self) -> conv.PlaneAxes:
        """How the layers' leading coordinates name a frame (a volume's plane ``t * Z + z``)."""
        return self.session.plane_axes if self.session is not None else conv.VIDEO_AXES

    def frame(self) -> int:
        """The frame (a volume's plane) on screen, from the dims sliders."""
        axes = self.axes
        return axes.plane(self.viewer.dims.current_step[: axes.lead])

    def show_frame(self, frame: int) -> None:
        for axis, step in enumerate(self.axes.coords(frame)):
            self.viewer.dims.set_current_step(axis, int(step))

    def _on_step(self, _event: Any = None) -> None:
        session = self.session
        self._shown_frame = self.frame()
        if session is not None and not session.closed and 0 <= self._shown_frame < session.num_frames:
            session.set_current_frame(self._shown_frame)
            self._read_neighbours(self._shown_frame)

    def _read_neighbours(self, frame: int) -> None:
        """Read the labels of the frames around ``frame`` on the read-ahead thread, so scrubbing
        on finds them in memory."""
        data = self.labels_data
        if data is None:
            return
        for t in (frame + 1, frame - 1, frame + 2, frame - 2):
            if 0 <= t < data.num_planes and t not in self._wanted and not data.cached(t):
                self._wanted.add(t)
                self._reader.submit(self._read_one, data, t)

    def _read_one(self, data: Any, t: int) -> None:
        try:
            data.preload(t)
        except Exception:  # noqa: BLE001 - a read-ahead that fails is read again when shown
            pass
        finally:
            self._wanted.discard(t)

    def _key_next_keyframe(self, _layer: Any) -> None:
        self.next_keyframe(+1)

    def _key_previous_keyframe(self, _layer: Any) -> None:
        self.next_keyframe(-1)

    def next_keyframe(self, step: int = 1) -> None:
        """Show the next (``step`` > 0) or previous keyframe of the active object."""
        session = self.session
        if session is None or session.active_id is None:
            return
        now = self.frame()
        frames = [f for f in session.keyframes(session.active_id) if (f > now if step > 0 else f < now)]
        if frames:
            self.show_frame(frames[0] if step > 0 else frames[-1])

    # ===================================================================== polarity
    def set_polarity(self, positive: bool) -> None:
        self.positive = bool(positive)
        self._update_feature_defaults()
        if self.on_polarity is not None:
            self.on_polarity(self.positive)

    def _key_toggle_polarity(self, _layer: Any) -> None:
        self.set_polarity(not self.positive)

    def _update_feature_defaults(self) -> None:
        obj = (self.session.active_id if self.session is not None else None) or 0
        wanted = (self.positive, obj, id(self.points_layer), id(self.shapes_layer))
        if wanted == self._defaults:
            return  # setting napari's feature defaults costs a refresh; skip when unchanged
        self._defaults = wanted
        if self.points_layer is not None:
            self.points_layer.feature_defaults = {"positive": self.positive, "object": obj}
        if self.shapes_layer is not None:
            self.shapes_layer.feature_defaults = {"object": obj}

    def _on_points_press(self, layer: Any, event: Any) -> None:
        """Runs before napari adds the point: Alt/Ctrl+click makes a negative click."""
        mods = {str(getattr(m, "name", m)).lower() for m in event.modifiers}
        negative = bool(mods & {"alt", "control", "ctrl", "meta"})
        obj = (self.session.active_id if self.session is not None else None) or 0
        if negative or obj != (self._defaults or (None, None))[1]:
            self._defaults = None
            layer.feature_defaults = {"positive": self.positive and not negative, "object": obj}

    # ======================================================================= clicks
    def add_click(self, x: float, y: float, positive: bool | None = None, frame: int | None = None) -> None:
        """Add a click at pixel ``(x, y)``, as a user would on the clicks layer."""
        if self.points_layer is None or self.session is None:
            self.on_error(PromptError("no project open: press 'Open project' first"))
            return
        frame = self.frame() if frame is None else frame
        positive = self.positive if positive is None else positive
        self._defaults = None
        self.points_layer.feature_defaults = {"positive": positive, "object": self.session.active_id or 0}
        self.points_layer.add([*self.axes.coords(frame), y, x])
        self._update_feature_defaults()

    def _on_points_changed(self, event: Any) -> None:
        action = str(getattr(event, "action", ""))
        if self._syncing or action.lower().endswith(("adding", "removing", "changing")):
            return
        self.sync_points()

    def _layer_clicks(self) -> dict:
        layer = self.points_layer
        if layer is None or not len(layer.data):
            return {}
        return conv.clicks_from_points(layer.data, layer.features["positive"], layer.features["object"],
                                       self.axes)

    def sync_points(self) -> None:
        """Ask the session for the prompts the clicks layer now shows; refused ones are undone."""
        if self.session is None or self.points_layer is None:
            return
        self._applying = True
        try:
            edit = conv.apply_clicks(self.session, self._layer_clicks())
        finally:
            self._applying = False
        for key, exc in edit.rejected:
            self.on_error(exc)
            self._show_session_prompt(*key)

    # ======================================================================== boxes
    def start_box(self) -> None:
        """Select the boxes layer in rectangle mode."""
        if self.shapes_layer is not None:
            self.viewer.layers.selection.active = self.shapes_layer
            self.shapes_layer.mode = "add_rectangle"

    def add_box(self, x0: float, y0: float, x1: float, y1: float, frame: int | None = None) -> None:
        """Draw a box on the current frame, as a user would on the boxes layer."""
        if self.shapes_layer is None or self.session is None:
            self.on_error(PromptError("no project open: press 'Open project' first"))
            return
        frame = self.frame() if frame is None else frame
        self._defaults = None
        self.shapes_layer.feature_defaults = {"object": self.session.active_id or 0}
        self.shapes_layer.add_rectangles(conv.rectangle_from_box(frame, (x0, y0, x1, y1), self.axes))

    def _on_shapes_changed(self, event: Any) -> None:
        action = str(getattr(event, "action", ""))
        if self._syncing or action.lower().endswith(("adding", "removing", "changing")):
            return
        self.sync_boxes()

    def sync_boxes(self) -> None:
        """Ask the session for the boxes the layer now shows (one per object and frame)."""
        layer = self.shapes_layer
        if self.session is None or layer is None:
            return
        axes = self.axes
        tiny = [i for i, d in enumerate(layer.data) if min(box_size(d, axes)) < MIN_BOX_SIDE]
        if tiny:  # a click on the boxes layer, not a drag: no keyframe
            w, h = box_size(layer.data[tiny[-1]], axes)
            self._remove_rows(layer, tiny)
            self.on_error(PromptError(
                f"a box of {w:.0f} x {h:.0f} px is not a prompt: press, drag across the object and release"))
        self._applying = True
        try:
            edit = conv.apply_boxes(self.session, list(layer.data), list(layer.features["object"]), axes)
        finally:
            self._applying = False
        for _key, exc in edit.rejected:
            self.on_error(exc)
        self._remove_rows(layer, edit.remove_rows)

    # ====================================================== session -> layers
    def _remove_rows(self, layer: Any, rows: list[int]) -> None:
        if not rows:
            return
        self._syncing = True
        try:
            layer.selected_data = set(rows)
            layer.remove_selected()
        finally:
            self._syncing = False

    def _layer_rows(self, layer: Any, obj_id: int, frame: int) -> list[int]:
        """Rows of the clicks or boxes layer that belong to ``obj_id`` on ``frame``."""
        if layer is None or not len(layer.data):
            return []
        axes = self.axes
        if layer is self.points_layer:
            frames = [axes.plane(row) for row in np.asarray(layer.data)]
        else:
            frames = [conv.box_from_rectangle(d, axes)[0] for d in layer.data]
        return conv.rows_of(frames, list(layer.features["object"]), obj_id, frame)

    def _on_prompts_changed(self, obj_id: int, frame: int) -> None:
        """The session's prompt changed (set, reverted, deleted): the layers follow (unless
        the change came from the layers themselves)."""
        if self.session is not None and not self._applying:
            self._show_session_prompt(obj_id, frame)

    def _show_session_prompt(self, obj_id: int, frame: int) -> None:
        session = self.session
        clicks = session.clicks(obj_id, frame)
        if self.points_layer is not None and self._layer_clicks().get((obj_id, frame), []) != clicks:
            self._remove_rows(self.points_layer, self._layer_rows(self.points_layer, obj_id, frame))
            self._syncing = True
            try:
                self._defaults = None
                for x, y, v in clicks:
                    self.points_layer.feature_defaults = {"positive": bool(v), "object": obj_id}
                    self.points_layer.add([*self.axes.coords(frame), y, x])
            finally:
                self._syncing = False
                self._update_feature_defaults()
        box = session.box(obj_id, frame)
        layer = self.shapes_layer
        if layer is not None:
            rows = self._layer_rows(layer, obj_id, frame)
            shown = conv.box_from_rectangle(layer.data[rows[-1]], self.axes)[1] if rows else None
            if shown != box or len(rows) > 1:
                self._remove_rows(layer, rows)
                if box is not None:
                    self._syncing = True
                    try:
                        self._defaults = None
                        layer.feature_defaults = {"object": obj_id}
                        layer.add_rectangles(conv.rectangle_from_box(frame, box, self.axes))
                    finally:
                        self._syncing = False
                        self._update_feature_defaults()

    def _read_ahead(self, start: int, stop: int) -> None:
        """(Any thread.) The labels of ``start..stop`` changed: read the shown frame now, so
        the GUI's redraw does not wait on the store."""
        data = self.labels_data
        if data is not None:
            data.forget(start, stop)
            if start <= self._shown_frame <= stop:
                data.preload(self._shown_frame)

    def _on_labels_changed(self, start: int, stop: int) -> None:
        if self.labels_layer is None or self._refresh_timer.isActive():
            return
        lo = hi = self.frame()
        if self.viewer.dims.ndisplay == 3 and self.axes.lead == 2:  # the timepoint's planes
            lo = self.viewer.dims.current_step[0] * self.axes.n_z
            hi = lo + self.axes.n_z - 1
        elif self.viewer.dims.ndisplay == 3:  # a single volume: all of it is on screen
            lo, hi = 0, self.axes.n_z - 1
        if start <= hi and lo <= stop:
            self._refresh_timer.start()  # one redraw for a burst of changes

    def refresh_labels(self) -> None:
        if self.labels_layer is not None:
            self.labels_layer.refresh()

    def _on_objects_changed(self) -> None:
        if self.labels_layer is not None and self.session is not None:
            colors = self.session.label_colors()
            if colors != self._colors:  # napari rebuilds its colour textures on every reset
                self._colors = colors
                self.labels_layer.colormap = labels_colormap(colors)
        self._update_feature_defaults()

    def _on_running_changed(self, running: bool) -> None:
        if self.labels_layer is not None:
            self.labels_layer.editable = not running
        if not running:
            self.refresh_labels()

    # ======================================================================== edits
    def _on_paint(self, _event: Any = None) -> None:
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
            self.on_error(exc)
