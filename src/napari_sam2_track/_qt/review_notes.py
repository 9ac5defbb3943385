"""The why and the who of the Review dock: the selected object's flags with their reasons, and
its QC decisions (reviewer, comment, whether each still holds), newest first."""

from __future__ import annotations

from typing import TYPE_CHECKING

from qtpy.QtCore import Qt, Signal
from qtpy.QtWidgets import QListWidget, QListWidgetItem, QSizePolicy

from ..review import DecisionStatus, Flag
from ..review.volume_flags import where

if TYPE_CHECKING:
    from ..project import ProjectStore

#: what a decision's status is called in the dock
STATUS_WORDS = {"satisfactory": "approved", "unsatisfactory": "rejected"}
#: marks that tell the statuses apart without colour
STATUS_MARKS = {"satisfactory": "✓", "unsatisfactory": "✗"}


def flag_text(flag: Flag, store: "ProjectStore | None" = None) -> str:
    """``frame 23 (20-25) area_drop: area shrinks by 58 %…``; on a volume project
    ``t 1 z 23 (t 1 z 20-25) z_area_jump: …``."""
    if store is not None and store.is_volume:
        t, z = store.plane_tz(flag.frame)
        span = f" ({where(store, flag.start, flag.end)})" if flag.end > flag.start else ""
        return f"t {t} z {z}{span} {flag.kind}: {flag.reason}"
    span = f" ({flag.start}-{flag.end})" if flag.end > flag.start else ""
    return f"frame {flag.frame}{span} {flag.kind}: {flag.reason}"


def flag_at(flags: list[Flag], frame: int) -> Flag | None:
    """The worst flag whose run covers ``frame`` (``None``: none)."""
    covering = [f for f in flags if f.start <= frame <= f.end]
    return max(covering, key=lambda f: f.score) if covering else None


def decision_text(status: DecisionStatus) -> str:
    """``✓ frames 0-29 approved by ana, 2026-05-04 10:12: "clean edges"`` (+ why it no longer holds)."""
    d = status.decision
    when = d.time.astimezone().strftime("%Y-%m-%d %H:%M")
    text = f"{STATUS_MARKS.get(d.status, '?')} frames {d.frames} {STATUS_WORDS.get(d.status, d.status)} " \
           f"by {d.reviewer}, {when}"
    if d.comment:
        text += f': "{d.comment}"'
    if status.invalidated_by is not None:
        text += f" — no longer holds: {status.invalidated_by.describe()}"
    return text


class _NoteList(QListWidget):
    """A short list whose rows ask for a frame when clicked; long rows in their tooltips."""

    frame_clicked = Signal(int)

    def __init__(self, empty: str, rows: int = 4):
        super().__init__()
        self.empty = empty
        self.setWordWrap(True)
        self.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Fixed)
        self.setFixedHeight(self.fontMetrics().lineSpacing() * rows * 2 + 8)
        self.itemClicked.connect(self._clicked)

    def _fill(self, rows: list[tuple[str, int | None]]) -> None:
        self.clear()
        if not rows:
            item = QListWidgetItem(self.empty)
            item.setFlags(Qt.ItemFlag.NoItemFlags)
            self.addItem(item)
            return
        for text, frame in rows:
            item = QListWidgetItem(text)
            item.setToolTip(text)
            item.setData(Qt.ItemDataRole.UserRole, frame)
            self.addItem(item)

    def texts(self) -> list[str]:
        return [self.item(i).text() for i in range(self.count())]

    def _clicked(self, item: QListWidgetItem) -> None:
        frame = item.data(Qt.ItemDataRole.UserRole)
        if frame is not None:
            self.frame_clicked.emit(int(frame))


class FlagList(_NoteList):
    """The selected object's flags, by frame, each with its reason; a click goes there."""

    def __init__(self):
        super().__init__("no flags for the selected object")
        self.setToolTip("Why each frame was flagged; click one to go there")

    def set_flags(self, flags: list[Flag], store: "ProjectStore | None" = None) -> None:
        """Show ``flags``; ``store`` names a volume project's planes as (t, z)."""
        self._fill([(flag_text(f, store), f.frame)
                    for f in sorted(flags, key=lambda f: (f.frame, f.kind))])


class DecisionList(_NoteList):
    """The selected object's QC decisions, newest first: who, when, the comment, and whether a
    later change ended it."""

    def __init__(self):
        super().__init__("no QC decisions for the selected object yet", rows=3)
        self.setToolTip("QC decisions of the selected object, newest first; click one to go to its first frame")

    def set_decisions(self, statuses: list[DecisionStatus]) -> None:
        ordered = sorted(statuses, key=lambda s: s.decision.time, reverse=True)
        self._fill([(decision_text(s), s.decision.start) for s in ordered])
