"""Procedural sample videos with exact ground truth.

Two small synthetic videos that exercise the hard cases of video object tracking, generated
deterministically from a seed with numpy + scikit-image (scipy) only:

* :func:`make_cells` - a 16-bit fluorescence-like time-lapse of nuclei: smooth random-walk
  motion, two cells crossing paths, one cell dividing into two daughters, blur, shot/read noise,
  camera offset and photobleaching.
* :func:`make_instruments` - an RGB surgical-like scene: textured tissue, metallic instruments
  entering from the border, one leaving the view and coming back, one passing over another,
  and a drifting smoke patch that hides an instrument for a few frames.

The volume samples (a z-stack and a 3D + time series, with anisotropic voxels) are in
:mod:`napari_sam2_track.samples3d`.

Ground-truth labels contain only *visible* pixels. An object present in a frame but with less
than half of its (in-frame) area visible is listed in ``occluded``; an object that exists but has
no pixel inside the frame is listed in ``out_of_frame``.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from scipy import ndimage as ndi

from .schema import Category, Schema

#: frames of a sample when none are asked for (``annotate --sample``)
SAMPLE_FRAMES = 60

__all__ = ["SampleVideo", "first_frame_prompts", "make_cells", "make_instruments"]

#: An object with less than this fraction of its in-frame area visible counts as occluded.
OCCLUDED_VISIBLE_FRACTION = 0.5


@dataclass
class SampleVideo:
    """A synthetic video with ground truth.

    Attributes:
        name: short name (``"cells"`` or ``"instruments"``).
        frames: ``(T, H, W)`` grayscale or ``(T, H, W, 3)`` RGB frames.
        labels: ``(T, H, W)`` uint32 instance ids of the visible pixels, 0 = background.
        categories: object id -> category name.
        lineage: child id -> parent id (cell divisions).
        occluded: object id -> frames where the object is present but mostly hidden.
        out_of_frame: object id -> frames where the object exists but lies outside the view.
        category_colors: category name -> ``#rrggbb`` display colour.
    """

    name: str
    frames: np.ndarray
    labels: np.ndarray
    categories: dict[int, str]
    lineage: dict[int, int] = field(default_factory=dict)
    occluded: dict[int, list[int]] = field(default_factory=dict)
    out_of_frame: dict[int, list[int]] = field(default_factory=dict)
    category_colors: dict[str, str] = field(default_factory=dict)

    @property
    def n_frames(self) -> int:
        """Number of frames."""
        return int(self.frames.shape[0])

    @property
    def object_ids(self) -> list[int]:
        """All object ids, sorted."""
        return sorted(self.categories)

    def schema(self) -> Schema:
        """A :class:`~napari_sam2_track.schema.Schema` with this sample's categories/colours."""
        names = list(self.category_colors) or sorted(set(self.categories.values()))
        cats = [Category(name=n, color=self.category_colors.get(n, "#ff00ff")) for n in names]
        return Schema(name=self.name, categories=cats)


def first_frame_prompts(sample: SampleVideo) -> dict[int, tuple[float, float]]:
    """One positive click ``(x, y)`` per object visible in frame 0: the mask pixel farthest from
    the mask border (the image border counts as a border)."""
    lab0 = np.asarray(sample.labels[0])
    prompts: dict[int, tuple[float, float]] = {}
    for obj_id in np.unique(lab0):
        if obj_id == 0:
            continue
        mask = np.pad(lab0 == obj_id, 1)
        dist = ndi.distance_transform_edt(mask)
        y, x = np.unravel_index(int(np.argmax(dist)), dist.shape)
        prompts[int(obj_id)] = (float(x - 1), float(y - 1))
    return prompts


# ---------------------------------------------------------------------------------------------
# helpers


def _smooth_noise(rng: np.random.Generator, shape: tuple[int, ...], sigma: float) -> np.ndarray:
    """Gaussian-filtered white noise, normalised to zero mean / unit std."""
    n = ndi.gaussian_filter(rng.standard_normal(shape).astype(np.float32), sigma, mode="wrap")
    n -= n.mean()
    n /= n.std() + 1e-8
    return n


