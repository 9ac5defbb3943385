"""The batched engine mode tracks all objects of a frame in one pass with the exact mode's masks.

Equivalence tested here, per object and frame: the binary masks of the batched mode equal those
of the exact per-object mode (itself equal to upstream's, see test_fidelity.py) except on at most
0.1 % of the object's pixels, and the presence logit has the same sign. Both batched variants are
checked: the CPU default (mask decoder per object) and the fully batched one used on GPUs
(``batch_heads=True``). A forward hook on memory attention records the batch sizes it ran with,
so that every comparison is known to exercise batches of several objects.
"""

from __future__ import annotations

import numpy as np
import pytest

from napari_sam2_track.engine.tracker import StreamingTracker
from napari_sam2_track.errors import ModelError
from napari_sam2_track.sources import open_source

TOLERANCE = 0.001  # fraction of the object's pixels

BATCHED = [
    pytest.param({"batch_objects": True, "batch_heads": False}, id="batched"),
    pytest.param({"batch_objects": True, "batch_heads": True}, id="batched-heads"),
]


class Run:
    """A tracker and every mask/presence it yielded, plus the memory-attention batch sizes."""

    def __init__(self, model, folder, **kwargs):
        self.tracker = StreamingTracker(model, open_source(folder), **kwargs)
        self.masks: dict[tuple[int, int], np.ndarray] = {}
        self.presence: dict[tuple[int, int], float] = {}
        self.batch_sizes: list[int] = []

    def propagate(self, *args, **kwargs) -> None:
        attention = self.tracker.predictor.memory_attention

        def record(_module, inputs, kwargs_in, _output):
            curr = kwargs_in.get("curr", inputs[0] if inputs else None)
            self.batch_sizes.append(int(curr[0].shape[1]))

        handle = attention.register_forward_hook(record, with_kwargs=True)
        try:
            for r in self.tracker.propagate(*args, **kwargs):
                for obj, mask in r.masks.items():
                    self.masks[r.frame, obj] = mask
                    self.presence[r.frame, obj] = r.presence[obj]
        finally:
            handle.remove()


def assert_equivalent(got: Run, ref: Run) -> None:
    assert sorted(got.masks) == sorted(ref.masks)
    areas = []
    for key, expected in ref.masks.items():
        mask = got.masks[key]
        area = int(expected.sum())
        differing = int(np.count_nonzero(mask != expected))
        assert differing <= TOLERANCE * area, (
            f"object {key[1]} on frame {key[0]}: {differing} of {area} pixels differ"
        )
        assert (got.presence[key] > 0) == (ref.presence[key] > 0), f"presence of {key} flips"
        areas.append(area)
    # Guard against vacuous comparisons: masks are neither empty nor full.
    assert min(areas) > 0 and max(areas) < expected.size


def both_modes(model, folder, script, batched_kwargs):
    """Run ``script(run)`` in the exact mode and in a batched mode; return both runs."""
    ref = Run(model, folder, batch_objects=False)
    script(ref)
    assert ref.batch_sizes and max(ref.batch_sizes) == 1
    got = Run(model, folder, **batched_kwargs)
    script(got)
    return got, ref


def three_objects(tracker, late_frame: int = 0) -> None:
    tracker.add_points(1, 0, points=[[30, 40]], labels=[1])
    tracker.add_points(2, 0, points=[[90, 30]], labels=[1])
    tracker.add_points(3, late_frame, box=[60, 50, 110, 90])


def test_one_object_runs_the_exact_path(test_model, blob_jpegs):
    def script(run):
        run.tracker.add_points(1, 0, points=[[30, 40]], labels=[1])
        run.propagate("forward", end=12)

    got, ref = both_modes(test_model, blob_jpegs, script, {"batch_objects": True})
    assert max(got.batch_sizes) == 1
    for key in ref.masks:
        assert np.array_equal(got.masks[key], ref.masks[key])
        assert got.presence[key] == ref.presence[key]


@pytest.mark.parametrize("batched", BATCHED)
def test_three_objects_and_one_joining_later(test_model, blob_jpegs, batched):
    """Objects 1 and 2 are prompted on frame 0, object 3 joins on frame 6; a fourth object
    prompted on frame 3 makes the batch four wide once every object has a full memory."""

    def script(run):
        three_objects(run.tracker, late_frame=6)
        run.tracker.add_points(4, 3, points=[[40, 70]], labels=[1])
        run.propagate("forward")

    got, ref = both_modes(test_model, blob_jpegs, script, batched)
    assert_equivalent(got, ref)
    assert max(got.batch_sizes) == 4
    # Frames 1-2 have two objects; the later ones join the batch as their memory fills up.
    assert got.batch_sizes[0] == 2


