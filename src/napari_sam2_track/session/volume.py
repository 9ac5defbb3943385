"""Volumes in the session: a ``(z, y, x)`` or ``(t, z, y, x)`` image annotated slice by slice.

A volume project stores planes ``p = t * Z + z`` (see :mod:`napari_sam2_track.project.volume`).
The session works on planes as it works on a video's frames: its frame source is the volume's
planes (:class:`PlaneFrames`), its prompts are keyed by ``(object, plane)`` and a click on a
slice computes that slice's mask at once on the compute thread. In the project a prompt is
stored with its timepoint (``frame``) and slice (``z``). A propagation runs the core's volume
tracking (:mod:`napari_sam2_track.volumes.run`: along z both ways from the prompted slices,
then timepoint to timepoint), so the dock writes what ``track VOLUME --prompts`` writes. A
correction (``request_correction``, or a prompt on a propagated plane with ``auto_correct``
on) re-propagates one object along z within its timepoint and re-chains the timepoints seeded
from it (:mod:`.volume_corrections`).

napari shows a volume with one or two leading axes before ``(y, x)``: ``(z, y, x)`` for a
single volume, ``(t, z, y, x)`` for a series. :class:`PlaneAxes` converts a layer's leading
coordinates to a plane and back, and :class:`VolumeLabelsArray` shows the project's labels
with the image layer's shape.
"""

from __future__ import annotations

import threading
from pathlib import Path
from types import SimpleNamespace
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any, Sequence

import numpy as np

from ..errors import ProjectLockedError, PromptError, SourceError, StoreError
from ..project import ProjectStore
from ..prompts import Prompt
from .core import AnnotationSession, describe_writer
from .labels import StoreLabelsArray
from .layers import PlaneAxes
from .run import PropagationRun, RunReport, reported_run

if TYPE_CHECKING:
    from ..engine.models import LoadedModel
    from ..pipeline import Progress
    from ..schema import Schema
    from ..sources.volume import VolumeSource
    from .engine import SessionEngine
    from .volume_corrections import VolumeCorrections

__all__ = ["PlaneAxes", "PlaneFrames", "VolumeLabelsArray", "VolumeSession", "is_volume_layer",
           "volume_source_for_array"]


def is_volume_layer(shape: Sequence[int], rgb: bool, axis_labels: Sequence[str] = ()) -> bool:
    """Whether an image layer is a volume: gray with axes labelled ``(z, y, x)`` or
    ``(t, z, y, x)``, or 4-D gray whose last axis is not 3 or 4 long (that looks like RGB
    frames shown as gray)."""
    if rgb or len(shape) not in (3, 4):
        return False
    labels = [str(a).lower() for a in axis_labels]
    if labels[-3:] == ["z", "y", "x"]:
        return True
    return len(shape) == 4 and int(shape[-1]) not in (3, 4)


def volume_source_for_array(data: Any, scale: Sequence[float] | None = None,
                            unit: str | None = None) -> "VolumeSource":
    """A :class:`~napari_sam2_track.sources.volume.VolumeSource` over a ``(z, y, x)`` or
    ``(t, z, y, x)`` array, its voxel spacing taken from a layer's ``scale``."""
    from ..sources.volume import ArrayVolumeSource

    axes = "ZYX" if data.ndim == 3 else "TZYX"
    if data.ndim not in (3, 4):
        raise SourceError(f"a volume layer has 3 or 4 dimensions, not shape {tuple(data.shape)}")
    sizes = {}
    if scale is not None:
        for name, step in zip(axes[-3:].lower(), list(scale)[-3:]):
            sizes[name] = (float(step), unit)
    return ArrayVolumeSource(data, axes, sizes=sizes)


class PlaneFrames:
    """The planes ``t * Z + z`` of a volume as the session's frame source."""

    def __init__(self, volume: "VolumeSource"):
        n_t, n_z, h, w = volume.shape
        self.volume = volume
        self.n_z = int(n_z)
        self.height, self.width = int(h), int(w)
        self.path = getattr(volume, "path", None)
        self._len = int(n_t) * int(n_z)

    def __len__(self) -> int:
        return self._len

    def read_rgb(self, plane: int) -> np.ndarray:
        if not 0 <= plane < self._len:
            raise IndexError(f"plane {plane} out of range (0..{self._len - 1})")
        return self.volume.read_slice_rgb(*divmod(int(plane), self.n_z))

    def close(self) -> None:
        """Nothing to release: the volume stays open."""


