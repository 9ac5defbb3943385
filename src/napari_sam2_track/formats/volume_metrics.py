"""Overlap and surface-distance metrics between two 3-D label sets, in physical units.

``A`` is the reference and ``B`` the label set evaluated against it; objects are matched by id,
one 3-D mask per object per timepoint.

- **Dice** ``2|A∩B| / (|A|+|B|)`` and **IoU** ``|A∩B| / |A∪B|`` of an object's voxels at one
  timepoint; 1 where both masks are empty (they agree that the object is not there).
- **HD95**, the 95th-percentile Hausdorff (surface) distance: the surface of a mask is its
  voxels that have a background voxel among their 6 face neighbours (the mask minus its
  erosion by the 3-D cross; voxels on the volume's edge count as surface). For every surface
  voxel of ``A`` the Euclidean distance, in the geometry's units (voxel spacing ``(dz, dy,
  dx)``: anisotropic voxels are measured as they are), to the nearest surface voxel of ``B``,
  and the same from ``B`` to ``A``; HD95 is the 95th percentile (linear interpolation) of the
  **union** of both sets of distances. Symmetric. This is ``medpy.metric.binary.hd95``
  (connectivity 1), which the tests check it against. Undefined (``None``/NaN) where either
  mask is empty: where only one is, the object is missing or extra there, which Dice and IoU
  (0) already say.
- Per object: the mean of each metric over the timepoints where it is defined; overall: the
  mean over the reference's objects.

Masks are kept as bit-packed planes (an eighth of a byte per voxel, nothing for an empty
plane) for one timepoint at a time; distances are computed on the bounding box of the two
masks, one object at a time.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Iterator, Sequence

import numpy as np

from ..errors import StoreError

PERCENTILE = 95.0


def dice(a: np.ndarray, b: np.ndarray) -> float:
    """Dice coefficient of two boolean masks; 1 where both are empty."""
    total = int(np.count_nonzero(a)) + int(np.count_nonzero(b))
    if total == 0:
        return 1.0
    return 2.0 * int(np.count_nonzero(a & b)) / total


def iou(a: np.ndarray, b: np.ndarray) -> float:
    """Intersection over union of two boolean masks; 1 where both are empty."""
    union = int(np.count_nonzero(a | b))
    if union == 0:
        return 1.0
    return int(np.count_nonzero(a & b)) / union


def surface(mask: np.ndarray) -> np.ndarray:
    """The surface voxels of a mask: those with a background face neighbour (or on the edge)."""
    from scipy.ndimage import binary_erosion, generate_binary_structure

    mask = np.asarray(mask, bool)
    return mask ^ binary_erosion(mask, structure=generate_binary_structure(mask.ndim, 1))


def _box(a: np.ndarray, b: np.ndarray) -> tuple[slice, ...]:
    """The bounding box of ``a | b`` grown by one voxel (where the array allows), so that
    surfaces found inside it are those of the whole arrays."""
    both = a | b
    box = []
    for axis in range(both.ndim):
        other = tuple(i for i in range(both.ndim) if i != axis)
        hit = np.flatnonzero(both.any(axis=other))
        box.append(slice(max(int(hit[0]) - 1, 0), min(int(hit[-1]) + 2, both.shape[axis])))
    return tuple(box)


def surface_distances(a: np.ndarray, b: np.ndarray, spacing: Sequence[float]
                      ) -> tuple[np.ndarray, np.ndarray]:
    """Distances from each surface voxel of ``a`` to the nearest surface voxel of ``b``, and
    from ``b`` to ``a``, in the units of ``spacing`` (one step per axis). Both masks non-empty."""
    from scipy.ndimage import distance_transform_edt

    a, b = np.asarray(a, bool), np.asarray(b, bool)
    box = _box(a, b)
    a, b = a[box], b[box]
    sa, sb = surface(a), surface(b)
    sampling = np.asarray(spacing, np.float64)
    to_b = distance_transform_edt(~sb, sampling=sampling)[sa]
    to_a = distance_transform_edt(~sa, sampling=sampling)[sb]
    return to_b, to_a


def hd95(a: np.ndarray, b: np.ndarray, spacing: Sequence[float] | None = None,
         percentile: float = PERCENTILE) -> float:
    """95th-percentile symmetric surface distance (see the module); NaN if a mask is empty."""
    a, b = np.asarray(a, bool), np.asarray(b, bool)
    if a.shape != b.shape:
        raise ValueError(f"masks differ in shape: {a.shape} vs {b.shape}")
    if not a.any() or not b.any():
        return float("nan")
    spacing = (1.0,) * a.ndim if spacing is None else tuple(float(s) for s in spacing)
    to_b, to_a = surface_distances(a, b, spacing)
    return float(np.percentile(np.concatenate([to_b, to_a]), percentile))


class PackedVolume:
    """One object's 3-D mask kept as bit-packed planes (empty planes cost nothing)."""

    def __init__(self, shape: tuple[int, int, int]):
        self.shape = tuple(int(s) for s in shape)
        self.planes: dict[int, np.ndarray] = {}

    def add(self, z: int, mask: np.ndarray) -> None:
        """OR a plane's mask into plane ``z``."""
        mask = np.asarray(mask, bool)
        if not mask.any():
            return
        packed = np.packbits(mask.ravel())
        old = self.planes.get(z)
        self.planes[z] = packed if old is None else old | packed

    def array(self) -> np.ndarray:
        """The mask as a boolean ``(Z, H, W)`` array."""
        z, h, w = self.shape
        out = np.zeros(self.shape, bool)
        for k, packed in self.planes.items():
            out[k] = np.unpackbits(packed, count=h * w).reshape(h, w).view(bool)
        return out


