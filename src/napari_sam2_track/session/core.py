"""Interactive annotation session: the Qt-free model behind the napari docks.

An :class:`AnnotationSession` ties together a frame source, a project store, the annotation
schema, the object list and (once a model is set) a live
:class:`~napari_sam2_track.engine.tracker.StreamingTracker`. Every user action of the
"Prompt & Propagate" dock is one method here, so the same workflow can be scripted and tested
without Qt::

    from napari_sam2_track.session import AnnotationSession

    session = AnnotationSession.open("movie.mp4")          # project: movie.zarr beside it
    session.set_model(load_model("tiny"))
    cell = session.add_object("left cell")
    mask = session.add_click(frame=0, x=120, y=88, positive=True)
    for progress in session.propagate_iter("forward"):
        print(progress.frame, progress.fps)

Coordinates are pixels, ``x`` to the right and ``y`` down (napari's layer coordinates are
``(t, y, x)``; the docks convert). The store stays the single source of truth: objects, prompts,
keyframe masks and hand edits are written to it as they happen.
"""

from __future__ import annotations

import tempfile
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np

from ._lazy_array import LazyArray
from .errors import ModelError, PromptError, SourceError, StoreError
from .prompts import ObjectSpec, Prompt
from .project import STATE_PROMPTED, ProjectStore

__all__ = ["AnnotationSession", "StoreLabelsArray", "check_layer_shape", "default_store_path"]


def default_store_path(video: str | Path | None, name: str = "annotations") -> Path:
    """``<video stem>.zarr`` beside ``video``; a fresh temporary folder for in-memory data."""
    if video is None:
        return Path(tempfile.mkdtemp(prefix="napari-sam2-track-")) / f"{name}.zarr"
    video = Path(video)
    out = video.parent / f"{video.stem}.zarr"
    if out.resolve() == video.resolve():  # the video itself is a zarr folder
        out = video.parent / f"{video.stem}.annotations.zarr"
    return out


def check_layer_shape(shape: tuple[int, ...], rgb: bool, name: str = "image") -> tuple[int, int, int]:
    """Check that an image layer is a video: ``(t, y, x)`` gray or ``(t, y, x, 3)`` RGB.

    Returns ``(num_frames, height, width)``; raises :class:`SourceError` with a one-line
    message for single images, volumes and RGB/gray mix-ups.
    """
    shape = tuple(int(s) for s in shape)
    nd = len(shape) - (1 if rgb else 0)
    if rgb and shape[-1] not in (3, 4):
        raise SourceError(
            f"layer {name!r} is marked RGB but its last axis has {shape[-1]} values; "
            "open it as a grayscale (t, y, x) stack"
        )
    if nd == 2:
        raise SourceError(
            f"layer {name!r} is a single {'RGB ' if rgb else ''}image {shape}; choose a time "
            "series (t, y, x) or (t, y, x, 3)"
        )
    if not rgb and nd == 4 and shape[-1] in (3, 4):
        raise SourceError(
            f"layer {name!r} has shape {shape}, which looks like RGB frames shown as grayscale; "
            "re-open it with rgb=True"
        )
    if nd != 3:
        raise SourceError(
            f"layer {name!r} has {nd} non-colour dimensions {shape}; choose a time series "
            "(t, y, x) or (t, y, x, 3) (for volumes or channels, select one first)"
        )
    return shape[0], shape[1], shape[2]


