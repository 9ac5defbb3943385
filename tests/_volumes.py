"""Procedural volumes with ground truth for the volume tests."""

from __future__ import annotations

import numpy as np


def sphere_volume(t=1, z=12, h=64, w=64, radius=9.0, seed=0):
    """uint8 (t, z, h, w) with a bright sphere (centre moving along x over t) and its truth."""
    rng = np.random.default_rng(seed)
    zz, yy, xx = np.mgrid[:z, :h, :w]
    data = rng.integers(10, 50, (t, z, h, w), dtype=np.uint8)
    truth = np.zeros((t, z, h, w), bool)
    for i in range(t):
        cz, cy, cx = z / 2, h / 2, w / 2 - 6 + 3 * i
        truth[i] = (zz - cz) ** 2 * 4 + (yy - cy) ** 2 + (xx - cx) ** 2 < radius**2
        data[i][truth[i]] = 220
    return data, truth