class VolumeLabelsArray(StoreLabelsArray):
    """The project's labels shaped as the image layer, ``(Z, H, W)`` or ``(T, Z, H, W)``.

    Reads and writes go plane by plane through :class:`StoreLabelsArray` (so a running
    propagation shows up on refresh, and painting a slice saves that plane).
    """

    def __init__(self, store: ProjectStore, axes: PlaneAxes, **kwargs: Any):
        super().__init__(store, **kwargs)
        self.axes = axes

    @property
    def shape(self) -> tuple[int, ...]:
        n_t, n_z, h, w = self.store.volume_shape
        return (n_z, h, w) if self.axes.lead == 1 else (n_t, n_z, h, w)

    def _planes_key(self, key) -> tuple[list[int], tuple[int, ...], tuple]:
        """The planes a basic key selects, the shape of its leading result, the rest of it."""
        if not isinstance(key, tuple):
            key = (key,)
        nd = len(self.shape)
        if any(k is Ellipsis for k in key):
            i = next(i for i, k in enumerate(key) if k is Ellipsis)
            key = key[:i] + (slice(None),) * (nd - len(key) + 1) + key[i + 1:]
        key = key + (slice(None),) * (nd - len(key))
        lead, rest = key[: self.axes.lead], key[self.axes.lead:]
        ranges, out_shape = [], []
        for k, n in zip(lead, self.shape):
            if isinstance(k, (int, np.integer)):
                ranges.append([int(k) % n])
            else:
                r = list(range(n)[k])
                ranges.append(r)
                out_shape.append(len(r))
        grid = np.array(np.meshgrid(*ranges, indexing="ij")).reshape(len(ranges), -1).T
        planes = [self.axes.plane(c) for c in grid]
        return planes, tuple(out_shape), rest

    def __getitem__(self, key):
        if isinstance(key, tuple) and self._fancy(key):
            return super().__getitem__(self._plane_fancy(key))
        planes, lead_shape, rest = self._planes_key(key)
        parts = [self.frame(p)[rest] for p in planes]
        if not lead_shape:
            return parts[0]
        return np.stack(parts).reshape(*lead_shape, *parts[0].shape)

    def __setitem__(self, key, value) -> None:
        if isinstance(key, tuple) and self._fancy(key):
            super().__setitem__(self._plane_fancy(key), value)
            return
        planes, lead_shape, rest = self._planes_key(key)
        value = np.asarray(value)
        if lead_shape and value.ndim > len(rest) and value.shape[: len(lead_shape)] == lead_shape:
            values = value.reshape(-1, *value.shape[len(lead_shape):])
        else:
            values = [value] * len(planes)
        for p, v in zip(planes, values):
            super().__setitem__((p, *rest), v)

    def _plane_fancy(self, key: tuple) -> tuple:
        lead = [np.asarray(k) for k in key[: self.axes.lead]]
        planes = lead[0] if self.axes.lead == 1 else lead[0] * self.axes.n_z + lead[1]
        return (planes, *key[self.axes.lead:])