def test_batched_matches_upstream(test_model, blob_jpegs):
    """The batched mode compared with upstream itself; on the CPU it is off by default."""
    from test_fidelity import Upstream

    up = Upstream(test_model, blob_jpegs)
    up.points(1, 0, points=[[30, 40]], labels=[1])
    up.points(2, 0, points=[[90, 30]], labels=[1])
    up.points(3, 0, box=[60, 50, 110, 90])
    up.propagate()
    assert not Run(test_model, blob_jpegs).tracker.batch_objects  # CPU default
    got = Run(test_model, blob_jpegs, batch_objects=True)
    three_objects(got.tracker)
    got.propagate("forward")
    assert max(got.batch_sizes) == 3
    ref = Run.__new__(Run)
    ref.masks = {(t, o): m for t, per in up.masks.items() for o, m in per.items()}
    ref.presence = {(t, o): v for t, per in up.presence.items() for o, v in per.items()}
    assert_equivalent(got, ref)


@pytest.mark.parametrize("batched", BATCHED)
def test_backward_from_last_frame(test_model, blob_jpegs, batched):
    def script(run):
        run.tracker.add_points(1, 23, points=[[76, 40]], labels=[1])
        run.tracker.add_points(2, 23, points=[[90, 73]], labels=[1])
        run.tracker.add_points(3, 20, box=[60, 50, 110, 90])
        run.propagate("backward")

    got, ref = both_modes(test_model, blob_jpegs, script, batched)
    assert_equivalent(got, ref)
    assert max(got.batch_sizes) == 3


@pytest.mark.parametrize("batched", BATCHED)
def test_both_directions_from_middle_keyframes(test_model, blob_jpegs, batched):
    def script(run):
        run.tracker.add_points(1, 12, points=[[54, 40]], labels=[1])
        run.tracker.add_points(2, 12, points=[[90, 42]], labels=[1])
        run.tracker.add_points(3, 10, box=[60, 50, 110, 90])
        run.propagate("both")

    got, ref = both_modes(test_model, blob_jpegs, script, batched)
    assert_equivalent(got, ref)
    assert max(got.batch_sizes) == 3


@pytest.mark.parametrize("batched", BATCHED)
def test_correction_for_one_object_then_all_objects_retracked(test_model, blob_jpegs, batched):
    """After a correction object 1 has two conditioning frames and the others one: their
    memories differ in size, so object 1 runs on its own while the others share a batch."""

    def script(run):
        three_objects(run.tracker)
        run.propagate("forward", end=16)
        run.tracker.add_points(1, 12, points=[[54, 40]], labels=[1])
        assert run.tracker.keyframes(1) == [0, 12]
        run.propagate("forward")  # every object, one of them corrected

    got, ref = both_modes(test_model, blob_jpegs, script, batched)
    assert_equivalent(got, ref)
    assert 2 in got.batch_sizes and 3 in got.batch_sizes


def test_batched_memory_stays_flat(test_model, long_blob_jpegs):
    """Pruning works per object in batched mode: the same frames and bytes are kept."""

    def script(run):
        three_objects(run.tracker)
        run.propagate("forward")

    got, ref = both_modes(test_model, long_blob_jpegs, script, {"batch_objects": True})
    window = got.tracker.retain_frames
    for idx in range(3):
        kept = sorted(got.tracker.state["output_dict_per_obj"][idx]["non_cond_frame_outputs"])
        assert kept == [t for t in range(1, 48) if t <= window or t >= 47 - window]
    assert got.tracker.state_bytes() == ref.tracker.state_bytes()


def test_model_comparing_objects_refuses_batching(test_model, blob_jpegs):
    p = test_model.predictor
    p.non_overlap_masks_for_mem_enc = True
    try:
        with pytest.raises(ModelError, match="batch_objects=False"):
            StreamingTracker(test_model, open_source(blob_jpegs), batch_objects=True)
        tracker = StreamingTracker(test_model, open_source(blob_jpegs), batch_objects=None)
        assert not tracker.batch_objects
    finally:
        p.non_overlap_masks_for_mem_enc = False
