"""Tracking through a volume or a 3D + time series into a volume project.

**Along z** (one timepoint): the slices are SAM 2's frames (:class:`~.frames.SliceFrames`),
so the engine's :class:`~napari_sam2_track.engine.tracker.StreamingTracker` runs over them
unchanged. All of an object's prompts at that timepoint (on any slices) are keyframes of one
SAM 2 memory, and the multi-keyframe plan of video (:func:`~napari_sam2_track.passes.plan_passes`)
propagates from them, both ways by default. ``stop_after_empty`` ends an object's direction
after that many empty slices in a row (never before one of its keyframes still ahead).

**Along t** (a chain of timepoints): the prompted timepoint is propagated along z first; each
next timepoint (then each previous one) is seeded from the previous timepoint's result, the
object's mask on its slice of largest area given as a mask prompt on the same slice, and
propagated along z both ways from there. Only that 2D mask is carried from one timepoint to
the next, not SAM 2's memory: each timepoint gets a fresh tracker, so memory stays flat in the
number of timepoints. A prompt of the object on a timepoint overrides the chain from there.
A timepoint is never propagated into another one. See ``docs/volumes.md``.
"""

from __future__ import annotations

import dataclasses
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from ..errors import PromptError, StoreError, summarize_list
from ..project import COL, STATE_NOT_RUN, ProjectStore
from ..project import placement
from ..prompts import Prompt, PromptSet
from .checks import VolumeRequest, check_volume_request
from .frames import SliceFrames

if TYPE_CHECKING:
    from ..engine.models import LoadedModel
    from ..pipeline import Progress, Target
    from ..project.versions import RunVersions
    from ..schema import Schema
    from ..review.segments import ChainStop

#: A seed carried to the next timepoint: ``(slice z, bool mask)``.
Seed = tuple[int, np.ndarray]


def check_fits_volume(store: ProjectStore, volume) -> None:
    """Refuse a project made for another input (shape, content) than ``volume``."""
    if not store.is_volume or tuple(store.volume_shape) != tuple(volume.shape):
        made = "x".join(map(str, store.volume_shape if store.is_volume else store.shape))
        what = "volume" if store.is_volume else "2D video"
        raise StoreError(f"{store.path} was made for a {made} {what}, not the "
                         f"{'x'.join(map(str, volume.shape))} volume (t, z, y, x); use another "
                         "--out or --overwrite")
    stored = store.meta["source"].get("fingerprint")
    if stored and stored != volume.fingerprint():
        raise StoreError(f"{store.path} was made from different volume content; use another "
                         "--out or --overwrite")


@dataclasses.dataclass
class VolumePlan:
    """The timepoints a volume run visits, in order, and who is tracked at each."""

    objects: list[int]
    first: dict[int, int]  # object -> its first prompted timepoint in range
    t_lo: int
    t_hi: int
    prompts: dict[tuple[int, int], list[Prompt]]  # (object, timepoint) -> its prompts there

    @property
    def steps(self) -> list[tuple[int, bool]]:
        """``(timepoint, backward)``: forward from the earliest prompted timepoint to the
        end, then backward from the latest first-prompted timepoint to the start."""
        lo, hi = min(self.first.values()), max(self.first.values())
        return ([(t, False) for t in range(lo, self.t_hi + 1)]
                + [(t, True) for t in range(hi - 1, self.t_lo - 1, -1)])

    def active(self, t: int, backward: bool) -> list[int]:
        """Objects whose chain reaches timepoint ``t`` in this sweep."""
        return [o for o in self.objects if (self.first[o] > t if backward else self.first[o] <= t)]


