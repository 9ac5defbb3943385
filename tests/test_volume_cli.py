"""``track`` and ``info`` on volumes from the command line: NIfTI in, a volume project out;
bad input gets one line and writes nothing."""

from __future__ import annotations

import json
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
import tifffile
import torch
import zarr

from napari_sam2_track.cli.main import main
from napari_sam2_track.project import STATE_NOT_RUN, ProjectStore

from _volumes import sphere_volume
from conftest import make_blob_video, write_jpeg_folder


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory, test_model) -> Path:
    path = tmp_path_factory.mktemp("ckpt") / "test_tiny.pt"
    torch.save({"model": test_model.predictor.state_dict()}, path)
    return path


def nifti(path: Path, zyx: np.ndarray, zooms=(0.5, 0.5, 2.0)) -> Path:
    """A NIfTI of (z, y, x) data stored as (x, y, z), with voxel sizes in mm."""
    img = nib.Nifti1Image(np.ascontiguousarray(zyx.transpose(2, 1, 0)), np.diag([*zooms, 1.0]))
    img.header.set_zooms(zooms)
    img.header.set_xyzt_units("mm")
    nib.save(img, path)
    return path


def prompts(tmp_path: Path, items: list[dict]) -> Path:
    path = tmp_path / "p.json"
    path.write_text(json.dumps({"objects": [{"id": 1, "name": "ball"}], "prompts": items}))
    return path


def cli(args, capsys) -> tuple[int, str, str]:
    code = main([str(a) for a in args])
    out = capsys.readouterr()
    return code, out.out, out.err


MODEL = ["--image-size", 256, "--device", "cpu", "--quiet"]


def test_track_a_nifti_volume_then_info(tmp_path, checkpoint, capsys):
    data, _ = sphere_volume(z=8, radius=7)
    path = nifti(tmp_path / "ball.nii.gz", data[0])
    out = tmp_path / "ball.zarr"
    p = prompts(tmp_path, [{"object": 1, "frame": 0, "z": 4, "points": [[26, 32]], "labels": [1]}])
    code, _, err = cli(["track", path, "--prompts", p, "--out", out, "--model", checkpoint,
                        "--axis", "z", "--z-range", "1-6", "--stop-after-empty", 3, *MODEL],
                       capsys)
    assert code == 0, err
    store = ProjectStore.open(out, mode="r")
    assert store.volume_shape == (1, 8, 64, 64)
    assert store.geometry.spacing[1:] == (2.0, 0.5, 0.5)
    ran = store.states(1) != STATE_NOT_RUN
    assert not ran[0] and not ran[7] and ran[4]
    code, text, _ = cli(["info", out], capsys)
    assert code == 0
    assert "axes     tzyx  shape [1, 8, 64, 64]" in text
    assert "voxel    z 2 mm, y 0.5 mm, x 0.5 mm" in text
    code, text, _ = cli(["info", out, "--json"], capsys)
    assert json.loads(text)["geometry"]["units"][1:] == ["mm", "mm", "mm"]


@pytest.mark.parametrize("extra, expected", [
    (["--axis", "q"], "--axis 'q' does not exist"),
    (["--axis", "x", "--z-range", "1-3"], "--z-range applies to --axis z"),
    (["--z-range", "2-30"], "outside the volume's 8 slices"),
])
def test_bad_volume_options_are_one_line(tmp_path, checkpoint, capsys, extra, expected):
    data, _ = sphere_volume(z=8)
    path = nifti(tmp_path / "v.nii.gz", data[0])
    p = prompts(tmp_path, [{"object": 1, "frame": 0, "z": 4, "points": [[26, 32]], "labels": [1]}])
    code, _, err = cli(["track", path, "--prompts", p, "--out", tmp_path / "o.zarr",
                        "--model", checkpoint, *extra, *MODEL], capsys)
    assert code != 0 and expected in err and err.count("\n") == 1
    assert not (tmp_path / "o.zarr").exists()


