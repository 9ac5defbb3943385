"""Label TIFF stacks: ImageJ hyperstack (uint16) or OME-TIFF (uint16/uint32), written a page at a time."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..errors import StoreError
from ..project import ProjectStore
from ._frames import ExportOptions, LabelSource, ProjectView, labels_to_masks
from ._write import objects_from_ids, prepare_out


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
    out = prepare_out(out, overwrite, is_dir=False)
    shape = (view.num_frames, view.height, view.width)
    pages = (fr.labels(dt) for fr in view)
    big = view.num_frames * view.height * view.width * dt.itemsize > 2**31
    if flavour == "imagej":
        tifffile.imwrite(out, data=pages, shape=shape, dtype=dt, imagej=True,
                         metadata={"axes": "TYX"}, bigtiff=False)
    else:
        tifffile.imwrite(out, data=pages, shape=shape, dtype=dt, ome=True, bigtiff=big,
                         metadata={"axes": "TYX", "Name": "masklets"}, compression="zlib")
    return out


def read_tiff(path: str | Path) -> LabelSource:
    """Read a label TIFF stack (``TYX``), one page at a time."""
    import tifffile

    path = Path(path)
    if not path.is_file():
        raise StoreError(f"{path} is not a file")
    with tifffile.TiffFile(path) as tif:
        series = tif.series[0]
        shape = series.shape
        if series.dtype.kind not in "ui":
            raise StoreError(f"{path} holds {series.dtype} pixels, not integer labels")
    if len(shape) == 2:
        shape = (1, *shape)
    if len(shape) != 3:
        raise StoreError(f"{path} has shape {shape}; expected a (t, y, x) label stack")
    ids: set[int] = set()
    with tifffile.TiffFile(path) as tif:
        for page in tif.series[0].pages:
            ids.update(int(i) for i in np.unique(page.asarray()) if i)

    def frames():
        with tifffile.TiffFile(path) as tif:
            for t, page in enumerate(tif.series[0].pages):
                masks = labels_to_masks(page.asarray())
                if masks:
                    yield t, masks

    return LabelSource(tuple(shape), objects_from_ids(ids), frames, description=str(path))
