"""Zarr arrays and OME-Zarr image groups (v2 or v3 format) as frame sources."""

from __future__ import annotations

import os
from typing import Any

from ..errors import SourceError
from ._base import IntensityWindow, LayoutSource, guess_axes

__all__ = ["ZarrSource"]


def _array_axes(arr: Any) -> list[str] | None:
    """Dimension names of a zarr array: v3 ``dimension_names`` or xarray's ``_ARRAY_DIMENSIONS``."""
    names = getattr(getattr(arr, "metadata", None), "dimension_names", None)
    if not names:
        names = dict(arr.attrs).get("_ARRAY_DIMENSIONS")
    if names and len(names) == arr.ndim and all(isinstance(n, str) and n for n in names):
        return list(names)
    return None


def _ome_image(group: Any, label: str) -> tuple[Any, list[str] | None, str]:
    """Highest-resolution array of the first OME multiscale of ``group``, its axes, its path."""
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
    return arr, names, ds_path


class ZarrSource(LayoutSource):
    """A zarr array, or the full-resolution array of an OME-Zarr image group, read per frame.

    Axes come from OME metadata, zarr v3 ``dimension_names`` or ``_ARRAY_DIMENSIONS``, else they
    are guessed like numpy arrays; ``axes`` overrides them.
    """

    kind = "zarr"

    def __init__(
        self,
        store: str | os.PathLike[str] | Any,
        *,
        channel: int | None = None,
        window: IntensityWindow | tuple[float, float] | None = None,
        axes: str | None = None,
    ) -> None:
        import zarr

        if isinstance(store, (str, os.PathLike)):
            path: str | None = os.fspath(store)
            label = f"zarr {path}"
            try:
                node = zarr.open(path, mode="r")
            except Exception as exc:
                raise SourceError(f"cannot read zarr {path}: {exc}") from exc
        else:
            node, path, label = store, None, "zarr source"
        self.array_path = ""
        if isinstance(node, zarr.Group):
            arr, names, self.array_path = _ome_image(node, label)
        else:
            arr, names = node, _array_axes(node)
        if axes is None:
            axes = names if names is not None else guess_axes(arr.shape)
        super().__init__(arr, axes, path=path, channel=channel, window=window, what=label)

    def _extra_description(self) -> dict[str, Any]:
        d = super()._extra_description()
        d["array_path"] = self.array_path
        return d
