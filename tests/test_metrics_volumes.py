"""Volume metrics (Dice, IoU, HD95 in physical units) against a reference implementation."""

from __future__ import annotations

import math

import numpy as np
import pytest

from napari_sam2_track.formats.volume_metrics import (
    PackedVolume,
    compare_volumes,
    dice,
    hd95,
    iou,
)

medpy_binary = pytest.importorskip("medpy.metric.binary")


def _ellipsoid(shape, center, radii):
    z, y, x = np.ogrid[: shape[0], : shape[1], : shape[2]]
    return (((z - center[0]) / radii[0]) ** 2 + ((y - center[1]) / radii[1]) ** 2
            + ((x - center[2]) / radii[2]) ** 2) <= 1.0


CASES = [
    # (center a, radii a, center b, radii b): shifted, shrunk, touching the volume's edge
    ((6, 20, 24), (3, 9, 11), (7, 22, 21), (4, 8, 12)),
    ((6, 20, 24), (4, 10, 10), (6, 20, 24), (2, 6, 7)),
    ((0, 0, 24), (5, 12, 9), (1, 3, 30), (6, 14, 8)),
    ((11, 39, 47), (3, 9, 11), (3, 5, 5), (2, 4, 4)),  # far apart, in opposite corners
]


@pytest.mark.parametrize("spacing", [(1.0, 1.0, 1.0), (4.0, 0.9, 0.7), (0.3, 2.5, 1.1)])
@pytest.mark.parametrize("case", CASES)
def test_hd95_agrees_with_medpy(case, spacing):
    shape = (12, 40, 48)
    a = _ellipsoid(shape, case[0], case[1])
    b = _ellipsoid(shape, case[2], case[3])
    b[2, 30:33, 2:5] = True  # a second, stray component
    expected = medpy_binary.hd95(b, a, voxelspacing=spacing, connectivity=1)
    assert hd95(a, b, spacing) == pytest.approx(expected, rel=1e-9, abs=1e-9)
    assert hd95(b, a, spacing) == pytest.approx(expected, rel=1e-9, abs=1e-9)  # symmetric
    assert dice(a, b) == pytest.approx(medpy_binary.dc(b, a), rel=1e-12)
    assert iou(a, b) == pytest.approx(medpy_binary.jc(b, a), rel=1e-12)


def test_hd95_is_in_physical_units():
    """A mask moved by 2 slices of 5 mm is 10 mm away, not 2: the spacing is used per axis."""
    a = np.zeros((20, 16, 16), bool)
    a[4:9, 4:12, 4:12] = True
    b = np.roll(a, 2, axis=0)
    assert hd95(a, b, (5.0, 1.0, 1.0)) == pytest.approx(10.0)
    assert hd95(a, b, (1.0, 1.0, 1.0)) == pytest.approx(2.0)
    moved = np.roll(a, 3, axis=2)
    assert hd95(a, moved, (5.0, 0.5, 0.5)) == pytest.approx(1.5)


def test_empty_masks():
    a = np.zeros((4, 8, 8), bool)
    b = a.copy()
    b[1, 2:4, 2:4] = True
    assert math.isnan(hd95(a, b, (1, 1, 1)))
    assert math.isnan(hd95(a, a, (1, 1, 1)))
    assert dice(a, a) == 1.0 and iou(a, a) == 1.0
    assert dice(a, b) == 0.0 and iou(a, b) == 0.0


def test_packed_volume_round_trip():
    rng = np.random.default_rng(0)
    vol = rng.random((5, 7, 9)) > 0.6
    vol[2] = False
    packed = PackedVolume(vol.shape)
    for z in range(5):
        packed.add(z, vol[z])
    assert 2 not in packed.planes
    np.testing.assert_array_equal(packed.array(), vol)


def test_compare_volumes_per_object_and_timepoint():
    shape = (8, 24, 24)
    spacing = (3.0, 1.0, 1.0)
    a1 = _ellipsoid(shape, (4, 12, 12), (2, 6, 6))
    b1 = _ellipsoid(shape, (4, 12, 13), (2, 6, 6))

    def packed(vol):
        p = PackedVolume(shape)
        for z in range(shape[0]):
            p.add(z, vol[z])
        return p

    timepoints = iter([(0, {1: packed(a1), 2: packed(a1)}, {1: packed(b1)}),
                       (1, {1: packed(a1)}, {1: packed(a1), 3: packed(b1)})])
    r = compare_volumes(timepoints, [1, 2], [1, 3], spacing, "mm")
    o1 = r["objects"][1]["per_timepoint"]
    assert o1["dice"][0] == pytest.approx(dice(a1, b1))
    assert o1["hd95"][0] == pytest.approx(medpy_binary.hd95(b1, a1, voxelspacing=spacing))
    assert o1["dice"][1] == 1.0 and o1["hd95"][1] == 0.0
    o2 = r["objects"][2]["per_timepoint"]
    assert o2["dice"] == [0.0, 1.0] and o2["hd95"] == [None, None]  # missing, then absent in both
    assert r["missing"] == [2] and r["extra"] == [3]
    assert r["overall"]["dice"] == pytest.approx(((dice(a1, b1) + 1) / 2 + 0.5) / 2)
    assert r["timepoints"] == 2 and r["units"] == "mm"
