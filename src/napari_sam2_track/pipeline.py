"""Headless tracking runs: prompts + frame source + model -> project store.

:func:`track` is what the CLI, the napari dock (on a worker thread) and batch jobs drive. A run
reads in three steps, one function each:

1. **check** (:func:`check_target`): the prompts against the video and the output path, before
   any model is loaded or anything is written; a :class:`Target` says what the run will do
   (``new`` project, ``overwrite`` one, ``resume`` one). Callers that load a model first (the
   CLI, batch tasks) check, load, then pass the :class:`Target` as ``out``: nothing is checked
   twice.
2. **seed**: mask files are read, the prompts applied to the tracker
   (:mod:`~napari_sam2_track.seeding`), and the request planned
   (:func:`~napari_sam2_track.passes.plan_passes`), which refuses a bad range; then the
   schema and prompts are stored in the project.
3. **run** (:func:`track_in_store`): frames stream through the
   :class:`~.engine.tracker.StreamingTracker` into a :class:`~.project.StoreWriter`, yielding
   a :class:`Progress` after each frame. Decoding (reader thread), model compute (the
   caller's thread) and writing (writer thread) overlap. An open project with a live tracker
   (the napari session) enters here directly.

Nothing already written is lost: a new project appears at ``out`` only once its prompts are
stored, and ``overwrite`` builds the replacement beside the old project and swaps it in only when
the run completed (:meth:`~.project.ProjectStore.building`). The project's write lock is held for
the whole call. A failed write (full disk, permissions) ends the run as ``failed``, gives the lock
back and raises one line saying which frames are saved.
"""

from __future__ import annotations

import contextlib
import os
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Literal

import numpy as np

from .errors import ProjectLockedError, PromptError, StoreError, describe_os_error, is_disk_full
from .passes import Direction, Plan
from .project import STATE_NOT_RUN, ProjectStore
from .project import placement
from .project.lock import live_holder, lock_path
from .project.store import check_object_categories
from .sources.volume import VolumeSource, refuse_volume
from .prompts import PromptSet
from .recorded_run import Progress, run_into_store
from .seeding import MaskFiles, load_mask_files, mask_source, seed_tracker, store_mask_problem, store_prompts

if TYPE_CHECKING:
    from .volumes.checks import VolumeRequest
    from .engine.models import LoadedModel
    from .project.versions import RunVersions
    from .review.segments import EarlyStop
    from .engine.tracker import StreamingTracker
    from .schema import Schema
    from .sources import FrameSource


@dataclass(frozen=True)
class Request:
    """What to propagate: the direction, the frame range (inclusive; ``None``: the video's
    ends) and the objects (``None``: all prompted)."""

    direction: Direction = "both"
    start: int | None = None
    end: int | None = None
    obj_ids: list[int] | None = None

    def plan(self, tracker: "StreamingTracker") -> Plan:
        """The passes over ``tracker``'s prompts (raises a one-line ``PromptError``)."""
        return tracker.plan(self.direction, self.start, self.end, self.obj_ids)


@dataclass(frozen=True)
class Target:
    """A checked output of :func:`track` (see :func:`check_target`)."""

    path: Path
    mode: Literal["new", "overwrite", "resume"]


def is_volume_source(source: object) -> bool:
    """Whether ``source`` is a volume (tracked along z by :mod:`.volumes.run`)."""
    return isinstance(source, VolumeSource)


def check_output_path(out: str | Path, source: "FrameSource") -> None:
    """Refuse an output equal to, inside, or containing the input video."""
    src = getattr(source, "path", None)
    if not src or not isinstance(src, (str, Path)) or not Path(src).exists():
        return
    out_r, src_r = Path(os.path.realpath(out)), Path(os.path.realpath(src))
    if out_r == src_r or src_r in out_r.parents or out_r in src_r.parents:
        raise StoreError(f"--out {out} would overlap the input video {src}; choose an --out "
                         "outside it")


def check_output(out: str | Path, source: "FrameSource", *, has_prompts: bool, resume: bool = False,
                 overwrite: bool = False) -> None:
    """Refuse an output ``track`` must not write, before anything is loaded or written."""
    out = Path(out)
    check_output_path(out, source)
    exists = out.exists() or out.is_symlink()
    if not has_prompts and (not exists or overwrite):
        raise StoreError(f"{out} does not exist and no prompts were given; pass --prompts"
                         if not exists else "--overwrite needs --prompts for the new project")
    if exists and not resume:
        if not overwrite:
            raise placement.already_exists(out)
        if not out.is_dir() or (any(out.iterdir()) and not placement.is_project(out)):
            raise placement.not_replaceable(out, placement.PROJECT)
    if exists and out.is_dir():
        holder = live_holder(out)
        if holder is not None and holder.pid != os.getpid():
            raise ProjectLockedError(f"{out} is being written by {holder.describe()}; wait for it "
                                     f"to finish (if that process is gone, delete {lock_path(out)})")


