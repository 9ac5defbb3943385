"""Review by keyboard: the Review dock's keys, bound on the viewer only while the dock is shown.

:class:`ReviewKeys` watches the dock's show and hide events: when it becomes visible every key
of :data:`REVIEW_KEYS` is bound on the viewer (``viewer.bind_key(..., overwrite=True)``, which
returns the binding it replaced); when it is hidden (another tab in front, the dock closed) the
keys are unbound and the replaced bindings put back. A key press only calls the dock's own
actions (the same as its buttons), so every decision goes through the QC path and its
``review`` event counts in the analytics as a click on the button does.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from qtpy.QtCore import QEvent, QObject

#: ``(key, what it does, action)``; the action is the name of a :class:`ReviewKeys` method.
REVIEW_KEYS: tuple[tuple[str, str, str], ...] = (
    (".", "next flag of the selected object", "next_flag"),
    (",", "previous flag of the selected object", "previous_flag"),
    ("PageDown", "next masklet in the correction queue", "next_masklet"),
    ("PageUp", "previous masklet in the correction queue", "previous_masklet"),
    ("Alt-A", "approve the masklet at the current frame", "approve"),
    ("Alt-R", "reject it, with the comment typed (else the last one)", "reject"),
    ("Alt-O", "adopt the second opinion (its disagreeing run at the frame, else the masklet)", "adopt"),
    ("Alt-U", "undo the selected object's last correction", "undo"),
    ("Alt-B", "restore the version chosen in History, else the previous version", "restore_previous"),
)


def help_text() -> str:
    """The keys as the dock's help lists them, one a line."""
    width = max(len(k) for k, _, _ in REVIEW_KEYS)
    return "\n".join(f"{key:<{width}}  {what}" for key, what, _ in REVIEW_KEYS)


class ReviewKeys(QObject):
    """The keys of one Review dock, bound on its viewer while the dock is shown."""

    def __init__(self, dock: Any):
        super().__init__(dock)
        self.dock = dock
        self.viewer = dock.viewer
        self.last_comment = ""
        #: key -> (our handler, the binding it replaced or None), while bound
        self._bound: dict[str, tuple[Callable, Callable | None]] = {}
        for button in (dock.approve_button, dock.reject_button):
            button.pressed.connect(self._remember_comment)  # before the decision clears it
        dock.installEventFilter(self)
        if dock.isVisible():
            self.bind()

    @property
    def bound(self) -> bool:
        return bool(self._bound)

    # ----------------------------------------------------------- binding
    def bind(self) -> None:
        """Bind every review key on the viewer (keeping the bindings they replace)."""
        if self._bound:
            return
        for key, _, action in REVIEW_KEYS:
            handler = self._handler(action)
            self._bound[key] = (handler, self.viewer.bind_key(key, handler, overwrite=True))

    def unbind(self) -> None:
        """Unbind the review keys and put back the bindings they replaced."""
        from napari.utils.key_bindings import coerce_keybinding

        bound, self._bound = self._bound, {}
        for key, (handler, previous) in bound.items():
            if self.viewer.keymap.get(coerce_keybinding(key)) is not handler:
                continue  # someone bound the key since: theirs stays
            self.viewer.bind_key(key, None)
            if previous is not None:
                self.viewer.bind_key(key, previous, overwrite=True)

    def eventFilter(self, obj: QObject, event: QEvent) -> bool:  # noqa: N802 - Qt's name
        if obj is self.dock:
            kind = event.type()
            if kind == QEvent.Type.Show:
                self.bind()
            elif kind in (QEvent.Type.Hide, QEvent.Type.Close):
                self.unbind()
        return False

    def _handler(self, action: str) -> Callable:
        method = getattr(self, action)

        def on_key(_viewer) -> None:
            try:
                method()
            except RuntimeError as exc:  # the dock was deleted: the key does nothing
                if "deleted" not in str(exc):
                    self.dock._error(exc)
            except Exception as exc:  # noqa: BLE001 - shown to the user as a button's error is
                self.dock._error(exc)

        on_key.__name__ = f"review_{action}"
        return on_key

    # ----------------------------------------------------------- actions
    def next_flag(self) -> None:
        self.dock.next_flag(1)

    def previous_flag(self) -> None:
        self.dock.next_flag(-1)

    def next_masklet(self) -> None:
        self.dock.next_correction(1)

    def previous_masklet(self) -> None:
        self.dock.next_correction(-1)

    def approve(self) -> None:
        self._remember_comment()
        self.dock.decide("satisfactory")

    def reject(self) -> None:
        typed = self.dock.comment_edit.text().strip()
        if not typed and self.last_comment:
            self.dock.comment_edit.setText(self.last_comment)
        self._remember_comment()
        self.dock.decide("unsatisfactory")

    def adopt(self) -> None:
        self.dock.second_box.adopt()

    def undo(self) -> None:
        self.dock.correct_box.undo()

    def restore_previous(self) -> None:
        """Restore the version chosen in the History list, else the newest one (as Undo)."""
        if self.dock.history_box.chosen() is not None:
            self.dock.history_box.restore()
        else:
            self.dock.correct_box.undo()

    def _remember_comment(self) -> None:
        text = self.dock.comment_edit.text().strip()
        if text:
            self.last_comment = text