def _interp_path(
    t: np.ndarray, keys: list[tuple[float, float, float]]
) -> tuple[np.ndarray, np.ndarray]:
    """Piecewise-smooth (smoothstep) interpolation of ``(t_norm, x, y)`` keyframes at ``t``."""
    kt = np.array([k[0] for k in keys])
    kx = np.array([k[1] for k in keys])
    ky = np.array([k[2] for k in keys])
    idx = np.clip(np.searchsorted(kt, t, side="right") - 1, 0, len(kt) - 2)
    t0, t1 = kt[idx], kt[idx + 1]
    s = np.clip((t - t0) / np.maximum(t1 - t0, 1e-9), 0.0, 1.0)
    s = s * s * (3 - 2 * s)
    x = kx[idx] + (kx[idx + 1] - kx[idx]) * s
    y = ky[idx] + (ky[idx + 1] - ky[idx]) * s
    return x, y


def _visibility(
    full_area: dict[int, np.ndarray], labels: np.ndarray, present: dict[int, np.ndarray]
) -> tuple[dict[int, list[int]], dict[int, list[int]]]:
    """Occluded / out-of-frame frame lists from per-frame in-frame areas of the full
    (unoccluded) masks, the visible labels and the frames where each object exists."""
    T = labels.shape[0]
    ids = np.array(sorted(full_area), dtype=np.int64)
    # visible area per (frame, object) in one pass
    lut = np.zeros(int(labels.max(initial=0)) + 1, np.int64)
    known = ids[ids < lut.size]
    lut[known] = np.searchsorted(ids, known) + 1
    flat = lut[labels.reshape(T, -1)] + (ids.size + 1) * np.arange(T)[:, None]
    vis = np.bincount(flat.ravel(), minlength=T * (ids.size + 1)).reshape(T, ids.size + 1)
    occluded: dict[int, list[int]] = {}
    out: dict[int, list[int]] = {}
    for k, obj_id in enumerate(ids.tolist()):
        area = np.asarray(full_area[obj_id])
        vis_area = vis[:, k + 1]
        exists = np.asarray(present[obj_id], bool)
        out[obj_id] = [int(t) for t in np.flatnonzero(exists & (area == 0))]
        occ = exists & (area > 0) & (vis_area < OCCLUDED_VISIBLE_FRACTION * area)
        occluded[obj_id] = [int(t) for t in np.flatnonzero(occ)]
    return occluded, out


# ---------------------------------------------------------------------------------------------
# cells


def _random_walk(
    rng: np.random.Generator,
    n_frames: int,
    start: np.ndarray,
    speed: float,
    lo: np.ndarray,
    hi: np.ndarray,
) -> np.ndarray:
    """Smooth (momentum) random walk reflected into ``[lo, hi]``; returns ``(T, 2)`` (x, y)."""
    acc = rng.standard_normal((n_frames, 2)) * speed * 0.5
    vel = np.zeros((n_frames, 2))
    v = rng.standard_normal(2) * speed * 0.5
    for t in range(n_frames):
        v = 0.85 * v + acc[t]
        vel[t] = v
    pos = start + np.cumsum(vel, axis=0) - vel[0]
    span = hi - lo
    rel = np.mod(pos - lo, 2 * span)  # reflect at the bounds
    rel = np.where(rel > span, 2 * span - rel, rel)
    return lo + rel


