"""Tracking a volume along y or x into its ``(t, z, y, x)`` project.

The planes across the axis (:class:`~.reslice.AxisView`, resampled to square pixels) are SAM 2's
frames, with everything :class:`~.run.VolumeTracking` does along z: the prompts of an object at
a timepoint in one memory, propagation both ways, the early stop (counted in planes), the chain
of timepoints seeded from the previous one's result (the plane of largest area, as a mask in
the view). What differs:

* Prompts are given in volume coordinates, whatever the axis (``frame`` the timepoint, ``z``
  the slice, clicks ``(x, y)`` on it) and mapped onto the planes through them
  (:func:`~.reslice.map_prompts`); boxes and masks drawn on z-slices are refused with one line.
* A timepoint's view masks are mapped back to ``(Z, H, W)`` (area-correct, see
  :mod:`.reslice`) before anything is written, then handed to the project slice by slice as
  plane results ``t * Z + z``: one timepoint per object is held, flat in the number of
  timepoints. The progress of a timepoint therefore arrives when it is complete.
* The presence logit written for an object on a slice is the highest logit of the view planes
  whose mask reaches that slice (the lowest of the timepoint where none does); ``prompted`` marks
  the slices its prompts are on.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterator

import numpy as np

from ..engine.tracker import FrameResult
from .frames import SliceFrames
from .reslice import AxisView, VolumeAssembler, map_prompts
from .run import Seed, VolumeTracking, _EarlyStop


def check_axis_prompts(view: AxisView, prompts) -> None:
    """One line for prompts the view cannot take (boxes or masks on z-slices)."""
    if prompts is not None:
        map_prompts(view, [p.model_dump() for p in prompts.prompts])


class AxisTracking(VolumeTracking):
    """:class:`~.run.VolumeTracking` along ``request.axis`` (``y`` or ``x``)."""

    def __init__(self, model, volume, plan, request, mask_of, **kw):
        super().__init__(model, volume, plan, request, mask_of, **kw)
        self.view = AxisView(volume, request.axis)

    @property
    def total(self) -> int:
        return len(self.plan.steps) * self.n_z

    def _timepoint(self, t: int, active: list[int], carried: dict[int, Seed]):
        """Propagate timepoint ``t`` across the view's planes; yields its slices' results and
        returns each object's seed (plane, view mask) for the next timepoint."""
        seeds = {o: carried[o] for o in active if (o, t) not in self.plan.prompts and o in carried}
        prompted = [o for o in active if (o, t) in self.plan.prompts]
        tracked = prompted + [o for o in active if o in seeds]
        if not tracked:
            return {}
        base = t * self.n_z
        if self.store is not None and all(p in self.done.get(o, ()) for o in tracked
                                          for p in range(base, base + self.n_z)):
            return self._stored_seeds(tracked, base, self.n_z)
        from ..engine.tracker import StreamingTracker

        view = self.view
        frames = SliceFrames(view, t)
        tracker = self.tracker = StreamingTracker(self.model, frames,  # type: ignore[arg-type]
                                                  retain_frames=self.retain_frames)
        assembler = VolumeAssembler(view)
        logits: dict[int, np.ndarray] = {}  # object -> presence logit per plane
        try:
            given = [p.model_dump() for o in prompted for p in self.plan.prompts[o, t]]
            for p in map_prompts(view, given):
                tracker.add_points(p["object"], p["z"], points=p["points"], labels=p["labels"])
            for o, (k, mask) in seeds.items():
                tracker.add_mask(o, k, mask)
            plan = tracker.plan(self.request.direction, None, None, tracked)
            best: dict[int, tuple[int, int, np.ndarray]] = {}
            stopper = _EarlyStop(plan, tracker, self.request.stop_after_empty)
            for result in tracker.run(plan, self.cancel):
                stopper.see(result)
                for o, m in result.masks.items():
                    area = int(np.count_nonzero(m))
                    if area > best.get(o, (0,))[0]:
                        best[o] = (area, result.frame, m)
                    logits.setdefault(o, np.full(view.shape[1], np.nan))[result.frame] = \
                        result.presence.get(o, np.nan)
                for _ in assembler.add(t, result.frame, result.masks):
                    pass  # a single timepoint: nothing is handed out before finish()
        finally:
            self.tracker = None
            tracker.close()
        if self.cancel is not None and self.cancel.is_set():
            return {}
        for _, volumes in assembler.finish():
            yield from self._slices(t, volumes, logits, prompted)
        return {o: (k, m) for o, (_, k, m) in best.items()}

    def _slices(self, t: int, volumes: dict[int, np.ndarray], logits: dict[int, np.ndarray],
                prompted: list[int]) -> Iterator[FrameResult]:
        """The timepoint's masks as one result per slice (plane ``t * Z + z``)."""
        view = self.view
        on_slice = {z: {p.object for o in prompted for p in self.plan.prompts[o, t]
                        if p.z == z} for z in range(self.n_z)}
        across = 1 if view.axis == "y" else 0  # the planes k are rows (y) or columns (x)
        for z in range(self.n_z):
            masks = {o: volume[z] for o, volume in volumes.items()}
            presence = {o: _presence(logits.get(o), masks[o].any(axis=across)) for o in masks}
            yield FrameResult(frame=t * self.n_z + z, direction="forward", masks=masks,
                              presence=presence, prompted=on_slice[z] & set(masks))

    def _stored_seeds(self, objects: list[int], base: int, n: int) -> dict[int, Seed]:
        """Seeds of a timepoint already on disk (``--resume``): the object's stored volume
        seen in the view, its plane of largest area."""
        t = base // self.n_z
        out = {}
        for o in objects:
            planes = self.view.volume_to_view(self.store.object_volume(o, t))
            area = planes.reshape(planes.shape[0], -1).sum(1)
            if area.max(initial=0) > 0:
                k = int(np.argmax(area))
                out[o] = (k, planes[k])
        return out


def tracking_class(axis: str | None) -> type[VolumeTracking]:
    """The tracking of a volume along ``axis``."""
    return VolumeTracking if axis in (None, "z") else AxisTracking


__all__ = ["AxisTracking", "check_axis_prompts", "tracking_class"]


def _presence(seen: np.ndarray | None, reach: np.ndarray) -> float:
    """Highest logit of the planes ``reach`` marks, else the lowest seen (-inf: none)."""
    if seen is None or np.isnan(seen).all():
        return float("-inf")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN among the planes reached
        value = np.nanmax(seen[reach]) if reach.any() else np.nan
    return float(np.nanmin(seen) if np.isnan(value) else value)
