"""TIFF / OME-TIFF stacks read lazily through ``tifffile``'s zarr store (one frame at a time).

A file written one frame (or one block of frames) at a time, e.g. one ``TiffWriter.write`` per
frame, holds several series; they are read as one recording, in file order. A damaged or
truncated file is refused when it is opened, with one line, instead of reading as fewer frames
or as frames of zeros.
"""

from __future__ import annotations

import bisect
import contextlib
import logging
import os
import re
from collections.abc import Iterator
from typing import Any

import numpy as np

from .._input_files import first_line
from ..errors import SourceError
from ._base import FrameLayout, FrameSource, IntensityWindow, has_z_planes, resolve_layout
from .geometry import normalize_unit
from .volume import ArrayVolumeSource

__all__ = ["TiffSource", "TiffVolumeSource", "OpenTiff", "physical_sizes"]

#: Series kinds tifffile gives to plain files (written frame by frame or by other software);
#: their series are parts of one recording. Format-specific kinds (OME, ImageJ, ...) keep their
#: meaning, and only their first series is read.
_PLAIN_SERIES_KINDS = ("shaped", "generic", "uniform")


class _LogCapture(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


@contextlib.contextmanager
def _tifffile_log() -> Iterator[_LogCapture]:
    """Collect what tifffile logs (it reports damaged files there) instead of printing it."""
    logger = logging.getLogger("tifffile")
    capture = _LogCapture()
    propagate = logger.propagate
    logger.addHandler(capture)
    logger.propagate = False
    try:
        yield capture
    finally:
        logger.removeHandler(capture)
        logger.propagate = propagate


def _damage_reason(capture: _LogCapture) -> str | None:
    errors = [r for r in capture.records if r.levelno >= logging.ERROR]
    if not errors:
        return None
    return first_line(re.sub(r"^(<[^>]*>\s*)+", "", errors[0].getMessage()))


def _positive(value: Any) -> float | None:
    try:
        v = float(value)
    except (TypeError, ValueError):
        return None
    return v if v > 0 and v == v and v != float("inf") else None


def physical_sizes(tif: Any) -> dict[str, tuple[float, str | None]]:
    """``{axis letter: (size, unit)}`` from OME metadata (PhysicalSizeX/Y/Z, TimeIncrement)
    or an ImageJ calibration (resolution, ``spacing``, ``unit``, ``finterval``)."""
    import tifffile

    sizes: dict[str, tuple[float, str | None]] = {}
    if tif.is_ome and tif.ome_metadata:
        try:
            image = tifffile.xml2dict(tif.ome_metadata)["OME"]["Image"]
            pixels = (image[0] if isinstance(image, list) else image)["Pixels"]
        except Exception:  # noqa: BLE001 - metadata we cannot read: unit spacing
            return sizes
        for axis in "XYZ":
            v = _positive(pixels.get(f"PhysicalSize{axis}"))
            if v is not None:
                unit = normalize_unit(pixels.get(f"PhysicalSize{axis}Unit", "µm"))
                sizes[axis.lower()] = (v, unit)
        v = _positive(pixels.get("TimeIncrement"))
        if v is not None:
            sizes["t"] = (v, normalize_unit(pixels.get("TimeIncrementUnit", "s")))
    elif tif.is_imagej:
        meta = tif.imagej_metadata or {}
        unit = normalize_unit(meta.get("unit"))
        if unit is not None:
            page = tif.pages.first
            for axis, tag in (("x", "XResolution"), ("y", "YResolution")):
                res = page.tags.get(tag)
                if res is not None and res.value[0]:
                    v = _positive(res.value[1] / res.value[0])
                    if v is not None:
                        sizes[axis] = (v, unit)
            v = _positive(meta.get("spacing"))
            if v is not None:
                sizes["z"] = (v, unit)
        v = _positive(meta.get("finterval"))
        if v is not None:
            sizes["t"] = (v, "s")
    return sizes


def _series_extent(series: Any) -> int:
    """End (bytes) of the last pixel data of a series, from the offsets its pages declare."""
    end = 0
    if getattr(series, "dataoffset", None) is not None:  # contiguous data, e.g. ImageJ stacks
        end = int(series.dataoffset) + int(series.nbytes)
    for page in series.pages:
        if page is None:
            continue
        offsets = getattr(page, "dataoffsets", ()) or ()
        counts = getattr(page, "databytecounts", ()) or ()
        for offset, count in zip(offsets, counts):
            if count:
                end = max(end, int(offset) + int(count))
    return end


class OpenTiff:
    """An opened TIFF: its series, their zarr arrays and axes, voxel sizes; damage and
    truncation are checked once here. Pages are parsed once: ``open_source`` decides 2D or
    volume from it and hands it to :class:`TiffSource` or :class:`TiffVolumeSource`, which
    then own it (closing the source closes it)."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = os.fspath(path)
        self._tif: Any = None
        self._stores: list[Any] = []
        try:
            self.arrays = self._open_arrays(self.path)
            self.sizes = physical_sizes(self._tif)
        except BaseException:
            self.close()
            raise

    def is_volume(self, axes: str | None = None) -> bool:
        """Whether the first series (with ``axes`` overriding its own) has a z axis of more
        than one plane."""
        data, file_axes = self.arrays[0]
        return has_z_planes(axes if axes is not None else file_axes, data.shape)

    def _open_arrays(self, path: str) -> list[tuple[Any, str]]:
        """The arrays and axes of the series that make up the recording; SourceError when the
        file is damaged or truncated."""
        with _tifffile_log() as capture:
            series_list = self._open(path)
            arrays = self._arrays(series_list)
        damage = _damage_reason(capture)
        if damage is not None:
            raise SourceError(
                f"TIFF {path} is damaged or truncated ({damage}); save it again or "
                "convert it (e.g. with Fiji) and retry"
            )
        self._check_extent(path, series_list)
        return arrays

    # -- opening ------------------------------------------------------------------------------

    def _open(self, path: str) -> list[Any]:
        """The series that make up the recording (all matching plain series, else the first)."""
        import tifffile

        if os.path.isdir(path):
            raise SourceError(f"TIFF {path} is a directory, not a file")
        try:
            if os.path.getsize(path) == 0:
                raise SourceError(f"TIFF {path} is an empty file; copy or export it again")
            self._tif = tifffile.TiffFile(path)
            all_series = list(self._tif.series)
        except SourceError:
            raise
        except Exception as exc:
            raise SourceError(f"cannot read TIFF {path}: {first_line(exc)}") from None
        if not all_series:
            raise SourceError(f"TIFF {path} holds no images")
        if len(all_series) > 1 and all(s.kind in _PLAIN_SERIES_KINDS for s in all_series):
            return all_series
        return all_series[:1]

    def _arrays(self, series_list: list[Any]) -> list[tuple[Any, str]]:
        import zarr

        arrays = []
        for series in series_list:
            try:
                store = series.aszarr(level=0)
                self._stores.append(store)
                data = zarr.open_array(store, mode="r")
                file_axes = series.axes
                if tuple(data.shape) != tuple(series.shape):
                    file_axes = series.get_axes(False)
            except Exception as exc:
                raise SourceError(
                    f"cannot read TIFF {self._tif.filename}: {first_line(exc)}"
                ) from None
            arrays.append((data, file_axes))
        return arrays

    @staticmethod
    def _check_extent(path: str, series_list: list[Any]) -> None:
        size = os.path.getsize(path)
        for series in series_list:
            end = _series_extent(series)
            if end > size:
                raise SourceError(
                    f"TIFF {path} is truncated: its pixel data runs to byte {end:,} but the file "
                    f"has {size:,} bytes; copy or export it again"
                )

    def close(self) -> None:
        for obj in (*self._stores, self._tif):
            if obj is not None:
                try:
                    obj.close()
                except Exception:
                    pass
        self._stores = []
        self._tif = None



class TiffSource(FrameSource):
    """A TIFF file's frames; axes from ``series.axes`` (e.g. TYX, TCYX, QYX, YX, TYXS).

    Only the pages (or tiles) of the requested frame are read. ``axes`` overrides the file's
    axes (one letter per dimension of each series). Plain files whose frames were written as
    separate series are read as all their frames; every such series must have the same frame
    size, channels and dtype. ``path`` may be an :class:`OpenTiff`, which the source then owns.
    """

    kind = "tiff"

    def __init__(
        self,
        path: str | os.PathLike[str] | OpenTiff,
        *,
        channel: int | None = None,
        window: IntensityWindow | tuple[float, float] | None = None,
        axes: str | None = None,
    ) -> None:
        self._file = path if isinstance(path, OpenTiff) else OpenTiff(path)
        path = self._file.path
        self._parts: list[tuple[Any, FrameLayout]] = []
        self._starts: list[int] = []
        try:
            arrays = self._file.arrays
            many = len(arrays) > 1
            for i, (data, file_axes) in enumerate(arrays):
                what = f"TIFF {path}" + (f" series {i}" if many else "")
                layout = resolve_layout(data.shape, axes if axes is not None else file_axes, what)
                self._parts.append((data, layout))
            first = self._parts[0][1]
            geometry = (first.height, first.width, first.channels, arrays[0][0].dtype)
            for i, (data, layout) in enumerate(self._parts[1:], start=1):
                other = (layout.height, layout.width, layout.channels, data.dtype)
                if other != geometry:
                    raise SourceError(
                        f"TIFF {path}: series {i} holds {other[1]}x{other[0]} frames with "
                        f"{other[2]} channel(s) of {other[3]} but series 0 holds "
                        f"{geometry[1]}x{geometry[0]} with {geometry[2]} of {geometry[3]}; "
                        "all frames of a recording must match (save them as one stack)"
                    )
            total = 0
            for _, layout in self._parts:
                self._starts.append(total)
                total += layout.num_frames
            super().__init__(
                path=path,
                num_frames=total,
                height=first.height,
                width=first.width,
                channels=first.channels,
                dtype=geometry[3],
            )
            self._configure(channel, window)
        except BaseException:
            self._file.close()
            raise

    def _pixel_sizes(self) -> dict[str, tuple[float, str | None]]:
        return self._file.sizes

    # -- reading ------------------------------------------------------------------------------

    def _read(self, t: int) -> np.ndarray:
        i = bisect.bisect_right(self._starts, t) - 1
        data, layout = self._parts[i]
        try:
            with _tifffile_log() as capture:
                frame = np.asarray(data[layout.key(t - self._starts[i])])
            damage = _damage_reason(capture)
        except Exception as exc:
            raise SourceError(f"{self._label()}: cannot read frame {t}: {first_line(exc)}") from None
        if damage is not None:
            raise SourceError(f"{self._label()}: cannot read frame {t}: {damage}")
        return layout.to_frame(frame)

    # -- misc ---------------------------------------------------------------------------------

    def _extra_description(self) -> dict[str, Any]:
        d: dict[str, Any] = {"axes": "".join(self._parts[0][1].axes).upper()}
        if len(self._parts) > 1:
            d["series"] = len(self._parts)
        return d

    @property
    def layout(self) -> FrameLayout:
        """Axis layout of the (first) series."""
        return self._parts[0][1]

    def _close(self) -> None:
        self._parts = []
        self._file.close()


class TiffVolumeSource(ArrayVolumeSource):
    """A z-stack or 3D + time TIFF/OME-TIFF (axes ZYX, TZYX, TZCYX, ...; ``axes`` overrides the
    file's), read one 2D slice at a time. Voxel sizes come from OME or ImageJ metadata.
    ``path`` may be an :class:`OpenTiff`, which the source then owns."""

    kind = "tiff"

    def __init__(
        self,
        path: str | os.PathLike[str] | OpenTiff,
        *,
        channel: int | None = None,
        window: IntensityWindow | tuple[float, float] | str | None = None,
        axes: str | None = None,
    ) -> None:
        self._file = path if isinstance(path, OpenTiff) else OpenTiff(path)
        path = self._file.path
        try:
            arrays = self._file.arrays
            if len(arrays) > 1:
                raise SourceError(
                    f"TIFF {path}: holds {len(arrays)} separate series; a volume is read from "
                    "one stack (save the slices as one ZYX stack)"
                )
            data, file_axes = arrays[0]
            super().__init__(
                data, (axes if axes is not None else file_axes).upper(), path=path,
                channel=channel, window=window, sizes=self._file.sizes,
                what=f"TIFF {path}",
            )
        except BaseException:
            self._file.close()
            raise

    def _read_slice(self, t: int, z: int) -> np.ndarray:
        with _tifffile_log() as capture:
            image = super()._read_slice(t, z)
        damage = _damage_reason(capture)
        if damage is not None:
            raise SourceError(f"{self._label()}: cannot read slice (t={t}, z={z}): {damage}")
        return image

    def _close(self) -> None:
        super()._close()
        self._file.close()