class VolumeSession(AnnotationSession):
    """An :class:`AnnotationSession` over the planes of a volume project.

    ``lead``: how many axes the image layer has before ``(z, y, x)``'s ``(y, x)``: 1 for a
    ``(z, y, x)`` layer (one timepoint), 2 for ``(t, z, y, x)``.
    """

    def __init__(self, volume: "VolumeSource", store: ProjectStore,
                 model: "LoadedModel | None" = None, *, lead: int | None = None,
                 layer_scale: Sequence[float] | None = None, prefetch: bool = True):
        if not store.is_volume or tuple(store.volume_shape) != tuple(volume.shape):
            raise StoreError(f"project {store.path} was not made for this "
                             f"{'x'.join(map(str, volume.shape))} (t, z, y, x) volume; "
                             "choose another project path")
        self.volume = volume
        n_t = volume.shape[0]
        self.plane_axes = PlaneAxes(lead or (1 if n_t == 1 else 2), volume.shape[1])
        #: the image layer's scale, given to the labels and prompt layers
        self.layer_scale = None if layer_scale is None else tuple(float(s) for s in layer_scale)
        super().__init__(PlaneFrames(volume), store, model, prefetch=prefetch)

    @classmethod
    def open_volume(cls, volume: "VolumeSource", store_path: str | Path, *,
                    schema: "Schema | None" = None, model: "LoadedModel | None" = None,
                    lead: int | None = None, layer_scale: Sequence[float] | None = None,
                    prefetch: bool = True) -> "VolumeSession":
        """Open the volume project at ``store_path`` (created for ``volume`` if missing)."""
        from ..volumes.run import check_fits_volume

        path = Path(store_path)
        existed = path.exists()
        held_by = None
        if existed:
            try:
                store = ProjectStore.open(path)
            except ProjectLockedError:  # another process writes it: QC only
                store = ProjectStore.open(path, mode="r")
                held_by = describe_writer(path)
            try:
                check_fits_volume(store, volume)
            except Exception:
                store.close()
                raise
        else:
            store = ProjectStore.create(path, source=volume)
        if schema is not None and held_by is None and (
                not existed or store.meta.get("schema") is None):
            store.set_schema(schema)
        session = cls(volume, store, model, lead=lead, layer_scale=layer_scale,
                      prefetch=prefetch)
        session.held_by = held_by
        return session

    # ----------------------------------------------------------------- planes
    def stored_prompt(self, prompt: Prompt) -> Prompt:
        t, z = self.store.plane_tz(prompt.frame)
        return prompt.model_copy(update={"frame": t, "z": z})

    def store_where(self, plane: int) -> tuple[int, int | None]:
        return self.store.plane_tz(plane)

    def labels_array(self) -> VolumeLabelsArray:
        """The project's labels shaped as the image layer; edits go through
        :meth:`persist_edit` plane by plane."""
        return VolumeLabelsArray(self.store, self.plane_axes, on_edit=self.persist_edit)

    def _check_frame(self, frame: int) -> None:
        if not 0 <= frame < len(self.source):
            n_t, n_z = self.volume.shape[:2]
            raise PromptError(f"plane {frame} is outside the volume: planes are t * {n_z} + z, "
                              f"0..{len(self.source) - 1} for {n_t} timepoint(s) of {n_z} slices")

    def _new_corrections(self) -> "VolumeCorrections":
        """Corrections that re-propagate along z within a timepoint and re-chain the
        timepoints it seeds (:mod:`.volume_corrections`)."""
        from .volume_corrections import VolumeCorrections

        return VolumeCorrections(self.store, self.store_lock, self.events, self.activity, self.engine,
                                 self.prompt_book, volume=self.volume)

    # ------------------------------------------------------------ propagation
    def propagate_iter(self, direction: str = "both", start: int | None = None,
                       end: int | None = None, cancel: threading.Event | None = None,
                       obj_ids: list[int] | None = None) -> PropagationRun:
        """Propagate the prompts through the volume (:mod:`napari_sam2_track.volumes.run`):
        along z ``direction`` from the prompted slices, then from timepoint to timepoint.
        ``start``/``end`` are planes; the run covers their timepoints."""
        from ..volumes.checks import VolumeRequest, check_volume_request
        from ..volumes.run import plan_volume

        if self._closed:
            raise StoreError("this project was closed; open it again")
        self.check_writable("propagate")
        n_z = self.volume.shape[1]
        request = VolumeRequest(direction=direction,  # type: ignore[arg-type]
                                start=None if start is None else int(start) // n_z,
                                end=None if end is None else int(end) // n_z, obj_ids=obj_ids)
        prompts = self.store.prompts
        if not prompts.prompts:
            raise PromptError("no prompts yet: click on an object on a slice or draw a box first")
        check_volume_request(self.volume, prompts, request)
        plan = plan_volume(prompts, request, self.volume.shape[0])
        self.engine.require_model()
        if not self._running.acquire(blocking=False):
            raise PromptError("a propagation is already running; wait for it or press Cancel")
        self.engine.compute.cancel_prefetch()
        lo, hi = plan.t_lo * n_z, plan.t_hi * n_z + n_z - 1
        summary = SimpleNamespace(direction=direction, start=lo, end=hi, objects=plan.objects)
        report = RunReport(self.events, self.activity, summary)  # type: ignore[arg-type]
        gen = _propagate_volume(self.engine, self.store, self.volume, request, cancel, report)
        run = PropagationRun(self.events, gen, self._running, report.outcome)
        self.events.running_changed.emit(True)
        return run


def _propagate_volume(engine: "SessionEngine", store: ProjectStore, volume: "VolumeSource",
                      request, cancel: threading.Event | None, report: RunReport):
    """The run (on a worker): waits for pending prompts, then the core's volume tracking of
    the project's prompts into the project."""
    def track(model: "LoadedModel") -> Iterator["Progress"]:
        from ..volumes.run import track_in_open_store

        return track_in_open_store(store, volume, model=model, request=request, cancel=cancel)

    return reported_run(engine, cancel, report, track)
