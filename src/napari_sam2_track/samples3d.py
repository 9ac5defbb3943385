"""Procedural sample volumes with exact ground truth: a z-stack and a 3D + time series.

Generated deterministically from a seed with numpy + scipy, like the 2D samples
(:mod:`napari_sam2_track.samples`):

* :func:`make_nuclei3d` - a ``(Z, H, W)`` fluorescence-like z-stack of ellipsoid nuclei of
  different sizes, shapes and brightness, with **anisotropic voxels** (by default 2 µm between
  slices, 0.5 µm pixels: z spacing 4x the in-plane spacing). Some nuclei are flat, some are
  elongated along z (spanning many slices), which is where propagating along y or x helps.
* :func:`make_cells3dt` - a ``(T, Z, H, W)`` time-lapse of nuclei moving in 3D; cell 3 divides
  at ``T // 2`` into two daughters (ids ``n_cells + 1`` and ``n_cells + 2``, ``lineage`` maps
  both to 3).

Objects are ellipsoids defined in physical units (µm), rendered on the voxel grid: a voxel
belongs to an object when its centre lies inside the ellipsoid (where two touch, to the one whose
normalised distance is smaller), so the labels are exact. The image is the objects' textured
intensity blurred by an anisotropic point-spread function (wider along z), on a smooth
autofluorescence background, with shot and read noise (uint16).

Each sample carries example prompts in the prompts-file structure (``"frame"`` the timepoint,
``"z"`` the slice): one positive click per object, on the object's middle slice, at the pixel
farthest from the mask border in that slice (``prompt_kind="box"`` gives its bounding box).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from scipy import ndimage as ndi

from .schema import Category, Schema

__all__ = ["SampleVolume", "make_nuclei3d", "make_cells3dt", "middle_slice_prompts",
           "VOLUME_SAMPLES", "make_volume_sample", "sample_layers"]

#: Default voxel size (z, y, x) of the volume samples, in µm: z spacing 4x the in-plane one.
SAMPLE_SPACING = (2.0, 0.5, 0.5)
SAMPLE_UNIT = "µm"


@dataclass
class SampleVolume:
    """A synthetic volume (or 3D + time series) with ground truth.

    Attributes:
        name: ``"nuclei3d"`` or ``"cells3dt"``.
        data: ``(T, Z, H, W)`` uint16 intensities (T = 1 for a static volume).
        labels: ``(T, Z, H, W)`` uint32 object ids, 0 = background.
        spacing: voxel size ``(dz, dy, dx)`` in ``unit``.
        unit: spatial unit of ``spacing`` (``"µm"``).
        categories: object id -> category name.
        lineage: child id -> parent id (cell divisions).
        prompts: example prompts in the prompts-file structure (``version``, ``objects``,
            ``prompts`` with ``frame`` = timepoint and ``z`` = slice).
        category_colors: category name -> ``#rrggbb``.
    """

    name: str
    data: np.ndarray
    labels: np.ndarray
    spacing: tuple[float, float, float]
    unit: str
    categories: dict[int, str]
    lineage: dict[int, int] = field(default_factory=dict)
    prompts: dict[str, Any] = field(default_factory=dict)
    category_colors: dict[str, str] = field(default_factory=dict)

    @property
    def shape(self) -> tuple[int, int, int, int]:
        """``(T, Z, H, W)``."""
        return tuple(int(s) for s in self.data.shape)  # type: ignore[return-value]

    @property
    def object_ids(self) -> list[int]:
        return sorted(self.categories)

    @property
    def sizes(self) -> dict[str, tuple[float, str | None]]:
        """Voxel sizes per axis letter, as :class:`~.sources.ArrayVolumeSource` takes them."""
        dz, dy, dx = self.spacing
        return {"z": (dz, self.unit), "y": (dy, self.unit), "x": (dx, self.unit)}

    def source(self, window: Any = None):
        """The sample as a lazy :class:`~.sources.VolumeSource` with its geometry."""
        from .sources.volume import ArrayVolumeSource

        return ArrayVolumeSource(self.data, "TZYX", sizes=self.sizes, window=window,
                                 what=f"sample {self.name}")

    def schema(self) -> Schema:
        names = list(self.category_colors) or sorted(set(self.categories.values()))
        cats = [Category(name=n, color=self.category_colors.get(n, "#ff00ff")) for n in names]
        return Schema(name=self.name, categories=cats)

    def save(self, folder: str | Path) -> dict[str, Path]:
        """Write ``<name>.ome.tif`` (ZYX or TZYX, physical sizes in the OME metadata),
        ``<name>_labels.tif``, ``<name>_prompts.json`` and ``<name>_schema.yaml`` into
        ``folder``, ready for ``napari-sam2-track track``; returns their paths."""
        import tifffile

        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        static = self.shape[0] == 1
        axes = "ZYX" if static else "TZYX"
        dz, dy, dx = self.spacing
        meta = {"axes": axes, "PhysicalSizeZ": dz, "PhysicalSizeY": dy, "PhysicalSizeX": dx,
                "PhysicalSizeZUnit": self.unit, "PhysicalSizeYUnit": self.unit,
                "PhysicalSizeXUnit": self.unit}
        paths = {"image": folder / f"{self.name}.ome.tif",
                 "labels": folder / f"{self.name}_labels.tif",
                 "prompts": folder / f"{self.name}_prompts.json",
                 "schema": folder / f"{self.name}_schema.yaml"}
        tifffile.imwrite(paths["image"], self.data[0] if static else self.data, ome=True,
                         metadata=meta)
        tifffile.imwrite(paths["labels"], self.labels[0] if static else self.labels, ome=True,
                         metadata=meta)
        paths["prompts"].write_text(json.dumps(self.prompts, indent=1))
        self.schema().save(paths["schema"])
        return paths


# ---------------------------------------------------------------------------------------------
# rendering


@dataclass
class _Ellipsoid:
    """An ellipsoid in µm: centre ``(z, y, x)``, semi-axes ``(a_z, a_u, a_v)`` where u and v
    are in-plane axes turned by ``angle`` from x, and its brightness."""

    centre: np.ndarray
    semi: np.ndarray
    angle: float
    bright: float


def _render(
    objects: dict[int, _Ellipsoid], shape: tuple[int, int, int], spacing: tuple[float, ...],
) -> tuple[np.ndarray, np.ndarray]:
    """Labels (uint32) and noiseless signal (float32) of ellipsoids on a ``(Z, H, W)`` grid."""
    Z, H, W = shape
    dz, dy, dx = spacing
    zz = (np.arange(Z, dtype=np.float32) + 0.5) * dz
    yy = (np.arange(H, dtype=np.float32) + 0.5) * dy
    xx = (np.arange(W, dtype=np.float32) + 0.5) * dx
    labels = np.zeros(shape, np.uint32)
    best = np.full(shape, np.inf, np.float32)
    signal = np.zeros(shape, np.float32)
    for obj_id, e in objects.items():
        reach = float(e.semi.max()) * 1.6
        lo = [max(0, int((c - reach) / s)) for c, s in zip(e.centre, spacing)]
        hi = [min(n, int(np.ceil((c + reach) / s)) + 1)
              for c, s, n in zip(e.centre, spacing, shape)]
        if any(h <= l for l, h in zip(lo, hi)):
            continue
        box = tuple(slice(l, h) for l, h in zip(lo, hi))
        z = (zz[box[0]] - e.centre[0])[:, None, None]
        y = (yy[box[1]] - e.centre[1])[None, :, None]
        x = (xx[box[2]] - e.centre[2])[None, None, :]
        ca, sa = np.float32(np.cos(e.angle)), np.float32(np.sin(e.angle))
        u = (x * ca + y * sa) / e.semi[1]
        v = (-x * sa + y * ca) / e.semi[2]
        w = z / e.semi[0]
        d = np.sqrt(u * u + v * v + w * w)
        profile = 1.0 / (1.0 + np.exp(np.clip((d - 1.0) * 10.0, -30, 30)))
        texture = 1.0 + 0.15 * np.sin(4.0 * u + obj_id) * np.cos(3.0 * v - obj_id) * np.cos(2 * w)
        signal[box] += (e.bright * profile * texture).astype(np.float32)
        win = (d <= 1.0) & (d < best[box])
        labels[box] = np.where(win, np.uint32(obj_id), labels[box])
        best[box] = np.where(win, d, best[box])
    return labels, signal


def _image(rng: np.random.Generator, signal: np.ndarray, spacing: tuple[float, ...],
           background: np.ndarray) -> np.ndarray:
    """Blur (PSF sigma 0.35 µm in-plane, 1.2 µm along z), background, shot and read noise."""
    sigma = (1.2 / spacing[0], 0.35 / spacing[1], 0.35 / spacing[2])
    photons = np.maximum(ndi.gaussian_filter(signal, sigma=sigma) + background, 0)
    noise = rng.standard_normal((2, *photons.shape), dtype=np.float32)
    counts = photons + np.sqrt(photons) * noise[0] + 100.0 + 5.0 * noise[1]
    return np.clip(np.rint(counts), 0, 65535).astype(np.uint16)


def _background(rng: np.random.Generator, shape: tuple[int, int, int]) -> np.ndarray:
    """Smooth autofluorescence around 40 counts."""
    n = ndi.gaussian_filter(rng.standard_normal(shape).astype(np.float32),
                            (max(1.0, shape[0] / 8), shape[1] / 12, shape[2] / 12), mode="wrap")
    n = (n - n.mean()) / (n.std() + 1e-8)
    return (40.0 * (1 + 0.3 * n)).astype(np.float32)


def _place(rng: np.random.Generator, extent: np.ndarray, semis: list[np.ndarray],
           tries: int = 400) -> list[np.ndarray]:
    """Centres (µm) for ellipsoids of the given semi-axes, inside ``extent`` and apart (their
    bounding spheres overlap by at most 10 %)."""
    centres: list[np.ndarray] = []
    for semi in semis:
        r = float(semi[1:].max())
        lo = np.array([min(semi[0], extent[0] / 2), r, r]) * np.array([0.7, 1.1, 1.1])
        hi = np.maximum(extent - lo, lo + 1e-3)
        best, best_gap = None, -np.inf
        for _ in range(tries):
            c = rng.uniform(lo, hi)
            gap = min((_gap(c, semi, q, s) for q, s in zip(centres, semis)), default=np.inf)
            if gap > best_gap:
                best, best_gap = c, gap
            if gap > 0:
                break
        centres.append(best)
    return centres


def _gap(c: np.ndarray, semi: np.ndarray, q: np.ndarray, s: np.ndarray) -> float:
    """Positive when two ellipsoids' bounding spheres (per axis) are apart."""
    d = np.abs(c - q) / (semi + s)
    return float(d.max() - 0.9)


