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
from napari_sam2_track.project.lock import LOCK_NAME, read_holder
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
    holder = read_holder(out)  # the writer's lock names its dask worker and scheduler
    assert holder.worker == busy[0] and holder.scheduler == dask_client.scheduler.address
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
    (tmp_path / "bad.yaml").write_text("videos: [a.mp4\n")
    with pytest.raises(ManifestError, match="bad.yaml is not valid YAML .*; see docs/distributed.md"):
        load_manifest(tmp_path / "bad.yaml", tmp_path)
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


def interrupted_project(out, folder, prompts, test_model, frames: int = 2):
    """A project whose run stopped after ``frames`` frames, as a killed writer leaves it."""
    cancel = threading.Event()
    with one_torch_thread():
        for progress in track(open_source(folder), PromptSet.load(prompts), out, model=test_model,
                              cancel=cancel):
            if progress.computed >= frames:
                cancel.set()
    assert ProjectStore.open(out, "r").meta["runs"][-1]["status"] != "completed"


def lock_from_another_host(out, worker: str, scheduler: str) -> str:
    """The lock a dask task on another machine leaves when its worker is killed there."""
    text = json.dumps({"host": "gpu-node-7.invalid", "pid": 4242, "started": "2026-11-25T08:00:00",
                       "command": "dask worker", "process_start": 1.0, "worker": worker,
                       "scheduler": scheduler})
    (out / LOCK_NAME).write_text(text)
    return text


@pytest.mark.slow
def test_a_lock_left_by_a_worker_lost_on_another_host_is_handed_over_to_the_retry(
    tmp_path, videos, dask_client, model_spec, test_model
):
    import shutil

    folders, prompts = videos
    split = tmp_path / "split.json"  # both objects prompted on frames 0 and 3: two segments
    split.write_text(json.dumps({"objects": [{"id": 1}, {"id": 2}], "prompts": [
        {"object": o, "frame": t, "box": [20 * o, 20, 20 * o + 30, 60]}
        for o in (1, 2) for t in (0, 3)]}))
    out = tmp_path / "out"
    out.mkdir()
    interrupted_project(out / "lost.zarr", folders[2], prompts, test_model)
    for name in ("alive.zarr", "other_cluster.zarr"):
        shutil.copytree(out / "lost.zarr", out / name)
    interrupted_project(out / "lost_segmented.zarr", folders[2], split, test_model)
    scheduler = dask_client.scheduler.address
    gone = "tcp://10.255.0.7:39001"  # a worker this scheduler does not list (any more)
    alive = sorted(dask_client.scheduler_info()["workers"])[0]
    locks = {
        "lost.zarr": lock_from_another_host(out / "lost.zarr", gone, scheduler),
        "alive.zarr": lock_from_another_host(out / "alive.zarr", alive, scheduler),
        "other_cluster.zarr": lock_from_another_host(out / "other_cluster.zarr", gone,
                                                     "tcp://10.255.0.1:8786"),
        "lost_segmented.zarr": lock_from_another_host(out / "lost_segmented.zarr", gone, scheduler),
    }
    # a new project whose creation a lost worker had begun, and one begun under another cluster
    staging = {}
    for tag, owner in (("0badc0de", scheduler), ("5ca1ab1e", "tcp://10.255.0.1:8786")):
        staging[tag] = out / f".fresh.zarr.incomplete-4242-{tag}"
        staging[tag].mkdir()
        lock_from_another_host(staging[tag], gone, owner)
    rows = [{"video": str(folders[2]), "prompts": str(prompts), "out": name}
            for name in ("lost.zarr", "alive.zarr", "other_cluster.zarr", "fresh.zarr")]
    rows.append({"video": str(folders[2]), "prompts": str(split), "out": "lost_segmented.zarr",
                 "segments": 2})
    summary = run_batch(rows, out, model=model_spec, client=dask_client, progress=False)
    lost, live, other, fresh, segmented = summary.rows
    # the lost worker's staging folder is deleted; the other cluster's is not this run's to judge
    assert fresh["status"] == "completed", summary.table()
    assert not staging["0badc0de"].exists() and staging["5ca1ab1e"].exists()
    # a lost worker's lock is taken over: the project is resumed as after a local crash
    for row in (lost, segmented):
        assert row["status"] == "resumed", summary.table()
        assert "dask worker tcp://10.255.0.7:39001" in row["took_over_lock"]
        assert read_holder(row["out"]) is None
        assert ProjectStore.open(row["out"], "r").meta["runs"][-1]["status"] == "completed"
    assert segmented["segments"] == 2
    assert_same_project(lost["out"], reference(tmp_path, folders[2], prompts, test_model)[0])
    # a live worker's lock, or one from another cluster, is respected with the one-line error
    for row, name in ((live, "alive.zarr"), (other, "other_cluster.zarr")):
        assert row["status"] == "failed" and "took_over_lock" not in row
        assert row["error"].startswith(f"{out / name} is being written by PID 4242 on "
                                       "gpu-node-7.invalid (dask worker tcp://")
        assert "\n" not in row["error"]
        assert (out / name / LOCK_NAME).read_text() == locks[name]
    assert alive in live["error"]


def test_lost_worker_needs_the_same_scheduler_and_an_unlisted_worker():
    from napari_sam2_track.distributed.handover import lost_worker
    from napari_sam2_track.project.lock import LockHolder

    holder = LockHolder("node7", 42, "?", "dask worker", None, "tcp://a:1", "tcp://s:8786")
    assert lost_worker(holder, {"tcp://s:8786"}, {"tcp://b:1"})
    assert not lost_worker(holder, {"tcp://s:8786"}, {"tcp://a:1", "tcp://b:1"})
    assert not lost_worker(holder, {"tcp://other:8786"}, {"tcp://b:1"})
    plain = LockHolder("node7", 42, "?", "track")  # not a dask writer: never handed over
    assert not lost_worker(plain, {"tcp://s:8786"}, set())
