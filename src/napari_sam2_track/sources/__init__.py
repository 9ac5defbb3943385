"""Lazy, lossless sources: videos, TIFF/OME-TIFF, zarr/OME-Zarr, image folders, arrays, and
volumes (z-stacks, 3D + time, NIfTI, DICOM series).

Use :func:`open_source` to open anything. A 2D recording is a :class:`FrameSource` giving native
frames (``read``) and ``(H, W, 3)`` uint8 model input (``read_rgb``) one frame at a time; a
volume is a :class:`VolumeSource` giving one ``(t, z)`` slice at a time (``read_slice``). Both
carry a :class:`Geometry` (axes, voxel spacing and units, affine, napari scale).
"""

from ..errors import SourceError
from ._base import FrameSource, IntensityWindow
from ._open import open_source, open_volume
from .array import ArraySource
from .dicom import DicomSeriesSource
from .folder import ImageFolderSource
from .geometry import Geometry
from .nifti import NiftiSource
from .tiff import TiffSource, TiffVolumeSource
from .video import VideoSource
from .volume import ArrayVolumeSource, VolumeSource, refuse_volume
from .windows import window_presets
from .zarrsource import ZarrSource, ZarrVolumeSource

__all__ = [
    "FrameSource",
    "IntensityWindow",
    "open_source",
    "SourceError",
    "ArraySource",
    "ImageFolderSource",
    "TiffSource",
    "VideoSource",
    "ZarrSource",
    "Geometry",
    "VolumeSource",
    "open_volume",
    "refuse_volume",
    "window_presets",
    "ArrayVolumeSource",
    "DicomSeriesSource",
    "NiftiSource",
    "TiffVolumeSource",
    "ZarrVolumeSource",
]
