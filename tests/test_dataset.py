"""Datasets: items, stages derived and recorded, status, assignment, next, schema versions,
export with splits, and one line for every bad input (real projects tracked by the test model)."""

from __future__ import annotations

import datetime as dt
import json
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from conftest import REPO, make_blob_video, write_jpeg_folder
from napari_sam2_track.cli import main
from napari_sam2_track.dataset import Dataset, DatasetError
from napari_sam2_track.dataset.export import export_dataset, split_items
from napari_sam2_track.dataset.status import assign, item_rows, next_item, status, totals
from napari_sam2_track.dataset.summary import SummaryCache
from napari_sam2_track.project import ProjectStore
from napari_sam2_track.review.analytics import log_event
from napari_sam2_track.review.flags import find_flags
from napari_sam2_track.review.qc import approve, masklets, reject

PROMPTS = {
    "objects": [{"id": 1}, {"id": 2}],
    "prompts": [
        {"object": 1, "frame": 0, "points": [[30, 40]], "labels": [1]},
        {"object": 2, "frame": 2, "box": [78, 20, 102, 44]},
    ],
}


@pytest.fixture(scope="module")
def tracked(tmp_path_factory, test_model):
    """Three blob clips with prompts, two of them tracked into projects (outside any dataset)."""
    from napari_sam2_track.pipeline import track
    from napari_sam2_track.prompts import PromptSet
    from napari_sam2_track.sources import open_source

    root = tmp_path_factory.mktemp("dataset_clips")
    prompts = root / "prompts.json"
    prompts.write_text(json.dumps(PROMPTS))
    clips = [write_jpeg_folder(make_blob_video(5, seed=i), root / f"clip{i}") for i in range(3)]
    projects = []
    for clip in clips[:2]:
        out = root / f"{clip.name}.zarr"
        for _ in track(open_source(clip), PromptSet.load(prompts), out, model=test_model):
            pass
        projects.append(out)
    return clips, prompts, projects


def make_dataset(tmp_path, tracked, n_tracked=2) -> Dataset:
    """A dataset of the three clips (with prompts); the first ``n_tracked`` have projects."""
    clips, prompts, projects = tracked
    ds = Dataset.init(tmp_path / "ds", annotators=["ana", "ben", "kim"])
    items = ds.add_many({"source": c, "prompts": prompts} for c in clips)
    for item, project in zip(items[:n_tracked], projects):
        shutil.copytree(project, item.project)
        ds.claim_project(item)
    return ds


def error_line(capsys, argv) -> str:
    capsys.readouterr()
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and err.startswith("error: "), err
    return err


# ----------------------------------------------------------------------------- the dataset
def test_init_open_and_add_real_videos(tmp_path, shared_data, capsys):
    folder = tmp_path / "mice"
    assert main(["dataset", "init", str(folder), "--annotators", "ana", "ben"]) == 0
    videos = [shared_data / "video" / n for n in ("bedroom.mp4", "blocks.mp4", "cups.mp4")]
    assert main(["dataset", "add", str(folder), *map(str, videos)]) == 0
    ds = Dataset.open(folder)
    assert [i.id for i in ds.items] == ["bedroom", "blocks", "cups"]
    assert ds.items[1].source == videos[1] and ds.items[1].project == folder / "projects/blocks.zarr"
    assert ds.annotators == ["ana", "ben"] and ds.schema_version == 1
    text = (folder / "dataset.yaml").read_text()
    assert "project: projects/blocks.zarr" in text  # relative inside the dataset folder
    rows = item_rows(ds)
    assert [r["stage"] for r in rows] == ["new"] * 3 and not any(r["problem"] for r in rows)
    # the same video again, or a folder that is not a dataset: one line, nothing added
    assert "is item 'cups' already" in error_line(capsys, ["dataset", "add", str(folder), str(videos[2])])
    assert len(Dataset.open(folder).items) == 3
    assert "is not a dataset" in error_line(capsys, ["dataset", "status", str(tmp_path)])
    assert "is a dataset already" in error_line(capsys, ["dataset", "init", str(folder)])


def test_add_from_a_manifest_and_two_items_writing_one_project(tmp_path, tracked, capsys):
    clips, prompts, _ = tracked
    ds = Dataset.init(tmp_path / "ds")
    manifest = tmp_path / "videos.csv"
    manifest.write_text("video,prompts,out\n"
                        f"{clips[0]},{prompts},shared.zarr\n{clips[1]},{prompts},shared.zarr\n")
    err = error_line(capsys, ["dataset", "add", str(ds.folder), str(manifest)])
    assert "writes the same project as row 1" in err and "nothing was added" in err
    assert ds.items == []
    with pytest.raises(DatasetError, match="would write the project .* of item 'clip0'"):
        ds.add_many([{"source": clips[0], "project": tmp_path / "p.zarr"},
                     {"source": clips[1], "project": tmp_path / "p.zarr"}])
    assert ds.items == []  # nothing of the refused call was kept
    manifest.write_text(f"video,prompts\n{clips[0]},{prompts}\n{clips[1]},\n")
    assert main(["dataset", "add", str(ds.folder), str(manifest)]) == 0
    items = Dataset.open(ds.folder).items
    assert [i.prompts for i in items] == [prompts, None]


