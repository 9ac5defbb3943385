"""Base classes shared by all frame sources: :class:`FrameSource`, :class:`IntensityWindow`,
and the axis-layout helper used by the array-like sources (numpy, dask, zarr, TIFF)."""

from __future__ import annotations

import abc
import hashlib
import json
import math
import operator
import threading
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar

import numpy as np

from ..errors import SourceError
from .geometry import Geometry

_S = TypeVar("_S", bound="SourceLifetime")

__all__ = [
    "FrameSource", "IntensityWindow", "FrameLayout", "resolve_layout", "guess_axes",
    "check_pixel_dtype", "coerce_window", "has_z_planes", "checked_image", "read_part",
]

# Total number of pixel values fed to np.percentile when estimating a window.
_MAX_PERCENTILE_VALUES = 4_000_000


@dataclass(frozen=True)
class IntensityWindow:
    """Linear intensity window mapping ``[low, high]`` to ``[0, 255]`` (uint8).

    ``apply`` computes ``rint(clip((x - low) / (high - low), 0, 1) * 255)`` in float64
    (``np.rint`` rounds half to even); NaN maps to 0.
    """

    low: float
    high: float
    #: Name of the preset it came from (``"ct-lung"``, ...), recorded with the window.
    preset: str | None = field(default=None, compare=False)

    def __post_init__(self) -> None:
        low, high = float(self.low), float(self.high)
        if not (math.isfinite(low) and math.isfinite(high)):
            raise ValueError(f"intensity window bounds must be finite, got ({low}, {high})")
        if not high > low:
            raise ValueError(f"intensity window needs high > low, got ({low}, {high})")
        object.__setattr__(self, "low", low)
        object.__setattr__(self, "high", high)

    def apply(self, frame: np.ndarray) -> np.ndarray:
        """Map ``frame`` (any real dtype, any shape) to uint8 through this window."""
        x = np.asarray(frame, dtype=np.float64)
        y = (x - self.low) / (self.high - self.low)
        np.clip(y, 0.0, 1.0, out=y)
        y *= 255.0
        np.rint(y, out=y)
        np.nan_to_num(y, copy=False, nan=0.0)
        return y.astype(np.uint8)

    def to_dict(self) -> dict[str, Any]:
        """JSON-able form ``{"low": ..., "high": ...}`` (with ``"preset"`` when named)."""
        d: dict[str, Any] = {"low": self.low, "high": self.high}
        if self.preset is not None:
            d["preset"] = self.preset
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> IntensityWindow:
        """Inverse of :meth:`to_dict`."""
        return cls(float(d["low"]), float(d["high"]), d.get("preset"))

    @classmethod
    def from_percentiles(
        cls, source: FrameSource, lo: float = 0.5, hi: float = 99.5, max_frames: int = 16
    ) -> IntensityWindow:
        """Window from the ``lo``/``hi`` percentiles of up to ``max_frames`` evenly spaced frames.

        Only the channel selected by ``source.channel`` is sampled (all channels when it is
        None). Very large frames are subsampled with a regular stride (at most ~4M values in
        total). A constant image gives ``(v, v + 1)``.
        """
        n = len(source)
        count = max(1, min(n, int(max_frames)))
        ts = np.unique(np.linspace(0, n - 1, count).round().astype(int))

        def frames():
            for t in ts:
                frame = source.read(int(t))
                yield frame if source.channel is None else frame[..., source.channel]

        return cls.from_samples(frames(), len(ts), lo, hi)

    @classmethod
    def from_samples(
        cls, images: Iterable[np.ndarray], count: int, lo: float = 0.5, hi: float = 99.5
    ) -> IntensityWindow:
        """Window from the ``lo``/``hi`` percentiles of the finite values of ``count`` images,
        each subsampled with a regular stride (at most ~4M values in total)."""
        per_image = max(1, _MAX_PERCENTILE_VALUES // max(1, count))
        samples = []
        for image in images:
            flat = np.ravel(image)
            if flat.size > per_image:
                flat = flat[:: math.ceil(flat.size / per_image)]
            samples.append(flat)
        values = np.concatenate(samples)
        if values.dtype.kind == "f":
            values = values[np.isfinite(values)]
        if values.size == 0:
            return cls(0.0, 1.0)
        low, high = (float(v) for v in np.percentile(values, [lo, hi]))
        if not high > low:
            high = low + 1.0
        return cls(low, high)


def check_pixel_dtype(dtype: Any, label: str) -> np.dtype:
    """``dtype`` in native byte order; SourceError unless integer or floating-point."""
    dt = np.dtype(dtype)
    if dt.kind not in "uif":
        raise SourceError(
            f"{label}: unsupported dtype {dt}; use integer or floating-point pixel data"
        )
    return dt.newbyteorder("=") if dt.byteorder not in ("=", "|") else dt


def coerce_window(
    window: IntensityWindow | tuple[float, float] | None, label: str
) -> IntensityWindow | None:
    """An :class:`IntensityWindow` from ``(low, high)``; SourceError with one line if invalid."""
    if window is None or isinstance(window, IntensityWindow):
        return window
    if isinstance(window, str):  # volumes resolve preset names before they get here
        raise SourceError(
            f"{label}: the window preset {window!r} applies to volumes (data with a z axis); "
            "pass (low, high) for a 2D recording"
        )
    try:
        low, high = window
        return IntensityWindow(low, high)
    except (TypeError, ValueError) as exc:
        raise SourceError(
            f"{label}: invalid intensity window {window!r} ({exc}); pass (low, high)"
        ) from None


class SourceLifetime:
    """Closing a source: ``close()`` once (idempotent, under ``_lock``), and use as a context
    manager. Subclasses set ``_lock`` and ``_closed`` and release their handles in ``_close``."""

    _lock: threading.RLock
    _closed: bool

    def _close(self) -> None:
        """Release file handles (subclasses)."""

    def close(self) -> None:
        """Release the underlying file handles; further reads raise SourceError. Idempotent."""
        with self._lock:
            if not self._closed:
                self._closed = True
                self._close()

    def __enter__(self: _S) -> _S:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class FrameSource(SourceLifetime, abc.ABC):
    """Lazy random access to the frames of a 2D+t recording. Never loads the whole video.

    Subclasses set the geometry in ``__init__`` and then call :meth:`_configure`; they implement
    :meth:`_read` (called under ``self._lock``) and optionally :meth:`_close`.

    Arrays returned by :meth:`read` and :meth:`read_rgb` are **read-only** (they may be shared
    with a cache or be views of the underlying data); copy them before modifying.
    """

    kind: str = ""

    path: str | None
    num_frames: int
    height: int
    width: int
    channels: int
    dtype: np.dtype
    window: IntensityWindow | None
    channel: int | None

    def __init__(
        self,
        *,
        path: str | None,
        num_frames: int,
        height: int,
        width: int,
        channels: int,
        dtype: Any,
    ) -> None:
        self.path = path
        self.num_frames = int(num_frames)
        self.height = int(height)
        self.width = int(width)
        self.channels = int(channels)
        self.dtype = np.dtype(dtype)
        self.window = None
        self.channel = None
        self._lock = threading.RLock()
        self._closed = False

    # -- setup -------------------------------------------------------------------------------

    def _label(self) -> str:
        return f"{self.kind} {self.path}" if self.path else f"{self.kind} source"

    def _configure(
        self, channel: int | None, window: IntensityWindow | tuple[float, float] | None
    ) -> None:
        """Validate geometry/dtype, select the model channel and set the intensity window."""
        label = self._label()
        self.dtype = check_pixel_dtype(self.dtype, label)
        if self.num_frames < 1:
            raise SourceError(f"{label}: has no frames")
        if self.height < 1 or self.width < 1:
            raise SourceError(f"{label}: empty frames of {self.height}x{self.width} pixels")
        n = self.channels
        if channel is not None:
            channel = operator.index(channel)
            if n == 1:
                if channel != 0:
                    raise SourceError(f"{label}: has 1 channel; channel={channel} does not exist")
                channel = None
            elif not 0 <= channel < n:
                raise SourceError(
                    f"{label}: has {n} channels; choose one with channel=K (0..{n - 1})"
                )
        elif n not in (1, 3):
            raise SourceError(
                f"{label}: has {n} channels; choose one with channel=K (0..{n - 1})"
            )
        self.channel = channel
        window = coerce_window(window, label)
        if window is None and self.dtype != np.uint8:
            window = IntensityWindow.from_percentiles(self)
        self.window = window

    # -- geometry ----------------------------------------------------------------------------

    @property
    def frame_shape(self) -> tuple[int, ...]:
        """Shape of a native frame: ``(H, W)`` or ``(H, W, C)``."""
        if self.channels == 1:
            return (self.height, self.width)
        return (self.height, self.width, self.channels)

    @property
    def shape(self) -> tuple[int, ...]:
        """``(T,) + frame_shape``."""
        return (self.num_frames, *self.frame_shape)

    def __len__(self) -> int:
        return self.num_frames

    @property
    def geometry(self) -> Geometry:
        """Axes ``tyx`` (``tyxc`` with channels); unit spacing unless the file records pixel
        sizes (OME-TIFF, ImageJ TIFF, OME-Zarr)."""
        axes = "tyx" if self.channels == 1 else "tyxc"
        return Geometry.from_sizes(axes, self.shape, self._pixel_sizes())

    def _pixel_sizes(self) -> dict[str, tuple[float, str | None]]:
        """``{axis letter: (spacing, unit)}`` recorded in the file (subclasses)."""
        return {}

    # -- reading -----------------------------------------------------------------------------

    def _check_index(self, t: int) -> int:
        t = operator.index(t)
        if not 0 <= t < self.num_frames:
            raise IndexError(f"frame {t} out of range 0..{self.num_frames - 1}")
        return t

    @abc.abstractmethod
    def _read(self, t: int) -> np.ndarray:
        """Return native frame ``t`` (0 <= t < num_frames); called with ``self._lock`` held."""

    def read(self, t: int) -> np.ndarray:
        """Native frame ``t``: ``(H, W)`` for 1 channel else ``(H, W, C)``, read-only.

        Raises IndexError for negative or out-of-range ``t`` and SourceError when the frame
        cannot be decoded or does not match the source geometry.
        """
        t = self._check_index(t)
        with self._lock:
            if self._closed:
                raise SourceError(f"{self._label()}: source is closed")
            frame = self._read(t)
        return checked_image(frame, self.dtype, self.frame_shape, self._label(), f"frame {t}")

    def read_rgb(self, t: int) -> np.ndarray:
        """Frame ``t`` as a C-contiguous read-only ``(H, W, 3)`` uint8 image for the model.

        uint8 RGB is returned as is; otherwise ``self.channel`` is picked (multichannel), the
        intensity window is applied (non-uint8 data) and gray is stacked to 3 channels.
        """
        frame = self.read(t)
        if self.channel is not None:
            frame = frame[..., self.channel]
        if self.window is None and frame.dtype != np.uint8:
            self.window = IntensityWindow.from_percentiles(self)
        if self.window is not None:
            frame = self.window.apply(frame)
        if frame.ndim == 2:
            frame = np.repeat(frame[:, :, None], 3, axis=2)
        frame = np.ascontiguousarray(frame)
        if frame.flags.writeable:
            frame.flags.writeable = False
        return frame

    # -- provenance --------------------------------------------------------------------------

    def fingerprint(self) -> str:
        """Cheap stable content id: sha256 hex over kind, shape, dtype and the bytes of the
        first, middle and last native frames."""
        h = hashlib.sha256()
        header = [self.kind, list(self.shape), self.dtype.newbyteorder("<").str]
        h.update(json.dumps(header).encode())
        n = self.num_frames
        for t in sorted({0, n // 2, n - 1}):
            frame = np.ascontiguousarray(self.read(t), dtype=self.dtype.newbyteorder("<"))
            h.update(frame.tobytes())
        return h.hexdigest()

    def _extra_description(self) -> dict[str, Any]:
        return {}

    def describe(self) -> dict[str, Any]:
        """JSON-able provenance: path, kind, geometry, dtype, channel, window, fps (None when
        unknown) and source-specific extras (e.g. ``axes``, ``codec``)."""
        d: dict[str, Any] = {
            "path": self.path,
            "kind": self.kind,
            "num_frames": self.num_frames,
            "height": self.height,
            "width": self.width,
            "channels": self.channels,
            "dtype": self.dtype.name,
            "channel": self.channel,
            "window": self.window.to_dict() if self.window is not None else None,
            "fps": None,
        }
        d.update(self._extra_description())
        return d

    def __repr__(self) -> str:
        shape = "x".join(str(s) for s in self.shape)
        where = f" {self.path!r}" if self.path else ""
        return f"<{type(self).__name__}{where} {shape} {self.dtype.name}>"


# -- axis layout for array-like sources --------------------------------------------------------

_AXIS_ROLES = {
    "t": "t", "time": "t", "q": "t", "i": "t",
    "c": "c", "channel": "c", "s": "c",
    "y": "y", "x": "x",
    "z": "z",
}  # fmt: skip

ACCEPTED_SHAPES = "(T,H,W), (T,H,W,C) with C<=4, or (T,C,H,W) with axes='tcyx'"


def _role(name: Any) -> str:
    key = str(name).strip().lower() if name is not None else ""
    return _AXIS_ROLES.get(key, "?")


def checked_image(
    image: Any, dtype: np.dtype, shape: tuple[int, ...], label: str, what: str
) -> np.ndarray:
    """``image`` as a read-only array of ``dtype`` (same kind and size: byte order is
    converted); SourceError naming ``what`` (e.g. ``frame 3``) when its dtype or shape is not
    the source's."""
    image = np.asarray(image)
    if image.dtype != dtype:
        if image.dtype.kind == dtype.kind and image.dtype.itemsize == dtype.itemsize:
            image = image.astype(dtype)
        else:
            raise SourceError(f"{label}: {what} has dtype {image.dtype}, expected {dtype}")
    if image.shape != shape:
        raise SourceError(f"{label}: {what} has shape {image.shape}, expected {shape}")
    if image.flags.writeable:
        image = image.view()
        image.flags.writeable = False
    return image


def read_part(data: Any, key: Any, label: str, what: str) -> np.ndarray:
    """``data[key]`` of an array-like (numpy, dask, zarr) as numpy; decode and IO failures of
    the backing store become one SourceError naming ``what``."""
    try:
        part = data[key]
        if hasattr(part, "compute"):
            part = part.compute()
        return np.asarray(part)
    except SourceError:
        raise
    except Exception as exc:  # decode/IO failures of the backing store
        raise SourceError(f"{label}: cannot read {what}: {exc}") from exc


def has_z_planes(axes: Sequence[Any] | None, shape: Sequence[int]) -> bool:
    """Whether axis names ``axes`` (one per dimension of ``shape``) hold a z axis of more than
    one plane; False when there are no names or their number does not match."""
    return axes is not None and len(axes) == len(shape) and any(
        _role(a) == "z" and int(n) > 1 for a, n in zip(axes, shape)
    )


@dataclass(frozen=True)
class FrameLayout:
    """Where time, channel, y and x live in an N-d array; other dims have size 1."""

    shape: tuple[int, ...]
    axes: tuple[str, ...]  # the axis names as given
    t_dim: int | None
    c_dim: int | None
    y_dim: int
    x_dim: int

    @property
    def num_frames(self) -> int:
        return self.shape[self.t_dim] if self.t_dim is not None else 1

    @property
    def channels(self) -> int:
        return self.shape[self.c_dim] if self.c_dim is not None else 1

    @property
    def height(self) -> int:
        return self.shape[self.y_dim]

    @property
    def width(self) -> int:
        return self.shape[self.x_dim]

    def key(self, t: int) -> tuple[int | slice, ...]:
        """Index tuple selecting frame ``t`` (only that frame is read from lazy arrays)."""
        keep = {self.y_dim, self.x_dim, self.c_dim}
        return tuple(
            t if d == self.t_dim else slice(None) if d in keep else 0
            for d in range(len(self.shape))
        )

    def to_frame(self, arr: np.ndarray) -> np.ndarray:
        """Transpose the result of ``data[key(t)]`` to ``(H, W)`` or ``(H, W, C)``."""
        kept = [d for d in range(len(self.shape)) if d in (self.y_dim, self.x_dim, self.c_dim)]
        order = [kept.index(self.y_dim), kept.index(self.x_dim)]
        if self.c_dim is not None:
            order.append(kept.index(self.c_dim))
        if order != list(range(len(order))):
            arr = arr.transpose(order)
        return arr


def guess_axes(shape: Sequence[int]) -> str:
    """Default axes of an array: 'yx', 'tyx', or 'tyxc' (last dim <= 4)."""
    nd = len(shape)
    if nd == 2:
        return "yx"
    if nd == 3:
        return "tyx"
    if nd == 4 and shape[-1] <= 4:
        return "tyxc"
    raise SourceError(
        f"found an array of shape {tuple(shape)}; accepted: {ACCEPTED_SHAPES}"
        + (" (pass axes='tcyx' for channels-first data)" if nd == 4 else "")
    )


def resolve_layout(shape: Sequence[int], axes: str | Sequence[Any], what: str) -> FrameLayout:
    """Interpret ``axes`` (letters like 'TCYX' or a list of names like ['t','c','y','x']).

    Time-like axes are T, Q, I ('time'); channel-like are C, S ('channel'). Every other axis
    must have size 1. Raises SourceError with a one-line explanation otherwise.
    """
    shape = tuple(int(s) for s in shape)
    names = tuple(axes) if not isinstance(axes, str) else tuple(axes)
    axes_str = "".join(str(a) for a in names) if isinstance(axes, str) else str(list(names))
    found = f"{what}: found shape {shape} with axes {axes_str}"
    if len(names) != len(shape):
        raise SourceError(f"{found}: {len(names)} axes for {len(shape)} dimensions")
    dims: dict[str, int] = {}
    for d, (name, size) in enumerate(zip(names, shape)):
        role = _role(name)
        if role in ("y", "x"):
            if role in dims:
                raise SourceError(f"{found}: axis {role.upper()} appears twice")
            dims[role] = d
        elif size == 1:
            continue
        elif role == "z":
            raise SourceError(
                f"{found}: a Z axis of {size} planes makes it a volume, not a 2D recording; "
                "open it with open_source or open_volume, or pick one z-plane (e.g. pass a "
                "numpy array data[:, z])"
            )
        elif role in ("t", "c"):
            if role in dims:
                raise SourceError(
                    f"{found}: more than one {'time' if role == 't' else 'channel'} axis; "
                    f"accepted: {ACCEPTED_SHAPES}"
                )
            dims[role] = d
        else:
            raise SourceError(
                f"{found}: axis {name!s} of size {size} is not supported; accepted: "
                f"{ACCEPTED_SHAPES}"
            )
    if "y" not in dims or "x" not in dims:
        raise SourceError(f"{found}: no Y and X axes; accepted: {ACCEPTED_SHAPES}")
    return FrameLayout(shape, names, dims.get("t"), dims.get("c"), dims["y"], dims["x"])


class LayoutSource(FrameSource):
    """A source backed by an N-d array-like (numpy, dask, zarr, tifffile's zarr store)."""

    def __init__(
        self,
        data: Any,
        axes: str | Sequence[Any],
        *,
        path: str | None,
        channel: int | None,
        window: IntensityWindow | tuple[float, float] | None,
        what: str,
    ) -> None:
        layout = resolve_layout(data.shape, axes, what)
        super().__init__(
            path=path,
            num_frames=layout.num_frames,
            height=layout.height,
            width=layout.width,
            channels=layout.channels,
            dtype=data.dtype,
        )
        self._data = data
        self.layout = layout
        self._configure(channel, window)

    def _read(self, t: int) -> np.ndarray:
        frame = read_part(self._data, self.layout.key(t), self._label(), f"frame {t}")
        return self.layout.to_frame(frame)

    def _extra_description(self) -> dict[str, Any]:
        axes = self.layout.axes
        return {"axes": "".join(axes) if all(len(str(a)) == 1 for a in axes) else list(axes)}

    def _close(self) -> None:
        self._data = None
