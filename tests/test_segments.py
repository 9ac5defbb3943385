"""Time-parallel segments: planning at keyframes, part tables, and a real video on two processes."""

from __future__ import annotations

import json

import numpy as np
import pytest

from _distributed import assert_same_project, checkpoint, dask_client, one_torch_thread  # noqa: F401
from napari_sam2_track.cli import main
from napari_sam2_track.distributed.segments import (
    Segment,
    plan_segments,
    segment_prompts,
    split_points,
)
from napari_sam2_track.errors import PromptError
from napari_sam2_track.pipeline import track
from napari_sam2_track.project import COL, STATE_ABSENT, STATE_PROPAGATED, ProjectStore
from napari_sam2_track.project.parts import PartWriter, create_part, has_parts, merge_parts, part_path
from napari_sam2_track.prompts import PromptSet
from napari_sam2_track.sources import open_source


def every(k: int, n: int, objects=(1, 2)) -> PromptSet:
    """Box prompts for every object on frames 0, k, 2k, ... below n."""
    return PromptSet.model_validate({
        "objects": [{"id": o} for o in objects],
        "prompts": [{"object": o, "frame": t, "box": [10 * o, 10, 10 * o + 40, 60]}
                    for o in objects for t in range(0, n, k)],
    })


def test_split_points_are_frames_where_every_object_has_a_prompt():
    prompts = every(10, 50)
    extra = PromptSet.model_validate({
        "objects": [{"id": 1}, {"id": 2}],
        "prompts": [p.model_dump() for p in prompts.prompts if not (p.object == 2 and p.frame == 20)]
        + [{"object": 1, "frame": 25, "points": [[5, 5]], "labels": [1]}],
    })
    assert split_points(prompts, 0, 49) == [0, 10, 20, 30, 40]
    assert split_points(extra, 0, 49) == [0, 10, 30, 40]
    assert split_points(extra, 5, 35) == [10, 30]


def test_plan_segments_splits_evenly_at_keyframes_in_every_direction():
    prompts = every(10, 100)
    assert plan_segments(prompts, 100, 1) == [Segment(0, 0, 99)]
    assert plan_segments(prompts, 100, 2) == [Segment(0, 0, 49), Segment(1, 50, 99)]
    assert [(s.start, s.end) for s in plan_segments(prompts, 100, 4)] == [
        (0, 19), (20, 49), (50, 69), (70, 99)]
    assert [(s.start, s.end) for s in plan_segments(prompts, 100, 3, start=5, end=64)] == [
        (5, 19), (20, 39), (40, 64)]
    # backward: segments end at the split points
    assert [(s.start, s.end) for s in plan_segments(prompts, 100, 2, "backward")] == [
        (0, 50), (51, 99)]
    # the segments cover the range exactly once
    for n in (1, 2, 3, 5, 10):
        segs = plan_segments(prompts, 100, n)
        assert sum(len(s) for s in segs) == 100 and segs[0].start == 0 and segs[-1].end == 99
    with pytest.raises(PromptError, match="11 segments need 10 frames .* there are 9"):
        plan_segments(prompts, 100, 11)
    with pytest.raises(PromptError, match="no prompt in frames"):
        plan_segments(every(10, 5), 100, 2, start=50)


def test_segment_prompts_keep_only_the_segments_own_keyframes():
    prompts = segment_prompts(every(10, 40), Segment(1, 10, 29))
    assert sorted({p.frame for p in prompts.prompts}) == [10, 20]
    assert [o.id for o in prompts.objects] == [1, 2]


def test_part_tables_merge_into_the_object_tables(tmp_path):
    store = ProjectStore.create(tmp_path / "p.zarr", num_frames=3000, height=8, width=8)
    store.set_prompts(every(1000, 3000))
    seg = Segment(1, 1000, 2047)  # crosses a 1024-row table chunk
    run = store.begin_run(direction="forward")
    create_part(store, run, seg.index, seg.start, seg.end)
    part = PartWriter(tmp_path / "p.zarr", run, seg.index)
    row = [1.5, 10, 1, 2, 6, 4, STATE_PROPAGATED, run]  # presence, area, box, state, run
    part.write_rows({2: [(t, row) for t in (1000, 1500, 2047)]})
    assert part.done()[2] == {1000, 1500, 2047} and part.done()[1] == set()
    assert np.isnan(store.table(2)[:, COL["state"]]).all()  # nothing in the table before the merge
    kept = [0.5, 4, 0, 0, 2, 2, STATE_ABSENT, 0]
    store.write_rows({2: [(1200, kept)]})  # a frame the part left unwritten keeps its row
    merge_parts(store)
    table = store.table(2)
    assert np.flatnonzero(~np.isnan(table[:, COL["state"]])).tolist() == [1000, 1200, 1500, 2047]
    assert table[1500].tolist() == row and table[1200].tolist() == kept
    assert np.isnan(store.table(1)).all()
    assert not has_parts(store)


