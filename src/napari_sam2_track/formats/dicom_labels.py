"""DICOM-derived label volumes: a series of label images (one integer label per voxel).

A folder holding one DICOM series whose pixel values (after RescaleSlope/Intercept) are label
ids, such as a label map saved as a DICOM series by an image-analysis tool, is read with the
same rules as image series (slices ordered along the normal, spacing from the positions,
``series=UID`` for a folder of several series; see ``docs/volumes.md``). DICOM Segmentation
objects (SEG, multi-frame) are not read: convert them to NIfTI first (e.g. with
``dcmqi``'s ``segimage2itkimage``) and import the NIfTI file.
"""

from __future__ import annotations

from pathlib import Path

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
    if path.is_file() and is_dicom_file(path):
        import pydicom

        ds = pydicom.dcmread(path, stop_before_pixels=True)
        if str(ds.get("Modality", "")) == "SEG":
            raise StoreError(f"{path} is a DICOM Segmentation (SEG) object, which is not read; convert it "
                             "to NIfTI (e.g. dcmqi segimage2itkimage) and import the .nii.gz")
        raise StoreError(f"{path} is one DICOM file; import the folder that holds the label series")
    volume = DicomSeriesSource(path, series=series, window=(0, 1))
    if volume.modality == "SEG":
        volume.close()
        raise StoreError(f"{path} holds a DICOM Segmentation (SEG) object, which is not read; convert it "
                         "to NIfTI (e.g. dcmqi segimage2itkimage) and import the .nii.gz")
    try:
        return read_label_volume(volume, path, image=image, what="DICOM label series")
    except BaseException:
        volume.close()
        raise


register(FormatRecord("dicom", "DICOM label series", ("",), importer=read_dicom_labels, aliases=("dicom-labels",)))