def volume_scores(a: np.ndarray, b: np.ndarray, spacing: Sequence[float]) -> dict[str, float]:
    """Dice, IoU and HD95 of one object's masks at one timepoint (NaN HD95 where undefined)."""
    return {"dice": dice(a, b), "iou": iou(a, b), "hd95": hd95(a, b, spacing)}


def _mean(values: Iterable[float]) -> float | None:
    vals = [v for v in values if v is not None and not math.isnan(v)]
    return float(np.mean(vals)) if vals else None


def _clean(v: float) -> float | None:
    return None if v is None or math.isnan(v) else float(v)


def compare_volumes(timepoints: Iterator[tuple[int, dict[int, PackedVolume], dict[int, PackedVolume]]],
                    ref_ids: Sequence[int], other_ids: Sequence[int], spacing: Sequence[float],
                    units: str | None) -> dict:
    """Per object and timepoint Dice, IoU and HD95 of ``B`` against the reference ``A``.

    ``timepoints`` yields ``(t, {id: mask of A}, {id: mask of B})`` for every timepoint.
    ``spacing`` is ``(dz, dy, dx)`` in ``units``. JSON-able result; ``None`` where undefined.
    """
    ids = sorted(set(ref_ids) | set(other_ids))
    per: dict[int, dict[str, list]] = {i: {"dice": [], "iou": [], "hd95": []} for i in ids}
    n = 0
    for _t, va, vb in timepoints:
        n += 1
        for i in ids:
            pa, pb = va.get(i), vb.get(i)
            if pa is None and pb is None:
                scores = {"dice": 1.0, "iou": 1.0, "hd95": float("nan")}
            else:
                shape = (pa or pb).shape
                a = pa.array() if pa is not None else np.zeros(shape, bool)
                b = pb.array() if pb is not None else np.zeros(shape, bool)
                scores = volume_scores(a, b, spacing)
            for k, v in scores.items():
                per[i][k].append(_clean(v))
    objects = {}
    for i in ids:
        objects[i] = {
            "per_timepoint": per[i],
            "mean": {k: _mean(per[i][k]) for k in ("dice", "iou", "hd95")},
            "in_reference": i in ref_ids, "in_other": i in other_ids,
        }
    overall = {k: _mean(objects[i]["mean"][k] for i in ref_ids) for k in ("dice", "iou", "hd95")}
    return {"objects": objects, "overall": overall, "timepoints": n,
            "spacing": [float(s) for s in spacing], "units": units,
            "hd95_definition": "95th percentile of the union of both directed surface-distance sets "
                               "(6-connected surfaces), in the spacing's units",
            "missing": [i for i in ref_ids if i not in other_ids],
            "extra": [i for i in other_ids if i not in ref_ids]}


def check_same_grid(shape_a, shape_b, spacing_a, spacing_b) -> None:
    """Refuse two volume label sets of different sizes or voxel spacings (one line)."""
    if tuple(shape_a) != tuple(shape_b):
        raise StoreError(f"the label volumes differ in size: {tuple(shape_a)} vs {tuple(shape_b)} (t, z, y, x)")
    if not np.allclose(spacing_a, spacing_b, rtol=1e-4, atol=1e-6):
        raise StoreError(f"the label volumes differ in voxel spacing: {tuple(spacing_a)} vs "
                         f"{tuple(spacing_b)} (z, y, x); compare label sets of the same image")
