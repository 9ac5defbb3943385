"""AnnotationSession: the Qt-free model behind the napari docks."""

from __future__ import annotations

import threading

import numpy as np
import pytest

from napari_sam2_track.errors import ModelError, PromptError, SourceError, StoreError
from napari_sam2_track.samples import first_frame_prompts, make_cells
from napari_sam2_track.schema import Category, Schema
from napari_sam2_track.session import (
    AnnotationSession,
    StoreLabelsArray,
    check_layer_shape,
    default_store_path,
)
from napari_sam2_track.project import (
    STATE_EDITED,
    STATE_NOT_RUN,
    STATE_PROMPTED,
    STATE_PROPAGATED,
    STATE_ABSENT,
    ProjectStore,
)


@pytest.fixture(scope="module")
def cells():
    return make_cells(n_frames=8, size=(96, 96))


@pytest.fixture
def session(cells, tmp_path):
    return AnnotationSession.open(cells.frames, tmp_path / "cells.zarr", schema=cells.schema())


def test_default_store_path(tmp_path):
    assert default_store_path(tmp_path / "movie.mp4") == tmp_path / "movie.zarr"
    assert default_store_path(tmp_path / "stack.zarr") == tmp_path / "stack.annotations.zarr"
    tmp = default_store_path(None, name="cells")
    assert tmp.name == "cells.zarr" and not tmp.exists() and tmp.parent.is_dir()
    tmp.parent.rmdir()


def test_check_layer_shape():
    assert check_layer_shape((8, 32, 48), rgb=False) == (8, 32, 48)
    assert check_layer_shape((8, 32, 48, 3), rgb=True) == (8, 32, 48)
    with pytest.raises(SourceError, match="single"):
        check_layer_shape((32, 48), rgb=False)
    with pytest.raises(SourceError, match="single RGB"):
        check_layer_shape((32, 48, 3), rgb=True)
    with pytest.raises(SourceError, match="rgb=True"):
        check_layer_shape((8, 32, 48, 3), rgb=False)
    with pytest.raises(SourceError, match="non-colour dimensions"):
        check_layer_shape((2, 8, 32, 48), rgb=False)
    with pytest.raises(SourceError, match="marked RGB"):
        check_layer_shape((8, 32, 48, 5), rgb=True)


def test_objects_schema_and_colors(session):
    a = session.add_object("a", "nucleus")
    b = session.add_object("b", "mitotic cell")
    assert (a.id, b.id) == (1, 2) and session.active_id == 2
    session.rename_object(1, "left")
    assert session.object(1).name == "left"
    with pytest.raises(PromptError, match="unknown category"):
        session.set_category(1, "nope")
    colors = session.label_colors()
    assert set(colors) == {1, 2} and colors[1] != colors[2]
    # removing a category moves its objects to the first one
    moved = session.set_schema(Schema(categories=[Category(name="nucleus", color="#00ff00")]))
    assert moved == [2] and session.object(2).category == "nucleus"
    assert ProjectStore.open(session.store.path).schema.category_names() == ["nucleus"]
    session.remove_object(2)
    assert [o.id for o in session.objects] == [1] and session.active_id == 1


def test_prompt_without_model_is_clear(session):
    session.add_object()
    with pytest.raises(ModelError, match="no model loaded"):
        session.add_click(0, 10, 10)
    with pytest.raises(PromptError, match="no prompts"):
        session.propagate_iter()


def test_clicks_propagate_and_edit(session, cells, test_model):
    session.set_model(test_model)
    clicks = first_frame_prompts(cells)
    ids = sorted(clicks)[:2]
    for oid in ids:
        obj = session.add_object(f"cell {oid}", cells.categories[oid], obj_id=oid)
        x, y = clicks[oid]
        mask = session.add_click(0, x, y, positive=True)
        assert mask.shape == (96, 96) and mask.any()
        assert session.keyframes(obj.id) == [0]
        assert session.store.states(oid)[0] == STATE_PROMPTED
        assert (session.store.labels[0] == oid).any()
    # negative click on the same frame replaces the prompt with two clicks
    session.add_click(0, 2, 2, positive=False, obj_id=ids[0])
    assert session.clicks(ids[0], 0)[-1] == (2.0, 2.0, 0)
    # outside the image: rejected, nothing changes
    with pytest.raises(PromptError, match="outside"):
        session.add_click(0, 500, 10)
    assert len(session.clicks(ids[1], 0)) == 1

    cancel = threading.Event()
    progress = list(session.propagate_iter("forward", cancel=cancel))
    assert [p.frame for p in progress] == list(range(8))
    store = session.store
    for oid in ids:
        states = store.states(oid)
        assert states[0] == STATE_PROMPTED
        assert set(states[1:]) <= {STATE_PROPAGATED, STATE_ABSENT}
        for t in range(8):
            labels = store.labels[t]
            own = store.mask(oid, t)
            # merged labels agree with per-object masks (lower id wins overlaps)
            assert np.array_equal(labels == oid, own & ~np.isin(labels, [i for i in ids if i < oid]))
    assert store.meta["runs"][-1]["status"] == "completed"

    # a hand edit is persisted and marked edited
    frame = np.array(store.labels[3])
    frame[:5, :5] = ids[1]
    changed = session.persist_edit(3, frame)
    assert ids[1] in changed and store.states(ids[1])[3] == STATE_EDITED
    assert store.mask(ids[1], 3)[:5, :5].all()

    # keyframe deletion
    session.delete_keyframe(ids[1], 0)
    assert session.keyframes(ids[1]) == []

    # the label mask as a prompt
    mask = session.use_label_mask_as_prompt(3, obj_id=ids[1])
    assert mask.any() and session.keyframes(ids[1]) == [3]


