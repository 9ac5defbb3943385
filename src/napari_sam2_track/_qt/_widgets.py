"""Small widgets the docks share: status lines that never resize a dock, collapsible sections
and the scroll area every dock's content sits in."""

from __future__ import annotations

from qtpy.QtCore import QEvent, Qt
from qtpy.QtGui import QFontMetrics
from qtpy.QtWidgets import (
    QFrame,
    QLabel,
    QScrollArea,
    QSizePolicy,
    QToolButton,
    QVBoxLayout,
    QWidget,
)

ERROR_STYLE = "color: #ff6b6b;"
#: Widest a dock's column asks to be at start (pixels); the user may drag it wider.
DOCK_WIDTH = 380


class StatusLine(QLabel):
    """A status text of a fixed height (``lines`` lines) whose length never changes the size
    of the dock: longer text is elided, the whole of it is in the tooltip (and :attr:`full_text`).

    ``set_text(text, error=True)`` shows it in the error colour.
    """

    def __init__(self, text: str = "", lines: int = 1, parent: QWidget | None = None):
        super().__init__(parent)
        self.lines = max(1, int(lines))
        self.full_text = ""
        self.is_error = False
        self.setWordWrap(self.lines > 1)
        self.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Fixed)
        self.setMinimumWidth(40)
        self.setAlignment(Qt.AlignmentFlag.AlignLeft | Qt.AlignmentFlag.AlignTop)
        self._fit_height()
        self.set_text(text)

    def _fit_height(self) -> None:
        """Room for :attr:`lines` lines of the current font (a style sheet may change it)."""
        margins = self.contentsMargins()
        height = (QFontMetrics(self.font()).lineSpacing() * self.lines + 2 * self.margin() + 4
                  + margins.top() + margins.bottom())
        if height != self.height() or self.minimumHeight() != height:
            self.setFixedHeight(height)

    def setContentsMargins(self, *args) -> None:  # noqa: N802 - Qt's name
        super().setContentsMargins(*args)
        self._fit_height()

    def changeEvent(self, event) -> None:  # noqa: N802 - Qt's name
        super().changeEvent(event)
        if event.type() in (QEvent.Type.FontChange, QEvent.Type.StyleChange, QEvent.Type.PolishRequest):
            self._fit_height()
            self._elide()

    def showEvent(self, event) -> None:  # noqa: N802 - Qt's name
        super().showEvent(event)
        self._fit_height()
        self._elide()

    def set_text(self, text: str, error: bool = False) -> None:
        """Show ``text`` (elided to the line's room; all of it in the tooltip)."""
        self.full_text = str(text)
        self.is_error = bool(error)
        self.setStyleSheet(ERROR_STYLE if error else "")
        self.setToolTip(self.full_text)
        self._elide()

    def setText(self, text: str) -> None:  # noqa: N802 - Qt's name, for callers of QLabel's API
        self.set_text(text, error=self.is_error and text == self.full_text)

    def text(self) -> str:
        """The whole text (what is shown may be elided)."""
        return self.full_text

    def text_shown(self) -> str:
        return super().text()

    def resizeEvent(self, event) -> None:  # noqa: N802 - Qt's name
        super().resizeEvent(event)
        self._elide()

    def _elide(self) -> None:
        metrics = QFontMetrics(self.font())
        width = max(self.contentsRect().width(), 40)
        text = " ".join(self.full_text.split()) if self.lines > 1 else self.full_text.replace("\n", " ")
        if self.lines == 1:
            shown = metrics.elidedText(text, Qt.TextElideMode.ElideRight, width)
        else:
            shown = self._elide_wrapped(metrics, text, width)
        QLabel.setText(self, shown)

    def _elide_wrapped(self, metrics: QFontMetrics, text: str, width: int) -> str:
        """The longest start of ``text`` (then "…") that wraps into ``lines`` lines."""
        room = metrics.lineSpacing() * self.lines + metrics.lineSpacing() // 2  # not one more line

        def fits(candidate: str) -> bool:
            flags = int(Qt.TextFlag.TextWordWrap.value if hasattr(Qt.TextFlag.TextWordWrap, "value")
                        else Qt.TextFlag.TextWordWrap)
            return metrics.boundingRect(0, 0, width, 10_000, flags, candidate).height() <= room

        if fits(text):
            return text
        lo, hi = 0, len(text)
        while lo < hi:  # binary search on the cut
            mid = (lo + hi + 1) // 2
            if fits(text[:mid].rstrip() + "…"):
                lo = mid
            else:
                hi = mid - 1
        return text[:lo].rstrip() + "…"


