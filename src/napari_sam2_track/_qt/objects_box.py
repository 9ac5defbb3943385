"""The "Objects" part of the Prompt and Propagate dock: the object list, names and categories."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from qtpy.QtCore import Qt
from qtpy.QtGui import QColor
from qtpy.QtWidgets import (
    QCheckBox,
    QComboBox,
    QDoubleSpinBox,
    QFormLayout,
    QGroupBox,
    QHBoxLayout,
    QLineEdit,
    QListWidget,
    QListWidgetItem,
    QPushButton,
    QSpinBox,
    QVBoxLayout,
    QWidget,
)

from ..errors import PromptError
from ._gui_thread import SessionLink
from ._hub import ProjectHub


class ObjectsBox(QGroupBox):
    """Shows ``session.objects``; *Add*, *Remove*, the name and category call the session."""

    def __init__(self, hub: ProjectHub, on_error: Callable[[BaseException], Any]):
        super().__init__("Objects")
        self.hub = hub
        self.on_error = on_error
        self._link = SessionLink()
        vb = QVBoxLayout(self)
        self.objects_list = QListWidget()
        self.objects_list.currentItemChanged.connect(self._on_item_selected)
        self.objects_list.setMaximumHeight(110)
        vb.addWidget(self.objects_list)
        row = QHBoxLayout()
        self.add_object_btn = QPushButton("Add")
        self.add_object_btn.clicked.connect(lambda: self.add_object())
        self.remove_object_btn = QPushButton("Remove")
        self.remove_object_btn.clicked.connect(lambda: self.remove_object())
        row.addWidget(self.add_object_btn)
        row.addWidget(self.remove_object_btn)
        vb.addLayout(row)
        form = QFormLayout()
        self.name_edit = QLineEdit()
        self.name_edit.editingFinished.connect(lambda: self.rename_object(self.name_edit.text()))
        form.addRow("Name", self.name_edit)
        self.category_combo = QComboBox()
        self.category_combo.activated.connect(lambda _i: self.set_category(self.category_combo.currentText()))
        form.addRow("Category", self.category_combo)
        vb.addLayout(form)
        #: one editor per attribute of the schema, for the active object
        self.attribute_editors: dict[str, QWidget] = {}
        self.attributes_form = QFormLayout()
        vb.addLayout(self.attributes_form)
        hub.session_changed.connect(self._attach)
        hub.schema_changed.connect(lambda _schema: self.refresh())
        self._attach(hub.session)

    def _attach(self, session: Any) -> None:
        self._link.disconnect_all()
        if session is not None:
            self._link.connect(session.events.objects_changed, self.refresh)
            self._link.connect(session.events.active_object_changed, lambda _obj: self.refresh())
        self.refresh()

    def _session(self):
        if self.hub.session is None:
            raise PromptError("no project open: choose the image layer and press 'Open project'")
        return self.hub.session

    def refresh(self) -> None:
        """Show the session's objects, the active one selected."""
        session = self.hub.session
        self.objects_list.blockSignals(True)
        self.objects_list.clear()
        colors = session.label_colors() if session is not None else {}
        for obj in session.objects if session is not None else []:
            item = QListWidgetItem(f"{obj.id}  {obj.name}  [{obj.category}]")
            item.setData(Qt.UserRole, obj.id)
            item.setForeground(QColor(colors.get(obj.id, "#ffffff")))
            self.objects_list.addItem(item)
            if obj.id == session.active_id:
                self.objects_list.setCurrentItem(item)
        self.objects_list.blockSignals(False)
        self.category_combo.clear()
        obj = None
        if session is not None:
            self.category_combo.addItems(session.schema.category_names())
            if session.active_id is not None:
                obj = session.object(session.active_id)
                self.name_edit.setText(obj.name)
                self.category_combo.setCurrentText(obj.category or "")
        self._show_attributes(session.schema.attributes if session is not None else [], obj)

    # --------------------------------------------------------------- attributes
    def _show_attributes(self, specs: list, obj: Any) -> None:
        """Editors for the schema's attributes, showing the active object's values."""
        names = [a.name for a in specs]
        if names != list(self.attribute_editors):
            while self.attributes_form.rowCount():
                self.attributes_form.removeRow(0)
            self.attribute_editors = {a.name: self._editor(a) for a in specs}
            for a in specs:
                self.attributes_form.addRow(a.name, self.attribute_editors[a.name])
        for a in specs:
            editor = self.attribute_editors[a.name]
            value = obj.attributes.get(a.name, a.default) if obj is not None else a.default
            editor.blockSignals(True)
            if isinstance(editor, QCheckBox):
                editor.setChecked(bool(value))
            elif isinstance(editor, (QSpinBox, QDoubleSpinBox)):
                editor.setValue(value if value is not None else 0)
            elif isinstance(editor, QComboBox):
                editor.setCurrentText("" if value is None else str(value))
            else:
                editor.setText("" if value is None else str(value))
            editor.setEnabled(obj is not None)
            editor.blockSignals(False)

    def _editor(self, spec: Any) -> QWidget:
        name = spec.name
        if spec.kind == "bool":
            editor = QCheckBox()
            editor.toggled.connect(lambda on: self.set_attribute(name, bool(on)))
        elif spec.kind == "int":
            editor = QSpinBox()
            editor.setRange(-2**31, 2**31 - 1)
            editor.editingFinished.connect(lambda: self.set_attribute(name, editor.value()))
        elif spec.kind == "float":
            editor = QDoubleSpinBox()
            editor.setRange(-1e12, 1e12)
            editor.setDecimals(3)
            editor.editingFinished.connect(lambda: self.set_attribute(name, editor.value()))
        elif spec.kind == "choice":
            editor = QComboBox()
            editor.addItems(["", *spec.choices])
            editor.activated.connect(lambda _i: self.set_attribute(name, editor.currentText() or None))
        else:
            editor = QLineEdit()
            editor.editingFinished.connect(lambda: self.set_attribute(name, editor.text() or None))
        editor.setToolTip(spec.description or f"{spec.kind} attribute of the selected object")
        return editor

    def set_attribute(self, name: str, value: Any, obj_id: int | None = None) -> None:
        """Set attribute ``name`` of the active object (or ``obj_id``)."""
        session = self.hub.session
        obj_id = session.active_id if session is not None and obj_id is None else obj_id
        if session is None or obj_id is None:
            return
        try:
            session.set_attribute(obj_id, name, value)
        except Exception as exc:  # noqa: BLE001 - shown to the user
            self.on_error(exc)

    def add_object(self, name: str = "", category: str | None = None):
        try:
            return self._session().add_object(name, category)
        except Exception as exc:  # noqa: BLE001 - shown to the user
            self.on_error(exc)
            return None

    def remove_object(self, obj_id: int | None = None) -> None:
        try:
            session = self._session()
            obj_id = session.active_id if obj_id is None else obj_id
            if obj_id is not None:
                session.request_remove_object(obj_id)  # the store changes on the compute thread
        except Exception as exc:  # noqa: BLE001
            self.on_error(exc)

    def rename_object(self, name: str) -> None:
        session = self.hub.session
        if session is None or session.active_id is None or not name.strip():
            return
        try:
            session.rename_object(session.active_id, name.strip())
        except Exception as exc:  # noqa: BLE001
            self.on_error(exc)

    def set_category(self, category: str, obj_id: int | None = None) -> None:
        session = self.hub.session
        obj_id = session.active_id if session is not None and obj_id is None else obj_id
        if session is None or obj_id is None:
            return
        try:
            session.set_category(obj_id, category)
        except Exception as exc:  # noqa: BLE001
            self.on_error(exc)

    def select_object(self, obj_id: int) -> None:
        """Make ``obj_id`` the active object (the target of new clicks and boxes)."""
        try:
            self._session().set_active(obj_id)
        except Exception as exc:  # noqa: BLE001
            self.on_error(exc)

    def _on_item_selected(self, item: Any, _previous: Any = None) -> None:
        if item is not None and self.hub.session is not None:
            self.select_object(item.data(Qt.UserRole))
