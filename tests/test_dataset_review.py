"""Datasets, review side: sampled QC, check frames and reviewers' accuracy, agreement between two
annotators and merging their copies, the dataset report (JSON and one self-contained HTML page)."""

from __future__ import annotations

import datetime as dt
import json
import re

import numpy as np
import pytest

from napari_sam2_track.cli import main
from napari_sam2_track.dataset import Dataset, DatasetError
from napari_sam2_track.errors import ReviewError
from napari_sam2_track.project import STATE_PROPAGATED, ProjectStore
from napari_sam2_track.prompts import ObjectSpec
from napari_sam2_track.review import read_review
from napari_sam2_track.review.analytics import log_event
from napari_sam2_track.review.sampling import draw_sample, judge_frame, verdicts

from conftest import make_blob_video, write_jpeg_folder
from test_review_qc import synthetic_project

T, H, W = 10, 32, 32


def copy_project(path, shift_frames=(), shift=8) -> ProjectStore:
    """Object 1 moves right on frames 0-9, object 2 stays; on ``shift_frames`` object 1 is
    drawn ``shift`` pixels lower (another annotator's reading of it)."""
    store = ProjectStore.create(path, num_frames=T, height=H, width=W)
    store.set_objects([ObjectSpec(id=1), ObjectSpec(id=2)])
    for t in range(T):
        m1 = np.zeros((H, W), bool)
        dy = shift if t in shift_frames else 0
        m1[4 + dy : 10 + dy, 4 + t : 10 + t] = True
        m2 = np.zeros((H, W), bool)
        m2[20:26, 20:26] = True
        store.merge_labels(t, {1: m1, 2: m2})
        for obj, m in ((1, m1), (2, m2)):
            store.write_row(obj, t, m, presence=6.0, state=STATE_PROPAGATED, run=1)
    return store


def run(capsys, *argv):
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


# ------------------------------------------------------------------ sampled QC
def test_a_seeded_sample_is_reproducible_and_includes_flagged_frames(tmp_path):
    store = synthetic_project(tmp_path / "p.zarr")
    a = draw_sample(store, 1, 0, 9, size=4, seed=7, reviewer="ann", record=False)
    b = draw_sample(store, 1, 0, 9, size=4, seed=7, reviewer="ann", record=False)
    assert a.frames == b.frames and a.drawn == b.drawn and len(a.drawn) == 4
    # object 2 re-enters on frame 6 with a presence flip: its worst frame is always judged
    c = draw_sample(store, 2, 6, 9, size=1, seed=0, reviewer="ann", record=False)
    assert 6 in c.flagged and 6 in c.frames and len(c.drawn) == 1
    assert draw_sample(store, 1, 0, 9, fraction=0.25, seed=1, record=False).size == 3  # ceil(2.5)
    assert draw_sample(store, 1, 0, 9, size=50, seed=1, record=False).size == 10  # the masklet's frames
    with pytest.raises(ReviewError, match="not both"):
        draw_sample(store, 1, 0, 9, size=2, fraction=0.5)
    assert read_review(store).samples == []  # record=False records nothing


