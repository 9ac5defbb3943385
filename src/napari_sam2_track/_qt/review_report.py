"""The Review dock's Report box: the effort table and a plot beside the SAM 2 paper's rows.

The plot is drawn with matplotlib's Agg renderer into an image on the worker that reads the
project (:func:`render_report_plot`); the GUI thread only shows the image. Three panels, the
measures of the SAM 2 paper's data-engine table: seconds per annotated frame, % frames edited
and clicks per clicked frame, one bar per annotator, the project, and the paper's two rows.
"""

from __future__ import annotations

import numpy as np
from qtpy.QtCore import Qt
from qtpy.QtGui import QImage, QPixmap
from qtpy.QtWidgets import (
    QAbstractItemView,
    QDialog,
    QGroupBox,
    QHeaderView,
    QLabel,
    QPushButton,
    QScrollArea,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
)

REPORT_COLUMNS = (
    ("who", "who"), ("seconds_per_frame", "s / frame"), ("percent_frames_edited", "% edited"),
    ("clicks_per_clicked_frame", "clicks / clicked frame"),
    ("corrections_per_object", "corrections / object"),
    ("review_seconds_per_masklet", "review s / masklet"), ("frames_propagated_per_prompt", "frames / prompt"),
)
#: The panels of the plot: (report key, title).
PLOT_MEASURES = (
    ("seconds_per_frame", "s / annotated frame"),
    ("percent_frames_edited", "% frames edited"),
    ("clicks_per_clicked_frame", "clicks / clicked frame"),
)
PLOT_SIZE = (560, 210)  # pixels
REFERENCE_COLOUR = "#9e9e9e"
PROJECT_COLOUR = "#1f77b4"
ANNOTATOR_COLOUR = "#ff7f0e"


def _short(who: str) -> str:
    return {"frame by frame (SAM 1), SAM 2 paper": "paper: SAM 1", "SAM 2, SAM 2 paper": "paper: SAM 2"}.get(who, who)


def plot_values(rows: list[dict]) -> list[tuple[str, list[float | None]]]:
    """``(who, [value per measure])`` of every report row, in the plot's order."""
    return [(_short(str(r["who"])), [r.get(key) for key, _ in PLOT_MEASURES]) for r in rows]


class ReportPlot:
    """Draws report rows as bar charts into an RGBA image (matplotlib's Agg renderer, no GUI
    backend, so it may run on a worker; one thread at a time).

    The figure is built once per set of rows (names) and only its bars and labels change
    afterwards; an unchanged report returns the previous image. Building a figure creates tens
    of thousands of Python objects, and on a large heap the collections they trigger hold the
    interpreter lock long enough to stall the GUI thread: the reuse keeps refreshes cheap.
    """

    def __init__(self, size: tuple[int, int] = PLOT_SIZE):
        self.size = size
        self._values: list | None = None
        self._image: np.ndarray | None = None
        self._names: list[str] | None = None
        self._fig = None
        self._bars: list = []
        self._labels: list = []

    def render(self, rows: list[dict]) -> np.ndarray | None:
        """The image of ``rows`` (``None`` without rows or without matplotlib)."""
        if not rows:
            return None
        values = plot_values(rows)
        if values == self._values:
            return self._image
        names = [who for who, _ in values]
        try:
            if names != self._names:
                self._build(names)
        except ImportError:
            return None
        for i, ax in enumerate(self._axes):
            bars = np.array([np.nan if v[i] is None else float(v[i]) for _, v in values])
            for bar, label, v in zip(self._bars[i], self._labels[i], bars):
                bar.set_width(0.0 if np.isnan(v) else v)
                label.set_text(" –" if np.isnan(v) else f" {v:.3g}")
            top = np.nanmax(bars) if np.isfinite(bars).any() else 1.0
            ax.set_xlim(0, max(top, 1e-9) * 1.05)
        self._fig.canvas.draw()
        self._values = values
        self._image = np.asarray(self._fig.canvas.buffer_rgba()).copy()
        return self._image

    def _build(self, names: list[str]) -> None:
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure

        colours = [REFERENCE_COLOUR if who.startswith("paper:") else
                   PROJECT_COLOUR if who == "project" else ANNOTATOR_COLOUR for who in names]
        dpi = 100
        fig = Figure(figsize=(self.size[0] / dpi, self.size[1] / dpi), dpi=dpi, facecolor="#262930")
        FigureCanvasAgg(fig)
        self._axes = fig.subplots(1, len(PLOT_MEASURES))
        y = np.arange(len(names))
        self._bars, self._labels = [], []
        for i, (ax, (_, title)) in enumerate(zip(self._axes, PLOT_MEASURES)):
            self._bars.append(list(ax.barh(y, np.zeros(len(names)), color=colours)))
            self._labels.append([ax.text(0, yy, "", va="center", fontsize=7, color="white") for yy in y])
            ax.set_title(title, fontsize=8, color="white")
            ax.set_yticks(y, names if i == 0 else [""] * len(names), fontsize=7, color="white")
            ax.set_ylim(len(names) - 0.5, -0.5)
            ax.tick_params(axis="x", labelsize=6, colors="white")
            ax.set_facecolor("#1e1f24")
            for spine in ax.spines.values():
                spine.set_color("#606060")
        fig.subplots_adjust(left=0.2, right=0.98, top=0.86, bottom=0.12, wspace=0.12)
        self._fig, self._names = fig, names


