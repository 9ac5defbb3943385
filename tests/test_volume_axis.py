"""``track --axis y|x``: propagation across the planes of a volume, written back into the
project's (t, z, y, x) labels; bad axes refused in one line with nothing written.

Real SAM 2 architecture with random weights at 256 px (``test_model``), real zarr projects,
the procedural samples of :mod:`napari_sam2_track.samples3d`.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from napari_sam2_track.cli import main
from napari_sam2_track.engine.tracker import StreamingTracker
from napari_sam2_track.pipeline import track
from napari_sam2_track.project import COL, ProjectStore
from napari_sam2_track.prompts import PromptSet
from napari_sam2_track.samples3d import make_cells3dt, make_nuclei3d
from napari_sam2_track.volumes.frames import SliceFrames
from napari_sam2_track.volumes.reslice import AxisView, map_prompts


@pytest.fixture(scope="module")
def small_nuclei():
    return make_nuclei3d(shape=(8, 32, 40), n_nuclei=2, seed=2)


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory, test_model):
    path = tmp_path_factory.mktemp("ckpt") / "test_tiny.pt"
    torch.save({"model": test_model.predictor.state_dict()}, path)
    return path


def _direct(model, view: AxisView, prompts: list[dict]) -> dict[int, np.ndarray]:
    """The view tracked by the engine itself, masks mapped back: what the project must hold."""
    tracker = StreamingTracker(model, SliceFrames(view, 0))
    for p in map_prompts(view, prompts):
        tracker.add_points(p["object"], p["z"], points=p["points"], labels=p["labels"])
    planes: dict[int, np.ndarray] = {}
    for result in tracker.propagate("both"):
        for obj, mask in result.masks.items():
            planes.setdefault(obj, np.zeros(view.shape[1:], bool))[result.frame] = mask
    tracker.close()
    return {obj: view.masks_to_volume(p) for obj, p in planes.items()}


@pytest.mark.parametrize("axis", ["y", pytest.param("x", marks=pytest.mark.slow)])
def test_track_along_an_axis_writes_the_masks_mapped_back(tmp_path, test_model, small_nuclei,
                                                          axis):
    sample = small_nuclei
    volume = sample.source()
    out = tmp_path / f"{axis}.zarr"
    progress = list(track(volume, PromptSet.model_validate(sample.prompts), out,
                          model=test_model, schema=sample.schema(), axis=axis))
    assert [p.frame for p in progress] == list(range(8))  # one result per slice
    store = ProjectStore.open(out, mode="r")
    assert store.volume_shape == (1, 8, 32, 40)
    run = store.meta["runs"][-1]
    assert run["axis"] == axis and run["status"] == "completed"
    expected = _direct(test_model, AxisView(volume, axis), sample.prompts["prompts"])
    assert sorted(expected) == sample.object_ids
    for obj, mask in expected.items():
        assert mask.any() and not mask.all()
        np.testing.assert_array_equal(store.object_volume(obj, 0), mask)
        areas = store.table(obj)[:, COL["area"]]  # tables: area per slice of the masks written
        np.testing.assert_array_equal(np.nan_to_num(areas), mask.sum((1, 2)))
    labels = store.label_volume(0)
    assert set(np.unique(labels)) <= {0, *expected}
    assert ((labels > 0) == np.logical_or.reduce(list(expected.values()))).all()


@pytest.mark.slow
def test_3d_time_along_x_chains_timepoints(tmp_path, test_model):
    sample = make_cells3dt(n_timepoints=3, shape=(6, 24, 28), n_cells=3, seed=1)
    prompts = PromptSet.model_validate(sample.prompts)
    out = tmp_path / "t.zarr"
    progress = list(track(sample.source(), prompts, out, model=test_model,
                          schema=sample.schema(), axis="x"))
    assert sorted({p.frame for p in progress}) == list(range(3 * 6))
    store = ProjectStore.open(out, mode="r")
    assert store.meta["runs"][-1]["axis"] == "x"
    for t in range(3):  # every object present at a timepoint is carried there
        labels = store.label_volume(t)
        present = {int(i) for i in np.unique(sample.labels[t]) if i}
        assert present <= {int(i) for i in np.unique(labels) if i}, t
    # resume: nothing left to compute, nothing changed
    before = [store.label_volume(t) for t in range(3)]
    assert list(track(sample.source(), None, out, model=test_model, axis="x", resume=True)) == []
    again = ProjectStore.open(out, mode="r")
    for t in range(3):
        np.testing.assert_array_equal(again.label_volume(t), before[t])


def _refused(args, capsys, match: str, out) -> None:
    code = main([str(a) for a in args])
    err = capsys.readouterr().err
    lines = err.strip().splitlines()
    assert code == 2 and len(lines) == 1 and lines[0].startswith("error: "), err
    assert match in lines[0], lines[0]
    assert not out.exists()


@pytest.mark.slow
def test_cli_track_along_y_and_bad_axes(tmp_path, small_nuclei, checkpoint, blob_jpegs, capsys):
    files = small_nuclei.save(tmp_path / "sample")
    out = tmp_path / "n.zarr"
    common = ["--model", checkpoint, "--image-size", 256, "--device", "cpu", "--quiet"]
    args = ["track", files["image"], "--prompts", files["prompts"], "--schema", files["schema"],
            "--out", out, *common]
    _refused([*args, "--axis", "w"], capsys, "--axis 'w' does not exist", out)
    _refused([*args, "--axis", "y", "--z-range", "1-4"], capsys, "--z-range applies to --axis z",
             out)
    box = json.loads(files["prompts"].read_text())
    box["prompts"][0] = {"object": 1, "frame": 0, "z": 3, "box": [2, 2, 20, 20]}
    boxes = tmp_path / "box.json"
    boxes.write_text(json.dumps(box))
    _refused(["track", files["image"], "--prompts", boxes, "--schema", files["schema"],
              "--out", out, *common, "--axis", "x"], capsys, "a box drawn on a z-slice", out)
    video = {"objects": [{"id": 1}], "prompts": [{"object": 1, "frame": 0, "points": [[9, 9]],
                                                  "labels": [1]}]}
    (tmp_path / "v.json").write_text(json.dumps(video))
    _refused(["track", blob_jpegs, "--prompts", tmp_path / "v.json", "--out", out, *common,
              "--axis", "y"], capsys, "only apply to volumes", out)
    import tifffile

    flat = tmp_path / "flat.ome.tif"  # one row along y
    tifffile.imwrite(flat, np.zeros((5, 1, 30), np.uint16), ome=True, metadata={"axes": "ZYX"})
    one = {"objects": [{"id": 1}], "prompts": [{"object": 1, "frame": 0, "z": 2,
                                                "points": [[9, 0]], "labels": [1]}]}
    (tmp_path / "one.json").write_text(json.dumps(one))
    _refused(["track", flat, "--prompts", tmp_path / "one.json", "--out", out, *common,
              "--axis", "y"], capsys, "single plane along y", out)
    assert main([str(a) for a in [*args, "--axis", "y"]]) == 0, capsys.readouterr().err
    store = ProjectStore.open(out, mode="r")
    assert store.meta["runs"][-1]["axis"] == "y"
    assert store.volume_shape == (1, 8, 32, 40)
    assert store.geometry.spacing[1:] == (2.0, 0.5, 0.5)