def test_sampled_verdict_follows_the_schema_rule_and_stays_in_the_audit_trail(tmp_path):
    store = synthetic_project(tmp_path / "p.zarr")
    schema = store.schema
    store.set_schema(schema.model_copy(update={"review": schema.review.model_copy(
        update={"sample_size": 4, "sample_pass": 0.75})}))
    sample = draw_sample(store, 1, 0, 9, seed=3, reviewer="ver")
    assert sample.size == 4 and sample.rule == 0.75
    with pytest.raises(ReviewError, match="in no sample"):
        judge_frame(store, 1, next(f for f in range(T) if f not in sample.frames), "satisfactory")
    first, *rest = sample.frames
    _, v = judge_frame(store, 1, first, "unsatisfactory", reviewer="ver", comment="leaks")
    assert v.status == "pending" and v.failed == [first]
    for f in rest[:-1]:
        judge_frame(store, 1, f, "satisfactory", reviewer="ver")
    _, v = judge_frame(store, 1, rest[-1], "satisfactory", reviewer="ver")
    assert v.status == "satisfactory" and v.pass_fraction == 0.75 and v.recorded == "satisfactory"
    state = read_review(store)
    # the verdict is a decision on the whole masklet: exports and coverage use it
    assert state.approved_ranges() == {1: [(0, 9)]}
    records = [json.loads(line) for line in (store.path / "review" / "decisions.jsonl").read_text().splitlines()]
    (sampled,) = [r for r in records if r.get("kind") == "sample"]
    assert sampled["seed"] == 3 and sampled["frames"] == sample.frames and sampled["reviewer"] == "ver"
    frames = [r for r in records if r.get("basis") == "frame"]
    assert sorted(r["start"] for r in frames) == sample.frames
    assert all(r["sample"] == sample.id and r["start"] == r["end"] for r in frames)
    (final,) = [r for r in records if r.get("basis") == "sample"]
    assert (final["start"], final["end"], final["status"]) == (0, 9, "satisfactory")
    assert "3 of 4 frames pass" in final["comment"]
    # a second failing judgment turns the verdict (the latest judgment of a frame counts)
    _, v = judge_frame(store, 1, rest[0], "unsatisfactory", reviewer="ver")
    assert v.status == "unsatisfactory" and v.recorded == "unsatisfactory"
    assert read_review(store).ranges(1, "unsatisfactory") == [(0, 9)]
    # an edit inside the masklet invalidates the verdict and the frame judged there
    labels = store.labels[first].copy()
    labels[labels == 1] = 0
    store.write_edited_labels(first, labels)
    (v,) = verdicts(store, 1)
    assert v.recorded == "invalidated" and first in v.pending


def test_review_sample_verdict_and_frame_decisions_on_the_command_line(tmp_path, capsys):
    path = synthetic_project(tmp_path / "p.zarr").path
    code, out, _ = run(capsys, "review", "sample", path, 2, "--frames", "6-9", "--size", "2", "--seed", "4",
                       "--reviewer", "ver")
    assert code == 0 and "sample" in out and "seed 4" in out
    frames = [int(x) for x in re.search(r"^frames (.*)$", out, re.M).group(1).split()]
    code, again, _ = run(capsys, "review", "sample", path, 2, "--frames", "6-9", "--reviewer", "ver")
    assert again == out  # the current sample is shown, not drawn again
    code, out, _ = run(capsys, "review", "verdict", path, "--json")
    (v,) = json.loads(out)
    assert v["status"] == "pending" and v["pending"] == frames
    for f in frames:
        code, out, _ = run(capsys, "review", "approve", path, 2, "--frame", f, "--reviewer", "ver")
        assert code == 0
    assert "satisfactory" in out.splitlines()[-1]
    code, out, _ = run(capsys, "review", "verdict", path, 2)
    assert "object 2 frames 6-9: satisfactory" in out
    code, out, err = run(capsys, "review", "approve", path, 2, "--frame", 0)
    assert code == 2 and "in no sample" in err
    code, _, err = run(capsys, "review", "sample", path, 2, "--fraction", "1.5")
    assert code == 2 and "--fraction" in err
    code, out, _ = run(capsys, "review", path, "--json")
    masklets = json.loads(out)["masklets"]
    assert all(m["start"] != m["end"] for m in masklets)  # single sampled frames are not masklets


# ------------------------------------------------------------------ check frames
@pytest.fixture
def cells_dataset(tmp_path, shared_data):
    """A dataset whose one item is the real cell time-lapse imported as its project; object 59
    is moved 15 pixels on frame 3 of the project (the reference keeps it in place)."""
    from napari_sam2_track.dataset.checks import import_checks
    from napari_sam2_track.formats import import_annotations

    labels = shared_data / "microscopy" / "cells_labels.tif"
    ds = Dataset.init(tmp_path / "ds", annotators=["ann", "ver"])
    project = tmp_path / "ds" / "projects" / "cells.zarr"
    import_annotations(labels, project).close()
    item = ds.add(shared_data / "microscopy" / "cells_images.tif", project=project, item_id="cells")
    store = ProjectStore.open(item.project)
    moved = np.roll(store.mask(59, 3), 15, axis=1)
    store.merge_labels(3, {59: moved})
    store.write_row(59, 3, moved, presence=10.0, state=STATE_PROPAGATED, run=0)
    store.close()
    checks = import_checks(ds.folder, "cells", labels, frames=[1, 3])
    assert list(checks.frames) == [1, 3] and 59 in checks.meta["objects"]
    return ds, item


