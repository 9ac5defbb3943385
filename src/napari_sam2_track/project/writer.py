"""The writer that streams tracking results into a project store.

Per frame it computes each object's area and bounding box, stacks the masks into label layers
(:mod:`.layers`: the merged labels plus overlap layers only where objects overlap), compresses
them and writes them as whole chunks. Frames are encoded by a small pool of threads (numpy
and zstd release the GIL), so several frames are in flight at once; one committer thread then
writes the frames' table rows **in frame order and only after the frame's layers are on
disk**, several frames per table chunk write when the pool is ahead. A frame is reported done
(``on_done``) only once its rows are written: a ``kill -9`` loses at most the frames in flight.

It writes into any :class:`WriteTarget`: a :class:`~.store.ProjectStore`, or the
:class:`~.parts.PartWriter` of one segment of a time-parallel run.
"""

from __future__ import annotations

import collections
import os
import threading
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from concurrent.futures import wait as futures_wait
from pathlib import Path
from typing import Protocol

import numpy as np

from .._threads import lower_thread_priority
from ..errors import StoreError
from .layer_arrays import OVERLAP_TILE, LayerArrays
from .layers import LayerScratch, build_layers, masks_from_layers
from .layout import STATE_ABSENT, STATE_PROMPTED, STATE_PROPAGATED

#: Table rows to write: ``{object: [(frame, row), ...]}``, a row as in ``TABLE_COLUMNS``.
Rows = dict[int, list[tuple[int, list[float]]]]


class WriteTarget(Protocol):
    """What a :class:`StoreWriter` writes into: the label layers of a project and somewhere
    for its table rows. :class:`~.store.ProjectStore` writes the rows into the objects' tables;
    :class:`~.parts.PartWriter` into one segment's part table."""

    path: Path
    read_only: bool

    @property
    def shape(self) -> tuple[int, ...]:
        """``(frames, height, width)`` of the project."""

    @property
    def num_frames(self) -> int: ...

    @property
    def layers(self) -> LayerArrays:
        """The label layers that hold the masks, written a frame at a time."""

    def object_ids(self) -> list[int]: ...

    def require_current_format(self) -> None:
        """Refuse (:class:`~napari_sam2_track.errors.StoreError`) a target it cannot write."""

    def ensure_object_table(self, obj_id: int) -> None:
        """Make ready to take rows of object ``obj_id`` (or refuse it)."""

    def write_rows(self, rows: Rows) -> None:
        """Write table rows ``{object: [(frame, row), ...]}``."""


def default_workers() -> int:
    """Encoding threads: the cores beside the model's, at least one, at most four."""
    return max(1, min(4, (os.cpu_count() or 1)))


