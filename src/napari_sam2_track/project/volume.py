"""Volume projects (store format 3): a ``(t, z, y, x)`` series stored plane by plane.

Everything in the package that speaks of frames works on **planes**: plane ``p = t * Z + z``
(T timepoints, Z slices along the stored z axis). Tables, review flags, QC ranges, change
records and undo keep working on plane indices; on disk the label layers are 4-D
``(t, z, y, x)`` with one chunk (or shard) per plane, so plain zarr / OME-Zarr readers see the
volume. A 2D + t project is a volume project with ``Z = 1`` that keeps its 3-D arrays.
See ``docs/store.md`` ("Volume projects").
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .layout import COL, table_path

#: OME-Zarr unit names of the units :class:`~..sources.geometry.Geometry` records.
OME_UNITS = {
    "mm": "millimeter", "µm": "micrometer", "nm": "nanometer", "cm": "centimeter",
    "m": "meter", "s": "second", "ms": "millisecond", "µs": "microsecond", "min": "minute",
    "h": "hour",
}  # fmt: skip


def planes_of(meta: dict) -> tuple[int, int] | None:
    """``(T, Z)`` of a volume project's metadata; ``None`` for a 2D + t project."""
    shape = meta.get("shape", ())
    return (int(shape[0]), int(shape[1])) if len(shape) == 4 else None


def plane_shape(meta: dict) -> tuple[int, int, int]:
    """``(planes, H, W)`` of a project's metadata (``T * Z`` planes for a volume)."""
    shape = [int(v) for v in meta["shape"]]
    if len(shape) == 4:
        return (shape[0] * shape[1], shape[2], shape[3])
    return tuple(shape)  # type: ignore[return-value]


def is_volume_source(source: Any) -> bool:
    """Whether ``source`` is a :class:`~..sources.volume.VolumeSource`."""
    from ..sources.volume import VolumeSource

    return isinstance(source, VolumeSource)


def describe_volume(source) -> dict:
    """The provenance recorded for a volume source (its description and fingerprint)."""
    return {**source.describe(), "fingerprint": source.fingerprint()}


def chunk_coords(p: int, planes: tuple[int, int] | None) -> tuple[int, ...]:
    """Chunk (or shard) coordinates of plane ``p`` in a label layer."""
    if planes is None:
        return (p, 0, 0)
    t, z = divmod(p, planes[1])
    return (t, z, 0, 0)


def plane_key(p: int, planes: tuple[int, int] | None) -> int | tuple[int, int]:
    """zarr index of plane ``p`` in a label layer."""
    return p if planes is None else divmod(p, planes[1])


def label_axes(geometry, volume: bool) -> tuple[list[dict], list[float]]:
    """OME-Zarr 0.5 ``axes`` and ``scale`` of a project's label image (units where known)."""
    if not volume:
        return ([{"name": "t", "type": "time"}, {"name": "y", "type": "space"},
                 {"name": "x", "type": "space"}], [1.0, 1.0, 1.0])
    axes, scale = [], []
    for name in "tzyx":
        i = geometry.axes.index(name) if name in geometry.axes else None
        unit = geometry.units[i] if i is not None else None
        step = geometry.spacing[i] if i is not None else 1.0
        axis = {"name": name, "type": "time" if name == "t" else "space"}
        if OME_UNITS.get(unit or ""):
            axis["unit"] = OME_UNITS[unit]
        axes.append(axis)
        scale.append(float(step) if step and np.isfinite(step) else 1.0)
    return axes, scale


class PlaneView:
    """A 4-D ``(t, z, y, x)`` array seen as ``(planes, y, x)`` (for frame-wise readers)."""

    def __init__(self, array, planes: tuple[int, int]):
        self.array = array
        self.planes = planes
        n_t, n_z = planes
        self.shape = (n_t * n_z, *array.shape[2:])
        self.dtype = array.dtype

    def __getitem__(self, key):
        if isinstance(key, (int, np.integer)):
            return np.asarray(self.array[divmod(int(key), self.planes[1])])
        start, stop, step = key.indices(self.shape[0])
        frames = range(start, stop, step)
        out = np.zeros((len(frames), *self.shape[1:]), self.dtype)
        for i, p in enumerate(frames):
            out[i] = self.array[divmod(p, self.planes[1])]
        return out


