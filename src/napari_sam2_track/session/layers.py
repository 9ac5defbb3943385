"""napari prompt layers <-> prompts, without napari or Qt.

The docks show prompts on two layers: a Points layer of clicks (data rows ``(t, y, x)``,
features ``positive`` and ``object``) and a Shapes layer of rectangles (``(4, 3)`` vertices
``(t, y, x)``, feature ``object``). These functions convert their data to the session's
``(object, frame) -> clicks / box`` form and back, and decide what a layer edit asks of the
session, so the rules are testable without a viewer:

* the clicks of an object on a frame are its point prompt there, in the layer's order;
* one box per object and frame: the last rectangle drawn is the box, earlier ones are removed;
* an edit is applied per (object, frame) whose clicks or box differ from the session's; a
  rejected one is reported with what to restore.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np

from ..errors import PromptError
from .events import Box, Click, KeyframePrompt, PromptKey

if TYPE_CHECKING:
    from ..project import ProjectStore
    from ..prompts import ObjectSpec

__all__ = [
    "VIDEO_AXES",
    "LayerEdit",
    "PlaneAxes",
    "PromptRequests",
    "PointsData",
    "ShapesData",
    "apply_boxes",
    "apply_clicks",
    "box_from_rectangle",
    "boxes_from_shapes",
    "clicks_from_points",
    "points_from_clicks",
    "rectangle_from_box",
    "rows_of",
    "schema_for_layer",
    "shapes_from_boxes",
]


@dataclass(frozen=True)
class PlaneAxes:
    """How a layer's leading coordinates name a plane: ``lead`` axes before ``(y, x)`` (1: the
    frame of a video or the slice of a single volume; 2: ``(t, z)``), ``n_z`` slices."""

    lead: int = 1
    n_z: int = 1

    def plane(self, coords: Sequence[float]) -> int:
        """The plane of leading coordinates ``coords`` (rounded)."""
        c = [int(round(float(v))) for v in coords[: self.lead]]
        return c[0] if self.lead == 1 else c[0] * self.n_z + c[1]

    def coords(self, plane: int) -> tuple[int, ...]:
        """The leading coordinates of ``plane``."""
        return (int(plane),) if self.lead == 1 else divmod(int(plane), self.n_z)


#: the axes of a 2D + t video: one leading axis, the frame
VIDEO_AXES = PlaneAxes()


@dataclass
class PointsData:
    """What a Points layer of clicks holds: ``data`` (N, 3) rows ``(t, y, x)`` and features."""

    data: np.ndarray
    positive: list[bool]
    objects: list[int]

    @property
    def features(self) -> dict[str, list]:
        return {"positive": list(self.positive), "object": list(self.objects)}


@dataclass
class ShapesData:
    """What a Shapes layer of boxes holds: rectangles ``(4, 3)`` of ``(t, y, x)`` and objects."""

    rectangles: list[np.ndarray]
    objects: list[int]


@dataclass
class LayerEdit:
    """The outcome of applying a layer to a session: what was requested, what was refused."""

    requested: list[PromptKey] = field(default_factory=list)
    rejected: list[tuple[PromptKey, Exception]] = field(default_factory=list)
    #: rows of the layer to remove (refused prompts, superseded rectangles)
    remove_rows: list[int] = field(default_factory=list)


# ----------------------------------------------------------------------------- clicks
def clicks_from_points(
    data: np.ndarray | Sequence[Sequence[float]], positive: Iterable[Any], objects: Iterable[Any],
    axes: PlaneAxes = VIDEO_AXES,
) -> dict[PromptKey, list[Click]]:
    """``(object, frame) -> [(x, y, label), ...]`` from a Points layer's rows and features
    (``axes``: how the rows' leading coordinates name a frame or plane)."""
    out: dict[PromptKey, list[Click]] = {}
    rows = np.asarray(data, dtype=float).reshape(-1, axes.lead + 2)
    for row, pos, obj in zip(rows, positive, objects):
        y, x = float(row[-2]), float(row[-1])
        out.setdefault((int(obj), axes.plane(row)), []).append((x, y, int(bool(pos))))
    return out


def points_from_clicks(clicks: Mapping[PromptKey, Sequence[Click]],
                       axes: PlaneAxes = VIDEO_AXES) -> PointsData:
    """The Points layer content that shows ``clicks`` (sorted by object, then frame)."""
    rows, positive, objects = [], [], []
    for (obj, frame), cs in sorted(clicks.items()):
        for x, y, label in cs:
            rows.append((*map(float, axes.coords(frame)), float(y), float(x)))
            positive.append(bool(label))
            objects.append(int(obj))
    return PointsData(np.array(rows, dtype=float).reshape(-1, axes.lead + 2), positive, objects)


# ------------------------------------------------------------------------------ boxes
def rectangle_from_box(frame: int, box: Box, axes: PlaneAxes = VIDEO_AXES) -> np.ndarray:
    """The four ``(t, y, x)`` vertices of ``box`` ``(x0, y0, x1, y1)`` on ``frame`` (with
    ``axes``: the plane's leading coordinates, then ``y, x``)."""
    x0, y0, x1, y1 = (float(v) for v in box)
    lead = list(axes.coords(frame))
    return np.array([[*lead, y0, x0], [*lead, y0, x1], [*lead, y1, x1], [*lead, y1, x0]], float)


def box_from_rectangle(vertices: np.ndarray | Sequence[Sequence[float]],
                       axes: PlaneAxes = VIDEO_AXES) -> tuple[int, Box]:
    """``(frame, (x0, y0, x1, y1))`` of a drawn rectangle (any vertex order)."""
    d = np.asarray(vertices, dtype=float).reshape(-1, axes.lead + 2)
    frame = axes.plane(d[0])
    return frame, (float(d[:, -1].min()), float(d[:, -2].min()), float(d[:, -1].max()),
                   float(d[:, -2].max()))


def boxes_from_shapes(
    rectangles: Sequence[np.ndarray], objects: Iterable[Any], axes: PlaneAxes = VIDEO_AXES
) -> tuple[dict[PromptKey, Box], list[int]]:
    """The box of each ``(object, frame)`` (the last rectangle drawn there) and the rows of
    the earlier rectangles it supersedes."""
    boxes: dict[PromptKey, Box] = {}
    rows: dict[PromptKey, list[int]] = {}
    for i, (vertices, obj) in enumerate(zip(rectangles, objects)):
        frame, box = box_from_rectangle(vertices, axes)
        boxes[(int(obj), frame)] = box
        rows.setdefault((int(obj), frame), []).append(i)
    superseded = sorted(i for idx in rows.values() for i in idx[:-1])
    return boxes, superseded


def shapes_from_boxes(boxes: Mapping[PromptKey, Box], axes: PlaneAxes = VIDEO_AXES) -> ShapesData:
    """The Shapes layer content that shows ``boxes`` (sorted by object, then frame)."""
    items = sorted(boxes.items())
    return ShapesData([rectangle_from_box(f, b, axes) for (_, f), b in items],
                      [o for (o, _), _ in items])


def rows_of(frames: Sequence[int], objects: Sequence[int], obj_id: int, frame: int | None = None) -> list[int]:
    """Rows of a layer (given each row's frame and object) that belong to ``obj_id``
    (on ``frame`` only, if given)."""
    return [
        i for i, (f, o) in enumerate(zip(frames, objects))
        if int(o) == obj_id and (frame is None or int(f) == frame)
    ]


# ---------------------------------------------------------------------- applying edits
class PromptRequests(Protocol):
    """What a layer edit asks of a session (an
    :class:`~napari_sam2_track.session.AnnotationSession`): a click on a layer becomes
    :meth:`request_prompt`, whose job runs the tracker on the session's compute thread."""

    store: "ProjectStore"

    @property
    def objects(self) -> "list[ObjectSpec]": ...

    def prompts(self) -> dict[PromptKey, KeyframePrompt]: ...

    def clicks(self, obj_id: int, frame: int) -> list[Click]: ...

    def box(self, obj_id: int, frame: int) -> Box | None: ...

    def request_prompt(self, frame: int, clicks: list[Click] | None = None, box: Box | None = None,
                       obj_id: int | None = None) -> Future: ...


def _check_object(session: PromptRequests, obj_id: int) -> None:
    if obj_id not in session.store.object_ids():
        if not session.objects:
            raise PromptError("no object yet: press 'Add' in the Objects list first")
        raise PromptError(f"object {obj_id} does not exist; select an object first")


def apply_clicks(session: PromptRequests, wanted: Mapping[PromptKey, Sequence[Click]]) -> LayerEdit:
    """Request the prompt of every ``(object, frame)`` whose clicks in ``wanted`` (the layer)
    differ from the session's; refused ones are reported (their rows are not known here: the
    caller restores the session's clicks for them)."""
    edit = LayerEdit()
    known = {k: p.clicks for k, p in session.prompts().items() if p.clicks}
    for key in sorted(set(wanted) | set(known)):
        new = [tuple(c) for c in wanted.get(key, [])]
        if new == list(known.get(key, ())):
            continue
        obj, frame = key
        try:
            _check_object(session, obj)
            session.request_prompt(frame, new, session.box(obj, frame), obj_id=obj)
            edit.requested.append(key)
        except Exception as exc:  # noqa: BLE001 - reported to the caller
            edit.rejected.append((key, exc))
    return edit


def apply_boxes(session: PromptRequests, rectangles: Sequence[np.ndarray], objects: Sequence[Any],
                axes: PlaneAxes = VIDEO_AXES) -> LayerEdit:
    """Request the box of every ``(object, frame)`` whose last rectangle differs from the
    session's box. ``remove_rows`` lists the superseded rectangles and the refused ones."""
    wanted, superseded = boxes_from_shapes(rectangles, objects, axes)
    last_row = {}
    for i, (vertices, obj) in enumerate(zip(rectangles, objects)):
        last_row[(int(obj), box_from_rectangle(vertices, axes)[0])] = i
    edit = LayerEdit(remove_rows=list(superseded))
    known = {k: p.box for k, p in session.prompts().items() if p.box is not None}
    for key in sorted(set(wanted) | set(known)):
        new, old = wanted.get(key), known.get(key)
        if new == old:
            continue
        obj, frame = key
        try:
            _check_object(session, obj)
            session.request_prompt(frame, session.clicks(obj, frame), new, obj_id=obj)
            edit.requested.append(key)
        except Exception as exc:  # noqa: BLE001 - reported to the caller
            edit.rejected.append((key, exc))
            if key in last_row:
                edit.remove_rows.append(last_row[key])
    edit.remove_rows = sorted(set(edit.remove_rows))
    return edit


def schema_for_layer(current: Any, layer_metadata: Mapping[str, Any] | None) -> Any:
    """The schema for a new project of a layer: the one in use, or the layer's own (a sample's
    categories) while the one in use is still the default."""
    own = (layer_metadata or {}).get("schema")
    if own and current.model_dump() == type(current).default().model_dump():
        return type(current).model_validate(own)
    return current
