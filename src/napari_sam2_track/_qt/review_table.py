"""The Review dock's object table: one row per object, QC status and flags first, sortable by
value."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from qtpy.QtCore import Qt
from qtpy.QtGui import QColor
from qtpy.QtWidgets import QTableWidget, QTableWidgetItem

from .review_notes import flag_text
from .review_timeline import APPROVED, REJECTED

if TYPE_CHECKING:
    from ..project import ProjectStore
    from .review_data import ObjectTrack

#: what needs a look first comes first: QC and flags without scrolling sideways
TABLE_COLUMNS = ("id", "name", "QC status", "flags", "flags by kind", "frames present", "first", "last",
                 "keyframes", "category")
#: background of the QC status cell, by its first word (the timeline's colours)
QC_COLOURS = {"approved": APPROVED, "partly": APPROVED, "rejected": REJECTED}


class _Item(QTableWidgetItem):
    """A cell that sorts by its value (numbers as numbers)."""

    def __init__(self, value: Any):
        super().__init__("" if value is None else str(value))
        self.value = value

    def __lt__(self, other: QTableWidgetItem) -> bool:
        a, b = self.value, getattr(other, "value", other.text())
        try:
            return (a is None, a) < (b is None, b)
        except TypeError:
            return str(a) < str(b)


def fill_object_table(table: QTableWidget, tracks: "list[ObjectTrack]",
                      store: "ProjectStore | None") -> None:
    """One row per track (each cell holds the object id as user data); ``store`` names a volume
    project's flags by (t, z) in the tooltips."""
    table.setSortingEnabled(False)
    table.setRowCount(len(tracks))
    for row, t in enumerate(tracks):
        counts = t.flag_counts()
        cells = {"id": t.id, "name": t.spec.name, "category": t.spec.category,
                 "frames present": t.frames_present, "first": t.first_frame, "last": t.last_frame,
                 "keyframes": len(t.keyframes), "flags": len(t.flags),
                 "flags by kind": ", ".join(f"{k} {v}" for k, v in sorted(counts.items())),
                 "QC status": t.qc_status()}
        for col, name in enumerate(TABLE_COLUMNS):
            item = _Item(cells[name])
            item.setData(Qt.ItemDataRole.UserRole, t.id)
            if name == "QC status":
                colour = QC_COLOURS.get(str(cells[name]).split(" ")[0])
                if colour is not None:
                    item.setBackground(QColor(*colour))
                    item.setForeground(QColor(255, 255, 255))
                if t.invalidated:
                    item.setToolTip("invalidated:\n" + "\n".join(t.invalidated))
            if name == "flags" and t.flags:
                item.setToolTip("\n".join(flag_text(f, store) for f in t.flags[:20]))
            table.setItem(row, col, item)
    table.setSortingEnabled(True)
