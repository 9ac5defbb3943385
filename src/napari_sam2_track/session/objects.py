"""Objects of an :class:`~.core.AnnotationSession`: add, remove, rename, categorise, select."""

from __future__ import annotations

import threading
from concurrent.futures import Future
from typing import TYPE_CHECKING, Any

from ..errors import PromptError
from ..project import STATE_NOT_RUN
from ..prompts import ObjectSpec

if TYPE_CHECKING:
    from ..project import ProjectStore
    from ..schema import Schema
    from .engine import SessionEngine
    from .events import SessionEvents
    from .prompt_book import PromptBook

__all__ = ["ObjectsMixin"]


class ObjectsMixin:
    """The object list of a session (mixed into :class:`~.core.AnnotationSession`). It uses
    only these public members of the session:"""

    store: "ProjectStore"
    store_lock: threading.RLock  # one writer of the store at a time
    events: "SessionEvents"
    prompt_book: "PromptBook"
    engine: "SessionEngine"
    active_id: int | None
    schema: "Schema"

    if TYPE_CHECKING:
        def check_idle(self, what: str, *, prompts: bool = False, writes: bool = True) -> None: ...

        def check_writable(self, what: str) -> None: ...

    def label_colors(self) -> dict[int, str]:
        """Object id -> ``#rrggbb`` colour (its category's hue), for the Labels layer."""
        from ..schema import object_colors

        return object_colors(self.store.objects, self.schema)

    # ---------------------------------------------------------------- objects
    @property
    def objects(self) -> list[ObjectSpec]:
        return self.store.objects

    def object(self, obj_id: int) -> ObjectSpec:
        for o in self.store.objects:
            if o.id == obj_id:
                return o
        raise PromptError(f"there is no object {obj_id}; add it first")

    def add_object(self, name: str = "", category: str | None = None, obj_id: int | None = None) -> ObjectSpec:
        """Add an object (next free id by default) and make it the active one."""
        self.check_idle("add objects")
        ids = self.store.object_ids()
        if obj_id is None:
            obj_id = max(ids, default=0) + 1
        elif obj_id in ids:
            raise PromptError(f"object {obj_id} already exists")
        category = category or self.schema.category_names()[0]
        obj = ObjectSpec(id=obj_id, name=name or f"object {obj_id}", category=category)
        with self.store_lock:
            self.store.add_object(obj)
        self.events.objects_changed.emit()
        self.set_active(obj_id)
        return obj

    def request_remove_object(self, obj_id: int) -> Future:
        """Delete an object with its prompts, masks and pixels; returns at once.

        Its prompts leave the session now; the store is changed on the compute thread (after
        the prompts queued before), then ``objects_changed`` and ``labels_changed`` follow.
        The future holds the frames that had pixels of the object.
        """
        self.check_idle("remove objects")
        self.object(obj_id)
        keys = self.prompt_book.remove_object(obj_id)
        for _, frame in keys:
            self.events.prompts_changed.emit(obj_id, frame)
        if keys:
            self.events.keyframes_changed.emit(obj_id)
        future: Future = Future()

        def run() -> None:
            try:
                with self.store_lock:
                    frames = self.store.frames_with_state(obj_id, exclude=(STATE_NOT_RUN,))
                    self.store.remove_object(obj_id)
                self.engine.forget_object(obj_id)
            except BaseException as exc:  # noqa: BLE001 - reported as an event and on the future
                future.set_exception(exc)
                self.events.error.emit(exc)
                return
            self.events.objects_changed.emit()
            if frames:
                self.events.labels_changed.emit(min(frames), max(frames))
            if self.active_id == obj_id:
                ids = self.store.object_ids()
                self.set_active(ids[0] if ids else None)
            future.set_result(frames)

        self.engine.compute.submit(run)
        return future

    def remove_object(self, obj_id: int) -> None:
        """Delete an object with its prompts, masks and pixels (waits for the store)."""
        self.request_remove_object(obj_id).result()

    def rename_object(self, obj_id: int, name: str) -> None:
        self.check_writable("rename objects")
        with self.store_lock:
            self.store.add_object(self.object(obj_id).model_copy(update={"name": name}))
        self.events.objects_changed.emit()

    def set_category(self, obj_id: int, category: str) -> None:
        if category not in self.schema.category_names():
            raise PromptError(
                f"unknown category {category!r}; the schema has {', '.join(self.schema.category_names())}"
            )
        self.check_writable("change categories")
        with self.store_lock:
            self.store.add_object(self.object(obj_id).model_copy(update={"category": category}))
        self.events.objects_changed.emit()

    def set_attribute(self, obj_id: int, name: str, value: Any) -> None:
        """Set a per-object attribute the schema defines (``None`` clears it)."""
        try:
            value = self.schema.attribute(name).validate_value(value)
        except KeyError as exc:
            raise PromptError(str(exc.args[0]) if exc.args else f"unknown attribute {name!r}") from None
        except ValueError as exc:
            raise PromptError(str(exc)) from None
        self.check_writable("change attributes")
        with self.store_lock:
            obj = self.object(obj_id)
            attributes = {k: v for k, v in obj.attributes.items() if k != name}
            if value is not None:
                attributes[name] = value
            self.store.add_object(obj.model_copy(update={"attributes": attributes}))
        self.events.objects_changed.emit()

    def set_active(self, obj_id: int | None) -> None:
        """Make ``obj_id`` the object new prompts belong to (``active_object_changed``)."""
        if obj_id is not None:
            self.object(obj_id)
        if obj_id != self.active_id:
            self.active_id = obj_id
            self.events.active_object_changed.emit(obj_id)

    def _obj(self, obj_id: int | None) -> int:
        obj_id = self.active_id if obj_id is None else obj_id
        if obj_id is None:
            raise PromptError("no object selected: add an object first")
        self.object(obj_id)
        return obj_id
