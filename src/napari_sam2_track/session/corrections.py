"""Corrections of an :class:`~.core.AnnotationSession`: a prompt on a tracked frame
re-propagates one object between its neighbouring keyframes, and can be undone.

A prompt on frame ``t`` of object ``o`` is a *correction* when it is requested with
:meth:`~CorrectionsMixin.request_correction`, or when ``session.auto_correct`` is on and an
earlier propagation produced ``o``'s mask on ``t`` (the Review dock turns it on). The prompt's
job on the compute thread then

1. keeps ``o``'s masks, table rows and prompts on the segment ``[a, b]`` between its
   neighbouring keyframes (:func:`~napari_sam2_track.review.segments.snapshot_segment`; a burst
   of prompts on the same frame is one correction, kept once),
2. computes and writes the prompt's mask as any prompt,
3. re-propagates ``o`` alone over ``[a, b]`` (both directions from ``t``) with the session's
   tracker, unless a newer prompt on ``(o, t)`` is already waiting (its job does it).

Nothing outside ``[a, b]`` and no other object is written. :meth:`~CorrectionsMixin.request_undo`
restores the segment byte for byte; it refuses once the segment changed after the correction
(undoing would lose that change). All of it runs on the compute thread, never the caller's.
"""

from __future__ import annotations

import threading
import time
from concurrent.futures import Future
from dataclasses import dataclass

import numpy as np

from ..errors import PromptError
from ..project import COL, STATE_NOT_RUN
from ..review import segments
from .events import KeyframePrompt, PromptKey

__all__ = ["Correction", "CorrectionsMixin", "keyframe_prompt", "propagated_around"]


@dataclass(frozen=True)
class Correction:
    """A segment re-propagated after a prompt (``undone``: restored by an undo)."""

    object: int
    frame: int
    start: int
    end: int
    seconds: float = 0.0
    undone: bool = False


def keyframe_prompt(p) -> KeyframePrompt:
    """The session's form of a stored :class:`~napari_sam2_track.prompts.Prompt`."""
    return KeyframePrompt(
        clicks=tuple((float(x), float(y), int(v)) for (x, y), v in zip(p.points, p.labels)),
        box=None if p.box is None else tuple(float(b) for b in p.box),
        mask=p.mask is not None,
    )


def propagated_around(store, obj_id: int, frame: int, start: int, end: int) -> tuple[int, int]:
    """The run of frames around ``frame`` inside ``start..end`` that hold a result for
    ``obj_id`` (its table's ``state`` is not ``not_run``: propagated, absent, prompted or
    edited); ``frame`` itself always belongs."""
    try:
        states = np.asarray(store.group[f"objects/{obj_id}/table"][start : end + 1, COL["state"]], np.float64)
    except KeyError:
        return frame, frame
    done = np.isfinite(states) & (states != STATE_NOT_RUN)
    done[frame - start] = True
    gaps = np.flatnonzero(~done)
    before, after = gaps[gaps < frame - start], gaps[gaps > frame - start]
    first = start + (int(before[-1]) + 1 if len(before) else 0)
    last = start + (int(after[0]) - 1 if len(after) else end - start)
    return first, last


