"""Tracking through volumes: z-propagation both ways, keyframes on several slices in one memory,
z-range, early stop, 3D + time chains, resume, fidelity to upstream, and bad input in one line.

Procedural volumes with ground truth (a sphere moving in z and along x over time); the real
SAM 2 architecture with random weights at 256 px (``test_model``); real zarr projects.
"""

from __future__ import annotations

import numpy as np
import pytest
import zarr

from napari_sam2_track.errors import PromptError, SourceError, StoreError
from napari_sam2_track.pipeline import check_target, track
from napari_sam2_track.project import STATE_NOT_RUN, ProjectStore
from napari_sam2_track.prompts import ObjectSpec, Prompt, PromptSet
from napari_sam2_track.sources import ArrayVolumeSource, open_source
from napari_sam2_track.volumes.checks import VolumeRequest
from napari_sam2_track.volumes.frames import SliceFrames
from napari_sam2_track.volumes.run import plan_volume

from _volumes import sphere_volume


def prompts_at(*where, obj=1):
    """Point prompts ``(frame, z, x, y)`` of one object."""
    return PromptSet(objects=[ObjectSpec(id=obj)], prompts=[
        Prompt(object=obj, frame=f, z=z, points=[(x, y)], labels=[1]) for f, z, x, y in where])


def run(source, prompts, out, model, **kw):
    return list(track(source, prompts, out, model=model, **kw))


def test_slice_frames_present_one_timepoint_as_frames():
    data, _ = sphere_volume(t=2)
    vol = ArrayVolumeSource(data, "TZYX")
    frames = SliceFrames(vol, 1, 2, 9)
    assert len(frames) == 8 and (frames.height, frames.width) == (64, 64)
    np.testing.assert_array_equal(frames.read_rgb(0)[..., 1], data[1, 2])
    assert frames.z_of(3) == 5 and frames.frame_of(5) == 3
    with pytest.raises(IndexError):
        frames.read_rgb(8)


def test_both_ways_from_a_middle_slice_segments_the_whole_sphere(tmp_path, test_model):
    data, truth = sphere_volume()
    vol = ArrayVolumeSource(data[0], "ZYX", sizes={"z": (2.0, "µm"), "y": (0.5, "µm"),
                                               "x": (0.5, "µm")})
    progress = run(vol, prompts_at((0, 6, 26, 32)), tmp_path / "v.zarr", test_model)
    assert progress[-1].computed >= 12
    store = ProjectStore.open(tmp_path / "v.zarr", mode="r")
    assert store.is_volume and store.volume_shape == (1, 12, 64, 64)
    states = store.states(1)
    assert (states != STATE_NOT_RUN).all()  # every slice, above and below the prompt
    labels = zarr.open_array(str(tmp_path / "v.zarr/labels/masklets/0"), mode="r")[0]
    found = labels == 1
    np.testing.assert_array_equal(found, store.object_volume(1, 0))
    assert found[6].any() and found[:6].any() and found[7:].any()
    vol_um3 = store.physical_volume(1)[0]
    assert vol_um3 == pytest.approx(found.sum() * 2.0 * 0.5 * 0.5)
    assert store.meta["runs"][-1]["status"] == "completed"


def test_prompts_on_several_slices_are_keyframes_of_one_memory(test_model):
    data, _ = sphere_volume()
    vol = ArrayVolumeSource(data[0], "ZYX")
    prompts = prompts_at((0, 3, 30, 32), (0, 9, 30, 32))
    plan = plan_volume(prompts, VolumeRequest(), 1)
    assert plan.prompts[1, 0] == prompts.prompts
    from napari_sam2_track.engine.tracker import StreamingTracker

    tracker = StreamingTracker(test_model, SliceFrames(vol, 0))
    for p in prompts.prompts:
        tracker.add_prompt(p.model_copy(update={"frame": p.z, "z": None}))
    assert tracker.keyframes(1) == [3, 9]  # one object, two conditioning frames
    passes = tracker.plan("both").passes
    assert [p.frames[0] for p in passes] == [3, 3] and passes[0].frames[-1] == 11
    tracker.close()


