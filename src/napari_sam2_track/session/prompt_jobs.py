"""The job of a requested prompt, on the session's compute thread.

A prompt is recorded in the :class:`~.prompt_book.PromptBook` at once; its job then computes
the mask with the live tracker, writes it to the project (state ``prompted``) and announces
it, unless a newer prompt on the same object and frame (or a deletion) replaced it meanwhile.
A failed prompt shows the one before it again. A correction (:mod:`.corrections`) keeps its
segment before the mask is written and re-propagates it after.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from concurrent.futures import Future
from typing import TYPE_CHECKING, Any

import numpy as np

from ..project import STATE_PROMPTED
from ..prompts import Prompt
from .events import KeyframePrompt, PromptKey, SessionEvents

if TYPE_CHECKING:
    from ..engine.tracker import StreamingTracker
    from ..project import ProjectStore
    from .corrections import Corrections
    from .engine import SessionEngine
    from .prompt_book import PromptBook

__all__ = ["PromptJobs"]


class PromptJobs:
    """Queues the jobs of requested prompts (see the module docstring).

    Args:
        store: the project; written under ``store_lock``.
        events: ``prompts_changed``, ``keyframes_changed``, ``prompt_started``/``finished``,
            ``labels_changed`` and ``error`` are emitted here.
        engine: its tracker computes the masks, its compute thread runs the jobs.
        prompt_book: the prompts as requested, with their versions.
        corrections: decides whether a prompt is a correction and re-propagates it.
        closed: whether the session was closed (results are then dropped).
    """

    def __init__(self, store: "ProjectStore", store_lock: threading.RLock, events: SessionEvents,
                 engine: "SessionEngine", prompt_book: "PromptBook", corrections: "Corrections",
                 closed: Callable[[], bool]):
        self.store = store
        self.store_lock = store_lock
        self.events = events
        self.engine = engine
        self.prompt_book = prompt_book
        self.corrections = corrections
        self._closed = closed

    def current(self, key: PromptKey, version: int) -> bool:
        """Whether request ``version`` of ``key`` is still the one to compute."""
        return self.prompt_book.is_current(key, version) and not self._closed()

    def enqueue(self, key: PromptKey, state: KeyframePrompt,
                compute: Callable[["StreamingTracker"], np.ndarray], prompt: Prompt, region: Any,
                correct: bool | None = None, done: Future | None = None) -> Future:
        """Record ``state`` as the prompt of ``key`` and queue its job: ``compute(tracker)``
        gives the mask; ``prompt`` (and ``region``, a mask prompt's pixels) is stored with
        it. ``correct``: re-propagate its segment (``None``: when
        ``auto_correct`` is on and the frame was propagated); ``done`` gets the correction."""
        future: Future = Future()

        def finish(result=None, exc: BaseException | None = None) -> None:
            if done is not None and not done.done():
                done.set_result(result) if exc is None else done.set_exception(exc)

        version, previous = self.prompt_book.request(key, state)
        self.events.prompts_changed.emit(*key)
        if previous is None:  # a new keyframe
            self.events.keyframes_changed.emit(key[0])

        def run() -> None:
            if not self.current(key, version):
                future.set_result(None)
                finish()
                return
            self.events.prompt_started.emit(*key)
            segment = None
            try:
                tracker = self.engine.tracker
                segment = self.corrections.start(key, correct, prompt)  # before the mask is written
                tracker.prefetch_embedding(key[1])
                mask = compute(tracker)
                with self.store_lock:
                    if not self.current(key, version):  # a newer prompt or a deletion came
                        future.set_result(None)
                        finish()
                        return
                    self.store.put_prompt(prompt, region)
                    self._write_keyframe(key[0], key[1], mask)
                    self.prompt_book.settle(key, version, state)
                future.set_result(mask)
                self.events.labels_changed.emit(key[1], key[1])
            except BaseException as exc:  # noqa: BLE001 - reported as an event and on the future
                self._revert(key, version, previous)
                future.set_exception(exc)
                finish(exc=exc)
                self.events.error.emit(exc)
                return
            finally:
                self.events.prompt_finished.emit(*key)
            if segment is None or not self.current(key, version):
                finish()  # not a correction, or a newer prompt's job re-propagates
                return
            try:
                finish(self.corrections.repropagate(key[0], key[1], *segment))
            except BaseException as exc:  # noqa: BLE001 - reported as an event and on the future
                finish(exc=exc)
                self.events.error.emit(exc)

        self.engine.compute.submit(run, key=key, dropped=lambda: (future.set_result(None), finish()))
        return future

    def _revert(self, key: PromptKey, version: int, previous: KeyframePrompt | None) -> None:
        """A prompt failed: show the one before it again (unless a newer one came meanwhile)."""
        if not self.prompt_book.revert(key, version, previous):
            return
        self.events.prompts_changed.emit(*key)
        if previous is None:
            self.events.keyframes_changed.emit(key[0])

    def _write_keyframe(self, obj_id: int, frame: int, mask: np.ndarray) -> None:
        self.store.merge_labels(frame, {obj_id: mask})
        self.store.write_row(obj_id, frame, mask, presence=np.nan, state=STATE_PROMPTED, run=0)
