"""Undo of a correction: the rule of which segment a correction touches and whether its undo
is still allowed.

Before a correction re-propagates object ``o`` on the frames ``[a, b]`` (:func:`correction_segment`:
between its neighbouring keyframes, clipped to the frames around the corrected one that hold a
result), :func:`snapshot_segment` keeps that object's masks,
table rows and prompts on ``[a, b]`` in the project (stored by :mod:`napari_sam2_track.project.undo`).
One snapshot is kept per object, until the next correction of that object replaces it or an
undo uses it. Once the correction is written, :func:`mark_corrected` notes the time: a later
change of the object on the segment (a hand edit, another prompt, a propagation) makes
:func:`undo_segment` refuse, as undoing would silently lose that change.
"""

from __future__ import annotations

import datetime as _dt

import numpy as np

from ..errors import ReviewError
from ..passes import correction_range
from ..project import COL, STATE_NOT_RUN, ProjectStore
from ..project.undo import (
    corrected_time,
    mark_corrected,
    restore_snapshot,
    segment_snapshot,
    snapshot_segment,
)
from .models import Change, read_review

__all__ = [
    "change_since_correction",
    "correction_segment",
    "has_undo",
    "mark_corrected",
    "propagated_around",
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


def change_since_correction(store: ProjectStore, obj_id: int) -> Change | None:
    """The first change of object ``obj_id`` on its snapshot's segment after the correction
    was written (``None``: none, or no correction marked)."""
    span = segment_snapshot(store, obj_id)
    corrected = corrected_time(store, obj_id)
    if span is None or corrected is None:
        return None
    since = _dt.datetime.fromisoformat(corrected)
    probe = Change(object=obj_id, start=span[0], end=span[1], source="undo", reason="", time=since)
    return next((c for c in read_review(store).changes if c.time > since and c.overlaps(probe)), None)


def undo_segment(store: ProjectStore, obj_id: int) -> tuple[int, int]:
    """Restore object ``obj_id``'s segment from its snapshot; returns the frames restored.

    The object's masks, table rows and prompts on the segment become what they were when the
    snapshot was taken, the merged labels of those frames are recomputed, and a change record
    (``undo``) is appended. The snapshot is used up. Refused while the segment changed after
    the correction (:func:`change_since_correction`).
    """
    if segment_snapshot(store, obj_id) is None:
        raise ReviewError(f"object {obj_id} has no correction to undo")
    later = change_since_correction(store, obj_id)
    if later is not None:
        raise ReviewError(
            f"object {obj_id} changed on frames {later.frames} after the correction ({later.reason}); "
            "undoing it would lose that change: correct the frame again instead")
    start, end = restore_snapshot(store, obj_id)
    store.record_changes([(obj_id, start, end)], f"undo of the correction on frames {start}-{end}", "undo")
    return start, end


def has_undo(store: ProjectStore, obj_id: int) -> bool:
    """Whether object ``obj_id`` has a correction that :func:`undo_segment` can undo."""
    return segment_snapshot(store, obj_id) is not None