def test_z_range_and_early_stop(tmp_path, test_model):
    data, _ = sphere_volume()
    vol = ArrayVolumeSource(data[0], "ZYX")
    run(vol, prompts_at((0, 6, 26, 32)), tmp_path / "r.zarr", test_model, z_range="4-8")
    store = ProjectStore.open(tmp_path / "r.zarr", mode="r")
    run_states = store.states(1) != STATE_NOT_RUN
    assert run_states.tolist() == [False] * 4 + [True] * 5 + [False] * 3
    assert store.meta["runs"][-1]["z_range"] == [4, 8]
    # an empty object: every slice after the prompt is empty, so each direction stops early
    blank = np.full((1, 12, 64, 64), 30, np.uint8)
    blank[0, 6, 28:36, 28:36] = 220
    vol = ArrayVolumeSource(blank[0], "ZYX")
    box = PromptSet(objects=[ObjectSpec(id=1)],
                    prompts=[Prompt(object=1, frame=0, z=6, box=(28, 28, 36, 36))])
    run(vol, box, tmp_path / "stop.zarr", test_model, stop_after_empty=1)
    s = ProjectStore.open(tmp_path / "stop.zarr", mode="r")
    written = np.flatnonzero(s.states(1) != STATE_NOT_RUN)
    a = s.table_column(1, "area")
    # no run of more than one empty slice in a row on either side of the prompt
    for side in (a[6:][~np.isnan(a[6:])], a[:7][::-1][~np.isnan(a[:7][::-1])]):
        zeros = np.flatnonzero(side == 0)
        assert len(zeros) <= 1 and (not len(zeros) or zeros[0] == len(side) - 1)
    assert 6 in written


def test_3d_plus_time_chain_from_one_prompt(tmp_path, test_model):
    data, truth = sphere_volume(t=3, z=6, radius=7)
    vol = ArrayVolumeSource(data, "TZYX")
    run(vol, prompts_at((1, 3, 26, 32)), tmp_path / "t.zarr", test_model)
    store = ProjectStore.open(tmp_path / "t.zarr", mode="r")
    assert store.volume_shape == (3, 6, 64, 64)
    assert (store.states(1) != STATE_NOT_RUN).all()  # every slice of every timepoint
    for t in range(3):
        assert store.object_volume(1, t).any(), f"timepoint {t} lost the object"
    volumes = store.physical_volume(1)
    assert np.isfinite(volumes).all() and (volumes > 0).all()
    # a prompt on another timepoint overrides the chain there
    prompts = prompts_at((1, 4, 26, 32), (2, 4, 31, 32))
    plan = plan_volume(prompts, VolumeRequest(), 3)
    assert plan.steps == [(1, False), (2, False), (0, True)]
    assert sorted(plan.prompts) == [(1, 1), (1, 2)]


def test_resume_recomputes_only_missing_timepoints(tmp_path, test_model):
    data, _ = sphere_volume(t=3, z=4, radius=7)
    vol = ArrayVolumeSource(data, "TZYX")
    out = tmp_path / "res.zarr"
    prompts = prompts_at((0, 2, 26, 32))
    run(vol, prompts, out, test_model)
    full = ProjectStore.open(out, mode="r")
    before = [full.label_volume(t) for t in range(3)]
    # forget timepoint 2 as a killed run would have left it
    with ProjectStore.open(out) as store:
        rows = store.table(1)
        rows[8:12] = np.nan
        store.write_table_block(1, 0, rows)
    progress = run(vol, None, out, test_model, resume=True)
    assert {p.frame for p in progress} == set(range(8, 12))  # only timepoint 2 was computed
    again = ProjectStore.open(out, mode="r")
    assert (again.states(1) != STATE_NOT_RUN).all()
    for t in range(3):
        np.testing.assert_array_equal(again.label_volume(t), before[t])


# -- bad input: one line each, nothing written --------------------------------------------------


