"""Dataset dock: the items of a dataset with stage, people, progress and who holds each project.

A thin view over :mod:`napari_sam2_track.dataset`. The dataset is read by
:func:`~napari_sam2_track.dataset.status.status` on napari's ``thread_worker`` every
:data:`POLL_MS` (and after each action), so changes made by other people and processes on the
shared folder appear without restarting; the GUI thread only draws the result. "Open next"
asks for the next item of the person named in "Me" (their own first, corrections first, else a
free item, which becomes theirs), opens its video and its project in this viewer.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from qtpy.QtCore import QTimer, Signal
from qtpy.QtWidgets import (
    QAbstractItemView,
    QCheckBox,
    QFileDialog,
    QHBoxLayout,
    QHeaderView,
    QLineEdit,
    QPushButton,
    QTableWidget,
    QTableWidgetItem,
)

from ._hub import report
from ._widgets import ScrollDock, StatusLine

POLL_MS = 3000
TABLE_COLUMNS = ("item", "stage", "assignee", "reviewer", "tracked", "QC %", "flags", "held by",
                 "problem")
PLUGIN = "napari-sam2-track"


def read_dataset(folder: str | Path) -> dict[str, Any]:
    """(Worker thread.) The dataset's status (see :func:`~..dataset.status.status`)."""
    from ..dataset import Dataset
    from ..dataset.status import status

    return status(Dataset.open(folder))


def claim_next(folder: str | Path, me: str) -> dict[str, Any] | None:
    """(Worker thread.) The next item of ``me`` (a free one becomes theirs), with its paths."""
    from ..dataset import Dataset
    from ..dataset.status import next_item

    ds = Dataset.open(folder)
    row = next_item(ds, me)
    if row is None:
        return None
    item = ds.item(row["id"])
    return {**row, "source": item.source, "project": item.project,
            "schema": None if item.project.exists() else ds.schema_path()}


