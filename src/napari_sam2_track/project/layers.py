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


def mask_box(mask: np.ndarray) -> tuple[int, Box | None]:
    """Area and bounding box ``(y0, y1, x0, x1)`` (end-exclusive) of a bool mask."""
    rows = np.flatnonzero(mask.any(axis=1))
    if rows.size == 0:
        return 0, None
    y0, y1 = int(rows[0]), int(rows[-1]) + 1
    band = mask[y0:y1]
    cols = np.flatnonzero(band.any(axis=0))
    return int(np.count_nonzero(band)), (y0, y1, int(cols[0]), int(cols[-1]) + 1)


def _intersect(a: Box, b: Box) -> Box | None:
    y0, y1, x0, x1 = max(a[0], b[0]), min(a[1], b[1]), max(a[2], b[2]), min(a[3], b[3])
    return (y0, y1, x0, x1) if y0 < y1 and x0 < x1 else None


@dataclass
class FrameLayers:
    """A frame's layers as built for writing.

    ``labels`` is layer 0 (full frame); ``overlaps[k - 1]`` is layer ``k`` restricted to
    ``box`` (the rectangle holding every overlap pixel; ``None`` without overlaps), and
    ``regions`` are smaller boxes (frame coordinates) that together hold every overlap pixel.
    """

    labels: np.ndarray
    overlaps: list[np.ndarray] = field(default_factory=list)
    box: Box | None = None
    regions: list[Box] = field(default_factory=list)
    empty: bool = False

    def full(self) -> list[np.ndarray]:
        """All layers as full frames."""
        out = [self.labels]
        for part in self.overlaps:
            layer = np.zeros_like(self.labels)
            y0, y1, x0, x1 = self.box
            layer[y0:y1, x0:x1] = part
            out.append(layer)
        return out


def build_layers(
    masks: Mapping[int, np.ndarray],
    boxes: Mapping[int, Box | None],
    shape: tuple[int, int],
    out: np.ndarray | None = None,
) -> FrameLayers:
    """A frame's label layers from per-object bool masks and their bounding boxes.

    Cost: one pass over each object's box, one over the pixels where boxes intersect, and
    work in proportion to the overlapping pixels. ``out``: an all-zero uint32 frame to use
    as layer 0 (a writer reuses one, sparing the page faults of a fresh 8 MB frame).
    """
    ids = sorted(o for o in masks if boxes[o] is not None)
    layer0 = np.zeros(shape, np.uint32) if out is None else out
    for obj_id in reversed(ids):  # the lowest id is written last and wins
        y0, y1, x0, x1 = boxes[obj_id]
        np.copyto(layer0[y0:y1, x0:x1], obj_id, where=masks[obj_id][y0:y1, x0:x1])
    # Pixels of each object claimed in layer 0 by a lower id: looked for only where its box
    # meets lower ids' boxes.
    hidden: list[tuple[int, np.ndarray, Box]] = []
    for i, obj_id in enumerate(ids):
        meets = [r for r in (_intersect(boxes[obj_id], boxes[o]) for o in ids[:i]) if r is not None]
        if not meets:
            continue
        y0, x0 = min(r[0] for r in meets), min(r[2] for r in meets)
        y1, x1 = max(r[1] for r in meets), max(r[3] for r in meets)
        rest = masks[obj_id][y0:y1, x0:x1] & (layer0[y0:y1, x0:x1] != obj_id)
        _, tight = mask_box(rest)
        if tight is not None:
            ty0, ty1, tx0, tx1 = tight
            hidden.append((obj_id, rest[ty0:ty1, tx0:tx1], (y0 + ty0, y0 + ty1, x0 + tx0, x0 + tx1)))
    frame = FrameLayers(layer0, empty=not ids)
    if not hidden:
        return frame
    uy0, ux0 = min(h[2][0] for h in hidden), min(h[2][2] for h in hidden)
    uy1, ux1 = max(h[2][1] for h in hidden), max(h[2][3] for h in hidden)
    frame.box = (uy0, uy1, ux0, ux1)
    frame.regions = [h[2] for h in hidden]
    for obj_id, rest, (y0, y1, x0, x1) in hidden:  # ascending ids: lower layers first
        y0, y1, x0, x1 = y0 - uy0, y1 - uy0, x0 - ux0, x1 - ux0
        rest = rest.copy()
        k = 0
        while True:
            if k == len(frame.overlaps):
                frame.overlaps.append(np.zeros((uy1 - uy0, ux1 - ux0), np.uint32))
            view = frame.overlaps[k][y0:y1, x0:x1]
            taken = view != 0
            np.copyto(view, obj_id, where=rest > taken)  # rest and not taken
            rest &= taken
            if not rest.any():
                break
            k += 1
    return frame


def layers_from_masks(masks: Mapping[int, np.ndarray], shape: tuple[int, int]) -> list[np.ndarray]:
    """Full-frame layers of :func:`build_layers`, computing the boxes."""
    masks = {o: np.asarray(m, bool) for o, m in masks.items()}
    return build_layers(masks, {o: mask_box(m)[1] for o, m in masks.items()}, shape).full()


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
