"""The Review dock's timeline: one row per object over the whole video, binned per pixel column.

Each row shows, from top to bottom: flags (reddish purple ticks), keyframes (yellow) and
hand-edited frames (sky blue), the presence strip (the presence logit: green where the object is
in a presence span, darker as the logit nears 0; grey where absent; black where never run), and
the QC band: approved solid blue, rejected vermillion with dark stripes, unreviewed (inside a
presence span) grey dots (Okabe–Ito colours, told apart by pattern as well as hue). The segment
being re-propagated by a correction is outlined (magenta while it runs, then white, until an
undo restores it). A column covers ``num_frames / width`` frames and shows the
worst of them (lowest logit, any flag), so drawing costs the same for 100 or 100,000 frames.

In a volume project the frames are planes ``t * Z + z``; the dock gives the timeline a window
(:meth:`ReviewTimeline.set_window`), the planes of the timepoint on screen, so its columns run
along z.
"""

from __future__ import annotations

import numpy as np
from types import SimpleNamespace

from qtpy.QtCore import QRect, QSize, Qt, Signal
from qtpy.QtGui import QColor, QImage, QPainter, QPen
from qtpy.QtWidgets import QSizePolicy, QWidget

from .review_data import ObjectTrack, ReviewData

ROW_HEIGHT = 20
LABEL_WIDTH = 36
TICK = 4  # height of the flag / keyframe band
QC_BAND = 4
# Okabe–Ito colours (distinguishable with the common colour-vision deficiencies)
APPROVED = (0, 114, 178)  # blue, solid
REJECTED = (213, 94, 0)  # vermillion, striped
UNREVIEWED = (150, 150, 150)  # grey, dotted
FLAG = (204, 121, 167)  # reddish purple
KEYFRAME = (240, 228, 66)  # yellow
EDITED = (86, 180, 233)  # sky blue
BACKGROUND = 40
LEGEND = ("QC band: ■ approved (blue, solid) · ▨ rejected (vermillion, striped) · ⋯ unreviewed "
          "(grey, dotted). Ticks: flags (purple), keyframes (yellow), edits (sky blue).")


