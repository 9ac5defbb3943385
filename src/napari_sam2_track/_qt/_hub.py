"""State shared by the docks of one viewer: the annotation session, the schema, the model."""

from __future__ import annotations

import weakref

from qtpy.QtCore import QObject, Signal

from ..errors import Sam2TrackError


class ProjectHub(QObject):
    """What the Schema and Prompt & Propagate docks of one viewer share.

    Signals:
        session_changed(session): a project was opened (or closed: ``None``).
        schema_changed(schema): the schema was applied (to the session, if any).
        objects_changed(): objects or their categories changed (labels colours follow).
    """

    session_changed = Signal(object)
    schema_changed = Signal(object)
    objects_changed = Signal()

    def __init__(self):
        super().__init__()
        from ..schema import Schema

        self.session = None
        self.schema = Schema.default()
        self.model = None

    def set_session(self, session) -> None:
        self.session = session
        if session is not None:
            self.schema = session.schema
            if self.model is not None and session.model is None:
                session.set_model(self.model)
        self.session_changed.emit(session)

    def apply_schema(self, schema) -> list[int]:
        """Use ``schema``; with an open project it is stored there. Returns moved object ids."""
        moved = []
        if self.session is not None:
            moved = self.session.set_schema(schema)
        self.schema = schema
        self.schema_changed.emit(schema)
        self.objects_changed.emit()
        return moved


_HUBS: "weakref.WeakKeyDictionary" = weakref.WeakKeyDictionary()


def hub_for(viewer) -> ProjectHub:
    """The hub of ``viewer`` (created on first use)."""
    hub = _HUBS.get(viewer)
    if hub is None:
        hub = _HUBS[viewer] = ProjectHub()
    return hub


def report(exc: BaseException) -> None:
    """Show an error to the user as a napari notification (one line for user errors)."""
    from napari.utils.notifications import show_error

    if isinstance(exc, Sam2TrackError):
        show_error(str(exc))
    else:
        show_error(f"{type(exc).__name__}: {exc}")
