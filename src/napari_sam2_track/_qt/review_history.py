"""The Review dock's History box: the track versions of the selected object, and Restore.

Every propagation, correction, hand edit, undo and restore of an object is a version
(:mod:`napari_sam2_track.project.versions`). The box lists the selected object's versions
(read on a worker) and **Restore** brings the object back to how it was before the chosen one,
on the session's compute thread; the restore is a version too. The GUI thread only draws.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from qtpy.QtCore import Qt, Signal
from qtpy.QtWidgets import QGroupBox, QHBoxLayout, QListWidget, QListWidgetItem, QPushButton, QVBoxLayout

from ._gui_thread import SessionLink, on_gui_thread
from ._widgets import StatusLine


def version_text(v) -> str:
    """One line for a :class:`~napari_sam2_track.project.versions.VersionInfo`."""
    frames = ", ".join(f"{a}-{b}" if a != b else f"{a}" for a, b in v.frames[:3]) or "-"
    if len(v.frames) > 3:
        frames += f" (+{len(v.frames) - 3})"
    who = f" by {v.who}" if v.who else ""
    return f"{v.number}  {v.kind}  frames {frames}{who}  {v.time[:19]}  {v.bytes / 1024:.0f} KiB"


class HistoryBox(QGroupBox):
    """Versions of the selected object of the open session.

    Signals:
        loaded(list): the versions shown (oldest first), after each read.
    """

    loaded = Signal(list)

    def __init__(self, on_error: Callable[[BaseException], Any]):
        super().__init__("History")
        self.on_error = on_error
        self.session = None
        self.selected: int | None = None
        self.versions: list = []
        self._worker = None
        self._link = SessionLink()
        layout = QVBoxLayout(self)
        self.list = QListWidget()
        self.list.setToolTip("Versions of the selected object, newest first: each holds what its change replaced")
        self.list.currentRowChanged.connect(lambda *_: self._update_button())
        self.status_label = StatusLine("select an object", lines=1)
        row = QHBoxLayout()
        self.restore_button = QPushButton("Restore")
        self.restore_button.setToolTip("Bring the object back to how it was before the chosen version\n"
                                       "(masks, table rows, prompts); the restore is a version too")
        self.restore_button.clicked.connect(self.restore)
        self.restore_button.setEnabled(False)
        row.addWidget(self.status_label, 1)
        row.addWidget(self.restore_button)
        layout.addWidget(self.list)
        layout.addLayout(row)

    def attach(self, session) -> None:
        """Follow ``session`` (``None``: none)."""
        self._link.disconnect_all()
        self.session = session
        self.selected = None
        self._show([])
        if session is not None:
            for signal in (session.events.correction_finished, session.events.run_finished):
                self._link.connect(signal, lambda *_: self.reload())

    def detach(self) -> None:
        self._link.disconnect_all()
        self.session = None

    def set_selected(self, obj_id: int | None) -> None:
        if obj_id != self.selected:
            self.selected = obj_id
            self.reload()

    def reload(self) -> None:
        """Read the selected object's versions on a worker."""
        if self.session is None or self.selected is None:
            self._show([])
            return
        from napari.qt.threading import thread_worker

        from ..project.versions import list_versions

        obj = self.selected
        worker = thread_worker(list_versions, start_thread=False)(self.session.store, obj)
        worker.returned.connect(lambda versions: self._show(versions) if obj == self.selected else None)
        worker.errored.connect(self.on_error)
        self._worker = worker
        worker.start()

    def _show(self, versions: list) -> None:
        self.versions = list(versions)
        self.list.clear()
        for v in reversed(self.versions):
            item = QListWidgetItem(version_text(v))
            item.setData(Qt.UserRole, v.number)
            self.list.addItem(item)
        if self.selected is None:
            self.status_label.setText("select an object")
        else:
            self.status_label.setText(f"object {self.selected}: {len(self.versions)} versions")
        self._update_button()
        self.loaded.emit(self.versions)

    def chosen(self) -> int | None:
        item = self.list.currentItem()
        return None if item is None else int(item.data(Qt.UserRole))

    def _update_button(self) -> None:
        self.restore_button.setEnabled(self.session is not None and self.chosen() is not None)

    def restore(self) -> None:
        """Restore the chosen version of the selected object (on the compute thread)."""
        number = self.chosen()
        if self.session is None or self.selected is None or number is None:
            return
        try:
            future = self.session.request_restore(self.selected, number)
        except Exception as exc:  # noqa: BLE001 - shown to the user
            self.on_error(exc)
            return
        self.restore_button.setEnabled(False)
        self.status_label.setText(f"restoring object {self.selected} to before version {number}…")
        report = on_gui_thread(self.on_error)
        future.add_done_callback(lambda f: f.exception() is not None and report(f.exception()))
