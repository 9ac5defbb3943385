"""QC decisions on (t range, z range) boxes of a volume project: stored as plane ranges, one per
timepoint; invalidated where a plane inside changes; ``--approved-only`` exports hold exactly
the approved planes."""

from __future__ import annotations

import json

import numpy as np
import pytest
import tifffile

from napari_sam2_track.cli.main import main
from napari_sam2_track.formats import ExportOptions, export
from napari_sam2_track.review.models import read_review
from napari_sam2_track.review.qc import decide_box, masklet_statuses

from test_review_flags_volume import T, Z, volume_masks, write_project


@pytest.fixture
def project(tmp_path):
    return write_project(tmp_path / "vol.zarr", volume_masks())


def test_a_box_is_one_plane_range_per_timepoint_and_a_change_invalidates_its_timepoint(project, capsys):
    store = project
    assert main(["review", "approve", str(store.path), "1", "--t", "0-2", "--z", "1-4",
                 "--reviewer", "ann"]) == 0
    out = capsys.readouterr().out
    assert "object 1 t 1 z 1-4 (planes 7-10): satisfactory by ann" in out
    boxes = [(t * Z + 1, t * Z + 4) for t in range(T)]
    assert read_review(store).approved_ranges() == {1: boxes}
    # an edit of one plane inside the box (t=1, z=3) invalidates that timepoint's decision only
    p = store.plane(1, 3)
    labels = store.layers.read(p)[0].copy()
    labels[labels == 1] = 0
    labels[2:4, 2:4] = 1
    labels[1, 1] = 1  # a different mask than before
    store.write_edited_labels(p, labels)
    state = read_review(store)
    assert state.approved_ranges() == {1: [boxes[0], boxes[2]]}
    rows = {(m["start"], m["end"]): m["status"] for m in masklet_statuses(store) if m["object"] == 1}
    assert rows[boxes[1]] == "invalidated" and rows[boxes[0]] == rows[boxes[2]] == "satisfactory"


def test_approved_only_export_holds_exactly_the_approved_planes(project, tmp_path):
    store = project
    masks = volume_masks()
    decide_box(store, 1, (0, 1), (2, 3), "satisfactory", reviewer="ann")
    decide_box(store, 2, (2, 2), None, "satisfactory", reviewer="ann")
    decide_box(store, 3, None, None, "unsatisfactory", reviewer="ann")
    out = export(store, "tiff", tmp_path / "a.tif", ExportOptions(approved_only=True))
    data = tifffile.imread(out)
    assert data.shape == (T, Z, *masks[1, 0, 1].shape)
    expect = np.zeros_like(data)
    for t in range(T):
        for z in range(Z):
            if t <= 1 and 2 <= z <= 3:
                expect[t, z][masks[1, t, z]] = 1
            if t == 2:
                expect[t, z][masks[2, t, z]] = 2
    np.testing.assert_array_equal(data, expect)


def test_without_a_range_each_z_span_of_each_timepoint_is_decided(project, capsys):
    assert main(["review", "reject", str(project.path), "3", "--reviewer", "ann"]) == 0
    assert "object 3 t 1 z 2-3: unsatisfactory" in capsys.readouterr().out
    assert main(["review", str(project.path), "--object", "3", "--json"]) == 0
    masklets = json.loads(capsys.readouterr().out)["masklets"]
    assert [(m["t"], m["z"], m["status"]) for m in masklets] == [([1, 1], [2, 3], "unsatisfactory")]


@pytest.mark.parametrize("argv, message", [
    (["--t", "0-3"], "--t 0-3 is not a range inside the project's timepoints (0-2)"),
    (["--z", "4-9"], "--z 4-9 is not a range inside the project's slices (0-5)"),
    (["--t", "a-b"], "--t 'a-b' is not a range like 0-4"),
    (["--t", "0-1", "--frames", "0-3"], "give --frames A-B or --t A-B/--z C-D, not both"),
])
def test_bad_boxes_are_refused_in_one_line_and_nothing_is_written(project, capsys, argv, message):
    assert main(["review", "approve", str(project.path), "1", *argv]) != 0
    err = capsys.readouterr().err.strip()
    assert message in err and len(err.splitlines()) == 1
    assert read_review(project).decisions == []


def test_a_box_on_a_2d_project_says_to_use_frames(tmp_path, capsys):
    from test_review_qc import synthetic_project

    store = synthetic_project(tmp_path / "p.zarr")
    assert main(["review", "approve", str(store.path), "1", "--t", "0-1"]) != 0
    err = capsys.readouterr().err.strip()
    assert "is not a volume project; give its frames with --frames A-B" in err


def test_report_on_a_volume_project(project, capsys):
    from napari_sam2_track.review.models import log_event

    store = project
    log_event(store, "click", annotator="ann", object=1, frames=(store.plane(1, 2),) * 2, positive=True)
    log_event(store, "propagate", annotator="ann", object=1,
              frames=(store.plane(0, 0), store.plane(2, Z - 1)), seconds=3.0, objects=[1])
    decide_box(store, 1, (0, 2), (1, 4), "satisfactory", reviewer="ann", seconds=4.0)
    assert main(["report", str(store.path), "--json"]) == 0
    ann = json.loads(capsys.readouterr().out)["annotators"]["ann"]
    assert ann["masklets_reviewed"] == 1 and ann["review_seconds"] == 4.0
    assert ann["propagated_frames"] == T * Z and ann["clicked_frames"] == 1
    assert main(["report", str(store.path)]) == 0
    assert "ann" in capsys.readouterr().out


def test_a_sample_of_a_volume_masklet_says_where_its_planes_are(project, capsys):
    store = project
    assert main(["review", "sample", str(store.path), "1", "--frames",
                 f"{store.plane(1, 1)}-{store.plane(1, 4)}", "--size", "4", "--seed", "1",
                 "--reviewer", "ann"]) == 0
    out = capsys.readouterr().out
    assert f"{store.plane(1, 3)} = t 1 z 3" in out and f"{store.plane(1, 1)} = t 1 z 1" in out
