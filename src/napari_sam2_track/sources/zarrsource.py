"""Zarr arrays and OME-Zarr image groups (v2 or v3 format) as frame sources."""

from __future__ import annotations

import os
from typing import Any, NamedTuple

from ..errors import SourceError
from ._base import IntensityWindow, LayoutSource, _role, guess_axes, has_z_planes
from .geometry import normalize_unit
from .volume import ArrayVolumeSource

__all__ = ["ZarrSource", "ZarrVolumeSource", "ZarrImage", "open_zarr_image"]


def _array_axes(arr: Any) -> list[str] | None:
    """Dimension names of a zarr array: v3 ``dimension_names`` or xarray's ``_ARRAY_DIMENSIONS``."""
    names = getattr(getattr(arr, "metadata", None), "dimension_names", None)
    if not names:
        names = dict(arr.attrs).get("_ARRAY_DIMENSIONS")
    if names and len(names) == arr.ndim and all(isinstance(n, str) and n for n in names):
        return list(names)
    return None


def _ome_sizes(ms: dict, names: list[str] | None) -> dict[str, tuple[float, str | None]]:
    """``{axis letter: (size, unit)}`` of the first dataset: its ``coordinateTransformations``
    scale times the multiscale's own, with the units of the ``axes``."""
    if not names:
        return {}
    scale = [1.0] * len(names)
    try:
        for transforms in (ms["datasets"][0].get("coordinateTransformations"),
                           ms.get("coordinateTransformations")):
            for tr in transforms or ():
                if tr.get("type") == "scale" and len(tr.get("scale", ())) == len(names):
                    scale = [a * float(b) for a, b in zip(scale, tr["scale"])]
    except (TypeError, ValueError, KeyError, AttributeError):
        return {}
    units = [a.get("unit") if isinstance(a, dict) else None for a in ms.get("axes") or ()]
    units += [None] * (len(names) - len(units))
    return {
        _role(name): (size, normalize_unit(unit))
        for name, size, unit in zip(names, scale, units)
        if _role(name) in "tzyx" and size > 0
    }


class ZarrImage(NamedTuple):
    """The image array of a zarr path, array or OME-Zarr group, opened once: ``open_source``
    decides 2D or volume from it and hands it to :class:`ZarrSource` or
    :class:`ZarrVolumeSource`."""

    array: Any
    names: list[str] | None  # axis names, None when the store names none
    path: str | None
    label: str
    array_path: str  # inside the group
    sizes: dict[str, tuple[float, str | None]]  # per axis letter

    def is_volume(self, axes: str | None = None) -> bool:
        """Whether the image (with ``axes`` overriding its own names) has a z axis of several
        planes."""
        return has_z_planes(list(axes) if axes is not None else self.names, self.array.shape)


def open_zarr_image(store: str | os.PathLike[str] | Any) -> ZarrImage:
    """The image array of a zarr path, array or OME-Zarr group (an opened :class:`ZarrImage`
    is returned as is)."""
    import zarr

    if isinstance(store, (str, os.PathLike)):
        path: str | None = os.fspath(store)
        label = f"zarr {path}"
        try:
            node = zarr.open(path, mode="r")
        except Exception as exc:
            raise SourceError(f"cannot read zarr {path}: {exc}") from exc
    elif isinstance(store, ZarrImage):
        return store
    else:
        node, path, label = store, None, "zarr source"
    if isinstance(node, zarr.Group):
        arr, names, array_path, sizes = _ome_image(node, label)
        return ZarrImage(arr, names, path, label, array_path, sizes)
    return ZarrImage(node, _array_axes(node), path, label, "", {})


def _ome_image(group: Any, label: str) -> tuple[Any, list[str] | None, str, dict]:
    """Highest-resolution array of the first OME multiscale of ``group``, its axes, its path
    and its sizes per axis letter."""
    attrs = dict(group.attrs)
    meta = attrs.get("ome", attrs)
    multiscales = meta.get("multiscales") if isinstance(meta, dict) else None
    if not multiscales:
        raise SourceError(
            f"{label}: zarr group without OME 'multiscales' metadata; open the image array "
            "inside it (e.g. path/to/group.zarr/0)"
        )
    ms = multiscales[0]
    try:
        ds_path = str(ms["datasets"][0]["path"])
        arr = group[ds_path]
    except Exception as exc:
        raise SourceError(f"{label}: invalid OME multiscales metadata: {exc}") from exc
    axes = ms.get("axes")
    if axes is None:
        names = list("tczyx") if arr.ndim == 5 else None  # OME-NGFF <= 0.2
    else:
        names = [a.get("name") if isinstance(a, dict) else a for a in axes]
    return arr, names, ds_path, _ome_sizes(ms, names)


class ZarrSource(LayoutSource):
    """A zarr array, or the full-resolution array of an OME-Zarr image group, read per frame.

    Axes come from OME metadata, zarr v3 ``dimension_names`` or ``_ARRAY_DIMENSIONS``, else they
    are guessed like numpy arrays; ``axes`` overrides them. ``store`` may be a
    :class:`ZarrImage` already opened.
    """

    kind = "zarr"

    def __init__(
        self,
        store: str | os.PathLike[str] | ZarrImage | Any,
        *,
        channel: int | None = None,
        window: IntensityWindow | tuple[float, float] | None = None,
        axes: str | None = None,
    ) -> None:
        arr, names, path, label, self.array_path, self._sizes = open_zarr_image(store)
        if axes is None:
            axes = names if names is not None else guess_axes(arr.shape)
        super().__init__(arr, axes, path=path, channel=channel, window=window, what=label)

    def _pixel_sizes(self) -> dict[str, tuple[float, str | None]]:
        return self._sizes

    def _extra_description(self) -> dict[str, Any]:
        d = super()._extra_description()
        d["array_path"] = self.array_path
        return d


class ZarrVolumeSource(ArrayVolumeSource):
    """A zarr array or OME-Zarr image with a z axis, read one 2D slice at a time. Axes and
    voxel sizes come from OME ``axes`` and ``coordinateTransformations`` (or
    ``dimension_names``); ``axes`` overrides the axes. ``store`` may be a :class:`ZarrImage`
    already opened."""

    kind = "zarr"

    def __init__(
        self,
        store: str | os.PathLike[str] | ZarrImage | Any,
        *,
        channel: int | None = None,
        window: IntensityWindow | tuple[float, float] | str | None = None,
        axes: str | None = None,
    ) -> None:
        arr, names, path, label, self.array_path, sizes = open_zarr_image(store)
        if axes is None:
            if names is None:
                raise SourceError(f"{label}: shape {tuple(arr.shape)} without axis names; pass "
                                  "axes= (e.g. 'ZYX' or 'TZYX')")
            axes = "".join(_role(n) for n in names)  # 'time' -> t, unknown names -> ?
        super().__init__(arr, axes.upper(), path=path, channel=channel, window=window,
                         sizes=sizes, what=label)

    def _extra_description(self) -> dict[str, Any]:
        return {**super()._extra_description(), "array_path": self.array_path}