def volume_request(direction: Direction = "both", start: int | None = None,
                   end: int | None = None, obj_ids: list[int] | None = None,
                   z_range=None, stop_after_empty: int | None = None,
                   axis: str | None = None) -> "VolumeRequest":
    """A :class:`~.volumes.checks.VolumeRequest` from :func:`track`'s arguments (``z_range``
    as ``"A-B"`` or a pair); ``axis`` ``None`` is left so (video runs refuse any other)."""
    from .volumes.checks import VolumeRequest, parse_z_range

    return VolumeRequest(direction, start, end, obj_ids, parse_z_range(z_range),
                         None if stop_after_empty is None else int(stop_after_empty),
                         axis)  # type: ignore[arg-type]


def refuse_volume_options(volume: "VolumeRequest | None") -> None:
    """One line when volume-only options are given for a 2D video."""
    if volume is None:
        return
    given = [name for name, value in (("--z-range", volume.z_range),
                                      ("--stop-after-empty", volume.stop_after_empty),
                                      ("--axis", volume.axis)) if value is not None]
    if given:
        raise PromptError(f"{', '.join(given)} only apply to volumes; the input is a 2D video "
                          "(open a z-stack, NIfTI, DICOM series or OME-Zarr volume)")


def _check_fits(store: ProjectStore, source: "FrameSource", description: dict) -> None:
    out = store.path
    expected = tuple(store.shape)
    actual = (len(source), source.height, source.width)
    if expected != actual:
        raise StoreError(
            f"{out} was made for a {expected[0]}x{expected[1]}x{expected[2]} video, not "
            f"{actual[0]}x{actual[1]}x{actual[2]}; use another --out or --overwrite"
        )
    stored = store.meta["source"].get("fingerprint")
    if stored and stored != description["fingerprint"]:
        raise StoreError(
            f"{out} was made from different video content; use another --out or --overwrite"
        )


def _describe(source: "FrameSource") -> dict:
    return {**source.describe(), "fingerprint": source.fingerprint()}


def open_or_create_store(
    out: str | Path,
    source: "FrameSource",
    *,
    resume: bool = False,
    overwrite: bool = False,
    command: str | None = None,
) -> ProjectStore:
    """Open ``out`` for ``--resume``, replace it for ``--overwrite``, or create it.

    The store holds the project's write lock: :meth:`~.project.ProjectStore.close` it when done.
    """
    out = Path(out)
    refuse_volume(source, "an open project (the napari session, --segments)")
    check_output_path(out, source)
    description = _describe(source)
    if out.exists() and resume:
        store = ProjectStore.open(out, command=command)
        try:
            _check_fits(store, source, description)
        except BaseException:
            store.close()
            raise
        return store
    return ProjectStore.create(out, num_frames=len(source), height=source.height,
                               width=source.width, source=description, overwrite=overwrite,
                               command=command)


def saved_frames(store: ProjectStore, obj_ids: list[int]) -> str:
    """The frames on disk for every one of ``obj_ids``, as ranges: ``0–8, 12–15``."""
    try:
        done = np.ones(store.num_frames, bool)
        for obj in obj_ids:
            done &= store.states(obj) != STATE_NOT_RUN
    except Exception:  # noqa: BLE001 - best effort on a failing disk
        return "the frames written before the failure"
    frames = np.flatnonzero(done)
    if frames.size == 0:
        return "no frames"
    breaks = np.flatnonzero(np.diff(frames) > 1)
    starts = [frames[0], *frames[breaks + 1]]
    ends = [*frames[breaks], frames[-1]]
    ranges = [f"{a}" if a == b else f"{a}\u2013{b}" for a, b in zip(starts, ends)]
    text = ", ".join(ranges[:6]) + (f" and {len(ranges) - 6:,} more ranges" if len(ranges) > 6 else "")
    return f"frame {text}" if len(frames) == 1 else f"frames {text}"


