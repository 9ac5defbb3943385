"""Lazy, lossless frame sources: videos, TIFF/OME-TIFF, zarr/OME-Zarr, image folders, arrays.

Use :func:`open_source` to open anything; every source is a :class:`FrameSource` giving native
frames (``read``) and ``(H, W, 3)`` uint8 model input (``read_rgb``) one frame at a time.
"""

from ..errors import SourceError
from ._base import FrameSource, IntensityWindow
from ._open import open_source
from .array import ArraySource
from .folder import ImageFolderSource
from .tiff import TiffSource
from .video import VideoSource
from .zarrsource import ZarrSource

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
]
