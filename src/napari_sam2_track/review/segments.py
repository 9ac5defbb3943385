"""Corrections: which segment a correction touches, where its re-propagation may stop, and
its undo (the newest track version).

Before a correction re-propagates object ``o`` on the frames ``[a, b]`` (:func:`correction_segment`:
between its neighbouring keyframes, clipped to the frames around the corrected one that hold a
result), :func:`begin_correction` starts a track version of ``o``
(:mod:`napari_sam2_track.project.versions`): its prompts on ``[a, b]`` and its mask and row on
the corrected frame are kept, and every frame the re-propagation writes is kept just before it
is written. With :class:`EarlyStop` a direction stops once ``agree_frames`` consecutive frames
agree with the stored masks; the frames beyond keep their masks and rows. :func:`undo_segment`
restores the object's newest version (whatever its last change was).
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np

from ..errors import ReviewError
from ..passes import Plan, correction_range
from ..project import COL, STATE_ABSENT, STATE_NOT_RUN, ProjectStore
from ..project.versions import (
    Recording,
    RunVersions,
    begin_version,
    list_versions,
    newest_version,
    restore_version,
    undo_newest,
)

if TYPE_CHECKING:
    from ..engine.tracker import FrameResult, StreamingTracker

__all__ = [
    "ChainStop",
    "EarlyStop",
    "begin_correction",
    "correction_segment",
    "has_undo",
    "list_versions",
    "newest_version",
    "propagated_around",
    "restore_version",
    "segment_snapshot",
    "snapshot_segment",
    "undo_segment",
]


def correction_segment(store: ProjectStore, obj_id: int, frame: int) -> tuple[int, int]:
    """The frames ``(a, b)`` a correction of ``obj_id`` on ``frame`` re-propagates: those
    between its neighbouring keyframes stored in the project
    (:func:`~napari_sam2_track.passes.correction_range`), clipped to the frames around
    ``frame`` that hold a result (:func:`propagated_around`): a correction never extends into
    frames never propagated."""
    keyframes = [p.frame for p in store.prompts.prompts if p.object == obj_id]
    start, end = correction_range(keyframes, frame, store.num_frames)
    return propagated_around(store, obj_id, frame, start, end)


def propagated_around(store: ProjectStore, obj_id: int, frame: int, start: int,
                      end: int) -> tuple[int, int]:
    """The run of frames around ``frame`` inside ``start..end`` that hold a result for
    ``obj_id`` (its table's ``state`` is not ``not_run``: propagated, absent, prompted or
    edited); ``frame`` itself always belongs. Reads only the rows ``start..end``."""
    rows = store.table_rows(obj_id, start, end + 1)
    if rows is None:
        return frame, frame
    states = np.asarray(rows[:, COL["state"]], dtype=np.float64)
    done = np.isfinite(states) & (states != STATE_NOT_RUN)
    done[frame - start] = True
    gaps = np.flatnonzero(~done)
    before, after = gaps[gaps < frame - start], gaps[gaps > frame - start]
    first = start + (int(before[-1]) + 1 if len(before) else 0)
    last = start + (int(after[0]) - 1 if len(after) else end - start)
    return first, last


def begin_correction(store: ProjectStore, obj_id: int, frame: int, start: int, end: int,
                     who: str | None = None, *, prompt_span: tuple[int, int] | None = None,
                     what: str | None = None) -> Recording:
    """Start the version of a correction of ``obj_id`` on ``frame`` over ``start..end``: its
    prompts on the segment and its mask and row on ``frame`` are kept now (the prompt's mask is
    written next); the frames the re-propagation writes are kept as it goes
    (:class:`~napari_sam2_track.project.versions.RunVersions`). ``prompt_span``: the prompts'
    ``frame`` values kept (default ``start..end``; a volume project's are timepoints)."""
    _check_segment(store, obj_id, start, end)
    rec = begin_version(store, obj_id, "correction", what or f"correction on frame {frame}",
                        [(start, end)], who=who, prompt_span=prompt_span or (start, end), frame=frame)
    row = store.table_rows(obj_id, frame, frame + 1)
    rec.capture(frame, store.mask(obj_id, frame), row[0] if row is not None else np.full(len(COL), np.nan))
    return rec


def _check_segment(store: ProjectStore, obj_id: int, start: int, end: int) -> None:
    n = store.num_frames
    if obj_id not in store.object_ids():
        raise ReviewError(f"object {obj_id} is not in {store.path.name}")
    if not (0 <= start <= end < n):
        raise ReviewError(f"frames {start}-{end} are not a range inside the video (frames 0-{n - 1})")


def snapshot_segment(store: ProjectStore, obj_id: int, start: int, end: int) -> Recording:
    """Keep ``obj_id``'s masks, table rows and prompts on ``start..end`` now, as a complete
    version (for changes written by other means than a tracking run): :func:`undo_segment`
    gives them back."""
    _check_segment(store, obj_id, start, end)
    rec = begin_version(store, obj_id, "correction", f"frames {start}-{end} kept", [(start, end)],
                        prompt_span=(start, end))
    rows = store.table_rows(obj_id, start, end + 1)
    for t in range(start, end + 1):  # frame by frame: memory does not grow with the segment
        rec.capture(t, store.mask(obj_id, t), rows[t - start])
    rec.finish(range(start, end + 1))
    return rec


def segment_snapshot(store: ProjectStore, obj_id: int) -> tuple[int, int] | None:
    """The first and last frame an undo of ``obj_id`` restores (its newest version), if any."""
    newest = newest_version(store, obj_id)
    return newest.span if newest is not None else None


def undo_segment(store: ProjectStore, obj_id: int, who: str | None = None) -> tuple[int, int]:
    """Undo the object's last change: restore its newest version (masks, table rows and
    prompts, byte for byte); returns the first and last frame restored. The undo is a version
    itself (undo it to redo), and a change record (``undo``) invalidates QC decisions there."""
    newest = newest_version(store, obj_id)
    if newest is None:
        raise ReviewError(f"object {obj_id} has no correction to undo")
    span = newest.span
    undo_newest(store, obj_id, who=who)
    return span if span is not None else (0, -1)


def has_undo(store: ProjectStore, obj_id: int) -> bool:
    """Whether object ``obj_id`` has a change that :func:`undo_segment` can undo."""
    return newest_version(store, obj_id) is not None


# ------------------------------------------------------------------- early stop
@dataclass
class EarlyStop:
    """Stop each direction of a correction once ``frames`` consecutive re-propagated frames
    agree with the stored masks: the same presence (visible or not) and, where visible, an
    IoU of at least ``iou``. ``stops`` says where each direction stopped."""

    frames: int = 5
    iou: float = 0.9
    min_visible_pixels: int = 0
    stops: dict[str, int] = field(default_factory=dict)

    @classmethod
    def from_schema(cls, store: ProjectStore) -> "EarlyStop | None":
        """The project's rule (``None``: its schema asks for the whole segment)."""
        schema = store.schema
        review = schema.review
        if review.correction_stop != "agree":
            return None
        return cls(review.agree_frames, review.agree_iou, schema.min_visible_pixels)

    def agrees(self, result: "FrameResult", obj_id: int, before: tuple[np.ndarray, np.ndarray]) -> bool:
        """Whether ``result``'s mask of ``obj_id`` agrees with the stored one (``before``)."""
        old_mask, old_row = before
        threshold = max(1, self.min_visible_pixels)
        new_mask = np.asarray(result.masks[obj_id], bool)
        new_area = int(new_mask.sum())
        new_on = (result.presence[obj_id] > 0 or obj_id in result.prompted) and new_area >= threshold
        state = old_row[COL["state"]]
        if not np.isfinite(state) or state == STATE_NOT_RUN:
            return False  # nothing to agree with
        old_on = state != STATE_ABSENT and int(old_mask.sum()) >= threshold
        if new_on != old_on:
            return False
        if not new_on:
            return True
        union = int((new_mask | old_mask).sum())
        return union > 0 and int((new_mask & old_mask).sum()) / union >= self.iou

    def results(self, tracker: "StreamingTracker", plan: Plan, cancel: threading.Event | None,
                versions: RunVersions) -> Iterator["FrameResult"]:
        """The results of ``plan``, pass by pass, each pass ended after ``frames`` agreeing
        frames in a row (that frame included). Keeps each frame's pre-image in ``versions``
        first (it is also what the frame is compared with)."""
        self.stops = {}
        for p in plan.passes:
            agreeing = 0
            frames = tracker.run(Plan(plan.direction, plan.start, plan.end, plan.objects, [p]), cancel)
            try:
                for result in frames:
                    before = versions.capture(result)
                    objs = [o for o in result.masks if o in before]
                    if not objs or result.prompted or not all(self.agrees(result, o, before[o]) for o in objs):
                        agreeing = 0
                    else:
                        agreeing += 1
                    yield result
                    if agreeing >= self.frames:
                        self.stops["backward" if p.reverse else "forward"] = result.frame
                        break
            finally:
                frames.close()


@dataclass
class ChainStop:
    """The early stop of a volume correction's chain of timepoints: a sweep (later or earlier
    timepoints) ends once a re-chained timepoint's new 3D mask of the object agrees with the
    stored one: the same presence over the timepoint (visible on some slice or on none) and,
    where visible, a 3D IoU of at least ``rule.iou`` (the schema's ``review.agree_iou``, its
    ``min_visible_pixels`` per slice). The corrected timepoint never counts. ``stops``:
    ``{"forward"|"backward": timepoint}`` where each sweep ended."""

    rule: EarlyStop
    n_z: int
    corrected: int  # the corrected timepoint
    stops: dict[str, int] = field(default_factory=dict)
    _seen: dict[int, list] = field(default_factory=dict)

    def watch(self, results: Iterator["FrameResult"], versions: RunVersions) -> Iterator["FrameResult"]:
        """``results`` (planes ``t * Z + z``), each compared with its pre-image, kept in
        ``versions`` first."""
        threshold = max(1, self.rule.min_visible_pixels)
        for result in results:
            before = versions.capture(result)
            seen = self._seen.setdefault(int(result.frame) // self.n_z, [True, 0, 0, 0, 0])
            for o, (old_mask, old_row) in before.items():
                state = old_row[COL["state"]]
                if not np.isfinite(state) or state == STATE_NOT_RUN:
                    seen[0] = False  # nothing to agree with
                    continue
                new = np.asarray(result.masks[o], bool)
                new_on = (result.presence[o] > 0 or o in result.prompted) and int(new.sum()) >= threshold
                old_on = state != STATE_ABSENT and int(old_mask.sum()) >= threshold
                new, old = (new if new_on else np.zeros_like(new)), (old_mask if old_on else np.zeros_like(new))
                seen[1:] = [seen[1] + new_on, seen[2] + old_on, seen[3] + int((new & old).sum()),
                            seen[4] + int((new | old).sum())]
            yield result

    def ends(self, t: int, backward: bool) -> bool:
        """Whether the sweep ends at timepoint ``t`` (all its planes written)."""
        known, new_on, old_on, inter, union = self._seen.pop(t, [False, 0, 0, 0, 0])
        if t == self.corrected or not known or (new_on > 0) != (old_on > 0):
            return False
        if new_on and not (union > 0 and inter / union >= self.rule.iou):
            return False
        self.stops["backward" if backward else "forward"] = t
        return True