def plan_volume(prompts: PromptSet, request: VolumeRequest, n_t: int) -> VolumePlan:
    """The timepoint plan of ``request`` over ``prompts``; one-line :class:`PromptError` for
    objects without prompts in the timepoint range."""
    t_lo = 0 if request.start is None else int(request.start)
    t_hi = n_t - 1 if request.end is None else int(request.end)
    prompted = sorted({p.object for p in prompts.prompts})
    if not prompted:
        raise PromptError("no prompts yet: click on an object on a slice or draw a box first")
    chosen = prompted if request.obj_ids is None else [int(o) for o in request.obj_ids]
    unknown = [o for o in chosen if o not in prompted]
    if unknown:
        raise PromptError(f"objects {summarize_list(unknown)} have no prompts "
                          f"(prompted objects: {summarize_list(prompted)})")
    by: dict[tuple[int, int], list[Prompt]] = {}
    for p in prompts.prompts:
        if p.object in chosen and t_lo <= p.frame <= t_hi:
            by.setdefault((p.object, p.frame), []).append(p)
    first = {o: min(t for (oo, t) in by if oo == o) for o in chosen if any(k[0] == o for k in by)}
    missing = [o for o in chosen if o not in first]
    if missing:
        raise PromptError(f"no prompt for objects {summarize_list(missing)} in timepoints "
                          f"{t_lo}-{t_hi}; add a prompt there first")
    return VolumePlan(chosen, first, t_lo, t_hi, by)


class VolumeTracking:
    """The results of a volume run, timepoint by timepoint, as project planes.

    Iterate it for :class:`~napari_sam2_track.engine.tracker.FrameResult` whose ``frame`` is
    the plane index ``t * Z + z``. ``done``: planes already on disk per object (``--resume``):
    a timepoint whose planes are all on disk is not computed again, its seeds are read back.
    """

    def __init__(self, model: "LoadedModel", volume, plan: VolumePlan, request: VolumeRequest,
                 mask_of: Callable[[Prompt], np.ndarray], *,
                 store: ProjectStore | None = None, done: dict[int, set[int]] | None = None,
                 cancel: threading.Event | None = None, retain_frames: int | str = "window"):
        self.model = model
        self.volume = volume
        self.plan = plan
        self.request = request
        self.mask_of = mask_of
        self.store = store
        self.done = done or {}
        self.cancel = cancel
        self.retain_frames = retain_frames
        n_z = volume.shape[1]
        self.n_z = n_z
        self.z_lo, self.z_hi = request.z_range or (0, n_z - 1)
        self.tracker = None  # the live tracker (one timepoint's state at a time)
        #: ``chain_stop(t, backward)``, asked once timepoint ``t`` is written: whether its sweep
        #: of the chain ends there (a correction's early stop)
        self.chain_stop: Callable[[int, bool], bool] | None = None

    @property
    def total(self) -> int:
        """Slices the run computes (about: a keyframe met by both passes counts once)."""
        return len(self.plan.steps) * (self.z_hi - self.z_lo + 1)

    def state_bytes(self) -> int:
        tracker = self.tracker
        return tracker.state_bytes() if tracker is not None else 0

    def __iter__(self) -> Iterator:
        forward: dict[int, Seed] = {}
        backward: dict[int, Seed] = {}  # the first prompted timepoint's result, per object
        ended: set[bool] = set()  # sweeps the chain stop ended
        for t, reverse in self.plan.steps:
            if self.cancel is not None and self.cancel.is_set():
                return
            if reverse in ended:
                continue
            carried = backward if reverse else forward
            best = yield from self._timepoint(t, self.plan.active(t, reverse), carried)
            for o in self.plan.active(t, reverse):
                carried.pop(o, None)
            carried.update(best)
            if not reverse:
                backward.update({o: s for o, s in best.items() if self.plan.first[o] == t})
            if self.chain_stop is not None and self.chain_stop(t, reverse):
                ended.add(reverse)

    # -------------------------------------------------------------- one timepoint
    def _timepoint(self, t: int, active: list[int], carried: dict[int, Seed]):
        """Propagate timepoint ``t`` along z; returns each object's seed for the next one."""
        seeds = {o: carried[o] for o in active if (o, t) not in self.plan.prompts and o in carried}
        prompted = [o for o in active if (o, t) in self.plan.prompts]
        tracked = prompted + [o for o in active if o in seeds]
        if not tracked:
            return {}
        base = t * self.n_z + self.z_lo
        planes = range(base, base + self.z_hi - self.z_lo + 1)
        if self.store is not None and all(p in self.done.get(o, ()) for o in tracked for p in planes):
            return self._stored_seeds(tracked, base, len(planes))
        from ..engine.tracker import StreamingTracker

        frames = SliceFrames(self.volume, t, self.z_lo, self.z_hi)
        tracker = self.tracker = StreamingTracker(self.model, frames,  # type: ignore[arg-type]
                                                  retain_frames=self.retain_frames)
        try:
            for o in prompted:
                for p in self.plan.prompts[o, t]:
                    local = frames.frame_of(p.z)
                    if p.mask is not None:
                        tracker.add_mask(o, local, self.mask_of(p))
                    else:
                        tracker.add_prompt(p.model_copy(update={"frame": local, "z": None}))
            for o, (z, mask) in seeds.items():
                tracker.add_mask(o, frames.frame_of(z), mask)
            plan = tracker.plan(self.request.direction, None, None, tracked)
            best: dict[int, tuple[int, int, np.ndarray]] = {}
            stopper = _EarlyStop(plan, tracker, self.request.stop_after_empty)
            for result in tracker.run(plan, self.cancel):
                stopper.see(result)
                for o, m in result.masks.items():
                    area = int(np.count_nonzero(m))
                    if area > best.get(o, (0,))[0]:
                        best[o] = (area, frames.z_of(result.frame), m)
                yield dataclasses.replace(result, frame=base + result.frame)
        finally:
            self.tracker = None
            tracker.close()
        return {o: (z, m) for o, (_, z, m) in best.items()}

    def _stored_seeds(self, objects: list[int], base: int, n: int) -> dict[int, Seed]:
        """Seeds of a timepoint already on disk (``--resume``), read back from the project."""
        out = {}
        for o in objects:
            rows = self.store.table_rows(o, base, base + n)
            area = np.nan_to_num(rows[:, COL["area"]]) if rows is not None else np.zeros(n)
            if area.max(initial=0) > 0:
                i = int(np.argmax(area))
                out[o] = (self.z_lo + i, self.store.mask(o, base + i))
        return out


