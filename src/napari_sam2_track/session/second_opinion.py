"""A second opinion from an open :class:`~.core.AnnotationSession`, and adopting it.

:func:`second_opinion_job` is what the Review dock drives on a worker thread: it loads the
second model, opens the project's video a second time (the session's own source stays with
its compute thread) and runs :func:`~napari_sam2_track.review.second_opinion.run_second_opinion`
into the session's project, whose write lock the session holds. It is refused while a
propagation or a correction runs. :func:`request_adopt` adopts the second opinion's masks of
one object over a frame range on the session's compute thread, like any correction: undoable
with :meth:`~.core.AnnotationSession.request_undo`.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from concurrent.futures import Future
from typing import TYPE_CHECKING

from ..review import second_opinion as so
from ..review.adopt import adopt

if TYPE_CHECKING:
    from ..engine.spec import ModelSpec
    from ..recorded_run import Progress
    from .core import AnnotationSession

__all__ = ["request_adopt", "second_opinion_job"]


def second_opinion_job(session: "AnnotationSession", spec: "ModelSpec", *, name: str | None = None,
                       overwrite: bool = False, cancel: threading.Event | None = None,
                       ) -> Iterator["Progress | str"]:
    """Run a second opinion of the session's project; yields lines of what it does (``str``)
    and the tracking's :class:`~napari_sam2_track.pipeline.Progress`. Returns its name."""
    session.check_idle("start a second opinion")
    store = session.store
    if name is not None:
        so.check_can_run(store, so.check_name(name), overwrite=overwrite)
    yield f"loading {spec.model}…"
    model = spec.load()
    name = so.check_name(name or so.opinion_name(model))
    so.check_can_run(store, name, overwrite=overwrite)
    note = so.image_size_note(store, model)
    if note:
        yield f"note: {note}"
    session.check_idle("start a second opinion")  # a run may have started while the model loaded
    path = getattr(session.source, "path", None)
    source = so.project_source(store) if path else session.source
    try:
        yield from so.run_second_opinion(store, source, model, name=name, overwrite=overwrite,
                                         cancel=cancel)
    finally:
        if source is not session.source:
            source.close()
    return name


def request_adopt(session: "AnnotationSession", obj_id: int, start: int, end: int,
                  name: str | None = None) -> Future:
    """Adopt the (most recent, or ``name``d) second opinion's masks of ``obj_id`` on
    ``start..end`` on the compute thread; the future gives the frames written. The session's
    tracker is rebuilt from the project afterwards (its memory held the replaced masks)."""
    session.check_idle("adopt the second opinion")
    future: Future = Future()

    def run() -> None:
        try:
            with session.store_lock:
                first, last = adopt(session.store, obj_id, start, end, name=name)
            session.engine.drop_tracker()
            session.activity.log("propagate", object=obj_id, frames=(first, last), seconds=0.0,
                                 adopted=True)
            session.events.labels_changed.emit(first, last)
            future.set_result((first, last))
        except BaseException as exc:  # noqa: BLE001 - reported as an event and on the future
            future.set_exception(exc)
            session.events.error.emit(exc)

    session.engine.compute.submit(run)
    return future
