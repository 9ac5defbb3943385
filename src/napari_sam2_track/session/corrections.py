"""Corrections of an :class:`~.core.AnnotationSession`: a prompt on a tracked frame
re-propagates one object around the frame, inside the segment between its neighbouring
keyframes, and can be undone.

A prompt on frame ``t`` of object ``o`` is a *correction* when it is requested with
:meth:`~.core.AnnotationSession.request_correction`, or when ``session.auto_correct`` is on and an
earlier propagation produced ``o``'s mask on ``t`` (the Review dock turns it on). The prompt's
job on the compute thread then

1. starts a track version of ``o`` on the segment ``[a, b]``
   (:func:`~napari_sam2_track.review.segments.correction_segment`: between its neighbouring
   keyframes, clipped to the frames around ``t`` that hold a result) with
   :func:`~napari_sam2_track.review.segments.begin_correction` (a burst of prompts on the same
   frame is one correction, one version),
2. computes and writes the prompt's mask as any prompt,
3. re-propagates ``o`` alone from ``t`` in both directions with the session's tracker, each
   direction until ``agree_frames`` consecutive frames agree with the stored masks (the
   schema's ``review.correction_stop: agree``) or to the end of ``[a, b]`` (``segment``),
   unless a newer prompt on ``(o, t)`` is already waiting (its job does it). Each frame's mask
   and row are kept in the version before it is rewritten.

Nothing outside ``[a, b]`` and no other object is written. :meth:`~.core.AnnotationSession.request_undo`
restores the object's newest version byte for byte. All of it runs on the compute thread,
never the caller's.
"""

from __future__ import annotations

import threading
import time
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np

from ..errors import PromptError
from ..project import COL
from ..project.versions import Recording, RunVersions
from ..review import segments
from .events import PromptKey, SessionEvents
from .prompt_book import plane_prompts

if TYPE_CHECKING:
    from ..project import ProjectStore
    from ..prompts import Prompt
    from .activity import ActivityLog
    from .engine import SessionEngine
    from .prompt_book import PromptBook

__all__ = ["Correction", "Corrections"]