def make_cells(
    n_frames: int = SAMPLE_FRAMES, size: tuple[int, int] = (256, 256), n_cells: int = 6, seed: int = 0
) -> SampleVideo:
    """Fluorescence-like uint16 time-lapse of ``n_cells`` nuclei (``n_cells >= 3``).

    Cell 1 and 2 cross paths around the middle of the video; cell 3 ("mitotic cell") elongates,
    brightens and divides at ``n_frames // 2`` into two daughters (ids ``n_cells + 1`` and
    ``n_cells + 2``, category "nucleus", ``lineage`` maps them to 3). All cells stay in view.
    """
    if n_cells < 3:
        raise ValueError("make_cells needs n_cells >= 3 (two crossing cells and one dividing cell)")
    if n_frames < 2:
        raise ValueError("make_cells needs n_frames >= 2")
    rng = np.random.default_rng(seed)
    H, W = int(size[0]), int(size[1])
    T = int(n_frames)
    scale = min(H, W)
    r0 = max(3.0, 0.055 * scale)  # typical nucleus semi-axis in pixels
    tn = np.arange(T) / max(T - 1, 1)
    t_div = T // 2
    daughters = (n_cells + 1, n_cells + 2)

    # --- per-object geometry: centre (T,2), semi-axes (T,), angle (T,), brightness (T,), alive (T,)
    objs: dict[int, dict[str, np.ndarray]] = {}
    speed = 0.006 * scale * 60 / max(T, 1)  # similar total displacement for any T
    margin = r0 * 1.8
    lo = np.array([margin, margin])
    hi = np.array([W - margin, H - margin])

    def _shape_track(a: float, b: float) -> dict[str, np.ndarray]:
        wob = 1 + 0.06 * np.sin(2 * np.pi * (tn * rng.uniform(0.5, 1.5) + rng.uniform()))
        ang = rng.uniform(0, np.pi) + np.cumsum(rng.normal(0, 0.03, T))
        return {
            "a": a * wob,
            "b": b / wob,
            "ang": ang,
            "bright": np.full(T, rng.uniform(700, 1300)),
            "alive": np.ones(T, bool),
        }

    # crossing pair: straight lines through a common point, reaching it a few frames apart
    cross = np.array([W * rng.uniform(0.42, 0.58), H * rng.uniform(0.42, 0.58)])
    delta = max(1.0, 0.05 * T)
    for obj_id, (d_ang, dt) in zip(
        (1, 2),
        ((np.deg2rad(rng.uniform(20, 40)), -delta), (np.deg2rad(rng.uniform(120, 150)), delta)),
        strict=True,
    ):
        direction = np.array([np.cos(d_ang), np.sin(d_ang)])
        length = 0.55 * scale
        s = (tn - (t_div + dt) / max(T - 1, 1)) * length  # signed distance from the crossing point
        jitter = np.cumsum(rng.normal(0, 0.004 * scale, (T, 2)), axis=0)
        jitter -= jitter[min(t_div, T - 1)]
        centre = cross + s[:, None] * direction + 0.3 * jitter
        centre = np.clip(centre, lo, hi)
        g = _shape_track(r0 * rng.uniform(1.0, 1.25), r0 * rng.uniform(0.75, 0.9))
        g["c"] = centre
        objs[obj_id] = g

    # other cells: positions away from the crossing lines and from each other
    placed = [objs[1]["c"][0], objs[1]["c"][-1], objs[2]["c"][0], objs[2]["c"][-1], cross]
    for obj_id in range(3, n_cells + 1):
        best, best_d = None, -1.0
        for _ in range(60):
            p = rng.uniform(lo, hi)
            d = min(float(np.hypot(*(p - q))) for q in placed)
            d_line = min(float(np.min(np.hypot(*(objs[k]["c"] - p).T))) for k in (1, 2))
            score = min(d, d_line)
            if score > best_d:
                best, best_d = p, score
            if score > 4 * r0:
                break
        placed.append(best)
        sp = speed * (0.35 if obj_id == 3 else 1.0)
        g = _shape_track(r0 * rng.uniform(0.9, 1.2), r0 * rng.uniform(0.7, 0.9))
        g["c"] = _random_walk(rng, T, best, sp, lo, hi)
        objs[obj_id] = g

    # division of cell 3: elongation + brightening before t_div, two daughters afterwards
    m = objs[3]
    k_pre = max(1, int(round(0.15 * T)))
    ramp = np.clip((np.arange(T) - (t_div - k_pre)) / k_pre, 0, 1)
    m["a"] = m["a"] * (1 + 0.5 * ramp)
    m["b"] = m["b"] * (1 - 0.2 * ramp)
    m["ang"] = np.full(T, m["ang"][0])
    m["bright"] = m["bright"] * (1 + 0.9 * ramp)
    m["alive"] = np.arange(T) < t_div
    axis = np.array([np.cos(m["ang"][0]), np.sin(m["ang"][0])])
    c_div = m["c"][max(t_div - 1, 0)]
    a_last, b_last = m["a"][max(t_div - 1, 0)], m["b"][max(t_div - 1, 0)]
    for sign, d_id in zip((-1.0, 1.0), daughters, strict=True):
        age = np.clip(np.arange(T) - t_div, 0, None).astype(float)
        sep = a_last * 0.55 + 0.9 * r0 * (1 - np.exp(-age / max(2.0, 0.1 * T)))
        walk = _random_walk(rng, T, np.zeros(2), speed * 0.4, np.full(2, -1e9), np.full(2, 1e9))
        walk -= walk[min(t_div, T - 1)]
        centre = np.clip(
            c_div + sign * sep[:, None] * axis + np.where(age[:, None] > 0, walk, 0), lo, hi
        )
        grow = 0.75 + 0.2 * (1 - np.exp(-age / max(2.0, 0.2 * T)))
        objs[d_id] = {
            "c": centre,
            "a": np.full(T, a_last * 0.62) * grow / 0.75,
            "b": np.full(T, b_last * 0.95) * grow / 0.75,
            "ang": m["ang"] + rng.normal(0, 0.02, T).cumsum(),
            "bright": np.full(T, float(m["bright"][0])) * 1.1,
            "alive": np.arange(T) >= t_div,
        }

    # --- render: per object, a window around the cell in every frame (vectorised over time)
    amax = max(float(np.max(g["a"])) for g in objs.values())
    R = int(np.ceil(1.6 * amax)) + 2
    off = np.arange(-R, R + 1, dtype=np.float32)
    signal = np.zeros((T, H + 2 * R, W + 2 * R), np.float32)  # padded by R on each side
    best_d = np.full(signal.shape, np.inf, np.float32)
    labels_p = np.zeros(signal.shape, np.uint32)
    full_area: dict[int, np.ndarray] = {}
    for obj_id, g in objs.items():
        ts = np.flatnonzero(g["alive"])
        area = np.zeros(T, np.int64)
        if ts.size:
            c = g["c"][ts].astype(np.float32)
            ix0, iy0 = np.rint(c[:, 0]).astype(np.int64), np.rint(c[:, 1]).astype(np.int64)
            dx = (ix0 - c[:, 0])[:, None, None] + off[None, None, :]
            dy = (iy0 - c[:, 1])[:, None, None] + off[None, :, None]
            ca = np.cos(g["ang"][ts]).astype(np.float32)[:, None, None]
            sa = np.sin(g["ang"][ts]).astype(np.float32)[:, None, None]
            u = (dx * ca + dy * sa) / g["a"][ts].astype(np.float32)[:, None, None]
            v = (-dx * sa + dy * ca) / g["b"][ts].astype(np.float32)[:, None, None]
            d = np.sqrt(u * u + v * v)
            prof = 1.0 / (1.0 + np.exp(np.clip((d - 1.0) * 9.0, -30, 30)))
            texture = 1.0 + 0.12 * np.sin(5.0 * u + obj_id) * np.cos(4.0 * v - obj_id)
            bright = g["bright"][ts].astype(np.float32)[:, None, None]
            idx = (
                ts[:, None, None],
                iy0[:, None, None] + R + np.arange(-R, R + 1)[None, :, None],
                ix0[:, None, None] + R + np.arange(-R, R + 1)[None, None, :],
            )
            signal[idx] += bright * prof * texture
            inside = d <= 1.0
            rows, cols = idx[1] - R, idx[2] - R
            in_frame = (rows >= 0) & (rows < H) & (cols >= 0) & (cols < W)
            area[ts] = (inside & in_frame).reshape(ts.size, -1).sum(1)
            win = inside & (d < best_d[idx])
            labels_p[idx] = np.where(win, np.uint32(obj_id), labels_p[idx])
            best_d[idx] = np.where(win, d, best_d[idx])
        full_area[obj_id] = area
    signal = signal[:, R : R + H, R : R + W]
    labels = np.ascontiguousarray(labels_p[:, R : R + H, R : R + W])

    # optics + bleaching + noise
    signal = ndi.gaussian_filter(signal, sigma=(0, 1.2, 1.2))
    autofluo = 40.0 * (1 + 0.3 * _smooth_noise(rng, (H, W), max(2.0, scale / 16)))
    bleach = np.exp(-np.arange(T) / max(T / 0.7, 1.0)).astype(np.float32)[:, None, None]
    photons = (signal + autofluo[None]) * bleach
    photons = np.maximum(photons, 0)
    # shot noise (Gaussian approximation of Poisson) + camera offset + read noise
    noise = rng.standard_normal((2, *photons.shape), dtype=np.float32)
    counts = photons + np.sqrt(photons) * noise[0] + 100.0 + 6.0 * noise[1]
    frames = np.clip(np.rint(counts), 0, 65535).astype(np.uint16)

    ids = list(objs)
    categories = {i: "nucleus" for i in ids}
    categories[3] = "mitotic cell"
    present = {i: objs[i]["alive"] for i in ids}
    occluded, out = _visibility(full_area, labels, present)
    return SampleVideo(
        name="cells",
        frames=frames,
        labels=labels,
        categories=categories,
        lineage={daughters[0]: 3, daughters[1]: 3},
        occluded=occluded,
        out_of_frame=out,
        category_colors={"nucleus": "#2ca02c", "mitotic cell": "#d62728"},
    )


