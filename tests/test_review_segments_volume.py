"""``--segments`` (time-parallel runs on Dask) on a volume: refused in one line that says what
to do, before a cluster starts or anything is written (``track`` and a batch row alike)."""

from __future__ import annotations

import json

import pytest

from napari_sam2_track.cli.main import main
from napari_sam2_track.errors import PromptError

from _volumes import sphere_volume
from test_volume_cli import nifti

REFUSAL = "--segments splits a 2D video in time; "


def _inputs(tmp_path):
    data, _ = sphere_volume(z=6, radius=6)
    path = nifti(tmp_path / "ball.nii.gz", data[0])
    prompts = tmp_path / "p.json"
    prompts.write_text(json.dumps({"objects": [{"id": 1}], "prompts": [
        {"object": 1, "frame": 0, "z": z, "points": [[26, 32]], "labels": [1]} for z in (1, 4)]}))
    return path, prompts


def test_track_segments_on_a_volume_is_refused_in_one_line(tmp_path, capsys):
    path, prompts = _inputs(tmp_path)
    out = tmp_path / "x.zarr"
    code = main(["track", str(path), "--prompts", str(prompts), "--out", str(out), "--segments", "2"])
    err = capsys.readouterr().err.strip()
    assert code != 0 and len(err.splitlines()) == 1, err
    assert REFUSAL in err and "(1 timepoint(s) of 6 slices)" in err
    assert "track it without --segments" in err
    assert not out.exists()


def test_a_segmented_batch_row_on_a_volume_is_refused_before_writing(tmp_path):
    from napari_sam2_track.distributed import BatchItem, ModelSpec
    from napari_sam2_track.distributed.segments import SegmentedVideo

    path, prompts = _inputs(tmp_path)
    out = tmp_path / "row.zarr"
    item = BatchItem(video=str(path), prompts=str(prompts), out=str(out), segments=2)
    job = SegmentedVideo(0, item, out, ModelSpec(model="tiny", device="cpu"), 2)
    with pytest.raises(PromptError, match=REFUSAL):
        job.prepare()
    assert not out.exists()