def test_segment_writers_write_only_their_own_frames_chunks(tmp_path):
    """Segment writers, objects overlapping on every frame (three on one pixel): each writes
    only its own frames' layer chunks, never creates an array, and, run at once, every
    object's mask survives bit-exactly."""
    import threading

    from napari_sam2_track.engine.tracker import FrameResult
    from napari_sam2_track.errors import StoreError
    from napari_sam2_track.project import StoreWriter

    n, h, w = 8, 40, 50
    yy, xx = np.mgrid[:h, :w]

    def masks(t: int) -> dict[int, np.ndarray]:
        return {o: (yy - 20) ** 2 + (xx - 18 - 2 * o - t) ** 2 < (9 - o) ** 2 for o in (1, 2, 3)}

    path = tmp_path / "p.zarr"
    store = ProjectStore.create(path, num_frames=n, height=h, width=w)
    store.set_prompts(every(4, n, objects=(1, 2, 3)))
    run = store.begin_run(direction="forward")
    segments = [Segment(0, 0, 3), Segment(1, 4, 7)]
    for seg in segments:
        create_part(store, run, seg.index, seg.start, seg.end)
    with pytest.raises(StoreError, match="overlap layers"):  # the client has not created them yet
        part = PartWriter(path, run, segments[0].index)
        writer = StoreWriter(part, run)
        writer.submit(FrameResult(0, "forward", masks(0), {o: 1.0 for o in (1, 2, 3)}))
        writer.close()
    assert not (path / "overlaps").exists()
    store.layers.ensure_overlap_layers(len(store.object_ids()) - 1)  # as the client does
    arrays = sorted(p.parent.relative_to(path) for p in path.rglob("zarr.json"))
    written: dict[int, set[str]] = {}

    def run_segment(seg: Segment) -> None:
        before = {p: p.stat().st_mtime_ns for p in path.rglob("c/*/0/0")}
        writer = StoreWriter(PartWriter(path, run, seg.index), run, workers=2)
        for t in range(seg.start, seg.end + 1):
            writer.submit(FrameResult(t, "forward", masks(t), {o: 1.0 for o in (1, 2, 3)}))
        writer.close()
        written[seg.index] = {str(p.relative_to(path)) for p in path.rglob("c/*/0/0")
                              if before.get(p) != p.stat().st_mtime_ns}

    for seg in segments:  # one after the other, to see which files each writes
        run_segment(seg)
    for seg in segments:  # its own frames' chunks of the layers and its part table, nothing else
        own_part = part_path(run, seg.index) + "/"
        layers = {name for name in written[seg.index] if not name.startswith(own_part)}
        assert layers and all(name.startswith(("labels/masklets/0/", "overlaps/")) for name in layers)
        frames = {int(name.split("/c/")[1].split("/")[0]) for name in layers}
        assert frames <= set(range(seg.start, seg.end + 1))
    threads = [threading.Thread(target=run_segment, args=(seg,)) for seg in segments]
    for thread in threads:  # and both at once, as dask workers run them
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(p.parent.relative_to(path) for p in path.rglob("zarr.json")) == arrays
    assert (path / "overlaps/2/c/5/0/0").is_file()
    merge_parts(store)
    for t in range(n):
        for obj, mask in masks(t).items():
            assert np.array_equal(store.mask(obj, t), mask), (t, obj)
            assert store.table(obj)[t, COL["area"]] == mask.sum()


@pytest.mark.slow
def test_segments_of_a_real_video_equal_track_from_their_own_keyframes(
    tmp_path, shared_data, dask_client, checkpoint, test_model
):
    video = shared_data / "video" / "bedroom.mp4"
    prompts = every(4, 12, objects=(1,))
    prompts_file = tmp_path / "prompts.json"
    prompts_file.write_text(json.dumps(prompts.model_dump(mode="json")))
    out = tmp_path / "segmented.zarr"
    code = main(["track", str(video), "--prompts", str(prompts_file), "--out", str(out),
                 "--start", "0", "--end", "11", "--segments", "3", "--model", str(checkpoint),
                 "--image-size", "256", "--device", "cpu", "--quiet",
                 "--scheduler", dask_client.scheduler_info()["address"]])
    assert code == 0
    store = ProjectStore.open(out, "r")
    run = store.meta["runs"][-1]
    assert run["status"] == "completed" and run["segments"] == [[0, 3], [4, 7], [8, 11]]
    assert not has_parts(store)
    assert (store.table(1)[:12, COL["run"]] == run["id"]).all()
    source = open_source(video)
    for seg in plan_segments(prompts, len(source), 3, end=11):
        ref = tmp_path / f"ref{seg.index}.zarr"
        with one_torch_thread():
            list(track(source, segment_prompts(prompts, seg), ref, model=test_model,
                       start=seg.start, end=seg.end))
        assert_same_project(out, ref, frames=range(seg.start, seg.end + 1))
    assert np.isnan(store.table(1)[12:]).all()  # nothing outside the range


