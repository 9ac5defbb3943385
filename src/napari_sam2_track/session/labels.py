"""The project's labels as a napari-ready array, and checks for the image layer a session opens."""

from __future__ import annotations

import tempfile
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from .._lazy_array import LazyArray
from ..errors import SourceError, StoreError
from ..project import ProjectStore

__all__ = ["StoreLabelsArray", "check_layer_shape", "default_store_path", "read_plane"]


def default_store_path(video: str | Path | None, name: str = "annotations") -> Path:
    """``<video stem>.zarr`` beside ``video``; a fresh temporary folder for in-memory data."""
    if video is None:
        return Path(tempfile.mkdtemp(prefix="napari-sam2-track-")) / f"{name}.zarr"
    video = Path(video)
    out = video.parent / f"{video.stem}.zarr"
    if out.resolve() == video.resolve():  # the video itself is a zarr folder
        out = video.parent / f"{video.stem}.annotations.zarr"
    return out


def check_layer_shape(shape: tuple[int, ...], rgb: bool, name: str = "image") -> tuple[int, int, int]:
    """Check that an image layer is a video: ``(t, y, x)`` gray or ``(t, y, x, 3)`` RGB.

    Returns ``(num_frames, height, width)``; raises :class:`SourceError` with a one-line
    message for single images, volumes and RGB/gray mix-ups.
    """
    shape = tuple(int(s) for s in shape)
    nd = len(shape) - (1 if rgb else 0)
    if rgb and shape[-1] not in (3, 4):
        raise SourceError(
            f"layer {name!r} is marked RGB but its last axis has {shape[-1]} values; "
            "open it as a grayscale (t, y, x) stack"
        )
    if nd == 2:
        raise SourceError(
            f"layer {name!r} is a single {'RGB ' if rgb else ''}image {shape}; choose a time "
            "series (t, y, x) or (t, y, x, 3)"
        )
    if not rgb and nd == 4 and shape[-1] in (3, 4):
        raise SourceError(
            f"layer {name!r} has shape {shape}, which looks like RGB frames shown as grayscale; "
            "re-open it with rgb=True"
        )
    if nd != 3:
        raise SourceError(
            f"layer {name!r} has {nd} non-colour dimensions {shape}; choose a time series "
            "(t, y, x) or (t, y, x, 3) (for volumes or channels, select one first)"
        )
    return shape[0], shape[1], shape[2]


def read_plane(store: ProjectStore, p: int) -> np.ndarray:
    """The merged labels of frame ``p`` (a volume project's plane ``t * Z + z``)."""
    planes = store.planes
    if planes is None:
        return np.asarray(store.labels[p])
    return np.asarray(store.labels[divmod(int(p), planes[1])])


