"""Propagation along y or x: a volume's planes across an axis, resampled to square pixels.

Tracking along z shows SAM 2 the volume's own slices. Tracking along y (or x) shows it the
planes ``y = k`` (or ``x = k``), which contain z: plane ``k`` of the y-axis view holds the rows
z and the columns x of row k of every slice. With anisotropic voxels (z spacing 4x the
in-plane one, a 4 mm-slice MRI) such a plane is squashed, so :class:`AxisView` resamples it
to square pixels: the finer of the plane's two spacings is kept and the coarser axis is
stretched (a 256 x 36 plane of 1 x 4 mm pixels becomes 256 x 144). Nothing is ever
downsampled.

* Images (model input): **linear** interpolation along the stretched axis, pixel centres
  aligned (the edge pixels are repeated at the borders), computed on the native values before
  the intensity window; NaN/Inf become the window's low end first, as in ``read_slice_rgb``.
* Prompts (volume -> view): a click ``(x, y)`` on slice ``z`` becomes a click on the plane
  through it (``k = floor(y)`` for the y axis), at row ``(z + 0.5) * rows / Z`` (the middle of
  the slice's extent) and column ``x`` times the column stretch. A box or a mask drawn on a
  z-slice has no extent across y-planes and is refused with one line.
* Masks (view -> volume): **area-correct**: a voxel belongs to an object when at least half
  of its extent in the plane is covered by the object's mask in the view (a label image: the
  label covering the largest part of it; ties go to the object). The object's volume is kept
  up to half a voxel per boundary. Ground truth mapped to the view (nearest neighbour) and back
  returns unchanged when the stretch is an integer (tests measure the other cases).

Memory: the view reads one timepoint of the volume at a time (``Z`` slices, kept until a plane
of another timepoint is asked for), and mapping masks back holds one timepoint's ``(Z, H, W)``
masks per object: flat in the number of timepoints.
"""

from __future__ import annotations

import math
import operator
from collections.abc import Iterable, Iterator
from typing import Any

import numpy as np

from ..errors import PromptError, SourceError
from ..sources.geometry import Geometry
from ..sources.volume import VolumeSource
from .checks import VOLUME_AXES as AXES
from .checks import check_axis as check_volume_axis

__all__ = ["AXES", "AxisView", "check_axis", "Resampler", "VolumeAssembler", "map_prompts"]

#: Length units in micrometres, to compare spacings recorded in different units.
_MICROMETRES = {"nm": 1e-3, "µm": 1.0, "mm": 1e3, "cm": 1e4, "m": 1e6}


def check_axis(axis: str, source: Any) -> str:
    """``axis`` (``z``, ``y`` or ``x``) checked against ``source``; one-line SourceError when
    it does not exist, when the source is a 2D recording, or when the volume has a single
    plane along it."""
    name = check_volume_axis(axis)
    if not isinstance(source, VolumeSource):
        raise SourceError(f"--axis {name} needs a volume (data with a z axis), and this is a 2D "
                          "recording: track its frames without --axis (or open the data with "
                          "axes= naming its z axis)")
    T, Z, H, W = source.shape
    length = {"z": Z, "y": H, "x": W}[name]
    if length < 2:
        others = [a for a, n in zip("zyx", (Z, H, W)) if a != name and n > 1]
        raise SourceError(f"the volume has a single plane along {name} (shape {Z}x{H}x{W}, z, y, "
                          f"x): propagating along {name} needs at least 2; use --axis "
                          f"{' or '.join(others)}")
    return name


def _in_micrometres(spacing: float, unit: str | None) -> float | None:
    factor = _MICROMETRES.get(unit or "")
    return None if factor is None else spacing * factor


def plane_spacing(geometry: Geometry, axis: str) -> tuple[float, float]:
    """Physical ``(row, column)`` spacing of the planes across ``axis`` (rows are z), in a
    common unit when both are known, else as recorded."""
    names = {"y": ("z", "x"), "x": ("z", "y")}[axis]
    spacing = [geometry.spacing[geometry.axes.index(a)] for a in names]
    units = [geometry.units[geometry.axes.index(a)] for a in names]
    converted = [_in_micrometres(s, u) for s, u in zip(spacing, units)]
    if units[0] != units[1] and None not in converted:
        return converted[0], converted[1]  # type: ignore[return-value]
    return spacing[0], spacing[1]


