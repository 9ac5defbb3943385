"""``open_source``: pick the frame source for a path or an array."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import SourceError
from ._base import FrameSource, IntensityWindow
from .array import ArraySource
from .folder import IMAGE_SUFFIXES, ImageFolderSource
from .tiff import TiffSource
from .video import VIDEO_SUFFIXES, VideoSource
from .zarrsource import ZarrSource

__all__ = ["open_source", "TIFF_SUFFIXES"]

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
) -> FrameSource:
    """Open a recording lazily as a :class:`FrameSource`.

    ``obj`` is a path (video file .mp4/.mov/.avi/.mkv/.webm/.m4v, TIFF/OME-TIFF, zarr or
    OME-Zarr folder, folder of .jpg/.jpeg/.png frames), a numpy/dask/zarr array or a zarr
    group. ``channel`` picks the channel fed to the model for multichannel data, ``window``
    (``(low, high)``) the intensity window for non-uint8 data (default: 0.5-99.5 percentiles),
    ``axes`` (``"tyx"``, ``"tyxc"``, ``"tcyx"``, ...) overrides the axes of arrays, TIFF and
    zarr. An already open FrameSource is returned as is. Raises SourceError.
    """
    if isinstance(obj, FrameSource):
        if channel is not None or window is not None or axes is not None:
            raise SourceError(
                "open_source: channel/window/axes cannot be changed on an open source; "
                "open the original path or array again"
            )
        return obj
    if axes is not None:
        if not isinstance(axes, str) or not axes.isalpha():
            raise SourceError(f"open_source: axes must be letters like 'tyx', got {axes!r}")
    if isinstance(obj, (str, os.PathLike)):
        p = Path(obj).expanduser()
        if not p.exists():
            raise SourceError(f"{p}: file not found")
        if p.is_dir():
            if _is_zarr_dir(p):
                return ZarrSource(p, channel=channel, window=window, axes=axes)
            if axes is not None:
                raise SourceError(f"{p}: axes= does not apply to an image folder")
            return ImageFolderSource(p, channel=channel, window=window)
        suffix = p.suffix.lower()
        if suffix in VIDEO_SUFFIXES:
            if axes is not None:
                raise SourceError(f"{p}: axes= does not apply to a video file")
            return VideoSource(p, channel=channel, window=window)
        if suffix in TIFF_SUFFIXES:
            return TiffSource(p, channel=channel, window=window, axes=axes)
        raise SourceError(
            f"{p}: unsupported file type '{p.suffix}'; supported: videos "
            f"({', '.join(VIDEO_SUFFIXES)}), TIFF ({', '.join(TIFF_SUFFIXES)}), zarr folders, "
            f"folders of {'/'.join(IMAGE_SUFFIXES)} frames"
        )
    if _is_zarr_node(obj, "Group"):
        return ZarrSource(obj, channel=channel, window=window, axes=axes)
    if isinstance(obj, np.ndarray) or _is_dask(obj) or _is_zarr_node(obj, "Array") or (
        hasattr(obj, "shape") and hasattr(obj, "dtype") and hasattr(obj, "__getitem__")
    ):
        return ArraySource(obj, channel=channel, window=window, axes=axes)
    raise SourceError(
        f"open_source: cannot open an object of type {type(obj).__name__}; pass a path, "
        "a numpy/dask/zarr array or a zarr group"
    )