class StoreLabelsArray(LazyArray):
    """The project's merged labels as an array for a napari Labels layer.

    Reads come from the store (so a layer refresh shows frames written by a running
    propagation). Writes (napari's paint, fill and undo) are kept per frame until
    :meth:`flush`, which hands each edited frame to ``on_edit(t, frame)`` (normally
    :meth:`AnnotationSession.persist_edit`). Only the frames touched are ever held in memory.
    """

    def __init__(
        self,
        store: ProjectStore,
        on_edit: Callable[[int, np.ndarray], Any] | None = None,
        *,
        autoflush: bool = False,
    ):
        self.store = store
        self.on_edit = on_edit
        #: persist every write at once (when nothing calls :meth:`flush` at the end of a stroke)
        self.autoflush = autoflush
        #: called after each write (e.g. to schedule a :meth:`flush`)
        self.on_dirty: Callable[[], Any] | None = None
        self._dirty: dict[int, np.ndarray] = {}
        self._lock = threading.RLock()

    # array protocol --------------------------------------------------------------------
    @property
    def shape(self) -> tuple[int, int, int]:
        return tuple(self.store.shape)  # type: ignore[return-value]

    @property
    def dtype(self) -> np.dtype:
        return np.dtype("uint32")

    def frame(self, t: int) -> np.ndarray:
        """Frame ``t`` as a writable array, edits included."""
        with self._lock:
            if t in self._dirty:
                return self._dirty[t]
        return np.asarray(self.store.labels[t])

    @property
    def dirty_frames(self) -> list[int]:
        return sorted(self._dirty)

    def _key(self, key) -> tuple:
        if not isinstance(key, tuple):
            key = (key,)
        if any(k is Ellipsis for k in key):
            i = next(i for i, k in enumerate(key) if k is Ellipsis)
            key = key[:i] + (slice(None),) * (3 - len(key) + 1) + key[i + 1 :]
        return key + (slice(None),) * (3 - len(key))

    @staticmethod
    def _fancy(key: tuple) -> bool:
        return any(isinstance(k, (np.ndarray, list)) for k in key)

    def __getitem__(self, key):
        key = self._key(key)
        if self._fancy(key):
            t, y, x = np.broadcast_arrays(*(np.asarray(k) for k in key))
            out = np.empty(t.shape, dtype=np.uint32)
            for ti in np.unique(t):
                sel = t == ti
                out[sel] = self.frame(int(ti))[y[sel], x[sel]]
            return out
        tkey, rest = key[0], key[1:]
        if not self._dirty:
            return np.asarray(self.store.labels[key])
        if isinstance(tkey, (int, np.integer)):
            return self.frame(int(tkey) % self.shape[0])[rest]
        frames = range(self.shape[0])[tkey]
        return np.stack([self.frame(t)[rest] for t in frames]) if len(frames) else np.asarray(
            self.store.labels[key]
        )

    def __setitem__(self, key, value) -> None:
        key = self._key(key)
        with self._lock:
            if self._fancy(key):
                t, y, x = np.broadcast_arrays(*(np.asarray(k) for k in key))
                value = np.broadcast_to(np.asarray(value), t.shape)
                for ti in np.unique(t):
                    sel = t == ti
                    frame = self._editable(int(ti))
                    frame[y[sel], x[sel]] = value[sel]
            else:
                self._set_basic(key, value)
        if self.autoflush:
            self.flush()
        elif self.on_dirty is not None:
            self.on_dirty()

    def _set_basic(self, key: tuple, value) -> None:
        tkey, rest = key[0], key[1:]
        if isinstance(tkey, (int, np.integer)):
            self._editable(int(tkey) % self.shape[0])[rest] = value
            return
        frames = range(self.shape[0])[tkey]
        value = np.asarray(value)
        for i, t in enumerate(frames):
            self._editable(t)[rest] = value[i] if value.ndim == 3 else value

    def _editable(self, t: int) -> np.ndarray:
        if t not in self._dirty:
            self._dirty[t] = np.array(self.store.labels[t], dtype=np.uint32)
        return self._dirty[t]

    def flush(self) -> list[int]:
        """Persist the edited frames through ``on_edit``; returns the frames written."""
        with self._lock:
            dirty, self._dirty = self._dirty, {}
        for t, frame in sorted(dirty.items()):
            if self.on_edit is not None:
                self.on_edit(t, frame)
            else:
                self.store.write_edited_labels(t, frame)
        return sorted(dirty)

    def discard(self) -> None:
        """Drop unflushed edits."""
        with self._lock:
            self._dirty.clear()


class _PropagationRun:
    """Iterator over a propagation's progress that frees the session when it ends, fails or is
    closed (even before its first frame)."""

    def __init__(self, gen, lock: threading.Lock):
        self._gen = gen
        self._lock = lock
        self._held = True

    def __iter__(self):
        return self

    def _release(self) -> None:
        if self._held:
            self._held = False
            self._lock.release()

    def __next__(self):
        try:
            return next(self._gen)
        except BaseException:
            self._release()
            raise

    def close(self) -> None:
        try:
            self._gen.close()
        finally:
            self._release()

    def __del__(self):
        try:
            self.close()
        except Exception:  # noqa: BLE001 - interpreter shutdown
            pass


