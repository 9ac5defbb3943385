"""Schema dock: create, edit, load and save the annotation schema (YAML/JSON)."""

from __future__ import annotations

from pathlib import Path

from qtpy.QtGui import QColor
from qtpy.QtWidgets import (
    QColorDialog,
    QComboBox,
    QFileDialog,
    QFormLayout,
    QHBoxLayout,
    QHeaderView,
    QLineEdit,
    QPushButton,
    QSpinBox,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from ..errors import SchemaError
from ..schema import PALETTE, AttributeSpec, Category, Schema
from ._hub import hub_for, report
from ._widgets import ScrollDock

ATTRIBUTE_KINDS = ("bool", "int", "float", "text", "choice")


class SchemaWidget(ScrollDock):
    """Categories (name, colour, description), per-object attributes and conventions.

    *Apply* stores the schema in the open project (``store.set_schema``); label colours follow
    the categories. Every object belongs to a category: objects of a removed category move to
    the first one.
    """

    def __init__(self, napari_viewer):
        super().__init__()
        self.viewer = napari_viewer
        self.hub = hub_for(napari_viewer)
        self.setToolTip(
            "Annotation schema: categories with colours, per-object attributes, and the "
            "conventions for re-entry, occlusion, minimum size and the image border.\n"
            "Apply stores it in the open project; Load/Save read and write YAML or JSON."
        )
        layout = self.content_layout
        self.message.set_text("Categories and attributes of the objects; Apply stores them in the open project.")

        form = QFormLayout()
        self.name_edit = QLineEdit()
        form.addRow("Name", self.name_edit)
        layout.addLayout(form)

        # categories
        box = QWidget()
        vb = QVBoxLayout(box)
        vb.setContentsMargins(0, 0, 0, 0)
        self.categories = QTableWidget(0, 3)
        self.categories.setHorizontalHeaderLabels(["Name", "Colour", "Description"])
        self.categories.horizontalHeader().setSectionResizeMode(2, QHeaderView.Stretch)
        self.categories.itemChanged.connect(self._on_category_item_changed)
        self.categories.setMinimumHeight(120)
        vb.addWidget(self.categories)
        row = QHBoxLayout()
        self.add_category_btn = QPushButton("Add")
        self.add_category_btn.clicked.connect(lambda: self.add_category())
        self.remove_category_btn = QPushButton("Remove")
        self.remove_category_btn.clicked.connect(lambda: self.remove_category())
        self.color_btn = QPushButton("Colour…")
        self.color_btn.clicked.connect(lambda: self.pick_color())
        for b in (self.add_category_btn, self.remove_category_btn, self.color_btn):
            row.addWidget(b)
        vb.addLayout(row)
        self.add_section("Categories", box)

        # attributes
        box = QWidget()
        vb = QVBoxLayout(box)
        vb.setContentsMargins(0, 0, 0, 0)
        self.attributes = QTableWidget(0, 4)
        self.attributes.setHorizontalHeaderLabels(["Name", "Kind", "Choices (a, b, …)", "Description"])
        self.attributes.horizontalHeader().setSectionResizeMode(3, QHeaderView.Stretch)
        self.attributes.setMinimumHeight(100)
        vb.addWidget(self.attributes)
        row = QHBoxLayout()
        self.add_attribute_btn = QPushButton("Add")
        self.add_attribute_btn.clicked.connect(lambda: self.add_attribute())
        self.remove_attribute_btn = QPushButton("Remove")
        self.remove_attribute_btn.clicked.connect(lambda: self.remove_attribute())
        row.addWidget(self.add_attribute_btn)
        row.addWidget(self.remove_attribute_btn)
        vb.addLayout(row)
        self.add_section("Per-object attributes", box)

        # conventions
        box = QWidget()
        form = QFormLayout(box)
        form.setContentsMargins(0, 0, 0, 0)
        self.reentry = QComboBox()
        self.reentry.addItems(["same_id", "new_linked_id"])
        self.reentry.setToolTip("Identity of an object that leaves the view and comes back")
        form.addRow("Re-entry identity", self.reentry)
        self.occluded = QLineEdit()
        form.addRow("Occluded means", self.occluded)
        self.out_of_frame = QLineEdit()
        form.addRow("Out of frame means", self.out_of_frame)
        self.min_pixels = QSpinBox()
        self.min_pixels.setRange(0, 10_000_000)
        self.min_pixels.setToolTip("Masks with fewer pixels count as absent")
        form.addRow("Min. visible pixels", self.min_pixels)
        self.edge_policy = QComboBox()
        self.edge_policy.addItems(["keep", "drop", "flag"])
        self.edge_policy.setToolTip("Objects cut by the image border: keep, drop or flag them")
        form.addRow("Edge policy", self.edge_policy)
        self.border_margin = QSpinBox()
        self.border_margin.setRange(0, 10_000)
        form.addRow("Border margin (px)", self.border_margin)
        self.add_section("Conventions", box)

        row = QHBoxLayout()
        self.new_btn = QPushButton("New")
        self.new_btn.clicked.connect(lambda: self.set_schema(Schema.default()))
        self.load_btn = QPushButton("Load…")
        self.load_btn.clicked.connect(lambda: self.load())
        self.save_btn = QPushButton("Save…")
        self.save_btn.clicked.connect(lambda: self.save())
        self.apply_btn = QPushButton("Apply")
        self.apply_btn.setToolTip("Use this schema (and store it in the open project)")
        self.apply_btn.clicked.connect(lambda: self.apply())
        for b in (self.new_btn, self.load_btn, self.save_btn, self.apply_btn):
            row.addWidget(b)
        layout.addLayout(row)
        layout.addStretch(1)

        self.hub.session_changed.connect(self._on_session_changed)
        self.set_schema(self.hub.schema)

    # ----------------------------------------------------------------- form <-> schema
    def set_schema(self, schema: Schema) -> None:
        """Show ``schema`` in the form."""
        self.name_edit.setText(schema.name)
        self.categories.blockSignals(True)
        self.categories.setRowCount(0)
        for c in schema.categories:
            self._append_category_row(c.name, c.color, c.description)
        self.categories.blockSignals(False)
        self.attributes.setRowCount(0)
        for a in schema.attributes:
            self._append_attribute_row(a.name, a.kind, ", ".join(a.choices), a.description)
        self.reentry.setCurrentText(schema.reentry_identity)
        self.occluded.setText(schema.occluded_definition)
        self.out_of_frame.setText(schema.out_of_frame_definition)
        self.min_pixels.setValue(schema.min_visible_pixels)
        self.edge_policy.setCurrentText(schema.edge_policy)
        self.border_margin.setValue(schema.border_margin_px)

    def schema(self) -> Schema:
        """The schema in the form; :class:`SchemaError` (one line) if it is invalid."""
        cats = []
        for r in range(self.categories.rowCount()):
            cats.append(
                {
                    "name": self._text(self.categories, r, 0),
                    "color": self._text(self.categories, r, 1),
                    "description": self._text(self.categories, r, 2),
                }
            )
        attrs = []
        for r in range(self.attributes.rowCount()):
            kind = self.attributes.cellWidget(r, 1).currentText()
            choices = [c.strip() for c in self._text(self.attributes, r, 2).split(",") if c.strip()]
            attrs.append(
                {
                    "name": self._text(self.attributes, r, 0),
                    "kind": kind,
                    "choices": choices if kind == "choice" else [],
                    "description": self._text(self.attributes, r, 3),
                }
            )
        data = {
            "name": self.name_edit.text().strip() or "untitled",
            "categories": cats,
            "attributes": attrs,
            "reentry_identity": self.reentry.currentText(),
            "occluded_definition": self.occluded.text(),
            "out_of_frame_definition": self.out_of_frame.text(),
            "min_visible_pixels": self.min_pixels.value(),
            "edge_policy": self.edge_policy.currentText(),
            "border_margin_px": self.border_margin.value(),
        }
        import json

        return Schema.from_text(json.dumps(data), "json", source="schema")

    @staticmethod
    def _text(table: QTableWidget, row: int, col: int) -> str:
        item = table.item(row, col)
        return item.text().strip() if item is not None else ""

    def _append_category_row(self, name: str, color: str, description: str = "") -> None:
        r = self.categories.rowCount()
        self.categories.insertRow(r)
        self.categories.setItem(r, 0, QTableWidgetItem(name))
        item = QTableWidgetItem(color)
        item.setBackground(QColor(color))
        self.categories.setItem(r, 1, item)
        self.categories.setItem(r, 2, QTableWidgetItem(description))

    def _append_attribute_row(self, name: str, kind: str, choices: str, description: str) -> None:
        r = self.attributes.rowCount()
        self.attributes.insertRow(r)
        self.attributes.setItem(r, 0, QTableWidgetItem(name))
        combo = QComboBox()
        combo.addItems(ATTRIBUTE_KINDS)
        combo.setCurrentText(kind)
        self.attributes.setCellWidget(r, 1, combo)
        self.attributes.setItem(r, 2, QTableWidgetItem(choices))
        self.attributes.setItem(r, 3, QTableWidgetItem(description))

    def _on_category_item_changed(self, item: QTableWidgetItem) -> None:
        if item.column() == 1 and QColor(item.text().strip()).isValid():
            self.categories.blockSignals(True)
            item.setBackground(QColor(item.text().strip()))
            self.categories.blockSignals(False)

    # ----------------------------------------------------------------------- actions
    def add_category(self, name: str | None = None, color: str | None = None, description: str = "") -> None:
        n = self.categories.rowCount()
        self.categories.blockSignals(True)
        self._append_category_row(name or f"category {n + 1}", color or PALETTE[n % len(PALETTE)], description)
        self.categories.blockSignals(False)

    def remove_category(self, row: int | None = None) -> None:
        row = self.categories.currentRow() if row is None else row
        if self.categories.rowCount() <= 1:
            self._error(SchemaError("a schema needs at least one category"))
            return
        if 0 <= row < self.categories.rowCount():
            self.categories.removeRow(row)

    def pick_color(self, row: int | None = None, color: str | None = None) -> None:
        """Set the colour of a category (a colour dialog when ``color`` is not given)."""
        row = self.categories.currentRow() if row is None else row
        if not 0 <= row < self.categories.rowCount():
            return
        if color is None:
            chosen = QColorDialog.getColor(QColor(self._text(self.categories, row, 1)), self)
            if not chosen.isValid():
                return
            color = chosen.name()
        self.categories.item(row, 1).setText(color)

    def add_attribute(self, name: str | None = None, kind: str = "text", choices: str = "", description: str = "") -> None:
        self._append_attribute_row(name or f"attribute{self.attributes.rowCount() + 1}", kind, choices, description)

    def remove_attribute(self, row: int | None = None) -> None:
        row = self.attributes.currentRow() if row is None else row
        if 0 <= row < self.attributes.rowCount():
            self.attributes.removeRow(row)

    def apply(self) -> Schema | None:
        """Validate the form and use it (stored in the open project); ``None`` if invalid."""
        from napari.utils.notifications import show_info

        try:
            schema = self.schema()
            moved = self.hub.apply_schema(schema)
        except Exception as exc:  # noqa: BLE001 - shown to the user
            self._error(exc)
            return None
        session = self.hub.session
        where = f"stored in {session.store.path.name}" if session is not None else \
            "in use (no project open: it goes into the next project opened)"
        done = (f"schema {schema.name!r} applied: {len(schema.categories)} categories, "
                f"{len(schema.attributes)} attributes, {where}")
        if moved:
            done += (f"; objects {moved} had a category the schema no longer has, they are now "
                     f"{schema.category_names()[0]!r}")
        self.message.set_text(done)
        show_info(done)
        return schema

    def _error(self, exc: BaseException) -> None:
        self.message.set_text(str(exc), error=True)
        report(exc)

    def load(self, path: str | Path | None = None) -> Schema | None:
        """Read a YAML/JSON schema file into the form (not applied until *Apply*)."""
        if path is None:
            path, _ = QFileDialog.getOpenFileName(self, "Load schema", "", "Schema (*.yaml *.yml *.json)")
            if not path:
                return None
        try:
            schema = Schema.load(path)
        except Exception as exc:  # noqa: BLE001
            self._error(exc)
            return None
        self.set_schema(schema)
        return schema

    def save(self, path: str | Path | None = None) -> Path | None:
        """Write the form's schema as YAML or JSON (by suffix)."""
        if path is None:
            path, _ = QFileDialog.getSaveFileName(self, "Save schema", "schema.yaml", "Schema (*.yaml *.yml *.json)")
            if not path:
                return None
        try:
            return self.schema().save(path)
        except Exception as exc:  # noqa: BLE001
            self._error(exc)
            return None

    def _on_session_changed(self, session) -> None:
        if session is not None:
            self.set_schema(session.schema)
