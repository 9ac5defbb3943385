"""Undo snapshots: one object's masks, table rows and prompts on a segment, kept in the project.

:func:`snapshot_segment` copies object ``o``'s state on the frames ``[a, b]`` into::

    undo/<o>/mask                 bool (b - a + 1, y, x), one chunk per frame
    undo/<o>/table                float64 (b - a + 1, 8)
    undo/<o>/prompt_masks/<t>     bool (y, x): mask prompts of the segment
    undo/<o> attributes           {start, end, time, prompts, complete, corrected}

:func:`restore_snapshot` writes them back: each frame's label layers are rebuilt from the
snapshot mask and the other objects' masks as stored (``ProjectStore.merge_labels``); the
layers' deterministic encoding makes them byte-identical to the chunks before the snapshot when
the other objects did not change in between. One snapshot is kept per object. Which segment to
keep and whether an undo is still allowed is the rule of
:mod:`napari_sam2_track.review.segments`; this module only stores and restores.
"""

from __future__ import annotations

import numpy as np

from ..errors import ReviewError
from ._jsonl import now_iso
from .layout import TABLE_COLUMNS, UNDO_GROUP
from .store import ProjectStore

_STORED = "store:"  # prefix of a mask prompt whose pixels the project keeps


def _name(obj_id: int) -> str:
    return f"{UNDO_GROUP}/{obj_id}"


def snapshot_segment(store: ProjectStore, obj_id: int, start: int, end: int) -> None:
    """Keep object ``obj_id``'s masks, table rows and prompts on ``start..end`` for
    :func:`restore_snapshot`, replacing the object's earlier snapshot."""
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
    rows = store.table_rows(obj_id, start, end + 1)
    if rows is None:
        rows = np.full((end - start + 1, len(TABLE_COLUMNS)), np.nan)
    group.create_array("table", data=rows)
    prompts = [p for p in store.meta["prompts"] if p["object"] == obj_id and start <= p["frame"] <= end]
    for p in prompts:
        if (p.get("mask") or "").startswith(_STORED):
            group.create_array(f"prompt_masks/{p['frame']}",
                               data=store.group[p["mask"].removeprefix(_STORED)][:])
    group.attrs.update({"start": start, "end": end, "time": now_iso(), "prompts": prompts,
                        "complete": True})  # written last: a half-written snapshot is never used


def segment_snapshot(store: ProjectStore, obj_id: int) -> tuple[int, int] | None:
    """The frames ``(start, end)`` object ``obj_id``'s complete snapshot holds, if any."""
    name = _name(obj_id)
    if name not in store.group:
        return None
    attrs = store.group[name].attrs
    return (int(attrs["start"]), int(attrs["end"])) if attrs.get("complete") else None


def mark_corrected(store: ProjectStore, obj_id: int) -> None:
    """Note (now) that the correction of object ``obj_id``'s snapshot is written."""
    if segment_snapshot(store, obj_id) is not None:
        store.group[_name(obj_id)].attrs["corrected"] = now_iso()


def corrected_time(store: ProjectStore, obj_id: int) -> str | None:
    """When :func:`mark_corrected` noted the correction of the object's snapshot (ISO time)."""
    if segment_snapshot(store, obj_id) is None:
        return None
    return store.group[_name(obj_id)].attrs.get("corrected") or None


def restore_snapshot(store: ProjectStore, obj_id: int) -> tuple[int, int]:
    """Write object ``obj_id``'s snapshot back and delete it; returns the frames restored.

    The object's masks, table rows and prompts on the segment become what they were when the
    snapshot was taken and the label layers of those frames are rebuilt; the table rows are
    written after the layers and the snapshot is deleted last, so an interrupted restore can be
    run again. :class:`ReviewError` if there is no complete snapshot or it is damaged.
    """
    span = segment_snapshot(store, obj_id)
    if span is None:
        raise ReviewError(f"object {obj_id} has no correction to undo")
    start, end = span
    group = store.group[_name(obj_id)]
    table = group["table"][:]
    masks = group["mask"]
    if table.shape != (end - start + 1, len(TABLE_COLUMNS)) or masks.shape[0] != len(table):
        raise ReviewError(f"the undo snapshot of object {obj_id} is damaged; it cannot be restored")
    kept = [p for p in store.meta["prompts"] if not (p["object"] == obj_id and start <= p["frame"] <= end)]
    restored = list(group.attrs["prompts"])
    for p in restored:
        if (p.get("mask") or "").startswith(_STORED):
            target = p["mask"].removeprefix(_STORED)
            if target in store.group:
                del store.group[target]
            store.group.create_array(target, data=group[f"prompt_masks/{p['frame']}"][:])
    store.update_meta(prompts=[*kept, *restored])
    for t in range(start, end + 1):  # the object's mask back into the frame's label layers
        store.merge_labels(t, {obj_id: masks[t - start]})
    store.write_table_block(obj_id, start, table)
    del store.group[_name(obj_id)]
    return start, end
