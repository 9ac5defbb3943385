"""The session's interaction log: every prompt, edit, propagation, navigation and undo.

An :class:`ActivityLog` appends :mod:`napari_sam2_track.review.analytics` events to the
project's ``review/events.jsonl`` on a thread of its own, so the caller (often the GUI thread)
never waits for the disk. The time of an event is taken when it is logged, not when it is
written. Navigation is written without ``fsync`` (it is frequent and cheap to lose); the other
events are durable once written. :meth:`ActivityLog.flush` waits until all are on disk.
"""

from __future__ import annotations

import atexit
import datetime as _dt
import queue
import threading
import weakref
from typing import Any

__all__ = ["ActivityLog"]


#: Activity logs of this process; their queued events are written at interpreter exit.
_LIVE: "weakref.WeakSet[ActivityLog]" = weakref.WeakSet()


@atexit.register
def _flush_all() -> None:
    for log in list(_LIVE):
        log.flush(timeout=10.0)


class ActivityLog:
    """Events of one annotator in one project, written in order off the caller's thread.

    Args:
        store: the open project; nothing is logged when it is read-only.
        annotator: the name the events carry (default: the reviewer setting, else the OS user).
        on_error: called (on the writer thread) with an exception a write raised.
    """

    def __init__(self, store: Any, annotator: str | None = None, on_error=None):
        from ..review.models import default_reviewer

        self.store = store
        self.annotator = annotator or default_reviewer()
        self.enabled = not getattr(store, "read_only", False)
        self.on_error = on_error
        self._queue: queue.Queue = queue.Queue()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        _LIVE.add(self)

    def log(self, kind: str, *, object: int | None = None,  # noqa: A002 - the record's field
            frames: tuple[int, int] | None = None, **details: Any) -> None:
        """Queue one event (``kind`` as in :func:`~napari_sam2_track.review.analytics.log_event`)."""
        if not self.enabled:
            return
        event = dict(kind=kind, annotator=self.annotator, object=object, frames=frames,
                     time=_dt.datetime.now(_dt.timezone.utc), durable=kind != "navigate", **details)
        with self._lock:
            self._queue.put(event)
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._loop, name="sam2-activity", daemon=True)
                self._thread.start()

    def flush(self, timeout: float | None = None) -> None:
        """Wait until every queued event is written."""
        done = threading.Event()
        with self._lock:
            if self._thread is None or not self._thread.is_alive():
                return
            self._queue.put(done)
        done.wait(timeout)

    def _loop(self) -> None:
        from ..review.analytics import log_event

        while True:
            try:
                item = self._queue.get(timeout=5.0)
            except queue.Empty:
                with self._lock:
                    if self._queue.empty():
                        self._thread = None
                        return
                continue
            if isinstance(item, threading.Event):
                item.set()
                continue
            kind = item.pop("kind")
            try:
                log_event(self.store, kind, **item)
            except Exception as exc:  # noqa: BLE001 - reported; the session goes on
                if self.on_error is not None:
                    self.on_error(exc)
