"""The single writer thread that streams tracking results into a project store."""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable

from .._threads import lower_thread_priority
from .layout import STATE_ABSENT, STATE_PROMPTED, STATE_PROPAGATED
from .store import ProjectStore


class StoreWriter:
    """The one thread that writes tracking results into a store.

    :meth:`submit` queues a frame (blocking when ``max_pending`` frames are waiting, so memory
    stays bounded); ``on_done(frame)`` is called from the writer thread once the frame is on
    disk. An exception in the writer is re-raised by the next :meth:`submit` or :meth:`close`.
    """

    def __init__(
        self,
        store: ProjectStore,
        run_id: int,
        *,
        min_visible_pixels: int = 0,
        skip_frames: Callable[[int, int], bool] | None = None,
        on_done: Callable[[int], None] | None = None,
        max_pending: int = 8,
    ):
        self.store = store
        self.run_id = run_id
        self.min_visible_pixels = int(min_visible_pixels)
        self.skip_frames = skip_frames
        self.on_done = on_done
        self._queue: queue.Queue = queue.Queue(maxsize=max_pending)
        self._error: BaseException | None = None
        self.frames_written = 0
        #: ``{object: [[first, last], ...]}``: contiguous frame ranges written so far.
        self.written: dict[int, list[list[int]]] = {}
        self._thread = threading.Thread(target=self._run, name="store-writer", daemon=True)
        self._thread.start()

    def submit(self, result) -> None:
        """Queue a :class:`~napari_sam2_track.engine.tracker.FrameResult` for writing."""
        self._raise()
        self._queue.put(result)

    def _raise(self) -> None:
        if self._error is not None:
            err, self._error = self._error, None
            raise err

    def _run(self) -> None:
        lower_thread_priority()
        while True:
            result = self._queue.get()
            if result is None:
                return
            if self._error is not None:
                continue  # drain after a failure
            try:
                self._write(result)
            except BaseException as exc:  # noqa: BLE001 - handed to the submitting thread
                self._error = exc

    def _write(self, result) -> None:
        t = result.frame
        objs = [
            o
            for o in sorted(result.masks)
            if self.skip_frames is None or not self.skip_frames(o, t)
        ]
        for obj_id in objs:
            self.store.write_mask(obj_id, t, result.masks[obj_id])
        if objs:
            self.store.merge_labels(t, {o: result.masks[o] for o in objs})
        for obj_id in objs:
            mask = result.masks[obj_id]
            visible = int(mask.sum()) >= max(1, self.min_visible_pixels)
            if obj_id in result.prompted:
                state = STATE_PROMPTED
            elif result.presence[obj_id] > 0 and visible:
                state = STATE_PROPAGATED
            else:
                state = STATE_ABSENT
            self.store.write_row(
                obj_id, t, mask, presence=result.presence[obj_id], state=state, run=self.run_id
            )
            ranges = self.written.setdefault(obj_id, [])
            if ranges and ranges[-1][0] - 1 <= t <= ranges[-1][1] + 1:
                ranges[-1] = [min(ranges[-1][0], t), max(ranges[-1][1], t)]
            else:
                ranges.append([t, t])
        self.frames_written += 1
        if self.on_done is not None:
            self.on_done(t)

    def close(self) -> None:
        """Write everything queued, stop the thread, and raise any write error."""
        self._queue.put(None)
        self._thread.join()
        self._raise()
