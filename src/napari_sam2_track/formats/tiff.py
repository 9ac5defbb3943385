"""Label TIFF stacks: ImageJ hyperstack (uint16) or OME-TIFF (uint16/uint32), written a page at a time."""

from __future__ import annotations

import contextlib
import logging
import os
from pathlib import Path

import numpy as np

from ..errors import StoreError
from ..project import ProjectStore
from ._frames import ExportOptions, LabelSource, ProjectView, labels_to_masks
from ._registry import FormatRecord, export_target, head, register
from ._volume import VolumeView, is_volume_store, read_label_volume, spatial_spacing
from ._write import objects_from_ids


def export_tiff(store: ProjectStore, out: str | Path, options: ExportOptions | None = None, *,
                dtype: str = "uint16", flavour: str = "ome", overwrite: bool = False) -> Path:
    """Write the merged labels as one multi-page TIFF (axes ``TYX``).

    ``flavour``: ``"imagej"`` (a hyperstack Fiji opens directly; uint16 only, as ImageJ has no
    32-bit integer type) or ``"ome"`` (OME-TIFF metadata; uint16 or uint32).
    """
    import tifffile

    dt = np.dtype(dtype)
    if dt not in (np.uint16, np.uint32):
        raise StoreError(f"label TIFF dtype must be uint16 or uint32, not {dtype}")
    if flavour not in ("imagej", "ome"):
        raise StoreError(f"unknown TIFF flavour {flavour!r}; use imagej or ome")
    if flavour == "imagej" and dt == np.uint32:
        raise StoreError("ImageJ hyperstacks cannot hold uint32 labels; use --dtype uint16 or --tiff-flavour ome")
    if is_volume_store(store):
        return _export_volume_tiff(store, out, options, dt, flavour, overwrite)
    view = ProjectView(store, options)
    if view.ids and max(view.ids) > np.iinfo(dt).max:
        raise StoreError(f"object id {max(view.ids)} does not fit in {dtype}; use --dtype uint32")
    shape = (view.num_frames, view.height, view.width)
    pages = (fr.labels(dt) for fr in view)
    big = view.num_frames * view.height * view.width * dt.itemsize > 2**31
    with export_target(store, out, "tiff", overwrite) as tmp:
        if flavour == "imagej":
            tifffile.imwrite(tmp, data=pages, shape=shape, dtype=dt, imagej=True,
                             metadata={"axes": "TYX"}, bigtiff=False)
        else:
            tifffile.imwrite(tmp, data=pages, shape=shape, dtype=dt, ome=True, bigtiff=big,
                             metadata={"axes": "TYX", "Name": "masklets"}, compression="zlib")
    return Path(out)


#: Geometry unit -> the unit string ImageJ writes.
_IMAGEJ_UNITS = {"µm": "micron", "mm": "mm", "nm": "nm", "cm": "cm", "m": "m"}


def _export_volume_tiff(store: ProjectStore, out, options, dt: np.dtype, flavour: str, overwrite: bool) -> Path:
    """A volume project: axes ``ZYX`` (one timepoint) or ``TZYX``, with the voxel size
    (OME ``PhysicalSizeX/Y/Z`` with units and ``TimeIncrement``; ImageJ resolution, ``spacing``,
    ``unit`` and ``finterval``), written a plane at a time."""
    import tifffile

    view = VolumeView(store, options)
    if view.ids and max(view.ids) > np.iinfo(dt).max:
        raise StoreError(f"object id {max(view.ids)} does not fit in {dt.name}; use --dtype uint32")
    n, (depth, h, w) = len(view.timepoints), view.shape[1:]
    axes = "ZYX" if n == 1 else "TZYX"
    shape = (depth, h, w) if n == 1 else (n, depth, h, w)
    (dz, dy, dx), unit = spatial_spacing(view.geometry)
    g = view.geometry
    dt_step, t_unit = (g.spacing[g.axes.index("t")], g.units[g.axes.index("t")]) if "t" in g.axes else (1.0, None)
    pages = (labels[z].astype(dt, copy=False) for _, _, labels in view.walk(dt) for z in range(depth))
    big = n * depth * h * w * dt.itemsize > 2**31
    with export_target(store, out, "tiff", overwrite) as tmp:
        if flavour == "imagej":
            meta = {"axes": axes, "spacing": dz, "unit": _IMAGEJ_UNITS.get(unit or "", "pixel")}
            if n > 1 and t_unit:
                meta["finterval"] = dt_step
            tifffile.imwrite(tmp, data=pages, shape=shape, dtype=dt, imagej=True, resolution=(1 / dx, 1 / dy),
                             metadata=meta, bigtiff=False)
        else:
            meta = {"axes": axes, "Name": "masklets", "PhysicalSizeX": dx, "PhysicalSizeY": dy, "PhysicalSizeZ": dz}
            if unit:
                meta.update(PhysicalSizeXUnit=unit, PhysicalSizeYUnit=unit, PhysicalSizeZUnit=unit)
            if n > 1 and t_unit:
                meta.update(TimeIncrement=dt_step, TimeIncrementUnit=t_unit)
            tifffile.imwrite(tmp, data=pages, shape=shape, dtype=dt, ome=True, bigtiff=big, metadata=meta,
                             compression="zlib")
    return Path(out)


