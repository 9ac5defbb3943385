"""DICOM-derived label volumes: DICOM Segmentation objects and series of label images.

* A **DICOM Segmentation** (SEG, one multi-frame file; BINARY or FRACTIONAL) is read with pydicom
  alone: each frame is one segment's mask on one plane, placed by its ImagePositionPatient. It
  is imported onto its image (``image=``, the DICOM series or NIfTI file it was drawn on): every
  frame must lie on a slice of the image's grid (same orientation, in-plane origin and pixel
  spacing), or the import is refused with one line. Segment ``n`` becomes object ``n`` (its
  SegmentLabel the name, the property category the category); segments may overlap. A
  FRACTIONAL segment is the voxels of at least half its maximum value.
* A folder holding one DICOM **series whose pixel values** (after RescaleSlope/Intercept) are
  label ids is read with the same rules as image series (slices ordered along the normal,
  spacing from the positions, ``series=UID`` for a folder of several series; see
  ``docs/volumes.md``).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..errors import StoreError
from ._frames import LabelSource
from ._registry import FormatRecord, register
from ._volume import read_label_volume


def read_dicom_labels(path: str | Path, *, image: str | Path | None = None,
                      series: str | None = None) -> LabelSource:
    """Read a DICOM series of label images as a volume :class:`LabelSource` (one object per
    label value), checked against ``image`` when given."""
    from ..sources.dicom import DicomSeriesSource, is_dicom_file

    path = Path(path)
    if path.is_dir():
        segs = [f for f in sorted(path.iterdir()) if f.is_file() and is_dicom_file(f) and _is_seg(f)]
        if len(segs) == 1 and all(not is_dicom_file(f) or f == segs[0] for f in path.iterdir() if f.is_file()):
            path = segs[0]
        elif segs:
            raise StoreError(f"{path} holds DICOM Segmentation objects ({', '.join(f.name for f in segs[:3])}); "
                             "import one SEG file")
    if path.is_file() and is_dicom_file(path):
        if _is_seg(path):
            return read_dicom_seg(path, image=image)
        raise StoreError(f"{path} is one DICOM file; import the folder that holds the label series")
    volume = DicomSeriesSource(path, series=series, window=(0, 1))
    try:
        return read_label_volume(volume, path, image=image, what="DICOM label series")
    except BaseException:
        volume.close()
        raise


def _is_seg(path: Path) -> bool:
    import pydicom

    try:
        return str(pydicom.dcmread(path, stop_before_pixels=True).get("Modality", "")) == "SEG"
    except Exception:  # noqa: BLE001 - not readable as DICOM: not a SEG
        return False


def _floats(item, keyword: str, n: int, path: Path) -> np.ndarray:
    value = item.get(keyword) if item is not None else None
    try:
        out = np.array([float(v) for v in value])
        if out.size == n:
            return out
    except (TypeError, ValueError):
        pass
    raise StoreError(f"{path}: a frame has no valid {keyword}; the segmentation cannot be placed")


def _functional(ds, i: int, sequence: str):
    """Item ``sequence`` of frame ``i`` (per-frame groups first, then the shared ones)."""
    for groups in (ds.get("PerFrameFunctionalGroupsSequence"), ds.get("SharedFunctionalGroupsSequence")):
        if groups:
            group = groups[i] if groups is ds.get("PerFrameFunctionalGroupsSequence") else groups[0]
            if sequence in group and len(group[sequence].value):
                return group[sequence].value[0]
    return None


def read_dicom_seg(path: str | Path, *, image: str | Path | None = None) -> LabelSource:
    """Read a DICOM Segmentation object onto its image volume (see the module)."""
    import pydicom

    from ..prompts import ObjectSpec
    from ..sources import open_volume

    path = Path(path)
    if image is None:
        raise StoreError(f"{path} is a DICOM Segmentation: import it onto the image it segments "
                         "(--image: its DICOM series folder or NIfTI file)")
    ds = pydicom.dcmread(path)
    kind = str(ds.get("SegmentationType", "BINARY"))
    if kind not in ("BINARY", "FRACTIONAL"):
        raise StoreError(f"{path}: SegmentationType {kind} is not read (BINARY or FRACTIONAL)")
    volume = open_volume(image, window=(0, 1))
    geometry = volume.geometry
    _, depth, h, w = (int(v) for v in volume.shape)
    volume.close()
    if geometry.affine is None:
        raise StoreError(f"the image {image} has no patient geometry (affine); a DICOM Segmentation is "
                         "placed by patient coordinates: give its DICOM series or NIfTI file")
    lps = np.diag([-1.0, -1.0, 1.0, 1.0]) @ geometry.ras_affine()  # voxel (x, y, z) -> LPS mm
    inverse = np.linalg.inv(lps)
    rows_dir = lps[:3, 0] / np.linalg.norm(lps[:3, 0])
    cols_dir = lps[:3, 1] / np.linalg.norm(lps[:3, 1])
    spacing = (float(np.linalg.norm(lps[:3, 1])), float(np.linalg.norm(lps[:3, 0])))  # (rows, columns)
    if (int(ds.Rows), int(ds.Columns)) != (h, w):
        raise StoreError(f"{path} has frames of {ds.Columns}x{ds.Rows} pixels but the image {image} "
                         f"{w}x{h}: it does not segment this image")
    pixels = np.asarray(ds.pixel_array)
    n_frames = int(ds.get("NumberOfFrames", 1) or 1)
    pixels = pixels.reshape(n_frames, h, w)
    threshold = 0.5 * float(ds.get("MaximumFractionalValue", 1) or 1) if kind == "FRACTIONAL" else 0.5
    planes: dict[int, dict[int, np.ndarray]] = {}
    for i in range(n_frames):
        orientation = _floats(_functional(ds, i, "PlaneOrientationSequence"), "ImageOrientationPatient", 6, path)
        measures = _floats(_functional(ds, i, "PixelMeasuresSequence"), "PixelSpacing", 2, path)
        position = _floats(_functional(ds, i, "PlanePositionSequence"), "ImagePositionPatient", 3, path)
        ident = _functional(ds, i, "SegmentIdentificationSequence")
        if ident is None:
            raise StoreError(f"{path}: frame {i + 1} names no segment (SegmentIdentificationSequence)")
        voxel = inverse @ [*position, 1.0]
        k = int(round(voxel[2]))
        if (not (np.allclose(orientation[:3], rows_dir, atol=1e-3) and np.allclose(orientation[3:], cols_dir, atol=1e-3))
                or not np.allclose(measures, spacing, rtol=1e-3) or abs(voxel[0]) > 0.01 or abs(voxel[1]) > 0.01
                or abs(voxel[2] - k) > 0.01 or not 0 <= k < depth):
            raise StoreError(f"{path}: frame {i + 1} (at {', '.join(f'{v:.2f}' for v in position)} mm) does not "
                             f"lie on a slice of the image {image}: it does not segment this image")
        mask = pixels[i] >= threshold
        if mask.any():
            segment = int(ident.ReferencedSegmentNumber)
            plane = planes.setdefault(k, {})
            plane[segment] = plane[segment] | mask if segment in plane else mask
    objects = []
    for item in ds.get("SegmentSequence", []):
        category = item.get("SegmentedPropertyCategoryCodeSequence")
        objects.append(ObjectSpec(id=int(item.SegmentNumber), name=str(item.get("SegmentLabel", "") or ""),
                                  category=str(category[0].CodeMeaning) if category else "object"))
    found = {i for masks in planes.values() for i in masks}
    if not found:
        raise StoreError(f"{path} holds no segmented voxels; nothing was written")
    known = {o.id for o in objects}
    objects += [ObjectSpec(id=i, category="object") for i in sorted(found - known)]

    def frames():
        for k in sorted(planes):
            yield k, planes[k]

    return LabelSource((depth, h, w), sorted(objects, key=lambda o: o.id), frames, description=str(path),
                       categories=list(dict.fromkeys(o.category for o in objects)),
                       info={"image": str(image), "segmentation_type": kind}, volume=(1, depth, h, w),
                       geometry=geometry)


register(FormatRecord("dicom", "DICOM label series", ("",), importer=read_dicom_labels, aliases=("dicom-labels",)))