def test_bad_volume_inputs_are_one_line(tmp_path, checkpoint, capsys):
    data, _ = sphere_volume(z=8)
    p = prompts(tmp_path, [{"object": 1, "frame": 0, "z": 0, "points": [[26, 32]], "labels": [1]}])
    one = nifti(tmp_path / "one.nii.gz", data[0][:1])  # a single slice
    five = tmp_path / "five.tif"
    tifffile.imwrite(five, np.zeros((2, 4, 3, 16, 16), np.uint8), metadata={"axes": "TZCYX"},
                     photometric="minisblack")
    for path, expected in ((one, "single slice"), (five, "channel")):
        code, _, err = cli(["track", path, "--prompts", p, "--out", tmp_path / "o.zarr",
                            "--model", checkpoint, *MODEL], capsys)
        assert code != 0 and expected in err and err.count("\n") == 1, err
        assert not (tmp_path / "o.zarr").exists()
    # a prompt on a slice outside the volume, and a 2D video given volume prompts and options
    far = prompts(tmp_path, [{"object": 1, "frame": 0, "z": 8, "points": [[26, 32]], "labels": [1]}])
    code, _, err = cli(["track", nifti(tmp_path / "v.nii.gz", data[0]), "--prompts", far,
                        "--out", tmp_path / "o.zarr", "--model", checkpoint, *MODEL], capsys)
    assert code != 0 and "slice z=8 but the volume has 8 slices" in err
    video = write_jpeg_folder(make_blob_video(4), tmp_path / "jpg")
    code, _, err = cli(["track", video, "--prompts", far, "--out", tmp_path / "o.zarr",
                        "--model", checkpoint, *MODEL], capsys)
    assert code != 0 and "2D video; remove 'z'" in err and err.count("\n") == 1
    flat = prompts(tmp_path, [{"object": 1, "frame": 0, "points": [[26, 32]], "labels": [1]}])
    code, _, err = cli(["track", video, "--prompts", flat, "--out", tmp_path / "o.zarr",
                        "--z-range", "0-2", "--model", checkpoint, *MODEL], capsys)
    assert code != 0 and "only apply to volumes" in err
    assert not (tmp_path / "o.zarr").exists()


def test_a_manifest_row_tracks_a_volume_like_track(tmp_path, checkpoint, test_model):
    """A batch row with the volume columns gives the project ``track`` gives (the task run in
    this process; the dask cluster itself is tested in test_batch.py)."""
    from napari_sam2_track.distributed import ModelSpec, load_manifest
    from napari_sam2_track.distributed.tasks import track_video
    from napari_sam2_track.pipeline import track
    from napari_sam2_track.prompts import PromptSet
    from napari_sam2_track.sources import open_source

    data, _ = sphere_volume(z=6, radius=6)
    path = nifti(tmp_path / "ball.nii.gz", data[0])
    p = prompts(tmp_path, [{"object": 1, "frame": 0, "z": 3, "points": [[26, 32]], "labels": [1]}])
    manifest = tmp_path / "m.csv"
    manifest.write_text("video,prompts,axis,z_range,stop_after_empty\n"
                        f"{path.name},{p.name},z,1-4,2\n")
    (row,) = load_manifest(manifest, tmp_path / "out")
    assert row.error is None and row.item.z_range == "1-4" and row.item.stop_after_empty == 2
    spec = ModelSpec(model=str(checkpoint), image_size=256, device="cpu")
    result = track_video(0, row.item.model_dump(), str(row.out), spec)
    assert result["status"] == "completed", result
    with open_source(path) as vol:
        list(track(vol, PromptSet.load(p), tmp_path / "ref.zarr", model=test_model,
                   z_range="1-4", stop_after_empty=2, prompts_dir=tmp_path))
    ours, ref = ProjectStore.open(row.out, mode="r"), ProjectStore.open(tmp_path / "ref.zarr", mode="r")
    np.testing.assert_array_equal(ours.states(1), ref.states(1))
    assert ours.meta["runs"][-1]["z_range"] == [1, 4]
    bad = tmp_path / "bad.csv"
    bad.write_text(f"video,z_range\n{path.name},4-1\n")
    (row,) = load_manifest(bad, tmp_path / "out")
    assert "z_range 4-1 is empty" in row.error


