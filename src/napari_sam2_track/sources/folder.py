"""A folder of JPEG/PNG frames (the input format of the upstream SAM 2 video predictor)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np

from .._input_files import first_line
from ..errors import SourceError
from ._base import IntensityWindow, FrameSource

__all__ = ["ImageFolderSource", "IMAGE_SUFFIXES", "list_images"]

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png")
_MODES_16BIT = ("I;16", "I;16L", "I;16B", "I;16N", "I")


def list_images(folder: Path) -> list[Path]:
    """Image files of ``folder``: sorted by integer stem when all stems are integers, else by
    name. Entries with an image suffix that are not files (folders, broken links) are listed
    too, so that opening them reports them instead of skipping a frame silently."""
    files = [
        p
        for p in folder.iterdir()
        if p.suffix.lower() in IMAGE_SUFFIXES and not p.name.startswith(".")
    ]
    stems = [p.stem for p in files]
    if files and all(s.isdigit() for s in stems):
        return sorted(files, key=lambda p: (int(p.stem), p.name))
    return sorted(files, key=lambda p: p.name)


def _header(path: Path) -> tuple[str, int, int]:
    """``(mode, width, height)`` of an image, read from its header only."""
    from PIL import Image

    if path.is_dir():
        raise SourceError(f"{path} is a directory, not an image; move it out of the frame folder")
    if not path.exists():
        raise SourceError(f"{path} is a broken link; fix or remove it")
    try:
        with Image.open(path) as im:
            return im.mode, im.size[0], im.size[1]
    except OSError as exc:
        reason = exc.strerror if exc.strerror else first_line(exc)
        raise SourceError(f"cannot read image {path}: {reason}") from None
    except Exception as exc:  # decompression bombs, odd headers
        raise SourceError(f"cannot read image {path}: {first_line(exc)}") from None


class ImageFolderSource(FrameSource):
    """One frame per .jpg/.jpeg/.png file, decoded with Pillow on demand.

    8-bit images are decoded exactly as ``np.array(Image.open(p).convert("RGB"))`` (what SAM 2
    reads from a JPEG folder); 16-bit grayscale PNGs give uint16 (H, W) frames. Every image's
    header is read when the folder is opened: all must have the same size and bit depth.
    """

    kind = "folder"

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        channel: int | None = None,
        window: IntensityWindow | tuple[float, float] | None = None,
    ) -> None:
        folder = Path(path)
        if not folder.is_dir():
            raise SourceError(f"{folder}: not a folder")
        try:
            files = list_images(folder)
        except OSError as exc:
            raise SourceError(f"cannot list folder {folder}: {exc.strerror or first_line(exc)}") from None
        if not files:
            raise SourceError(
                f"{folder}: no images found (expected {', '.join(IMAGE_SUFFIXES)} files)"
            )
        mode, w, h = _header(files[0])
        gray16 = mode in _MODES_16BIT
        for p in files[1:]:  # every frame must match before a run can start
            other_mode, ow, oh = _header(p)
            if (ow, oh) != (w, h):
                raise SourceError(
                    f"{p}: image is {ow}x{oh} but {files[0].name} is {w}x{h}; all frames of a "
                    "folder must have the same size"
                )
            if (other_mode in _MODES_16BIT) != gray16:
                raise SourceError(
                    f"{p}: mode {other_mode} differs from {files[0].name} ({mode}); do not mix "
                    "16-bit and 8-bit images in one folder"
                )
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
        for t in sorted({0, self.num_frames - 1}):  # decodable, not only a valid header
            self.read(t)
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
            raise SourceError(f"cannot read image {p} (frame {t}): {first_line(exc)}") from None

    def _extra_description(self) -> dict[str, Any]:
        return {"first_file": self.files[0].name, "last_file": self.files[-1].name}