class _EarlyStop:
    """``stop_after_empty``: ends an object's pass after N empty slices in a row, unless one
    of its keyframes lies further along the pass."""

    def __init__(self, plan, tracker, limit: int | None):
        self.limit = limit
        self.passes = {("backward" if p.reverse else "forward"): p for p in plan.passes}
        self.keys = {o: tracker.keyframes(o) for o in plan.objects} if limit else {}
        self.empty: dict[tuple[str, int], int] = {}

    def see(self, result) -> None:
        if not self.limit:
            return
        for o, mask in result.masks.items():
            key = (result.direction, o)
            if o in result.prompted or mask.any():
                self.empty[key] = 0
                continue
            self.empty[key] = self.empty.get(key, 0) + 1
            forward = result.direction == "forward"
            ahead = any((k > result.frame) if forward else (k < result.frame) for k in self.keys[o])
            if self.empty[key] >= self.limit and not ahead:
                self.passes[result.direction].stop(o)


# ----------------------------------------------------------------------------- the run
def track_volume(volume, prompts: PromptSet | None, target: "Target", *, model: "LoadedModel",
                 request: VolumeRequest, prompts_dir: str | Path | None = None,
                 cancel: threading.Event | None = None, schema: "Schema | None" = None,
                 command: str | None = None, retain_frames: int | str = "window"
                 ) -> Iterator["Progress"]:
    """Track ``prompts`` through ``volume`` into the volume project ``target`` (checked by
    :func:`~napari_sam2_track.pipeline.check_target`): new, replaced or resumed, with the
    same guarantees as video runs (nothing half-written, the lock held throughout)."""
    from ..pipeline import _NotCompleted, _Seeding, _write_failures

    n_t, _, h, w = volume.shape
    seeding = _Seeding(volume, prompts, prompts_dir, schema)
    masks = _checked_masks(seeding, prompts, h, w)
    out = target.path
    if target.mode == "resume":
        with ProjectStore.open(out, command=command) as store:
            check_fits_volume(store, volume)
            given = prompts if prompts is not None else store.prompts
            check_volume_request(volume, given, request)
            plan = plan_volume(given, request, n_t)
            with _write_failures(out, store, plan.objects, discarded=False):
                seeding.store(store, masks)
                yield from _run(store, volume, given, masks, model, request, plan, True,
                                cancel, prompts_dir, retain_frames)
        return
    plan = plan_volume(prompts, request, n_t)
    if target.mode == "new":
        placement.check_destination(out, False, command)
        with _write_failures(out, None, plan.objects, discarded=True):
            with ProjectStore.building(out, source=volume, command=command) as store:
                seeding.store(store, masks)
        try:
            with _write_failures(out, store, plan.objects, discarded=False):
                yield from _run(store, volume, prompts, masks, model, request, plan, False,
                                cancel, prompts_dir, retain_frames)
        finally:
            store.close()
        return
    held = placement.check_destination(out, True, command)
    try:
        try:
            with _write_failures(out, None, plan.objects, discarded=True):
                with ProjectStore.building(out, source=volume, overwrite=True,
                                           command=command) as store:
                    seeding.store(store, masks)
                    yield from _run(store, volume, prompts, masks, model, request, plan, False,
                                    cancel, prompts_dir, retain_frames)
                    if store.meta["runs"][-1]["status"] != "completed":
                        raise _NotCompleted
        except _NotCompleted:
            return
        store.close()
    finally:
        if held is not None:
            held.release()