def _write_failure(exc: OSError, store: ProjectStore | None, out: Path, obj_ids: list[int],
                   discarded: bool) -> StoreError:
    """The one line for a write that failed during a run."""
    if discarded:
        what = "no space left" if is_disk_full(exc) else describe_os_error(exc).split(" on ")[0]
        return StoreError(f"{what} while writing the replacement of {out}; it was discarded and "
                          f"{out} is unchanged; fix it and run again")
    saved = saved_frames(store, obj_ids)
    saved += " is saved" if saved.startswith("frame ") else " are saved"
    if is_disk_full(exc):
        what = describe_os_error(exc).split(" on ")[0]
        return StoreError(f"{what} on {out}; {saved}; free space and run with --resume")
    return StoreError(f"{describe_os_error(exc)}; {saved}; fix it and run with --resume")


def check_target(out: str | Path, source: "FrameSource", prompts: PromptSet | None, *,
                 resume: bool = False, overwrite: bool = False,
                 volume: "VolumeRequest | None" = None) -> Target:
    """Every check of a run that needs no model: ``prompts`` against the video (or volume:
    ``volume`` is the request's axis, z-range and early stop), then the output
    (:func:`check_output`). Nothing is loaded or written."""
    if is_volume_source(source):
        from .volumes.checks import VolumeRequest, check_volume_request

        check_volume_request(source, prompts, volume or VolumeRequest())
    else:
        refuse_volume_options(volume)
        if prompts is not None:
            prompts.check_video(len(source), source.height, source.width)
    path = Path(out)
    check_output(path, source, has_prompts=prompts is not None, resume=resume, overwrite=overwrite)
    target = Target(path, "overwrite" if overwrite else
                    "resume" if resume and path.exists() else "new")
    if target.mode != "resume" and prompts is not None:
        for p in prompts.prompts:
            if p.mask is not None and p.mask.startswith("store:"):
                raise PromptError(store_mask_problem(p))
    return target


def track(
    source: "FrameSource",
    prompts: PromptSet | None,
    out: str | Path | Target | ProjectStore,
    *,
    model: "LoadedModel",
    direction: Direction = "both",
    start: int | None = None,
    end: int | None = None,
    resume: bool = False,
    overwrite: bool = False,
    obj_ids: list[int] | None = None,
    prompts_dir: str | Path | None = None,
    cancel: threading.Event | None = None,
    retain_frames: int | str = "window",
    schema: "Schema | None" = None,
    tracker: "StreamingTracker | None" = None,
    command: str | None = None,
    z_range: "str | tuple[int, int] | None" = None,
    stop_after_empty: int | None = None,
    axis: str | None = None,
) -> Iterator[Progress]:
    """Track prompted objects through ``source`` into the project at ``out``.

    Args:
        source: a :class:`~napari_sam2_track.sources.FrameSource`.
        prompts: objects and prompts; ``None`` uses those stored in the project.
        out: project path, a :class:`Target` from :func:`check_target` (not checked again),
            or an open :class:`ProjectStore` whose lock the caller holds
            (:func:`track_in_store`).
        model: a :class:`~napari_sam2_track.engine.models.LoadedModel`.
        direction: ``forward``, ``backward`` or ``both``.
        start, end: optional frame range (inclusive).
        resume: continue an interrupted run; frames already on disk are not rewritten.
        overwrite: replace an existing project, once the new run has completed.
        obj_ids: track only these objects (default: all prompted).
        prompts_dir: base folder for relative mask paths in ``prompts``.
        cancel: set it to stop between frames; what is written stays written.
        retain_frames: see :class:`~.engine.tracker.StreamingTracker`.
        schema: annotation schema to store in the project before the objects.
        tracker: an existing :class:`~.engine.tracker.StreamingTracker` whose prompts are
            already applied (the napari session keeps one, so corrections reuse its memory);
            ``prompts`` must then be ``None`` and ``out`` the open store holding them.
        command: how the writer is named in the project's lock file.
        z_range, stop_after_empty, axis: volumes only (a
            :class:`~napari_sam2_track.sources.volume.VolumeSource`): the slices ``"A-B"`` to
            track, the early stop after that many empty slices in a row, the propagation axis
            (``z``). ``start``/``end`` are then timepoints; see ``docs/volumes.md``.
    """
    volume = volume_request(direction, start, end, obj_ids, z_range, stop_after_empty, axis)
    if is_volume_source(source):
        if isinstance(out, ProjectStore) or tracker is not None:
            refuse_volume(source, "an open project (the napari session)")
        from .volumes.run import track_volume

        target = out if isinstance(out, Target) else check_target(
            out, source, prompts, resume=resume, overwrite=overwrite, volume=volume)
        yield from track_volume(source, prompts, target, model=model, request=volume,
                                prompts_dir=prompts_dir, cancel=cancel, schema=schema,
                                command=command, retain_frames=retain_frames)
        return
    refuse_volume_options(volume)
    request = Request(direction, start, end, obj_ids)
    if isinstance(out, ProjectStore):
        yield from track_in_store(out, source, prompts, model=model, request=request,
                                  resume=resume, prompts_dir=prompts_dir, cancel=cancel,
                                  retain_frames=retain_frames, schema=schema, tracker=tracker)
        return
    if tracker is not None:
        raise ValueError("a live tracker runs only into the open project that holds its prompts")
    target = out if isinstance(out, Target) else check_target(
        out, source, prompts, resume=resume, overwrite=overwrite)
    seeding = _Seeding(source, prompts, prompts_dir, schema)
    with _own_tracker(model, source, retain_frames) as own:
        if target.mode == "resume":
            with ProjectStore.open(target.path, command=command) as store:
                _check_fits(store, source, _describe(source))
                yield from _seed_and_run(store, own, seeding, model, request, True, cancel)
        elif target.mode == "new":
            yield from _track_new(target.path, own, seeding, model, request, cancel, command)
        else:
            yield from _track_replacement(target.path, own, seeding, model, request, cancel,
                                          command)


