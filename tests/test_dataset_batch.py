"""``batch DIR`` on a dataset: the items with prompts and not tracked yet, on a real two-process
dask cluster; each project gets the dataset's schema, is claimed, and its stage is recorded."""

from __future__ import annotations

import json

import pytest

from _distributed import assert_same_project, checkpoint, dask_client, model_spec, one_torch_thread  # noqa: F401
from conftest import make_blob_video, write_jpeg_folder
from napari_sam2_track.cli import main
from napari_sam2_track.dataset import Dataset, project_owner
from napari_sam2_track.pipeline import track
from napari_sam2_track.prompts import PromptSet
from napari_sam2_track.schema import Category, Schema
from napari_sam2_track.sources import open_source

PROMPTS = {
    "objects": [{"id": 1, "category": "cell"}],
    "prompts": [{"object": 1, "frame": 0, "points": [[30, 40]], "labels": [1]}],
}


@pytest.mark.slow
def test_batch_of_a_dataset_tracks_prompted_items_once(tmp_path, dask_client, checkpoint, test_model,
                                                       capsys):
    schema = Schema(categories=[Category(name="cell", color="#00ff00")])
    schema_file = tmp_path / "schema.yaml"
    schema.save(schema_file)
    prompts = tmp_path / "prompts.json"
    prompts.write_text(json.dumps(PROMPTS))
    clips = [write_jpeg_folder(make_blob_video(4, seed=i), tmp_path / f"clip{i}") for i in range(3)]
    assert main(["dataset", "init", str(tmp_path / "ds"), "--schema", str(schema_file)]) == 0
    ds = Dataset.open(tmp_path / "ds")
    ds.add_many([{"source": clips[0], "prompts": prompts}, {"source": clips[1], "prompts": prompts},
                 {"source": clips[2]}])
    argv = ["batch", str(ds.folder), "--model", str(checkpoint), "--image-size", "256",
            "--device", "cpu", "--scheduler", dask_client.scheduler.address, "--quiet", "--json"]
    capsys.readouterr()
    assert main(argv) == 0
    captured = capsys.readouterr()
    summary = json.loads(captured.out)
    assert [(r["name"], r["status"]) for r in summary["videos"]] == [("clip0", "completed"),
                                                                      ("clip1", "completed")]
    assert "clip2: no prompts yet" in captured.err
    for item in ds.items[:2]:
        assert project_owner(item.project)["item"] == item.id
        assert ds.project_schema_version(item) == 1
        assert ds.stage(item.id).stage == "tracked" and not ds.stage(item.id).derived
    with one_torch_thread():
        ref = tmp_path / "ref.zarr"
        for _ in track(open_source(clips[0]), PromptSet.load(prompts), ref, model=test_model,
                       schema=schema):
            pass
    assert_same_project(ds.items[0].project, ref)
    assert not (ds.items[2].project).exists()
    assert main(argv) == 0  # nothing left to track
    assert "has prompts and is not tracked yet" in capsys.readouterr().out
