"""Tests for the procedural sample videos."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from napari_sam2_track.samples import (
    SampleVideo,
    first_frame_prompts,
    make_cells,
    make_instruments,
)
from napari_sam2_track.schema import Schema

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def cells() -> SampleVideo:
    return make_cells()


@pytest.fixture(scope="module")
def instruments() -> SampleVideo:
    return make_instruments()


def _centroid(mask: np.ndarray) -> np.ndarray:
    return np.argwhere(mask).mean(0)


def test_cells_shapes_and_dtypes(cells):
    assert cells.name == "cells"
    assert cells.frames.shape == (60, 256, 256)
    assert cells.frames.dtype == np.uint16
    assert cells.labels.shape == (60, 256, 256)
    assert cells.labels.dtype == np.uint32
    assert set(np.unique(cells.labels)) - {0} == set(cells.categories)
    assert set(cells.categories.values()) == {"nucleus", "mitotic cell"}
    # signal above background, photobleaching lowers the foreground over time
    fg0 = cells.frames[0][cells.labels[0] > 0].mean()
    fg_last = cells.frames[-1][cells.labels[-1] > 0].mean()
    assert fg0 > 2 * cells.frames[0][cells.labels[0] == 0].mean()
    assert fg_last < fg0


def test_instruments_shapes_and_dtypes(instruments):
    assert instruments.name == "instruments"
    assert instruments.frames.shape == (60, 256, 256, 3)
    assert instruments.frames.dtype == np.uint8
    assert instruments.labels.shape == (60, 256, 256)
    assert instruments.labels.dtype == np.uint32
    assert 2 <= len(instruments.categories) <= 3
    assert set(instruments.categories.values()) <= {"grasper", "scissors", "hook"}
    # reddish tissue background
    bg = instruments.frames[0][instruments.labels[0] == 0].mean(0)
    assert bg[0] > bg[1] and bg[0] > bg[2]


@pytest.mark.parametrize("make", [make_cells, make_instruments])
def test_deterministic(make):
    a = make(n_frames=6, size=(48, 64), seed=3)
    b = make(n_frames=6, size=(48, 64), seed=3)
    c = make(n_frames=6, size=(48, 64), seed=4)
    np.testing.assert_array_equal(a.frames, b.frames)
    np.testing.assert_array_equal(a.labels, b.labels)
    assert a.occluded == b.occluded and a.out_of_frame == b.out_of_frame
    assert not np.array_equal(a.frames, c.frames)
    assert a.frames.shape[:3] == (6, 48, 64)


@pytest.mark.parametrize("name", ["cells", "instruments"])
def test_labels_present_and_moving(name, request):
    sample: SampleVideo = request.getfixturevalue(name)
    assert all((lab > 0).any() for lab in sample.labels)
    moved = 0
    for obj_id in sample.object_ids:
        frames = [t for t in range(sample.n_frames) if (sample.labels[t] == obj_id).any()]
        assert frames, f"object {obj_id} never visible"
        a, b = (
            _centroid(sample.labels[frames[0]] == obj_id),
            _centroid(sample.labels[frames[-1]] == obj_id),
        )
        moved += np.hypot(*(a - b)) > 3
    assert moved >= len(sample.object_ids) // 2


def test_cells_division(cells):
    assert cells.lineage
    parents = set(cells.lineage.values())
    assert len(parents) == 1
    parent = parents.pop()
    assert cells.categories[parent] == "mitotic cell"
    assert len(cells.lineage) == 2
    vis = lambda i: [t for t in range(cells.n_frames) if (cells.labels[t] == i).any()]  # noqa: E731
    parent_last = max(vis(parent))
    for child in cells.lineage:
        assert min(vis(child)) > parent_last
        assert cells.categories[child] == "nucleus"
    assert not any(cells.out_of_frame.values())


def test_cells_crossing(cells):
    # the two crossing cells touch at some point (share a boundary)
    from scipy import ndimage as ndi

    touching = False
    for t in range(cells.n_frames):
        m1 = cells.labels[t] == 1
        if (ndi.binary_dilation(m1) & (cells.labels[t] == 2)).any():
            touching = True
            break
    assert touching


def test_instrument_out_of_frame_and_back(instruments):
    ids = [i for i, frames in instruments.out_of_frame.items() if frames]
    assert ids
    for obj_id in ids:
        out = instruments.out_of_frame[obj_id]
        for t in out:
            assert not (instruments.labels[t] == obj_id).any()
        visible_after = [
            t
            for t in range(max(out) + 1, instruments.n_frames)
            if (instruments.labels[t] == obj_id).any()
        ]
        visible_before = [t for t in range(min(out)) if (instruments.labels[t] == obj_id).any()]
        assert visible_before and visible_after


def test_instrument_occlusion(instruments):
    occ = {i: f for i, f in instruments.occluded.items() if f}
    assert occ
    for obj_id, frames in occ.items():
        assert not set(frames) & set(instruments.out_of_frame.get(obj_id, []))
        # a mostly hidden object has a much smaller visible area than usual
        areas = np.array([(lab == obj_id).sum() for lab in instruments.labels])
        assert np.median(areas[frames]) < 0.5 * np.median(areas)
    # the smoke patch brightens the image over the occluded object
    obj_id, frames = next(iter(occ.items()))
    t = frames[len(frames) // 2]
    assert instruments.frames[t].mean() > instruments.frames[0].mean()


@pytest.mark.parametrize("name", ["cells", "instruments"])
def test_first_frame_prompts_inside_masks(name, request):
    sample: SampleVideo = request.getfixturevalue(name)
    prompts = first_frame_prompts(sample)
    assert set(prompts) == set(np.unique(sample.labels[0])) - {0}
    for obj_id, (x, y) in prompts.items():
        assert sample.labels[0][int(round(y)), int(round(x))] == obj_id


@pytest.mark.parametrize("name", ["cells", "instruments"])
def test_sample_schema(name, request):
    sample: SampleVideo = request.getfixturevalue(name)
    schema = sample.schema()
    assert isinstance(schema, Schema)
    assert set(sample.categories.values()) <= set(schema.category_names())
    assert Schema.from_text(schema.to_yaml(), "yaml") == schema


def test_generate_script(tmp_path):
    av = pytest.importorskip("av")
    tifffile = pytest.importorskip("tifffile")
    out = tmp_path / "samples"
    proc = subprocess.run(
        [
            sys.executable,
            str(REPO / "sample_data" / "generate.py"),
            str(out),
            "--frames",
            "7",
            "--size",
            "32",
            "48",
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    cells = tifffile.imread(out / "cells.tif")
    assert cells.shape == (7, 32, 48) and cells.dtype == np.uint16
    labels = tifffile.imread(out / "cells_labels.tif")
    assert labels.shape == (7, 32, 48) and labels.dtype == np.uint32
    inst_labels = tifffile.imread(out / "instruments_labels.tif")
    assert inst_labels.shape == (7, 32, 48)
    with av.open(str(out / "instruments.mp4")) as container:
        frames = [f.to_ndarray(format="rgb24") for f in container.decode(video=0)]
    assert len(frames) == 7
    assert frames[0].shape == (32, 48, 3)
    expected = make_instruments(n_frames=7, size=(32, 48)).frames
    assert np.abs(np.stack(frames).astype(int) - expected).mean() < 12
    meta = json.loads((out / "instruments_meta.json").read_text())
    assert meta["n_frames"] == 7
    assert Schema.load(out / "cells_schema.yaml").category_names() == ["nucleus", "mitotic cell"]