class Resampler:
    """Resampling of ``n`` samples of size ``n_out / n`` to ``n_out`` along one axis.

    Linear interpolation (pixel centres aligned), nearest neighbour and the area-weighted
    inverse (``area[i, j]``: the part of native sample ``i`` covered by output sample ``j``;
    rows sum to 1).
    """

    def __init__(self, n: int, n_out: int) -> None:
        self.n, self.n_out = int(n), int(n_out)
        ratio = self.n / self.n_out
        centres = (np.arange(self.n_out) + 0.5) * ratio - 0.5
        lo = np.clip(np.floor(centres), 0, self.n - 1).astype(np.intp)
        self.lo, self.hi = lo, np.minimum(lo + 1, self.n - 1)
        self.weight = np.clip(centres - lo, 0.0, 1.0).astype(np.float32)
        self.nearest = np.minimum(((np.arange(self.n_out) + 0.5) * ratio).astype(np.intp),
                                  self.n - 1)
        edges = np.arange(self.n_out + 1) * ratio
        starts, stops = edges[:-1], edges[1:]
        native = np.arange(self.n)[:, None]
        overlap = np.minimum(stops[None], native + 1.0) - np.maximum(starts[None], native)
        self.area = np.clip(overlap, 0.0, None).astype(np.float32)

    @property
    def identity(self) -> bool:
        return self.n == self.n_out

    def linear(self, a: np.ndarray, axis: int) -> np.ndarray:
        if self.identity:
            return a
        lo, hi = np.take(a, self.lo, axis=axis), np.take(a, self.hi, axis=axis)
        shape = [1] * a.ndim
        shape[axis] = self.n_out
        w = self.weight.reshape(shape)
        return lo + (hi - lo) * w

    def fractions(self, a: np.ndarray, axis: int) -> np.ndarray:
        """Area-weighted means of ``a`` (output samples) on the native samples."""
        if self.identity:
            return a
        return np.moveaxis(np.tensordot(self.area, a, axes=([1], [axis])), 0, axis)