def test_track_refuses_more_segments_than_split_points_before_starting(tmp_path, blob_jpegs, capsys):
    prompts_file = tmp_path / "prompts.json"
    prompts_file.write_text(json.dumps(every(8, 24).model_dump(mode="json")))
    out = tmp_path / "p.zarr"
    code = main(["track", str(blob_jpegs), "--prompts", str(prompts_file), "--out", str(out),
                 "--segments", "4", "--device", "cpu"])
    err = capsys.readouterr().err.strip()
    assert code == 2 and "\n" not in err
    assert err.startswith("error: 4 segments need 3 frames where every object has a prompt; there are 2")
    assert not out.exists()


SCHEMA = """
version: 1
categories:
  - {name: cell, color: "#00ff00"}
  - {name: debris, color: "#ff0000"}
min_visible_pixels: 12289
"""


@pytest.mark.slow
def test_track_segments_stores_the_schema_and_uses_it_as_track_does(
    tmp_path, blob_jpegs, dask_client, checkpoint, test_model
):
    from napari_sam2_track.schema import Schema

    prompts = PromptSet.model_validate({
        "objects": [{"id": 1, "category": "debris"}, {"id": 2}],
        "prompts": [p.model_dump(mode="json") for p in every(6, 12).prompts],
    })
    prompts_file = tmp_path / "prompts.json"
    prompts_file.write_text(json.dumps(prompts.model_dump(mode="json")))
    schema_file = tmp_path / "schema.yaml"
    schema_file.write_text(SCHEMA)
    out = tmp_path / "segmented.zarr"
    code = main(["track", str(blob_jpegs), "--prompts", str(prompts_file), "--out", str(out),
                 "--schema", str(schema_file), "--end", "11", "--segments", "2", "--model",
                 str(checkpoint), "--image-size", "256", "--device", "cpu", "--quiet",
                 "--scheduler", dask_client.scheduler_info()["address"]])
    assert code == 0
    plain = tmp_path / "plain.zarr"
    with one_torch_thread():
        assert main(["track", str(blob_jpegs), "--prompts", str(prompts_file), "--out", str(plain),
                     "--schema", str(schema_file), "--end", "5", "--model", str(checkpoint),
                     "--image-size", "256", "--device", "cpu", "--quiet"]) == 0
    store, ref = ProjectStore.open(out, "r"), ProjectStore.open(plain, "r")
    assert store.meta["schema"] == ref.meta["schema"]
    assert store.schema == Schema.load(schema_file)
    assert [(o.id, o.category) for o in store.objects] == [(1, "debris"), (2, "cell")]
    assert store.objects == ref.objects
    colours = "labels/masklets"  # label colours come from the schema's categories
    assert store.group[colours].attrs["ome"] == ref.group[colours].attrs["ome"]
    # the workers count a mask as visible with the schema's minimum size, as track does: each
    # segment's frames equal a track run with that schema from the segment's own keyframes
    source = open_source(blob_jpegs)
    for seg in plan_segments(prompts, len(source), 2, end=11):
        seg_ref = tmp_path / f"ref{seg.index}.zarr"
        with one_torch_thread():
            list(track(source, segment_prompts(prompts, seg), seg_ref, model=test_model,
                       start=seg.start, end=seg.end, schema=Schema.load(schema_file)))
        assert_same_project(out, seg_ref, frames=range(seg.start, seg.end + 1))
    rows = np.concatenate([store.table(o)[:12] for o in (1, 2)])
    present = (rows[:, COL["area"]] > 0) & (rows[:, COL["presence"]] > 0)
    # masks a default schema would call propagated are absent under this one (too small)
    assert (present & (rows[:, COL["state"]] == STATE_ABSENT)).any()
    assert not (rows[:, COL["state"]] == STATE_PROPAGATED).any()


def test_track_segments_refuses_a_category_the_schema_lacks_before_starting(
    tmp_path, blob_jpegs, capsys
):
    prompts = PromptSet.model_validate({
        "objects": [{"id": 1, "category": "nucleus"}, {"id": 2}],
        "prompts": [p.model_dump(mode="json") for p in every(6, 12).prompts],
    })
    prompts_file = tmp_path / "prompts.json"
    prompts_file.write_text(json.dumps(prompts.model_dump(mode="json")))
    schema_file = tmp_path / "schema.yaml"
    schema_file.write_text(SCHEMA)
    out = tmp_path / "p.zarr"
    code = main(["track", str(blob_jpegs), "--prompts", str(prompts_file), "--out", str(out),
                 "--schema", str(schema_file), "--segments", "2", "--device", "cpu"])
    err = capsys.readouterr().err.strip()
    assert code == 2 and "\n" not in err
    assert "object 1 has category 'nucleus', which the schema does not define" in err
    assert not out.exists()
