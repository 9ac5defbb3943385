"""Corrections of a volume project in the session: a prompt at (t, z) re-propagates one object
along z within t and re-chains only the timepoints seeded from t, equal to a fresh volume run of
the same prompts there; undo restores the project byte for byte. Real model, random weights."""

from __future__ import annotations

import shutil
import threading

import numpy as np
import pytest

from napari_sam2_track.errors import ProjectLockedError, PromptError
from napari_sam2_track.pipeline import track
from napari_sam2_track.project import COL, ProjectStore
from napari_sam2_track.session.volume import VolumeSession, volume_source_for_array
from napari_sam2_track.sources import ArrayVolumeSource

from _volumes import sphere_volume
from conftest import held_by_another_process
from test_review_segments import chunk_files

T, Z = 4, 8
N = T * Z


def plane(t: int, z: int) -> int:
    return t * Z + z


@pytest.fixture(scope="module")
def data():
    return sphere_volume(t=T, z=Z)[0]


@pytest.fixture(scope="module")
def tracked_project(tmp_path_factory, test_model, data):
    """Object 1 prompted at (t 1, z 4), object 2 at (t 0, z 4); all propagated: object 1's
    chain runs forward to t 3 and backward to t 0 (built once; each test corrects a copy)."""
    path = tmp_path_factory.mktemp("tracked") / "v.zarr"
    session = VolumeSession.open_volume(volume_source_for_array(data), path, model=test_model,
                                        prefetch=False)
    try:
        session.add_object("ball")
        session.add_object("corner")
        session.add_click(plane(1, 4), 29, 32, obj_id=1)
        session.add_click(plane(0, 4), 8, 8, obj_id=2)
        list(session.propagate_iter())
    finally:
        session.close()
    return path


@pytest.fixture
def tracked(tracked_project, tmp_path, test_model, data):
    """A session on a copy of ``tracked_project``, correcting whole chains (comparable with a
    fresh run)."""
    path = tmp_path / "v.zarr"
    shutil.copytree(tracked_project, path)
    session = VolumeSession.open_volume(volume_source_for_array(data), path, model=test_model,
                                        prefetch=False)
    session.activity.annotator = "ann"
    session.corrections.stop_early = False
    yield session
    session.close()


def plane_files(files: dict[str, bytes], p: int) -> dict[str, bytes]:
    """The chunk files of one plane (chunks ``(1, 1, H, W)`` keyed ``c/t/z/``)."""
    t, z = divmod(p, Z)
    return {k: v for k, v in files.items() if f"/c/{t}/{z}/" in k}


def snapshot(store: ProjectStore) -> dict:
    return {"files": chunk_files(store), "tables": {o: store.table(o).tobytes() for o in (1, 2)},
            "prompts": sorted(store.meta["prompts"], key=lambda p: (p["object"], p["frame"], p["z"]))}


def fresh_run(store: ProjectStore, data, out, model) -> ProjectStore:
    """The same prompts tracked from scratch by the core's volume run, into ``out``."""
    list(track(ArrayVolumeSource(data, "TZYX"), store.prompts, out, model=model))
    return ProjectStore.open(out, mode="r")


def assert_untouched(store: ProjectStore, before: dict, planes: range) -> None:
    """Object 2 on every plane and object 1 outside ``planes``: to the byte."""
    after = chunk_files(store)
    assert {k: v for k, v in after.items() if k.startswith("objects/2/")} == \
        {k: v for k, v in before["files"].items() if k.startswith("objects/2/")}
    assert store.table(2).tobytes() == before["tables"][2]
    old = np.frombuffer(before["tables"][1]).reshape(store.table(1).shape)
    for p in set(range(N)) - set(planes):
        assert plane_files(after, p) == plane_files(before["files"], p) != {}, f"plane {p} changed"
        assert store.table(1)[p].tobytes() == old[p].tobytes()
    assert (store.table(1)[planes.start:planes.stop, COL["run"]] > old[planes.start:planes.stop, COL["run"]]).all()


