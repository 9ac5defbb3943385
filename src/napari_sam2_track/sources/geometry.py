"""Voxel geometry carried by every source: axes, shape, spacing with units, affine, napari scale."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

__all__ = ["Geometry", "normalize_unit", "ras_from_lps"]

#: Spellings of units found in OME, NIfTI and ImageJ metadata -> the short form recorded.
_UNITS = {
    "mm": "mm", "millimeter": "mm", "millimetre": "mm",
    "um": "µm", "µm": "µm", "μm": "µm", "micron": "µm", "micrometer": "µm", "micrometre": "µm",
    "\\u00b5m": "µm",
    "nm": "nm", "nanometer": "nm", "nanometre": "nm",
    "cm": "cm", "centimeter": "cm", "m": "m", "meter": "m", "metre": "m",
    "s": "s", "sec": "s", "second": "s", "ms": "ms", "msec": "ms", "millisecond": "ms",
    "us": "µs", "usec": "µs", "µs": "µs", "microsecond": "µs",
    "min": "min", "minute": "min", "h": "h", "hour": "h",
}  # fmt: skip

#: napari (pint) names of the recorded units.
_PINT_UNITS = {"mm": "millimeter", "µm": "micrometer", "nm": "nanometer", "cm": "centimeter",
               "m": "meter"}

#: Axis letters that are not spatial: napari steps through them one index at a time.
_INDEX_AXES = ("t", "c")


def normalize_unit(unit: Any) -> str | None:
    """``'micron'``, ``'um'``, ``'micrometer'`` -> ``'µm'``; unknown or empty -> None."""
    if unit is None:
        return None
    key = str(unit).strip()
    return _UNITS.get(key, _UNITS.get(key.lower()))


def ras_from_lps(affine: np.ndarray) -> np.ndarray:
    """The same mapping expressed in RAS+ world coordinates (DICOM's LPS with x, y negated)."""
    return np.diag([-1.0, -1.0, 1.0, 1.0]) @ np.asarray(affine, dtype=np.float64)


@dataclass(frozen=True)
class Geometry:
    """Where the voxels of a source lie.

    ``axes`` has one lowercase letter per dimension of the source's array (``"tyx"`` or
    ``"tyxc"`` for 2D recordings, ``"tzyx"`` for volumes), ``spacing`` the step along each axis
    in ``units`` (``None`` where unknown: the step is then 1). ``affine`` (volumes from NIfTI or
    DICOM) is the 4x4 matrix mapping voxel indices ``(x, y, z, 1)`` to world millimetres in
    ``space`` (``"RAS"`` for NIfTI, ``"LPS"`` for DICOM patient coordinates).
    """

    axes: str
    shape: tuple[int, ...]
    spacing: tuple[float, ...]
    units: tuple[str | None, ...]
    affine: tuple[tuple[float, ...], ...] | None = None
    space: str | None = None

    def __post_init__(self) -> None:
        n = len(self.axes)
        if not (len(self.shape) == len(self.spacing) == len(self.units) == n):
            raise ValueError(f"geometry: {n} axes need as many sizes, spacings and units")
        object.__setattr__(self, "shape", tuple(int(s) for s in self.shape))
        object.__setattr__(self, "spacing", tuple(float(s) for s in self.spacing))
        if self.affine is not None:
            a = np.asarray(self.affine, dtype=np.float64)
            if a.shape != (4, 4):
                raise ValueError(f"geometry: affine must be 4x4, got {a.shape}")
            object.__setattr__(self, "affine", tuple(tuple(float(v) for v in row) for row in a))

    @classmethod
    def from_sizes(
        cls, axes: str, shape: Sequence[int], sizes: dict[str, tuple[float, str | None]]
    ) -> Geometry:
        """Spacing and unit per axis letter from ``sizes`` (missing letters: 1, unknown)."""
        spacing = tuple(float(sizes.get(a, (1.0, None))[0]) for a in axes)
        units = tuple(sizes.get(a, (1.0, None))[1] for a in axes)
        return cls(axes, tuple(shape), spacing, units)

    @property
    def is_volume(self) -> bool:
        """Whether the source has a z axis of more than one slice."""
        return "z" in self.axes and self.shape[self.axes.index("z")] > 1

    @property
    def scale(self) -> tuple[float, ...]:
        """napari layer ``scale``: the spacing of spatial axes, 1 for time and channel axes."""
        return tuple(1.0 if a in _INDEX_AXES else s for a, s in zip(self.axes, self.spacing))

    @property
    def napari_units(self) -> tuple[str, ...]:
        """napari layer ``units`` (pint names; ``pixel`` for time, channels and unknown)."""
        return tuple(
            "pixel" if a in _INDEX_AXES else _PINT_UNITS.get(u or "", "pixel")
            for a, u in zip(self.axes, self.units)
        )

    def affine_matrix(self) -> np.ndarray | None:
        """The 4x4 affine as a float64 array (None where unknown)."""
        return None if self.affine is None else np.array(self.affine, dtype=np.float64)

    def ras_affine(self) -> np.ndarray | None:
        """The affine in RAS+ world coordinates, whatever ``space`` it was recorded in."""
        a = self.affine_matrix()
        if a is None:
            return None
        return ras_from_lps(a) if self.space == "LPS" else a

    @property
    def oblique(self) -> bool:
        """Whether the voxel axes are tilted against the world axes (affine known)."""
        a = self.affine_matrix()
        if a is None:
            return False
        cols = a[:3, :3] / np.maximum(np.linalg.norm(a[:3, :3], axis=0), 1e-12)
        return bool(np.any(np.abs(cols).max(axis=0) < 1 - 1e-4))

    def to_dict(self) -> dict[str, Any]:
        """JSON-able form (recorded in a source's ``describe()``)."""
        return {
            "axes": self.axes,
            "shape": list(self.shape),
            "spacing": list(self.spacing),
            "units": list(self.units),
            "affine": [list(r) for r in self.affine] if self.affine is not None else None,
            "space": self.space,
        }
