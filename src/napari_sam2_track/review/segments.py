"""Undo of a correction: the segment of one object between its neighbouring keyframes.

Before a correction re-propagates object ``o`` on the frames ``[a, b]`` between its neighbouring
keyframes (:func:`correction_segment`), :func:`snapshot_segment` copies that object's masks,
table rows and prompts on ``[a, b]`` into the project::

    undo/<o>/mask                 bool (b - a + 1, y, x), one chunk per frame
    undo/<o>/table                float64 (b - a + 1, 8)
    undo/<o>/prompt_masks/<t>     bool (y, x): mask prompts of the segment
    undo/<o> attributes           {start, end, time, prompts, complete, corrected}

:func:`undo_segment` writes them back: each frame's label layers are rebuilt from the snapshot
mask and the other objects' masks as stored (``ProjectStore.merge_labels``); the layers'
deterministic encoding makes them byte-identical to the chunks before the correction when the
other objects did not change in between. One snapshot is kept per object, until the next
correction of that object replaces it or an undo uses it. Once the correction is written,
:func:`mark_corrected` notes the time: a later change of the object on the segment (a hand
edit, another prompt, a propagation) makes :func:`undo_segment` refuse, as undoing would
silently lose that change.
"""

from __future__ import annotations

from ..project._jsonl import now_iso
from ..errors import ReviewError
from ..passes import correction_range
from ..project import TABLE_COLUMNS, ProjectStore
from .models import Change, read_review

UNDO_GROUP = "undo"


def correction_segment(store: ProjectStore, obj_id: int, frame: int) -> tuple[int, int]:
    """The frames a prompt on ``frame`` affects, by the object's keyframes stored in the
    project (:func:`~napari_sam2_track.passes.correction_range`)."""
    keyframes = [p.frame for p in store.prompts.prompts if p.object == obj_id]
    return correction_range(keyframes, frame, store.num_frames)


def _name(obj_id: int) -> str:
    return f"{UNDO_GROUP}/{obj_id}"


def snapshot_segment(store: ProjectStore, obj_id: int, start: int, end: int) -> None:
    """Keep object ``obj_id``'s masks, table rows and prompts on ``start..end`` for
    :func:`undo_segment`, replacing the object's earlier snapshot."""
    from zarr.codecs import ZstdCodec

    n, h, w = store.shape
    if obj_id not in store.object_ids():
        raise ReviewError(f"object {obj_id} is not in {store.path.name}")
    if not (0 <= start <= end < n):
        raise ReviewError(f"frames {start}-{end} are not a range inside the video (frames 0-{n - 1})")
    name = _name(obj_id)
    if name in store.group:
        del store.group[name]
    group = store.group.require_group(name)
    mask = group.create_array("mask", shape=(end - start + 1, h, w), chunks=(1, h, w), dtype="bool",
                              fill_value=False, compressors=ZstdCodec(level=3))
    for t in range(start, end + 1):  # frame by frame: memory does not grow with the segment
        own = store.mask(obj_id, t)
        if own.any():
            mask[t - start] = own
    group.create_array("table", data=store.group[f"objects/{obj_id}/table"][start : end + 1])
    prompts = [p for p in store.meta["prompts"] if p["object"] == obj_id and start <= p["frame"] <= end]
    for p in prompts:
        if p.get("mask", "") and p["mask"].startswith("store:"):
            group.create_array(f"prompt_masks/{p['frame']}", data=store.group[p["mask"].removeprefix("store:")][:])
    group.attrs.update({"start": start, "end": end, "time": now_iso(), "prompts": prompts,
                        "complete": True})  # written last: a half-written snapshot is never used


def segment_snapshot(store: ProjectStore, obj_id: int) -> tuple[int, int] | None:
    """The frames ``(start, end)`` an undo of object ``obj_id`` would restore, if any."""
    name = _name(obj_id)
    if name not in store.group:
        return None
    attrs = store.group[name].attrs
    return (int(attrs["start"]), int(attrs["end"])) if attrs.get("complete") else None


def mark_corrected(store: ProjectStore, obj_id: int) -> None:
    """Note that the correction of object ``obj_id``'s snapshot is written (now): changes of
    the segment after this make :func:`undo_segment` refuse."""
    if segment_snapshot(store, obj_id) is not None:
        store.group[_name(obj_id)].attrs["corrected"] = now_iso()


def change_since_correction(store: ProjectStore, obj_id: int) -> Change | None:
    """The first change of object ``obj_id`` on its snapshot's segment after the correction
    was written (``None``: none, or no correction marked)."""
    span = segment_snapshot(store, obj_id)
    if span is None:
        return None
    corrected = store.group[_name(obj_id)].attrs.get("corrected")
    if not corrected:
        return None
    import datetime as _dt

    since = _dt.datetime.fromisoformat(corrected)
    probe = Change(object=obj_id, start=span[0], end=span[1], source="undo", reason="", time=since)
    return next((c for c in read_review(store).changes if c.time > since and c.overlaps(probe)), None)


def undo_segment(store: ProjectStore, obj_id: int) -> tuple[int, int]:
    """Restore object ``obj_id``'s segment from its snapshot; returns the frames restored.

    The object's masks, table rows and prompts on the segment become what they were when the
    snapshot was taken, the merged labels of those frames are recomputed, and a change record
    (``undo``) is appended. The snapshot is used up.
    """
    span = segment_snapshot(store, obj_id)
    if span is None:
        raise ReviewError(f"object {obj_id} has no correction to undo")
    start, end = span
    later = change_since_correction(store, obj_id)
    if later is not None:
        raise ReviewError(
            f"object {obj_id} changed on frames {later.frames} after the correction ({later.reason}); "
            "undoing it would lose that change: correct the frame again instead")
    group = store.group[_name(obj_id)]
    table = group["table"][:]
    if table.shape != (end - start + 1, len(TABLE_COLUMNS)) or group["mask"].shape[0] != len(table):
        raise ReviewError(f"the undo snapshot of object {obj_id} is damaged; it cannot be restored")
    kept = [p for p in store.meta["prompts"] if not (p["object"] == obj_id and start <= p["frame"] <= end)]
    restored = list(group.attrs["prompts"])
    for p in restored:
        if p.get("mask", "") and p["mask"].startswith("store:"):
            target = p["mask"].removeprefix("store:")
            if target in store.group:
                del store.group[target]
            store.group.create_array(target, data=group[f"prompt_masks/{p['frame']}"][:])
    store.update_meta(prompts=[*kept, *restored])
    masks = group["mask"]
    for t in range(start, end + 1):  # the object's mask back into the frame's label layers
        store.merge_labels(t, {obj_id: masks[t - start]})
    store.group[f"objects/{obj_id}/table"][start : end + 1] = table  # rows last: the frames are done
    del store.group[_name(obj_id)]
    store.record_changes([(obj_id, start, end)], f"undo of the correction on frames {start}-{end}", "undo")
    return start, end


def has_undo(store: ProjectStore, obj_id: int) -> bool:
    """Whether object ``obj_id`` has a correction that :func:`undo_segment` can undo."""
    return segment_snapshot(store, obj_id) is not None
