"""Reading and writing a project's masks (mixed into :class:`~.store.ProjectStore`).

Store format 2 keeps every object's mask in label layers (see :mod:`.layers`): the merged
labels ``labels/masklets/0`` plus the overlap layers ``overlaps/<k>``, one chunk (or shard)
per frame each. Nothing outside this module and :mod:`.layer_arrays` needs to know that: read
masks with :meth:`MaskStore.mask`, :meth:`~MaskStore.masks`, :meth:`~MaskStore.frame_masks`
or :meth:`~MaskStore.mask_crops` (:meth:`~MaskStore.shared_pixels` counts overlaps), and write
them with :meth:`~MaskStore.merge_labels`.
Format-1 projects (one full-frame bool array per object, ``objects/<id>/mask``) are read as
they are; writing needs the project opened for writing, which upgrades it (:mod:`.migrate`).
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np

from ..errors import StoreError
from ..prompts import ObjectSpec
from ._chunks import write_table_rows
from .layer_arrays import LayerArrays
from .volume import chunk_coords, plane_key
from .layers import (
    build_layers,
    layers_from_masks,
    mask_box,
    mask_from_layers,
    masks_from_layers,
    shared_pixel_counts,
)
from .layout import (
    COL,
    FORMAT_VERSION,
    LABELS_PATH,
    STATE_EDITED,
    V1_MASK_PATH,
    overlap_path,
    table_path,
)


def mask_stats(mask: np.ndarray) -> tuple[int, tuple[int, int, int, int] | None]:
    """Area and bounding box ``(x0, y0, x1, y1)`` (end-exclusive) of a bool mask."""
    area, box = mask_box(np.asarray(mask, bool))
    if box is None:
        return 0, None
    y0, y1, x0, x1 = box
    return area, (x0, y0, x1, y1)


class MaskStore:
    """The masks and table rows of a project store (format 2, reading format 1 too)."""

    _layer_arrays: LayerArrays | None = None

    @property
    def layers(self) -> LayerArrays:
        """Chunk-level access to the label layers that hold the masks (format 2)."""
        if self._layer_arrays is None:
            with self._meta_lock:  # one instance, even when writer threads ask at once
                if self._layer_arrays is None:
                    self._layer_arrays = LayerArrays(self.path, self.group, self.shape,
                                                     planes=self.planes)
        return self._layer_arrays

    def require_current_format(self) -> None:
        """Refuse (:class:`StoreError`) to write a project of an older store format."""
        if self.format_version < FORMAT_VERSION:
            raise StoreError(
                f"{self.path} uses store format {self.format_version}; open it for writing "
                f"(not read-only) to upgrade it to format {FORMAT_VERSION}"
            )

    # ------------------------------------------------------------------ reading
    def mask(self, obj_id: int, t: int) -> np.ndarray:
        """The bool mask of one object on one frame."""
        if self.format_version < 2:
            return self._array(V1_MASK_PATH.format(id=obj_id))[t]
        return mask_from_layers(self.layers.read(t), obj_id)

    def masks(self, obj_id: int, start: int, stop: int, step: int = 1) -> np.ndarray:
        """One object's bool masks on frames ``start:stop:step``, ``(k, h, w)``."""
        if self.format_version < 2:
            return self._array(V1_MASK_PATH.format(id=obj_id))[start:stop:step]
        frames = range(start, min(stop, self.num_frames), step)
        out = np.zeros((len(frames), *self.shape[1:]), bool)
        for i, t in enumerate(frames):
            if self.layers.has_frame(t):
                out[i] = mask_from_layers(self.layers.read(t), obj_id)
        return out

    def mask_crops(self, obj_ids: Iterable[int], start: int, stop: int,
                   rows: slice, cols: slice) -> dict[int, np.ndarray]:
        """Crops ``[rows, cols]`` of some objects' bool masks on frames ``start:stop``:
        ``{object: (stop - start, crop height, crop width)}``, each frame read once."""
        ids = [int(o) for o in obj_ids]
        if self.format_version < 2:
            return {o: np.asarray(self._array(V1_MASK_PATH.format(id=o))[start:stop, rows, cols], bool)
                    for o in ids}
        out: dict[int, np.ndarray] | None = None
        for i, t in enumerate(range(start, stop)):
            crops = [layer[rows, cols] for layer in self.layers.read(t)]
            if out is None:
                out = {o: np.zeros((stop - start, *crops[0].shape), bool) for o in ids}
            for o in ids:
                out[o][i] = mask_from_layers(crops, o)
        return out or {o: np.zeros((0, 0, 0), bool) for o in ids}

    def shared_pixels(self, t: int) -> dict[tuple[int, int], int]:
        """Pixels each pair of objects shares on frame ``t``: ``{(lower id, higher id): count}``
        (pairs sharing none left out). Format 2 reads only the overlap tiles; format 1 reads
        every object's mask."""
        if self.format_version < 2:
            return shared_pixel_counts(layers_from_masks(self.frame_masks(t), self.shape[1:]))
        return self.layers.shared_pixels(t)

    def frame_masks(self, t: int, ids: Iterable[int] | None = None) -> dict[int, np.ndarray]:
        """Bool masks of objects on frame ``t``: of ``ids`` (default: the project's objects).

        Reading a frame once for all its objects is the fast way to walk a project.
        """
        ids = self.object_ids() if ids is None else [int(i) for i in ids]
        if self.format_version < 2:
            return {o: self.mask(o, t) for o in ids}
        if not self.layers.has_frame(t):
            return {o: np.zeros(self.shape[1:], bool) for o in ids}
        masks = masks_from_layers(self.layers.read(t), ids)
        return {o: masks[o] for o in ids}

    def unreadable_mask_array(self, t: int) -> str:
        """The first array holding masks whose frame ``t`` cannot be read (for messages)."""
        if self.format_version < 2:
            names = [V1_MASK_PATH.format(id=o) for o in self.object_ids()]
        else:
            names = [LABELS_PATH, *(overlap_path(k) for k in range(1, self.layers.num_overlap_layers + 1))]
        key = plane_key(t, self.planes)
        for name in names:
            try:
                self.group[name][key]
            except Exception:  # noqa: BLE001 - whatever a damaged chunk raises
                return name
        for k in range(1, self.layers.num_overlap_layers + 1 if self.format_version >= 2 else 1):
            try:  # the tile reader of shared_pixels, stricter than zarr on a damaged shard
                io = self.layers.shard_io(k)
                if io is not None:
                    io.read_tiles(chunk_coords(t, self.planes))
            except Exception:  # noqa: BLE001
                return overlap_path(k)
        return names[0] if names else LABELS_PATH

    # ------------------------------------------------------------------ writing
    def write_mask(self, obj_id: int, t: int, mask: np.ndarray) -> None:
        """Write one object's mask on frame ``t`` (and the frame's merged labels).

        To write several objects of a frame, :meth:`merge_labels` with all of them is faster.
        """
        self.merge_labels(t, {obj_id: mask})

    def write_row(
        self, obj_id: int, t: int, mask: np.ndarray, *, presence: float, state: int, run: int
    ) -> None:
        """Write one object's table row on frame ``t`` (area and bounding box from ``mask``)."""
        area, bbox = mask_stats(mask)
        x0, y0, x1, y1 = bbox if bbox is not None else (np.nan,) * 4
        self._array(table_path(obj_id))[t] = [presence, area, x0, y0, x1, y1, state, run]

    def write_rows(self, rows: dict[int, list[tuple[int, list[float]]]]) -> None:
        """Write table rows ``{object: [(frame, row), ...]}``, one write per table chunk."""
        for obj_id, obj_rows in rows.items():
            name = table_path(obj_id)
            write_table_rows(self.layers.chunk_io(name), self._array(name), obj_rows)

    def merge_labels(self, t: int, masks: dict[int, np.ndarray] | None = None) -> np.ndarray:
        """Write the masks ``masks`` of frame ``t`` and recompute its merged label image.

        The other objects' masks are kept as stored. Where objects overlap, the lowest id
        wins in the merged labels and the others are kept in the overlap layers. Returns the
        merged labels.
        """
        masks = {int(o): np.asarray(m, bool) for o, m in (masks or {}).items()}
        self.require_current_format()
        for obj_id in masks:
            self.ensure_object_table(obj_id)
        others = [o for o in self.object_ids() if o not in masks]
        if others and self.layers.has_frame(t):
            masks.update(masks_from_layers(self.layers.read(t), others))
        frame = build_layers(masks, self.shape[1:])
        self.layers.write(t, frame)
        return frame.labels

    def write_edited_labels(self, t: int, frame_labels: np.ndarray, run: int = 0) -> list[int]:
        """Persist a hand-edited label image of frame ``t``; returns the objects changed.

        Each object's mask becomes its pixels in ``frame_labels`` (plus its pixels hidden
        under a lower id where the user left the pixel alone); changed objects are marked
        ``edited`` in the table. Unknown ids become new objects.
        """
        frame_labels = np.asarray(frame_labels, dtype=np.uint32)
        self.require_current_format()
        for obj_id in sorted(set(np.unique(frame_labels).tolist()) - {0} - set(self.object_ids())):
            self.add_object(ObjectSpec(id=int(obj_id)))
        ids = self.object_ids()
        layers = self.layers.read(t)
        old = masks_from_layers(layers, ids)
        # Pixels of an object hidden under a lower id stay in its mask where the user left the
        # pixel alone; then the lowest-id merge of the masks is exactly ``frame_labels``.
        untouched = frame_labels == layers[0]
        masks, changed = {}, []
        for obj_id in ids:
            masks[obj_id] = (frame_labels == obj_id) | (old[obj_id] & untouched)
            if not np.array_equal(masks[obj_id], old[obj_id]):
                changed.append(obj_id)
        self.layers.write(t, build_layers(masks, self.shape[1:]))
        for obj_id in changed:
            presence = self._array(table_path(obj_id))[t, COL["presence"]]
            self.write_row(obj_id, t, masks[obj_id], presence=presence, state=STATE_EDITED, run=run)
        self.record_changes([(o, t, t) for o in changed], f"edited by hand on frame {t}", "edit")
        return changed