class DatasetWidget(ScrollDock):
    """The items of a dataset, filtered to "mine" if asked, refreshed from the shared folder.

    Signals:
        refreshed(): the table shows freshly read data.
        item_opened(str): the item with this id was opened in the viewer.
    """

    refreshed = Signal()
    item_opened = Signal(str)

    def __init__(self, napari_viewer: Any):
        super().__init__()
        from ..review.models import default_reviewer

        self.viewer = napari_viewer
        self.folder: Path | None = None
        self.result: dict[str, Any] | None = None
        self.loading = False
        self._worker = None
        self._next_worker = None

        row = QHBoxLayout()
        self.folder_edit = QLineEdit()
        self.folder_edit.setPlaceholderText("dataset folder")
        self.folder_edit.returnPressed.connect(lambda: self.open_dataset(self.folder_edit.text()))
        browse = QPushButton("Open dataset...")
        browse.clicked.connect(self._browse)
        row.addWidget(self.folder_edit, 1)
        row.addWidget(browse)
        self.content_layout.addLayout(row)

        row = QHBoxLayout()
        self.me_edit = QLineEdit()
        try:
            self.me_edit.setText(default_reviewer())
        except Exception:  # noqa: BLE001 - a name that is not UTF-8: typed by hand then
            pass
        self.me_edit.setPlaceholderText("me (annotator name)")
        self.me_edit.textChanged.connect(lambda _t: self._draw())
        self.mine = QCheckBox("mine")
        self.mine.toggled.connect(lambda _on: self._draw())
        self.next_button = QPushButton("Open next")
        self.next_button.clicked.connect(self.open_next)
        row.addWidget(self.me_edit, 1)
        row.addWidget(self.mine)
        row.addWidget(self.next_button)
        self.content_layout.addLayout(row)

        self.table = QTableWidget(0, len(TABLE_COLUMNS))
        self.table.setHorizontalHeaderLabels(TABLE_COLUMNS)
        self.table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.table.horizontalHeader().setSectionResizeMode(QHeaderView.ResizeMode.ResizeToContents)
        self.table.verticalHeader().setVisible(False)
        self.content_layout.addWidget(self.table, 1)
        self.totals = StatusLine("", lines=2)
        self.content_layout.addWidget(self.totals)

        self.timer = QTimer(self)
        self.timer.setInterval(POLL_MS)
        self.timer.timeout.connect(self.refresh)
        self.message.set_text("Open a dataset folder (napari-sam2-track dataset init DIR).")

    # ---------------------------------------------------------------- reading
    def _browse(self) -> None:
        folder = QFileDialog.getExistingDirectory(self, "Dataset folder")
        if folder:
            self.open_dataset(folder)

    def open_dataset(self, folder: str | Path) -> None:
        """Show the dataset in ``folder`` and keep it up to date."""
        self.folder = Path(folder)
        self.folder_edit.setText(str(folder))
        self.result = None
        self.refresh()
        self.timer.start()

    def refresh(self) -> None:
        """Read the dataset on a worker (unless a read is in progress); draw when done."""
        if self.folder is None or self.loading:
            return
        from napari.qt.threading import thread_worker

        self.loading = True
        worker = thread_worker(read_dataset, start_thread=False)(self.folder)
        worker.returned.connect(self._loaded)
        worker.errored.connect(self._load_error)
        worker.finished.connect(self._load_finished)
        self._worker = worker
        worker.start()

    def _loaded(self, result: dict[str, Any]) -> None:
        self.result = result
        self.message.set_text(f"{result['name']}: {len(result['items'])} items, schema version "
                              f"{result['schema_version']}")
        self._draw()
        self.refreshed.emit()

    def _load_error(self, exc: BaseException) -> None:
        self.message.set_text(str(exc), error=True)

    def _load_finished(self) -> None:
        self.loading = False
        self._worker = None

    # ---------------------------------------------------------------- drawing
    def visible_rows(self) -> list[dict[str, Any]]:
        """The rows the table shows (all, or with "mine" the items of "Me", either role)."""
        if self.result is None:
            return []
        rows = self.result["items"]
        me = self.me_edit.text().strip()
        if self.mine.isChecked():
            rows = [r for r in rows if me and me in (r["assignee"], r["reviewer"])]
        return rows

    def _draw(self) -> None:
        rows = self.visible_rows()
        self.table.setRowCount(len(rows))
        for i, r in enumerate(rows):
            tracked = "-" if r["frames"] is None else f"{r['tracked_frames']}/{r['frames']}"
            cells = (r["id"], r["stage"].replace("_", " "), r["assignee"] or "",
                     r["reviewer"] or "", tracked,
                     "" if r["qc_coverage"] is None else f"{r['qc_coverage']:.0f}",
                     "" if r["open_flags"] is None else str(r["open_flags"]),
                     r["held_by"] or "", r["problem"])
            for j, text in enumerate(cells):
                cell = QTableWidgetItem(str(text))
                if j == len(cells) - 1 and text:
                    cell.setToolTip(str(text))
                self.table.setItem(i, j, cell)
        if self.result is not None:
            t = self.result["totals"]
            counts = ", ".join(f"{n} {s.replace('_', ' ')}" for s, n in t["stages"].items() if n)
            eta = "unknown" if t["eta_seconds"] is None else f"{t['eta_seconds'] / 3600:.1f} h"
            self.totals.set_text(f"{counts or 'no items'}; QC {t['covered_frames']}/"
                                 f"{t['visible_frames']} visible frames; ETA {eta}")

    # ---------------------------------------------------------------- next item
    def open_next(self) -> None:
        """Take the next item of "Me" (on a worker) and open it in the viewer."""
        me = self.me_edit.text().strip()
        if self.folder is None or not me or self._next_worker is not None:
            self.message.set_text("Open a dataset and type your name in 'me' first."
                                  if self.folder is None or not me else "Opening...")
            return
        from napari.qt.threading import thread_worker

        worker = thread_worker(claim_next, start_thread=False)(self.folder, me)
        worker.returned.connect(self._open_item)
        worker.errored.connect(self._error)
        worker.finished.connect(lambda: setattr(self, "_next_worker", None))
        self._next_worker = worker
        worker.start()

    def _open_item(self, row: dict[str, Any] | None) -> None:
        if row is None:
            self.message.set_text(f"Nothing to do for {self.me_edit.text().strip()}.")
            return
        try:
            self.open_item(row)
        except Exception as exc:  # noqa: BLE001 - shown as one line
            self._error(exc)
            return
        self.message.set_text(f"Opened {row['id']} ({row['stage'].replace('_', ' ')}).")
        self.item_opened.emit(row["id"])
        self.refresh()

    def open_item(self, row: dict[str, Any]) -> None:
        """Add the item's video and open its project in the Prompt and Propagate dock."""
        from .. import _napari_io as io
        from ..sources import open_source

        source = open_source(row["source"])
        data, kwargs, kind = io.image_layer_data(source, name=row["id"])
        image = getattr(self.viewer, f"add_{kind}")(data, **kwargs)
        _dw, prompt_dock = self.viewer.window.add_plugin_dock_widget(PLUGIN, "Prompt and Propagate")
        if row.get("schema") is not None:
            from ..schema import Schema

            prompt_dock.hub.schema = Schema.load(row["schema"])
        prompt_dock.select_image(image.name)
        prompt_dock.open_project(row["project"], layer=image, background=True)

    def _error(self, exc: BaseException) -> None:
        self.message.set_text(str(exc), error=True)
        report(exc)

    def closeEvent(self, event) -> None:  # noqa: N802 - Qt's name
        self.timer.stop()
        super().closeEvent(event)