def track_in_open_store(store: ProjectStore, volume, *, model: "LoadedModel",
                        request: VolumeRequest, cancel: threading.Event | None = None,
                        retain_frames: int | str = "window",
                        versions: "RunVersions | None" = None,
                        chain_stop: "ChainStop | None" = None) -> Iterator["Progress"]:
    """Track the stored prompts of ``store``, a volume project already open for writing (the
    napari session's), through ``volume``: the tracking of :func:`track_volume`.

    ``versions``: where each plane's pre-image goes (a correction's, finished by its caller;
    default: a ``propagation`` version per object); ``chain_stop``: sees each result (with its
    pre-image) and says after each timepoint whether that sweep of the chain ends there."""
    from ..seeding import load_mask_files

    check_fits_volume(store, volume)
    prompts = store.prompts
    check_volume_request(volume, prompts, request)
    plan = plan_volume(prompts, request, volume.shape[0])
    _, _, h, w = volume.shape
    masks = load_mask_files(prompts, None, h, w)
    yield from _run(store, volume, prompts, masks, model, request, plan, False, cancel, None,
                    retain_frames, versions, chain_stop)


def _checked_masks(seeding, prompts: PromptSet | None, h: int, w: int):
    """Mask files read and object categories checked: nothing written yet."""
    from ..project.store import check_object_categories
    from ..schema import Schema
    from ..seeding import load_mask_files

    masks = load_mask_files(prompts, seeding.prompts_dir, h, w)
    if prompts is not None:
        check_object_categories(prompts.objects, seeding.schema or Schema.default())
    return masks


def _run(store: ProjectStore, volume, prompts: PromptSet, masks, model: "LoadedModel",
         request: VolumeRequest, plan: VolumePlan, resume: bool,
         cancel: threading.Event | None, prompts_dir, retain_frames,
         versions: "RunVersions | None" = None,
         chain_stop: "ChainStop | None" = None) -> Iterator["Progress"]:
    from ..recorded_run import run_into_store
    from ..seeding import mask_source

    done: dict[int, set[int]] = {}
    skip = None
    if resume:
        done = {o: set(store.frames_with_state(o, exclude=(STATE_NOT_RUN,))) for o in plan.objects}
        skip = lambda obj, p: p in done.get(obj, ())  # noqa: E731
    from .axis_run import tracking_class

    tracking = tracking_class(request.axis)(
        model, volume, plan, request, mask_source(store, masks, prompts_dir), store=store,
        done=done, cancel=cancel, retain_frames=retain_frames)
    results = lambda _versions: iter(tracking)  # noqa: E731
    if chain_stop is not None:
        tracking.chain_stop = chain_stop.ends
        results = lambda versions_: chain_stop.watch(iter(tracking), versions_)  # noqa: E731
    n_z = volume.shape[1]
    ranges = [(o, plan.t_lo * n_z, plan.t_hi * n_z + n_z - 1)
              for o in plan.objects]
    yield from run_into_store(
        store, model, results, total=tracking.total, ranges=ranges,
        run_info={"direction": request.direction, "start": plan.t_lo, "end": plan.t_hi,
                  "objects": plan.objects, "resume": resume, **request.describe()},
        skip=skip, cancel=cancel, state_bytes=tracking.state_bytes, versions=versions)
