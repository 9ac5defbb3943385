"""What the docks of one viewer share: the open session, the schema and the model.

Docks never call each other: each reads the hub and subscribes to its signals and to
``hub.session.events`` (see :class:`~napari_sam2_track.session.SessionEvents`).
"""

from __future__ import annotations

import weakref

from qtpy.QtCore import QObject, Signal

from ..errors import Sam2TrackError


class ProjectHub(QObject):
    """The shared state of one viewer's docks (GUI thread only).

    Signals:
        session_changed(session): a project was opened (or closed: ``None``); the previous
            session is closed right after its views were told.
        schema_changed(schema): the schema in use changed (applied to the session, if any).
        model_changed(model): a model was loaded; it is kept for the viewer's life.
    """

    session_changed = Signal(object)
    schema_changed = Signal(object)
    model_changed = Signal(object)

    def __init__(self) -> None:
        super().__init__()
        from ..schema import Schema

        self.session = None
        self.schema = Schema.default()
        self.model = None

    def set_session(self, session) -> None:
        """Make ``session`` the open project (``None`` closes it)."""
        old = self.session
        if session is old:
            return
        self.session = session
        if session is not None:
            self.schema = session.schema
            if self.model is not None and session.model is None:
                session.set_model(self.model)
        self.session_changed.emit(session)
        if old is not None:
            old.close()

    def set_model(self, model) -> None:
        """Use ``model`` from now on (and in the open session)."""
        if self.session is not None:
            self.session.set_model(model)  # refuses during a run: the hub keeps the old one
        self.model = model
        self.model_changed.emit(model)

    def set_schema(self, schema) -> list[int]:
        """Use ``schema``; with an open project it is stored there. Returns moved object ids."""
        moved = []
        if self.session is not None:
            moved = self.session.set_schema(schema)
        self.schema = schema
        self.schema_changed.emit(schema)
        return moved

    apply_schema = set_schema


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