def track_in_store(
    store: ProjectStore,
    source: "FrameSource",
    prompts: PromptSet | None = None,
    *,
    model: "LoadedModel",
    request: Request = Request(),
    resume: bool = False,
    prompts_dir: str | Path | None = None,
    cancel: threading.Event | None = None,
    retain_frames: int | str = "window",
    schema: "Schema | None" = None,
    tracker: "StreamingTracker | None" = None,
    versions: "RunVersions | None" = None,
    early_stop: "EarlyStop | None" = None,
) -> Iterator[Progress]:
    """Track into an open project (its lock held by the caller). With ``tracker`` (whose
    prompts are applied already: the session's), ``prompts`` is ``None``; without, a tracker
    is made for this run and seeded from ``prompts`` or the project's own. Videos only: a
    volume is tracked by :func:`track` with a path.

    ``versions``: the track versions this run's pre-images go to (a correction's; the caller
    finishes them); by default the run records and finishes a ``propagation`` version per
    object. ``early_stop``: end each pass once its frames agree with the stored masks
    (:class:`~napari_sam2_track.review.segments.EarlyStop`)."""
    refuse_volume(source, "an open project (the napari session)")
    if prompts is not None:
        prompts.check_video(len(source), source.height, source.width)
    seeding = _Seeding(source, prompts, prompts_dir, schema)
    if tracker is not None:
        yield from _seed_and_run(store, tracker, seeding, model, request, resume, cancel,
                                 seed=False, versions=versions, early_stop=early_stop)
        return
    with _own_tracker(model, source, retain_frames) as own:
        yield from _seed_and_run(store, own, seeding, model, request, resume, cancel,
                                 versions=versions, early_stop=early_stop)


# ----------------------------------------------------------------------- the three modes
@dataclass
class _Seeding:
    """What a run puts into its tracker and project before it propagates."""

    source: "FrameSource"
    prompts: PromptSet | None  # None: the project's own
    prompts_dir: str | Path | None
    schema: "Schema | None"

    def prepare(self, tracker: "StreamingTracker", store: ProjectStore | None, request: Request,
                seed: bool = True) -> tuple[MaskFiles, Plan]:
        """Read mask files, check categories, seed the tracker and plan; writes nothing."""
        from .schema import Schema

        masks = load_mask_files(self.prompts, self.prompts_dir, self.source.height, self.source.width)
        if self.prompts is not None:
            check_object_categories(self.prompts.objects,
                                    self.schema or (store.schema if store else Schema.default()))
        elif self.schema is not None:
            check_object_categories(store.prompts.objects, self.schema)
        if seed:
            given = self.prompts if self.prompts is not None else store.prompts
            seed_tracker(tracker, given, mask_source(store, masks, self.prompts_dir))
        return masks, request.plan(tracker)

    def store(self, store: ProjectStore, masks: MaskFiles) -> None:
        """The schema first (it checks the objects' categories), then the prompts."""
        if self.schema is not None:
            store.set_schema(self.schema)
        if self.prompts is not None:
            store_prompts(store, self.prompts, masks)


@contextlib.contextmanager
def _own_tracker(model: "LoadedModel", source: "FrameSource",
                 retain_frames: int | str) -> Iterator["StreamingTracker"]:
    from .engine.tracker import StreamingTracker

    tracker = StreamingTracker(model, source, retain_frames=retain_frames)  # type: ignore[arg-type]
    try:
        yield tracker
    finally:
        tracker.close()


