"""``open_source``: pick the frame source for a path or an array."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import SourceError
from ._base import FrameSource, IntensityWindow, _role, has_z_planes
from .array import ArraySource
from .dicom import DicomSeriesSource, is_dicom_file, is_dicom_folder
from .folder import IMAGE_SUFFIXES, ImageFolderSource
from .nifti import NIFTI_SUFFIXES, NiftiSource, is_nifti_path
from .tiff import OpenTiff, TiffSource, TiffVolumeSource
from .video import VIDEO_SUFFIXES, VideoSource
from .volume import ArrayVolumeSource, VolumeSource
from .zarrsource import ZarrSource, ZarrVolumeSource, _array_axes, open_zarr_image

__all__ = ["open_source", "open_volume", "TIFF_SUFFIXES"]

TIFF_SUFFIXES = (".tif", ".tiff")


def _is_zarr_dir(p: Path) -> bool:
    return p.suffix.lower() == ".zarr" or any(
        (p / name).exists() for name in ("zarr.json", ".zarray", ".zgroup")
    )


def _is_dask(obj: Any) -> bool:
    return type(obj).__module__.split(".")[0] == "dask" and hasattr(obj, "compute")


def _is_zarr_node(obj: Any, kind: str) -> bool:
    mod = type(obj).__module__.split(".")[0]
    return mod == "zarr" and type(obj).__name__ == kind


def open_source(
    obj: Any,
    *,
    channel: int | None = None,
    window: IntensityWindow | tuple[float, float] | None = None,
    axes: str | None = None,
    series: str | None = None,
) -> FrameSource | VolumeSource:
    """Open a recording or a volume lazily: a :class:`FrameSource` or a :class:`VolumeSource`.

    ``obj`` is a path (video file .mp4/.mov/.avi/.mkv/.webm/.m4v, TIFF/OME-TIFF, zarr or
    OME-Zarr folder, folder of .jpg/.jpeg/.png frames, NIfTI .nii/.nii.gz, folder of DICOM
    files), a numpy/dask/zarr array or a zarr group. Data with a z axis of several planes
    (TIFF/zarr axes, or ``axes`` such as ``"zyx"``/``"tzyx"`` for arrays), NIfTI files and
    DICOM folders open as volumes (see docs/volumes.md). ``channel`` picks the channel fed to
    the model for multichannel data, ``window`` (``(low, high)``; for volumes also a preset
    name such as ``"ct-lung"``) the intensity window for non-uint8 data (default: 0.5-99.5
    percentiles), ``axes`` (``"tyx"``, ``"tyxc"``, ``"tcyx"``, ``"tzyx"``, ...) overrides the
    axes of arrays, TIFF and zarr, ``series`` picks a DICOM series by SeriesInstanceUID. An
    already open source is returned as is. Raises SourceError.
    """
    if isinstance(obj, (FrameSource, VolumeSource)):
        if channel is not None or window is not None or axes is not None or series is not None:
            raise SourceError(
                "open_source: channel/window/axes/series cannot be changed on an open source; "
                "open the original path or array again"
            )
        return obj
    if axes is not None:
        if not isinstance(axes, str) or not axes.isalpha():
            raise SourceError(f"open_source: axes must be letters like 'tyx', got {axes!r}")
    if series is not None and not isinstance(obj, (str, os.PathLike)):
        raise SourceError(f"open_source: series= only applies to a folder of DICOM files, not "
                          f"to an object of type {type(obj).__name__}")
    if isinstance(obj, (str, os.PathLike)):
        p = Path(obj).expanduser()
        if not p.exists():
            raise SourceError(f"{p}: file not found")
        if series is not None and not is_dicom_folder(p):
            raise SourceError(f"{p}: series= only applies to a folder of DICOM files")
        if p.is_dir():
            if _is_zarr_dir(p):
                return _open_zarr(p, channel=channel, window=window, axes=axes)
            if is_dicom_folder(p):
                if axes is not None:
                    raise SourceError(f"{p}: axes= does not apply to a DICOM series (its slices "
                                      "are ordered along their normal)")
                return DicomSeriesSource(p, series=series, channel=channel, window=window)
            if axes is not None:
                raise SourceError(f"{p}: axes= does not apply to an image folder")
            return ImageFolderSource(p, channel=channel, window=window)
        suffix = p.suffix.lower()
        if suffix in VIDEO_SUFFIXES:
            if axes is not None:
                raise SourceError(f"{p}: axes= does not apply to a video file")
            return VideoSource(p, channel=channel, window=window)
        if suffix in TIFF_SUFFIXES:
            tif = OpenTiff(p)  # pages parsed once; the source owns (and closes) it
            if tif.is_volume(axes):
                return TiffVolumeSource(tif, channel=channel, window=window, axes=axes)
            return TiffSource(tif, channel=channel, window=window, axes=axes)
        if is_nifti_path(p):
            if axes is not None:
                raise SourceError(f"{p}: axes= does not apply to NIfTI (its axes are x, y, z, t)")
            return NiftiSource(p, channel=channel, window=window)
        if is_dicom_file(p):
            raise SourceError(f"{p}: is one DICOM file; open the folder that holds its series")
        raise SourceError(
            f"{p}: unsupported file type '{p.suffix}'; supported: videos "
            f"({', '.join(VIDEO_SUFFIXES)}), TIFF ({', '.join(TIFF_SUFFIXES)}), NIfTI "
            f"({', '.join(NIFTI_SUFFIXES)}), zarr folders, folders of DICOM files or of "
            f"{'/'.join(IMAGE_SUFFIXES)} frames"
        )
    if _is_zarr_node(obj, "Group"):
        return _open_zarr(obj, channel=channel, window=window, axes=axes)
    if isinstance(obj, np.ndarray) or _is_dask(obj) or _is_zarr_node(obj, "Array") or (
        hasattr(obj, "shape") and hasattr(obj, "dtype") and hasattr(obj, "__getitem__")
    ):
        if has_z_planes(axes, obj.shape) or (_is_zarr_node(obj, "Array") and axes is None
                                             and open_zarr_image(obj).is_volume()):
            return ArrayVolumeSource(obj, (axes or "".join(
                _role(n) for n in _array_axes(obj) or ())).upper(), channel=channel, window=window)
        return ArraySource(obj, channel=channel, window=window, axes=axes)
    raise SourceError(
        f"open_source: cannot open an object of type {type(obj).__name__}; pass a path, "
        "a numpy/dask/zarr array or a zarr group"
    )


def _open_zarr(
    store: Any, *, channel: int | None, window: Any, axes: str | None
) -> ZarrSource | ZarrVolumeSource:
    """A zarr path or group, opened once, as a 2D or a volume source."""
    image = open_zarr_image(store)
    if image.is_volume(axes):
        return ZarrVolumeSource(image, channel=channel, window=window, axes=axes)
    return ZarrSource(image, channel=channel, window=window, axes=axes)


def open_volume(
    obj: Any,
    *,
    channel: int | None = None,
    window: IntensityWindow | tuple[float, float] | str | None = None,
    axes: str | None = None,
    series: str | None = None,
) -> VolumeSource:
    """Like :func:`open_source`, for a volume only: a 2D recording is refused with one line."""
    source = open_source(obj, channel=channel, window=window, axes=axes, series=series)
    if isinstance(source, VolumeSource):
        return source
    shape = "x".join(str(s) for s in source.shape)
    label = source._label()
    source.close()
    raise SourceError(
        f"{label} is a 2D recording ({shape}, axes {source.geometry.axes}) without a z axis, not "
        "a volume; open it with open_source, or pass axes= naming its z axis (e.g. axes='ZYX' "
        "for a plain stack of slices)"
    )