class AxisView(VolumeSource):
    """The planes of ``volume`` across ``axis`` (``"y"`` or ``"x"``) as the slices to track.

    ``shape`` is ``(T, K, R, C)``: K planes (H for y, W for x), each ``R x C`` pixels after
    resampling (rows are z). ``read_slice(t, k)`` gives the resampled plane (float32, native
    intensities), ``read_slice_rgb(t, k)`` the model input through the volume's intensity
    window. ``geometry`` describes the view: axes ``"tyzx"`` (y view) or ``"txzy"`` (x view),
    square pixels of ``pixel_size``. :meth:`plane_to_volume`, :meth:`masks_to_volume`,
    :meth:`labels_to_volume` map results back, :meth:`point_to_view` and :func:`map_prompts`
    map prompts in.
    """

    kind = "axis view"

    def __init__(self, volume: VolumeSource, axis: str) -> None:
        axis = check_axis(axis, volume)
        if axis == "z":
            raise SourceError("--axis z tracks the volume's own slices: no view is needed")
        T, Z, H, W = volume.shape
        cols = W if axis == "y" else H
        d_row, d_col = plane_spacing(volume.geometry, axis)
        if not (d_row > 0 and d_col > 0 and math.isfinite(d_row) and math.isfinite(d_col)):
            raise SourceError(f"{volume._label()}: voxel spacing {volume.geometry.spacing} must "
                              "be positive to resample planes across z")
        size = min(d_row, d_col)
        rows_out = max(1, round(Z * d_row / size))
        cols_out = max(1, round(cols * d_col / size))
        self.volume = volume
        self.axis = axis
        self.rows = Resampler(Z, rows_out)
        self.cols = Resampler(cols, cols_out)
        self.pixel_size = float(size)
        g = volume.geometry
        k_index = g.axes.index(axis)
        units = dict(zip(g.axes, g.units))
        unit_row, unit_col = units["z"], units["x" if axis == "y" else "y"]
        converted = unit_row != unit_col and None not in (
            _in_micrometres(1.0, unit_row), _in_micrometres(1.0, unit_col))
        plane_unit = "µm" if converted else unit_row
        view_axes = "t" + axis + ("zx" if axis == "y" else "zy")
        shape = (T, volume.shape[k_index], rows_out, cols_out)
        geometry = Geometry(view_axes, shape,
                            (g.spacing[0], g.spacing[k_index], size, size),
                            (g.units[0], g.units[k_index], plane_unit, plane_unit))
        super().__init__(path=volume.path, shape=shape, dtype=np.float32, geometry=geometry,
                         channel=volume.channel)
        self.window = volume.window
        self._cached: tuple[int, np.ndarray] | None = None

    def _label(self) -> str:
        return f"{self.volume._label()} (planes across {self.axis})"

    def __repr__(self) -> str:
        shape = "x".join(str(s) for s in self.shape)
        return f"<AxisView {self.axis} of {self.volume!r}: {shape} ({self.geometry.axes})>"

    # -- reading -----------------------------------------------------------------------------

    def timepoint(self, t: int) -> np.ndarray:
        """The volume's native ``(Z, H, W)`` timepoint ``t`` (the last one read is kept)."""
        with self._lock:
            if self._cached is None or self._cached[0] != t:
                self._cached = None  # the previous timepoint is released before the next read
                Z = self.volume.depth
                data = np.stack([self.volume.read_slice(t, z) for z in range(Z)])
                self._cached = (t, data)
            return self._cached[1]

    def native_plane(self, t: int, k: int) -> np.ndarray:
        """Plane ``k`` of timepoint ``t`` before resampling: ``(Z, W)`` for y, ``(Z, H)`` for x."""
        data = self.timepoint(t)
        return data[:, k, :] if self.axis == "y" else data[:, :, k]

    def _read_slice(self, t: int, k: int) -> np.ndarray:
        plane = self.native_plane(t, k).astype(np.float32)
        if plane.dtype.kind == "f" and not np.isfinite(plane).all():
            low = self.window.low if self.window is not None else 0.0
            plane = np.where(np.isfinite(plane), plane, np.float32(low))
        return self.cols.linear(self.rows.linear(plane, 0), 1).astype(np.float32, copy=False)

    def read_slice_rgb(self, t: int, z: int) -> np.ndarray:
        """Resampled plane ``(t, k)`` as ``(R, C, 3)`` uint8 through the volume's window."""
        image = self.read_slice(t, z)
        if self.window is not None:
            image = self.window.apply(image)
        else:  # 8-bit data is fed as is
            image = np.clip(np.rint(image), 0, 255).astype(np.uint8)
        out = np.ascontiguousarray(np.repeat(image[:, :, None], 3, axis=2))
        out.flags.writeable = False
        return out

    def _close(self) -> None:
        self._cached = None

    def _extra_description(self) -> dict[str, Any]:
        return {"axis": self.axis, "pixel_size": self.pixel_size,
                "volume": self.volume.describe()}

    # -- masks: view -> volume ---------------------------------------------------------------

    @property
    def volume_shape(self) -> tuple[int, int, int]:
        """``(Z, H, W)`` of one timepoint of the volume."""
        return tuple(self.volume.shape[1:])  # type: ignore[return-value]

    def plane_fractions(self, mask: np.ndarray) -> np.ndarray:
        """Part of each native pixel of the plane covered by ``mask`` (an ``(R, C)`` view
        mask), as ``(Z, W)`` (y) or ``(Z, H)`` (x) float32."""
        mask = np.asarray(mask, np.float32)
        if mask.shape != self.shape[2:]:
            raise ValueError(f"view mask of shape {mask.shape}, expected {self.shape[2:]}")
        return self.cols.fractions(self.rows.fractions(mask, 0), 1)

    def plane_to_volume(self, mask: np.ndarray) -> np.ndarray:
        """An ``(R, C)`` view mask as the native plane's bool mask (area-correct, >= half)."""
        return self.plane_fractions(mask) >= 0.5 - 1e-6

    def place(self, volume: np.ndarray, k: int, plane: np.ndarray) -> None:
        """Write a native plane into ``volume`` (``(Z, H, W)``) at plane ``k``."""
        if self.axis == "y":
            volume[:, k, :] = plane
        else:
            volume[:, :, k] = plane

    def masks_to_volume(self, masks: np.ndarray | Iterable[tuple[int, np.ndarray]]) -> np.ndarray:
        """``(K, R, C)`` view masks (or ``(k, mask)`` pairs) of one timepoint as ``(Z, H, W)``
        bool."""
        out = np.zeros(self.volume_shape, bool)
        pairs = enumerate(masks) if isinstance(masks, np.ndarray) else masks
        for k, mask in pairs:
            self.place(out, k, self.plane_to_volume(mask))
        return out

    def labels_to_volume(self, labels: np.ndarray) -> np.ndarray:
        """``(K, R, C)`` view labels of one timepoint as ``(Z, H, W)`` uint32: each voxel takes
        the label covering the largest part of it (ties to the object, then the lower id)."""
        out = np.zeros(self.volume_shape, np.uint32)
        for k, plane in enumerate(np.asarray(labels)):
            ids = [int(i) for i in np.unique(plane) if i]
            if not ids:
                continue
            shares = np.stack([self.plane_fractions(plane == i) for i in ids])
            best = np.argmax(shares, axis=0)
            share = np.take_along_axis(shares, best[None], 0)[0]
            background = 1.0 - shares.sum(0)
            native = np.where(share >= background - 1e-6, np.asarray(ids, np.uint32)[best], 0)
            self.place(out, k, native.astype(np.uint32))
        return out

    # -- volume -> view (ground truth, mask prompts) -----------------------------------------

    def volume_to_view(self, volume: np.ndarray) -> np.ndarray:
        """A ``(Z, H, W)`` label or mask volume as ``(K, R, C)`` view planes (nearest)."""
        volume = np.asarray(volume)
        planes = volume.transpose(1, 0, 2) if self.axis == "y" else volume.transpose(2, 0, 1)
        return planes[:, self.rows.nearest][:, :, self.cols.nearest]

    # -- prompts: volume -> view -------------------------------------------------------------

    def point_to_view(self, z: int, x: float, y: float) -> tuple[int, float, float]:
        """A click ``(x, y)`` on slice ``z`` as ``(k, x', y')``: the plane through it and the
        point in that plane's pixels (SAM 2's convention: coordinates scale with the image)."""
        Z, H, W = self.volume_shape
        z = operator.index(z)
        if not (0 <= z < Z and 0 <= x < W and 0 <= y < H):
            raise PromptError(f"point ({x:g}, {y:g}) on slice z={z} is outside the volume "
                              f"({W}x{H} pixels, {Z} slices)")
        across, along = (y, x) if self.axis == "y" else (x, y)
        k = min(int(math.floor(across)), (H if self.axis == "y" else W) - 1)
        row = (z + 0.5) * self.rows.n_out / self.rows.n
        col = along * self.cols.n_out / self.cols.n
        return k, float(col), float(row)


