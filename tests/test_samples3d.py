"""Procedural volume samples: ground truth consistent with the image, seeds, geometry, prompts."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage as ndi

from napari_sam2_track.samples3d import (SAMPLE_SPACING, make_cells3dt, make_nuclei3d,
                                         make_volume_sample, middle_slice_prompts, sample_layers)


@pytest.fixture(scope="module")
def nuclei():
    return make_nuclei3d()


@pytest.fixture(scope="module")
def cells():
    return make_cells3dt()


def _check_truth_matches_image(sample) -> None:
    """Every object is brighter than the background around it, its core brighter than its rim,
    and it is one connected piece at every timepoint."""
    for t in range(sample.shape[0]):
        data, labels = sample.data[t].astype(np.float64), sample.labels[t]
        background = data[ndi.binary_dilation(labels > 0, iterations=3) == 0]
        for obj in np.unique(labels[labels > 0]):
            mask = labels == obj
            inside = data[mask]
            assert inside.mean() > background.mean() + 4 * background.std(), (t, obj)
            core = ndi.binary_erosion(mask, iterations=1)
            rim = ndi.binary_dilation(mask, iterations=1) & ~mask
            if core.any():
                assert data[core].mean() > data[rim].mean(), (t, obj)
            assert ndi.label(mask)[1] == 1, (t, obj)


def test_nuclei3d_truth_and_geometry(nuclei):
    assert nuclei.shape == (1, 32, 128, 128)
    assert nuclei.data.dtype == np.uint16 and nuclei.labels.dtype == np.uint32
    ids = set(np.unique(nuclei.labels)) - {0}
    assert ids == set(nuclei.categories) and len(ids) == 6
    _check_truth_matches_image(nuclei)
    # sizes differ and some nuclei span many slices (elongated along z), others few
    spans = [np.flatnonzero((nuclei.labels[0] == i).any((1, 2))).size for i in sorted(ids)]
    volumes = [int((nuclei.labels == i).sum()) for i in sorted(ids)]
    assert max(spans) >= 3 * min(spans) and max(volumes) >= 3 * min(volumes)
    source = nuclei.source()
    g = source.geometry
    assert source.shape == nuclei.shape
    assert g.axes == "tzyx" and g.spacing == (1.0, *SAMPLE_SPACING)
    assert g.units == (None, "µm", "µm", "µm")
    assert g.scale == (1.0, 2.0, 0.5, 0.5) and g.spacing[1] == 4 * g.spacing[3]
    assert np.array_equal(source.read_slice(0, 7), nuclei.data[0, 7])


def test_cells3dt_moves_and_divides(cells):
    T = cells.shape[0]
    assert cells.shape == (8, 16, 96, 96)
    _check_truth_matches_image(cells)
    t_div = T // 2
    assert cells.lineage == {5: 3, 6: 3}
    assert cells.categories[3] == "mitotic cell"
    present = {i: [(cells.labels[t] == i).any() for t in range(T)] for i in cells.categories}
    assert present[3] == [t < t_div for t in range(T)]
    for d in (5, 6):
        assert present[d] == [t >= t_div for t in range(T)]
    for i in (1, 2, 4):
        assert all(present[i])
    # the daughters appear where the mother was and move apart
    mother = np.argwhere(cells.labels[t_div - 1] == 3).mean(0)
    first = [np.argwhere(cells.labels[t_div] == d).mean(0) for d in (5, 6)]
    last = [np.argwhere(cells.labels[-1] == d).mean(0) for d in (5, 6)]
    spacing = np.array(SAMPLE_SPACING)
    assert np.linalg.norm((first[0] + first[1]) / 2 - mother) < 4
    assert (np.linalg.norm((last[0] - last[1]) * spacing)
            > np.linalg.norm((first[0] - first[1]) * spacing))
    # the others move
    for i in (1, 2, 4):
        c0, c1 = (np.argwhere(cells.labels[t] == i).mean(0) for t in (0, T - 1))
        assert np.linalg.norm((c1 - c0) * spacing) > 1.0
    assert cells.source().geometry.shape == (8, 16, 96, 96)


@pytest.mark.parametrize("make", [make_nuclei3d, make_cells3dt])
def test_deterministic_with_a_seed(make):
    small = dict(shape=(6, 40, 48))
    a, b, c = make(seed=3, **small), make(seed=3, **small), make(seed=4, **small)
    assert np.array_equal(a.data, b.data) and np.array_equal(a.labels, b.labels)
    assert a.prompts == b.prompts
    assert not np.array_equal(a.labels, c.labels)


@pytest.mark.parametrize("name", ["nuclei3d", "cells3dt"])
def test_example_prompts_lie_on_their_objects(name):
    sample = make_volume_sample(name)
    prompts = sample.prompts
    assert [o["id"] for o in prompts["objects"]] == sample.object_ids
    assert {p["object"] for p in prompts["prompts"]} == set(sample.object_ids)
    for p in prompts["prompts"]:
        mask = sample.labels[p["frame"], p["z"]] == p["object"]
        zs = np.flatnonzero((sample.labels[p["frame"]] == p["object"]).any((1, 2)))
        assert p["z"] == zs[len(zs) // 2]  # the middle slice of the object
        (x, y), = p["points"]
        assert p["labels"] == [1] and mask[int(y), int(x)]
    boxes = middle_slice_prompts(sample.labels, sample.categories, prompt_kind="box")
    for p in boxes["prompts"]:
        x0, y0, x1, y1 = (int(v) for v in p["box"])
        mask = sample.labels[p["frame"], p["z"]] == p["object"]
        assert mask[y0:y1, x0:x1].sum() == mask.sum()
        assert mask[y0, x0:x1].any() and mask[y1 - 1, x0:x1].any()


def test_sample_layers_carry_the_scale(nuclei, cells):
    from napari.layers import Layer

    (img, ikw, ik), (lab, lkw, lk) = sample_layers(nuclei)
    assert (ik, lk) == ("image", "labels")
    assert img.shape == lab.shape == (32, 128, 128)
    image, truth = Layer.create(img, ikw, ik), Layer.create(lab, lkw, lk)
    assert tuple(image.scale) == tuple(truth.scale) == SAMPLE_SPACING
    assert set(np.unique(lab)) - {0} <= set(lkw["colormap"])
    (img, ikw, _), (lab, lkw, _) = sample_layers(cells)
    assert img.shape == lab.shape == (8, 16, 96, 96)
    assert tuple(ikw["scale"]) == (1.0, *SAMPLE_SPACING)


def test_annotate_accepts_the_volume_samples():
    from napari_sam2_track.cli.main import build_parser

    for name in ("nuclei3d", "cells3dt"):
        assert build_parser().parse_args(["annotate", "--sample", name]).sample == name
    with pytest.raises(ValueError, match="unknown volume sample"):
        make_volume_sample("nuclei2d")