def middle_slice_prompts(
    labels: np.ndarray, categories: dict[int, str], *, timepoints: dict[int, int] | None = None,
    prompt_kind: str = "point",
) -> dict[str, Any]:
    """Prompts-file structure with one prompt per object on its middle slice.

    ``labels`` is ``(T, Z, H, W)``; the prompt of each object is at the timepoint
    ``timepoints[obj]`` (default: the first where it exists), on the middle of the slices it
    spans there, either a click at the pixel farthest from the mask border (``"point"``) or its
    bounding box ``[x0, y0, x1, y1]`` (``"box"``)."""
    if prompt_kind not in ("point", "box"):
        raise ValueError(f"prompt_kind must be 'point' or 'box', not {prompt_kind!r}")
    objects, prompts = [], []
    for obj in sorted(categories):
        if timepoints and obj in timepoints:
            t = timepoints[obj]
        else:
            present = np.flatnonzero((labels == obj).reshape(labels.shape[0], -1).any(1))
            if present.size == 0:
                continue
            t = int(present[0])
        zs = np.flatnonzero((labels[t] == obj).reshape(labels.shape[1], -1).any(1))
        z = int(zs[len(zs) // 2])
        mask = labels[t, z] == obj
        objects.append({"id": obj, "name": f"{categories[obj]} {obj}", "category": categories[obj]})
        prompt: dict[str, Any] = {"object": obj, "frame": t, "z": z}
        if prompt_kind == "point":
            dist = ndi.distance_transform_edt(np.pad(mask, 1))
            y, x = np.unravel_index(int(np.argmax(dist)), dist.shape)
            prompt.update(points=[[float(x - 1), float(y - 1)]], labels=[1])
        else:
            ys, xs = np.nonzero(mask)
            prompt["box"] = [float(xs.min()), float(ys.min()), float(xs.max() + 1),
                             float(ys.max() + 1)]
        prompts.append(prompt)
    return {"version": 1, "objects": objects, "prompts": prompts}


# ---------------------------------------------------------------------------------------------
# samples


def make_nuclei3d(
    shape: tuple[int, int, int] = (32, 128, 128), n_nuclei: int = 6, seed: int = 0,
    spacing: tuple[float, float, float] = SAMPLE_SPACING, prompt_kind: str = "point",
) -> SampleVolume:
    """A static z-stack ``(1, Z, H, W)`` of ``n_nuclei`` ellipsoid nuclei (ids 1..n).

    Sizes, brightness (300..1200 counts) and shapes differ: odd ids are elongated along z
    (z semi-axis 1.4 to 2.2 times the in-plane one), even ids are flattened (0.5 to 0.8 times).
    With the default spacing the stack is 64 µm cubed on 32 x 128 x 128 voxels.
    """
    if n_nuclei < 1:
        raise ValueError("make_nuclei3d needs n_nuclei >= 1")
    Z, H, W = (int(s) for s in shape)
    if min(Z, H, W) < 2:
        raise ValueError(f"make_nuclei3d needs at least 2 voxels along each axis, got {shape}")
    rng = np.random.default_rng(seed)
    extent = np.array([Z, H, W], float) * np.array(spacing)
    r_max = 0.13 * float(min(extent[1:]))
    semis = []
    for i in range(1, n_nuclei + 1):
        a = rng.uniform(0.55, 1.0) * r_max
        b = a * rng.uniform(0.7, 0.95)
        elong = rng.uniform(1.4, 2.2) if i % 2 else rng.uniform(0.5, 0.8)
        az = min(a * elong, 0.42 * extent[0])
        semis.append(np.array([az, a, b], np.float32))
    centres = _place(rng, extent, semis)
    objects = {
        i: _Ellipsoid(c.astype(np.float32), s, float(rng.uniform(0, np.pi)),
                      float(rng.uniform(300, 1200)))
        for i, (c, s) in enumerate(zip(centres, semis), start=1)
    }
    labels, signal = _render(objects, (Z, H, W), spacing)
    data = _image(rng, signal, spacing, _background(rng, (Z, H, W)))
    categories = {i: "nucleus" for i in objects if (labels == i).any()}
    labels4, data4 = labels[None], data[None]
    return SampleVolume(
        name="nuclei3d", data=data4, labels=labels4, spacing=tuple(spacing), unit=SAMPLE_UNIT,
        categories=categories,
        prompts=middle_slice_prompts(labels4, categories, prompt_kind=prompt_kind),
        category_colors={"nucleus": "#2ca02c"},
    )


def make_cells3dt(
    n_timepoints: int = 8, shape: tuple[int, int, int] = (16, 96, 96), n_cells: int = 4,
    seed: int = 0, spacing: tuple[float, float, float] = SAMPLE_SPACING,
    prompt_kind: str = "point",
) -> SampleVolume:
    """A ``(T, Z, H, W)`` time-lapse of ``n_cells`` nuclei (``n_cells >= 3``) moving in 3D.

    Cells drift by about a nucleus radius per timepoint (reflected at the borders). Cell 3
    ("mitotic cell") elongates and brightens, then divides at ``T // 2`` into two daughters,
    ids ``n_cells + 1`` and ``n_cells + 2`` (category "nucleus", ``lineage`` maps both to 3),
    which move apart along the mother's long axis. The example prompts are on timepoint 0 for
    the cells present from the start and on ``T // 2`` for the daughters.
    """
    if n_cells < 3:
        raise ValueError("make_cells3dt needs n_cells >= 3 (cell 3 divides)")
    T = int(n_timepoints)
    if T < 2:
        raise ValueError("make_cells3dt needs n_timepoints >= 2")
    Z, H, W = (int(s) for s in shape)
    if min(Z, H, W) < 2:
        raise ValueError(f"make_cells3dt needs at least 2 voxels along each axis, got {shape}")
    rng = np.random.default_rng(seed)
    extent = np.array([Z, H, W], float) * np.array(spacing)
    r = 0.11 * float(min(extent[1:]))
    semis = [np.array([min(r * rng.uniform(0.8, 1.3), 0.4 * extent[0]), r * rng.uniform(0.85, 1.1),
                       r * rng.uniform(0.7, 0.85)], np.float32) for _ in range(n_cells)]
    centres = _place(rng, extent, semis)
    t_div = T // 2
    daughters = (n_cells + 1, n_cells + 2)
    margin = np.stack(semis).max(0)
    lo, hi = margin, np.maximum(extent - margin, margin + 1e-3)
    tracks: dict[int, list[_Ellipsoid | None]] = {}
    for i, (c, s) in enumerate(zip(centres, semis), start=1):
        angle, bright = float(rng.uniform(0, np.pi)), float(rng.uniform(400, 1000))
        velocity = rng.normal(0, 0.35 * r, 3) * np.array([0.4, 1.0, 1.0])
        if i == 3:
            velocity *= 0.3
        track: list[_Ellipsoid | None] = []
        pos = c.astype(float)
        for t in range(T):
            semi = s.copy()
            b = bright
            if i == 3:
                if t >= t_div:
                    track.append(None)
                    continue
                ramp = min(1.0, (t + 1) / max(1, t_div))
                semi = semi * np.array([1.0, 1 + 0.45 * ramp, 1 - 0.15 * ramp], np.float32)
                b = bright * (1 + 0.6 * ramp)
            track.append(_Ellipsoid(pos.astype(np.float32), semi, angle + 0.05 * t, b))
            velocity = 0.8 * velocity + rng.normal(0, 0.2 * r, 3) * np.array([0.4, 1, 1])
            pos = _reflect(pos + velocity, lo, hi)
        tracks[i] = track
    mother = tracks[3][t_div - 1]
    axis = np.array([0.0, np.sin(mother.angle), np.cos(mother.angle)])
    for sign, d_id in zip((-1.0, 1.0), daughters):
        track = [None] * t_div
        for t in range(t_div, T):
            age = t - t_div
            sep = mother.semi[1] * (0.55 + 0.35 * (1 - np.exp(-age / 2.0)))
            pos = _reflect(mother.centre + sign * sep * axis, lo, hi)
            semi = mother.semi * np.array([0.9, 0.6, 0.95], np.float32) * (1 + 0.05 * min(age, 3))
            track.append(_Ellipsoid(pos.astype(np.float32), semi.astype(np.float32),
                                    mother.angle + 0.03 * age, mother.bright * 0.7))
        tracks[d_id] = track
    background = _background(rng, (Z, H, W))
    data = np.empty((T, Z, H, W), np.uint16)
    labels = np.empty((T, Z, H, W), np.uint32)
    for t in range(T):
        now = {i: tr[t] for i, tr in tracks.items() if tr[t] is not None}
        labels[t], signal = _render(now, (Z, H, W), spacing)
        data[t] = _image(rng, signal * float(np.exp(-t / (4.0 * T))), spacing, background)
    categories = {i: "nucleus" for i in tracks}
    categories[3] = "mitotic cell"
    first = {d: t_div for d in daughters}
    return SampleVolume(
        name="cells3dt", data=data, labels=labels, spacing=tuple(spacing), unit=SAMPLE_UNIT,
        categories=categories, lineage={daughters[0]: 3, daughters[1]: 3},
        prompts=middle_slice_prompts(labels, categories, timepoints=first,
                                     prompt_kind=prompt_kind),
        category_colors={"nucleus": "#2ca02c", "mitotic cell": "#d62728"},
    )


def _reflect(pos: np.ndarray, lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
    span = hi - lo
    rel = np.mod(pos - lo, 2 * span)
    return lo + np.where(rel > span, 2 * span - rel, rel)


#: Volume samples by name (``annotate --sample``): the function that makes each.
VOLUME_SAMPLES = {"nuclei3d": make_nuclei3d, "cells3dt": make_cells3dt}


def make_volume_sample(name: str, seed: int = 0) -> SampleVolume:
    """The volume sample ``name`` (``nuclei3d`` or ``cells3dt``) with its default size."""
    try:
        return VOLUME_SAMPLES[name](seed=seed)
    except KeyError:
        raise ValueError(f"unknown volume sample {name!r}; use one of "
                         f"{', '.join(VOLUME_SAMPLES)}") from None


def sample_layers(sample: SampleVolume) -> list[tuple]:
    """napari layer tuples: the image with its voxel scale and the ground truth as Labels
    (``(Z, H, W)`` for a static volume, ``(T, Z, H, W)`` otherwise)."""
    from ._napari_io import META_KEY, labels_colormap
    from .schema import object_color

    static = sample.shape[0] == 1
    data = sample.data[0] if static else sample.data
    labels = sample.labels[0] if static else sample.labels
    scale = tuple(sample.spacing) if static else (1.0, *sample.spacing)
    axis_labels = tuple("zyx" if static else "tzyx")
    schema = sample.schema()
    colors = {i: object_color(i, cat, schema) for i, cat in sample.categories.items()}
    meta = {META_KEY: {"kind": "sample", "sample": sample.name,
                                  "schema": schema.to_dict(), "prompts": sample.prompts,
                                  "spacing": list(sample.spacing), "unit": sample.unit}}
    lo, hi = np.percentile(data[..., ::4, ::4], (0.5, 99.8))
    image = {"name": sample.name, "scale": scale, "axis_labels": axis_labels, "metadata": meta,
             "contrast_limits": [float(lo), float(hi)]}
    truth = {"name": f"{sample.name} ground truth", "scale": scale, "axis_labels": axis_labels,
             "colormap": labels_colormap(colors), "opacity": 0.4,
             "metadata": {META_KEY: {"kind": "ground_truth", "sample": sample.name}}}
    return [(data, image, "image"), (labels, truth, "labels")]


def sample_nuclei3d() -> list[tuple]:
    """napari sample data: the ``nuclei3d`` z-stack with its ground truth."""
    return sample_layers(make_nuclei3d())


def sample_cells3dt() -> list[tuple]:
    """napari sample data: the ``cells3dt`` 3D + time series with its ground truth."""
    return sample_layers(make_cells3dt())