# ----------------------------------------------------------------------------- stages
def test_stages_follow_the_project_and_the_records(tmp_path, tracked):
    ds = make_dataset(tmp_path, tracked)
    clip0, clip1, clip2 = ds.items
    assert ds.stage(clip2.id).stage == "prompted"  # a prompts file, no project yet
    assert ds.stage(clip0.id).stage == "tracked"
    spans = masklets(clip0.project)
    approve(clip0.project, spans[0].object, spans[0].start, spans[0].end, reviewer="kim")
    assert ds.stage(clip0.id).stage == "in_review"
    assert ds.stage(clip0.id).who == "kim"
    for m in spans[1:]:
        approve(clip0.project, m.object, m.start, m.end, reviewer="kim")
    assert ds.stage(clip0.id).stage == "verified"
    reject(clip1.project, 1, 0, 2, reviewer="kim", comment="leaks")
    assert ds.stage(clip1.id).stage == "returned"
    # a recorded move later than the project's facts wins, with who and when
    record = ds.record_stage(clip1.id, "in review", "ana", note="fixed the leak")
    now = ds.stage(clip1.id)
    assert (now.stage, now.who, now.derived, now.note) == ("in_review", "ana", False, "fixed the leak")
    assert now.time == record.time
    history = ds.history(clip1.id)
    assert [r.stage for r in history] == ["prompted", "tracked", "in_review", "returned", "in_review"]
    assert [r.derived for r in history] == [True, True, True, True, False]
    with pytest.raises(DatasetError, match="unknown stage 'done'"):
        ds.record_stage(clip1.id, "done", "ana")
    with pytest.raises(DatasetError, match="no item 'nope'"):
        ds.record_stage("nope", "verified", "ana")


def test_status_rows_coverage_flags_and_eta(tmp_path, tracked):
    ds = make_dataset(tmp_path, tracked)
    clip0 = ds.items[0]
    spans = masklets(clip0.project)
    approve(clip0.project, spans[0].object, spans[0].start, spans[0].end, reviewer="kim")
    # 20 s of active work over 5 annotated frames of object 1: 4 s per frame
    t0 = dt.datetime(2026, 1, 1, tzinfo=dt.timezone.utc)
    for k in range(5):
        log_event(clip0.project, "brush", annotator="ana", object=1, frames=(k, k),
                  time=t0 + dt.timedelta(seconds=5 * k))
    result = status(ds)
    rows = {r["id"]: r for r in result["items"]}
    row = rows["clip0"]
    visible = sum(m.end - m.start + 1 for m in spans)
    assert row["visible_frames"] == visible
    assert row["covered_frames"] == spans[0].end - spans[0].start + 1
    assert row["qc_coverage"] == round(100 * row["covered_frames"] / visible, 2)
    assert (row["frames"], row["tracked_frames"], row["objects"]) == (5, 5, 2)
    flags = [f for f in find_flags(ProjectStore.open(clip0.project, "r")).flags
             if f.kind not in ("span_start", "span_end", "unreviewed")]
    assert row["open_flags"] <= len(flags)
    assert rows["clip2"]["frames"] is None and rows["clip2"]["stage"] == "prompted"
    t = result["totals"]
    assert t["seconds_per_frame"] == pytest.approx(20 / 5)
    left = (visible - row["covered_frames"]) + rows["clip1"]["visible_frames"]
    left += (visible + rows["clip1"]["visible_frames"]) / 2  # clip2: the mean of the others
    assert t["frames_left"] == round(left)
    assert t["eta_seconds"] == pytest.approx(4.0 * left, abs=0.1)
    assert t["stages"]["in_review"] == 1 and t["stages"]["tracked"] == 1


def test_status_reads_the_cache_and_sees_new_decisions(tmp_path, tracked):
    ds = make_dataset(tmp_path, tracked)
    first = SummaryCache(ds.folder)
    item_rows(ds, first)
    first.save()
    assert first.computed == 2
    again = SummaryCache(ds.folder)
    item_rows(ds, again)
    assert again.computed == 0  # nothing changed: no table was read
    project = ds.items[1].project
    approve(project, 1, 0, 1, reviewer="kim")
    third = SummaryCache(ds.folder)
    rows = item_rows(ds, third)
    assert third.computed == 1 and rows[1]["covered_frames"] >= 2


