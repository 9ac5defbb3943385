"""Corrections of an :class:`~.core.AnnotationSession`: a prompt on a tracked frame
re-propagates one object between its neighbouring keyframes, and can be undone.

A prompt on frame ``t`` of object ``o`` is a *correction* when it is requested with
:meth:`~.core.AnnotationSession.request_correction`, or when ``session.auto_correct`` is on and an
earlier propagation produced ``o``'s mask on ``t`` (the Review dock turns it on). The prompt's
job on the compute thread then

1. keeps ``o``'s masks, table rows and prompts on the segment ``[a, b]``
   (:func:`~napari_sam2_track.review.segments.correction_segment`: between its neighbouring
   keyframes, clipped to the frames around ``t`` that hold a result) with
   :func:`~napari_sam2_track.review.segments.snapshot_segment` (a burst of prompts on the same
   frame is one correction, kept once),
2. computes and writes the prompt's mask as any prompt,
3. re-propagates ``o`` alone over ``[a, b]`` (both directions from ``t``) with the session's
   tracker, unless a newer prompt on ``(o, t)`` is already waiting (its job does it).

Nothing outside ``[a, b]`` and no other object is written. :meth:`~.core.AnnotationSession.request_undo`
restores the segment byte for byte; it refuses once the segment changed after the correction
(undoing would lose that change). All of it runs on the compute thread, never the caller's.
"""

from __future__ import annotations

import threading
import time
from concurrent.futures import Future
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from ..errors import PromptError
from ..project import COL
from ..review import segments
from .events import PromptKey, SessionEvents

if TYPE_CHECKING:
    from ..project import ProjectStore
    from .activity import ActivityLog
    from .engine import SessionEngine
    from .prompt_book import PromptBook

__all__ = ["Correction", "Corrections"]


@dataclass(frozen=True)
class Correction:
    """A segment re-propagated after a prompt (``undone``: restored by an undo)."""

    object: int
    frame: int
    start: int
    end: int
    seconds: float = 0.0
    undone: bool = False


class Corrections:
    """Segment re-propagation and its undo for one session.

    Args:
        store: the project; written under ``store_lock`` (one writer at a time).
        events: the session's events (``correction_*``, ``labels_changed``, ...).
        activity: the session's interaction log.
        engine: the session's model side: its tracker re-propagates, its compute thread
            runs the undo.
        prompt_book: the session's prompts, made the stored ones again by an undo.
    """

    def __init__(self, store: "ProjectStore", store_lock: threading.RLock, events: SessionEvents,
                 activity: "ActivityLog", engine: "SessionEngine", prompt_book: "PromptBook"):
        self.store = store
        self.store_lock = store_lock
        self.events = events
        self.activity = activity
        self.engine = engine
        self.prompt_book = prompt_book
        #: a prompt on a frame a propagation produced re-propagates its segment
        self.auto_correct = False
        self.last_correction: Correction | None = None
        self.stop = threading.Event()  # set when the session closes: a run stops after a frame
        self._episodes: dict[int, tuple[int, int, int]] = {}  # obj -> (frame, a, b) snapshotted
        self._correcting: tuple[int, int, int] | None = None

    # ---------------------------------------------------------------- queries
    def segment(self, obj_id: int, frame: int) -> tuple[int, int]:
        """The frames ``(a, b)`` a correction of ``obj_id`` on ``frame`` re-propagates: those
        between its neighbouring keyframes, clipped to the frames around ``frame`` that a
        propagation produced (:func:`~napari_sam2_track.review.segments.correction_segment`)."""
        return segments.correction_segment(self.store, obj_id, frame)

    def was_propagated(self, obj_id: int, frame: int) -> bool:
        """Whether a propagation produced ``obj_id``'s mask on ``frame`` (its row has a run)."""
        rows = self.store.table_rows(obj_id, frame, frame + 1)
        if rows is None or len(rows) == 0:
            return False
        run = float(rows[0, COL["run"]])
        return bool(np.isfinite(run) and run > 0)

    def undo_span(self, obj_id: int) -> tuple[int, int] | None:
        """The frames an undo of the object's last correction would restore, if any."""
        return segments.segment_snapshot(self.store, obj_id)

    @property
    def correcting(self) -> tuple[int, int, int] | None:
        """``(object, start, end)`` while a correction re-propagates, else ``None``."""
        return self._correcting

    # ------------------------------------------------- on the compute thread
    def start(self, key: PromptKey, correct: bool | None) -> tuple[int, int] | None:
        """Called by a prompt's job before its mask is written: keep the segment if this
        prompt is a correction (``None``: when ``auto_correct`` is on and the frame was
        propagated); returns the segment (``None``: not a correction)."""
        obj, frame = key
        if correct is None:
            correct = self.auto_correct and self.was_propagated(obj, frame)
        if not correct:
            return None
        start, end = self.segment(obj, frame)
        episode = (frame, start, end)
        with self.store_lock:
            if self._episodes.get(obj) != episode or segments.segment_snapshot(self.store, obj) != (start, end):
                segments.snapshot_segment(self.store, obj, start, end)
                self._episodes[obj] = episode
        return start, end

    def repropagate(self, obj_id: int, frame: int, start: int, end: int) -> Correction:
        """Propagate ``obj_id`` alone over ``start..end`` into the project."""
        from ..pipeline import Request, track_in_store

        self._correcting = (obj_id, start, end)
        self.events.correction_started.emit(obj_id, start, end)
        began = time.perf_counter()
        try:
            for _ in track_in_store(self.store, self.engine.source, model=self.engine.require_model(),
                                    request=Request("both", start, end, [obj_id]),
                                    tracker=self.engine.tracker, cancel=self.stop):
                pass
        finally:
            self._correcting = None
        with self.store_lock:
            segments.mark_corrected(self.store, obj_id)
        seconds = time.perf_counter() - began
        correction = Correction(obj_id, frame, start, end, seconds)
        self.last_correction = correction
        self.activity.log("propagate", object=obj_id, frames=(start, end), seconds=seconds, correction=True)
        self.events.labels_changed.emit(start, end)
        self.events.correction_finished.emit(correction)
        return correction

    def request_undo(self, obj_id: int) -> Future:
        """Restore the segment of the object's last correction (masks, rows, prompts) on the
        compute thread; the future gives the :class:`Correction` undone."""
        if self.undo_span(obj_id) is None:
            raise PromptError(f"object {obj_id} has no correction to undo")
        future: Future = Future()

        def run() -> None:
            try:
                with self.store_lock:
                    start, end = segments.undo_segment(self.store, obj_id)
                    self._episodes.pop(obj_id, None)
                    changed = self.prompt_book.reload(obj_id, start, end, self.store.prompts.prompts)
                self.engine.drop_tracker()  # its memory holds the corrected segment: rebuilt from the store
                self.activity.log("undo", object=obj_id, frames=(start, end))
                frame = next((c.frame for c in (self.last_correction,) if c and c.object == obj_id), start)
                undone = Correction(obj_id, frame, start, end, undone=True)
                self.last_correction = undone
                for key in changed:
                    self.events.prompts_changed.emit(*key)
                self.events.keyframes_changed.emit(obj_id)
                self.events.labels_changed.emit(start, end)
                self.events.correction_finished.emit(undone)
                future.set_result(undone)
            except BaseException as exc:  # noqa: BLE001 - reported as an event and on the future
                future.set_exception(exc)
                self.events.error.emit(exc)

        self.engine.compute.submit(run)
        return future
