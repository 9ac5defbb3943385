"""NIfTI label volumes: export a volume project for 3D Slicer / ITK-SNAP, import label files.

Export layout (a folder)::

    OUT/labels.nii.gz          the merged labels (lowest id wins); 3-D (x, y, z) for one
                               timepoint, 4-D (x, y, z, t) for several, written a timepoint at a time
    OUT/labels.json            the labels: id -> name, category, colour, attributes, parent; the
                               timepoints exported; the affine
    OUT/itksnap_labels.txt     ITK-SNAP label description file (Segmentation > Import Label Descriptions)
    OUT/slicer_colors.ctbl     3D Slicer colour table (load it with the labels; Add Data)

The voxels are the project's: ``(x, y, z)`` are its columns, rows and slices (as read from the
source: a NIfTI source's own voxel axes, a DICOM series' columns, rows and slices along the
normal). The affine (sform and qform, code 1) is the source's: a NIfTI source's sform (else
qform) as read, a DICOM series' LPS patient affine converted to RAS as NIfTI requires; a source
without one (TIFF, OME-Zarr, arrays) gets its voxel spacing on the diagonal. So the labels open
aligned with the image. The data type is the smallest of uint8, uint16, uint32 holding the
largest object id exported; the intent is NIFTI_INTENT_LABEL.
"""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import numpy as np

from ..errors import StoreError
from ..project import ProjectStore
from ..schema import object_colors
from ..sources.geometry import Geometry
from ._frames import ExportOptions, LabelSource
from ._registry import FormatRecord, export_target, register
from ._volume import VolumeView, read_label_volume, refuse_2d_project, smallest_label_dtype

LABELS_FILE = "labels.nii.gz"
DESCRIPTION_FILE = "labels.json"
ITKSNAP_FILE = "itksnap_labels.txt"
SLICER_FILE = "slicer_colors.ctbl"

#: Geometry unit -> (NIfTI unit name, factor to it).
_SPACE_UNITS = {"mm": ("mm", 1.0), "µm": ("micron", 1.0), "m": ("meter", 1.0), "cm": ("mm", 10.0),
                "nm": ("micron", 1e-3)}
_TIME_UNITS = {"s": ("sec", 1.0), "ms": ("msec", 1.0), "µs": ("usec", 1.0), "min": ("sec", 60.0),
               "h": ("sec", 3600.0)}


def nifti_affine(geometry: Geometry) -> np.ndarray:
    """The 4x4 RAS affine of voxel ``(x, y, z)`` = (column, row, slice) for a NIfTI file."""
    ras = geometry.ras_affine()
    if ras is not None:
        return ras
    spacing = dict(zip(geometry.axes, geometry.spacing))
    unit = _SPACE_UNITS.get(geometry.units[geometry.axes.index("x")] or "", (None, 1.0))[1]
    return np.diag([spacing.get("x", 1.0) * unit, spacing.get("y", 1.0) * unit, spacing.get("z", 1.0) * unit, 1.0])


def nifti_header(geometry: Geometry, shape_zyx: tuple[int, int, int], timepoints: int, dtype: np.dtype):
    """A NIfTI-1 header for label volumes of ``shape_zyx`` on ``geometry`` (4-D when
    ``timepoints`` > 1)."""
    import nibabel as nib

    z, h, w = shape_zyx
    affine = nifti_affine(geometry)
    hdr = nib.Nifti1Header()
    hdr.set_data_dtype(dtype)
    hdr.set_data_shape((w, h, z, timepoints) if timepoints > 1 else (w, h, z))
    hdr.set_sform(affine, code=1)
    hdr.set_qform(affine, code=1)  # without shears (gantry tilt): readers use the sform
    zooms = list(np.linalg.norm(affine[:3, :3], axis=0))
    x_unit = geometry.units[geometry.axes.index("x")] if geometry.affine is None else "mm"
    space = _SPACE_UNITS.get(x_unit or "", ("unknown", 1.0))[0]
    time = "unknown"
    if timepoints > 1:
        dt, t_unit = 1.0, None
        if "t" in geometry.axes:
            dt, t_unit = geometry.spacing[geometry.axes.index("t")], geometry.units[geometry.axes.index("t")]
        time, factor = _TIME_UNITS.get(t_unit or "", ("unknown", 1.0))
        zooms.append(dt * factor)
    hdr.set_zooms(zooms)
    hdr.set_xyzt_units(space, time)
    hdr.set_intent("label")
    hdr["descrip"] = b"napari-sam2-track labels"
    return hdr


