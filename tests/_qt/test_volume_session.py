"""A volume in the session (no Qt): plane prompts, the slice's mask at once, and a propagation
that writes what the core's volume tracking writes for the same prompt."""

from __future__ import annotations

import numpy as np
import pytest

from napari_sam2_track.errors import StoreError
from napari_sam2_track.pipeline import track
from napari_sam2_track.project import ProjectStore
from napari_sam2_track.prompts import ObjectSpec, Prompt, PromptSet
from napari_sam2_track.session import layers as conv
from napari_sam2_track.session.volume import VolumeLabelsArray, VolumeSession, volume_source_for_array
from napari_sam2_track.sources import ArrayVolumeSource

from _volumes import sphere_volume


def cli_labels(data, where, out, model):
    """The label volume ``track VOLUME --prompts`` writes for one click ``(t, z, x, y)``."""
    t, z, x, y = where
    prompts = PromptSet(objects=[ObjectSpec(id=1)], prompts=[
        Prompt(object=1, frame=t, z=z, points=[(x, y)], labels=[1])])
    axes = "ZYX" if data.ndim == 3 else "TZYX"
    list(track(ArrayVolumeSource(data, axes), prompts, out, model=model))
    with ProjectStore.open(out, mode="r") as store:
        return np.stack([store.label_volume(i) for i in range(store.volume_shape[0])])


def test_plane_axes_convert_layer_rows_both_ways():
    axes = conv.PlaneAxes(lead=2, n_z=5)
    assert axes.plane((2, 3)) == 13 and axes.coords(13) == (2, 3)
    pts = conv.points_from_clicks({(1, 13): [(10.0, 20.0, 1)]}, axes)
    assert pts.data.tolist() == [[2, 3, 20, 10]]
    assert conv.clicks_from_points(pts.data, pts.positive, pts.objects, axes) == {(1, 13): [(10.0, 20.0, 1)]}
    rect = conv.rectangle_from_box(13, (1, 2, 8, 9), axes)
    assert conv.box_from_rectangle(rect, axes) == (13, (1.0, 2.0, 8.0, 9.0))


def test_a_click_on_a_slice_then_propagate_equals_the_core_volume_run(tmp_path, test_model):
    data, _ = sphere_volume()
    volume = volume_source_for_array(data[0], scale=(2.0, 0.5, 0.5), unit="µm")
    session = VolumeSession.open_volume(volume, tmp_path / "s.zarr", model=test_model, prefetch=False)
    try:
        assert session.store.is_volume and session.store.volume_shape == (1, 12, 64, 64)
        assert session.store.geometry.spacing[-3:] == pytest.approx((2.0, 0.5, 0.5))
        session.add_object("ball")
        mask = session.add_click(6, 26, 32)  # slice z=6: plane 6 of the single timepoint
        assert mask.any()
        stored = session.store.prompts.prompts
        assert [(p.frame, p.z) for p in stored] == [(0, 6)]
        labels = session.labels_array()
        assert isinstance(labels, VolumeLabelsArray) and labels.shape == (12, 64, 64)
        np.testing.assert_array_equal(labels[6] == 1, mask)
        assert not (labels[5] == 1).any()  # nothing propagated yet
        progress = list(session.propagate_iter("both"))
        assert progress and progress[-1].computed >= 12
        got = np.asarray(labels[:])
        assert (got[:6] == 1).any() and (got[7:] == 1).any()  # both ways from the prompt
        want = cli_labels(data[0], (0, 6, 26, 32), tmp_path / "cli.zarr", test_model)
        np.testing.assert_array_equal(got, want[0])
    finally:
        session.close()


def test_3d_plus_time_a_run_fills_other_timepoints(tmp_path, test_model):
    data, _ = sphere_volume(t=3, z=8)
    volume = volume_source_for_array(data, scale=(1.0, 2.0, 0.5, 0.5))
    session = VolumeSession.open_volume(volume, tmp_path / "s.zarr", model=test_model, prefetch=False)
    try:
        assert session.plane_axes.lead == 2 and session.num_frames == 24
        session.add_object()
        session.add_click(8 + 4, 29, 32)  # t=1, z=4
        assert [(p.frame, p.z) for p in session.store.prompts.prompts] == [(1, 4)]
        list(session.propagate_iter())
        labels = session.labels_array()
        assert labels.shape == (3, 8, 64, 64)
        got = np.asarray(labels[:])
        for t in (0, 2):
            assert (got[t] == 1).any(), f"timepoint {t} not filled"
        want = cli_labels(data, (1, 4, 29, 32), tmp_path / "cli.zarr", test_model)
        np.testing.assert_array_equal(got, want)
    finally:
        session.close()


def test_painting_a_slice_saves_that_plane_and_reopens(tmp_path):
    data, _ = sphere_volume(t=2, z=4)
    volume = volume_source_for_array(data)
    session = VolumeSession.open_volume(volume, tmp_path / "v.zarr", prefetch=False)
    session.add_object("a")
    labels = session.labels_array()
    yy, xx = np.mgrid[10:20, 10:20]
    t, z = np.full(yy.size, 1), np.full(yy.size, 2)
    labels[(t, z, yy.ravel(), xx.ravel())] = 1  # napari's paint: fancy (t, z, y, x)
    assert labels.dirty_frames == [1 * 4 + 2]
    labels.flush()
    assert session.store.label_volume(1)[2].sum() == 100 and session.store.label_volume(0).sum() == 0
    assert labels[:, 2].shape == (2, 64, 64) and labels[..., 5].shape == (2, 4, 64)
    session.close()
    reopened = VolumeSession.open_volume(volume, tmp_path / "v.zarr", prefetch=False)
    try:
        assert (reopened.labels_array()[1, 2] == 1).sum() == 100
    finally:
        reopened.close()
    other = volume_source_for_array(data[:, :3])
    with pytest.raises(StoreError, match="not the 2x3x64x64 volume"):
        VolumeSession.open_volume(other, tmp_path / "v.zarr", prefetch=False)


def test_a_volume_project_another_process_writes_opens_read_only(tmp_path, test_model):
    from conftest import held_by_another_process
    from napari_sam2_track.errors import ProjectLockedError

    data, _ = sphere_volume()
    volume = volume_source_for_array(data[0], scale=(2.0, 0.5, 0.5))
    path = tmp_path / "held.zarr"
    session = VolumeSession.open_volume(volume, path, prefetch=False)
    session.add_object("ball")
    session.close()
    with held_by_another_process(path) as proc:
        session = VolumeSession.open_volume(volume, path, model=test_model, prefetch=False)
        try:
            assert session.read_only and f"PID {proc.pid}" in session.held_by
            with pytest.raises(ProjectLockedError, match="read-only while PID"):
                session.propagate_iter()
            with pytest.raises(ProjectLockedError, match="read-only"):
                session.add_object("another")
            assert [o.name for o in session.objects] == ["ball"]
        finally:
            session.close()
    with ProjectStore.open(path) as store:  # free again: opens for writing
        assert not store.read_only