def map_prompts(view: AxisView, prompts: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
    """Prompts in volume coordinates (``frame`` = timepoint, ``z`` = slice, clicks ``(x, y)`` of
    that slice) as prompts on the view's planes (``z`` = plane index ``k`` along the axis,
    clicks in the plane's pixels). Clicks of one prompt on different planes become one prompt
    per plane; clicks of one object landing on the same plane of the same timepoint are merged
    (in the order given). A box or a mask on a z-slice is refused with one line."""
    merged: dict[tuple[int, int, int], dict[str, Any]] = {}
    for p in prompts:
        p = dict(p)
        obj, frame, z = p["object"], int(p["frame"]), p.get("z")
        where = f"object {obj}, frame {frame}" + ("" if z is None else f", slice z={z}")
        if p.get("box") is not None or p.get("mask") is not None:
            kind = "box" if p.get("box") is not None else "mask"
            raise PromptError(
                f"{where}: a {kind} drawn on a z-slice has no extent across {view.axis}-planes; "
                f"for --axis {view.axis} give clicks (points), or use --axis z")
        if z is None:
            raise PromptError(f"{where}: a prompt in a volume needs \"z\" (the slice it is on)")
        if not 0 <= frame < view.shape[0]:
            raise PromptError(f"{where}: the volume has {view.shape[0]} timepoint(s) "
                              f"(0..{view.shape[0] - 1})")
        for (x, y), label in zip(p.get("points", []), p.get("labels", [])):
            k, vx, vy = view.point_to_view(int(z), float(x), float(y))
            entry = merged.setdefault((obj, frame, k), {"object": obj, "frame": frame, "z": k,
                                                        "points": [], "labels": []})
            entry["points"].append([vx, vy])
            entry["labels"].append(int(label))
    return list(merged.values())


class VolumeAssembler:
    """Collects view masks of one timepoint, per object, into ``(Z, H, W)`` volumes.

    :meth:`add` takes ``(t, k, {obj: mask})`` as tracking yields them; when a mask of a new
    timepoint arrives (or at :meth:`finish`) the previous timepoint is handed out as
    ``(t, {obj: (Z, H, W) bool})``. Planes never given stay empty. At most one timepoint is
    held.
    """

    def __init__(self, view: AxisView) -> None:
        self.view = view
        self._t: int | None = None
        self._volumes: dict[int, np.ndarray] = {}

    def add(self, t: int, k: int, masks: dict[int, np.ndarray]
            ) -> Iterator[tuple[int, dict[int, np.ndarray]]]:
        """Add plane ``k`` of timepoint ``t``; yields a finished earlier timepoint if any."""
        if self._t is not None and t != self._t:
            yield from self.finish()
        self._t = t
        for obj, mask in masks.items():
            volume = self._volumes.get(obj)
            if volume is None:
                volume = self._volumes[obj] = np.zeros(self.view.volume_shape, bool)
            self.view.place(volume, k, self.view.plane_to_volume(mask))

    def finish(self) -> Iterator[tuple[int, dict[int, np.ndarray]]]:
        """Hand out the timepoint held, if any."""
        if self._t is not None:
            t, volumes = self._t, self._volumes
            self._t, self._volumes = None, {}
            yield t, volumes
