"""Headless tracking runs: prompts + frame source + model -> project store.

:func:`track` is what the CLI, the napari dock (on a worker thread) and batch jobs drive. It
validates every input before it touches the output, then streams frames through the
:class:`~.engine.tracker.StreamingTracker` into a :class:`~.store.StoreWriter`, yielding a
:class:`Progress` after each frame. Decoding (reader thread), model compute (the caller's thread)
and writing (writer thread) overlap.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from .errors import StoreError
from .prompts import PromptSet
from .store import STATE_NOT_RUN, ProjectStore, StoreWriter


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


def open_or_create_store(
    out: str | Path,
    source,
    *,
    resume: bool = False,
    overwrite: bool = False,
) -> ProjectStore:
    """Open ``out`` for ``--resume``, replace it for ``--overwrite``, or create it."""
    out = Path(out)
    description = {**source.describe(), "fingerprint": source.fingerprint()}
    if out.exists() and resume:
        store = ProjectStore.open(out)
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
        return store
    if out.exists() and not overwrite:
        raise StoreError(f"{out} already exists; pass --resume to continue it or --overwrite to replace it")
    return ProjectStore.create(
        out,
        num_frames=len(source),
        height=source.height,
        width=source.width,
        source=description,
        overwrite=overwrite,
    )


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
) -> Iterator[Progress]:
    """Track prompted objects through ``source`` into the project at ``out``.

    Args:
        source: a :class:`~napari_sam2_track.sources.FrameSource`.
        prompts: objects and prompts; ``None`` uses those stored in the project.
        out: project path (or an open :class:`ProjectStore`).
        model: a :class:`~napari_sam2_track.engine.models.LoadedModel`.
        direction: ``forward``, ``backward`` or ``both``.
        start, end: optional frame range (inclusive).
        resume: continue an interrupted run; frames already on disk are not rewritten.
        overwrite: replace an existing project.
        obj_ids: track only these objects (default: all prompted).
        prompts_dir: base folder for relative mask paths in ``prompts``.
        cancel: set it to stop between frames; what is written stays written.
        schema: annotation schema to store in the project before the objects.
        tracker: an existing :class:`~.engine.tracker.StreamingTracker` whose prompts are
            already applied (the napari dock keeps one, so corrections reuse its memory);
            ``prompts`` must then be ``None`` and ``out`` the open store holding them.
    """
    from .engine.tracker import StreamingTracker

    # 1. Validate everything before touching the output.
    if prompts is not None:
        prompts.check_video(len(source), source.height, source.width)
    if isinstance(out, ProjectStore):
        store = out
    else:
        if prompts is None and not Path(out).exists():
            raise StoreError(f"{out} does not exist and no prompts were given; pass --prompts")
        store = None
    own_tracker = tracker is None
    if own_tracker:
        tracker = StreamingTracker(model, source, retain_frames=retain_frames)
    try:
        mask_cache = {}
        if prompts is not None:
            for p in prompts.prompts:
                if p.mask is not None and not p.mask.startswith("store:"):
                    mask_cache[(p.object, p.frame)] = p.load_mask(
                        prompts_dir, source.height, source.width
                    )
        if store is None:
            store = open_or_create_store(out, source, resume=resume, overwrite=overwrite)
        if schema is not None:
            store.set_schema(schema)
        if prompts is None:
            prompts = store.prompts
            prompts.check_video(len(source), source.height, source.width)
        else:
            store.set_prompts(prompts)
            for (obj, frame), mask in mask_cache.items():
                stored = next(p for p in prompts.prompts if p.object == obj and p.frame == frame)
                store.put_prompt(stored, mask)
        prompts = store.prompts
        # 2. Keyframe masks.
        for p in prompts.prompts if own_tracker else ():
            if p.mask is not None:
                tracker.add_mask(p.object, p.frame, store.prompt_mask(p, prompts_dir))
            else:
                tracker.add_prompt(p)
        passes = tracker.plan(direction, start, end, obj_ids)
        total = sum(len(order) for _, order, _ in passes)
        store.update_meta(model=model.describe())
        schema = store.schema
        run_id = store.begin_run(
            direction=direction,
            start=start,
            end=end,
            objects=obj_ids or tracker.obj_ids,
            model=model.name,
            resume=resume,
        )
        if not resume:  # every planned frame is rewritten: QC decisions there no longer hold
            store.record_changes(planned_ranges(passes), f"propagation run {run_id}", "propagation",
                                 run=run_id)
        skip = None
        if resume:
            done = {o: set(store.frames_with_state(o, exclude=(STATE_NOT_RUN,))) for o in tracker.obj_ids}
            skip = lambda obj, t: t in done.get(obj, ())  # noqa: E731
        writer = StoreWriter(store, run_id, min_visible_pixels=schema.min_visible_pixels, skip_frames=skip)
        status = "failed"
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
        except GeneratorExit:
            status = "cancelled"
            raise
        finally:
            try:
                writer.close()
            finally:
                store.end_run(run_id, status, frames=computed)
                store.record_changes(
                    [(o, a, b) for o, ranges in writer.written.items() for a, b in ranges],
                    f"propagation run {run_id} wrote these frames", "propagation", run=run_id,
                )
    finally:
        if own_tracker:
            tracker.close()