def test_info_describes_a_volume_file_before_it_is_tracked(tmp_path, capsys):
    data, _ = sphere_volume(z=8)
    path = nifti(tmp_path / "ball.nii.gz", data[0])
    code, text, err = cli(["info", path], capsys)
    assert code == 0, err
    assert "[nifti, uint8]" in text and "axes     TZYX  (file XYZ)  shape [1, 8, 64, 64]" in text
    assert "voxel    z 2 mm, y 0.5 mm, x 0.5 mm" in text and "space    RAS" in text
    code, text, _ = cli(["info", path, "--json"], capsys)
    info = json.loads(text)
    assert info["geometry"]["spacing"][1:] == [2.0, 0.5, 0.5] and info["axes"] == "TZYX"
    # a z-stack TIFF whose metadata names no axes: --axes says how to read it
    stack = tmp_path / "stack.tif"
    tifffile.imwrite(stack, (data[0, :3] * 200).astype(np.uint16), photometric="minisblack")
    code, text, _ = cli(["info", stack, "--axes", "ZYX"], capsys)
    assert code == 0 and "shape [1, 3, 64, 64]" in text and "window   " in text
    code, text, _ = cli(["info", stack, "--axes", "TYX"], capsys)
    assert code == 0 and text.startswith("source") and "frames   3  (64x64)" in text
    array = tmp_path / "slices.zarr"  # a zarr array is a source too, not a project
    zarr.create_array(array, shape=(3, 64, 64), dtype="uint8", dimension_names=["z", "y", "x"])
    code, text, err = cli(["info", array], capsys)
    assert code == 0 and "[zarr, uint8]" in text and "shape [1, 3, 64, 64]" in text, err
    code, _, err = cli(["info", path, "--window", "ct-heart"], capsys)
    assert code != 0 and "unknown intensity window 'ct-heart'" in err and err.count("\n") == 1
    code, _, err = cli(["info", path, "--check"], capsys)
    assert code != 0 and "is not a project" in err and err.count("\n") == 1
    code, _, err = cli(["info", tmp_path / "missing.nii.gz"], capsys)
    assert code != 0 and err.count("\n") == 1


def test_track_takes_a_window_preset_and_axes(tmp_path, checkpoint, capsys):
    data, _ = sphere_volume(z=6, radius=6)
    stack = tmp_path / "stack.tif"
    tifffile.imwrite(stack, (data[0].astype(np.int16) * 60 - 20))  # no axes in the metadata
    p = prompts(tmp_path, [{"object": 1, "frame": 0, "z": 3, "points": [[26, 32]], "labels": [1]}])
    out = tmp_path / "s.zarr"
    code, _, err = cli(["track", stack, "--axes", "ZYX", "--window", "ct-brain", "--prompts", p,
                        "--out", out, "--model", checkpoint, *MODEL], capsys)
    assert code == 0, err
    with ProjectStore.open(out, mode="r") as store:
        assert store.is_volume and store.volume_shape == (1, 6, 64, 64)
        assert store.meta["source"]["window"]["preset"] == "ct-brain"
    code, _, err = cli(["track", stack, "--window", "0", "x", "--prompts", p,
                        "--out", tmp_path / "t.zarr", "--model", checkpoint, *MODEL], capsys)
    assert code != 0 and "--window takes LOW HIGH numbers or one preset name" in err
    assert not (tmp_path / "t.zarr").exists()


def test_a_manifest_takes_window_presets_axes_and_series(tmp_path):
    from napari_sam2_track.distributed import load_manifest

    for name in ("a.tif", "b.tif", "ct"):
        (tmp_path / name).touch()
    manifest = tmp_path / "m.csv"
    manifest.write_text("video,axes,window,window_low,window_high,series\n"
                        "a.tif,ZYX,ct-lung,,,\n"
                        "b.tif,,ct-lung,0,10,\n"
                        "ct,,,,,1.2.3\n")
    a, b, ct = load_manifest(manifest, tmp_path / "out")
    assert a.error is None and a.item.axes == "ZYX" and a.item.window == "ct-lung"
    assert b.item is None and "both set" in b.error
    assert ct.error is None and ct.item.series == "1.2.3"
