"""Headless tracking runs: prompts + frame source + model -> project store.

:func:`track` is what the CLI, the napari dock (on a worker thread) and batch jobs drive. It
validates every input before it touches the output, then streams frames through the
:class:`~.engine.tracker.StreamingTracker` into a :class:`~.store.StoreWriter`, yielding a
:class:`Progress` after each frame. Decoding (reader thread), model compute (the caller's thread)
and writing (writer thread) overlap.

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
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .errors import ProjectLockedError, StoreError, describe_os_error, is_disk_full
from .prompts import PromptSet
from .project import STATE_NOT_RUN, ProjectStore, StoreWriter
from .project import placement
from .project.lock import live_holder, lock_path
from .project.store import check_object_categories
from .sources.volume import refuse_volume


@dataclass
class Progress:
    """State of a running :func:`track` call, after one more frame was computed."""

    run_id: int
    frame: int  # the frame just computed
    computed: int  # frames computed so far in this run
    written: int  # frames durable on disk
    total: int  # frames this run will compute
    elapsed: float  # seconds since tracking started
    state_bytes: int = 0  # bytes held in the tracker's inference state

    @property
    def fps(self) -> float:
        return self.computed / self.elapsed if self.elapsed > 0 else 0.0

    @property
    def eta(self) -> float:
        """Seconds left at the current speed."""
        return (self.total - self.computed) / self.fps if self.fps > 0 else float("inf")


def planned_ranges(passes) -> list[tuple[int, int, int]]:
    """``(object, first, last)`` frames that the passes of a run will write."""
    ranges = []
    for reverse, order, entry in passes:
        for obj, e in entry.items():
            ranges.append((obj, order[-1], e) if reverse else (obj, e, order[-1]))
    return ranges
def check_output_path(out: str | Path, source) -> None:
    """Refuse an output equal to, inside, or containing the input video."""
    src = getattr(source, "path", None)
    if not src or not isinstance(src, (str, Path)) or not Path(src).exists():
        return
    out_r, src_r = Path(os.path.realpath(out)), Path(os.path.realpath(src))
    if out_r == src_r or src_r in out_r.parents or out_r in src_r.parents:
        raise StoreError(f"--out {out} would overlap the input video {src}; choose an --out "
                         "outside it")


def check_output(out: str | Path, source, *, has_prompts: bool, resume: bool = False,
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
            raise StoreError(
                f"{out} already exists; pass --resume to continue it or --overwrite to replace it"
            )
        if not out.is_dir() or (any(out.iterdir()) and not placement.is_project_dir(out)):
            raise StoreError(f"{out} is not a napari-sam2-track project; --overwrite only "
                             "replaces a project made by napari-sam2-track; choose another --out")
    if exists and out.is_dir():
        holder = live_holder(out)
        if holder is not None and holder.pid != os.getpid():
            raise ProjectLockedError(f"{out} is being written by {holder.describe()}; wait for it "
                                     f"to finish (if that process is gone, delete {lock_path(out)})")


def _check_fits(store: ProjectStore, source, description: dict) -> None:
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


def _describe(source) -> dict:
    return {**source.describe(), "fingerprint": source.fingerprint()}


def open_or_create_store(
    out: str | Path,
    source,
    *,
    resume: bool = False,
    overwrite: bool = False,
    command: str | None = None,
) -> ProjectStore:
    """Open ``out`` for ``--resume``, replace it for ``--overwrite``, or create it.

    The store holds the project's write lock: :meth:`~.project.ProjectStore.close` it when done.
    """
    out = Path(out)
    refuse_volume(source)
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


def saved_frames(store: ProjectStore, obj_ids) -> str:
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


def _write_failure(exc: OSError, store: ProjectStore, out: Path, obj_ids, discarded: bool) -> StoreError:
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


class _SpaceReserve:
    """A few blocks set aside in the project so that a run failing on a full disk can still
    record that it failed."""

    NAME = ".napari_sam2_track.reserve"

    def __init__(self, folder: Path, size: int = 256 * 1024):
        self.path = folder / self.NAME
        try:
            with open(self.path, "wb") as f:
                f.write(b"\0" * size)
        except OSError:
            self.release()

    def release(self) -> None:
        with contextlib.suppress(OSError):
            self.path.unlink()


def track(
    source,
    prompts: PromptSet | None,
    out: str | Path | ProjectStore,
    *,
    model,
    direction: str = "both",
    start: int | None = None,
    end: int | None = None,
    resume: bool = False,
    overwrite: bool = False,
    obj_ids: list[int] | None = None,
    prompts_dir: str | Path | None = None,
    cancel: threading.Event | None = None,
    retain_frames: int | str = "window",
    schema=None,
    tracker=None,
    command: str | None = None,
) -> Iterator[Progress]:
    """Track prompted objects through ``source`` into the project at ``out``.

    Args:
        source: a :class:`~napari_sam2_track.sources.FrameSource`.
        prompts: objects and prompts; ``None`` uses those stored in the project.
        out: project path (or an open :class:`ProjectStore`, whose lock the caller holds).
        model: a :class:`~napari_sam2_track.engine.models.LoadedModel`.
        direction: ``forward``, ``backward`` or ``both``.
        start, end: optional frame range (inclusive).
        resume: continue an interrupted run; frames already on disk are not rewritten.
        overwrite: replace an existing project, once the new run has completed.
        obj_ids: track only these objects (default: all prompted).
        prompts_dir: base folder for relative mask paths in ``prompts``.
        cancel: set it to stop between frames; what is written stays written.
        schema: annotation schema to store in the project before the objects.
        tracker: an existing :class:`~.engine.tracker.StreamingTracker` whose prompts are
            already applied (the napari dock keeps one, so corrections reuse its memory);
            ``prompts`` must then be ``None`` and ``out`` the open store holding them.
        command: how the writer is named in the project's lock file.
    """
    from .engine.tracker import StreamingTracker
    from .schema import Schema

    # 1. Validate everything before touching the output.
    refuse_volume(source)
    if prompts is not None:
        prompts.check_video(len(source), source.height, source.width)
    store = out if isinstance(out, ProjectStore) else None
    out_path = Path(out.path if store is not None else out)
    if store is None:
        check_output(out_path, source, has_prompts=prompts is not None, resume=resume,
                     overwrite=overwrite)
    building = store is None and (overwrite or not (resume and out_path.exists()))
    own_tracker = tracker is None
    with contextlib.ExitStack() as stack:
        if building:  # refuse an unrelated or busy destination now; keep others off until done
            held = placement.check_destination(out_path, overwrite, command)
            if held is not None:
                stack.callback(held.release)
        if own_tracker:
            tracker = StreamingTracker(model, source, retain_frames=retain_frames)
            stack.callback(tracker.close)
        mask_cache = {}
        for p in prompts.prompts if prompts is not None else ():
            if p.mask is not None and not p.mask.startswith("store:"):
                mask_cache[(p.object, p.frame)] = p.load_mask(prompts_dir, source.height, source.width)
        if store is None and not building:  # --resume of an existing project
            store = stack.enter_context(ProjectStore.open(out_path, command=command))
            _check_fits(store, source, _describe(source))
        if prompts is not None:
            check_object_categories(prompts.objects, schema or (store.schema if store else Schema.default()))
        elif schema is not None:
            check_object_categories(store.prompts.objects, schema)
        # 2. Keyframes, and the plan, which checks the range against them.
        given = prompts if prompts is not None else store.prompts
        if own_tracker:
            for p in given.prompts:
                if p.mask is None:
                    tracker.add_prompt(p)
                elif (p.object, p.frame) in mask_cache:
                    tracker.add_mask(p.object, p.frame, mask_cache[(p.object, p.frame)])
                else:
                    tracker.add_mask(p.object, p.frame, store.prompt_mask(p, prompts_dir))
        passes = tracker.plan(direction, start, end, obj_ids)
        # 3. Write: the project appears (new) or is replaced (overwrite) only when complete.
        builder = None
        if building:
            builder = ProjectStore.building(
                out_path, num_frames=len(source), height=source.height, width=source.width,
                source=_describe(source), overwrite=overwrite, command=command)
            store = builder.__enter__()
        try:
            if schema is not None:
                store.set_schema(schema)
            if prompts is not None:
                store.set_prompts(prompts)
                for (obj, frame), mask in mask_cache.items():
                    stored = next(p for p in prompts.prompts if p.object == obj and p.frame == frame)
                    store.put_prompt(stored, mask)
            if builder is not None and not overwrite:  # a new project: in place from now on
                placing, builder = builder, None
                placing.__exit__(None, None, None)
                stack.callback(store.close)
            yield from _run(store, tracker, model, direction, start, end, obj_ids, resume,
                            cancel, passes)
        except BaseException as exc:
            if builder is not None:
                builder.__exit__(type(exc), exc, exc.__traceback__)
            if isinstance(exc, OSError):
                raise _write_failure(exc, store, out_path, obj_ids or tracker.obj_ids,
                                     discarded=builder is not None) from None
            raise
        if builder is not None:
            if store.meta["runs"][-1]["status"] == "completed":
                builder.__exit__(None, None, None)
                stack.callback(store.close)
            else:
                builder.__exit__(StoreError, StoreError("not completed"), None)


def _run(store, tracker, model, direction, start, end, obj_ids, resume, cancel,
         passes) -> Iterator[Progress]:
    """Propagate and write; the run's status is recorded however it ends (an ``OSError`` is
    re-raised once the status is written)."""
    store.update_meta(model=model.describe())
    schema = store.schema
    run_objects = obj_ids or tracker.obj_ids
    run_id = store.begin_run(
        direction=direction,
        start=start,
        end=end,
        objects=run_objects,
        model=model.name,
        resume=resume,
    )
    total = sum(len(order) for _, order, _ in passes)
    if not resume:  # every planned frame is rewritten: QC decisions there no longer hold
        store.record_changes(planned_ranges(passes), f"propagation run {run_id}", "propagation",
                             run=run_id)
    skip = None
    if resume:
        done = {o: set(store.frames_with_state(o, exclude=(STATE_NOT_RUN,))) for o in tracker.obj_ids}
        skip = lambda obj, t: t in done.get(obj, ())  # noqa: E731
    reserve = _SpaceReserve(store.path)
    writer = StoreWriter(store, run_id, min_visible_pixels=schema.min_visible_pixels, skip_frames=skip)
    status, error = "failed", None
    started = time.perf_counter()
    computed = 0
    state_bytes = 0
    try:
        for result in tracker.propagate(direction, start, end, obj_ids, cancel=cancel):
            writer.submit(result)
            computed += 1
            if computed % 25 == 1:  # walking the state costs ~1 ms; sample it
                state_bytes = tracker.state_bytes()
            yield Progress(
                run_id=run_id,
                frame=result.frame,
                computed=computed,
                written=writer.frames_written,
                total=total,
                elapsed=time.perf_counter() - started,
                state_bytes=state_bytes,
            )
        status = "cancelled" if cancel is not None and cancel.is_set() else "completed"
    except (GeneratorExit, KeyboardInterrupt):
        status = "cancelled"
        raise
    except OSError as exc:
        error = exc
    finally:
        try:
            writer.close()
        except OSError as exc:
            status, error = "failed", error or exc
        finally:
            reserve.release()
            try:
                store.end_run(run_id, status, frames=computed,
                              **({"error": describe_os_error(error)} if error else {}))
                store.record_changes(
                    [(o, a, b) for o, ranges in writer.written.items() for a, b in ranges],
                    f"propagation run {run_id} wrote these frames", "propagation", run=run_id,
                )
            except OSError:
                pass  # shown as interrupted once the lock is given back
    if error is not None:
        raise error