class Section(QWidget):
    """A titled part of a dock that collapses to its title (click the title).

    ``section.body`` is the widget shown when expanded; ``section.toggle`` the title button.
    """

    def __init__(self, title: str, body: QWidget, expanded: bool = True, parent: QWidget | None = None):
        super().__init__(parent)
        self.body = body
        self.toggle = QToolButton()
        self.toggle.setText(title)
        self.toggle.setCheckable(True)
        self.toggle.setToolButtonStyle(Qt.ToolButtonStyle.ToolButtonTextBesideIcon)
        self.toggle.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Fixed)
        self.toggle.setStyleSheet("QToolButton { border: none; font-weight: bold; text-align: left; }")
        self.toggle.toggled.connect(self.set_expanded)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 2, 0, 2)
        layout.setSpacing(2)
        layout.addWidget(self.toggle)
        layout.addWidget(body)
        self.toggle.setChecked(expanded)
        self.set_expanded(expanded)

    @property
    def title(self) -> str:
        return self.toggle.text()

    def is_expanded(self) -> bool:
        return self.toggle.isChecked()

    def set_expanded(self, expanded: bool) -> None:
        if self.toggle.isChecked() != expanded:
            self.toggle.setChecked(expanded)  # calls back here
            return
        self.toggle.setArrowType(Qt.ArrowType.DownArrow if expanded else Qt.ArrowType.RightArrow)
        self.body.setVisible(expanded)


def scrolled(content: QWidget) -> QScrollArea:
    """``content`` in a scroll area that lets the dock be any height (sideways scrolling only
    when the dock is made narrower than its content)."""
    area = QScrollArea()
    area.setWidgetResizable(True)
    area.setFrameShape(QFrame.Shape.NoFrame)
    area.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAsNeeded)
    area.setWidget(content)
    area.setSizePolicy(QSizePolicy.Policy.Preferred, QSizePolicy.Policy.Expanding)
    area.setMinimumHeight(80)
    return area


class ScrollDock(QWidget):
    """Base of the docks: a fixed message line on top, then the content in a scroll area.

    Subclasses lay out :attr:`content` (a ``QVBoxLayout`` in :attr:`content_layout`). The dock
    asks for :data:`DOCK_WIDTH` pixels and can be made as small as a title, so it never grows
    napari's window.
    """

    def __init__(self) -> None:
        super().__init__()
        outer = QVBoxLayout(self)
        outer.setContentsMargins(0, 0, 0, 0)
        outer.setSpacing(2)
        #: what to do next, or the last error (three lines at most)
        self.message = StatusLine("", lines=3)
        self.message.setContentsMargins(6, 2, 6, 0)
        outer.addWidget(self.message)
        self.content = QWidget()
        self.content_layout = QVBoxLayout(self.content)
        self.content_layout.setContentsMargins(4, 0, 4, 4)
        self.scroll_area = scrolled(self.content)
        outer.addWidget(self.scroll_area, 1)
        self.setMinimumWidth(220)

    def add_section(self, title: str, body: QWidget, expanded: bool = True) -> Section:
        section = Section(title, body, expanded)
        self.content_layout.addWidget(section)
        return section

    def sections(self) -> list[Section]:
        return self.content.findChildren(Section)

    def sizeHint(self):  # noqa: N802 - Qt's name
        hint = super().sizeHint()
        hint.setWidth(DOCK_WIDTH)
        return hint

    def minimumSizeHint(self):  # noqa: N802 - Qt's name
        """As narrow as the content allows (up to :data:`DOCK_WIDTH`: narrower content scrolls
        sideways), a few lines tall."""
        from qtpy.QtCore import QSize
        from qtpy.QtWidgets import QStyle

        bar = self.style().pixelMetric(QStyle.PixelMetric.PM_ScrollBarExtent)
        return QSize(min(max(self.content.minimumSizeHint().width() + bar + 4, 220), DOCK_WIDTH), 160)