def render_report_plot(rows: list[dict], size: tuple[int, int] = PLOT_SIZE) -> np.ndarray | None:
    """The report as bar charts, an RGBA ``(h, w, 4)`` uint8 image (``None`` without rows or
    without matplotlib); see :class:`ReportPlot`, which keeps its figure between calls."""
    return ReportPlot(size).render(rows)


#: rows the report table shows without scrolling
TABLE_ROWS = 6
PLOT_TIP = ("Seconds per annotated frame, % frames edited and clicks per clicked frame,\n"
            "per annotator (orange), the project (blue) and the SAM 2 paper (grey)")


def _report_table() -> QTableWidget:
    table = QTableWidget(0, len(REPORT_COLUMNS))
    table.setHorizontalHeaderLabels([title for _, title in REPORT_COLUMNS])
    table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
    table.horizontalHeader().setSectionResizeMode(QHeaderView.ResizeMode.ResizeToContents)
    table.verticalHeader().setVisible(False)
    return table


def _fit_rows(table: QTableWidget, rows: int) -> None:
    """Make ``table`` tall enough for ``rows`` rows (and its header and scroll bar)."""
    row_height = table.verticalHeader().defaultSectionSize()
    header = table.horizontalHeader().sizeHint().height()
    bar = table.horizontalScrollBar().sizeHint().height()
    table.setFixedHeight(header + row_height * max(1, rows) + bar + 2 * table.frameWidth() + 2)


class ReportWindow(QDialog):
    """The report in a window of its own: the whole table and the plot at full size."""

    def __init__(self, parent=None):
        super().__init__(parent)
        self.setWindowTitle("Annotation effort report")
        layout = QVBoxLayout(self)
        self.table = _report_table()
        self.plot = QLabel()
        self.plot.setToolTip(PLOT_TIP)
        layout.addWidget(self.table, 1)
        layout.addWidget(self.plot)
        self.resize(980, 560)


class ReportBox(QGroupBox):
    """The effort report: a table (annotators, project, the paper's rows) and the plot, both
    in the dock (the plot scrolls sideways) and, with *Open in a window*, at full size."""

    def __init__(self):
        super().__init__("Report")
        layout = QVBoxLayout(self)
        self.table = _report_table()
        _fit_rows(self.table, 3)
        self.plot = QLabel("no interactions logged yet")
        self.plot.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.plot.setToolTip(PLOT_TIP)
        self.plot_area = QScrollArea()
        self.plot_area.setWidget(self.plot)
        self.plot_area.setWidgetResizable(True)
        self.plot_area.setFixedHeight(PLOT_SIZE[1] + 24)
        self.window_btn = QPushButton("Open in a window")
        self.window_btn.setToolTip("The report table and plot at full size")
        self.window_btn.clicked.connect(self.open_window)
        self.window: ReportWindow | None = None
        self.plotted: list[tuple[str, list[float | None]]] = []
        self._shown: tuple[list[dict], np.ndarray | None, str] = ([], None, "")
        layout.addWidget(self.table)
        layout.addWidget(self.plot_area)
        layout.addWidget(self.window_btn)

    def open_window(self) -> ReportWindow:
        """Show the report in its own window (kept up to date while open)."""
        if self.window is None:
            self.window = ReportWindow(self)
        self.window.show()
        self.window.raise_()
        self._fill(self.window.table, self.window.plot, *self._shown)
        return self.window

    def show_report(self, rows: list[dict], image: np.ndarray | None, error: str = "") -> None:
        """Fill the table with ``rows`` and show ``image`` (from :func:`render_report_plot`)."""
        self._shown = (rows, image, error)
        self.plotted = plot_values(rows) if image is not None else []
        self._fill(self.table, self.plot, rows, image, error)
        _fit_rows(self.table, min(max(len(rows), 3), TABLE_ROWS))
        if self.window is not None and self.window.isVisible():
            self._fill(self.window.table, self.window.plot, rows, image, error)

    @staticmethod
    def _fill(table: QTableWidget, plot: QLabel, rows: list[dict], image: np.ndarray | None, error: str) -> None:
        table.setRowCount(len(rows))
        for r, row in enumerate(rows):
            for c, (key, _) in enumerate(REPORT_COLUMNS):
                value = row.get(key)
                text = f"{value:.2f}" if isinstance(value, float) else ("–" if value is None else str(value))
                table.setItem(r, c, QTableWidgetItem(text))
        table.setToolTip(f"report unavailable: {error}" if error else "")
        if image is None:
            plot.setPixmap(QPixmap())
            plot.setText(error or "no interactions logged yet")
            return
        h, w = image.shape[:2]
        qimage = QImage(np.ascontiguousarray(image).data, w, h, 4 * w, QImage.Format.Format_RGBA8888).copy()
        plot.setPixmap(QPixmap.fromImage(qimage))
