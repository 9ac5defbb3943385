"""The model side of a session: the loaded model, its live tracker and the compute thread.

The tracker is made on first use and seeded with the prompts stored in the project
(:mod:`~napari_sam2_track.seeding`); it keeps its memory between propagations, so a correction
reuses it. All model work of the session runs in order on the compute thread
(:class:`~.compute.ComputeThread`); a propagation runs on its caller's thread once the compute
thread is idle.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from ..errors import ModelError
from .compute import ComputeThread

if TYPE_CHECKING:
    from ..engine.models import LoadedModel
    from ..engine.tracker import StreamingTracker
    from ..project import ProjectStore
    from ..sources import FrameSource

__all__ = ["SessionEngine"]


class SessionEngine:
    """Model, tracker and compute thread of one session.

    Args:
        source: the video.
        store: the project whose stored prompts seed a new tracker.
        on_error: called (on the compute thread) with any exception a job raises.
        on_busy: called with whether jobs are queued or running.
    """

    def __init__(self, source: "FrameSource", store: "ProjectStore",
                 on_error: Callable[[BaseException], Any],
                 on_busy: Callable[[bool], Any] | None = None):
        self.source = source
        self.store = store
        self.model: "LoadedModel | None" = None
        #: the jobs of the session's model work (and of store changes queued behind them)
        self.compute = ComputeThread(on_error, on_busy)
        self._tracker: "StreamingTracker | None" = None
        self._lock = threading.RLock()

    def set_model(self, model: "LoadedModel | None") -> None:
        """Use ``model`` from now on; the tracker is rebuilt (after the queued jobs)."""
        self.model = model
        self.compute.submit(self.drop_tracker)

    def require_model(self) -> "LoadedModel":
        if self.model is None:
            raise ModelError("no model loaded: choose a model and device and press 'Load model'")
        return self.model

    @property
    def tracker(self) -> "StreamingTracker":
        """The live tracker, made on first use with the stored prompts applied."""
        with self._lock:
            if self._tracker is None:
                from ..engine.tracker import StreamingTracker
                from ..seeding import seed_tracker
                from .prompt_book import plane_prompts

                tracker = StreamingTracker(self.require_model(), self.source)
                seed_tracker(tracker, plane_prompts(self.store), self.store.prompt_mask)
                self._tracker = tracker
            return self._tracker

    def drop_tracker(self) -> None:
        """Forget the tracker and its memory (the next use rebuilds it from the project)."""
        with self._lock:
            tracker, self._tracker = self._tracker, None
        if tracker is not None:
            tracker.close()

    def clear_prompt(self, obj_id: int, frame: int) -> None:
        """Queue the removal of a prompt from the tracker (if one was made)."""
        self.compute.submit(lambda: self._tracker is not None and self._tracker.clear_prompt(obj_id, frame))

    def forget_object(self, obj_id: int) -> None:
        """Remove an object from the tracker, if it has one (on the compute thread)."""
        tracker = self._tracker
        if tracker is not None and obj_id in tracker.obj_ids:
            tracker.remove_object(obj_id)

    def wait_idle(self, timeout: float | None = None, *, prefetch: bool = False) -> bool:
        """Wait until no job is queued or running (``prefetch``: nor an embedding prefetch)."""
        return self.compute.wait_idle(timeout, prefetch=prefetch)