class AnnotationSession:
    """Objects, keyframe prompts, propagation and edits of one video's project.

    Args:
        source: a :class:`~napari_sam2_track.sources.FrameSource`.
        store: the open :class:`~napari_sam2_track.project.ProjectStore` for that source.
        model: optional :class:`~napari_sam2_track.engine.models.LoadedModel`; prompts that
            need the model raise :class:`ModelError` until :meth:`set_model` is called.
    """

    def __init__(self, source, store: ProjectStore, model=None):
        expected = (len(source), source.height, source.width)
        if tuple(store.shape) != expected:
            raise StoreError(
                f"project {store.path} is for a {store.shape[0]}x{store.shape[1]}x"
                f"{store.shape[2]} video, not {expected[0]}x{expected[1]}x{expected[2]}; "
                "choose another project path"
            )
        self.source = source
        self.store = store
        self.model = None
        self._tracker = None
        self.active_id: int | None = None
        self._clicks: dict[tuple[int, int], list[tuple[float, float, int]]] = {}
        self._boxes: dict[tuple[int, int], tuple[float, float, float, float]] = {}
        for p in store.prompts.prompts:
            if p.mask is None:
                self._clicks[(p.object, p.frame)] = [
                    (float(x), float(y), int(v)) for (x, y), v in zip(p.points, p.labels)
                ]
                if p.box is not None:
                    self._boxes[(p.object, p.frame)] = tuple(p.box)
        self._running = threading.Lock()
        ids = store.object_ids()
        self.active_id = ids[0] if ids else None
        if model is not None:
            self.set_model(model)

    # ---------------------------------------------------------------- creation
    @classmethod
    def open(
        cls,
        video,
        store_path: str | Path | None = None,
        *,
        schema=None,
        model=None,
        name: str = "annotations",
        **source_options: Any,
    ) -> "AnnotationSession":
        """Open ``video`` (path, array or FrameSource) and its project (created if missing).

        The project defaults to ``<video stem>.zarr`` beside a video file, and to a temporary
        folder for in-memory arrays. ``schema`` is stored in a new project.
        """
        from .pipeline import open_or_create_store
        from .sources import open_source

        source = open_source(video, **source_options)
        if store_path is None:
            path = video if isinstance(video, (str, Path)) else source.path
            store_path = default_store_path(path, name=name)
        existed = Path(store_path).exists()
        store = open_or_create_store(store_path, source, resume=True)
        if schema is not None and (not existed or store.meta.get("schema") is None):
            store.set_schema(schema)
        return cls(source, store, model=model)

    # ------------------------------------------------------------------ model
    def set_model(self, model) -> None:
        """Use ``model`` (a loaded SAM 2 model) from now on; stored prompts are re-applied."""
        self._ensure_idle("change the model")
        if self._tracker is not None:
            self._tracker.close()
            self._tracker = None
        self.model = model

    @property
    def has_model(self) -> bool:
        return self.model is not None

    @property
    def tracker(self):
        """The live tracker (created on first use; keeps memory between propagations)."""
        if self._tracker is None:
            if self.model is None:
                raise ModelError("no model loaded: choose a model and device and press 'Load model'")
            from .engine.tracker import StreamingTracker

            tracker = StreamingTracker(self.model, self.source)
            for p in self.store.prompts.prompts:
                if p.mask is not None:
                    tracker.add_mask(p.object, p.frame, self.store.prompt_mask(p))
                else:
                    tracker.add_prompt(p)
            self._tracker = tracker
        return self._tracker

    # ----------------------------------------------------------------- schema
    @property
    def schema(self):
        return self.store.schema

    def set_schema(self, schema) -> list[int]:
        """Store ``schema``; objects whose category it no longer has move to its first category.

        Returns the ids of the objects that were moved.
        """
        self._ensure_idle("change the schema")
        names = schema.category_names()
        moved = [o.id for o in self.store.objects if o.category not in names]
        objects = [
            o if o.category in names else o.model_copy(update={"category": names[0]})
            for o in self.store.objects
        ]
        self.store.set_schema(schema)
        self.store.set_objects(objects)
        return moved

    def label_colors(self) -> dict[int, str]:
        """Object id -> ``#rrggbb`` colour (its category's hue), for the Labels layer."""
        from .schema import object_colors

        return object_colors(self.store.objects, self.schema)

    # ---------------------------------------------------------------- objects
    @property
    def objects(self) -> list[ObjectSpec]:
        return self.store.objects

    def object(self, obj_id: int) -> ObjectSpec:
        for o in self.store.objects:
            if o.id == obj_id:
                return o
        raise PromptError(f"there is no object {obj_id}; add it first")

    def add_object(self, name: str = "", category: str | None = None, obj_id: int | None = None) -> ObjectSpec:
        """Add an object (next free id by default) and make it the active one."""
        self._ensure_idle("add objects")
        ids = self.store.object_ids()
        if obj_id is None:
            obj_id = max(ids, default=0) + 1
        elif obj_id in ids:
            raise PromptError(f"object {obj_id} already exists")
        category = category or self.schema.category_names()[0]
        obj = ObjectSpec(id=obj_id, name=name or f"object {obj_id}", category=category)
        self.store.add_object(obj)
        self.active_id = obj_id
        return obj

    def remove_object(self, obj_id: int) -> None:
        """Delete an object with its prompts, masks and pixels."""
        self._ensure_idle("remove objects")
        self.object(obj_id)
        if self._tracker is not None and obj_id in self._tracker.obj_ids:
            self._tracker.remove_object(obj_id)
        self.store.remove_object(obj_id)
        for key in [k for k in (*self._clicks, *self._boxes) if k[0] == obj_id]:
            self._clicks.pop(key, None)
            self._boxes.pop(key, None)
        if self.active_id == obj_id:
            ids = self.store.object_ids()
            self.active_id = ids[0] if ids else None

    def rename_object(self, obj_id: int, name: str) -> None:
        self.store.add_object(self.object(obj_id).model_copy(update={"name": name}))

    def set_category(self, obj_id: int, category: str) -> None:
        if category not in self.schema.category_names():
            raise PromptError(
                f"unknown category {category!r}; the schema has {', '.join(self.schema.category_names())}"
            )
        self.store.add_object(self.object(obj_id).model_copy(update={"category": category}))

    def set_active(self, obj_id: int | None) -> None:
        if obj_id is not None:
            self.object(obj_id)
        self.active_id = obj_id

    def _obj(self, obj_id: int | None) -> int:
        obj_id = self.active_id if obj_id is None else obj_id
        if obj_id is None:
            raise PromptError("no object selected: add an object first")
        self.object(obj_id)
        return obj_id

    # ---------------------------------------------------------------- prompts
    def clicks(self, obj_id: int, frame: int) -> list[tuple[float, float, int]]:
        """The clicks ``(x, y, label)`` of an object on a frame."""
        return list(self._clicks.get((obj_id, frame), []))

    def box(self, obj_id: int, frame: int):
        return self._boxes.get((obj_id, frame))

    def _check_frame(self, frame: int) -> None:
        if not 0 <= frame < len(self.source):
            raise PromptError(f"frame {frame} is outside the video (0..{len(self.source) - 1})")

    def set_prompt(
        self,
        frame: int,
        clicks: list[tuple[float, float, int]] | None = None,
        box=None,
        obj_id: int | None = None,
    ) -> np.ndarray:
        """Replace the clicks ``(x, y, label)`` and/or box of an object on a frame.

        The prompt is checked against the frame before anything changes. Returns the object's
        mask there, which is also written to the project (state ``prompted``). With neither
        clicks nor box the keyframe is deleted and an empty mask is returned.
        """
        obj_id = self._obj(obj_id)
        self._ensure_idle("change prompts")
        self._check_frame(frame)
        clicks = [(float(x), float(y), int(v)) for x, y, v in (clicks or [])]
        if not clicks and box is None:
            self.delete_keyframe(obj_id, frame)
            return np.zeros((self.source.height, self.source.width), bool)
        prompt = Prompt.build(
            object=obj_id,
            frame=frame,
            points=[(x, y) for x, y, _ in clicks],
            labels=[v for _, _, v in clicks],
            box=None if box is None else tuple(float(b) for b in box),
        )
        prompt.check_frame(len(self.source), self.source.height, self.source.width)
        mask = self.tracker.add_points(
            obj_id, frame, points=prompt.points or None, labels=prompt.labels or None, box=prompt.box
        )
        self._clicks[(obj_id, frame)] = clicks
        if prompt.box is not None:
            self._boxes[(obj_id, frame)] = prompt.box
        else:
            self._boxes.pop((obj_id, frame), None)
        self.store.put_prompt(prompt)
        self._write_keyframe(obj_id, frame, mask)
        return mask

    def add_click(
        self, frame: int, x: float, y: float, positive: bool = True, obj_id: int | None = None
    ) -> np.ndarray:
        """Add a positive or negative click for the (active) object; returns its mask there."""
        obj_id = self._obj(obj_id)
        clicks = self.clicks(obj_id, frame) + [(float(x), float(y), 1 if positive else 0)]
        return self.set_prompt(frame, clicks, self.box(obj_id, frame), obj_id=obj_id)

    def set_box(self, frame: int, box, obj_id: int | None = None) -> np.ndarray:
        """Set the box ``[x0, y0, x1, y1]`` of the (active) object on a frame (clicks kept)."""
        obj_id = self._obj(obj_id)
        return self.set_prompt(frame, self.clicks(obj_id, frame), box, obj_id=obj_id)

    def use_label_mask_as_prompt(
        self, frame: int, obj_id: int | None = None, labels2d: np.ndarray | None = None
    ) -> np.ndarray:
        """Make the object's current mask on ``frame`` (from ``labels2d`` or the project) its
        mask prompt there; returns the model's mask."""
        obj_id = self._obj(obj_id)
        self._ensure_idle("change prompts")
        self._check_frame(frame)
        if labels2d is None:
            labels2d = self.store.labels[frame]
        labels2d = np.asarray(labels2d)
        if labels2d.shape != (self.source.height, self.source.width):
            raise PromptError(
                f"labels of shape {labels2d.shape} do not match the "
                f"{self.source.width}x{self.source.height} video"
            )
        region = labels2d == obj_id
        if not region.any():
            raise PromptError(
                f"object {obj_id} has no pixels on frame {frame}; paint it first or click on it"
            )
        mask = self.tracker.add_mask(obj_id, frame, region)
        self._clicks.pop((obj_id, frame), None)
        self._boxes.pop((obj_id, frame), None)
        self.store.put_prompt(Prompt(object=obj_id, frame=frame, mask="store:pending"), region)
        self._write_keyframe(obj_id, frame, mask)
        return mask

    def _write_keyframe(self, obj_id: int, frame: int, mask: np.ndarray) -> None:
        self.store.write_mask(obj_id, frame, mask)
        self.store.merge_labels(frame)
        self.store.write_row(obj_id, frame, mask, presence=np.nan, state=STATE_PROMPTED, run=0)

    def keyframes(self, obj_id: int | None = None) -> list[int]:
        """Prompted frames of the (active) object, sorted."""
        obj_id = self.active_id if obj_id is None else obj_id
        return sorted({p.frame for p in self.store.prompts.prompts if p.object == obj_id})

    def delete_keyframe(self, obj_id: int, frame: int) -> None:
        """Remove the object's prompt on ``frame`` (its tracked masks stay until re-propagated)."""
        self._ensure_idle("change prompts")
        if self._tracker is not None:
            self._tracker.clear_prompt(obj_id, frame)
        self.store.delete_prompt(obj_id, frame)
        self._clicks.pop((obj_id, frame), None)
        self._boxes.pop((obj_id, frame), None)

    # ------------------------------------------------------------ propagation
    @property
    def running(self) -> bool:
        """Whether a propagation is in progress."""
        return self._running.locked()

    def _ensure_idle(self, what: str) -> None:
        if self.running:
            raise PromptError(f"cannot {what} while a propagation runs; wait or press Cancel")

    def propagate_iter(
        self,
        direction: str = "both",
        start: int | None = None,
        end: int | None = None,
        cancel: threading.Event | None = None,
        obj_ids: list[int] | None = None,
    ) -> Iterator:
        """Check the request now and return a generator of
        :class:`~napari_sam2_track.pipeline.Progress` that propagates into the project.

        Raises :class:`PromptError` at once if a propagation already runs, there are no
        prompts, or the range is invalid; :class:`ModelError` without a model. Frames written
        before a cancel or an error stay written.
        """
        if not self.store.prompts.prompts:
            raise PromptError("no prompts yet: click on an object or draw a box first")
        if not self._running.acquire(blocking=False):
            raise PromptError("a propagation is already running; wait for it or press Cancel")
        try:
            tracker = self.tracker
            tracker.plan(direction, start, end, obj_ids)  # validate before the worker starts
        except BaseException:
            self._running.release()
            raise
        return _PropagationRun(self._propagate(tracker, direction, start, end, cancel, obj_ids), self._running)

    def _propagate(self, tracker, direction, start, end, cancel, obj_ids):
        from .pipeline import track

        yield from track(
            self.source,
            None,
            self.store,
            model=self.model,
            direction=direction,
            start=start,
            end=end,
            cancel=cancel,
            obj_ids=obj_ids,
            tracker=tracker,
        )

    # ------------------------------------------------------------------ edits
    def persist_edit(self, frame: int, labels2d: np.ndarray) -> list[int]:
        """Save a hand-edited label image of ``frame``; the changed objects are marked
        ``edited``. Returns their ids."""
        self._ensure_idle("save edits")
        self._check_frame(frame)
        labels2d = np.asarray(labels2d)
        if labels2d.shape != (self.source.height, self.source.width):
            raise StoreError(
                f"edited labels of shape {labels2d.shape} do not match the "
                f"{self.source.width}x{self.source.height} video"
            )
        return self.store.write_edited_labels(frame, labels2d)

    def labels_array(self) -> StoreLabelsArray:
        """An array view of the project's labels whose edits go through :meth:`persist_edit`."""
        return StoreLabelsArray(self.store, on_edit=self.persist_edit)

    def close(self) -> None:
        if self._tracker is not None:
            self._tracker.close()
            self._tracker = None