def test_check_frames_are_mixed_into_the_sample_and_score_the_reviewer(cells_dataset, capsys):
    from napari_sam2_track.dataset.checks import dataset_check_calls, reviewer_accuracy

    ds, item = cells_dataset
    code, out, _ = run(capsys, "review", "sample", item.project, 59, "--size", "1", "--seed", "0",
                       "--reviewer", "ver")
    assert code == 0
    sample = read_review(item.project).samples[-1]
    assert {1, 3} <= set(sample.frames)  # the check frames, added without a word
    assert "check frame" not in out and "reference" not in out
    for f in sample.frames:
        run(capsys, "review", "approve", item.project, 59, "--frame", f, "--reviewer", "ver")
    # another reviewer rejects object 3 over its whole span: frames 1 and 3 are right as stored
    run(capsys, "review", "reject", item.project, 3, "--reviewer", "ann")
    calls = dataset_check_calls(ds)
    by = {(c.reviewer, c.object, c.frame): c for c in calls}
    assert by[("ver", 59, 3)].iou < 0.5 and not by[("ver", 59, 3)].correct  # approved a wrong mask
    assert by[("ver", 59, 1)].iou == 1.0 and by[("ver", 59, 1)].correct
    assert not by[("ann", 3, 1)].correct and not by[("ann", 3, 3)].correct  # rejected right masks
    from napari_sam2_track.dataset.analytics import add_accuracy, annotator_analytics

    analytics = add_accuracy(annotator_analytics([(item.project, None)]), calls)
    today = by[("ver", 59, 3)].time[:10]  # the call's day
    assert analytics["annotators"]["ann"]["check_accuracy"] == 0.0
    assert analytics["daily"]["ver"][today]["false_approvals"] == 1
    acc = reviewer_accuracy(calls)
    assert acc["ver"]["false_approvals"] == 1 and acc["ver"]["correct"] == acc["ver"]["judged"] - 1
    assert acc["ann"] == {"judged": 2, "correct": 0, "false_approvals": 0, "false_rejections": 2,
                          "accuracy": 0.0}


def test_bad_check_imports_are_refused_in_one_line(tmp_path, shared_data):
    from napari_sam2_track.dataset.checks import import_checks

    labels = shared_data / "microscopy" / "cells_labels.tif"
    with pytest.raises(DatasetError, match="outside the reference's frames"):
        import_checks(tmp_path, "x", labels, frames=[2, 40])
    with pytest.raises(DatasetError, match=r"the item 'x' \(10, 200, 200\)"):
        import_checks(tmp_path, "x", labels, shape=(10, 200, 200))
    assert not (tmp_path / "checks" / "x.npz").exists()


# ------------------------------------------------------------------ agreement and merge
@pytest.fixture
def two_copies(tmp_path):
    source = write_jpeg_folder(make_blob_video(T, H, W), tmp_path / "video")
    ds = Dataset.init(tmp_path / "ds", annotators=["ann", "bob"])
    ds.add(source, item_id="blobs")
    ds.add_copy("blobs", "ann")
    ds.add_copy("blobs", "bob")
    item = ds.item("blobs")
    copy_project(item.copies["ann"]).close()
    copy_project(item.copies["bob"], shift_frames=(5, 6, 7)).close()
    return ds, item