class StoreWriter:
    """Writes tracking results into a store from a few background threads.

    :meth:`submit` queues a frame (blocking when ``max_pending`` frames are in flight, so
    memory stays bounded); ``on_done(frame)`` is called from the committer thread, in
    submission order, once the frame is on disk. An exception in the writer is re-raised by
    the next :meth:`submit` or :meth:`close`; frames after a failed one are not committed.
    ``workers``: encoding threads (default :func:`default_workers`); ``low_priority``: run
    them below the model's threads (Linux niceness 10), as tracking wants. ``store``: a
    :class:`~.store.ProjectStore` or another :class:`WriteTarget`.
    """

    def __init__(
        self,
        store: WriteTarget,
        run_id: int,
        *,
        min_visible_pixels: int = 0,
        skip_frames: Callable[[int, int], bool] | None = None,
        on_done: Callable[[int], None] | None = None,
        max_pending: int = 8,
        workers: int | None = None,
        low_priority: bool = True,
    ):
        if store.read_only:
            raise StoreError(f"{store.path} is open read-only; open it for writing to track into it")
        store.require_current_format()
        store.layers  # opened here, before the encoding threads share it
        self.store = store
        self.run_id = run_id
        self.min_visible_pixels = int(min_visible_pixels)
        self.skip_frames = skip_frames
        self.on_done = on_done
        self.frames_written = 0
        #: ``{object: [[first, last], ...]}``: contiguous frame ranges written so far.
        self.written: dict[int, list[list[int]]] = {}
        self._error: BaseException | None = None
        self._failed = False  # after an error no later frame is committed
        self._slots = threading.Semaphore(max(1, max_pending))
        self._futures: collections.deque[tuple[int, Future]] = collections.deque()
        self._in_flight: dict[int, Future] = {}  # frame -> its latest queued encoding
        self._cv = threading.Condition()
        self._closing = False
        self._ensured: set[int] = set()
        self._local = threading.local()  # per encoding thread: reusable layer frames
        self._pool = ThreadPoolExecutor(
            max_workers=workers or default_workers(),
            thread_name_prefix="store-encode",
            initializer=lower_thread_priority if low_priority else None,
        )
        self._low_priority = low_priority
        self._thread = threading.Thread(target=self._commit_loop, name="store-writer", daemon=True)
        self._thread.start()

    # ------------------------------------------------------------------ public
    def submit(self, result) -> None:
        """Queue a :class:`~napari_sam2_track.engine.tracker.FrameResult` for writing."""
        self._raise()
        for obj_id in result.masks:
            if obj_id not in self._ensured:
                self.store.ensure_object_table(obj_id)
                self._ensured.add(obj_id)
        self._slots.acquire()
        t = result.frame
        with self._cv:
            # A frame already in flight (the two passes of ``both`` meet near the keyframes,
            # with other objects) is encoded after it: its other objects are read from disk.
            future = self._pool.submit(self._encode, result, self._in_flight.get(t))
            self._in_flight[t] = future
            self._futures.append((t, future))
            self._cv.notify()

    def close(self) -> None:
        """Write everything queued, stop the threads, and raise any write error."""
        with self._cv:
            self._closing = True
            self._cv.notify()
        self._thread.join()
        self._pool.shutdown(wait=True)
        self._raise()

    def _raise(self) -> None:
        if self._error is not None:
            err, self._error = self._error, None
            raise err

    # ------------------------------------------------------------- pool: frames
    def _encode(self, result, before: Future | None = None) -> tuple[int, dict[int, list[float]]]:
        """Write one frame's label layers; return its table rows (not yet written).

        ``before``: an earlier encoding of the same frame, waited for first (the pool runs
        tasks in submission order, so it is running or done).
        """
        if before is not None:
            futures_wait([before])
        t = result.frame
        if not 0 <= t < self.store.num_frames:
            raise StoreError(f"frame {t} is outside the project's {self.store.num_frames} frames")
        objs = [
            o for o in sorted(result.masks) if self.skip_frames is None or not self.skip_frames(o, t)
        ]
        if not objs:
            return t, {}
        masks = {o: np.asarray(result.masks[o], dtype=bool) for o in objs}
        others = [o for o in self.store.object_ids() if o not in masks]
        if others and self.store.layers.has_frame(t):  # keep what other objects have there
            masks.update(masks_from_layers(self.store.layers.read(t), others))
        scratch = getattr(self._local, "scratch", None)
        if scratch is None or scratch.shape != tuple(self.store.shape[1:]):
            scratch = self._local.scratch = LayerScratch(self.store.shape[1:], OVERLAP_TILE)
        frame = build_layers(masks, scratch.shape, scratch)  # areas and boxes too
        try:
            self.store.layers.write(t, frame)
        finally:  # leave the scratch frames all zero for the next frame
            scratch.clear(frame)
        rows = {}
        threshold = max(1, self.min_visible_pixels)
        for o in objs:
            area, box = frame.stats[o]
            presence = float(result.presence[o])
            if o in result.prompted:
                state = STATE_PROMPTED
            elif presence > 0 and area >= threshold:
                state = STATE_PROPAGATED
            else:
                state = STATE_ABSENT
            y0, y1, x0, x1 = box if box is not None else (np.nan,) * 4
            rows[o] = [presence, area, x0, y0, x1, y1, state, self.run_id]
        return t, rows

    # ------------------------------------------------------- committer: rows
    def _commit_loop(self) -> None:
        if self._low_priority:
            lower_thread_priority()
        while True:
            with self._cv:
                while not self._futures and not self._closing:
                    self._cv.wait()
                if not self._futures:
                    return
                batch = [self._futures.popleft()]
            batch[0][1].exception()  # wait for the oldest frame
            with self._cv:  # and take every later frame that is already encoded
                while self._futures and self._futures[0][1].done():
                    batch.append(self._futures.popleft())
            try:
                if not self._failed:
                    self._commit(batch)
            except BaseException as exc:  # noqa: BLE001 - handed to the submitting thread
                self._failed = True
                self._error = exc
            finally:
                with self._cv:
                    for t, future in batch:
                        if self._in_flight.get(t) is future:
                            del self._in_flight[t]
                for _ in batch:
                    self._slots.release()

    def _commit(self, batch: list[tuple[int, Future]]) -> None:
        frames = []
        for _, future in batch:
            exc = future.exception()
            if exc is not None:
                self._write_rows(frames)
                raise exc
            frames.append(future.result())
        self._write_rows(frames)

    def _write_rows(self, frames: list[tuple[int, dict[int, list[float]]]]) -> None:
        """Write the rows of encoded frames (one write per table chunk), then report them."""
        if not frames:
            return
        by_object: Rows = {}
        for t, rows in frames:
            for obj_id, row in rows.items():
                by_object.setdefault(obj_id, []).append((t, row))
        self.store.write_rows(by_object)
        for t, rows in frames:
            for obj_id in rows:
                ranges = self.written.setdefault(obj_id, [])
                if ranges and ranges[-1][0] - 1 <= t <= ranges[-1][1] + 1:
                    ranges[-1] = [min(ranges[-1][0], t), max(ranges[-1][1], t)]
                else:
                    ranges.append([t, t])
            self.frames_written += 1
            if self.on_done is not None:
                self.on_done(t)
