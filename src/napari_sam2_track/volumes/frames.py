"""One timepoint of a volume seen as SAM 2's frames: the slices along z, in order."""

from __future__ import annotations

import numpy as np


class SliceFrames:
    """The slices ``z_lo..z_hi`` (inclusive) of timepoint ``t`` of a
    :class:`~napari_sam2_track.sources.volume.VolumeSource`, as a frame source.

    It has what the engine reads of a :class:`~napari_sam2_track.sources.FrameSource`
    (``len``, ``height``, ``width``, ``read_rgb``), so the
    :class:`~napari_sam2_track.engine.tracker.StreamingTracker` runs over it unchanged: frame
    ``i`` is slice ``z_lo + i``. Slices are read when the model asks for them, through the
    volume's intensity window. Closing it leaves the volume open.
    """

    def __init__(self, volume, t: int, z_lo: int = 0, z_hi: int | None = None):
        n_t, n_z, h, w = volume.shape
        self.volume = volume
        self.t = int(t)
        self.z_lo = int(z_lo)
        self.z_hi = n_z - 1 if z_hi is None else int(z_hi)
        if not (0 <= self.t < n_t and 0 <= self.z_lo <= self.z_hi < n_z):
            raise IndexError(f"slices {self.z_lo}-{self.z_hi} of timepoint {self.t} are outside "
                             f"the {n_t}x{n_z} (t, z) volume")
        self.height, self.width = int(h), int(w)
        self.path = getattr(volume, "path", None)

    def __len__(self) -> int:
        return self.z_hi - self.z_lo + 1

    def z_of(self, frame: int) -> int:
        """The slice index of frame ``frame``."""
        return self.z_lo + int(frame)

    def frame_of(self, z: int) -> int:
        """The frame of slice ``z``."""
        return int(z) - self.z_lo

    def read_rgb(self, frame: int) -> np.ndarray:
        """Slice ``z_lo + frame`` as ``(H, W, 3)`` uint8."""
        if not 0 <= frame < len(self):
            raise IndexError(f"frame {frame} out of range (0..{len(self) - 1})")
        return self.volume.read_slice_rgb(self.t, self.z_lo + int(frame))

    def close(self) -> None:
        """Nothing to release: the volume stays open."""
