"""A folder of JPEG/PNG frames (the input format of the upstream SAM 2 video predictor)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import SourceError
from ._base import IntensityWindow, FrameSource

__all__ = ["ImageFolderSource", "IMAGE_SUFFIXES", "list_images"]

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png")
_MODES_16BIT = ("I;16", "I;16L", "I;16B", "I;16N", "I")


def list_images(folder: Path) -> list[Path]:
    """Image files of ``folder``: sorted by integer stem when all stems are integers, else by
    name."""
    files = [
        p
        for p in folder.iterdir()
        if p.suffix.lower() in IMAGE_SUFFIXES and not p.name.startswith(".") and p.is_file()
    ]
    stems = [p.stem for p in files]
    if files and all(s.isdigit() for s in stems):
        return sorted(files, key=lambda p: (int(p.stem), p.name))
    return sorted(files, key=lambda p: p.name)


class ImageFolderSource(FrameSource):
    """One frame per .jpg/.jpeg/.png file, decoded with Pillow on demand.

    8-bit images are decoded exactly as ``np.array(Image.open(p).convert("RGB"))`` (what SAM 2
    reads from a JPEG folder); 16-bit grayscale PNGs give uint16 (H, W) frames. All images
    must have the size of the first one (checked when each frame is read).
    """

    kind = "folder"

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        channel: int | None = None,
        window: IntensityWindow | tuple[float, float] | None = None,
    ) -> None:
        from PIL import Image

        folder = Path(path)
        if not folder.is_dir():
            raise SourceError(f"{folder}: not a folder")
        files = list_images(folder)
        if not files:
            raise SourceError(
                f"{folder}: no images found (expected {', '.join(IMAGE_SUFFIXES)} files)"
            )
        try:
            with Image.open(files[0]) as im:
                mode, (w, h) = im.mode, im.size
        except Exception as exc:
            raise SourceError(f"cannot read image {files[0]}: {exc}") from exc
        self._gray16 = mode in _MODES_16BIT
        self.files = files
        super().__init__(
            path=os.fspath(folder),
            num_frames=len(files),
            height=h,
            width=w,
            channels=1 if self._gray16 else 3,
            dtype=np.uint16 if self._gray16 else np.uint8,
        )
        self._configure(channel, window)

    def _read(self, t: int) -> np.ndarray:
        from PIL import Image

        p = self.files[t]
        try:
            with Image.open(p) as im:
                if (im.size[1], im.size[0]) != (self.height, self.width):
                    raise SourceError(
                        f"{p}: image is {im.size[0]}x{im.size[1]} but the first image is "
                        f"{self.width}x{self.height}; all frames must have the same size"
                    )
                gray16 = im.mode in _MODES_16BIT
                if gray16 != self._gray16:
                    raise SourceError(
                        f"{p}: mode {im.mode} differs from the first image; do not mix 16-bit "
                        "and 8-bit images in one folder"
                    )
                if gray16:
                    return np.array(im).astype(np.uint16, copy=False)
                return np.array(im.convert("RGB"))
        except SourceError:
            raise
        except Exception as exc:
            raise SourceError(f"cannot read image {p} (frame {t}): {exc}") from exc

    def _extra_description(self) -> dict[str, Any]:
        return {"first_file": self.files[0].name, "last_file": self.files[-1].name}
