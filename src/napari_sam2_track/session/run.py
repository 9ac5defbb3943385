"""A session's propagation: request checks, the run generator and its events."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from ..errors import PromptError
from .events import KeyframePrompt, PromptKey, RunFinished, RunStarted

if TYPE_CHECKING:
    from ..pipeline import Progress
    from .core import AnnotationSession

__all__ = ["PropagationRun", "check_request", "propagate"]

#: the least time between two ``labels_changed`` events of a run
LABELS_EVENT_INTERVAL = 0.1


def check_request(
    prompts: dict[PromptKey, KeyframePrompt],
    num_frames: int,
    direction: str,
    start: int | None,
    end: int | None,
    obj_ids: list[int] | None,
) -> tuple[int, int]:
    """Refuse a propagation request the tracker would refuse, before any work starts
    (the same checks as ``StreamingTracker.plan``). Returns the inclusive frame range."""
    start = 0 if start is None else int(start)
    end = num_frames - 1 if end is None else int(end)
    if not (0 <= start <= end < num_frames):
        raise PromptError(f"frame range {start}-{end} is outside the video (0..{num_frames - 1})")
    if direction not in ("forward", "backward", "both"):
        raise PromptError(f"direction must be forward, backward or both, not {direction!r}")
    prompted = sorted({o for o, _ in prompts})
    chosen = prompted if obj_ids is None else list(obj_ids)
    unknown = [o for o in chosen if o not in prompted]
    if unknown:
        raise PromptError(f"objects {unknown} have no prompts (prompted objects: {prompted})")
    if not any(o in chosen and start <= f <= end for o, f in prompts):
        raise PromptError(
            f"no prompt for objects {chosen} in frames {start}-{end}; add a prompt there first"
        )
    return start, end


def propagate(
    session: "AnnotationSession",
    direction: str,
    start: int | None,
    end: int | None,
    cancel: threading.Event | None,
    obj_ids: list[int] | None,
    outcome: dict[str, Any],
) -> Iterator["Progress"]:
    """The run itself (on the caller's thread, normally a worker): waits for pending prompts,
    then drives :func:`~napari_sam2_track.pipeline.track` with the session's tracker. What it
    ended with is left in ``outcome`` (the fields of :class:`RunFinished`)."""
    from ..pipeline import track

    events = session.events
    first, last = check_request(session.prompts(), session.num_frames, direction, start, end, obj_ids)
    session.wait_idle(prefetch=True)
    began = time.monotonic()
    order: list[int] = []  # frames in the order computed; the writer writes them in this order
    announced = 0
    last_event = time.monotonic()
    outcome.update(run_id=None, status="failed", frames=0, error=None)

    def announce(upto: int) -> None:
        nonlocal announced, last_event
        if upto > announced:
            done = order[announced:upto]
            events.labels_changed.emit(min(done), max(done))
            announced, last_event = upto, time.monotonic()

    try:
        for p in track(
            session.source,
            None,
            session.store,
            model=session.model,
            direction=direction,
            start=start,
            end=end,
            cancel=cancel,
            obj_ids=obj_ids,
            tracker=session.tracker,
        ):
            if outcome["run_id"] is None:
                outcome["run_id"] = p.run_id
                events.run_started.emit(RunStarted(p.run_id, direction, first, last, p.total))
            order.append(p.frame)
            outcome["frames"] = p.computed
            events.run_progressed.emit(p)
            if time.monotonic() - last_event >= LABELS_EVENT_INTERVAL:
                announce(p.written)
            yield p
        cancelled = cancel is not None and cancel.is_set()
        outcome["status"] = "cancelled" if cancelled else "completed"
    except GeneratorExit:
        outcome["status"] = "cancelled"
        raise
    except BaseException as exc:
        outcome["error"] = str(exc)
        events.error.emit(exc)
        raise
    finally:
        announce(len(order))  # the writer has finished when track() ends
        if order:
            objects = sorted(obj_ids) if obj_ids is not None else sorted({o for o, _ in session.prompts()})
            session.activity.log("propagate", frames=(min(order), max(order)), objects=objects,
                                 seconds=time.monotonic() - began, direction=direction)


class PropagationRun:
    """Iterator over a propagation's progress. It frees the session and announces
    ``run_finished`` when the run ends, fails or is closed (even before its first frame)."""

    def __init__(self, events, gen: Iterator["Progress"], running: threading.Lock, outcome: dict[str, Any]):
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
