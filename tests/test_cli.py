"""The CLI end to end, and every bad input it must refuse with one line and no output."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from napari_sam2_track.cli import main
from napari_sam2_track.project import COL, STATE_NOT_RUN, ProjectStore

from conftest import make_blob_video, write_jpeg_folder


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory, test_model) -> Path:
    """The nudged random-init test model saved as a real SAM 2 ``.pt`` checkpoint."""
    path = tmp_path_factory.mktemp("ckpt") / "test_tiny.pt"
    torch.save({"model": test_model.predictor.state_dict()}, path)
    return path


@pytest.fixture(scope="module")
def video(tmp_path_factory) -> Path:
    """An 8-frame H.264 mp4 (decoded through PyAV)."""
    import av

    path = tmp_path_factory.mktemp("video") / "blobs.mp4"
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=10)
        stream.width, stream.height, stream.pix_fmt = 128, 96, "yuv420p"
        stream.options = {"crf": "10"}
        for frame in make_blob_video(8):
            container.mux(stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")))
        container.mux(stream.encode())
    return path


def prompts_file(tmp_path: Path, data: dict | str) -> Path:
    path = tmp_path / "prompts.json"
    path.write_text(data if isinstance(data, str) else json.dumps(data))
    return path


GOOD = {
    "objects": [{"id": 1, "name": "red"}, {"id": 2, "name": "green"}],
    "prompts": [
        {"object": 1, "frame": 0, "points": [[30, 40]], "labels": [1]},
        {"object": 2, "frame": 2, "box": [78, 20, 102, 44]},
    ],
}


def run_cli(args, capsys) -> tuple[int, str]:
    code = main([str(a) for a in args])
    err = capsys.readouterr().err
    return code, err


def test_track_then_info(tmp_path, video, checkpoint, capsys):
    out = tmp_path / "p.zarr"
    code, err = run_cli(
        ["track", video, "--prompts", prompts_file(tmp_path, GOOD), "--out", out,
         "--model", checkpoint, "--image-size", 256, "--device", "cpu", "--quiet"],
        capsys,
    )
    assert code == 0, err
    store = ProjectStore.open(out, "r")
    assert store.shape == (8, 96, 128)
    labels = store.labels[:]
    for obj in (1, 2):
        table = store.table(obj)
        assert not np.isnan(table[:, COL["state"]]).any()
        assert (labels == obj).any(axis=(1, 2)).sum() >= 1
        assert table[:, COL["area"]].max() > 0
    assert store.meta["model"]["checkpoint"] == str(checkpoint)
    assert store.meta["source"]["kind"] == "video"
    assert store.meta["runs"][-1]["status"] == "completed"
    assert main(["info", str(out)]) == 0
    text = capsys.readouterr().out
    assert "objects  2" in text and "green" in text and "completed" in text


def assert_refused(args, capsys, match: str, out: Path | None = None):
    code, err = run_cli(args, capsys)
    assert code == 2
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), err
    assert "Traceback" not in err
    assert match in lines[0], lines[0]
    if out is not None:
        assert not out.exists()


@pytest.mark.parametrize(
    ("case", "data", "match"),
    [
        ("outside-frame", {"objects": [{"id": 1}], "prompts": [{"object": 1, "frame": 0, "points": [[500, 40]], "labels": [1]}]}, "outside the 128x96 frame"),
        ("outside-range", {"objects": [{"id": 1}], "prompts": [{"object": 1, "frame": 50, "points": [[5, 5]], "labels": [1]}]}, "video has 8 frames"),
        ("box-outside", {"objects": [{"id": 1}], "prompts": [{"object": 1, "frame": 0, "box": [-5, 0, 20, 20]}]}, "outside the 128x96 frame"),
        ("empty", {"objects": [{"id": 1}], "prompts": [{"object": 1, "frame": 0}]}, "empty prompt"),
        ("unknown-object", {"objects": [{"id": 1}], "prompts": [{"object": 4, "frame": 0, "points": [[5, 5]], "labels": [1]}]}, "unknown object id 4"),
        ("label-count", {"objects": [{"id": 1}], "prompts": [{"object": 1, "frame": 0, "points": [[5, 5]], "labels": []}]}, "1 points but 0 labels"),
        ("malformed", '{"objects": [', "not valid JSON"),
        ("extra-key", {"objects": [{"id": 1}], "prompt": []}, "prompt"),
    ],
)
def test_bad_prompts_are_refused(tmp_path, video, checkpoint, capsys, case, data, match):
    out = tmp_path / "p.zarr"
    assert_refused(
        ["track", video, "--prompts", prompts_file(tmp_path, data), "--out", out,
         "--model", checkpoint, "--device", "cpu"],
        capsys, match, out,
    )


def test_bad_videos_are_refused(tmp_path, video, checkpoint, capsys):
    prompts = prompts_file(tmp_path, GOOD)
    out = tmp_path / "p.zarr"
    common = ["--prompts", prompts, "--out", out, "--model", checkpoint, "--device", "cpu"]
    assert_refused(["track", tmp_path / "missing.mp4", *common], capsys, "not found", out)
    corrupt = tmp_path / "corrupt.mp4"
    corrupt.write_bytes(os.urandom(20000))
    assert_refused(["track", corrupt, *common], capsys, "corrupt.mp4", out)
    truncated = tmp_path / "truncated.mp4"
    truncated.write_bytes(video.read_bytes()[: len(video.read_bytes()) // 3])
    assert_refused(["track", truncated, *common], capsys, "truncated.mp4", out)


def test_unsupported_dimensions_and_dtype(tmp_path, checkpoint, capsys):
    import tifffile

    prompts = prompts_file(tmp_path, GOOD)
    out = tmp_path / "p.zarr"
    five_d = tmp_path / "five_d.tif"
    tifffile.imwrite(five_d, np.zeros((2, 3, 4, 16, 16), np.uint16), metadata={"axes": "TZCYX"})
    assert_refused(["track", five_d, "--prompts", prompts, "--out", out, "--model", checkpoint], capsys, "five_d.tif", out)
    flags = tmp_path / "flags.npy"
    np.save(flags, np.zeros((4, 16, 16), bool))
    folder = tmp_path / "bool.zarr"
    import zarr

    zarr.create_array(str(folder), data=np.zeros((4, 16, 16), bool))
    assert_refused(["track", folder, "--prompts", prompts, "--out", out, "--model", checkpoint], capsys, "bool", out)


def test_checkpoint_mismatch_names_both(tmp_path, video, checkpoint, capsys):
    out = tmp_path / "p.zarr"
    assert_refused(
        ["track", video, "--prompts", prompts_file(tmp_path, GOOD), "--out", out,
         "--model", checkpoint, "--config", "configs/sam2.1/sam2.1_hiera_s.yaml"],
        capsys, f"{checkpoint} does not fit config configs/sam2.1/sam2.1_hiera_s.yaml", out,
    )
    not_a_checkpoint = tmp_path / "junk.pt"
    not_a_checkpoint.write_bytes(b"not a checkpoint")
    assert_refused(
        ["track", video, "--prompts", prompts_file(tmp_path, GOOD), "--out", out, "--model", not_a_checkpoint],
        capsys, "cannot read checkpoint", out,
    )


def test_offline_download_says_what_to_do(tmp_path, video, capsys, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    out = tmp_path / "p.zarr"
    code, err = run_cli(
        ["track", video, "--prompts", prompts_file(tmp_path, GOOD), "--out", out, "--model", "tiny"],
        capsys,
    )
    assert code == 2 and not out.exists()
    assert "cannot download facebook/sam2.1-hiera-tiny" in err
    assert "--model /path/to/file.pt" in err and "Hugging Face cache" in err


def test_existing_output_is_left_alone(tmp_path, video, checkpoint, capsys):
    out = tmp_path / "p.zarr"
    ProjectStore.create(out, num_frames=8, height=96, width=128)
    before = {p: p.read_bytes() for p in out.rglob("*") if p.is_file()}
    code, err = run_cli(
        ["track", video, "--prompts", prompts_file(tmp_path, GOOD), "--out", out, "--model", checkpoint],
        capsys,
    )
    assert code == 2 and "--resume" in err and "--overwrite" in err
    assert {p: p.read_bytes() for p in out.rglob("*") if p.is_file()} == before


@pytest.mark.slow
def test_kill_minus_nine_then_resume(tmp_path, checkpoint):
    """A killed run keeps every frame it reported durable, and --resume completes it with the
    same masks as an uninterrupted run."""
    folder = write_jpeg_folder(make_blob_video(20), tmp_path / "jpg")
    prompts = prompts_file(tmp_path, {"objects": [{"id": 1}], "prompts": [{"object": 1, "frame": 0, "points": [[30, 40]], "labels": [1]}]})
    cmd = [sys.executable, "-m", "napari_sam2_track.cli", "track", str(folder), "--prompts", str(prompts),
           "--model", str(checkpoint), "--image-size", "256", "--device", "cpu", "--quiet",
           "--direction", "forward"]
    killed = tmp_path / "killed.zarr"
    proc = subprocess.Popen([*cmd, "--out", str(killed)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 240
    done = 0
    while time.time() < deadline and proc.poll() is None:
        time.sleep(0.3)
        try:
            done = int((ProjectStore.open(killed, "r").states(1) != STATE_NOT_RUN).sum())
        except Exception:
            continue
        if done >= 6:
            break
    assert proc.poll() is None, "run finished before it could be killed"
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    store = ProjectStore.open(killed, "r")
    states = store.states(1)
    finished = np.flatnonzero(states != STATE_NOT_RUN)
    assert 6 <= len(finished) < 20
    for t in finished:  # every frame marked done is complete on disk
        assert np.array_equal(store.labels[t] == 1, store.mask(1, t))
    kept = {int(t): store.mask(1, t) for t in finished}
    assert subprocess.run([*cmd, "--out", str(killed), "--resume"]).returncode == 0
    reference = tmp_path / "reference.zarr"
    assert subprocess.run([*cmd, "--out", str(reference)]).returncode == 0
    resumed, ref = ProjectStore.open(killed, "r"), ProjectStore.open(reference, "r")
    assert (resumed.states(1) != STATE_NOT_RUN).all()
    assert np.array_equal(resumed.labels[:], ref.labels[:])
    for t, mask in kept.items():
        assert np.array_equal(resumed.mask(1, t), mask)


# ------------------------------------------------------------------ nothing already written is lost
def snapshot(folder: Path) -> dict:
    """Every file under ``folder`` with its bytes (the lock file excluded: it is not data)."""
    return {p.relative_to(folder): p.read_bytes() for p in sorted(folder.rglob("*"))
            if p.is_file() and p.name != ".napari_sam2_track.lock"}


@pytest.fixture(scope="module")
def tracked(tmp_path_factory, video, checkpoint) -> Path:
    """A project with both objects tracked over all 8 frames."""
    folder = tmp_path_factory.mktemp("tracked")
    out = folder / "p.zarr"
    code = main(["track", str(video), "--prompts", str(prompts_file(folder, GOOD)), "--out", str(out),
                 "--model", str(checkpoint), "--image-size", "256", "--device", "cpu", "--quiet"])
    assert code == 0
    return out


@pytest.fixture
def project_copy(tmp_path, tracked) -> Path:
    import shutil

    out = tmp_path / "p.zarr"
    shutil.copytree(tracked, out)
    return out


def track_args(video, prompts, out, checkpoint, *extra):
    return ["track", video, "--prompts", prompts, "--out", out, "--model", checkpoint,
            "--image-size", 256, "--device", "cpu", "--quiet", *extra]


def assert_kept(out: Path, before: dict):
    assert snapshot(out) == before
    assert [p.name for p in out.parent.iterdir() if p.name.startswith(".")] == []


@pytest.mark.parametrize(
    ("case", "extra", "match"),
    [
        ("end-past-video", ["--end", 30], "outside the video"),
        ("start-after-end", ["--start", 5, "--end", 2], "outside the video"),
        ("no-keyframe-in-range", ["--start", 5, "--end", 7, "--direction", "forward"], "no prompt for objects"),
    ],
)
def test_overwrite_with_a_bad_range_keeps_the_project(project_copy, video, checkpoint, tmp_path, capsys,
                                                      case, extra, match):
    before = snapshot(project_copy)
    assert_refused(track_args(video, prompts_file(tmp_path, GOOD), project_copy, checkpoint, "--overwrite",
                              *extra), capsys, match)
    assert_kept(project_copy, before)


def test_overwrite_with_a_category_missing_from_the_schema_keeps_the_project(project_copy, video, checkpoint,
                                                                            tmp_path, capsys):
    before = snapshot(project_copy)
    schema = tmp_path / "schema.yaml"
    schema.write_text("categories:\n- name: cell\n  color: '#ff0000'\n")
    prompts = prompts_file(tmp_path, {**GOOD, "objects": [{"id": 1, "category": "tool"}, {"id": 2}]})
    assert_refused(track_args(video, prompts, project_copy, checkpoint, "--overwrite", "--schema", schema),
                   capsys, "category 'tool'")
    assert_kept(project_copy, before)


def test_overwrite_with_bad_prompts_keeps_the_project(project_copy, video, checkpoint, tmp_path, capsys):
    before = snapshot(project_copy)
    bad = {"objects": [{"id": 1}], "prompts": [{"object": 1, "frame": 0, "points": [[500, 40]], "labels": [1]}]}
    assert_refused(track_args(video, prompts_file(tmp_path, bad), project_copy, checkpoint, "--overwrite"),
                   capsys, "outside the 128x96 frame")
    assert_kept(project_copy, before)


def test_overwrite_replaces_the_project_when_the_run_is_complete(project_copy, video, checkpoint, tmp_path,
                                                                 capsys):
    one = {"objects": [{"id": 5, "name": "only"}],
           "prompts": [{"object": 5, "frame": 0, "points": [[30, 40]], "labels": [1]}]}
    code, err = run_cli(track_args(video, prompts_file(tmp_path, one), project_copy, checkpoint,
                                   "--overwrite", "--direction", "forward"), capsys)
    assert code == 0, err
    store = ProjectStore.open(project_copy, "r")
    assert store.object_ids() == [5] and store.meta["runs"][-1]["status"] == "completed"
    assert set(np.unique(store.labels[:]).tolist()) <= {0, 5}
    assert not (project_copy / ".napari_sam2_track.lock").exists()
    assert [p.name for p in project_copy.parent.iterdir()] == ["p.zarr", "prompts.json"]


@pytest.mark.parametrize("kind", ["zarr-group", "folder", "file"])
def test_overwrite_never_replaces_something_else(tmp_path, video, checkpoint, capsys, kind):
    import zarr

    out = tmp_path / "data.zarr"
    if kind == "zarr-group":
        zarr.open_group(str(out), mode="w").create_array("image", data=np.arange(12).reshape(3, 4))
    elif kind == "folder":
        out.mkdir()
        (out / "notes.txt").write_text("precious")
    else:
        out.write_text("precious")
    before = snapshot(out) if out.is_dir() else out.read_bytes()
    assert_refused(track_args(video, prompts_file(tmp_path, GOOD), out, checkpoint, "--overwrite"),
                   capsys, "--overwrite only replaces a previous napari-sam2-track project")
    assert (snapshot(out) if out.is_dir() else out.read_bytes()) == before


def test_output_overlapping_the_input_is_refused(tmp_path, checkpoint, capsys):
    folder = write_jpeg_folder(make_blob_video(4), tmp_path / "frames")
    prompts = prompts_file(tmp_path, {"objects": [{"id": 1}],
                                      "prompts": [{"object": 1, "frame": 0, "points": [[30, 40]], "labels": [1]}]})
    before = snapshot(folder)
    for out in (folder, folder / "p.zarr", tmp_path):
        assert_refused(track_args(folder, prompts, out, checkpoint, "--overwrite"), capsys, "overlap the input")
        assert snapshot(folder) == before


def test_long_error_lines_are_capped(tmp_path, capsys):
    from napari_sam2_track.errors import MAX_LINE

    code, err = run_cli(["info", tmp_path / ("x" * 3000)], capsys)
    assert code == 2
    lines = err.strip().splitlines()
    assert len(lines) == 1 and len(lines[0]) <= MAX_LINE + len("error: ")
    assert "more characters" in lines[0]


def test_a_store_mask_prompt_for_a_new_project_is_refused_before_the_model_loads(tmp_path, video, capsys):
    """``store:`` masks (as ``store.prompts.save()`` writes them) live in a project: a new one has
    none, so the run is refused in one line — before the (here missing) checkpoint is looked at."""
    data = {"objects": [{"id": 1}], "prompts": [{"object": 1, "frame": 0, "mask": "store:prompts/1/0"}]}
    out = tmp_path / "p.zarr"
    code, err = run_cli(["track", video, "--prompts", prompts_file(tmp_path, data), "--out", out,
                         "--model", tmp_path / "missing.pt", "--device", "cpu", "--quiet"], capsys)
    lines = err.strip().splitlines()
    assert code != 0 and len(lines) == 1, err
    assert "names 'store:prompts/1/0', which only an existing project holds" in lines[0]
    assert not out.exists()
