"""Volume sources: lazy ``(t, z, y, x)`` access to z-stacks, 3D + time, CT and MR volumes.

A :class:`VolumeSource` reads one 2D slice at a time (``read_slice(t, z)``) and carries its
:class:`~.geometry.Geometry` (voxel spacing with units, the affine where the file has one). It
is not a sequence of frames: code paths that need 2D frames (an open project in the napari
session, time-parallel segments) refuse it with one line (:func:`refuse_volume`); volumes are
tracked along z by :mod:`napari_sam2_track.volumes` (``track`` with an output path).
"""

from __future__ import annotations

import abc
import hashlib
import json
import operator
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..errors import SourceError
from ._base import (IntensityWindow, SourceLifetime, _role, check_pixel_dtype, checked_image,
                    read_part)
from .geometry import Geometry
from .windows import resolve_window

__all__ = ["VolumeSource", "ArrayVolumeSource", "VolumeLayout", "resolve_volume_layout",
           "refuse_volume", "NOT_TRACKABLE"]

NOT_TRACKABLE = ("track a volume into a new project with 'napari-sam2-track track VOLUME --out "
                 "X.zarr' (pipeline.track with a path)")

ACCEPTED_VOLUMES = "(Z,Y,X), (T,Z,Y,X) or (T,Z,C,Y,X) with channel=K"


def refuse_volume(source: Any, what: str = "this") -> None:
    """SourceError with one line when ``source`` is a volume (``what`` needs 2D frames)."""
    if isinstance(source, VolumeSource):
        geometry = source.geometry
        shape = "x".join(str(s) for s in geometry.shape)
        raise SourceError(
            f"{source._label()} is a volume ({shape}, axes {geometry.axes}): {what} needs a 2D "
            f"time-lapse; {NOT_TRACKABLE}, or pick one z-plane, e.g. data[:, z] of an array"
        )