def test_agreement_gives_per_object_jf_and_the_most_disagreeing_frames(two_copies):
    from napari_sam2_track.dataset.agreement import item_agreement

    _, item = two_copies
    result = item_agreement(item, top=3)
    assert result["annotators"] == ["ann", "bob"]
    assert result["objects"][2]["J&F"] == 1.0 and result["objects"][2]["worst_frames"] == []
    one = result["objects"][1]
    assert one["J&F"] < 1.0 and one["frames_disagreeing"] == 3
    assert sorted(w["frame"] for w in one["worst_frames"]) == [5, 6, 7]
    assert all(w["J"] < 0.5 for w in one["worst_frames"])


def test_merge_takes_each_masklet_from_the_chosen_copy_atomically(two_copies):
    from napari_sam2_track.dataset.agreement import merge_item, parse_take

    ds, item = two_copies
    with pytest.raises(DatasetError, match="choose a copy for objects 2"):
        merge_item(ds, "blobs", parse_take("1=bob"))
    with pytest.raises(DatasetError, match="unknown annotator|not an annotator|no annotator|'eve'"):
        merge_item(ds, "blobs", parse_take("1=bob,2=eve"))
    with pytest.raises(DatasetError, match="OBJ=ANNOTATOR"):
        parse_take("1:bob")
    assert not item.project.exists()  # refusals write nothing
    merged = merge_item(ds, "blobs", parse_take("1=bob"), rest="ann")
    merged = ProjectStore.open(item.project, "r")
    bob, ann = ProjectStore.open(item.copies["bob"], "r"), ProjectStore.open(item.copies["ann"], "r")
    for t in range(T):
        assert np.array_equal(merged.mask(1, t), bob.mask(1, t))
        assert np.array_equal(merged.mask(2, t), ann.mask(2, t))
    assert np.array_equal(merged.table(1), bob.table(1), equal_nan=True)
    assert merged.object_ids() == [1, 2]
    from napari_sam2_track.dataset.model import project_owner
    assert project_owner(item.project)["item"] == "blobs"
    assert sorted(p.name for p in item.project.parent.iterdir() if p.name.startswith(".")) == []


# ------------------------------------------------------------------ report
def test_dataset_report_json_and_a_self_contained_html_page(two_copies, tmp_path):
    from napari_sam2_track.dataset.report import dataset_report, to_json, write_html

    ds, item = two_copies
    t0 = dt.datetime(2025, 3, 1, 9, 0, tzinfo=dt.timezone.utc)
    for who, path, offset in (("ann", item.copies["ann"], 0), ("bob", item.copies["bob"], 1)):
        day = t0 + dt.timedelta(days=offset)
        log_event(path, "click", annotator=who, object=1, frames=(0, 0), positive=True, time=day)
        log_event(path, "click", annotator=who, object=1, frames=(0, 0), positive=True,
                  time=day + dt.timedelta(seconds=10))
        log_event(path, "propagate", annotator=who, objects=[1, 2], frames=(0, 9), seconds=5,
                  time=day + dt.timedelta(seconds=30))
        log_event(path, "brush", annotator=who, object=1, frames=(6, 6),
                  time=day + dt.timedelta(seconds=50))
    from napari_sam2_track.review.qc import approve, reject

    approve(item.copies["ann"], 1, 0, 9, reviewer="ver", seconds=20)
    reject(item.copies["bob"], 1, 0, 9, reviewer="ver", seconds=40)
    approve(item.copies["bob"], 2, 0, 9, reviewer="ver", seconds=10)
    result = dataset_report(ds)
    rows = result["analytics"]["annotators"]
    assert rows["ann"]["seconds_per_frame"] == pytest.approx(50 / 20)  # 50 s over 2 objects x 10 frames
    assert rows["ann"]["clicks_per_clicked_frame"] == 2.0
    assert rows["ann"]["qc_pass_rate"] == 100.0 and rows["bob"]["qc_pass_rate"] == 50.0
    assert rows["ver"]["review_seconds_per_masklet"] == pytest.approx(70 / 3)
    today = read_review(item.copies["bob"]).decisions[0].time.date().isoformat()  # decisions' day
    assert set(result["analytics"]["daily"]["bob"]) == {"2025-03-02", today}
    assert result["analytics"]["daily"]["bob"]["2025-03-02"]["seconds_per_frame"] == pytest.approx(50 / 20)
    assert result["analytics"]["daily"]["bob"][today]["qc_pass_rate"] == 50.0  # by the decisions' day
    assert result["totals"]["items"] == 1 and result["items"][0]["id"] == "blobs"
    assert result["agreement"][0]["objects"][1]["frames_disagreeing"] == 3
    assert json.loads(to_json(result))["analytics"]["reference"][1]["seconds_per_frame"] == 4.5
    page = write_html(result, tmp_path / "out" / "report.html").read_text()
    assert page.count("data:image/png;base64,") >= 2 and "SAM 2 paper" in page
    assert not re.search(r"""(src|href)=["'](?!data:)""", page)  # nothing outside the page


