"""NIfTI volumes (``.nii``, ``.nii.gz``) read slice by slice through nibabel's array proxy.

NIfTI stores voxels as ``(x, y, z[, t[, component]])``; they are presented as ``(t, z, y, x)``
(a transpose: no resampling, no reorientation). Voxel sizes come from the header's zooms and
units, the affine (sform, else qform) maps ``(x, y, z)`` voxel indices to RAS+ millimetres.
``scl_slope``/``scl_inter`` are applied by nibabel. An uncompressed ``.nii`` is memory-mapped;
a ``.nii.gz`` is decompressed as far as the slice read (the file is kept open, so reading
slices in increasing order decompresses it once).
"""

from __future__ import annotations

import os
from typing import Any

import numpy as np

from .._input_files import first_line
from ..errors import SourceError
from ._base import IntensityWindow
from .geometry import Geometry, normalize_unit
from .volume import VolumeSource, check_channel

__all__ = ["NiftiSource", "NIFTI_SUFFIXES", "is_nifti_path"]

NIFTI_SUFFIXES = (".nii", ".nii.gz")


def is_nifti_path(path: str | os.PathLike[str]) -> bool:
    """Whether ``path`` names a NIfTI file by its suffix."""
    return os.fspath(path).lower().endswith(NIFTI_SUFFIXES)


class NiftiSource(VolumeSource):
    """A NIfTI-1/NIfTI-2 file as a ``(t, z, y, x)`` volume; ``channel`` picks a component of
    5-D data (vector or tensor images)."""

    kind = "nifti"

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        channel: int | None = None,
        window: IntensityWindow | tuple[float, float] | str | None = None,
    ) -> None:
        import nibabel as nib

        path = os.fspath(path)
        label = f"NIfTI {path}"
        try:
            img = nib.load(path, keep_file_open=True)
            proxy = img.dataobj
            shape = tuple(int(s) for s in img.shape)
            header = img.header
            zooms = tuple(float(z) for z in header.get_zooms())
        except Exception as exc:  # nibabel raises many kinds for damaged files
            raise SourceError(f"cannot read {label}: {first_line(exc)}") from None
        if len(shape) < 2 or len(shape) > 5:
            raise SourceError(f"{label}: shape {shape} is not a volume; accepted: "
                              "(x, y, z[, t[, component]])")
        if not path.lower().endswith(".gz"):  # a cut .nii.gz shows at the first read past the cut
            offset = int(getattr(proxy, "offset", 0) or header.get_data_offset())
            needed = offset + int(np.prod(shape)) * img.get_data_dtype().itemsize
            if os.path.getsize(path) < needed:
                raise SourceError(f"{label} is truncated: its header needs {needed:,} bytes but "
                                  f"the file has {os.path.getsize(path):,}; copy it again")
        x, y, z, t, c = (*shape, 1, 1, 1)[:5]
        self._ndim = len(shape)
        self._proxy = proxy
        space_unit, time_unit = header.get_xyzt_units()
        unit = normalize_unit(space_unit) if space_unit != "unknown" else "mm"
        zooms = (*zooms, 1.0, 1.0, 1.0)
        sizes = {"x": (zooms[0], unit), "y": (zooms[1], unit), "z": (zooms[2], unit)}
        if self._ndim >= 4 and zooms[3] > 0:
            sizes["t"] = (zooms[3], normalize_unit(time_unit))
        shape4 = (t, z, y, x)
        geometry = Geometry("tzyx", shape4, tuple(sizes.get(a, (1.0, None))[0] for a in "tzyx"),
                            tuple(sizes.get(a, (1.0, None))[1] for a in "tzyx"),
                            affine=img.affine, space="RAS")
        try:
            dtype = self._raw_slice(0, 0, 0, (slice(0, 1), slice(0, 1))).dtype
        except Exception as exc:
            raise SourceError(f"cannot read {label}: {first_line(exc)}") from None
        super().__init__(path=path, shape=shape4, dtype=dtype, geometry=geometry,
                         channel=check_channel(channel, c, label))
        self._file_dtype = np.dtype(img.get_data_dtype())
        self.sequential_reads = path.lower().endswith(".gz")
        if geometry.oblique:
            self.notes.append("oblique voxel axes: slices are shown on the voxel grid; the "
                              "world geometry is kept in the affine")
        self._configure(window)

    def _raw_slice(self, t: int, z: int, c: int, xy: tuple[slice, slice] = (slice(None),) * 2
                   ) -> np.ndarray:
        key = (*xy, z, t, c)[: self._ndim]
        return np.asarray(self._proxy[key])

    def _read_slice(self, t: int, z: int) -> np.ndarray:
        try:
            image = self._raw_slice(t, z, self.channel or 0)
        except Exception as exc:
            raise SourceError(f"{self._label()}: cannot read slice (t={t}, z={z}): "
                              f"{first_line(exc)}") from None
        return image.T  # (x, y) -> (y, x)

    def _extra_description(self) -> dict[str, Any]:
        return {"axes": "TZYX", "file_axes": "XYZT"[: min(self._ndim, 4)],
                "file_dtype": self._file_dtype.str}  # as stored, before scaling and byte swap

    def _close(self) -> None:
        self._proxy = None  # nibabel closes a file it keeps open when its proxy goes away
