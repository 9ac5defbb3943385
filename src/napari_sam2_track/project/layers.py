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


def build_layers(
    masks: Mapping[int, np.ndarray],
    boxes: Mapping[int, Box | None],
    shape: tuple[int, int],
) -> list[np.ndarray]:
    """Label layers (uint32) of a frame from per-object bool masks and their boxes.

    Always returns layer 0 (all zero if no object has pixels); further layers only where
    objects overlap.
    """
    layers = [np.zeros(shape, np.uint32)]
    for obj_id in sorted(masks):
        box = boxes[obj_id]
        if box is None:
            continue
        y0, y1, x0, x1 = box
        rest = masks[obj_id][y0:y1, x0:x1]
        k = 0
        while True:
            if k == len(layers):
                layers.append(np.zeros(shape, np.uint32))
            view = layers[k][y0:y1, x0:x1]
            taken = view != 0
            if not taken.any():  # nothing here yet: claim the remaining pixels, done
                np.copyto(view, obj_id, where=rest)
                break
            free = rest & ~taken
            np.copyto(view, obj_id, where=free)
            rest = rest & taken
            if not rest.any():
                break
            k += 1
    return layers


def layers_from_masks(masks: Mapping[int, np.ndarray], shape: tuple[int, int]) -> list[np.ndarray]:
    """:func:`build_layers`, computing the boxes."""
    boxes = {obj_id: mask_box(m)[1] for obj_id, m in masks.items()}
    return build_layers({o: np.asarray(m, bool) for o, m in masks.items()}, boxes, shape)


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