def test_dataset_report_merge_and_checks_on_the_command_line(two_copies, tmp_path, capsys):
    from napari_sam2_track.formats import export

    ds, item = two_copies
    code, out, _ = run(capsys, "dataset", "report", ds.folder, "--json")
    assert code == 0 and json.loads(out)["agreement"][0]["objects"]["1"]["frames_disagreeing"] == 3
    code, out, _ = run(capsys, "dataset", "report", ds.folder)
    assert code == 0 and "SAM 2, SAM 2 paper" in out and "most disagreeing frames 5 6 7" in out
    code, out, _ = run(capsys, "dataset", "report", ds.folder, "--html", tmp_path / "r.html")
    assert code == 0 and (tmp_path / "r.html").read_text().startswith("<!DOCTYPE html>")
    code, _, err = run(capsys, "dataset", "merge", ds.folder, "blobs", "--take", "1=bob")
    assert code == 2 and "choose a copy for objects 2" in err and not item.project.exists()
    code, out, _ = run(capsys, "dataset", "merge", ds.folder, "blobs", "--take", "1=bob,2=ann")
    assert code == 0 and "merged item blobs" in out and item.project.exists()
    # bob's copy as the reference of the check frames 5 and 6, from a DAVIS export
    reference = export(item.copies["bob"], "davis", tmp_path / "davis")
    code, out, _ = run(capsys, "dataset", "checks", ds.folder, "blobs", reference, "--frames", "5,6")
    assert code == 0 and out.startswith("2 check frames")
    code, _, err = run(capsys, "dataset", "checks", ds.folder, "blobs", reference, "--frames", "5;6")
    assert code == 2 and "--frames" in err


def test_dataset_sample_draws_every_masklet_of_an_item_reproducibly(cells_dataset, capsys):
    ds, item = cells_dataset
    code, out, _ = run(capsys, "dataset", "sample", ds.folder, "cells", "--size", "1", "--seed", "3",
                       "--reviewer", "ver", "--json")
    assert code == 0
    first = json.loads(out)
    store = ProjectStore.open(item.project, "r")
    from napari_sam2_track.review.qc import masklets

    assert [(s["object"], s["start"], s["end"]) for s in first] == sorted(
        (m.object, m.start, m.end) for m in masklets(store))
    for s in first:  # the check frames inside each masklet are in its sample
        assert {f for f in (1, 3) if s["start"] <= f <= s["end"]} <= set(s["frames"])
    code, out, _ = run(capsys, "dataset", "sample", ds.folder, "cells", "--reviewer", "ver", "--json")
    assert json.loads(out) == first  # current samples are shown, not drawn again
    code, out, _ = run(capsys, "dataset", "sample", ds.folder, "cells", "--size", "1", "--seed", "3",
                       "--reviewer", "ver", "--new", "--json")
    again = json.loads(out)
    assert [s["frames"] for s in again] == [s["frames"] for s in first]  # same seed, same frames
    assert {s["sample"] for s in again}.isdisjoint({s["sample"] for s in first})
    code, _, err = run(capsys, "dataset", "sample", ds.folder, "cells", "--reviewer", "eve")
    assert code == 2 and "unknown annotator 'eve'" in err
