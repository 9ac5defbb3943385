"""The streaming engine gives upstream SAM2VideoPredictor's masks and presence scores.

Both run on the same random-init weights (real architecture), the same JPEG frames and the same
prompts; upstream loads the folder itself. Every case compares the final binary mask of every
object on every frame, and the object-score logits to 1e-4.
"""

from __future__ import annotations

import os

import numpy as np
import pytest
import torch

from napari_sam2_track.engine.tracker import StreamingTracker
from napari_sam2_track.sources import open_source


class Upstream:
    """Upstream predictor on a JPEG folder, recording the last output of each frame."""

    def __init__(self, model, folder):
        self.p = model.predictor
        self.state = self.p.init_state(str(folder))
        self.masks: dict[int, dict[int, np.ndarray]] = {}
        self.presence: dict[int, dict[int, float]] = {}

    def points(self, obj, frame, points=None, labels=None, box=None):
        self.p.add_new_points_or_box(
            self.state, frame_idx=frame, obj_id=obj, points=points, labels=labels, box=box
        )

    def mask(self, obj, frame, mask):
        self.p.add_new_mask(self.state, frame_idx=frame, obj_id=obj, mask=mask)

    def propagate(self, start=None, reverse=False, max_frames=None):
        for t, obj_ids, video_masks in self.p.propagate_in_video(
            self.state, start_frame_idx=start, reverse=reverse, max_frame_num_to_track=max_frames
        ):
            for i, obj in enumerate(obj_ids):
                self.masks.setdefault(t, {})[obj] = (video_masks[i, 0] > 0).numpy()
                idx = self.state["obj_id_to_idx"][obj]
                out = self.state["output_dict_per_obj"][idx]
                rec = out["cond_frame_outputs"].get(t) or out["non_cond_frame_outputs"][t]
                self.presence.setdefault(t, {})[obj] = float(rec["object_score_logits"])


class Ours:
    def __init__(self, model, folder, **kwargs):
        self.tracker = StreamingTracker(model, open_source(folder), **kwargs)
        self.masks: dict[int, dict[int, np.ndarray]] = {}
        self.presence: dict[int, dict[int, float]] = {}

    def run(self, *args, **kwargs):
        for r in self.tracker.propagate(*args, **kwargs):
            for obj, m in r.masks.items():
                self.masks.setdefault(r.frame, {})[obj] = m
                self.presence.setdefault(r.frame, {})[obj] = r.presence[obj]


def assert_same(ours: Ours, up: Upstream, n_frames: int, objects: list[int]):
    assert sorted(ours.masks) == sorted(up.masks) == list(range(n_frames))
    areas = []
    for t in range(n_frames):
        for obj in objects:
            a, b = ours.masks[t][obj], up.masks[t][obj]
            assert a.shape == b.shape
            assert np.array_equal(a, b), f"mask of object {obj} differs on frame {t}"
            assert abs(ours.presence[t][obj] - up.presence[t][obj]) <= 1e-4
            areas.append(int(a.sum()))
    # The comparison is only meaningful if the masks are neither empty nor full.
    assert min(areas) > 0 and max(areas) < a.size


def test_test_model_masks_are_informative(test_model, blob_jpegs):
    """Guard against vacuous comparisons: masks are non-empty, non-full and change."""
    ours = Ours(test_model, blob_jpegs)
    ours.tracker.add_points(1, 0, points=[[30, 40]], labels=[1])
    ours.run("forward")
    masks = [ours.masks[t][1] for t in range(24)]
    areas = [int(m.sum()) for m in masks]
    assert all(0 < a < masks[0].size for a in areas)
    changed = sum(not np.array_equal(masks[i], masks[i + 1]) for i in range(23))
    assert changed >= 20
    assert all(p > 0 for t in range(24) for p in ours.presence[t].values())


def test_one_object_forward(test_model, blob_jpegs):
    up, ours = Upstream(test_model, blob_jpegs), Ours(test_model, blob_jpegs)
    for side in (up.points, ours.tracker.add_points):
        side(1, 0, points=[[30, 40]], labels=[1])
    up.propagate()
    ours.run("forward")
    assert_same(ours, up, 24, [1])