def _one_line(excinfo):
    assert "\n" not in str(excinfo.value)
    return str(excinfo.value)


@pytest.mark.parametrize("prompt, request_kw, expected", [
    (Prompt(object=1, frame=0, z=12, points=[(3, 3)], labels=[1]), {}, "slice z=12 but the volume has 12"),
    (Prompt(object=1, frame=0, points=[(3, 3)], labels=[1]), {}, "has no 'z'"),
    (Prompt(object=1, frame=0, z=2, points=[(3, 3)], labels=[1]), {"z_range": "3-20"}, "outside the volume's 12 slices"),
    (Prompt(object=1, frame=0, z=2, points=[(3, 3)], labels=[1]), {"z_range": "3-8"}, "outside --z-range 3-8"),
    (Prompt(object=1, frame=0, z=2, points=[(3, 3)], labels=[1]), {"axis": "w"}, "does not exist"),
    (Prompt(object=1, frame=0, z=2, points=[(3, 3)], labels=[1]), {"axis": "y", "z_range": "3-8"}, "--z-range applies to --axis z"),
    (Prompt(object=1, frame=1, z=2, points=[(3, 3)], labels=[1]), {}, "timepoint 1 but the volume has 1"),
])
def test_bad_volume_requests_are_refused_before_anything_is_written(tmp_path, prompt, request_kw,
                                                                     expected):
    from napari_sam2_track.pipeline import volume_request

    data, _ = sphere_volume()
    vol = ArrayVolumeSource(data[0], "ZYX")
    prompts = PromptSet(objects=[ObjectSpec(id=1)], prompts=[prompt])
    with pytest.raises((PromptError, SourceError)) as err:
        check_target(tmp_path / "x.zarr", vol, prompts,
                     volume=volume_request(**{k: v for k, v in request_kw.items()}))
    assert expected in _one_line(err)
    assert not (tmp_path / "x.zarr").exists()


def test_z_for_a_2d_video_and_volume_options_for_a_video_are_refused(tmp_path, blob_jpegs):
    from napari_sam2_track.pipeline import volume_request

    video = open_source(blob_jpegs)
    with pytest.raises(PromptError) as err:
        check_target(tmp_path / "x.zarr", video, prompts_at((0, 2, 30, 40)))
    assert "input is a 2D video; remove 'z'" in _one_line(err)
    with pytest.raises(PromptError) as err:
        check_target(tmp_path / "x.zarr", video, None, volume=volume_request(z_range="1-3"))
    assert "only apply to volumes" in _one_line(err)
    assert not (tmp_path / "x.zarr").exists()


def test_a_volume_project_refuses_a_video_and_the_reverse(tmp_path, test_model, blob_jpegs):
    data, _ = sphere_volume(z=4)
    vol = ArrayVolumeSource(data[0], "ZYX")
    ProjectStore.create(tmp_path / "v.zarr", source=vol).close()
    video = open_source(blob_jpegs)
    with pytest.raises(StoreError) as err:
        run(video, None, tmp_path / "v.zarr", test_model, resume=True)
    assert "was made for a" in _one_line(err)
    ProjectStore.create(tmp_path / "p.zarr", num_frames=24, height=96, width=128).close()
    with pytest.raises(StoreError) as err:
        run(vol, prompts_at((0, 1, 3, 3)), tmp_path / "p.zarr", test_model, resume=True)
    assert "2D video" in _one_line(err)


def test_bad_z_range_text_and_early_stop(tmp_path):
    from napari_sam2_track.pipeline import volume_request

    with pytest.raises(PromptError) as err:
        volume_request(z_range="ten-12")
    assert "FIRST-LAST" in _one_line(err)
    with pytest.raises(PromptError) as err:
        volume_request(z_range="8-2")
    assert "empty" in _one_line(err)
    data, _ = sphere_volume()
    with pytest.raises(PromptError) as err:
        check_target(tmp_path / "x.zarr", ArrayVolumeSource(data[0], "ZYX"), None,
                     volume=volume_request(stop_after_empty=0))
    assert "at least 1" in _one_line(err)
