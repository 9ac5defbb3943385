"""Time-parallel propagation: one long video split at keyframes into independent segments.

A *split point* is a frame on which every object of the run has a prompt. Segments start at
split points (end at them for ``backward``), so each segment is tracked from its own keyframes
alone, on any worker, into the same project. The result differs from one sequential pass only
where memory would have crossed a split point (see ``docs/distributed.md``).

Who writes what (no chunk ever has two writers):

* the client (the run's owner) creates or opens the project, stores the prompts, records the run,
  creates one *part table* per segment (:mod:`napari_sam2_track.project.parts`), and at the end
  merges the part tables into the objects' tables, deletes them and closes the run;
* a segment task writes only the chunks of its own frames in the label layers that hold the
  masks (``labels/masklets/0`` and ``overlaps/<k>``: one chunk or shard per frame each) and
  its own part table. It never writes metadata or the per-object tables, whose 1024-frame
  chunks segments would share, and never creates an array: the client creates every overlap
  layer the run's objects could need (one fewer than the objects) before the segments start.

A part table holds the same rows as an object's table for the segment's frames, so an
interrupted run is resumed by merging what the parts hold and skipping those frames.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

from ..errors import PromptError
from ..project.parts import PartWriter, create_part, merge_parts
from ..prompts import PromptSet
from .models import ModelSpec, cached_model
from .tasks import project_state, report, result_row


@dataclass(frozen=True)
class Segment:
    """Frames ``start..end`` (inclusive), tracked from the keyframes inside them."""

    index: int
    start: int
    end: int

    def __len__(self) -> int:
        return self.end - self.start + 1


def split_points(prompts: PromptSet, start: int, end: int) -> list[int]:
    """Frames in ``[start, end]`` on which every object has a prompt."""
    frames_per_object: dict[int, set[int]] = {o.id: set() for o in prompts.objects}
    for p in prompts.prompts:
        frames_per_object.setdefault(p.object, set()).add(p.frame)
    prompted = [f for f in frames_per_object.values() if f]
    if not prompted:
        return []
    common = set.intersection(*prompted)
    return sorted(t for t in common if start <= t <= end)


def plan_segments(
    prompts: PromptSet,
    num_frames: int,
    n_segments: int,
    direction: str = "both",
    start: int | None = None,
    end: int | None = None,
) -> list[Segment]:
    """Split ``[start, end]`` into ``n_segments`` at split points, as evenly as they allow."""
    start = 0 if start is None else start
    end = num_frames - 1 if end is None else end
    if not (0 <= start <= end < num_frames):
        raise PromptError(f"frame range {start}-{end} is outside the video (0..{num_frames - 1})")
    keyframes = sorted({p.frame for p in prompts.prompts if start <= p.frame <= end})
    if not keyframes:
        raise PromptError(f"no prompt in frames {start}-{end}; add a prompt there first")
    if direction == "backward":  # segments end at split points, after the latest keyframe
        candidates = [t for t in split_points(prompts, start, end) if t < keyframes[-1]]
    else:  # segments start at split points, after the earliest keyframe
        candidates = [t for t in split_points(prompts, start, end) if t > keyframes[0]]
    if n_segments - 1 > len(candidates):
        raise PromptError(
            f"{n_segments} segments need {n_segments - 1} frames where every object has a prompt; "
            f"there are {len(candidates)}: {candidates[:8]}; pass fewer --segments or add prompts"
        )
    chosen: list[int] = []
    span = end - start + 1
    for j in range(1, n_segments):
        target = start + j * span / n_segments
        free = [c for c in candidates if c not in chosen]
        chosen.append(min(free, key=lambda c: (abs(c - target), c)))
    chosen.sort()
    if direction == "backward":
        bounds = [start, *[c + 1 for c in chosen], end + 1]
    else:
        bounds = [start, *chosen, end + 1]
    return [Segment(i, a, b - 1) for i, (a, b) in enumerate(zip(bounds[:-1], bounds[1:]))]


def segment_prompts(prompts: PromptSet, segment: Segment) -> PromptSet:
    """The prompts a segment is tracked from: those on its own frames."""
    inside = [p for p in prompts.prompts if segment.start <= p.frame <= segment.end]
    return PromptSet(objects=prompts.objects, prompts=inside)


def refuse_volume_segments(source) -> None:
    """One line when ``source`` is a volume: segments split a 2D video in time at keyframes,
    while a volume's slices, and its timepoints, are tracked as one chain
    (``docs/volumes.md``)."""
    from ..project.volume import is_volume_source

    if not is_volume_source(source):
        return
    n_t, n_z = source.shape[:2]
    raise PromptError(
        f"--segments splits a 2D video in time; {source._label()} is a volume ({n_t} timepoint(s) "
        f"of {n_z} slices), whose slices and timepoints are tracked as one chain: track it "
        "without --segments, or run several volumes in parallel with batch")


# ------------------------------------------------------------------------- worker side
def run_segment(
    out: str,
    video: str,
    source_options: dict,
    segment: Segment,
    run_id: int,
    spec: ModelSpec,
    direction: str = "both",
    *,
    topic: str | None = None,
    index: int = 0,
) -> dict:
    """Track one segment into the project at ``out`` (a task; see the module docstring)."""
    from ..engine.tracker import StreamingTracker
    from ..project import ProjectStore, StoreWriter
    from ..seeding import seed_tracker
    from ..sources import open_source

    started = time.perf_counter()
    store = ProjectStore.open(out, "r")  # prompts and schema; readers need no lock
    source = open_source(video, **source_options)
    model = cached_model(spec)
    tracker = StreamingTracker(model, source)
    computed = 0
    try:
        seed_tracker(tracker, segment_prompts(store.prompts, segment), store.prompt_mask)
        part = PartWriter(out, run_id, segment.index)
        done = part.done()
        writer = StoreWriter(
            part,
            run_id,
            min_visible_pixels=store.schema.min_visible_pixels,
            skip_frames=lambda obj, t: t in done.get(obj, ()),
        )
        plan = tracker.plan(direction, segment.start, segment.end)
        total = plan.total
        task = f"{index}/{segment.index}"
        last = 0.0
        try:
            for result in tracker.run(plan):
                writer.submit(result)
                computed += 1
                now = time.perf_counter()
                if now - last >= 0.5:
                    report(topic, {"index": task, "done": computed, "total": total})
                    last = now
        finally:
            writer.close()
        report(topic, {"index": task, "done": computed, "total": total})
    finally:
        tracker.close()
        source.close()
    return {"segment": segment.index, "frames": computed, "seconds": time.perf_counter() - started,
            "model": model.describe()}


# ------------------------------------------------------------------------- client side
class SegmentedVideo:
    """One video tracked as segments: prepared and finished by the client, segments on workers."""

    def __init__(self, index: int, item, out: Path, spec: ModelSpec, n_segments: int,
                 overwrite: bool = False, topic: str | None = None):
        self.index, self.item, self.out, self.spec = index, item, Path(out), spec
        self.n_segments, self.overwrite, self.topic = n_segments, overwrite, topic
        self.started = time.perf_counter()
        self.segments: list[Segment] = []
        self.results: dict[int, dict] = {}
        self.store = None
        self.run_id = 0
        self.resumed = False
        self.skipped = False
        self.attempts: dict[int, int] = {}
        self.error: str | None = None
        self.took_over = None  # the holder of a lock taken from a worker that left the cluster

    def source_options(self) -> dict:
        return {"channel": self.item.channel, "window": self.item.window,
                "axes": self.item.axes, "series": self.item.series}

    def prepare(self, client=None) -> None:
        """Create or open the project, store the schema and prompts, plan the segments, record
        the run. With ``client``, a lock left by a dask worker that has left the cluster is
        taken over first (see :mod:`.handover`)."""
        from ..pipeline import open_or_create_store
        from ..project.store import check_object_categories
        from ..schema import Schema
        from ..sources import open_source

        state = "missing" if self.overwrite else project_state(self.out)
        if state == "completed":
            self.skipped = True
            return
        self.resumed = state == "partial"
        if client is not None:  # a lock or staging folder of a lost worker is handed over
            from .handover import take_over_from_lost_worker

            self.took_over = take_over_from_lost_worker(self.out, client)
        schema = Schema.load(self.item.schema_) if self.item.schema_ else None
        source = open_source(self.item.video, **self.source_options())
        try:
            refuse_volume_segments(source)
            prompts = PromptSet.load(self.item.prompts) if self.item.prompts else None
            if prompts is not None:  # refuse bad prompts or an impossible split before writing
                prompts.check_video(len(source), source.height, source.width)
                plan_segments(prompts, len(source), self.n_segments, self.item.direction,
                              self.item.start, self.item.end)
                if schema is not None or not self.resumed:
                    check_object_categories(prompts.objects, schema or Schema.default())
            store = open_or_create_store(self.out, source, resume=self.resumed,
                                         overwrite=self.overwrite and self.out.exists())
            num_frames = len(source)
        finally:
            source.close()
        self.store = store  # holds the project's lock (where the store has one) until finish()
        try:
            self._start_run(store, prompts, schema, num_frames)
        except BaseException:
            _close(store)
            self.store = None
            raise

    def _start_run(self, store, prompts: PromptSet | None, schema, num_frames: int) -> None:
        """As ``track`` does: the schema first (it checks the objects' categories and sets what
        counts as visible), then the prompts."""
        from ..project.store import check_object_categories
        from ..seeding import load_mask_files, store_prompts

        merge_parts(store)
        objects = prompts.objects if prompts is not None else store.prompts.objects
        check_object_categories(objects, schema or store.schema)
        if schema is not None:
            store.set_schema(schema)
        if prompts is not None:
            masks = load_mask_files(prompts, Path(self.item.prompts).parent, *store.shape[1:])
            store_prompts(store, prompts, masks)
        prompts = store.prompts
        self.segments = plan_segments(prompts, num_frames, self.n_segments, self.item.direction,
                                      self.item.start, self.item.end)
        self.run_id = store.begin_run(
            direction=self.item.direction, start=self.item.start, end=self.item.end,
            objects=store.object_ids(), model=self.spec.model, resume=self.resumed,
            segments=[[s.start, s.end] for s in self.segments],
        )
        for segment in self.segments:
            create_part(store, self.run_id, segment.index, segment.start, segment.end)
        # every overlap layer the objects could need, so that no segment creates an array
        store.layers.ensure_overlap_layers(len(store.object_ids()) - 1)
        self.results = {}

    def submit(self, client) -> dict:
        """Prepare the run and submit its segment tasks: ``{future: segment index}``."""
        self.prepare(client)
        if self.skipped:
            return {}
        return {self.submit_segment(client, s.index): s.index for s in self.segments}

    def submit_segment(self, client, index: int):
        """Submit (or, after a crash, submit again) one segment of the prepared run."""
        import uuid

        self.attempts[index] = self.attempts.get(index, 0) + 1
        segment = self.segments[index]
        return client.submit(
            run_segment, str(self.out), self.item.video, self.source_options(), segment,
            self.run_id, self.spec, self.item.direction, topic=self.topic, index=self.index,
            key=f"segment-{self.index}-{index}-{uuid.uuid4().hex[:8]}", pure=False,
        )

    def part_done(self, result: dict) -> bool:
        """Record a finished segment; True when all are done."""
        self.results[result["segment"]] = result
        return len(self.results) == len(self.segments)

    def finish(self) -> dict:
        """Merge the part tables and close the run (client side); the summary row."""
        if self.skipped:
            return result_row(self.index, self.out, "skipped")
        store = self.store
        merge_parts(store)
        frames = sum(r["frames"] for r in self.results.values())
        store.update_meta(model=next(iter(self.results.values()))["model"])
        store.end_run(self.run_id, "completed", frames=frames)
        _close(store)
        seconds = time.perf_counter() - self.started
        return result_row(self.index, self.out, "resumed" if self.resumed else "completed",
                          frames=frames, seconds=seconds, fps=frames / seconds if seconds else 0.0,
                          segments=len(self.segments), **self._notes())

    def failed(self, error: str) -> dict:
        """Close the run as failed, keeping what the segments wrote (a later run resumes it)."""
        if self.store is not None:
            merge_parts(self.store)
            self.store.end_run(self.run_id, "failed", frames=0)
            _close(self.store)
        return result_row(self.index, self.out, "failed", error=error,
                          seconds=time.perf_counter() - self.started, **self._notes())

    def _notes(self) -> dict:
        return {"took_over_lock": self.took_over.describe()} if self.took_over else {}


def _close(store) -> None:
    """Give back the project's write lock (stores without a lock have nothing to give back)."""
    close = getattr(store, "close", None)
    if close is not None:
        close()