# ---------------------------------------------------------------------------------------------
# instruments


def _tissue(rng: np.random.Generator, H: int, W: int) -> np.ndarray:
    """Static reddish-pink tissue texture, float32 RGB in 0..255."""
    s = min(H, W)
    coarse = _smooth_noise(rng, (H, W), max(2.0, s / 10))
    fine = _smooth_noise(rng, (H, W), max(1.0, s / 64))
    # a few dark vessel-like ridges: level lines of a smooth field
    ridge_field = _smooth_noise(rng, (H, W), max(2.0, s / 14))
    vessels = np.exp(-((ridge_field / 0.08) ** 2)) * (0.6 + 0.4 * (coarse > 0))
    base = np.array([196.0, 92.0, 98.0], np.float32)
    shade = 1.0 + 0.10 * coarse + 0.05 * fine
    img = base[None, None, :] * shade[..., None]
    img = (
        img * (1 - 0.35 * vessels[..., None]) + np.array([-10.0, -25.0, -5.0]) * vessels[..., None]
    )
    # glossy highlights
    spec = np.clip(fine - 2.2, 0, None) * 60
    img += spec[..., None]
    return np.clip(img, 0, 255).astype(np.float32)


def _instrument_masks(
    xx: np.ndarray,
    yy: np.ndarray,
    tip: np.ndarray,
    ang: np.ndarray,
    width: float,
    jaw_len: float,
    jaw_open: np.ndarray,
    kind: str,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Shaft mask, tip mask and normalised cross-shaft coordinate, each ``(T, H, W)``.

    ``ang`` is the direction from the tip towards the shaft (i.e. towards the entry border).
    """
    cx = tip[:, 0].astype(np.float32)[:, None, None]
    cy = tip[:, 1].astype(np.float32)[:, None, None]
    ca = np.cos(ang).astype(np.float32)[:, None, None]
    sa = np.sin(ang).astype(np.float32)[:, None, None]
    dx, dy = xx[None] - cx, yy[None] - cy
    u = dx * ca + dy * sa  # along the shaft, >0 towards the shaft
    v = -dx * sa + dy * ca  # across
    half = width / 2
    shaft = (u >= 0) & (np.abs(v) <= half)
    # jaws in front of the tip (u < 0); w = distance in front of the tip
    w = -u
    in_front = (w >= 0) & (w <= jaw_len)
    op = jaw_open.astype(np.float32)[:, None, None]
    if kind == "grasper":
        # two jaws opening symmetrically, each tapering
        jw = half * 0.55 * (1 - 0.5 * w / jaw_len)
        off = half * 0.45 + w * op
        jaws = in_front & ((np.abs(v - off) <= jw) | (np.abs(v + off) <= jw))
    elif kind == "scissors":
        # two thin curved blades crossing at the pivot
        bw = half * 0.35
        curve = 0.25 * half * (w / jaw_len) ** 2
        jaws = in_front & (
            (np.abs(v - w * op - curve) <= bw) | (np.abs(v + w * op * 0.4 - curve) <= bw)
        )
    else:  # hook: a bent tip
        bw = half * 0.4
        bend = np.where(w > 0.6 * jaw_len, (w - 0.6 * jaw_len) * 1.4, 0)
        jaws = in_front & (np.abs(v - bend) <= bw)
    across = np.clip(v / half, -1.5, 1.5)
    return shaft, jaws, across


def make_instruments(
    n_frames: int = SAMPLE_FRAMES, size: tuple[int, int] = (256, 256), seed: int = 0
) -> SampleVideo:
    """RGB uint8 surgical-like video with three instruments on tissue.

    * 1 ``grasper`` - from the bottom-left; its shaft sweeps over instrument 2 mid-video.
    * 2 ``scissors`` - from the right; passes under the grasper and is mostly hidden by a
      drifting smoke patch for a few frames (listed in ``occluded``).
    * 3 ``hook`` - from the top; withdraws out of the view at roughly 35-70 % of the video (listed
      in ``out_of_frame``) and comes back with the same id.
    """
    if n_frames < 2:
        raise ValueError("make_instruments needs n_frames >= 2")
    rng = np.random.default_rng(seed)
    H, W = int(size[0]), int(size[1])
    T = int(n_frames)
    s = float(min(H, W))
    tn = np.arange(T) / max(T - 1, 1)
    j = lambda k=0.025: rng.uniform(-k, k)  # noqa: E731 - small seeded jitter

    specs = {
        1: dict(
            kind="grasper",
            keys=[
                (0.0, 0.16 + j(), 0.80 + j()),
                (0.35, 0.45 + j(), 0.52 + j()),
                (0.6, 0.74 + j(), 0.30 + j()),
                (0.8, 0.55 + j(), 0.45 + j()),
                (1.0, 0.40 + j(), 0.62 + j()),
            ],
            ang=np.deg2rad(135 + j(8)) + 0.12 * np.sin(2 * np.pi * tn * 1.3),
            width=0.075,
            jaw=0.09,
            color=(182, 186, 192),
            shaft_color=(60, 62, 66),
        ),
        2: dict(
            kind="scissors",
            keys=[
                (0.0, 0.86 + j(), 0.46 + j()),
                (0.3, 0.62 + j(), 0.56 + j()),
                (0.6, 0.58 + j(), 0.52 + j()),
                (1.0, 0.66 + j(), 0.58 + j()),
            ],
            ang=np.deg2rad(8 + j(6)) + 0.08 * np.sin(2 * np.pi * tn * 0.9 + 1.0),
            width=0.07,
            jaw=0.10,
            color=(200, 200, 205),
            shaft_color=(88, 90, 96),
        ),
        3: dict(
            kind="hook",
            keys=[
                (0.0, 0.30 + j(), 0.14 + j(0.01)),
                (0.2, 0.32 + j(), 0.36 + j()),
                (0.42, 0.30 + j(), -0.30),
                (0.62, 0.30 + j(), -0.30),
                (0.85, 0.34 + j(), 0.32 + j()),
                (1.0, 0.36 + j(), 0.28 + j()),
            ],
            ang=np.full(T, np.deg2rad(-80 + j(6))),
            width=0.06,
            jaw=0.08,
            color=(170, 172, 176),
            shaft_color=(120, 122, 126),
        ),
    }
    depth_order = (2, 1, 3)  # back to front: the grasper passes over the scissors

    yy, xx = np.mgrid[0:H, 0:W].astype(np.float32)
    tissue = _tissue(rng, H, W)
    frames = np.broadcast_to(tissue, (T, H, W, 3)).copy()
    labels = np.zeros((T, H, W), np.uint32)
    full: dict[int, np.ndarray] = {}
    geoms = {}
    for obj_id, sp in specs.items():
        x, y = _interp_path(tn, sp["keys"])
        tip = np.stack([x * W, y * H], axis=1)
        jaw_open = 0.25 + 0.2 * np.sin(2 * np.pi * (tn * 2.0 + rng.uniform()))
        shaft, jaws, across = _instrument_masks(
            xx, yy, tip, sp["ang"], sp["width"] * s, sp["jaw"] * s, jaw_open, sp["kind"]
        )
        geoms[obj_id] = (shaft, jaws, across)
        full[obj_id] = shaft | jaws

    # shadows first (under all instruments), then instruments back to front
    any_inst = np.zeros((T, H, W), np.float32)
    for m in full.values():
        any_inst[m] = 1.0
    off = max(1, int(round(0.012 * s)))
    shadow = np.roll(any_inst, (off, off), axis=(1, 2))
    shadow = ndi.gaussian_filter(shadow, sigma=(0, 0.02 * s, 0.02 * s))
    frames *= (1 - 0.45 * shadow)[..., None]
    for obj_id in depth_order:
        shaft, jaws, across = geoms[obj_id]
        sp = specs[obj_id]
        for mask, col in ((shaft, sp["shaft_color"]), (jaws, sp["color"])):
            a = across[mask]
            # cylindrical shading with a specular stripe
            shade = np.sqrt(np.clip(1 - a * a, 0, 1)) * 0.75 + 0.25
            spec_hl = np.exp(-(((a + 0.35) / 0.15) ** 2)) * 70
            frames[mask] = np.asarray(col, np.float32)[None, :] * shade[:, None] + spec_hl[:, None]
        labels[full[obj_id]] = obj_id

    # smoke: translucent whitish patch drifting over the scissors for part of the video
    sx, sy = _interp_path(
        tn,
        [
            (0.0, 1.25, 0.70),
            (0.3, 1.02 + j(), 0.60 + j()),
            (0.42, 0.78 + j(), 0.54 + j()),
            (0.55, 0.66 + j(), 0.50 + j()),
            (0.7, 0.50, 0.40),
            (1.0, 0.30, 0.20),
        ],
    )
    env = np.clip(np.sin(np.pi * np.clip((tn - 0.3) / 0.34, 0, 1)) * 1.6, 0, 1)
    sig = 0.20 * s
    d2 = ((xx[None] - (sx * W)[:, None, None]) ** 2 + (yy[None] - (sy * H)[:, None, None]) ** 2) / (
        2 * sig * sig
    )
    puff = 1 + 0.25 * _smooth_noise(rng, (H, W), max(2.0, s / 20))
    alpha = np.clip(0.95 * env[:, None, None] * np.exp(-d2) * puff[None], 0, 0.95).astype(
        np.float32
    )
    smoke_col = np.array([236.0, 230.0, 228.0], np.float32)
    ts = np.flatnonzero(env > 0)
    a = alpha[ts, ..., None]
    frames[ts] = frames[ts] * (1 - a) + smoke_col * a
    labels[alpha >= 0.5] = 0  # hidden by dense smoke

    # sensor noise + mild blur (anti-aliasing)
    frames = ndi.gaussian_filter(frames, sigma=(0, 0.6, 0.6, 0))
    frames += 3.0 * rng.standard_normal(frames.shape, dtype=np.float32)
    frames = np.clip(np.rint(frames), 0, 255).astype(np.uint8)

    categories = {i: specs[i]["kind"] for i in specs}
    present = {i: np.ones(T, bool) for i in specs}
    full_area = {i: m.reshape(T, -1).sum(1) for i, m in full.items()}
    occluded, out = _visibility(full_area, labels, present)
    return SampleVideo(
        name="instruments",
        frames=frames,
        labels=labels,
        categories=categories,
        occluded=occluded,
        out_of_frame=out,
        category_colors={"grasper": "#1f77b4", "scissors": "#ff7f0e", "hook": "#9467bd"},
    )