class VolumeStore:
    """The volume view of a project store (mixed into :class:`~.store.ProjectStore`).

    2D + t projects answer too: one slice per timepoint, unit spacing.
    """

    planes: tuple[int, int] | None = None

    @property
    def is_volume(self) -> bool:
        """Whether the project holds a ``(t, z, y, x)`` series."""
        return self.planes is not None

    @property
    def volume_shape(self) -> tuple[int, int, int, int]:
        """``(T, Z, H, W)``; ``(T, 1, H, W)`` for a 2D + t project."""
        n, h, w = self.shape
        if self.planes is None:
            return (n, 1, h, w)
        return (*self.planes, h, w)

    @property
    def geometry(self):
        """The source's :class:`~..sources.geometry.Geometry` (unit spacing for 2D projects)."""
        from ..sources.geometry import Geometry

        data = self.meta.get("geometry")
        if data and self.planes is not None:
            return Geometry(data["axes"], tuple(data["shape"]), tuple(data["spacing"]),
                            tuple(data["units"]), data.get("affine"), data.get("space"))
        if self.planes is not None:
            return Geometry("tzyx", self.volume_shape, (1.0,) * 4, (None,) * 4)
        return Geometry("tyx", self.shape, (1.0,) * 3, (None,) * 3)

    def plane(self, t: int, z: int) -> int:
        """Plane index of slice ``z`` of timepoint ``t``."""
        n_t, n_z = self.volume_shape[:2]
        if not (0 <= t < n_t and 0 <= z < n_z):
            raise IndexError(f"(t={t}, z={z}) is outside the project's {n_t}x{n_z} (t, z) planes")
        return int(t) * n_z + int(z)

    def plane_tz(self, p: int) -> tuple[int, int]:
        """``(t, z)`` of plane ``p``."""
        n_z = self.volume_shape[1]
        t, z = divmod(int(p), n_z)
        return t, z

    def label_volume(self, t: int) -> np.ndarray:
        """The merged labels of timepoint ``t``, uint32 ``(Z, H, W)``."""
        _, n_z, h, w = self.volume_shape
        out = np.zeros((n_z, h, w), np.uint32)
        for z in range(n_z):
            p = self.plane(t, z)
            if self.layers.has_frame(p):
                out[z] = self.layers.read(p)[0]
        return out

    def object_volume(self, obj_id: int, t: int) -> np.ndarray:
        """Object ``obj_id``'s own mask at timepoint ``t`` (all layers), bool ``(Z, H, W)``."""
        _, n_z, h, w = self.volume_shape
        out = np.zeros((n_z, h, w), bool)
        for z in range(n_z):
            p = self.plane(t, z)
            if self.layers.has_frame(p):
                out[z] = self.mask(obj_id, p)
        return out

    def voxel_volume(self) -> float:
        """The volume of one voxel, ``dz * dy * dx`` in the geometry's units cubed."""
        g = self.geometry
        steps = [g.spacing[g.axes.index(a)] if a in g.axes else 1.0 for a in "zyx"]
        return float(np.prod(steps))

    def physical_volume(self, obj_id: int, area: np.ndarray | None = None) -> np.ndarray:
        """Object ``obj_id``'s volume per timepoint (sum of its areas over z times
        ``dz * dy * dx``), float64 ``(T,)``; NaN where no slice of the timepoint was tracked.

        ``area``: the object's ``area`` column, ``(T, Z)``, when the caller has read it."""
        n_t, n_z = self.volume_shape[:2]
        if area is None:
            area = self.table_column(obj_id, "area")
        if area is None:
            return np.full(n_t, np.nan)
        area = np.asarray(area, dtype=np.float64).reshape(n_t, n_z)
        tracked = ~np.isnan(area).all(axis=1)
        total = np.where(tracked, np.nansum(area, axis=1), np.nan)
        return total * self.voxel_volume()

    def table_volume(self, obj_id: int) -> np.ndarray:
        """An object's table as ``(T, Z, 8)`` (rows by timepoint and slice)."""
        n_t, n_z = self.volume_shape[:2]
        return self._array(table_path(obj_id))[:].reshape(n_t, n_z, len(COL))