def test_status_never_waits_for_a_project_lock(tmp_path, tracked):
    ds = make_dataset(tmp_path, tracked)
    project = ds.items[0].project
    holder = subprocess.Popen(
        [sys.executable, "-c",
         "import sys, time; from napari_sam2_track.project import ProjectStore; "
         f"s = ProjectStore.open({str(project)!r}, 'r+'); print('held', flush=True); time.sleep(60)"],
        stdout=subprocess.PIPE, text=True, env={"PYTHONPATH": str(REPO / "src"), "PATH": "/usr/bin:/bin"},
    )
    try:
        assert holder.stdout.readline().strip() == "held"
        started = time.perf_counter()
        rows = item_rows(ds)
        assert time.perf_counter() - started < 10
        assert rows[0]["held_by"].startswith(f"PID {holder.pid} ")
        assert rows[1]["held_by"] is None
    finally:
        holder.kill()
        holder.wait()


# ----------------------------------------------------------------------------- assignment
def test_assign_by_items_count_and_round_robin(tmp_path, tracked, capsys):
    ds = make_dataset(tmp_path, tracked)
    folder = str(ds.folder)
    assert main(["dataset", "assign", folder, "--annotator", "ana", "--items", "clip1"]) == 0
    assert ds.assignee("clip1") == "ana"
    assert main(["dataset", "assign", folder, "--annotator", "ben", "--count", "1"]) == 0
    assert ds.assignee("clip0") == "ben"  # the first item nobody holds
    assert main(["dataset", "assign", folder, "--round-robin", "kim", "ana", "--reviewer"]) == 0
    assert [ds.reviewer(i) for i in ("clip0", "clip1", "clip2")] == ["kim", "ana", "kim"]
    err = error_line(capsys, ["dataset", "assign", folder, "--annotator", "zed", "--count", "1"])
    assert "unknown annotator 'zed' (annotators: ana, ben, kim)" in err and "--add zed" in err
    err = error_line(capsys, ["dataset", "assign", folder, "--annotator", "ana", "--items", "x"])
    assert "no item 'x'" in err and "nothing was assigned" in err
    assert ds.assignee("clip2") is None


def test_next_gives_corrections_first_then_claims_a_free_item(tmp_path, tracked):
    ds = make_dataset(tmp_path, tracked)
    ds.assign(["clip0", "clip1"], "ana")
    reject(ds.items[1].project, 1, 0, 2, reviewer="kim")
    assert next_item(ds, "ana")["id"] == "clip1"  # returned for correction comes first
    row = next_item(ds, "ben")
    assert row["id"] == "clip2" and ds.assignee("clip2") == "ben"  # a free item, now ben's
    assert next_item(ds, "kim") is None
    assert next_item(ds, "kim", review=True)["id"] == "clip0"
    assert ds.reviewer("clip0") == "kim"
    with pytest.raises(DatasetError, match="unknown annotator 'zed'"):
        next_item(ds, "zed")


# ----------------------------------------------------------------------------- schema
def test_a_schema_change_lists_the_projects_made_with_an_older_one(tmp_path, tracked, test_model, capsys):
    from napari_sam2_track.pipeline import track
    from napari_sam2_track.prompts import PromptSet
    from napari_sam2_track.schema import Category, Schema
    from napari_sam2_track.sources import open_source

    ds = make_dataset(tmp_path, tracked)
    assert ds.outdated_projects() == []
    new = Schema(categories=[Category(name="object"), Category(name="cell", color="#00ff00")])
    schema_file = tmp_path / "v2.yaml"
    new.save(schema_file)
    assert main(["dataset", "schema", str(ds.folder), "--set", str(schema_file)]) == 0
    out = capsys.readouterr().out
    assert "schema version 2" in out and "clip0: made with version 1" in out
    clip2 = ds.items[2]
    for _ in track(open_source(clip2.source), PromptSet.load(clip2.prompts), clip2.project,
                   model=test_model, schema=ds.schema):
        pass
    ds.claim_project(clip2)
    assert ds.project_schema_version(clip2) == 2
    assert ds.outdated_projects() == [("clip0", 1), ("clip1", 1)]
    with pytest.raises(DatasetError, match="the same as the current version 2"):
        ds.set_schema(schema_file)