class _TiffProblems(logging.Handler):
    """Collects what tifffile logs about a damaged file (it reads on, with fewer pages)."""

    def __init__(self):
        super().__init__(logging.WARNING)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(record.getMessage())


@contextlib.contextmanager
def _strict_tiff(path: Path):
    """Open a TIFF with tifffile; raise a one-line error if tifffile reports damage."""
    import tifffile

    handler = _TiffProblems()
    logger = logging.getLogger("tifffile")
    logger.addHandler(handler)
    try:
        with tifffile.TiffFile(path) as tif:
            yield tif, handler
    finally:
        logger.removeHandler(handler)
    if handler.messages:
        raise StoreError(f"{path} is damaged or truncated ({handler.messages[0]}); nothing was written")


def _layout(tif, path: Path) -> list[tuple[int, int]]:
    """``(series index, frames)`` of every series of label frames; all of one size and dtype."""
    size = os.path.getsize(path)
    for page in tif.pages:
        ends = [o + n for o, n in zip(page.dataoffsets, page.databytecounts)]
        if ends and max(ends) > size:
            raise StoreError(f"{path} is truncated: its pixel data ends at byte {max(ends):,} of a "
                             f"{size:,}-byte file; nothing was written")
    layout, first = [], None
    for k, series in enumerate(tif.series):
        shape = tuple(int(v) for v in series.shape)
        while len(shape) > 3 and shape[0] == 1:
            shape = shape[1:]
        if series.dtype.kind not in "ui":
            raise StoreError(f"{path} holds {series.dtype} pixels, not integer labels")
        if series.axes.endswith("S") and len(shape) >= 3:
            raise StoreError(f"{path} is an RGB image (axes {series.axes}); label TIFFs hold one integer "
                             "label per pixel — save the labels as a (t, y, x) stack")
        if len(shape) not in (2, 3):
            raise StoreError(f"{path} series {k} has shape {shape} (axes {series.axes}); expected "
                             "(t, y, x) label frames, not RGB or multichannel images")
        if first is None:
            first = shape[-2:]
        elif shape[-2:] != first:
            raise StoreError(f"{path} series {k} is {shape[-1]}x{shape[-2]}, but series 0 is "
                             f"{first[1]}x{first[0]}; every frame must have the same size")
        layout.append((k, shape[0] if len(shape) == 3 else 1))
    if not layout:
        raise StoreError(f"found no images in {path}; nothing was written")
    return layout


def read_tiff(path: str | Path, *, image: str | Path | None = None) -> LabelSource:
    """Read a label TIFF stack (``TYX``), one page at a time.

    Every series is read, in order: a stack written as one series, or as one series (or page)
    per frame (e.g. one ``TiffWriter.write`` call per frame), gives all its frames.
    """
    path = Path(path)
    if not path.is_file():
        raise StoreError(f"{path} is not a file")
    with _strict_tiff(path) as (tif, _):
        series = tif.series[0] if tif.series else None
        volume = series is not None and "Z" in series.axes and series.shape[series.axes.index("Z")] > 1
    if volume:  # a ZYX / TZYX label stack: a volume label set, on its image when given
        from ..sources import open_volume

        return read_label_volume(open_volume(path, window=(0, 1)), path, image=image, what="label TIFF")
    if image is not None:
        raise StoreError(f"{path} holds 2D label frames; --image is for label volumes")
    ids: set[int] = set()
    cache: dict = {}
    with _strict_tiff(path) as (tif, _):
        layout = _layout(tif, path)
        h, w = (int(v) for v in tif.series[0].shape[-2:])
        for k, n in layout:
            for i in range(n):
                ids.update(int(v) for v in np.unique(_frame(tif, k, i, n, cache)) if v)
    total = sum(n for _, n in layout)

    def frames():
        t, cache = 0, {}
        with _strict_tiff(path) as (tif, _):
            for k, n in layout:
                for i in range(n):
                    masks = labels_to_masks(_frame(tif, k, i, n, cache))
                    if masks:
                        yield t, masks
                    t += 1

    info = {"series": len(layout)} if len(layout) > 1 else {}
    return LabelSource((total, h, w), objects_from_ids(ids), frames, description=str(path), info=info)


def _frame(tif, series: int, i: int, n: int, cache: dict) -> np.ndarray:
    """Frame ``i`` of a series: one page at a time where each frame is a page; a series stored
    in one page (e.g. ``imwrite`` of a short stack as samples) is read once."""
    s = tif.series[series]
    if n == 1:
        arr = s.asarray()
    elif len(s.pages) == n:
        arr = s.asarray(key=i)
    else:
        if series not in cache:
            cache.clear()
            cache[series] = s.asarray().reshape(n, *s.shape[-2:])
        arr = cache[series][i]
    return np.asarray(arr).reshape(arr.shape[-2:])


def _is_tiff(path: Path) -> bool:
    return head(path, 4) in (b"II*\x00", b"MM\x00*", b"II+\x00", b"MM\x00+")


register(FormatRecord("tiff", "label TIFF export", (".tif", ".tiff"), _is_tiff, export_tiff,
                      importer=read_tiff, aliases=("label-tiff",)))