def assert_equals_fresh(store: ProjectStore, fresh: ProjectStore, planes: range) -> None:
    a, b = planes.start, planes.stop
    np.testing.assert_array_equal(store.masks(1, a, b), fresh.masks(1, a, b))
    for col in ("presence", "area", "state"):
        np.testing.assert_array_equal(store.table(1)[a:b, COL[col]], fresh.table(1)[a:b, COL[col]])


def test_a_correction_after_the_first_prompt_rechains_the_later_timepoints(tracked, tmp_path, test_model, data):
    session, store = tracked, tracked.store
    before = snapshot(store)
    threads: set[str] = set()
    session.events.correction_started.connect(lambda *a: threads.add(threading.current_thread().name))

    future = session.request_correction(plane(2, 3), [(33.0, 31.0, 1), (5.0, 5.0, 0)], obj_id=1)
    correction = future.result(timeout=600)
    assert threads == {"sam2-prompts"}  # the compute thread, not the caller's
    assert (correction.object, correction.frame) == (1, plane(2, 3))
    assert (correction.start, correction.end) == (plane(2, 0), plane(3, Z - 1))  # t 2 and 3
    assert correction.segment == (plane(2, 0), plane(3, Z - 1)) and correction.stops == {}
    assert [(p.frame, p.z) for p in store.prompts.prompts if p.object == 1] == [(1, 4), (2, 3)]
    assert_untouched(store, before, range(plane(2, 0), N))
    with fresh_run(store, data, tmp_path / "fresh.zarr", test_model) as fresh:
        assert_equals_fresh(store, fresh, range(plane(2, 0), N))

    assert session.undo_segment(1) == (plane(2, 0), plane(3, Z - 1))
    undone = session.undo_correction(1)
    assert undone.undone and (undone.start, undone.end) == (plane(2, 0), plane(3, Z - 1))
    assert snapshot(store) == before
    assert session.keyframes(1) == [plane(1, 4)]


def test_a_correction_before_the_first_prompt_rechains_the_earlier_timepoints(tracked, tmp_path, test_model, data):
    session, store = tracked, tracked.store
    before = snapshot(store)
    correction = session.correct(plane(0, 5), box=(18.0, 22.0, 36.0, 42.0), obj_id=1)
    assert (correction.start, correction.end) == (0, plane(0, Z - 1))  # t 0 only: t 1 is prompted
    assert_untouched(store, before, range(0, Z))
    with fresh_run(store, data, tmp_path / "fresh.zarr", test_model) as fresh:
        assert_equals_fresh(store, fresh, range(0, Z))
    undone = session.request_restore(1, correction.version).result(timeout=120)  # review restore
    assert undone.undone and snapshot(store) == before
    assert session.keyframes(1) == [plane(1, 4)]


def test_a_correction_of_the_first_prompted_timepoint_rechains_both_ways(tracked, tmp_path, test_model, data):
    session, store = tracked, tracked.store
    before = snapshot(store)
    correction = session.correct(plane(1, 2), [(30.0, 33.0, 1)], obj_id=1)
    assert (correction.start, correction.end) == (0, N - 1)
    assert_untouched(store, before, range(0, N))
    with fresh_run(store, data, tmp_path / "fresh.zarr", test_model) as fresh:
        assert_equals_fresh(store, fresh, range(0, N))


def test_the_chain_stops_at_the_first_timepoint_that_agrees(tracked):
    session, store = tracked, tracked.store
    schema = store.schema
    store.set_schema(schema.model_copy(update={"review": schema.review.model_copy(
        update={"agree_iou": 1e-6, "correction_stop": "agree"})}))
    session.corrections.stop_early = None  # the schema's rule
    presence = store.table(1)[:, COL["area"]].reshape(T, Z).sum(axis=1) > 0
    assert presence.all()  # visible at every timepoint: any mask there agrees at that IoU
    before = snapshot(store)
    correction = session.correct(plane(1, 4), [(29.0, 32.0, 1), (31.0, 30.0, 1)], obj_id=1)
    assert correction.stops == {"forward": plane(2, Z - 1), "backward": plane(0, Z - 1)}
    assert (correction.start, correction.end) == (0, plane(2, Z - 1))
    assert_untouched(store, before, range(0, plane(3, 0)))  # t 3 is kept


