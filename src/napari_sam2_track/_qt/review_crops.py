"""A strip of crops around an object on sampled frames of a masklet, for boundary checks.

:func:`masklet_crops` (no Qt) picks ``count`` frames spread evenly over the masklet (not only
keyframes), crops each frame around the object's mask with a margin and outlines the mask;
:class:`CropStrip` shows them as buttons that jump to their frame.
"""

from __future__ import annotations

import numpy as np
from qtpy.QtCore import QSize, Signal
from qtpy.QtGui import QIcon, QImage, QPixmap
from qtpy.QtWidgets import QHBoxLayout, QToolButton, QWidget

OUTLINE = (255, 0, 255)


def sample_frames(start: int, end: int, count: int) -> list[int]:
    """Up to ``count`` distinct frames spread evenly over ``start..end`` (both ends included)."""
    if count <= 0:
        return []
    return sorted({int(round(f)) for f in np.linspace(start, end, count)})


def _outline(mask: np.ndarray) -> np.ndarray:
    inner = mask.copy()
    inner[1:] &= mask[:-1]
    inner[:-1] &= mask[1:]
    inner[:, 1:] &= mask[:, :-1]
    inner[:, :-1] &= mask[:, 1:]
    return mask & ~inner


def crop_around(rgb: np.ndarray, mask: np.ndarray, size: int = 96, margin: float = 0.3) -> np.ndarray:
    """A ``(≤size, ≤size, 3)`` crop of ``rgb`` around ``mask`` (the whole frame when it is
    empty), the mask's outline drawn in magenta, scaled by nearest neighbour."""
    h, w = mask.shape
    ys, xs = np.nonzero(mask)
    if len(ys):
        pad = int(margin * max(ys.max() - ys.min() + 1, xs.max() - xs.min() + 1)) + 2
        y0, y1 = max(0, ys.min() - pad), min(h, ys.max() + pad + 1)
        x0, x1 = max(0, xs.min() - pad), min(w, xs.max() + pad + 1)
    else:
        y0, y1, x0, x1 = 0, h, 0, w
    crop = np.array(rgb[y0:y1, x0:x1], np.uint8)
    crop[_outline(mask[y0:y1, x0:x1])] = OUTLINE
    scale = size / max(crop.shape[:2])
    rows = np.minimum((np.arange(max(1, round(crop.shape[0] * scale))) / scale).astype(int), crop.shape[0] - 1)
    cols = np.minimum((np.arange(max(1, round(crop.shape[1] * scale))) / scale).astype(int), crop.shape[1] - 1)
    return np.ascontiguousarray(crop[rows][:, cols])


def masklet_crops(source, store, obj_id: int, start: int, end: int, count: int = 6,
                  size: int = 96) -> list[tuple[int, np.ndarray]]:
    """``(frame, crop)`` for ``count`` frames sampled over object ``obj_id``'s ``start..end``."""
    return [(t, crop_around(source.read_rgb(t), store.mask(obj_id, t), size))
            for t in sample_frames(start, end, count)]


class CropStrip(QWidget):
    """Crops of a masklet in a row; clicking one asks for its frame (``frame_clicked``)."""

    frame_clicked = Signal(int)

    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        self._layout = QHBoxLayout(self)
        self._layout.setContentsMargins(0, 0, 0, 0)
        self.buttons: list[QToolButton] = []

    def set_crops(self, crops: list[tuple[int, np.ndarray]]) -> None:
        for button in self.buttons:
            self._layout.removeWidget(button)
            button.deleteLater()
        self.buttons = []
        for frame, crop in crops:
            h, w = crop.shape[:2]
            image = QImage(crop.data, w, h, 3 * w, QImage.Format.Format_RGB888).copy()
            button = QToolButton()
            button.setIcon(QIcon(QPixmap.fromImage(image)))
            button.setIconSize(QSize(w, h))
            button.setToolTip(f"frame {frame}")
            button.setText(str(frame))
            button.clicked.connect(lambda _=False, t=frame: self.frame_clicked.emit(t))
            self._layout.addWidget(button)
            self.buttons.append(button)