@contextlib.contextmanager
def _write_failures(out: Path, store: ProjectStore | None, objects: list[int], *,
                    discarded: bool) -> Iterator[None]:
    """An ``OSError`` inside becomes the one line of :func:`_write_failure`."""
    try:
        yield
    except OSError as exc:
        raise _write_failure(exc, store, out, objects, discarded=discarded) from None


def _seed_and_run(store: ProjectStore, tracker: "StreamingTracker", seeding: _Seeding,
                  model: "LoadedModel", request: Request, resume: bool,
                  cancel: threading.Event | None, *, seed: bool = True,
                  versions: "RunVersions | None" = None,
                  early_stop: "EarlyStop | None" = None) -> Iterator[Progress]:
    """Into an open project: seed (``seed``: the tracker too), then run."""
    masks, plan = seeding.prepare(tracker, store, request, seed=seed)
    with _write_failures(store.path, store, plan.objects, discarded=False):
        seeding.store(store, masks)
        yield from _run(store, tracker, model, request, plan, resume, cancel, versions, early_stop)


def _new_store(out: Path, source: "FrameSource", *, overwrite: bool, command: str | None):
    return ProjectStore.building(out, num_frames=len(source), height=source.height,
                                 width=source.width, source=_describe(source),
                                 overwrite=overwrite, command=command)


def _track_new(out: Path, tracker: "StreamingTracker", seeding: _Seeding, model: "LoadedModel",
               request: Request, cancel: threading.Event | None,
               command: str | None) -> Iterator[Progress]:
    """A new project: it appears at ``out`` as soon as its prompts are stored."""
    placement.check_destination(out, False, command)  # refuse a path that appeared meanwhile
    masks, plan = seeding.prepare(tracker, None, request)  # a bad range writes nothing
    with _write_failures(out, None, plan.objects, discarded=True):
        with _new_store(out, seeding.source, overwrite=False, command=command) as store:
            seeding.store(store, masks)
    try:
        with _write_failures(out, store, plan.objects, discarded=False):
            yield from _run(store, tracker, model, request, plan, False, cancel)
    finally:
        store.close()


class _NotCompleted(Exception):
    """Raised inside the replacement's ``building`` block to discard it."""


def _track_replacement(out: Path, tracker: "StreamingTracker", seeding: _Seeding,
                       model: "LoadedModel", request: Request, cancel: threading.Event | None,
                       command: str | None) -> Iterator[Progress]:
    """``overwrite``: the replacement is built beside ``out`` and swapped in only when the run
    completed; the old project stays locked meanwhile."""
    held = placement.check_destination(out, True, command)
    try:
        masks, plan = seeding.prepare(tracker, None, request)
        try:
            with _write_failures(out, None, plan.objects, discarded=True):
                with _new_store(out, seeding.source, overwrite=True, command=command) as store:
                    seeding.store(store, masks)
                    yield from _run(store, tracker, model, request, plan, False, cancel)
                    if store.meta["runs"][-1]["status"] != "completed":
                        raise _NotCompleted
        except _NotCompleted:
            return
        store.close()
    finally:
        if held is not None:
            held.release()


def _run(store: ProjectStore, tracker: "StreamingTracker", model: "LoadedModel",
         request: Request, plan: Plan, resume: bool,
         cancel: threading.Event | None, versions: "RunVersions | None" = None,
         early_stop: "EarlyStop | None" = None) -> Iterator[Progress]:
    """Propagate and write; the run's status is recorded however it ends (an ``OSError`` is
    re-raised once the status is written). Each frame's pre-image goes to the track versions
    (``versions``, else a ``propagation`` version per object) before the frame is written."""
    skip = None
    if resume:
        done = {o: set(store.frames_with_state(o, exclude=(STATE_NOT_RUN,))) for o in tracker.obj_ids}
        skip = lambda obj, t: t in done.get(obj, ())  # noqa: E731

    def results(run_versions: "RunVersions") -> Iterator:
        if early_stop is None:
            return tracker.run(plan, cancel)
        return early_stop.results(tracker, plan, cancel, run_versions)

    yield from run_into_store(
        store, model, results, total=plan.total, ranges=plan.ranges(),
        run_info={"direction": request.direction, "start": request.start, "end": request.end,
                  "objects": plan.objects, "resume": resume},
        skip=skip, cancel=cancel, state_bytes=tracker.state_bytes, versions=versions)