class VolumeSource(SourceLifetime, abc.ABC):
    """Lazy random access to the 2D slices of a ``(t, z, y, x)`` volume; never loads it whole.

    Subclasses set ``shape``/``dtype``/``geometry`` through ``__init__``, implement
    :meth:`_read_slice` (called under ``self._lock``) and call :meth:`_configure`. Arrays
    returned are read-only. ``notes`` holds lines about how the file was read (e.g. oblique
    slices). A volume has exactly one channel: multichannel data needs ``channel=K``.
    """

    kind: str = "volume"
    #: Reads go forward cheaply but going back rewinds (a gzip stream): the ``auto`` window
    #: samples only slices before the middle slice, which napari shows first.
    sequential_reads: bool = False

    def __init__(
        self, *, path: str | None, shape: Sequence[int], dtype: Any, geometry: Geometry,
        channel: int | None = None,
    ) -> None:
        self.path = path
        t, z, y, x = (int(s) for s in shape)
        self._shape = (t, z, y, x)
        self.dtype = np.dtype(dtype)
        self.geometry = geometry
        self.channel = channel
        self.window: IntensityWindow | None = None
        self.notes: list[str] = []
        self._lock = threading.RLock()
        self._closed = False

    def _label(self) -> str:
        return f"{self.kind} {self.path}" if self.path else f"{self.kind} data"

    def _configure(
        self,
        window: IntensityWindow | tuple[float, float] | str | None,
        default_window: IntensityWindow | None = None,
    ) -> None:
        """Validate the shape and dtype, then set the intensity window."""
        label = self._label()
        self.dtype = check_pixel_dtype(self.dtype, label)
        t, z, y, x = self._shape
        if min(t, y, x) < 1:
            raise SourceError(f"{label}: empty volume of shape {self._shape} (t, z, y, x)")
        if z < 2:
            raise SourceError(
                f"{label}: holds a single slice ({y}x{x}); a volume needs at least 2 slices "
                "(open single images or time-lapses as 2D recordings)"
            )
        self.window = resolve_window(
            window, sample=self.sample_window, default=default_window,
            is_uint8=self.dtype == np.uint8, label=label,
        )

    # -- geometry ----------------------------------------------------------------------------

    @property
    def shape(self) -> tuple[int, int, int, int]:
        """``(T, Z, H, W)``; T is 1 for a static volume."""
        return self._shape

    @property
    def num_timepoints(self) -> int:
        return self._shape[0]

    @property
    def depth(self) -> int:
        return self._shape[1]

    @property
    def height(self) -> int:
        return self._shape[2]

    @property
    def width(self) -> int:
        return self._shape[3]

    # -- what a volume is not ----------------------------------------------------------------

    def _not_frames(self, *_: Any) -> Any:
        refuse_volume(self)

    __len__ = read = read_rgb = _not_frames  # 2D code paths stop here with one line
    num_frames = property(_not_frames)

    def __bool__(self) -> bool:
        return True

    # -- reading -----------------------------------------------------------------------------

    @abc.abstractmethod
    def _read_slice(self, t: int, z: int) -> np.ndarray:
        """Native ``(H, W)`` slice ``z`` of timepoint ``t``; called with ``self._lock`` held."""

    def read_slice(self, t: int, z: int) -> np.ndarray:
        """Native ``(H, W)`` slice ``z`` at timepoint ``t``, read-only, native byte order."""
        t, z = operator.index(t), operator.index(z)
        n_t, n_z = self._shape[:2]
        if not (0 <= t < n_t and 0 <= z < n_z):
            raise IndexError(f"slice (t={t}, z={z}) out of range (0..{n_t - 1}, 0..{n_z - 1})")
        with self._lock:
            if self._closed:
                raise SourceError(f"{self._label()}: source is closed")
            image = self._read_slice(t, z)
        return checked_image(image, self.dtype, self._shape[2:], self._label(),
                             f"slice (t={t}, z={z})")

    def read_slice_rgb(self, t: int, z: int) -> np.ndarray:
        """Slice ``(t, z)`` as ``(H, W, 3)`` uint8 through the intensity window; NaN and
        +/-Inf map to the window's low end."""
        image = self.read_slice(t, z)
        if self.window is not None:
            if image.dtype.kind == "f":
                image = np.where(np.isfinite(image), image, self.window.low)
            image = self.window.apply(image)
        out = np.ascontiguousarray(np.repeat(image[:, :, None], 3, axis=2))
        out.flags.writeable = False
        return out

    def sample_window(self, lo: float = 0.5, hi: float = 99.5, max_slices: int = 16
                      ) -> IntensityWindow:
        """Percentile window over up to ``max_slices`` slices spread evenly over (t, z), read
        in file order (compressed files are then decompressed once). With
        ``sequential_reads`` the slices end just before the middle slice of the first
        timepoint, so showing that slice next needs no rewind (re-reading the last slice read
        would rewind too)."""
        n_t, n_z = self._shape[:2]
        last = max(0, n_z // 2 - 1) if self.sequential_reads else n_t * n_z - 1
        flat = np.unique(np.linspace(0, last, max(1, min(last + 1, max_slices))).round())
        slices = (self.read_slice(*divmod(int(i), n_z)) for i in flat)
        return IntensityWindow.from_samples(slices, len(flat), lo, hi)

    # -- provenance --------------------------------------------------------------------------

    def fingerprint(self) -> str:
        """sha256 over kind, shape, dtype and the first, middle and last slices of the first
        and last timepoints."""
        h = hashlib.sha256()
        h.update(json.dumps([self.kind, list(self.shape), self.dtype.newbyteorder("<").str])
                 .encode())
        n_t, n_z = self._shape[:2]
        for t in sorted({0, n_t - 1}):
            for z in sorted({0, n_z // 2, n_z - 1}):
                le = self.dtype.newbyteorder("<")
                h.update(np.ascontiguousarray(self.read_slice(t, z), dtype=le).tobytes())
        return h.hexdigest()

    def _extra_description(self) -> dict[str, Any]:
        return {}

    def describe(self) -> dict[str, Any]:
        """JSON-able provenance: path, kind, shape, dtype, channel, window, geometry, notes."""
        d: dict[str, Any] = {
            "path": self.path,
            "kind": self.kind,
            "shape": list(self.shape),
            "dtype": self.dtype.name,
            "channel": self.channel,
            "window": self.window.to_dict() if self.window is not None else None,
            "geometry": self.geometry.to_dict(),
            "notes": list(self.notes),
        }
        d.update(self._extra_description())
        return d

    def __repr__(self) -> str:
        shape = "x".join(str(s) for s in self.shape)
        where = f" {self.path!r}" if self.path else ""
        return f"<{type(self).__name__}{where} {shape} (tzyx) {self.dtype.name}>"


# -- axis layout of array-backed volumes -------------------------------------------------------


@dataclass(frozen=True)
class VolumeLayout:
    """Where t, z, c, y and x live in an N-d array; every other dimension has size 1."""

    shape: tuple[int, ...]
    axes: str  # upper-case letters as given
    dims: dict[str, int]  # role -> dimension, roles among t, z, c, y, x

    def size(self, role: str) -> int:
        return self.shape[self.dims[role]] if role in self.dims else 1

    @property
    def volume_shape(self) -> tuple[int, int, int, int]:
        return (self.size("t"), self.size("z"), self.size("y"), self.size("x"))

    def key(self, t: int, z: int, channel: int | None) -> tuple[int | slice, ...]:
        """Index tuple selecting slice ``(t, z)`` (and the channel): only it is read."""
        index = {"t": t, "z": z, "c": channel or 0}
        kept = (self.dims["y"], self.dims["x"])
        return tuple(
            slice(None) if d in kept else index.get(self._role_of(d), 0)
            for d in range(len(self.shape))
        )

    def _role_of(self, dim: int) -> str | None:
        return next((r for r, d in self.dims.items() if d == dim), None)

    def to_slice(self, arr: np.ndarray) -> np.ndarray:
        """``data[key]`` as ``(H, W)``."""
        return arr.T if self.dims["y"] > self.dims["x"] else arr


def resolve_volume_layout(shape: Sequence[int], axes: str, what: str) -> VolumeLayout:
    """Interpret ``axes`` letters (e.g. ``ZYX``, ``TZYX``, ``TZCYX``); SourceError otherwise."""
    shape = tuple(int(s) for s in shape)
    found = f"{what}: found shape {shape} with axes {axes}"
    if len(axes) != len(shape):
        raise SourceError(f"{found}: {len(axes)} axes for {len(shape)} dimensions; "
                          f"pass axes= with one letter per dimension (e.g. 'TZYX')")
    dims: dict[str, int] = {}
    for d, (name, size) in enumerate(zip(axes, shape)):
        role = _role(name)
        if role == "?" and size == 1:
            continue
        if role == "?":
            raise SourceError(f"{found}: axis {name} of size {size} is not supported; accepted: "
                              f"{ACCEPTED_VOLUMES}")
        if role in dims:
            if size == 1:
                continue
            if shape[dims[role]] != 1 or role in "yx":
                raise SourceError(f"{found}: more than one {role.upper()} axis; accepted: "
                                  f"{ACCEPTED_VOLUMES}")
        dims[role] = d
    missing = [r.upper() for r in "zyx" if r not in dims]
    if missing:
        raise SourceError(f"{found}: no {'/'.join(missing)} axis; accepted: {ACCEPTED_VOLUMES}")
    return VolumeLayout(shape, axes.upper(), dims)


def check_channel(channel: int | None, channels: int, label: str) -> int | None:
    """The channel to read of ``channels`` (None for one); SourceError when it is needed."""
    if channel is not None:
        channel = operator.index(channel)
        if not 0 <= channel < channels:
            raise SourceError(f"{label}: has {channels} channel(s); channel={channel} does not "
                              f"exist (0..{channels - 1})")
        return channel if channels > 1 else None
    if channels > 1:
        raise SourceError(f"{label}: has {channels} channels; a volume is read one channel at a "
                          f"time: choose one with channel=K (0..{channels - 1})")
    return None


class ArrayVolumeSource(VolumeSource):
    """A volume backed by an N-d array-like (numpy, dask, zarr, tifffile's zarr store)."""

    kind = "array"

    def __init__(
        self,
        data: Any,
        axes: str,
        *,
        path: str | None = None,
        channel: int | None = None,
        window: IntensityWindow | tuple[float, float] | str | None = None,
        sizes: dict[str, tuple[float, str | None]] | None = None,
        what: str | None = None,
    ) -> None:
        what = what or (f"{self.kind} {path}" if path else
                        f"array of type {type(data).__module__}.{type(data).__name__}")
        layout = resolve_volume_layout(data.shape, axes, what)
        shape = layout.volume_shape
        geometry = Geometry.from_sizes("tzyx", shape, sizes or {})
        super().__init__(path=path, shape=shape, dtype=data.dtype, geometry=geometry,
                         channel=check_channel(channel, layout.size("c"), what))
        self._data = data
        self.layout = layout
        self._configure(window)

    def _read_slice(self, t: int, z: int) -> np.ndarray:
        image = read_part(self._data, self.layout.key(t, z, self.channel), self._label(),
                          f"slice (t={t}, z={z})")
        return self.layout.to_slice(image)

    def _extra_description(self) -> dict[str, Any]:
        return {"axes": self.layout.axes}

    def _close(self) -> None:
        self._data = None
