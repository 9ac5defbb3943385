"""Planes across y or x: resampling to square pixels, prompts in, masks back to (z, y, x)."""

from __future__ import annotations

import numpy as np
import pytest

from napari_sam2_track.errors import PromptError, SourceError
from napari_sam2_track.samples3d import make_cells3dt, make_nuclei3d
from napari_sam2_track.sources import ArraySource, ArrayVolumeSource
from napari_sam2_track.volumes.reslice import (AxisView, Resampler, VolumeAssembler, check_axis,
                                               map_prompts)


@pytest.fixture(scope="module")
def nuclei():
    return make_nuclei3d()


def _volume(data: np.ndarray, spacing=(4.0, 1.0, 1.0), unit="mm", window=None):
    dz, dy, dx = spacing
    sizes = {"z": (dz, unit), "y": (dy, unit), "x": (dx, unit)}
    return ArrayVolumeSource(data, "TZYX" if data.ndim == 4 else "ZYX", sizes=sizes,
                             window=window)


def test_mri_like_planes_become_square_pixels():
    # 36 slices of 4 mm, 256 x 200 pixels of 1 mm: a y-plane of 200 x 36 -> 200 x 144
    data = np.zeros((36, 256, 200), np.uint8)
    view = AxisView(_volume(data), "y")
    assert view.shape == (1, 256, 144, 200)
    assert view.pixel_size == 1.0
    assert view.geometry.axes == "tyzx" and view.geometry.spacing[1:] == (1.0, 1.0, 1.0)
    assert view.geometry.units[1:] == ("mm", "mm", "mm")
    view = AxisView(_volume(data), "x")
    assert view.shape == (1, 200, 144, 256) and view.geometry.axes == "txzy"
    # z finer than the pixels: the columns are stretched, never the slices shrunk
    view = AxisView(_volume(data, spacing=(0.5, 1.5, 1.0)), "x")
    assert view.shape == (1, 200, 36, 768) and view.pixel_size == 0.5
    # spacings in different units are compared in one unit
    vol = ArrayVolumeSource(data, "ZYX", sizes={"z": (0.004, "mm"), "y": (1, "µm"),
                                                "x": (1, "µm")})
    assert AxisView(vol, "y").shape == (1, 256, 144, 200)


def test_planes_are_linear_interpolations_of_the_slices():
    Z, H, W = 6, 5, 7
    ramp = np.broadcast_to(np.arange(Z, dtype=np.float32)[:, None, None] * 10, (Z, H, W))
    view = AxisView(_volume(np.ascontiguousarray(ramp), window=(0, 255)), "y")
    plane = view.read_slice(0, 2)
    assert plane.shape == (24, 7) and plane.dtype == np.float32
    expected = np.clip((np.arange(24) + 0.5) / 4 - 0.5, 0, Z - 1) * 10
    np.testing.assert_allclose(plane[:, 3], expected, atol=1e-5)
    rgb = view.read_slice_rgb(0, 2)
    assert rgb.shape == (24, 7, 3) and rgb.dtype == np.uint8
    assert np.array_equal(rgb[..., 0], view.window.apply(plane))
    # the x-view reads columns: plane k is data[:, :, k]
    rng = np.random.default_rng(0)
    data = rng.integers(0, 255, (2, Z, H, W), dtype=np.uint8)
    view = AxisView(_volume(data), "x")
    assert np.array_equal(view.native_plane(1, 4), data[1, :, :, 4])
    centres = (np.arange(24) + 0.5) / 4 - 0.5
    native = data[1, :, :, 4].astype(np.float64)
    expected = np.stack([np.interp(centres, np.arange(Z), native[:, c]) for c in range(H)], 1)
    np.testing.assert_allclose(view.read_slice(1, 4), expected, atol=1e-4)
    assert np.array_equal(view.read_slice_rgb(1, 4)[..., 0], np.rint(expected).astype(np.uint8))
    # NaN and Inf become the window's low end before resampling
    bad = np.ones((Z, H, W), np.float32)
    bad[2, 1, 3] = np.nan
    bad[3, 1, 3] = np.inf
    view = AxisView(_volume(bad, window=(-1, 1)), "y")
    assert np.isfinite(view.read_slice(0, 1)).all()
    assert view.read_slice(0, 1)[10, 3] == -1.0


@pytest.mark.parametrize("axis", ["y", "x"])
def test_ground_truth_round_trip_is_exact_for_integer_stretch(nuclei, axis):
    view = AxisView(nuclei.source(), axis)
    truth = nuclei.labels[0]
    planes = view.volume_to_view(truth)
    assert planes.shape == view.shape[1:]
    assert np.array_equal(view.labels_to_volume(planes), truth)
    for obj in nuclei.object_ids:
        assert np.array_equal(view.masks_to_volume(planes == obj), truth == obj)


@pytest.mark.parametrize("dz", [0.55, 1.3, 1.7, 2.9])
def test_round_trip_is_exact_for_fractional_stretch(dz):
    """Stretch 1.1, 2.6, 3.4 and 5.8: each slice is covered for at least half its extent by
    the view rows that nearest-neighbour sampling takes from it, so it comes back whole."""
    sample = make_nuclei3d(shape=(24, 96, 96), spacing=(dz, 0.5, 0.5), seed=1)
    truth = sample.labels[0]
    for axis in ("y", "x"):
        view = AxisView(sample.source(), axis)
        assert view.shape[2] == round(24 * dz / 0.5)
        assert np.array_equal(view.labels_to_volume(view.volume_to_view(truth)), truth)


