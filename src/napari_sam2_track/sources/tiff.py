"""TIFF / OME-TIFF stacks read lazily through ``tifffile``'s zarr store (one frame at a time)."""

from __future__ import annotations

import os
from typing import Any

from ..errors import SourceError
from ._base import IntensityWindow, LayoutSource

__all__ = ["TiffSource"]


class TiffSource(LayoutSource):
    """First series of a TIFF file; axes from ``series.axes`` (e.g. TYX, TCYX, QYX, YX, TYXS).

    Only the pages (or tiles) of the requested frame are read. ``axes`` overrides the file's
    axes (one letter per dimension of the series).
    """

    kind = "tiff"

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        channel: int | None = None,
        window: IntensityWindow | tuple[float, float] | None = None,
        axes: str | None = None,
    ) -> None:
        import tifffile
        import zarr

        path = os.fspath(path)
        self._tif = self._store = None
        try:
            self._tif = tifffile.TiffFile(path)
            series = self._tif.series[0]
            self._store = series.aszarr(level=0)
            data = zarr.open_array(self._store, mode="r")
            file_axes = series.axes
            if tuple(data.shape) != tuple(series.shape):
                file_axes = series.get_axes(False)
        except Exception as exc:
            self._release()
            reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            raise SourceError(f"cannot read TIFF {path}: {reason}") from exc
        try:
            super().__init__(
                data,
                axes if axes is not None else file_axes,
                path=path,
                channel=channel,
                window=window,
                what=f"TIFF {path}",
            )
        except BaseException:
            self._release()
            raise

    def _release(self) -> None:
        for obj in (self._store, self._tif):
            if obj is not None:
                try:
                    obj.close()
                except Exception:
                    pass
        self._store = self._tif = None

    def _close(self) -> None:
        super()._close()
        self._release()

    def _extra_description(self) -> dict[str, Any]:
        return {"axes": "".join(self.layout.axes).upper()}