class StoreLabelsArray(LazyArray):
    """The project's merged labels as an array for a napari Labels layer.

    Reads come from the store (so a layer refresh shows frames written by a running
    propagation). Writes (napari's paint, fill and undo) are kept per frame until
    :meth:`flush`, which hands each edited frame to ``on_edit(t, frame)`` (normally
    :meth:`AnnotationSession.persist_edit`). Only the frames touched are ever held in memory.
    """

    def __init__(
        self,
        store: ProjectStore,
        on_edit: Callable[[int, np.ndarray], Any] | None = None,
        *,
        autoflush: bool = False,
        read_only_reason: str | None = None,
    ):
        self.store = store
        #: why edits cannot be saved (the project is open read-only); ``None`` when they can
        self.read_only_reason = read_only_reason or (
            "the project is open read-only" if store.read_only else None)
        self.on_edit = on_edit
        #: persist every write at once (when nothing calls :meth:`flush` at the end of a stroke)
        self.autoflush = autoflush
        #: called after each write (e.g. to schedule a :meth:`flush`)
        self.on_dirty: Callable[[], Any] | None = None
        self._dirty: dict[int, np.ndarray] = {}
        self._read_ahead: dict[int, np.ndarray] = {}  # see preload(), oldest first
        self._generation = 0  # bumped when frames change, so a read racing a write is dropped
        #: how many read-ahead frames are kept (bounded memory)
        self.keep = 8
        self._lock = threading.RLock()

    # array protocol --------------------------------------------------------------------
    @property
    def shape(self) -> tuple[int, int, int]:
        return tuple(self.store.shape)  # type: ignore[return-value]

    @property
    def dtype(self) -> np.dtype:
        return np.dtype("uint32")

    @property
    def num_planes(self) -> int:
        """The frames (planes ``t * Z + z`` of a volume project) the store holds."""
        return int(self.store.shape[0])

    def _read(self, t: int) -> np.ndarray:
        """Frame (plane) ``t`` as stored."""
        return read_plane(self.store, t)

    def frame(self, t: int) -> np.ndarray:
        """Frame ``t`` as a writable array, edits included."""
        with self._lock:
            if t in self._dirty:
                return self._dirty[t]
            if t in self._read_ahead:
                return self._read_ahead[t].copy()
        return self._read(t)

    def cached(self, t: int) -> bool:
        """Whether frame ``t`` can be shown without reading the store."""
        with self._lock:
            return t in self._read_ahead or t in self._dirty

    def preload(self, t: int) -> None:
        """Read frame ``t`` now, on the calling thread (a worker: after it wrote the frame, or
        ahead of the frames the user scrubs to), so the display's next read of it does not wait
        on the store. The :attr:`keep` most recent frames are kept."""
        if not 0 <= t < self.num_planes:
            return
        with self._lock:
            if t in self._read_ahead:
                self._read_ahead[t] = self._read_ahead.pop(t)  # most recent last
                return
            generation = self._generation
        frame = self._read(t)
        with self._lock:
            if generation != self._generation:
                return  # the store changed while reading: the frame may be stale
            self._read_ahead[t] = frame
            while len(self._read_ahead) > max(1, self.keep):
                self._read_ahead.pop(next(iter(self._read_ahead)))

    def forget(self, start: int, stop: int) -> None:
        """Frames ``start..stop`` changed in the store: drop what :meth:`preload` kept of them."""
        with self._lock:
            self._generation += 1
            self._read_ahead = {t: f for t, f in self._read_ahead.items() if not start <= t <= stop}

    @property
    def dirty_frames(self) -> list[int]:
        return sorted(self._dirty)

    def _key(self, key) -> tuple:
        if not isinstance(key, tuple):
            key = (key,)
        if any(k is Ellipsis for k in key):
            i = next(i for i, k in enumerate(key) if k is Ellipsis)
            key = key[:i] + (slice(None),) * (3 - len(key) + 1) + key[i + 1 :]
        return key + (slice(None),) * (3 - len(key))

    @staticmethod
    def _fancy(key: tuple) -> bool:
        return any(isinstance(k, (np.ndarray, list)) for k in key)

    def __getitem__(self, key):
        key = self._key(key)
        if self._fancy(key):
            t, y, x = np.broadcast_arrays(*(np.asarray(k) for k in key))
            out = np.empty(t.shape, dtype=np.uint32)
            for ti in np.unique(t):
                sel = t == ti
                out[sel] = self.frame(int(ti))[y[sel], x[sel]]
            return out
        tkey, rest = key[0], key[1:]
        if isinstance(tkey, (int, np.integer)) and int(tkey) % self.num_planes in self._read_ahead:
            return self.frame(int(tkey) % self.num_planes)[rest]
        if not self._dirty:
            return np.asarray(self.store.labels[key])
        if isinstance(tkey, (int, np.integer)):
            return self.frame(int(tkey) % self.num_planes)[rest]
        frames = range(self.num_planes)[tkey]
        return np.stack([self.frame(t)[rest] for t in frames]) if len(frames) else np.asarray(
            self.store.labels[key]
        )

    def __setitem__(self, key, value) -> None:
        if self.read_only_reason is not None:
            raise StoreError(f"this edit is not saved: {self.read_only_reason}; "
                             "reopen the project when no other program writes it")
        key = self._key(key)
        with self._lock:
            if self._fancy(key):
                t, y, x = np.broadcast_arrays(*(np.asarray(k) for k in key))
                value = np.broadcast_to(np.asarray(value), t.shape)
                for ti in np.unique(t):
                    sel = t == ti
                    frame = self._editable(int(ti))
                    frame[y[sel], x[sel]] = value[sel]
            else:
                self._set_basic(key, value)
        if self.autoflush:
            self.flush()
        elif self.on_dirty is not None:
            self.on_dirty()

    def _set_basic(self, key: tuple, value) -> None:
        tkey, rest = key[0], key[1:]
        if isinstance(tkey, (int, np.integer)):
            self._editable(int(tkey) % self.num_planes)[rest] = value
            return
        frames = range(self.num_planes)[tkey]
        value = np.asarray(value)
        for i, t in enumerate(frames):
            self._editable(t)[rest] = value[i] if value.ndim == 3 else value

    def _editable(self, t: int) -> np.ndarray:
        if t not in self._dirty:
            self._dirty[t] = np.array(self._read(t), dtype=np.uint32)
        return self._dirty[t]

    def flush(self) -> list[int]:
        """Persist the edited frames through ``on_edit``; returns the frames written."""
        with self._lock:
            dirty, self._dirty = self._dirty, {}
            self._generation += 1
            self._read_ahead = {t: f for t, f in self._read_ahead.items() if t not in dirty}
        for t, frame in sorted(dirty.items()):
            if self.on_edit is not None:
                self.on_edit(t, frame)
            else:
                self.store.write_edited_labels(t, frame)
        return sorted(dirty)

    def discard(self) -> None:
        """Drop unflushed edits."""
        with self._lock:
            self._dirty.clear()