def test_auto_correct_corrects_a_prompt_on_a_propagated_plane(tracked):
    session, store = tracked, tracked.store
    before = snapshot(store)
    session.add_click(plane(3, 6), 35, 32, obj_id=1)  # auto_correct off: the prompt only
    session.wait_idle()
    assert session.last_correction is None
    changed = {k for k, v in chunk_files(store).items() if before["files"].get(k) != v}
    assert changed and all("/c/3/6/" in k or k.startswith("objects/1/table") for k in changed)
    session.auto_correct = True  # what the Review dock's "Re-propagate corrections" does
    session.add_click(plane(3, 2), 36, 30, obj_id=1)
    session.wait_idle()
    correction = session.last_correction
    assert correction is not None and (correction.frame, correction.start, correction.end) == \
        (plane(3, 2), plane(3, 0), N - 1)
    session.add_click(plane(3, 2), 30, 30, obj_id=1)  # a burst on that plane: one version
    session.wait_idle()
    again = session.last_correction
    assert again is not correction and again.version == correction.version
    session.undo_correction(1)  # back to before the burst (the plain prompt on z 6 stays)
    assert session.keyframes(1) == [plane(1, 4), plane(3, 6)]


def test_bad_corrections_are_refused_in_one_line_and_write_nothing(tracked, tmp_path, data):
    session, store = tracked, tracked.store
    before = snapshot(store)
    with pytest.raises(PromptError, match="needs clicks or a box"):
        session.request_correction(plane(2, 3), [], obj_id=1)
    with pytest.raises(PromptError, match=f"plane {N} is outside the volume"):
        session.request_correction(N, [(30.0, 30.0, 1)], obj_id=1)
    session.wait_idle()
    assert snapshot(store) == before and session.last_correction is None
    path = store.path
    session.close()

    with held_by_another_process(path):
        held = VolumeSession.open_volume(volume_source_for_array(data), path,
                                         model=tracked.model, prefetch=False)
        try:
            with pytest.raises(ProjectLockedError, match="read-only while PID"):
                held.request_correction(plane(2, 3), [(30.0, 30.0, 1)], obj_id=1)
        finally:
            held.close()
    with ProjectStore.open(path, mode="r") as reopened:
        assert snapshot(reopened) == before


def test_a_box_on_an_object_tracked_along_y_is_refused_before_anything_is_written(
        tmp_path, test_model):
    """An object tracked with ``--axis y`` is corrected along y: a click maps onto its planes,
    a box on a z-slice has none; it is refused before the prompt is recorded."""
    from napari_sam2_track.prompts import ObjectSpec, Prompt, PromptSet

    small = sphere_volume(t=1, z=6, h=24, w=24, radius=5.0)[0]
    path = tmp_path / "y.zarr"
    prompts = PromptSet(objects=[ObjectSpec(id=1)],
                        prompts=[Prompt(object=1, frame=0, z=3, points=[(12, 12)], labels=[1])])
    for _ in track(ArrayVolumeSource(small, "TZYX"), prompts, path, model=test_model, axis="y"):
        pass
    session = VolumeSession.open_volume(volume_source_for_array(small), path, model=test_model,
                                        prefetch=False)
    try:
        session.auto_correct = True
        store = session.store
        before = snapshot_one(store)
        with pytest.raises(PromptError, match="tracked along y: a box on a z-slice"):
            session.request_box(1, [8.0, 8.0, 16.0, 16.0], obj_id=1).result(timeout=120)
        session.wait_idle()
        assert snapshot_one(store) == before and session.last_correction is None
        assert session.keyframes(1) == [3] and session.box(1, 1) is None  # the box was taken back
    finally:
        session.close()


def snapshot_one(store: ProjectStore) -> dict:
    return {"files": chunk_files(store), "table": store.table(1).tobytes(),
            "prompts": store.meta["prompts"], "versions": sorted(store.path.glob("versions/**/*"))}