@pytest.mark.skipif(len(os.sched_getaffinity(0)) < 2, reason="needs 2 cores")
def test_frames_read_ahead_when_a_core_is_free_give_the_same_masks(test_model, blob_jpegs):
    """With fewer PyTorch threads than cores the CPU tracker reads frames ahead on a reader
    thread by default (and in turn otherwise); the masks are upstream's either way."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        up, ours = Upstream(test_model, blob_jpegs), Ours(test_model, blob_jpegs)
        assert ours.tracker.frames.depth == 4
        for side in (up.points, ours.tracker.add_points):
            side(1, 0, points=[[30, 40]], labels=[1])
        up.propagate()
        ours.run("forward")
        assert_same(ours, up, 24, [1])
    finally:
        torch.set_num_threads(before)
    if before >= len(os.sched_getaffinity(0)):
        assert Ours(test_model, blob_jpegs).tracker.frames.depth == 0


def test_two_objects_with_negative_click(test_model, blob_jpegs):
    up, ours = Upstream(test_model, blob_jpegs), Ours(test_model, blob_jpegs)
    for side in (up.points, ours.tracker.add_points):
        side(1, 0, points=[[30, 40], [60, 60]], labels=[1, 0])
        side(2, 0, points=[[90, 30]], labels=[1])
    up.propagate()
    ours.run("forward")
    assert_same(ours, up, 24, [1, 2])


def test_keyframes_at_both_ends_forward_then_backward(test_model, blob_jpegs):
    up, ours = Upstream(test_model, blob_jpegs), Ours(test_model, blob_jpegs)
    for side in (up.points, ours.tracker.add_points):
        side(1, 0, points=[[30, 40]], labels=[1])
        side(1, 23, points=[[76, 40]], labels=[1])
    up.propagate()
    up.propagate(start=23, reverse=True)
    ours.run("forward")
    ours.run("backward")
    assert_same(ours, up, 24, [1])


def test_both_directions_from_a_middle_keyframe(test_model, blob_jpegs):
    up, ours = Upstream(test_model, blob_jpegs), Ours(test_model, blob_jpegs)
    for side in (up.points, ours.tracker.add_points):
        side(1, 12, points=[[54, 40]], labels=[1])
    up.propagate()
    up.propagate(reverse=True)
    ours.run("both")
    assert_same(ours, up, 24, [1])


def test_box_prompt(test_model, blob_jpegs):
    up, ours = Upstream(test_model, blob_jpegs), Ours(test_model, blob_jpegs)
    for side in (up.points, ours.tracker.add_points):
        side(1, 0, box=[14, 24, 46, 56])
        side(2, 0, points=[[90, 30]], labels=[1], box=[78, 18, 102, 42])
    up.propagate()
    ours.run("forward")
    assert_same(ours, up, 24, [1, 2])


def test_mask_prompt(test_model, blob_jpegs):
    yy, xx = np.mgrid[:96, :128]
    disc = (xx - 30) ** 2 + (yy - 40) ** 2 < 15**2
    up, ours = Upstream(test_model, blob_jpegs), Ours(test_model, blob_jpegs)
    up.mask(1, 0, torch.from_numpy(disc))
    ours.tracker.add_mask(1, 0, disc)
    up.propagate()
    ours.run("forward")
    assert_same(ours, up, 24, [1])


@pytest.mark.parametrize(
    ("retain", "frame"),
    [("all", 30), ("window", 10)],
    ids=["keep-all-state-correction-mid-video", "default-pruning-correction-near-keyframe"],
)
def test_correction_after_propagation(test_model, long_blob_jpegs, retain, frame):
    """A click on a tracked frame becomes a conditioning frame; the affected segment is
    re-propagated forward and backward from it, as upstream would."""
    up, ours = Upstream(test_model, long_blob_jpegs), Ours(test_model, long_blob_jpegs, retain_frames=retain)
    for side in (up.points, ours.tracker.add_points):
        side(1, 0, points=[[30, 40]], labels=[1])
        side(2, 0, points=[[90, 30]], labels=[1])
    up.propagate()
    ours.run("forward")
    assert_same(ours, up, 48, [1, 2])
    first_pass_obj2 = {t: ours.masks[t][2].copy() for t in range(48)}
    for side in (up.points, ours.tracker.add_points):
        side(1, frame, points=[[30 + 2 * frame % 88, 40]], labels=[1])
    start, end = ours.tracker.correction_range(1, frame)
    assert (start, end) == (1, 47)
    up.propagate(start=frame, max_frames=end - frame)
    up.propagate(start=frame, reverse=True, max_frames=frame - start)
    ours.run("both", start=start, end=end, obj_ids=[1])
    # Upstream re-tracks every object; we re-track only the corrected one. Its masks equal
    # upstream's, and object 2 keeps its first-pass masks.
    assert_same(ours, up, 48, [1])
    assert all(np.array_equal(first_pass_obj2[t], ours.masks[t][2]) for t in range(48))
    changed = [t for t in range(48) if not np.array_equal(up.masks[t][1], ours.masks[t][1])]
    assert changed == []
    assert frame in ours.tracker.keyframes(1)


def test_pruning_keeps_state_bounded(test_model, long_blob_jpegs):
    ours = Ours(test_model, long_blob_jpegs)
    ours.tracker.add_points(1, 0, points=[[30, 40]], labels=[1])
    ours.run("forward")
    kept = sorted(ours.tracker.state["output_dict_per_obj"][0]["non_cond_frame_outputs"])
    window = ours.tracker.retain_frames
    assert window == 16
    assert kept == [t for t in range(1, 48) if t <= window or t >= 47 - window]


def test_state_keys_match_upstream(test_model, blob_jpegs):
    """The engine builds upstream's inference state itself; pin the keys so a sam2 upgrade
    that changes them fails here rather than deep inside propagation."""
    up = Upstream(test_model, blob_jpegs)
    ours = Ours(test_model, blob_jpegs)
    assert set(ours.tracker.state) == set(up.state)
    for key in ("num_frames", "video_height", "video_width"):
        assert ours.tracker.state[key] == up.state[key]


def test_remove_object_keeps_compact_tracking_records(test_model, blob_jpegs):
    ours = Ours(test_model, blob_jpegs)
    ours.tracker.add_points(1, 0, points=[[30, 40]], labels=[1])
    ours.tracker.add_points(2, 0, points=[[90, 30]], labels=[1])
    ours.run("forward", end=3)
    ours.tracker.remove_object(1)
    assert ours.tracker.obj_ids == [2]
    tracked = ours.tracker.state["frames_tracked_per_obj"][0]
    assert sorted(tracked) == [0, 1, 2, 3] and tracked[2] == {"reverse": False}
    ours.run("forward", start=0, end=5)
    assert set(ours.masks[5]) == {2}


def test_jpeg_folder_preprocessing_is_bit_identical(test_model, blob_jpegs):
    up = Upstream(test_model, blob_jpegs)
    ours = Ours(test_model, blob_jpegs)
    for t in (0, 7, 23):
        assert torch.equal(ours.tracker.frames[t], up.state["images"][t].cpu())


@pytest.mark.slow
def test_real_video_frames_match_upstream(test_model, shared_data):
    """The bedroom clip (960x540 JPEGs from the sam2 repository): same masks at video size."""
    folder = shared_data / "video" / "bedroom_jpeg"
    up, ours = Upstream(test_model, folder), Ours(test_model, folder)
    for side in (up.points, ours.tracker.add_points):
        side(1, 0, points=[[210, 350], [250, 220]], labels=[1, 1])
        side(2, 0, box=[300, 0, 500, 400])
    up.propagate(max_frames=7)
    ours.run("forward", end=7)
    assert_same(ours, up, 8, [1, 2])
    assert ours.masks[0][1].shape == (540, 960)