def write_nifti_labels(path: str | Path, volumes, geometry: Geometry, shape_zyx: tuple[int, int, int],
                       timepoints: int, dtype) -> Path:
    """Write ``volumes`` (an iterable of ``timepoints`` ``(Z, H, W)`` label arrays) as one
    gzipped NIfTI-1 file, one timepoint in memory at a time."""
    dtype = np.dtype(dtype)
    hdr = nifti_header(geometry, shape_zyx, timepoints, dtype)
    written = 0
    with gzip.open(path, "wb", compresslevel=6) as f:
        hdr.write_to(f)  # 348 bytes and the 4-byte "no extension" flag: data at 352
        for volume in volumes:
            if tuple(volume.shape) != tuple(shape_zyx):
                raise ValueError(f"label volume {volume.shape} is not {shape_zyx}")
            # (z, y, x) in C order is NIfTI's (x, y, z) in Fortran order
            f.write(np.ascontiguousarray(volume, dtype=dtype.newbyteorder("<")).tobytes())
            written += 1
    if written != timepoints:
        raise ValueError(f"wrote {written} timepoints of {timepoints}")
    return Path(path)


def label_descriptions(objects, schema) -> list[dict]:
    """``[{id, name, category, color, attributes, parent}]`` of the exported objects."""
    colors = object_colors(objects, schema)
    return [{"id": o.id, "name": o.name or f"object {o.id}", "category": schema.category_for(o.category),
             "color": colors[o.id], "attributes": dict(o.attributes), "parent": o.parent} for o in objects]


def _rgb(color: str) -> tuple[int, int, int]:
    c = color.lstrip("#")
    return int(c[0:2], 16), int(c[2:4], 16), int(c[4:6], 16)


def write_label_tables(folder: Path, labels: list[dict], extra: dict) -> None:
    """``labels.json``, the ITK-SNAP label description file and the 3D Slicer colour table."""
    (folder / DESCRIPTION_FILE).write_text(json.dumps({"labels": labels, **extra}, indent=1) + "\n")
    lines = ["################################################",
             "# ITK-SnAP Label Description File (napari-sam2-track)",
             "# IDX   -R-  -G-  -B-  -A--  VIS MSH  LABEL",
             "################################################",
             '    0     0    0    0        0  0  0    "Clear Label"']
    for item in labels:
        r, g, b = _rgb(item["color"])
        name = f"{item['name']} ({item['category']})".replace('"', "'")
        lines.append(f'{item["id"]:5d} {r:5d} {g:4d} {b:4d}        1  1  1    "{name}"')
    (folder / ITKSNAP_FILE).write_text("\n".join(lines) + "\n")
    rows = ["# Color table file (napari-sam2-track)", f"# {len(labels) + 1} values", "0 Background 0 0 0 0"]
    for item in labels:
        r, g, b = _rgb(item["color"])
        name = "_".join(f"{item['name']}".split()) or f"object_{item['id']}"
        rows.append(f"{item['id']} {name} {r} {g} {b} 255")
    (folder / SLICER_FILE).write_text("\n".join(rows) + "\n")


def export_nifti(store: ProjectStore, out: str | Path, options: ExportOptions | None = None, *,
                 overwrite: bool = False) -> Path:
    """Write a volume project's merged labels as NIfTI with the source's affine (see the module)."""
    refuse_2d_project(store, "NIfTI export")
    view = VolumeView(store, options)
    dtype = smallest_label_dtype(max(view.ids, default=0))
    n = len(view.timepoints)
    shape_zyx = tuple(view.shape[1:])
    final = Path(out)
    with export_target(store, final, "nifti", overwrite) as folder:
        write_nifti_labels(folder / LABELS_FILE, (vol for _, _, vol in view.walk(dtype)), view.geometry,
                           shape_zyx, n, dtype)
        write_label_tables(folder, label_descriptions(view.objects, view.schema), {
            "file": LABELS_FILE, "timepoints": list(view.timepoints), "dtype": dtype.name,
            "affine_ras": nifti_affine(view.geometry).tolist(), "source_space": view.geometry.space})
    return final


def read_nifti_labels(path: str | Path, *, image: str | Path | None = None) -> LabelSource:
    """Read a NIfTI label volume (3-D or 4-D; or a folder of this package's NIfTI export, with
    its names and categories) as a volume :class:`LabelSource`, one object per label value."""
    from ..sources.nifti import NiftiSource

    path = Path(path)
    described = None
    if path.is_dir():
        if not (path / LABELS_FILE).is_file():
            raise StoreError(f"{path} holds no {LABELS_FILE}; import a .nii or .nii.gz label file")
        if (path / DESCRIPTION_FILE).is_file():
            described = json.loads((path / DESCRIPTION_FILE).read_text()).get("labels")
        path = path / LABELS_FILE
    volume = NiftiSource(path, window=(0, 1))
    try:
        source = read_label_volume(volume, path, image=image, what="NIfTI label volume")
    except BaseException:
        volume.close()
        raise
    if described:
        by_id = {int(d["id"]): d for d in described}
        source.objects = [o.model_copy(update={
            "name": by_id[o.id].get("name", ""), "category": by_id[o.id].get("category") or "object",
            "attributes": by_id[o.id].get("attributes") or {}}) if o.id in by_id else o
            for o in source.objects]
        source.categories = list(dict.fromkeys(o.category for o in source.objects))
    return source


register(FormatRecord("nifti", "NIfTI label export", ("",), exporter=export_nifti, importer=read_nifti_labels,
                      aliases=("nii",)))