def test_second_propagation_rejected_and_cancel(session, cells, test_model):
    session.set_model(test_model)
    session.add_object("c", "nucleus")
    x, y = first_frame_prompts(cells)[1]
    session.add_click(0, x, y)
    cancel = threading.Event()
    gen = session.propagate_iter("forward", cancel=cancel)
    first = next(gen)
    assert first.frame == 0 and session.running
    with pytest.raises(PromptError, match="already running"):
        session.propagate_iter("forward")
    with pytest.raises(PromptError, match="while a propagation runs"):
        session.add_click(0, x, y)
    cancel.set()
    rest = list(gen)
    assert len(rest) <= 1 and not session.running
    store = session.store
    assert store.meta["runs"][-1]["status"] == "cancelled"
    done = store.frames_with_state(1, exclude=(STATE_NOT_RUN,))
    assert 0 in done and len(done) < 8


def test_reopen_restores_prompts(cells, tmp_path, test_model):
    path = tmp_path / "p.zarr"
    s1 = AnnotationSession.open(cells.frames, path, schema=cells.schema(), model=test_model)
    s1.add_object("a")
    s1.add_click(2, 40, 40)
    s1.set_box(2, [30, 30, 60, 60])
    s2 = AnnotationSession.open(cells.frames, path, model=test_model)
    assert s2.keyframes(1) == [2] and s2.box(1, 2) == (30.0, 30.0, 60.0, 60.0)
    assert s2.tracker.keyframes(1) == [2]
    with pytest.raises(StoreError, match="video"):
        AnnotationSession.open(cells.frames[:4], path)


def test_store_labels_array_buffers_edits(session):
    session.add_object("a")
    arr = session.labels_array()
    assert arr.shape == (8, 96, 96) and arr.dtype == np.uint32
    arr[(np.array([1, 1]), np.array([3, 4]), np.array([5, 5]))] = 1
    assert arr[1, 3, 5] == 1 and session.store.labels[1][3, 5] == 0
    assert arr[(np.array([1]), np.array([3]), np.array([5]))].tolist() == [1]
    arr[2, 0:2, 0:2] = 1
    assert arr[:, 0, 0].tolist()[:3] == [0, 0, 1]
    assert arr.flush() == [1, 2]
    assert session.store.labels[1][3, 5] == 1 and session.store.states(1)[2] == STATE_EDITED
    assert isinstance(arr, StoreLabelsArray) and not arr.dirty_frames


def test_unstarted_run_can_be_closed(session, cells, test_model):
    session.set_model(test_model)
    session.add_object("a")
    x, y = first_frame_prompts(cells)[1]
    session.add_click(0, x, y)
    run = session.propagate_iter("forward")
    assert session.running
    run.close()
    assert not session.running and session.store.meta["runs"] == []
    assert len(list(session.propagate_iter("forward", start=0, end=1))) == 2
    assert not session.running


def test_session_and_tracker_judge_a_request_by_one_rule(session, test_model):
    """The session refuses a request before any work starts; the tracker plans the run. Both
    give the same passes for a good request and the same line for a bad one."""
    session.set_model(test_model)
    a = session.add_object("a")
    b = session.add_object("b")
    session.add_click(2, 40, 40, obj_id=a.id)
    session.add_click(5, 30, 30, obj_id=a.id)
    session.add_click(6, 60, 60, obj_id=b.id)
    session.wait_idle()
    requests = [
        ("both", None, None, None), ("forward", 3, 7, None), ("backward", 0, 5, [a.id]),
        ("both", 6, 6, [b.id]),
        ("both", 0, 1, None),  # no prompt in the range
        ("forward", 5, 99, None),  # outside the video
        ("sideways", None, None, None),
        ("both", None, None, [a.id, 9]),  # an object without prompts
    ]
    for request in requests:
        outcomes = []
        for judge in (session.plan, session.tracker.plan):
            try:
                outcomes.append(judge(*request).passes)
            except PromptError as exc:
                outcomes.append(str(exc))
        assert outcomes[0] == outcomes[1], request
    assert session.plan("both").passes[0].frames == list(range(2, 8))
    assert session.plan("backward", 0, 5, [a.id]).passes[0].entry == {a.id: 5}
    with pytest.raises(PromptError, match="no prompt for objects"):
        session.propagate_iter("both", 0, 1)
    assert not session.running


def test_plan_refusals_list_objects_readably():
    """Object lists in the planner's refusals are summarized, not printed as Python lists."""
    from napari_sam2_track.passes import plan_passes

    keyframes = {o: [0] for o in range(1, 31)}
    with pytest.raises(PromptError, match=r"^objects 99 have no prompts \(prompted objects: "
                                          r"1, 2, 3, 4, 5, 6, 7, 8, 9, 10 \.\.\. and 20 more\)$"):
        plan_passes(keyframes, 5, obj_ids=[99])
    with pytest.raises(PromptError, match=r"^no prompt for objects 1, 2, 3, 4, 5, 6, 7, 8, 9, 10 "
                                          r"\.\.\. and 20 more in frames 3-4; add a prompt there"):
        plan_passes(keyframes, 5, start=3, end=4)
