"""Per-object masks as stacked label layers (store format 2).

Layer 0 is the merged label image (``labels/masklets/0``): each pixel holds the **lowest** id of
the objects claiming it. Layer ``k`` (``overlaps/k``) holds the ``k+1``-th lowest id where at
least ``k+1`` objects overlap, and 0 elsewhere. An object's mask is therefore the union over
layers of ``layer == id``: nothing is lost where masks overlap, and a frame without overlaps
needs layer 0 alone. The functions here work on bounding-box crops, so their cost grows with
the objects' size rather than the frame's.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np

#: Bounding box as ``(y0, y1, x0, x1)``, end-exclusive.
Box = tuple[int, int, int, int]


def _tight(mask: np.ndarray) -> Box | None:
    """Bounding box of a bool mask (no area: cheaper than :func:`mask_box`)."""
    rows = np.flatnonzero(mask.any(axis=1))
    if rows.size == 0:
        return None
    y0, y1 = int(rows[0]), int(rows[-1]) + 1
    cols = np.flatnonzero(mask[y0:y1].any(axis=0))
    return y0, y1, int(cols[0]), int(cols[-1]) + 1


def mask_box(mask: np.ndarray) -> tuple[int, Box | None]:
    """Area and bounding box ``(y0, y1, x0, x1)`` (end-exclusive) of a bool mask."""
    box = _tight(mask)
    return (0, None) if box is None else (int(np.count_nonzero(mask[box[0] : box[1]])), box)


def _intersect(a: Box, b: Box) -> Box | None:
    y0, y1, x0, x1 = max(a[0], b[0]), min(a[1], b[1]), max(a[2], b[2]), min(a[3], b[3])
    return (y0, y1, x0, x1) if y0 < y1 and x0 < x1 else None


class LayerScratch:
    """All-zero frames that :func:`build_layers` fills and :meth:`clear` zeroes again.

    A writer thread keeps one, sparing the page faults of fresh 8 MB frames on every frame.
    Overlap layers are padded to whole ``tile`` x ``tile`` tiles (the shards' grid), so every
    tile of them is a plain view; they are allocated zeroed on first use, and only the pages a
    frame touched ever become resident, so deep but small overlaps cost little memory.
    """

    def __init__(self, shape: tuple[int, int], tile: int = 1):
        self.shape = (int(shape[0]), int(shape[1]))
        self.padded = tuple(-(-n // tile) * tile for n in self.shape)
        self.labels = np.zeros(self.shape, np.uint32)
        self._overlaps: list[np.ndarray] = []

    def overlap(self, k: int) -> np.ndarray:
        """The all-zero buffer of overlap layer ``k`` (1, 2, ...)."""
        while len(self._overlaps) < k:
            self._overlaps.append(np.zeros(self.padded, np.uint32))
        return self._overlaps[k - 1]

    def clear(self, frame: FrameLayers) -> None:
        """Zero what ``frame`` (built on this scratch) wrote."""
        h, w = self.shape
        if sum((b[1] - b[0]) * (b[3] - b[2]) for b in frame.boxes) >= h * w // 2:
            self.labels.fill(0)  # one memset beats many overlapping box writes
        else:
            for y0, y1, x0, x1 in frame.boxes:
                self.labels[y0:y1, x0:x1] = 0
        for layer, regions in zip(frame.overlaps, frame.regions):
            for y0, y1, x0, x1 in regions:
                layer[y0:y1, x0:x1] = 0


@dataclass
class FrameLayers:
    """A frame's layers as built for writing.

    ``labels`` is layer 0 (full frame); ``overlaps[k - 1]`` is layer ``k``, an array whose top
    left is the frame's and which may extend past it (padding, all zero), and
    ``regions[k - 1]`` are boxes (frame coordinates) that together hold every non-zero pixel
    of layer ``k``. ``boxes`` hold every non-zero pixel of layer 0.
    """

    labels: np.ndarray
    overlaps: list[np.ndarray] = field(default_factory=list)
    regions: list[list[Box]] = field(default_factory=list)
    boxes: list[Box] = field(default_factory=list)
    empty: bool = False
    #: ``{object: (area, box)}`` of each mask.
    stats: dict[int, tuple[int, Box | None]] = field(default_factory=dict)

    def full(self) -> list[np.ndarray]:
        """All layers as frame-sized arrays (views)."""
        h, w = self.labels.shape
        return [self.labels, *(layer[:h, :w] for layer in self.overlaps)]


def build_layers(
    masks: Mapping[int, np.ndarray],
    shape: tuple[int, int],
    scratch: LayerScratch | None = None,
) -> FrameLayers:
    """A frame's label layers from per-object bool masks, with each mask's area and box.

    Each mask's box is found right before it is drawn into layer 0 (so the mask is read once
    from memory, not twice) and returned with its area in ``stats``. Cost: one pass over each
    mask, one over each object's box, one over the pixels where boxes intersect, and work in
    proportion to the overlapping pixels. ``scratch``: all-zero frames to build in (a writer
    reuses one and :meth:`~LayerScratch.clear` s it after writing); fresh ones otherwise.
    """
    if scratch is None:
        scratch = LayerScratch(shape)
    layer0 = scratch.labels
    frame = FrameLayers(layer0)
    boxes: dict[int, Box | None] = {}
    for obj_id in sorted(masks, reverse=True):  # the lowest id is written last and wins
        frame.stats[obj_id] = area_box = mask_box(masks[obj_id])
        boxes[obj_id] = area_box[1]
        _draw(layer0, obj_id, masks[obj_id], boxes[obj_id])
    ids = sorted(o for o in masks if boxes[o] is not None)
    frame.boxes = [boxes[o] for o in ids]
    frame.empty = not ids
    # Pixels of each object claimed by a lower id: looked for only where its box meets lower
    # ids' boxes; then stacked into the first overlap layer free there (ascending ids, so
    # ids rise with the layer).
    for i, obj_id in enumerate(ids):
        meets = [r for r in (_intersect(boxes[obj_id], boxes[o]) for o in ids[:i]) if r is not None]
        if not meets:
            continue
        y0, x0 = min(r[0] for r in meets), min(r[2] for r in meets)
        y1, x1 = max(r[1] for r in meets), max(r[3] for r in meets)
        rest = masks[obj_id][y0:y1, x0:x1] & (layer0[y0:y1, x0:x1] != obj_id)
        k = 0
        while True:
            tight = _tight(rest)
            if tight is None:
                break
            ty0, ty1, tx0, tx1 = tight
            rest = rest[ty0:ty1, tx0:tx1]
            y0, y1, x0, x1 = y0 + ty0, y0 + ty1, x0 + tx0, x0 + tx1
            if k == len(frame.overlaps):
                frame.overlaps.append(scratch.overlap(k + 1))
                frame.regions.append([])
            box = (y0, y1, x0, x1)
            view = frame.overlaps[k][y0:y1, x0:x1]
            if not any(_intersect(box, r) for r in frame.regions[k]):  # layer k is free there
                np.copyto(view, obj_id, where=rest)
                frame.regions[k].append(box)
                break
            free = view == 0
            np.copyto(view, obj_id, where=rest & free)
            frame.regions[k].append(box)
            rest = rest > free  # still unplaced: where this layer was taken
            k += 1
    return frame


def _draw(layer0: np.ndarray, obj_id: int, mask: np.ndarray, box: Box | None) -> None:
    if box is not None:
        y0, y1, x0, x1 = box
        np.copyto(layer0[y0:y1, x0:x1], obj_id, where=mask[y0:y1, x0:x1])


def layers_from_masks(masks: Mapping[int, np.ndarray], shape: tuple[int, int]) -> list[np.ndarray]:
    """Full-frame layers of :func:`build_layers`."""
    masks = {o: np.asarray(m, bool) for o, m in masks.items()}
    return build_layers(masks, shape).full()


def shared_pixel_counts(
    stack: Sequence[np.ndarray], counts: dict[tuple[int, int], int] | None = None
) -> dict[tuple[int, int], int]:
    """Pixels each pair of objects shares in aligned crops of a frame's layers (layer 0
    first): ``{(lower id, higher id): count}``, added to ``counts`` if given.

    A pixel is shared exactly where layer 1 is non-zero, and there the layers hold its
    objects in increasing id order.
    """
    counts = {} if counts is None else counts
    if len(stack) < 2:
        return counts
    where = stack[1] != 0
    values = [layer[where].astype(np.uint64) for layer in stack]
    for b in range(1, len(values)):
        held = values[b] != 0  # then every layer below holds an id too
        if not held.any():
            break
        for a in range(b):
            pairs = (values[a][held] << np.uint64(32)) | values[b][held]
            codes, n = np.unique(pairs, return_counts=True)
            for code, count in zip(codes.tolist(), n.tolist()):
                key = (code >> 32, code & 0xFFFFFFFF)
                counts[key] = counts.get(key, 0) + count
    return counts


def mask_from_layers(layers: Sequence[np.ndarray], obj_id: int) -> np.ndarray:
    """One object's bool mask from a frame's layers."""
    mask = layers[0] == obj_id
    for layer in layers[1:]:
        mask |= layer == obj_id
    return mask


def masks_from_layers(
    layers: Sequence[np.ndarray], ids: Sequence[int] | None = None
) -> dict[int, np.ndarray]:
    """Bool masks of the objects ``ids`` (default: every id present) from a frame's layers.

    Objects without pixels are omitted when ``ids`` is ``None`` and empty masks otherwise.
    """
    shape = layers[0].shape
    flat_masks: dict[int, np.ndarray] = {}
    for layer in layers:
        flat = layer.ravel()
        where = np.flatnonzero(flat)
        if where.size == 0:
            continue
        values = flat[where]
        order = np.argsort(values, kind="stable")
        values, where = values[order], where[order]
        present, starts = np.unique(values, return_index=True)
        ends = np.append(starts[1:], values.size)
        for obj_id, lo, hi in zip(present.tolist(), starts.tolist(), ends.tolist()):
            if ids is not None and obj_id not in ids:
                continue
            m = flat_masks.get(obj_id)
            if m is None:
                m = flat_masks[obj_id] = np.zeros(shape[0] * shape[1], bool)
            m[where[lo:hi]] = True
    out = {o: m.reshape(shape) for o, m in flat_masks.items()}
    if ids is not None:
        for obj_id in ids:
            out.setdefault(int(obj_id), np.zeros(shape, bool))
    return out