# ----------------------------------------------------------------------------- bad input
def test_a_moved_item_is_named_and_move_points_it_at_its_new_place(tmp_path, tracked, capsys):
    clips, prompts, _ = tracked
    moved = tmp_path / "clip-moved"
    shutil.copytree(clips[2], moved)
    ds = Dataset.init(tmp_path / "ds", annotators=["ana"])
    item = ds.add(moved, prompts=prompts)
    shutil.move(moved, tmp_path / "elsewhere")
    row = item_rows(ds)[0]
    assert f"source {moved} not found" in row["problem"] and "dataset move" in row["problem"]
    assert main(["dataset", "status", str(ds.folder)]) == 0
    assert f"problem: {item.id}: source {moved} not found" in capsys.readouterr().out
    err = error_line(capsys, ["dataset", "move", str(ds.folder), item.id, str(moved)])
    assert "not found; the item still points at" in err
    assert main(["dataset", "move", str(ds.folder), item.id, str(tmp_path / "elsewhere")]) == 0
    assert item_rows(ds)[0]["problem"] == ""
    assert error_line(capsys, ["dataset", "add", str(ds.folder), str(tmp_path / "gone.mp4")]).endswith(
        "gone.mp4 not found; nothing was added (check the path)")


def test_a_project_of_another_dataset_is_refused(tmp_path, tracked, capsys):
    ds = make_dataset(tmp_path, tracked)
    other = Dataset.init(tmp_path / "other")
    clips, prompts, _ = tracked
    err = error_line(capsys, ["dataset", "add", str(other.folder), str(clips[0]), "--project",
                              str(ds.items[0].project)])
    assert "belongs to another dataset" in err and "nothing was added" in err
    with pytest.raises(DatasetError, match="belongs to another dataset"):
        other.add(clips[0], project=ds.items[0].project)
    assert other.items == []
    # a project copied by hand from another dataset shows as a problem in status
    third = Dataset.init(tmp_path / "third")
    item = third.add(clips[1])
    shutil.copytree(ds.items[1].project, item.project)
    row = item_rows(third)[0]
    assert "belongs to another dataset" in row["problem"]
    with pytest.raises(DatasetError, match="belongs to another dataset"):
        third.claim_project(item)


def test_export_splits_items_and_refuses_bad_targets(tmp_path, tracked, capsys):
    ds = make_dataset(tmp_path, tracked)
    out = tmp_path / "export"
    assert main(["dataset", "export", str(ds.folder), "-f", "ctc", "--out", str(out),
                 "--split", "train=0.5,val=0.5", "--seed", "3"]) == 0
    manifest = json.loads((out / "dataset_export.json").read_text())
    sets = {e["split"]: e["id"] for e in manifest["items"]}
    assert sorted(sets) == ["train", "val"] and sorted(sets.values()) == ["clip0", "clip1"]
    for entry in manifest["items"]:
        assert (out / entry["path"] / ".napari_sam2_track_export.json").is_file()
    assert split_items(["clip0", "clip1"], {"train": 0.5, "val": 0.5}, 3) == {
        k: [v] for k, v in sets.items()}  # the same seed gives the same split
    vis = tmp_path / "vis"
    export_dataset(ds, "youtube-vis", vis)  # a single-file format: one file per item
    assert sorted(p.name for p in (vis / "all").iterdir()) == ["clip0.json", "clip1.json"]
    err = error_line(capsys, ["dataset", "export", str(ds.folder), "-f", "ctc", "--out",
                              str(ds.folder / "exports"), "--split", "train=0.5,val=0.5"])
    assert "is inside the dataset folder" in err
    err = error_line(capsys, ["dataset", "export", str(ds.folder), "-f", "ctc", "--out",
                              str(tmp_path / "e2"), "--split", "train=0.8,val=0.1,test=0.1"])
    assert "the split leaves 'val', 'test' empty (2 items to export)" in err
    assert not (tmp_path / "e2").exists()
    err = error_line(capsys, ["dataset", "export", str(ds.folder), "-f", "ctc", "--out",
                              str(tmp_path / "e3"), "--verified-only"])
    assert "no item of" in err and "is verified yet" in err
    err = error_line(capsys, ["dataset", "export", str(ds.folder), "-f", "ctc", "--out",
                              str(out)])
    assert "exists" in err  # a previous export is replaced only with --overwrite
    assert main(["dataset", "export", str(ds.folder), "-f", "ctc", "--out", str(out),
                 "--overwrite"]) == 0


def test_split_text_is_checked(tmp_path, tracked, capsys):
    ds = make_dataset(tmp_path, tracked)
    for split, why in (("train=0.8,val=0.3", "add up to 1.1"), ("train", "NAME=FRACTION"),
                       ("a=0.5,a=0.5", "distinct")):
        err = error_line(capsys, ["dataset", "export", str(ds.folder), "-f", "ctc", "--out",
                                  str(tmp_path / "x"), "--split", split])
        assert why in err


def test_report_carries_the_status_totals(tmp_path, tracked, capsys):
    ds = make_dataset(tmp_path, tracked)
    capsys.readouterr()
    assert main(["dataset", "report", str(ds.folder), "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["totals"] == totals(item_rows(ds))
