"""Segment-limited correction and its undo, with a real re-propagation by the test model."""

from __future__ import annotations

import numpy as np
import pytest

from napari_sam2_track.errors import ReviewError
from napari_sam2_track.prompts import Prompt, PromptSet
from napari_sam2_track.review import Masklet, read_review
from napari_sam2_track.review.qc import approve
from napari_sam2_track.review.segments import (
    begin_correction,
    correction_segment,
    list_versions,
    propagated_around,
    segment_snapshot,
    snapshot_segment,
    undo_segment,
)
from napari_sam2_track.project import COL, ProjectStore

from conftest import make_blob_video

N = 12


def chunk_files(store: ProjectStore) -> dict[str, bytes]:
    """Every file of the label layers (which hold the masks) and the tables, by path."""
    out = {}
    for folder in ("objects", "labels", "overlaps"):
        for path in sorted((store.path / folder).rglob("*")):
            if path.is_file():
                out[str(path.relative_to(store.path))] = path.read_bytes()
    return out


def frame_files(files: dict[str, bytes], t: int) -> dict[str, bytes]:
    """The chunk files of one frame: its merged labels and overlap layers."""
    return {k: v for k, v in files.items()
            if k.startswith(f"labels/masklets/0/c/{t}/") or (k.startswith("overlaps/") and f"/c/{t}/" in k)}


def test_correction_rewrites_only_its_segment_and_undo_restores_it(tmp_path, test_model):
    from napari_sam2_track.engine.tracker import StreamingTracker
    from napari_sam2_track.pipeline import Request, track, track_in_store
    from napari_sam2_track.project.versions import RunVersions
    from napari_sam2_track.sources import open_source

    frames = make_blob_video(N)
    source = open_source(frames)
    prompts = PromptSet.model_validate({
        "objects": [{"id": 1}, {"id": 2}],
        "prompts": [{"object": 1, "frame": 0, "points": [[30, 40]], "labels": [1]},
                    {"object": 1, "frame": N - 1, "points": [[52, 47]], "labels": [1]},
                    {"object": 2, "frame": 0, "points": [[90, 30]], "labels": [1]}]})
    out = tmp_path / "p.zarr"
    list(track(source, prompts, out, model=test_model, direction="forward"))
    store = ProjectStore.open(out)
    tracker = StreamingTracker(test_model, source)
    for p in store.prompts.prompts:
        tracker.add_prompt(p)
    list(track(source, None, store, model=test_model, direction="forward", tracker=tracker))

    before = chunk_files(store)
    tables = {o: store.table(o).copy() for o in (1, 2)}
    masks_before = {o: store.masks(o, 0, N) for o in (1, 2)}
    prompts_before = store.meta["prompts"]
    start, end = correction_segment(store, 1, 5)
    assert (start, end) == (1, N - 2) == tracker.correction_range(1, 5)
    version = begin_correction(store, 1, 5, start, end)
    approve(store, 1, 2, 3, reviewer="ann")

    correction = Prompt(object=1, frame=5, points=[(60, 60)], labels=[0])
    store.put_prompt(correction)
    tracker.add_prompt(correction)
    list(track_in_store(store, source, model=test_model, request=Request("both", start, end, [1]),
                        tracker=tracker, versions=RunVersions({1: version})))
    version.finish()
    assert segment_snapshot(store, 1) == (start, end)
    after = chunk_files(store)
    # outside the segment nothing moved, to the byte; object 2 kept every mask and row
    for t in (0, N - 1):
        assert frame_files(after, t) == frame_files(before, t) != {}
        assert store.table(1)[t].tobytes() == tables[1][t].tobytes()
    assert {k: v for k, v in after.items() if k.startswith("objects/2/")} == \
        {k: v for k, v in before.items() if k.startswith("objects/2/")}
    assert np.array_equal(store.masks(2, 0, N), masks_before[2])
    assert not np.array_equal(store.masks(1, start, end + 1), masks_before[1][start : end + 1])
    assert any(frame_files(after, t) != frame_files(before, t) for t in range(start, end + 1))
    assert (store.table(1)[start : end + 1, COL["run"]] > tables[1][start : end + 1, COL["run"]]).all()

    assert undo_segment(store, 1) == (start, end)
    assert chunk_files(store) == before  # label layers (the masks) and table rows, byte for byte
    for o in (1, 2):
        assert np.array_equal(store.masks(o, 0, N), masks_before[o])
    for o in (1, 2):
        assert store.table(o).tobytes() == tables[o].tobytes()
    assert sorted(map(str, store.meta["prompts"])) == sorted(map(str, prompts_before))
    # the undo is a version too: undoing it gives the correction back, byte for byte
    assert [v.kind for v in list_versions(store, 1)][-2:] == ["correction", "undo"]
    undo_segment(store, 1)
    assert chunk_files(store) == after
    # the approval inside the segment was invalidated; the undo is on the record
    change = read_review(store).latest(Masklet(object=1, start=2, end=3)).invalidated_by
    assert change is not None
    assert read_review(store).changes[-1].source == "undo"


