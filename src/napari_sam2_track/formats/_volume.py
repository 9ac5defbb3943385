"""What volume exports, imports and ``compare`` share: a volume project seen one timepoint at a
time, label volumes read from any volume source, and the geometry checks.

A volume project stores planes ``p = t * Z + z`` (see ``docs/store.md``). Volume exporters
select **timepoints** with ``--start/--end/--every`` and always write whole volumes; every other
export option applies per plane as in the 2D exports (``--approved-only`` keeps an object on
the planes its approved QC ranges cover, ``--min-visible-pixels`` is per plane).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace

import numpy as np

from ..errors import StoreError
from ..project import ProjectStore
from ..project.labels import merge_lowest_id
from ..sources.geometry import Geometry
from ._frames import ExportOptions, LabelSource, ProjectView, labels_to_masks
from ._write import objects_from_ids

#: The export formats that write volumes (named in refusals of the others).
VOLUME_FORMATS = ("nifti", "ome-zarr", "ome-zarr-0.4", "tiff", "ctc", "table")


def is_volume_store(store: ProjectStore) -> bool:
    """Whether a project stores volumes (format 3 ``tzyx``)."""
    return bool(getattr(store, "is_volume", False))


def refuse_volume_project(store: ProjectStore, title: str) -> None:
    """One line when a 2D-only format is asked to export a volume project."""
    if is_volume_store(store):
        t, z, h, w = store.volume_shape
        raise StoreError(
            f"{store.path.name} is a volume project ({t} timepoint(s) of {z} slices); the "
            f"{title} holds 2D frames: export volumes as {', '.join(VOLUME_FORMATS)}; nothing was exported")


def refuse_2d_project(store: ProjectStore, title: str) -> None:
    """One line when a volume-only format is asked to export a 2D + t project."""
    if not is_volume_store(store):
        raise StoreError(f"{store.path.name} is a 2D + t project; the {title} is for volume projects: "
                         "export it as tiff, ome-zarr or ctc; nothing was exported")


class VolumeView:
    """A volume project through :class:`ExportOptions`, one timepoint at a time.

    ``start``/``end``/``every`` select timepoints; the other options are applied per plane by
    the :class:`ProjectView` of the selected planes (``view``).
    """

    def __init__(self, store: ProjectStore, options: ExportOptions | None = None):
        opts = options or ExportOptions()
        self.store = store
        self.shape = tuple(int(v) for v in store.volume_shape)
        t_count, depth = self.shape[0], self.shape[1]
        if opts.every < 1:
            raise StoreError(f"--every must be 1 or more, got {opts.every}")
        t0 = 0 if opts.start is None else int(opts.start)
        t1 = t_count - 1 if opts.end is None else int(opts.end)
        if not (0 <= t0 <= t1 < t_count):
            raise StoreError(f"timepoint range {t0}-{t1} is outside the project (timepoints 0-{t_count - 1}; "
                             "--start/--end select timepoints of a volume project)")
        self.view = ProjectView(store, replace(opts, start=t0 * depth, end=(t1 + 1) * depth - 1, every=1))
        self.timepoints = range(t0, t1 + 1, opts.every)
        self.geometry: Geometry = store.geometry
        self.progress = opts.progress

    @property
    def depth(self) -> int:
        return self.shape[1]

    @property
    def objects(self):
        return self.view.objects

    @property
    def ids(self) -> list[int]:
        return self.view.ids

    @property
    def schema(self):
        return self.view.schema

    def walk(self, dtype=np.uint32) -> Iterator[tuple[int, int, np.ndarray]]:
        """``(index, t, labels)``: the merged ``(Z, H, W)`` labels of each selected timepoint
        (lowest id wins), ``index`` its position in the export; one timepoint in memory."""
        _, depth, h, w = self.shape
        t0, every = self.timepoints.start, self.timepoints.step
        total = len(self.timepoints) * depth
        done = 0
        volume = None
        for fr in self.view.walk(read_masks=False):
            t, z = divmod(fr.t, depth)
            if (t - t0) % every:
                continue
            if z == 0:
                volume = np.zeros((depth, h, w), dtype)
            if fr.masks:
                volume[z] = merge_lowest_id(self.view._masks(fr.t, list(fr.masks)), (h, w), dtype)
            done += 1
            if self.progress is not None:
                self.progress(done, total)
            if z == depth - 1:
                yield (t - t0) // every, t, volume


def smallest_label_dtype(max_id: int) -> np.dtype:
    """uint8, uint16 or uint32: the smallest unsigned type holding ``max_id``."""
    for dt in (np.uint8, np.uint16, np.uint32):
        if max_id <= np.iinfo(dt).max:
            return np.dtype(dt)
    raise StoreError(f"object id {max_id} does not fit in 32 bits")


def spatial_spacing(geometry: Geometry | None) -> tuple[tuple[float, float, float], str | None]:
    """``((dz, dy, dx), unit)`` of a volume geometry (unit ``None``: voxels or unknown)."""
    if geometry is None:
        return (1.0, 1.0, 1.0), None
    idx = [geometry.axes.index(a) for a in "zyx"]
    units = {geometry.units[i] for i in idx}
    unit = units.pop() if len(units) == 1 else None
    return tuple(float(geometry.spacing[i]) for i in idx), unit


def label_volume_source(volume, description: str, *, what: str = "label volume") -> LabelSource:
    """A :class:`LabelSource` of a label volume read from any
    :class:`~napari_sam2_track.sources.volume.VolumeSource` (NIfTI, DICOM series, z-stack TIFF,
    OME-Zarr): one object per label value; slices are read once to find the ids, again to import.

    Labels must be integers (floating-point files whose values are all whole numbers are read as
    such); negative or fractional values are refused with one line.
    """
    t_count, depth, h, w = (int(v) for v in volume.shape)

    def labels(t: int, z: int) -> np.ndarray:
        s = np.asarray(volume.read_slice(t, z))
        if s.dtype.kind == "f":
            if not np.all(np.isfinite(s)) or np.any(s != np.round(s)):
                raise StoreError(f"{description} holds non-integer values (slice t={t}, z={z}); a {what} "
                                 "holds one whole label number per voxel")
        if s.size and s.min() < 0:
            raise StoreError(f"{description} holds negative values (slice t={t}, z={z}); labels are 0 "
                             "(background) or positive ids")
        if s.size and s.max() > np.iinfo(np.uint32).max:
            raise StoreError(f"{description} holds labels above 2**32-1; they cannot be object ids")
        return s.astype(np.uint32, copy=False)

    ids: set[int] = set()
    for t in range(t_count):
        for z in range(depth):
            ids.update(int(i) for i in np.unique(labels(t, z)) if i)

    def frames():
        for t in range(t_count):
            for z in range(depth):
                masks = labels_to_masks(labels(t, z))
                if masks:
                    yield t * depth + z, masks

    return LabelSource((t_count * depth, h, w), objects_from_ids(ids), frames, description=description,
                       volume=(t_count, depth, h, w), geometry=volume.geometry, volume_source=volume)


def check_on_image(labels: Geometry, image: Geometry, label_path, image_path) -> None:
    """Refuse (one line) a label volume whose grid or placement differs from its image's."""
    lt, lz, lh, lw = labels.shape
    it, iz, ih, iw = image.shape
    if (lz, lh, lw) != (iz, ih, iw) or lt not in (1, it):
        raise StoreError(f"{label_path} is {lw}x{lh}x{lz} voxels x {lt} timepoint(s) but the image {image_path} "
                         f"is {iw}x{ih}x{iz} x {it}: the labels were not drawn on this image")
    la, ia = labels.ras_affine(), image.ras_affine()
    if la is not None and ia is not None:
        if not np.allclose(la, ia, rtol=1e-4, atol=1e-3):
            diff = float(np.abs(la - ia).max())
            raise StoreError(f"{label_path} lies elsewhere in space than the image {image_path} (their affines "
                             f"differ by up to {diff:.3g} mm): the labels were not drawn on this image")
    else:
        (ls, lu), (is_, iu) = spatial_spacing(labels), spatial_spacing(image)
        if lu and iu and (lu != iu or not np.allclose(ls, is_, rtol=1e-4)):
            raise StoreError(f"{label_path} has voxels of {ls} {lu} (z, y, x) but the image {image_path} "
                             f"{is_} {iu}: the labels were not drawn on this image")


def _image_geometry(image) -> tuple[Geometry, str]:
    from ..sources import open_volume

    volume = open_volume(image, window=(0, 1))
    try:
        return volume.geometry, str(image)
    finally:
        volume.close()


def read_label_volume(volume, path, *, image=None, what: str = "label volume") -> LabelSource:
    """A :class:`LabelSource` of a label volume source, checked against ``image`` when given
    (a volume file or folder whose grid and placement the labels must share)."""
    if image is not None:
        geometry, image_path = _image_geometry(image)
        check_on_image(volume.geometry, geometry, path, image_path)
    source = label_volume_source(volume, str(path), what=what)
    if image is not None:
        source.info["image"] = str(image)
    if not source.objects:
        raise StoreError(f"{path} holds no labels (every voxel is 0); nothing was written")
    return source

