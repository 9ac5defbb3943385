"""Batch tracking on a real two-process dask cluster: equal to ``track``, crash-safe, per-row errors."""

from __future__ import annotations

import json
import os
import signal
import threading
import time

import numpy as np
import pytest

from _distributed import (  # noqa: F401
    assert_same_project, checkpoint, dask_client, model_spec, one_torch_thread,
)
from conftest import make_blob_video, write_jpeg_folder
from napari_sam2_track.cli import main
from napari_sam2_track.distributed import load_manifest, run_batch
from napari_sam2_track.distributed.manifest import ManifestError
from napari_sam2_track.distributed.models import loads_in_this_process
from napari_sam2_track.pipeline import track
from napari_sam2_track.project import STATE_NOT_RUN, ProjectStore
from napari_sam2_track.prompts import PromptSet
from napari_sam2_track.sources import open_source

PROMPTS = {
    "objects": [{"id": 1}, {"id": 2}],
    "prompts": [
        {"object": 1, "frame": 0, "points": [[30, 40]], "labels": [1]},
        {"object": 2, "frame": 2, "box": [78, 20, 102, 44]},
    ],
}


@pytest.fixture(scope="module")
def videos(tmp_path_factory):
    root = tmp_path_factory.mktemp("batch_videos")
    (root / "prompts.json").write_text(json.dumps(PROMPTS))
    return [write_jpeg_folder(make_blob_video(n, seed=i), root / f"clip{i}")
            for i, n in enumerate((5, 4, 6))], root / "prompts.json"


def reference(tmp_path, video, prompts, test_model, **options):
    """The project ``track`` makes, and the number of frames it computed."""
    out = tmp_path / f"ref_{video.name}.zarr"
    with one_torch_thread():
        runs = list(track(open_source(video), PromptSet.load(prompts), out, model=test_model,
                          **options))
    return out, runs[-1].computed


@pytest.mark.slow
def test_batch_projects_equal_track_and_a_second_run_skips(
    tmp_path, videos, dask_client, model_spec, test_model
):
    folders, prompts = videos
    rows = [{"video": str(v), "prompts": str(prompts)} for v in folders]
    rows[2]["direction"] = "forward"
    summary = run_batch(rows, tmp_path / "out", model=model_spec, client=dask_client,
                        progress=False)
    assert [r["status"] for r in summary.rows] == ["completed"] * 3, summary.table()
    for row, folder, direction in zip(summary.rows, folders, ("both", "both", "forward")):
        assert row["out"] == str(tmp_path / "out" / f"{folder.name}.zarr")
        ref, computed = reference(tmp_path, folder, prompts, test_model, direction=direction)
        assert row["frames"] == computed
        assert_same_project(row["out"], ref)
    # the model was loaded once per worker process, not once per video
    assert sorted(dask_client.run(loads_in_this_process).values()) == [1, 1]
    again = run_batch(rows, tmp_path / "out", model=model_spec, client=dask_client, progress=False)
    assert [r["status"] for r in again.rows] == ["skipped"] * 3
    assert json.loads(again.to_json())["counts"] == {"skipped": 3}


def _frames_done(path) -> int:
    try:
        store = ProjectStore.open(path, "r")
        return int((store.states(1) != STATE_NOT_RUN).sum())
    except Exception:  # noqa: BLE001 - not created yet
        return 0


@pytest.mark.slow
def test_a_killed_worker_does_not_stop_the_batch_and_the_project_is_resumed(
    tmp_path, dask_client, model_spec, test_model
):
    folder = write_jpeg_folder(make_blob_video(12, seed=5), tmp_path / "long")
    prompts = tmp_path / "prompts.json"
    prompts.write_text(json.dumps(PROMPTS))
    out = tmp_path / "out" / "long.zarr"
    result = {}
    runner = threading.Thread(target=lambda: result.update(summary=run_batch(
        [{"video": str(folder), "prompts": str(prompts)}], tmp_path / "out",
        model=model_spec, client=dask_client, progress=False)))
    runner.start()
    deadline = time.monotonic() + 120
    while _frames_done(out) < 3 and time.monotonic() < deadline:
        time.sleep(0.05)
    busy = [w for w, keys in dask_client.processing().items() if keys]
    assert _frames_done(out) < 12 and busy, "the task ended before it could be interrupted"
    pid = dask_client.run(os.getpid, workers=busy)[busy[0]]
    os.kill(pid, signal.SIGKILL)
    runner.join(timeout=300)
    summary = result["summary"]
    assert summary.rows[0]["status"] == "resumed", summary.table()
    runs = [r["status"] for r in ProjectStore.open(out, "r").meta["runs"]]
    assert runs[-1] == "completed" and runs[0] in ("running", "interrupted") and len(runs) == 2
    assert_same_project(out, reference(tmp_path, folder, prompts, test_model)[0])
    dask_client.wait_for_workers(2, timeout=120)  # the nanny restarts the killed worker


