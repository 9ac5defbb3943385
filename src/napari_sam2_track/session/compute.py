"""The session's compute thread: model work off the caller's (the GUI's) thread.

Jobs run one at a time, in order. A job with a ``key`` (an object and frame) replaces a job
with the same key that is still waiting, so a burst of clicks on one object and frame costs
one model call for the newest prompt, not one per click. A job without a key (deleting a
keyframe, removing an object) is a barrier: keyed jobs behind it never merge with jobs before
it. Prefetching an embedding is the lowest priority: it waits until no job is queued and the
frame has stayed current for ``prefetch_delay`` seconds, and only the newest request counts.
"""

from __future__ import annotations

import atexit
import threading
import time
import weakref
from collections.abc import Callable, Hashable
from dataclasses import dataclass
from typing import Any

__all__ = ["ComputeThread"]

#: Compute threads alive in this process, stopped at interpreter exit (see ``_stop_all``).
_LIVE: "weakref.WeakSet[ComputeThread]" = weakref.WeakSet()
#: How long exit waits for the model call a compute thread is running.
EXIT_TIMEOUT = 60.0


@atexit.register
def _stop_all() -> None:
    """Let each compute thread finish its model call before the interpreter goes away: a daemon
    thread still inside torch when the process exits aborts it ("terminate called ...")."""
    for compute in list(_LIVE):
        compute.close(timeout=EXIT_TIMEOUT)


@dataclass
class _Job:
    run: Callable[[], Any]
    key: Hashable | None
    dropped: Callable[[], Any] | None  # called instead of ``run`` when a newer job replaced it


class ComputeThread:
    """One daemon thread that runs submitted jobs in order (see the module docstring).

    Args:
        on_error: called (on the thread) with any exception a job raises.
        on_busy: called with True when work arrives on an idle queue and with False when the
            last queued job is done (prefetching does not count).
        prefetch_delay: seconds a prefetch request must stay the newest before it starts.
    """

    def __init__(
        self,
        on_error: Callable[[BaseException], Any],
        on_busy: Callable[[bool], Any] | None = None,
        *,
        prefetch_delay: float = 0.1,
        name: str = "sam2-prompts",
    ):
        self.on_error = on_error
        self.on_busy = on_busy
        self.prefetch_delay = prefetch_delay
        _LIVE.add(self)
        self._name = name
        self._cond = threading.Condition()
        self._jobs: list[_Job] = []
        self._prefetch: tuple[Callable[[], Any], float] | None = None
        self._active = 0  # 1 while a job runs, 2 while a prefetch runs
        self._closed = False
        self._thread: threading.Thread | None = None

    # ----------------------------------------------------------------- submitting
    def submit(
        self,
        run: Callable[[], Any],
        key: Hashable | None = None,
        dropped: Callable[[], Any] | None = None,
    ) -> bool:
        """Queue ``run``; returns True when it replaced a waiting job with the same key."""
        job = _Job(run, key, dropped)
        replaced = None
        with self._cond:
            if self._closed:
                raise RuntimeError("the compute thread is closed")
            was_idle = not self._jobs and self._active != 1
            if key is not None:
                for i in range(len(self._jobs) - 1, -1, -1):
                    if self._jobs[i].key is None:
                        break  # barrier
                    if self._jobs[i].key == key:
                        replaced, self._jobs[i] = self._jobs[i], job
                        break
            if replaced is None:
                self._jobs.append(job)
            self._ensure_thread()
            self._cond.notify_all()
        if replaced is not None and replaced.dropped is not None:
            replaced.dropped()
        if was_idle and self.on_busy is not None:
            self.on_busy(self.busy)
        return replaced is not None

    def prefetch(self, run: Callable[[], Any]) -> None:
        """Run ``run`` when idle (replacing any prefetch that has not started yet)."""
        with self._cond:
            if self._closed:
                return
            self._prefetch = (run, time.monotonic())
            self._ensure_thread()
            self._cond.notify_all()

    def cancel_prefetch(self) -> None:
        with self._cond:
            self._prefetch = None

    # ------------------------------------------------------------------- waiting
    @property
    def busy(self) -> bool:
        """Whether jobs are queued or running (prefetching does not count)."""
        with self._cond:
            return bool(self._jobs) or self._active == 1

    def wait_idle(self, timeout: float | None = None, *, prefetch: bool = False) -> bool:
        """Block until no job is queued or running (``prefetch``: nor a prefetch running).

        Returns False on timeout. Never call it from the thread itself.
        """
        end = None if timeout is None else time.monotonic() + timeout
        with self._cond:
            while self._jobs or self._active == 1 or (prefetch and self._active == 2):
                left = None if end is None else end - time.monotonic()
                if left is not None and left <= 0:
                    return False
                self._cond.wait(left)
        return True

    def close(self, timeout: float | None = 0.0) -> None:
        """Drop queued work and stop the thread after the job it is running."""
        with self._cond:
            self._closed = True
            dropped = self._jobs
            self._jobs = []
            self._prefetch = None
            self._cond.notify_all()
            thread = self._thread
        for job in dropped:
            if job.dropped is not None:
                job.dropped()
        if thread is not None and timeout != 0.0 and thread is not threading.current_thread():
            thread.join(timeout)

    # -------------------------------------------------------------------- thread
    def _ensure_thread(self) -> None:
        if self._thread is None or not self._thread.is_alive():
            self._thread = threading.Thread(target=self._loop, name=self._name, daemon=True)
            self._thread.start()

    def _next(self) -> tuple[_Job | None, Callable[[], Any] | None]:
        with self._cond:
            while True:
                if self._closed:
                    return None, None
                if self._jobs:
                    self._active = 1
                    return self._jobs.pop(0), None
                if self._prefetch is not None:
                    run, since = self._prefetch
                    wait = since + self.prefetch_delay - time.monotonic()
                    if wait <= 0:
                        self._prefetch = None
                        self._active = 2
                        return None, run
                    self._cond.wait(wait)
                    continue
                self._cond.wait()

    def _loop(self) -> None:
        while True:
            job, prefetch = self._next()
            if job is None and prefetch is None:
                return
            try:
                (job.run if job is not None else prefetch)()
            except BaseException as exc:  # noqa: BLE001 - reported, the thread goes on
                try:
                    self.on_error(exc)
                except Exception:  # noqa: BLE001
                    pass
            with self._cond:
                self._active = 0
                idle = job is not None and not self._jobs
                self._cond.notify_all()
            if idle and self.on_busy is not None:
                self.on_busy(self.busy)
