"""A session's propagation: the run generator, what it announces, and its iterator.

The request is planned once by the session (:func:`~napari_sam2_track.passes.plan_passes`
over its prompts) before any work starts. The run (:func:`propagate`) then waits for prompts
still being computed and drives :func:`~napari_sam2_track.pipeline.track_in_store` with the
session's tracker; a :class:`RunReport` turns its progress into the session's events and its
interaction log; a :class:`PropagationRun` frees the session however the run ends.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any

from .events import RunFinished, RunStarted, SessionEvents

if TYPE_CHECKING:
    from ..engine.models import LoadedModel
    from ..passes import Plan
    from ..pipeline import Progress, Request
    from ..project import ProjectStore
    from .activity import ActivityLog
    from .engine import SessionEngine

__all__ = ["LABELS_EVENT_INTERVAL", "PropagationRun", "RunReport", "propagate"]

#: the least time between two ``labels_changed`` events of a run
LABELS_EVENT_INTERVAL = 0.1


class RunReport:
    """What a run announces: ``run_started``, ``run_progressed``, ``labels_changed`` (at most
    every :data:`LABELS_EVENT_INTERVAL` seconds, over the frames written), ``error``, and a
    ``propagate`` event in the interaction log. ``outcome`` holds the fields of
    :class:`~.events.RunFinished` once the run has started."""

    def __init__(self, events: SessionEvents, activity: "ActivityLog", plan: "Plan"):
        self.events = events
        self.activity = activity
        self.plan = plan
        self.outcome: dict[str, Any] = {}
        self._order: list[int] = []  # frames in the order computed (the writer's order too)
        self._announced = 0
        self._last_event = time.monotonic()
        self._began = time.monotonic()

    def begin(self) -> None:
        self._began = self._last_event = time.monotonic()
        self.outcome.update(run_id=None, status="failed", frames=0, error=None)

    def progressed(self, p: "Progress") -> None:
        if self.outcome["run_id"] is None:
            self.outcome["run_id"] = p.run_id
            plan = self.plan
            self.events.run_started.emit(RunStarted(p.run_id, plan.direction, plan.start, plan.end,
                                                    p.total))
        self._order.append(p.frame)
        self.outcome["frames"] = p.computed
        self.events.run_progressed.emit(p)
        if time.monotonic() - self._last_event >= LABELS_EVENT_INTERVAL:
            self._announce(p.written)

    def ended(self, status: str, exc: BaseException | None = None) -> None:
        self.outcome["status"] = status
        if exc is not None:
            self.outcome["error"] = str(exc)
            self.events.error.emit(exc)

    def close(self) -> None:
        """The writer has finished: announce the rest and log the run."""
        self._announce(len(self._order))
        if self._order:
            self.activity.log("propagate", frames=(min(self._order), max(self._order)),
                              objects=sorted(self.plan.objects),
                              seconds=time.monotonic() - self._began, direction=self.plan.direction)

    def _announce(self, upto: int) -> None:
        if upto > self._announced:
            done = self._order[self._announced:upto]
            self.events.labels_changed.emit(min(done), max(done))
            self._announced, self._last_event = upto, time.monotonic()


def propagate(
    engine: "SessionEngine",
    store: "ProjectStore",
    request: "Request",
    cancel: threading.Event | None,
    report: RunReport,
) -> Iterator["Progress"]:
    """The run itself (on the caller's thread, normally a worker): waits for pending prompts,
    then propagates ``request`` with the session's tracker into ``store``."""
    def track(model: "LoadedModel") -> Iterator["Progress"]:
        from ..pipeline import track_in_store

        return track_in_store(store, engine.source, model=model, request=request, cancel=cancel,
                              tracker=engine.tracker)

    return reported_run(engine, cancel, report, track)


def reported_run(engine: "SessionEngine", cancel: threading.Event | None, report: RunReport,
                 track: "Callable[[LoadedModel], Iterator[Progress]]") -> Iterator["Progress"]:
    """``track(model)`` once the prompts still being computed are done, its progress and its
    end (completed, cancelled or failed) announced through ``report``."""
    engine.wait_idle(prefetch=True)
    report.begin()
    try:
        for p in track(engine.require_model()):
            report.progressed(p)
            yield p
        report.ended("cancelled" if cancel is not None and cancel.is_set() else "completed")
    except GeneratorExit:
        report.ended("cancelled")
        raise
    except BaseException as exc:
        report.ended("failed", exc)
        raise
    finally:
        report.close()


class PropagationRun:
    """Iterator over a propagation's progress. It frees the session and announces
    ``run_finished`` when the run ends, fails or is closed (even before its first frame)."""

    def __init__(self, events: SessionEvents, gen: Iterator["Progress"], running: threading.Lock,
                 outcome: dict[str, Any]):
        self._events = events
        self._gen = gen
        self._running = running
        self._outcome = outcome  # filled in by the generator once it has started
        self._held = True

    def __iter__(self) -> "PropagationRun":
        return self

    def __next__(self) -> "Progress":
        try:
            return next(self._gen)
        except BaseException:
            self._end()
            raise

    def close(self) -> None:
        """Stop the run after the current frame (what was written stays written)."""
        try:
            self._gen.close()  # type: ignore[attr-defined]
        finally:
            self._end()

    def _end(self) -> None:
        if not self._held:
            return
        self._held = False
        self._running.release()
        self._events.running_changed.emit(False)
        if self._outcome:
            self._events.run_finished.emit(RunFinished(**self._outcome))

    def __del__(self) -> None:
        try:
            self.close()
        except Exception:  # noqa: BLE001 - interpreter shutdown
            pass