def test_masks_back_are_area_correct():
    r = Resampler(3, 12)  # stretch 4
    assert np.allclose(r.area.sum(1), 1.0) and r.area.shape == (3, 12)
    view = AxisView(_volume(np.zeros((3, 2, 5), np.uint8)), "y")
    assert view.shape == (1, 2, 12, 5)
    mask = np.zeros((12, 5), bool)
    mask[0:2, 0] = True  # half of slice 0: in
    mask[4:5, 1] = True  # a quarter of slice 1: out
    mask[8:11, 2] = True  # three quarters of slice 2: in
    native = view.plane_to_volume(mask)
    assert native.shape == (3, 5)
    assert native[:, 0].tolist() == [True, False, False]
    assert not native[:, 1].any()
    assert native[:, 2].tolist() == [False, False, True]
    # a label image: each voxel takes the label covering most of it
    labels = np.zeros((2, 12, 5), np.uint32)
    labels[0, 0:3, 0], labels[0, 3, 0] = 7, 9  # 3/4 of slice 0 is 7
    labels[0, 4:6, 0], labels[0, 6:8, 0] = 9, 7  # a tie between 9 and 7: the lower id
    volume = view.labels_to_volume(labels)
    assert volume[:, 0, 0].tolist() == [7, 7, 0]


@pytest.mark.parametrize("axis", ["y", "x"])
def test_prompts_map_to_the_right_pixel(nuclei, axis):
    view = AxisView(nuclei.source(), axis)
    truth = nuclei.labels[0]
    planes = view.volume_to_view(truth)
    mapped = map_prompts(view, nuclei.prompts["prompts"])
    assert len(mapped) == len(nuclei.prompts["prompts"])
    for p, q in zip(nuclei.prompts["prompts"], mapped):
        (x, y), = p["points"]
        (vx, vy), = q["points"]
        assert q["object"] == p["object"] and q["frame"] == p["frame"]
        assert q["z"] == (int(y) if axis == "y" else int(x))
        assert planes[q["z"], int(vy), int(vx)] == p["object"]
        # and the view pixel is the same voxel: its native row is the prompt's slice
        assert view.rows.nearest[int(vy)] == p["z"]
        assert view.cols.nearest[int(vx)] == (int(x) if axis == "y" else int(y))
        assert vy == (p["z"] + 0.5) * 4


def test_prompt_mapping_splits_merges_and_refuses(nuclei):
    view = AxisView(nuclei.source(), "y")
    prompts = [
        {"object": 1, "frame": 0, "z": 3, "points": [[10, 20], [12, 40]], "labels": [1, 0]},
        {"object": 1, "frame": 0, "z": 5, "points": [[30, 20.7]], "labels": [1]},
    ]
    mapped = map_prompts(view, prompts)
    assert [(m["z"], m["labels"]) for m in mapped] == [(20, [1, 1]), (40, [0])]
    assert mapped[0]["points"] == [[10.0, 14.0], [30.0, 22.0]]
    with pytest.raises(PromptError, match="box drawn on a z-slice .* --axis y"):
        map_prompts(view, [{"object": 1, "frame": 0, "z": 3, "box": [1, 2, 30, 40]}])
    with pytest.raises(PromptError, match="needs \"z\""):
        map_prompts(view, [{"object": 1, "frame": 0, "points": [[1, 2]], "labels": [1]}])
    with pytest.raises(PromptError, match="outside the volume"):
        map_prompts(view, [{"object": 1, "frame": 0, "z": 40, "points": [[1, 2]], "labels": [1]}])
    with pytest.raises(PromptError, match="1 timepoint"):
        map_prompts(view, [{"object": 1, "frame": 2, "z": 4, "points": [[1, 2]], "labels": [1]}])


def test_one_timepoint_at_a_time_and_assembled_back():
    sample = make_cells3dt(n_timepoints=4, shape=(8, 40, 48))
    source = sample.source()
    reads = []
    original = source.read_slice
    source.read_slice = lambda t, z: reads.append((t, z)) or original(t, z)
    view = AxisView(source, "x")
    assembler = VolumeAssembler(view)
    done = []
    for t in range(4):
        planes = view.volume_to_view(sample.labels[t])
        for k in range(view.shape[1]):
            view.read_slice_rgb(t, k)
            assert view._cached[0] == t and view._cached[1].shape == (8, 40, 48)
            ids = [int(i) for i in np.unique(planes[k]) if i]
            done += list(assembler.add(t, k, {i: planes[k] == i for i in ids}))
            assert len(assembler._volumes) <= 6
    done += list(assembler.finish())
    assert len(reads) == 4 * 8  # each slice read once
    assert [t for t, _ in done] == [0, 1, 2, 3]
    for t, volumes in done:
        assert set(volumes) == set(np.unique(sample.labels[t])) - {0}
        for obj, volume in volumes.items():
            assert np.array_equal(volume, sample.labels[t] == obj)


def test_bad_axis_gets_one_line():
    volume = _volume(np.zeros((4, 1, 6), np.uint8))
    with pytest.raises(SourceError, match=r"'w' does not exist; .* along z, y, x") as e:
        check_axis("w", volume)
    assert "\n" not in str(e.value)
    video = ArraySource(np.zeros((5, 8, 8), np.uint8), axes="TYX")
    with pytest.raises(SourceError, match="--axis y needs a volume .* 2D recording"):
        check_axis("y", video)
    with pytest.raises(SourceError, match="single plane along y .* use --axis z or x"):
        AxisView(volume, "y")
    assert AxisView(volume, "x").shape == (1, 6, 16, 1)
    assert check_axis("Y".lower(), _volume(np.zeros((4, 2, 6), np.uint8))) == "y"
