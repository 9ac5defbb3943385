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


def read_tiff(path: str | Path) -> LabelSource:
    """Read a label TIFF stack (``TYX``), one page at a time.

    Every series is read, in order: a stack written as one series, or as one series (or page)
    per frame (e.g. one ``TiffWriter.write`` call per frame), gives all its frames.
    """
    path = Path(path)
    if not path.is_file():
        raise StoreError(f"{path} is not a file")
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
