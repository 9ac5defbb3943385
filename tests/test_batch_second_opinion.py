"""``batch --second-opinion M2`` on a real two-process dask cluster: one task per video after its
tracking, the same second opinion as on one machine, skipped when present."""

from __future__ import annotations

import json

import numpy as np
import pytest

from _distributed import checkpoint, dask_client, model_spec, one_torch_thread  # noqa: F401
from conftest import make_blob_video, nudge_test_model, write_jpeg_folder
from napari_sam2_track.distributed import ModelSpec, run_batch
from napari_sam2_track.project import ProjectStore
from napari_sam2_track.review.second_opinion import open_opinion, opinion_names, run_second_opinion
from napari_sam2_track.sources import open_source

PROMPTS = {
    "objects": [{"id": 1}, {"id": 2}],
    "prompts": [{"object": 1, "frame": 0, "points": [[30, 40]], "labels": [1]},
                {"object": 2, "frame": 1, "box": [78, 20, 102, 44]}],
}


@pytest.fixture(scope="module")
def other_spec(tmp_path_factory):
    import torch

    from napari_sam2_track.engine.models import load_random_model

    model = load_random_model(image_size=256, seed=1, device="cpu")
    nudge_test_model(model.predictor, mask_shift=0.05)
    path = tmp_path_factory.mktemp("ckpt2") / "other_tiny.pt"
    torch.save({"model": model.predictor.state_dict()}, path)
    return ModelSpec(model=str(path), image_size=256, device="cpu")


def test_batch_second_opinions_run_as_dask_tasks_and_equal_a_local_one(
        tmp_path, dask_client, model_spec, other_spec):
    (tmp_path / "prompts.json").write_text(json.dumps(PROMPTS))
    folders = [write_jpeg_folder(make_blob_video(n, seed=i), tmp_path / f"clip{i}")
               for i, n in enumerate((5, 4))]
    rows = [{"video": str(v), "prompts": str(tmp_path / "prompts.json")} for v in folders]
    summary = run_batch(rows, tmp_path / "out", model=model_spec, client=dask_client, progress=False,
                        second_opinion=other_spec)
    assert summary.ok, summary.table()
    seconds = [r["second_opinion"] for r in summary.rows]
    assert [s["status"] for s in seconds] == ["completed"] * 2
    assert all(s["name"] == "other_tiny-256" and isinstance(s["disagreeing"], int) for s in seconds)
    assert "second opinion 'other_tiny-256' completed" in summary.table()

    # the same second opinion as one made here, from the tracked project
    row, folder = summary.rows[0], folders[0]
    local = tmp_path / "local.zarr"
    import shutil

    shutil.copytree(row["out"], local, ignore=shutil.ignore_patterns("second_opinion"))
    with one_torch_thread(), ProjectStore.open(local) as store, open_source(folder) as source:
        list(run_second_opinion(store, source, other_spec.load(), name="here"))
    remote = open_opinion(ProjectStore.open(row["out"], "r"), "other_tiny-256")
    here = open_opinion(ProjectStore.open(local, "r"), "here")
    for obj in (1, 2):
        np.testing.assert_array_equal(remote.masks(obj, 0, 5), here.masks(obj, 0, 5))
        np.testing.assert_array_equal(remote.group[f"objects/{obj}/compare"][:],
                                      here.group[f"objects/{obj}/compare"][:])

    again = run_batch(rows, tmp_path / "out", model=model_spec, client=dask_client, progress=False,
                      second_opinion=other_spec)
    assert [r["status"] for r in again.rows] == ["skipped"] * 2
    assert [r["second_opinion"]["status"] for r in again.rows] == ["skipped"] * 2
    assert opinion_names(ProjectStore.open(row["out"], "r")) == ["other_tiny-256"]


def test_a_second_model_that_does_not_load_fails_its_rows_in_one_line(
        tmp_path, dask_client, model_spec):
    (tmp_path / "prompts.json").write_text(json.dumps(PROMPTS))
    folder = write_jpeg_folder(make_blob_video(3), tmp_path / "clip")
    summary = run_batch([{"video": str(folder), "prompts": str(tmp_path / "prompts.json")}],
                        tmp_path / "out", model=model_spec, client=dask_client, progress=False,
                        second_opinion=ModelSpec(model=str(tmp_path / "missing.pt"), device="cpu"),
                        retries=0)
    row = summary.rows[0]
    assert row["status"] == "completed" and not summary.ok
    assert row["second_opinion"]["status"] == "failed"
    assert "missing.pt not found" in row["second_opinion"]["error"]
    assert not (tmp_path / "out" / "clip.zarr" / "second_opinion").exists()