class CorrectionsMixin:
    """Segment re-propagation and its undo (mixed into :class:`~.core.AnnotationSession`)."""

    #: a prompt on a frame a propagation produced re-propagates its segment (see the module)
    auto_correct: bool = False

    def _init_corrections(self) -> None:
        self._episodes: dict[int, tuple[int, int, int]] = {}  # obj -> (frame, a, b) snapshotted
        self._correcting: tuple[int, int, int] | None = None
        self._stop_correction = threading.Event()  # set by close(): the run stops after a frame
        self.last_correction: Correction | None = None

    # ---------------------------------------------------------------- queries
    def correction_segment(self, obj_id: int, frame: int) -> tuple[int, int]:
        """The frames ``(a, b)`` a correction of ``obj_id`` on ``frame`` re-propagates: those
        between its neighbouring keyframes, clipped to the frames around ``frame`` that a
        propagation produced (a correction never extends into frames never propagated)."""
        start, end = segments.correction_segment(self.store, obj_id, frame)
        return propagated_around(self.store, obj_id, frame, start, end)

    def was_propagated(self, obj_id: int, frame: int) -> bool:
        """Whether a propagation produced ``obj_id``'s mask on ``frame`` (its row has a run)."""
        try:
            run = float(self.store.group[f"objects/{obj_id}/table"][frame, COL["run"]])
        except KeyError:
            return False
        return bool(np.isfinite(run) and run > 0)

    def undo_segment(self, obj_id: int | None = None) -> tuple[int, int] | None:
        """The frames an undo of the object's last correction would restore, if any."""
        obj_id = self._obj(obj_id)
        return segments.segment_snapshot(self.store, obj_id)

    @property
    def correcting(self) -> tuple[int, int, int] | None:
        """``(object, start, end)`` while a correction re-propagates, else ``None``."""
        return self._correcting

    # --------------------------------------------------------------- requests
    def request_correction(self, frame: int, clicks=None, box=None, obj_id: int | None = None) -> Future:
        """Set the object's prompt on ``frame`` (as :meth:`request_prompt`) and re-propagate
        its segment. The future gives the :class:`Correction` once the segment is written, or
        ``None`` when a newer prompt on that frame replaced this one."""
        if not clicks and box is None:
            raise PromptError("a correction needs clicks or a box on the frame")
        done: Future = Future()
        self._request_prompt(frame, clicks, box, obj_id, correct=True, done=done)
        return done

    def correct(self, frame: int, clicks=None, box=None, obj_id: int | None = None) -> Correction | None:
        """:meth:`request_correction`, waiting for the re-propagated segment."""
        return self.request_correction(frame, clicks, box, obj_id).result()

    def request_undo(self, obj_id: int | None = None) -> Future:
        """Restore the segment of the object's last correction (masks, rows, prompts) on the
        compute thread; the future gives the :class:`Correction` undone."""
        obj_id = self._obj(obj_id)
        self._ensure_idle("undo a correction")
        span = segments.segment_snapshot(self.store, obj_id)
        if span is None:
            raise PromptError(f"object {obj_id} has no correction to undo")
        future: Future = Future()

        def run() -> None:
            try:
                with self._store_lock:
                    start, end = segments.undo_segment(self.store, obj_id)
                    self._episodes.pop(obj_id, None)
                    changed = self._reload_prompts(obj_id, start, end)
                self._drop_tracker()  # its memory holds the corrected segment: rebuilt from the store
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

        self._compute.submit(run)
        return future

    def undo_correction(self, obj_id: int | None = None) -> Correction:
        """:meth:`request_undo`, waiting until the segment is restored."""
        return self.request_undo(obj_id).result()

    # ------------------------------------------------- on the compute thread
    def _correction_start(self, key: PromptKey, correct: bool | None) -> tuple[int, int] | None:
        """Called by a prompt's job before its mask is written: keep the segment if this
        prompt is a correction; returns the segment (``None``: not a correction)."""
        obj, frame = key
        if correct is None:
            correct = self.auto_correct and self.was_propagated(obj, frame)
        if not correct:
            return None
        start, end = self.correction_segment(obj, frame)
        episode = (frame, start, end)
        with self._store_lock:
            if self._episodes.get(obj) != episode or segments.segment_snapshot(self.store, obj) != (start, end):
                segments.snapshot_segment(self.store, obj, start, end)
                self._episodes[obj] = episode
        return start, end

    def _repropagate(self, obj_id: int, frame: int, start: int, end: int) -> Correction:
        """Propagate ``obj_id`` alone over ``start..end`` into the project."""
        from ..pipeline import track

        self._correcting = (obj_id, start, end)
        self.events.correction_started.emit(obj_id, start, end)
        began = time.perf_counter()
        try:
            for _ in track(self.source, None, self.store, model=self.model, direction="both",
                           start=start, end=end, obj_ids=[obj_id], tracker=self.tracker,
                           cancel=self._stop_correction):
                pass
        finally:
            self._correcting = None
        with self._store_lock:
            segments.mark_corrected(self.store, obj_id)
        seconds = time.perf_counter() - began
        correction = Correction(obj_id, frame, start, end, seconds)
        self.last_correction = correction
        self.activity.log("propagate", object=obj_id, frames=(start, end), seconds=seconds, correction=True)
        self.events.labels_changed.emit(start, end)
        self.events.correction_finished.emit(correction)
        return correction

    def _reload_prompts(self, obj_id: int, start: int, end: int) -> list[PromptKey]:
        """Make the session's prompts of ``obj_id`` on ``start..end`` the stored ones again."""
        stored = {(p.object, p.frame): keyframe_prompt(p) for p in self.store.prompts.prompts
                  if p.object == obj_id and start <= p.frame <= end}
        with self._state_lock:
            ours = [k for k in self._prompts if k[0] == obj_id and start <= k[1] <= end]
            for key in ours:
                self._prompts.pop(key)
            for key in set(ours) | set(stored):
                self._bump(key)  # a prompt still waiting for the model is dropped
            self._prompts.update(stored)
        return sorted(set(ours) | set(stored))