def column_edges(num_frames: int, width: int) -> np.ndarray:
    """First frame of each of ``width`` columns, plus ``num_frames`` (columns may be empty
    when the video is shorter than the width: they repeat the previous frame)."""
    return np.minimum((np.arange(width + 1) * num_frames) // max(width, 1), num_frames)


def bin_min(values: np.ndarray, edges: np.ndarray) -> np.ndarray:
    """Per column the minimum of ``values`` over its frames (NaN-aware: NaN only if all NaN)."""
    starts = np.minimum(edges[:-1], len(values) - 1)
    filled = np.where(np.isnan(values), np.inf, values)
    out = np.minimum.reduceat(filled, starts)
    return np.where(np.isinf(out), np.nan, out)


def bin_max(values: np.ndarray, edges: np.ndarray) -> np.ndarray:
    """Per column the maximum of ``values`` over its frames."""
    return np.maximum.reduceat(values, np.minimum(edges[:-1], len(values) - 1))


def bin_any(frames: np.ndarray, ends: np.ndarray, num_frames: int, edges: np.ndarray) -> np.ndarray:
    """Per column whether any frame range ``[frames[i], ends[i]]`` touches it."""
    width = len(edges) - 1
    hit = np.zeros(width + 1, np.int64)
    if len(frames):
        scale = width / max(num_frames, 1)
        lo = np.clip((np.asarray(frames) * scale).astype(np.int64), 0, width - 1)
        hi = np.clip(np.ceil((np.asarray(ends) + 1) * scale).astype(np.int64) - 1, lo, width - 1)
        hit += np.bincount(lo, minlength=width + 1)[: width + 1]
        hit -= np.bincount(hi + 1, minlength=width + 1)[: width + 1]
    return np.cumsum(hit)[:width] > 0


def qc_band(track: ObjectTrack, num_frames: int, edges: np.ndarray) -> np.ndarray:
    """``(QC_BAND, width, 3)`` uint8: approved solid blue, rejected vermillion striped,
    unreviewed frames of presence spans grey dotted, the rest background."""
    width = len(edges) - 1
    band = np.full((QC_BAND, width, 3), BACKGROUND, np.uint8)
    columns = np.arange(width)
    spans = np.array([(s.start, s.end) for s in track.spans], np.int64).reshape(-1, 2)
    inside = bin_any(spans[:, 0], spans[:, 1], num_frames, edges)
    dots = inside & (columns % 3 == 0)
    band[1 : QC_BAND - 1, dots] = UNREVIEWED
    for ranges, colour, pattern in ((track.approved, APPROVED, None), (track.rejected, REJECTED, 4)):
        if not ranges:
            continue
        lo, hi = np.array(ranges, int).T
        hit = bin_any(lo, hi, num_frames, edges)
        band[:, hit] = colour
        if pattern:  # dark diagonal stripes
            for y in range(QC_BAND):
                band[y, hit & ((columns + y) % pattern == 0)] = BACKGROUND
    return band


def _clip_ranges(ranges, lo: int, hi: int) -> list[tuple[int, int]]:
    """``(start, end)`` ranges cut to ``lo..hi`` and shifted to start at 0."""
    return [(max(a, lo) - lo, min(b, hi) - lo) for a, b in ranges if b >= lo and a <= hi]


def window_track(track: ObjectTrack, lo: int, hi: int) -> SimpleNamespace:
    """What the timeline draws of ``track`` over frames ``lo..hi``, as frames ``0..hi-lo``."""
    edited = np.asarray(track.edited, int)
    keys = np.asarray(track.keyframes, int)
    return SimpleNamespace(
        id=track.id,
        presence=track.presence[lo:hi + 1],
        visible=track.visible[lo:hi + 1],
        edited=edited[(edited >= lo) & (edited <= hi)] - lo,
        keyframes=(keys[(keys >= lo) & (keys <= hi)] - lo).tolist(),
        flag_ranges=np.array(_clip_ranges(track.flag_ranges.tolist(), lo, hi), np.int64).reshape(-1, 2),
        spans=[SimpleNamespace(start=a, end=b)
               for a, b in _clip_ranges([(s.start, s.end) for s in track.spans], lo, hi)],
        approved=_clip_ranges(track.approved, lo, hi),
        rejected=_clip_ranges(track.rejected, lo, hi),
    )


def volume_axes(session, ndim: int):
    """How a volume session's planes map to the viewer's sliders (``None`` for a video, or
    when the viewer lacks the axes)."""
    axes = getattr(session, "plane_axes", None)
    volume = session is not None and session.store.is_volume
    return axes if volume and ndim >= axes.lead + 2 else None


def timepoint_window(axes, current_step) -> tuple[int, int] | None:
    """The planes of the timepoint on screen (a 3D + time project), else ``None``."""
    if axes is None or axes.lead < 2:
        return None
    t = int(current_step[0])
    return t * axes.n_z, t * axes.n_z + axes.n_z - 1


class ReviewTimeline(QWidget):
    """Presence, flags, keyframes, edits and QC of every object; a click asks for a frame.

    Signals:
        frame_clicked(object id, frame): the user clicked the row of an object at a frame.
    """

    frame_clicked = Signal(int, int)

    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        self.data: ReviewData | None = None
        self.current_frame = 0
        self.selected: int | None = None
        self.segment: tuple[int, int, int, bool] | None = None  # (object, start, end, running)
        self._cache: tuple[int, int, tuple | None, QImage] | None = None
        #: the frames shown, ``(first, last)``; ``None``: all of them
        self.window: tuple[int, int] | None = None
        self.setMinimumHeight(ROW_HEIGHT * 2)
        self.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Fixed)
        self.setToolTip("Click a row to jump there. '.' / ',' next / previous flag of the selected object.")

    # ----------------------------------------------------------------- state
    def set_data(self, data: ReviewData | None) -> None:
        self.data = data
        self._cache = None
        rows = len(data.tracks) if data is not None else 1
        self.setFixedHeight(max(rows, 1) * ROW_HEIGHT + 2)
        self.update()

    def set_window(self, window: tuple[int, int] | None) -> None:
        """Show frames ``first..last`` only (a volume's planes of one timepoint); ``None``: all."""
        window = None if window is None else (int(window[0]), int(window[1]))
        if window != self.window:
            self.window = window
            self.update()

    @property
    def first_shown(self) -> int:
        return 0 if self.window is None else self.window[0]

    @property
    def shown_frames(self) -> int:
        """How many frames the columns cover."""
        if self.window is not None:
            return self.window[1] - self.window[0] + 1
        return self.data.num_frames if self.data is not None else 1

    def set_current_frame(self, frame: int) -> None:
        if frame != self.current_frame:
            self.current_frame = frame
            self.update()

    def set_selected(self, obj_id: int | None) -> None:
        if obj_id != self.selected:
            self.selected = obj_id
            self.update()

    def set_segment(self, obj_id: int | None, start: int = 0, end: int = 0, running: bool = False) -> None:
        """Outline frames ``start..end`` of ``obj_id``'s row (``None``: no outline)."""
        segment = None if obj_id is None else (int(obj_id), int(start), int(end), bool(running))
        if segment != self.segment:
            self.segment = segment
            self.update()

    def segment_rect(self) -> QRect | None:
        """Where the segment outline is drawn (``None`` when there is none to draw)."""
        if self.segment is None or self.data is None:
            return None
        obj, start, end, _ = self.segment
        row = next((i for i, t in enumerate(self.data.tracks) if t.id == obj), None)
        if row is None:
            return None
        n = max(self.shown_frames, 1)
        start, end = start - self.first_shown, end - self.first_shown
        if end < 0 or start >= n:
            return None
        start, end = max(start, 0), min(end, n - 1)
        x0 = LABEL_WIDTH + int(start * self.plot_width / n)
        x1 = LABEL_WIDTH + int((end + 1) * self.plot_width / n) - 1
        return QRect(x0, row * ROW_HEIGHT, max(x1 - x0, 1), ROW_HEIGHT - 1)

    def sizeHint(self) -> QSize:  # noqa: N802 - Qt's name
        return QSize(400, self.height())

    # ------------------------------------------------------------ geometry
    @property
    def plot_width(self) -> int:
        return max(self.width() - LABEL_WIDTH, 1)

    def frame_at(self, x: float) -> int:
        n = self.shown_frames
        return self.first_shown + int(np.clip((x - LABEL_WIDTH) * n // self.plot_width, 0, max(n - 1, 0)))

    def x_of(self, frame: int) -> int:
        n = self.shown_frames
        return LABEL_WIDTH + int((frame - self.first_shown + 0.5) * self.plot_width / max(n, 1))

    def row_at(self, y: float) -> ObjectTrack | None:
        if self.data is None:
            return None
        i = int(y // ROW_HEIGHT)
        return self.data.tracks[i] if 0 <= i < len(self.data.tracks) else None

    # --------------------------------------------------------------- events
    def mousePressEvent(self, event) -> None:  # noqa: N802 - Qt's name
        pos = event.position() if hasattr(event, "position") else event.pos()
        track = self.row_at(pos.y())
        if track is None or pos.x() < LABEL_WIDTH:
            return
        self.frame_clicked.emit(track.id, self.frame_at(pos.x()))

    def _image(self) -> QImage:
        """The rows drawn once per data and width; the cursor is painted over it."""
        width = self.plot_width
        if self._cache is not None and self._cache[:3] == (width, id(self.data), self.window):
            return self._cache[3]
        data = self.data
        rows = len(data.tracks)
        rgb = np.zeros((rows * ROW_HEIGHT, width, 3), np.uint8)
        rgb[:] = 40
        n = self.shown_frames
        edges = column_edges(n, width)
        tracks = data.tracks if self.window is None else [window_track(t, *self.window) for t in data.tracks]
        for i, track in enumerate(tracks):
            y0 = i * ROW_HEIGHT + 1
            logit = bin_min(track.presence, edges)
            inside = bin_max(track.visible.view(np.uint8), edges).astype(bool)
            strip = np.empty((width, 3), np.uint8)
            strip[:] = (110, 110, 110)  # run, absent
            strip[np.isnan(logit)] = (0, 0, 0)  # never run
            level = np.clip(np.where(np.isnan(logit), 0.0, logit) / 8.0, 0.0, 1.0)
            green = (80 + 175 * level).astype(np.uint8)
            strip[inside] = np.stack([np.zeros_like(green), green, 60 * np.ones_like(green)], 1)[inside]
            rgb[y0 + TICK : y0 + ROW_HEIGHT - QC_BAND - 2] = strip
            ticks = np.zeros((width, 3), np.uint8)
            ticks[:] = 40
            marks = [
                ((np.array(track.edited), np.array(track.edited)), EDITED),
                ((np.array(track.keyframes, int), np.array(track.keyframes, int)), KEYFRAME),
                ((track.flag_ranges[:, 0], track.flag_ranges[:, 1]), FLAG),
            ]
            for (lo, hi), colour in marks:
                ticks[bin_any(lo, hi, n, edges)] = colour
            rgb[y0 : y0 + TICK] = ticks
            rgb[y0 + ROW_HEIGHT - QC_BAND - 1 : y0 + ROW_HEIGHT - 1] = qc_band(track, n, edges)
        rgb = np.ascontiguousarray(rgb)
        image = QImage(rgb.data, width, rgb.shape[0], 3 * width, QImage.Format.Format_RGB888).copy()
        self._cache = (width, id(self.data), self.window, image)
        return image

    def paintEvent(self, event) -> None:  # noqa: N802 - Qt's name
        painter = QPainter(self)
        painter.fillRect(self.rect(), QColor(30, 30, 30))
        if self.data is None or not self.data.tracks or self.data.num_frames == 0:
            painter.setPen(QColor(200, 200, 200))
            painter.drawText(self.rect(), Qt.AlignmentFlag.AlignCenter, "no objects to review")
            painter.end()
            return
        painter.drawImage(LABEL_WIDTH, 0, self._image())
        painter.setPen(QColor(220, 220, 220))
        for i, track in enumerate(self.data.tracks):
            rect = QRect(0, i * ROW_HEIGHT, LABEL_WIDTH - 4, ROW_HEIGHT)
            if track.id == self.selected:
                painter.fillRect(rect, QColor(70, 90, 140))
            painter.drawText(rect, Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter, str(track.id))
        rect = self.segment_rect()
        if rect is not None:
            painter.setPen(QPen(QColor(255, 0, 255) if self.segment[3] else QColor(255, 255, 255), 2))
            painter.drawRect(rect)
        painter.setPen(QPen(QColor(255, 255, 255), 1))
        x = self.x_of(self.current_frame)
        painter.drawLine(x, 0, x, self.height())
        painter.end()

