"""track(): cancellation, corrections on a live tracker, resume, schema rules."""

from __future__ import annotations

import threading

import numpy as np
import pytest

from napari_sam2_track.engine.tracker import StreamingTracker
from napari_sam2_track.errors import PromptError, StoreError
from napari_sam2_track.pipeline import check_target, track
from napari_sam2_track.prompts import PromptSet
from napari_sam2_track.schema import Schema
from napari_sam2_track.sources import open_source
from napari_sam2_track.project import (
    COL,
    STATE_ABSENT,
    STATE_NOT_RUN,
    STATE_PROMPTED,
    ProjectStore,
)

from conftest import make_blob_video

TWO = PromptSet.model_validate(
    {
        "objects": [{"id": 1}, {"id": 2}],
        "prompts": [
            {"object": 1, "frame": 0, "points": [[30, 40]], "labels": [1]},
            {"object": 2, "frame": 0, "points": [[90, 30]], "labels": [1]},
        ],
    }
)


@pytest.fixture(scope="module")
def frames():
    return make_blob_video(10)


def test_cancel_stops_between_frames_and_keeps_what_was_written(tmp_path, test_model, frames):
    cancel = threading.Event()
    seen = []
    for progress in track(open_source(frames), TWO, tmp_path / "p.zarr", model=test_model,
                          direction="forward", cancel=cancel):
        seen.append(progress.frame)
        if len(seen) == 3:
            cancel.set()
    assert seen == [0, 1, 2]
    store = ProjectStore.open(tmp_path / "p.zarr", "r")
    assert store.meta["runs"][-1]["status"] == "cancelled"
    states = store.states(1)
    assert list(np.flatnonzero(states != STATE_NOT_RUN)) == [0, 1, 2]
    assert states[0] == STATE_PROMPTED


def test_overlaps_go_to_the_lowest_id_and_masks_keep_them(tmp_path, test_model, frames):
    list(track(open_source(frames), TWO, tmp_path / "p.zarr", model=test_model, direction="forward"))
    store = ProjectStore.open(tmp_path / "p.zarr", "r")
    overlap_frames = 0
    for t in range(10):
        m1, m2 = store.mask(1, t), store.mask(2, t)
        labels = store.labels[t]
        assert np.array_equal(labels == 1, m1)
        assert np.array_equal(labels == 2, m2 & ~m1)
        overlap_frames += bool((m1 & m2).any())
    assert overlap_frames > 0  # the random-init masks are large enough to overlap


def test_correction_rewrites_only_the_segment_of_that_object(tmp_path, test_model, frames):
    source = open_source(frames)
    out = tmp_path / "p.zarr"
    tracker = StreamingTracker(test_model, source)
    list(track(source, TWO, out, model=test_model, direction="forward"))
    store = ProjectStore.open(out)
    # the interactive session applies prompts to its own tracker and stores them
    for p in store.prompts.prompts:
        tracker.add_prompt(p)
    list(track(source, None, store, model=test_model, direction="forward", tracker=tracker))
    before_2 = [store.mask(2, t) for t in range(10)]
    before_1 = [store.mask(1, t) for t in range(10)]
    run_before = store.table(1)[:, COL["run"]].copy()
    from napari_sam2_track.prompts import Prompt

    correction = Prompt(object=1, frame=6, points=[(60, 60)], labels=[0])
    store.put_prompt(correction)
    tracker.add_prompt(correction)
    start, end = tracker.correction_range(1, 6)
    assert (start, end) == (1, 9)
    list(track(source, None, store, model=test_model, direction="both", start=start, end=end,
               obj_ids=[1], tracker=tracker))
    runs = store.table(1)[:, COL["run"]]
    assert (runs[1:] > run_before[1:]).all() and runs[0] == run_before[0]
    assert all(np.array_equal(store.mask(2, t), before_2[t]) for t in range(10))
    assert any(not np.array_equal(store.mask(1, t), before_1[t]) for t in range(6, 10))
    assert store.states(1)[6] == STATE_PROMPTED
    for t in range(10):
        assert np.array_equal(store.labels[t] == 1, store.mask(1, t))