@pytest.mark.slow
def test_a_bad_row_fails_alone_with_its_one_line_error(
    tmp_path, videos, dask_client, checkpoint, capsys
):
    folders, prompts = videos
    bad_prompts = tmp_path / "bad.json"
    bad_prompts.write_text(json.dumps({"objects": [{"id": 1}], "prompts": [
        {"object": 1, "frame": 40, "points": [[3, 4]], "labels": [1]}]}))
    bad_schema = tmp_path / "bad_schema.yaml"
    bad_schema.write_text("categories: []\n")
    manifest = tmp_path / "manifest.csv"
    manifest.write_text(
        "video,prompts,out,direction,window_low,window_high,schema\n"
        f"{folders[1]},{prompts},good.zarr,forward,,,\n"
        f"{tmp_path / 'missing.mp4'},{prompts},,,,,\n"
        f"{folders[0]},{bad_prompts},bad_prompts.zarr,,,,\n"
        f"{folders[0]},{prompts},bad_window.zarr,,10,5,\n"
        f"{folders[2]},{prompts},good.zarr,,,,\n"
        f"{folders[2]},{prompts},bad_schema.zarr,,,,{bad_schema.name}\n"
    )
    summary_file = tmp_path / "summary.json"
    code = main(["batch", str(manifest), "--out-dir", str(tmp_path / "out"), "--model",
                 str(checkpoint), "--image-size", "256", "--device", "cpu", "--scheduler",
                 dask_client.scheduler_info()["address"], "--json", "--quiet", "--summary",
                 str(summary_file)])
    assert code == 1  # some videos failed
    printed = json.loads(capsys.readouterr().out)
    assert printed == json.loads(summary_file.read_text())
    rows = printed["videos"]
    assert [r["status"] for r in rows] == ["completed"] + ["failed"] * 5
    errors = [r["error"] for r in rows]
    assert errors[0] is None
    assert "missing.mp4: file not found" in errors[1]
    assert "frame 40" in errors[2] and "5 frames" in errors[2]
    assert "window" in errors[3] and "high > low" in errors[3]
    assert "same project as row 1" in errors[4]
    assert "bad_schema.yaml" in errors[5] and "categor" in errors[5]
    assert all("\n" not in e for e in errors[1:])
    for refused in ("bad_prompts.zarr", "bad_schema.zarr"):  # refused before writing
        assert not (tmp_path / "out" / refused).exists()
    store = ProjectStore.open(tmp_path / "out" / "good.zarr", "r")
    assert store.meta["runs"][-1]["status"] == "completed"


def test_manifests_read_csv_and_yaml_and_refuse_what_is_not_one(tmp_path):
    (tmp_path / "m.yaml").write_text(
        "defaults: {prompts: p.json, direction: forward}\n"
        "videos:\n  - a.mp4\n  - {video: b.tif, channel: 1, window: [100, 4000], out: /x/b.zarr,"
        " schema: s.yaml}\n"
    )
    rows = load_manifest(tmp_path / "m.yaml", tmp_path / "out")
    assert [r.error for r in rows] == [None, None]
    assert rows[0].item.prompts == str(tmp_path / "p.json")
    assert rows[0].out == tmp_path / "out" / "a.zarr"
    assert rows[1].item.window == (100.0, 4000.0) and rows[1].item.direction == "forward"
    assert str(rows[1].out) == "/x/b.zarr"
    assert rows[1].item.schema_ == str(tmp_path / "s.yaml") and rows[0].item.schema_ is None
    (tmp_path / "m.csv").write_text("video,promts\na.mp4,p.json\n")
    with pytest.raises(ManifestError, match="unknown columns \\['promts'\\]"):
        load_manifest(tmp_path / "m.csv", tmp_path)
    (tmp_path / "e.csv").write_text("video\n")
    with pytest.raises(ManifestError, match="lists no videos"):
        load_manifest(tmp_path / "e.csv", tmp_path)
    (tmp_path / "r.csv").write_text("video,start,end\na.mp4,9,3\n")
    assert "end 3 is before start 9" in load_manifest(tmp_path / "r.csv", tmp_path)[0].error
    assert np.all([r.error is None for r in load_manifest(tmp_path / "m.yaml", tmp_path)])


@pytest.mark.slow
def test_the_local_example_script_runs_a_manifest(tmp_path, videos, checkpoint):
    import subprocess
    import sys

    from conftest import REPO

    folders, prompts = videos
    manifest = tmp_path / "videos.yaml"
    manifest.write_text(f"defaults: {{prompts: {prompts}}}\nvideos:\n  - {folders[1]}\n")
    done = subprocess.run(
        [sys.executable, str(REPO / "examples" / "batch_local.py"), str(manifest),
         str(tmp_path / "out"), "--model", str(checkpoint), "--image-size", "256", "--device", "cpu"],
        capture_output=True, text=True, timeout=600,
        env={**os.environ, "OMP_NUM_THREADS": "1"},
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert "1 videos in" in done.stdout and "completed" in done.stdout
    summary = json.loads((tmp_path / "out" / "summary.json").read_text())
    assert summary["counts"] == {"completed": 1}
    assert ProjectStore.open(tmp_path / "out" / f"{folders[1].name}.zarr", "r").meta["runs"][-1][
        "status"] == "completed"
