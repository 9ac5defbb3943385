"""Undo of a correction: the rule of which segment a correction touches and whether its undo
is still allowed.

Before a correction re-propagates object ``o`` on the frames ``[a, b]`` between its neighbouring
keyframes (:func:`correction_segment`), :func:`snapshot_segment` keeps that object's masks,
table rows and prompts on ``[a, b]`` in the project (stored by :mod:`napari_sam2_track.project.undo`).
One snapshot is kept per object, until the next correction of that object replaces it or an
undo uses it. Once the correction is written, :func:`mark_corrected` notes the time: a later
change of the object on the segment (a hand edit, another prompt, a propagation) makes
:func:`undo_segment` refuse, as undoing would silently lose that change.
"""

from __future__ import annotations

import datetime as _dt

from ..errors import ReviewError
from ..passes import correction_range
from ..project import ProjectStore
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
    "segment_snapshot",
    "snapshot_segment",
    "undo_segment",
]


def correction_segment(store: ProjectStore, obj_id: int, frame: int) -> tuple[int, int]:
    """The frames a prompt on ``frame`` affects, by the object's keyframes stored in the
    project (:func:`~napari_sam2_track.passes.correction_range`)."""
    keyframes = [p.frame for p in store.prompts.prompts if p.object == obj_id]
    return correction_range(keyframes, frame, store.num_frames)


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