@dataclass(frozen=True)
class Correction:
    """The frames ``start..end`` of an object re-propagated after a prompt on ``frame``
    (``undone``: restored by an undo). ``segment``: the keyframes' segment it could cover;
    ``stops``: where a direction stopped early (``{"forward": frame, ...}``); ``version``: the
    track version that holds what it replaced."""

    object: int
    frame: int
    start: int
    end: int
    seconds: float = 0.0
    undone: bool = False
    segment: tuple[int, int] | None = field(default=None, compare=False)
    stops: dict = field(default_factory=dict, compare=False)
    version: int | None = field(default=None, compare=False)

    @property
    def frames(self) -> int:
        """Frames re-propagated (or restored)."""
        return self.end - self.start + 1


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
        #: ``True``/``False``: stop early / re-propagate the whole segment; ``None``: the
        #: schema's ``review.correction_stop``
        self.stop_early: bool | None = None
        self.last_correction: Correction | None = None
        self.stop = threading.Event()  # set when the session closes: a run stops after a frame
        self._episodes: dict[int, tuple[tuple[int, int, int], Recording]] = {}  # obj -> episode, version
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
        """The frames an undo of the object's last change would restore, if any."""
        return segments.segment_snapshot(self.store, obj_id)

    def early_stop(self) -> "segments.EarlyStop | None":
        """The rule that ends a correction's directions (``None``: the whole segment)."""
        rule = segments.EarlyStop.from_schema(self.store)
        if self.stop_early is None:
            return rule
        if not self.stop_early:
            return None
        if rule is None:
            review = self.store.schema.review
            rule = segments.EarlyStop(review.agree_frames, review.agree_iou, self.store.schema.min_visible_pixels)
        return rule

    @property
    def correcting(self) -> tuple[int, int, int] | None:
        """``(object, start, end)`` while a correction re-propagates, else ``None``."""
        return self._correcting

    # ------------------------------------------------- on the compute thread
    def start(self, key: PromptKey, correct: bool | None,
              prompt: "Prompt | None" = None) -> tuple[int, int] | None:
        """Called by a prompt's job before its mask is written: keep the segment if this
        prompt is a correction (``None``: when ``auto_correct`` is on and the frame was
        propagated); returns the segment (``None``: not a correction). A ``prompt`` the
        re-propagation could not take is refused here (:meth:`check_prompt`)."""
        obj, frame = key
        if correct is None:
            correct = self.auto_correct and self.was_propagated(obj, frame)
        if not correct:
            return None
        if prompt is not None:
            self.check_prompt(prompt)
        start, end = self.segment(obj, frame)
        episode = (frame, start, end)
        with self.store_lock:
            kept = self._episodes.get(obj)
            newest = segments.newest_version(self.store, obj)
            if kept is not None and kept[0] == episode and (
                    kept[1].group.attrs.get("state") == "recording"
                    or (newest is not None and newest.number == kept[1].number)):
                kept[1].group.attrs["state"] = "recording"  # the burst goes on: one version
            else:
                self._episodes[obj] = (episode, self.begin(obj, frame, start, end))
        return start, end

    def check_prompt(self, prompt: "Prompt") -> None:
        """Refuse (one line) a correction prompt that the re-propagation cannot take, before
        anything is written; every prompt of a video's session can be re-propagated."""

    def begin(self, obj_id: int, frame: int, start: int, end: int) -> Recording:
        """Start the version of a correction of ``obj_id`` on ``frame`` over ``start..end``."""
        return segments.begin_correction(self.store, obj_id, frame, start, end, who=self.activity.annotator)

    def repropagate(self, obj_id: int, frame: int, start: int, end: int) -> Correction:
        """Propagate ``obj_id`` alone over ``start..end`` into the project."""
        self._correcting = (obj_id, start, end)
        self.events.correction_started.emit(obj_id, start, end)
        began = time.perf_counter()
        recording = self._episodes[obj_id][1]
        try:
            stops = self.run_segment(obj_id, frame, start, end, RunVersions({obj_id: recording}))
        finally:
            self._correcting = None
            with self.store_lock:  # what was written is a version, however the run ended
                recording.finish(correction_frame=frame)
        seconds = time.perf_counter() - began
        seen = sorted(recording.seen) or [frame]
        correction = Correction(obj_id, frame, seen[0], seen[-1], seconds, segment=(start, end),
                                stops=stops, version=recording.number)
        self.last_correction = correction
        self.activity.log("propagate", object=obj_id, frames=(correction.start, correction.end),
                          seconds=seconds, correction=True)
        self.events.labels_changed.emit(correction.start, correction.end)
        self.events.correction_finished.emit(correction)
        return correction

    def run_segment(self, obj_id: int, frame: int, start: int, end: int,
                    versions: RunVersions) -> dict[str, int]:
        """The re-propagation itself, each frame's pre-image kept in ``versions``: the
        session's tracker from ``frame`` both ways over ``start..end``; returns where a
        direction stopped early."""
        from ..pipeline import Request, track_in_store

        rule = self.early_stop()
        for _ in track_in_store(self.store, self.engine.source, model=self.engine.require_model(),
                                request=Request("both", start, end, [obj_id]),
                                tracker=self.engine.tracker, cancel=self.stop,
                                versions=versions, early_stop=rule):
            pass
        return dict(rule.stops) if rule is not None else {}

    def request_undo(self, obj_id: int) -> Future:
        """Restore the object's newest version (masks, rows, prompts: its last change undone)
        on the compute thread; the future gives the :class:`Correction` undone."""
        if self.undo_span(obj_id) is None:
            raise PromptError(f"object {obj_id} has no correction to undo")
        return self.request_restore(obj_id, None)

    def request_restore(self, obj_id: int, number: int | None) -> Future:
        """Restore the object to how it was before version ``number`` (``None``: undo its
        newest) on the compute thread; the future gives the :class:`Correction` undone."""
        future: Future = Future()

        def restore() -> tuple[int, int]:
            if number is None:
                return segments.undo_segment(self.store, obj_id, who=self.activity.annotator)
            info = segments.restore_version(self.store, obj_id, number, who=self.activity.annotator)
            return info.span or (0, -1)

        def run() -> None:
            try:
                with self.store_lock:
                    start, end = restore()
                    self._episodes.pop(obj_id, None)
                    changed = self.prompt_book.reload(obj_id, 0, self.store.num_frames - 1,
                                                      plane_prompts(self.store).prompts)
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