def test_min_visible_pixels_marks_small_masks_absent(tmp_path, test_model, frames):
    schema = Schema.model_validate({"min_visible_pixels": 10**6})
    list(track(open_source(frames), TWO, tmp_path / "p.zarr", model=test_model,
               direction="forward", end=3, schema=schema))
    store = ProjectStore.open(tmp_path / "p.zarr", "r")
    assert list(store.states(2)[1:4]) == [STATE_ABSENT] * 3
    assert store.schema.min_visible_pixels == 10**6


def test_range_without_keyframe_is_refused_before_writing(tmp_path, test_model, frames):
    with pytest.raises(PromptError, match="no prompt for objects"):
        list(track(open_source(frames), TWO, tmp_path / "p.zarr", model=test_model, start=4, end=8))
    assert not (tmp_path / "p.zarr").exists()


def test_a_checked_target_runs_in_its_mode(tmp_path, test_model, frames):
    """check_target decides once what a run does; a replacement appears only when complete."""
    source = open_source(frames)
    out = tmp_path / "p.zarr"
    with pytest.raises(StoreError, match="no prompts were given"):
        check_target(out, source, None)
    late = TWO.model_copy(update={"prompts": [TWO.prompts[0].model_copy(update={"frame": 10})]})
    with pytest.raises(PromptError, match="frame 10"):
        check_target(out, source, late)
    target = check_target(out, source, TWO)
    assert target.mode == "new" and not out.exists()
    list(track(source, TWO, target, model=test_model, direction="forward", end=4))
    assert check_target(out, source, None, resume=True).mode == "resume"
    with pytest.raises(StoreError, match="already exists"):
        check_target(out, source, TWO)
    target = check_target(out, source, TWO, overwrite=True)
    assert target.mode == "overwrite"
    cancel = threading.Event()
    for _ in track(source, TWO, target, model=test_model, direction="forward", cancel=cancel):
        cancel.set()
    runs = ProjectStore.open(out, "r").meta["runs"]
    assert [(r["status"], r["end"]) for r in runs] == [("completed", 4)]  # the old one, kept
    list(track(source, TWO, target, model=test_model, direction="forward"))
    runs = ProjectStore.open(out, "r").meta["runs"]
    assert [(r["status"], r["end"]) for r in runs] == [("completed", None)]  # replaced
    with pytest.raises(ValueError, match="open project"):
        list(track(source, None, out, model=test_model, tracker=StreamingTracker(test_model, source)))


def test_resume_writes_only_missing_frames(tmp_path, test_model, frames):
    out = tmp_path / "p.zarr"
    cancel = threading.Event()
    for progress in track(open_source(frames), TWO, out, model=test_model, direction="forward", cancel=cancel):
        if progress.computed == 4:
            cancel.set()
    first = ProjectStore.open(out, "r").table(1)[:, COL["run"]].copy()
    assert np.isnan(first[4:]).all() and (first[:4] == 1).all()
    list(track(open_source(frames), None, out, model=test_model, direction="forward", resume=True))
    runs = ProjectStore.open(out, "r").table(1)[:, COL["run"]]
    assert (runs[:4] == 1).all() and (runs[4:] == 2).all()


def test_track_in_store_refuses_a_volume_in_one_line(tmp_path):
    """The entry of the session's runs refuses a volume as the CLI path does, before any work."""
    from napari_sam2_track.errors import SourceError
    from napari_sam2_track.pipeline import track_in_store
    from napari_sam2_track.sources import open_source

    store = ProjectStore.create(tmp_path / "p.zarr", num_frames=4, height=8, width=8)
    vol = open_source(np.zeros((4, 8, 8), np.uint8), axes="zyx")
    with pytest.raises(SourceError, match="an open project .the napari session. needs a 2D"):
        next(track_in_store(store, vol, None, model=None))