def test_propagated_around_stops_at_gaps(tmp_path):
    from napari_sam2_track.prompts import ObjectSpec

    store = ProjectStore.create(tmp_path / "q.zarr", num_frames=10, height=8, width=8)
    store.set_objects([ObjectSpec(id=1)])
    mask = np.zeros((8, 8), bool)
    mask[2:4, 2:4] = True
    for t in (1, 2, 3, 6, 7):  # two separate runs of frames with a result
        store.write_edited_labels(t, mask.astype(np.uint32))
    assert propagated_around(store, 1, 2, 0, 9) == (1, 3)
    assert propagated_around(store, 1, 7, 0, 9) == (6, 7)
    assert propagated_around(store, 1, 9, 0, 9) == (9, 9)  # the frame itself always belongs
    assert propagated_around(store, 1, 5, 0, 9) == (5, 7)  # and joins the run beside it
    assert propagated_around(store, 1, 2, 2, 9) == (2, 3)  # inside the keyframes' segment
    assert propagated_around(store, 99, 4, 0, 9) == (4, 4)  # no table: the frame alone
    # the store-level rule applies the same clip: no keyframes, so the whole video, clipped
    assert correction_segment(store, 1, 2) == (1, 3)
    assert correction_segment(store, 1, 7) == (6, 7)


def test_undo_restores_a_replaced_mask_prompt(tmp_path):
    store = ProjectStore.create(tmp_path / "p.zarr", num_frames=6, height=16, width=16)
    from napari_sam2_track.prompts import ObjectSpec

    store.set_objects([ObjectSpec(id=1)])
    old = np.zeros((16, 16), bool)
    old[2:6, 2:6] = True
    store.put_prompt(Prompt(object=1, frame=0, mask="store:pending"), old)
    store.put_prompt(Prompt(object=1, frame=3, mask="store:pending"), old)
    # never propagated (prompts only, no table row holds a result): a correction covers only
    # the prompted frame, never the keyframes' segment 1-5 / 0-2 of frames without a result
    assert correction_segment(store, 1, 3) == (3, 3)
    assert correction_segment(store, 1, 0) == (0, 0)
    snapshot_segment(store, 1, 1, 5)
    new = np.zeros((16, 16), bool)
    new[8:12, 8:12] = True
    store.put_prompt(Prompt(object=1, frame=3, mask="store:pending"), new)
    store.put_prompt(Prompt(object=1, frame=4, points=[(3, 3)], labels=[1]))
    undo_segment(store, 1)
    assert sorted(p.frame for p in store.prompts.prompts) == [0, 3]
    restored = next(p for p in store.prompts.prompts if p.frame == 3)
    assert np.array_equal(store.prompt_mask(restored), old)
    with pytest.raises(ReviewError, match="inside the video"):
        snapshot_segment(store, 1, 4, 6)


def test_undo_restores_overlap_layers_byte_for_byte(tmp_path):
    """Objects overlapping on every frame: the undo rebuilds the overlap layers exactly."""
    from napari_sam2_track.prompts import ObjectSpec

    from test_store import disc, write_frame

    store = ProjectStore.create(tmp_path / "p.zarr", num_frames=5, height=40, width=50)
    store.set_objects([ObjectSpec(id=1), ObjectSpec(id=2), ObjectSpec(id=3)])
    for t in range(5):
        write_frame(store, t, {1: disc(40, 50, 20 + t, 20, 8), 2: disc(40, 50, 24, 20, 7),
                               3: disc(40, 50, 22, 18, 6)})
    assert (store.path / "overlaps/2/c/2/0/0").is_file()  # three objects on one pixel
    before = chunk_files(store)
    masks_before = {o: store.masks(o, 0, 5) for o in (1, 2, 3)}
    snapshot_segment(store, 2, 1, 3)
    for t in (1, 2, 3):  # a correction of object 2 moves it away from the others
        store.merge_labels(t, {2: disc(40, 50, 40, 30, 5)})
    assert chunk_files(store) != before
    assert undo_segment(store, 2) == (1, 3)
    assert chunk_files(store) == before
    for o in (1, 2, 3):
        assert np.array_equal(store.masks(o, 0, 5), masks_before[o])
